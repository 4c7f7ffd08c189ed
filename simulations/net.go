package simulations

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/marcopolo/simnet"
)

// Region is a group of peers close to each other: a data centre, a
// continent.
type Region struct {
	Name string
	// Share is the fraction of peers placed in the region; shares are
	// normalised, so 1, 1, 2 means a quarter, a quarter and a half.
	Share float64
}

// Topology says where peers are and how far apart: the one-way latency
// of a packet between two regions, and each peer's link bandwidth.
type Topology struct {
	Name    string
	Regions []Region
	// Latency[i][j] is the one-way delay of a packet from region i to
	// region j.
	Latency [][]time.Duration
	// Bandwidth is each peer's uplink and downlink, in bits per second.
	Bandwidth int
}

// Topologies the scenarios use. Bandwidth is generous on purpose: the
// scenarios measure queueing at replicas and the mesh's protocols, not
// congestion of access links.
var (
	// Flat is one region with 1 ms between any two peers (a LAN or one
	// data centre).
	Flat = Topology{
		Name:      "flat",
		Regions:   []Region{{Name: "dc", Share: 1}},
		Latency:   [][]time.Duration{{time.Millisecond}},
		Bandwidth: 1_000_000_000,
	}
	// ThreeRegions places peers in Europe, America and Asia, a third
	// each, with 1 ms inside a region and 40, 60 and 90 ms one way
	// between them (Europe–America, America–Asia, Europe–Asia).
	ThreeRegions = Topology{
		Name:    "three-regions",
		Regions: []Region{{Name: "eu", Share: 1}, {Name: "us", Share: 1}, {Name: "asia", Share: 1}},
		Latency: [][]time.Duration{
			{1 * time.Millisecond, 40 * time.Millisecond, 90 * time.Millisecond},
			{40 * time.Millisecond, 1 * time.Millisecond, 60 * time.Millisecond},
			{90 * time.Millisecond, 60 * time.Millisecond, 1 * time.Millisecond},
		},
		Bandwidth: 100_000_000,
	}
)

// Network is the simulated network peers are attached to: a simnet
// router whose per-packet delay follows the Topology, with a filter in
// front of every endpoint that drops what a partition or a crash cuts.
// Its methods are safe for concurrent use.
type Network struct {
	topo Topology
	sim  *simnet.Simnet
	epMu sync.Mutex // serialises simnet.NewEndpoint

	mu      sync.RWMutex
	region  map[uint32]int // endpoint IPv4 → region
	down    map[uint32]bool
	side    map[uint32]int // partition side of each endpoint, when split
	split   bool
	dropped uint64
	next    int
}

// NewNetwork starts a simulated network with the given topology. Close
// stops it (after the hosts on it are closed).
func NewNetwork(topo Topology) (*Network, error) {
	if len(topo.Regions) == 0 || len(topo.Latency) != len(topo.Regions) {
		return nil, fmt.Errorf("simulations: topology %q: %d regions, %d latency rows", topo.Name, len(topo.Regions), len(topo.Latency))
	}
	for i, row := range topo.Latency {
		if len(row) != len(topo.Regions) {
			return nil, fmt.Errorf("simulations: topology %q: latency row %d has %d columns", topo.Name, i, len(row))
		}
	}
	n := &Network{
		topo:   topo,
		region: map[uint32]int{},
		down:   map[uint32]bool{},
		side:   map[uint32]int{},
	}
	n.sim = &simnet.Simnet{
		LatencyFunc: n.latency,
		// simnet logs every packet it cannot route at error level; a
		// crashed peer's address makes thousands of those, all expected.
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	n.sim.Start()
	return n, nil
}

// Close stops the network's goroutines.
func (n *Network) Close() { n.sim.Close() }

// Topology returns the network's topology.
func (n *Network) Topology() Topology { return n.topo }

// endpoint reserves the next address, in region r.
func (n *Network) endpoint(r int) (ip net.IP) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ip = simnet.IntToPublicIPv4(n.next)
	n.next++
	n.region[ipKey(ip)] = r
	return ip
}

func ipKey(ip net.IP) uint32 {
	if v4 := ip.To4(); v4 != nil {
		return binary.BigEndian.Uint32(v4)
	}
	return 0
}

func addrKey(a net.Addr) uint32 {
	if u, ok := a.(*net.UDPAddr); ok {
		return ipKey(u.IP)
	}
	return 0
}

func (n *Network) latency(p *simnet.Packet) time.Duration {
	n.mu.RLock()
	from, to := n.region[addrKey(p.From)], n.region[addrKey(p.To)]
	n.mu.RUnlock()
	return n.topo.Latency[from][to]
}

// blocked reports whether a packet from a to b is cut, and counts it.
func (n *Network) blocked(a, b uint32) bool {
	n.mu.RLock()
	cut := n.down[a] || n.down[b] || (n.split && n.side[a] != n.side[b])
	n.mu.RUnlock()
	if cut {
		n.mu.Lock()
		n.dropped++
		n.mu.Unlock()
	}
	return cut
}

// Dropped is the number of packets cut by crashes and partitions.
func (n *Network) Dropped() uint64 {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.dropped
}

// cut makes the endpoint at ip unreachable, as a machine that lost
// power: nothing it sends arrives, nothing sent to it is answered.
func (n *Network) cut(ip net.IP) {
	n.mu.Lock()
	n.down[ipKey(ip)] = true
	n.mu.Unlock()
}

// Partition splits the network: side maps each endpoint to a side, and
// packets between different sides are dropped until Heal.
func (n *Network) partition(side map[uint32]int) {
	n.mu.Lock()
	n.side = side
	n.split = true
	n.mu.Unlock()
}

// Heal ends a partition.
func (n *Network) Heal() {
	n.mu.Lock()
	n.split = false
	n.side = map[uint32]int{}
	n.mu.Unlock()
}

// newEndpoint attaches a socket at addr to the network, behind the
// filter. simnet's NewEndpoint is not safe for concurrent use, and peers
// start concurrently.
func (n *Network) newEndpoint(addr *net.UDPAddr) net.PacketConn {
	link := simnet.NodeBiDiLinkSettings{
		Downlink: simnet.LinkSettings{BitsPerSecond: n.topo.Bandwidth},
		Uplink:   simnet.LinkSettings{BitsPerSecond: n.topo.Bandwidth},
	}
	n.epMu.Lock()
	c := n.sim.NewEndpoint(addr, link)
	n.epMu.Unlock()
	return &filteredConn{PacketConn: c, n: n, self: ipKey(addr.IP)}
}

// filteredConn drops what the Network says is cut, as a lossy path
// would: the sender is not told.
type filteredConn struct {
	net.PacketConn
	n    *Network
	self uint32
}

func (c *filteredConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.n.blocked(c.self, addrKey(addr)) {
		return len(p), nil
	}

	return c.PacketConn.WriteTo(p, addr)
}

// SetReadBuffer and SetWriteBuffer keep quic-go from warning that it
// cannot size the socket buffers of a connection that has none.
func (c *filteredConn) SetReadBuffer(int) error  { return nil }
func (c *filteredConn) SetWriteBuffer(int) error { return nil }
