package simulations

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"

	"github.com/jstp-peer/jstp-peer/mesh"
	"github.com/jstp-peer/jstp-peer/node"
	"github.com/jstp-peer/jstp-peer/routing"
	"github.com/jstp-peer/jstp-peer/saturation"
)

// Network modes of a Cluster.
const (
	// ModeSimnet attaches peers to a simulated network (simnet, QUIC)
	// with the Topology's latencies, crashes and partitions.
	ModeSimnet = "simnet"
	// ModeLoopback runs peers on real QUIC sockets on 127.0.0.1: no
	// simulated latency, crash means close, no partitions.
	ModeLoopback = "loopback"
)

// Connection caps every simulated peer gets unless its Spec says
// otherwise: memory then follows a peer's degree, not the mesh's size.
const (
	DefaultConnLow  = 16
	DefaultConnHigh = 32
)

// Spec describes one peer of a Cluster. Zero values take the defaults.
type Spec struct {
	// Region is the index of the peer's region in the Topology; -1
	// places it by the regions' shares (from the cluster's seed).
	Region int
	// DHTServer makes the peer serve the DHT; other peers are DHT
	// clients. New peers bootstrap from servers only.
	DHTServer bool
	// Bootstrap is how many DHT servers already in the cluster the peer
	// dials on start (default 3), picked at random from the seed: a
	// random sparse graph that the DHT then fills in.
	Bootstrap int
	// Provide are service names the peer provides.
	Provide []string
	// Chooser is the peer's replica policy (default: the peer's own
	// default, routing.HotCold).
	Chooser routing.Chooser
	// Source drives the peer's saturation reports (default: an idle
	// machine, so no peer of the simulation reads the real one).
	Source saturation.Source
	// Capacity is the capacity the peer declares in its reports.
	Capacity float64
	// Interval is how often the peer samples its saturation (default:
	// the peer's, 2 s).
	Interval time.Duration
	// ConnLow and ConnHigh cap the peer's connections (default
	// DefaultConnLow and DefaultConnHigh).
	ConnLow, ConnHigh int
	// Names configures the peer's name resolution.
	Names routing.NamesConfig
	// Options are extra engine options (an answer timeout, say).
	Options []node.Option
	// Setup registers the application's handlers before the peer lets
	// anything in.
	Setup func(*node.Peer) error
}

// SimPeer is one peer of a Cluster.
type SimPeer struct {
	Index  int
	Region int
	IP     net.IP // on the simulated network; nil in loopback mode
	*node.Peer

	mu     sync.Mutex
	closed bool
}

// ID is the peer's id.
func (p *SimPeer) ID() peer.ID { return p.Host.ID() }

// Cluster is many peers of the production code (node.Start) in one
// process, on a simulated network or on loopback. Everything random
// about it — keys, regions, who bootstraps from whom — comes from its
// seed. Its methods are safe for concurrent use.
type Cluster struct {
	mode string
	net  *Network // nil in loopback mode
	log  *slog.Logger

	mu      sync.Mutex
	rng     *rand.Rand
	peers   []*SimPeer
	servers []int // indices of DHT servers
}

// NewCluster returns an empty cluster. mode is ModeSimnet or
// ModeLoopback; topo is the simulated network's (ignored on loopback);
// log receives the peers' logs.
func NewCluster(mode string, topo Topology, seed uint64, log *slog.Logger) (*Cluster, error) {
	c := &Cluster{mode: mode, log: log, rng: rand.New(rand.NewPCG(seed, 0x6a737470))}
	switch mode {
	case ModeSimnet, "":
		c.mode = ModeSimnet
		n, err := NewNetwork(topo)
		if err != nil {
			return nil, err
		}
		c.net = n
	case ModeLoopback:
	default:
		return nil, fmt.Errorf("simulations: unknown network mode %q (want %s or %s)", mode, ModeSimnet, ModeLoopback)
	}
	return c, nil
}

// Mode is ModeSimnet or ModeLoopback.
func (c *Cluster) Mode() string { return c.mode }

// Network is the simulated network, nil in loopback mode.
func (c *Cluster) Network() *Network { return c.net }

// Peers returns the peers started so far, crashed ones included.
func (c *Cluster) Peers() []*SimPeer {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*SimPeer, 0, len(c.peers))
	for _, p := range c.peers {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// Live returns the peers that are not closed.
func (c *Cluster) Live() []*SimPeer {
	var live []*SimPeer
	for _, p := range c.Peers() {
		if !p.isClosed() {
			live = append(live, p)
		}
	}
	return live
}

// planned is what the cluster draws from its seed for a new peer, in
// order, so that concurrent starts stay deterministic.
type planned struct {
	spec    Spec
	index   int
	region  int
	key     crypto.PrivKey
	ip      net.IP
	boot    []int // indices of the DHT servers to bootstrap from
	started chan struct{}
	peer    *SimPeer
	err     error
}

// Start starts one peer and returns it once it has joined the mesh.
func (c *Cluster) Start(ctx context.Context, s Spec) (*SimPeer, error) {
	ps, err := c.StartMany(ctx, []Spec{s}, 1, nil)
	if err != nil {
		return nil, err
	}
	return ps[0], nil
}

// StartMany starts a peer per spec, at most parallel at a time, and
// returns them in order. Keys, addresses, regions and bootstrap peers are
// drawn from the seed in spec order before anything starts; a peer
// starts once the servers it bootstraps from are up. progress, if not
// nil, is called after each peer started. On error the peers already
// started stay in the cluster (Close stops them).
func (c *Cluster) StartMany(ctx context.Context, specs []Spec, parallel int, progress func(done int)) ([]*SimPeer, error) {
	parallel = max(parallel, 1)
	plans := make([]*planned, len(specs))
	c.mu.Lock()
	byIndex := map[int]*planned{}
	for i, s := range specs {
		p, err := c.planLocked(s)
		if err != nil {
			c.mu.Unlock()
			return nil, err
		}
		plans[i] = p
		byIndex[p.index] = p
	}
	c.mu.Unlock()

	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var done sync.Mutex
	count := 0
	for _, p := range plans {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			p.err = ctx.Err()
			close(p.started)
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			defer close(p.started)
			p.peer, p.err = c.startPlanned(ctx, p, byIndex)
			done.Lock()
			count++
			if progress != nil && p.err == nil {
				progress(count)
			}
			done.Unlock()
		})
	}
	wg.Wait()
	out := make([]*SimPeer, len(plans))
	var errs []error
	c.mu.Lock()
	for i, p := range plans {
		if p.err != nil {
			errs = append(errs, fmt.Errorf("peer %d: %w", p.index, p.err))
			continue
		}
		out[i] = p.peer
		c.peers[p.index] = p.peer
	}
	c.mu.Unlock()
	if len(errs) > 0 {
		return out, errors.Join(errs...)
	}
	return out, nil
}

// planLocked draws a peer's key, region, address and bootstrap servers.
func (c *Cluster) planLocked(s Spec) (*planned, error) {
	// The slot stays nil until the peer is up (and if it fails to start).
	index := len(c.peers)
	c.peers = append(c.peers, nil)
	p := &planned{spec: s, index: index, region: s.Region, started: make(chan struct{})}
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(c.rng.Uint32())
	}
	key, _, err := crypto.KeyPairFromStdKey(ptrTo(ed25519.NewKeyFromSeed(seed)))
	if err != nil {
		return nil, err
	}
	p.key = key
	if c.net != nil {
		regions := c.net.topo.Regions
		if p.region < 0 || p.region >= len(regions) {
			p.region = pickRegion(c.rng, regions)
		}
		p.ip = c.net.endpoint(p.region)
	} else {
		p.region = 0
	}
	k := s.Bootstrap
	if k <= 0 {
		k = 3
	}
	for _, i := range pickDistinct(c.rng, len(c.servers), k) {
		p.boot = append(p.boot, c.servers[i])
	}
	if s.DHTServer {
		c.servers = append(c.servers, index)
	}
	return p, nil
}

// startPlanned waits for the peer's bootstrap servers and starts it.
func (c *Cluster) startPlanned(ctx context.Context, p *planned, batch map[int]*planned) (*SimPeer, error) {
	s := p.spec
	var boot []string
	for _, i := range p.boot {
		var sp *SimPeer
		if b, ok := batch[i]; ok {
			select {
			case <-b.started:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			sp = b.peer
		} else {
			c.mu.Lock()
			sp = c.peers[i]
			c.mu.Unlock()
		}
		if sp == nil || sp.isClosed() {
			continue
		}
		for _, a := range sp.Host.Addrs() {
			boot = append(boot, a.String())
		}
	}
	mc := mesh.Config{
		Key:       p.key,
		Bootstrap: boot,
		Loopback:  true,
		DHTMode:   mesh.DHTClient,
		ConnLow:   s.ConnLow,
		ConnHigh:  s.ConnHigh,
	}
	if s.DHTServer {
		mc.DHTMode = mesh.DHTServer
	}
	if mc.ConnLow <= 0 {
		mc.ConnLow = DefaultConnLow
	}
	if mc.ConnHigh <= 0 {
		mc.ConnHigh = max(DefaultConnHigh, mc.ConnLow)
	}
	if c.net != nil {
		ip := p.ip
		mc.ListenAddrs = []string{fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", ip, mesh.DefaultPort)}
		mc.NoDefaultTransports = true
		mc.Options = []libp2p.Option{
			libp2p.Transport(quic.NewTransport),
			simQUIC(ip, c.net.newEndpoint),
			// Identify's address discovery stalls virtual time
			// (go-libp2p x/simlibp2p), and a simulated address needs no
			// discovering.
			libp2p.DisableIdentifyAddressDiscovery(),
		}
	} else {
		mc.ListenAddrs = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	}
	src := s.Source
	if src == nil {
		src = idleSource
	}
	sp := &SimPeer{Index: p.index, Region: p.region, IP: p.ip}
	cfg := node.PeerConfig{
		Mesh:       mc,
		Provide:    s.Provide,
		Chooser:    s.Chooser,
		Names:      s.Names,
		Options:    s.Options,
		Saturation: node.SaturationConfig{Source: src, Interval: s.Interval, Capacity: s.Capacity},
		Setup:      s.Setup,
		Logger:     c.log.With("sim.peer", p.index),
	}
	np, err := node.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	sp.Peer = np
	return sp, nil
}

func ptrTo[T any](v T) *T { return &v }

// idleSource is the machine every simulated peer has unless its Spec
// gives one: a tenth busy, nothing else measured. A simulated peer must
// not report the real machine, which every peer of the process shares.
var idleSource = saturation.NewStaticSource(saturation.Sample{CPU: 0.1, HasCPU: true})

func (p *SimPeer) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// Leave closes the peer as a graceful shutdown does: its connections
// are closed, and the others learn at once.
func (c *Cluster) Leave(p *SimPeer) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	return p.Peer.Close()
}

// Crash takes the peer off the network at once, as a machine that
// loses power: what it sends is lost, what is sent to it is never
// answered, and the others notice only by timeouts. Its process is then
// stopped. In loopback mode there is no network to cut, and Crash is
// Leave.
func (c *Cluster) Crash(p *SimPeer) error {
	if c.net != nil && p.IP != nil {
		c.net.cut(p.IP)
	}
	return c.Leave(p)
}

// Partition splits the simulated network: side(p) says which side each
// peer is on. Packets between sides are dropped until Heal.
func (c *Cluster) Partition(side func(p *SimPeer) int) error {
	if c.net == nil {
		return errors.New("simulations: partitions need the simulated network")
	}
	m := map[uint32]int{}
	for _, p := range c.Peers() {
		if p.IP != nil {
			m[ipKey(p.IP)] = side(p)
		}
	}
	c.net.partition(m)
	return nil
}

// Heal ends a partition.
func (c *Cluster) Heal() {
	if c.net != nil {
		c.net.Heal()
	}
}

// Close stops every peer, several at a time, then the network.
func (c *Cluster) Close() error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 16)
	)
	for _, p := range c.Peers() {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := c.Leave(p); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if c.net != nil {
		c.net.Close()
	}
	return errors.Join(errs...)
}

func pickRegion(rng *rand.Rand, regions []Region) int {
	var sum float64
	for _, r := range regions {
		sum += r.Share
	}
	x := rng.Float64() * sum
	for i, r := range regions {
		if x < r.Share {
			return i
		}
		x -= r.Share
	}
	return len(regions) - 1
}

// pickDistinct returns min(k, n) distinct indices below n.
func pickDistinct(rng *rand.Rand, n, k int) []int {
	if k >= n {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	seen := map[int]bool{}
	out := make([]int, 0, k)
	for len(out) < k {
		i := rng.IntN(n)
		if !seen[i] {
			seen[i] = true
			out = append(out, i)
		}
	}
	return out
}

// AwaitDHT waits until every peer's DHT routing table holds at least one
// peer, or timeout passes: a peer that has just started has connections
// before identify has told it which of them serve the DHT, and a DHT
// operation from an empty table fails at once.
func AwaitDHT(ctx context.Context, peers []*SimPeer, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, p := range peers {
		for p.Host.DHT().RoutingTable().Size() == 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("simulations: peer %d has no DHT neighbour after %v", p.Index, timeout)
			}
			if !sleepCtx(ctx, 50*time.Millisecond) {
				return ctx.Err()
			}
		}
	}
	return nil
}
