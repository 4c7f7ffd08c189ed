package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ws "github.com/libp2p/go-libp2p/p2p/transport/websocket"
	"github.com/multiformats/go-multiaddr"
)

// DefaultPort is the documented default port of a jstp-peer, for both TCP
// and QUIC.
const DefaultPort = 4033

// DefaultListenAddrs are the addresses a Host listens on when
// Config.ListenAddrs is empty: TCP and QUIC on every IPv4 and IPv6
// interface, port 4033.
var DefaultListenAddrs = []string{
	"/ip4/0.0.0.0/tcp/4033",
	"/ip4/0.0.0.0/udp/4033/quic-v1",
	"/ip6/::/tcp/4033",
	"/ip6/::/udp/4033/quic-v1",
}

// DHTProtocolPrefix is the prefix of the mesh's Kademlia protocol
// (/jstp/kad/1.0.0). It keeps jstp peers out of the IPFS DHT and IPFS peers
// out of ours.
const DHTProtocolPrefix = "/jstp"

// MDNSServiceName is the DNS-SD service type under which peers announce
// themselves on the LAN. It follows the _service._proto form of RFC 6763
// so that ordinary mDNS browsers (avahi-browse, dns-sd) list jstp peers.
const MDNSServiceName = "_jstp-peer._udp"

// UserAgent is the agent version a Host announces through identify; other
// peers see it in their peerstore (and in Peers).
const UserAgent = "jstp-peer"

// Defaults of the Config fields that leave zero values.
const (
	// DefaultBootstrapTimeout bounds the dial to each bootstrap peer.
	DefaultBootstrapTimeout = 15 * time.Second
	// DefaultConnLow, DefaultConnHigh and DefaultConnGrace configure the
	// connection manager: above High connections it trims down to Low,
	// sparing connections younger than Grace.
	DefaultConnLow   = 100
	DefaultConnHigh  = 400
	DefaultConnGrace = time.Minute
	// mdnsDialTimeout bounds the dial to a peer found on the LAN; LAN
	// peers answer quickly or not at all.
	mdnsDialTimeout = 10 * time.Second
	// mdnsQueue and mdnsDialers bound the work mDNS can cause: found peers
	// beyond the queue are dropped (mDNS announces them again).
	mdnsQueue   = 64
	mdnsDialers = 4
)

// DHTMode selects whether the peer serves DHT queries.
type DHTMode int

const (
	// DHTAuto (the default) serves DHT queries unless AutoNAT reports the
	// peer unreachable from outside, then acts as a client. A mesh on a
	// LAN or one machine, where AutoNAT reaches no verdict, keeps its
	// servers and so its service names; a peer behind a NAT on the
	// Internet steps back to client, so it does not fill others' routing
	// tables with addresses they cannot dial.
	DHTAuto DHTMode = iota
	// DHTServer always serves DHT queries, whatever AutoNAT says. Use it
	// for bootstrap peers.
	DHTServer
	// DHTClient never serves DHT queries.
	DHTClient
)

// String returns "auto", "server" or "client".
func (m DHTMode) String() string {
	switch m {
	case DHTAuto:
		return "auto"
	case DHTServer:
		return "server"
	case DHTClient:
		return "client"
	}
	return fmt.Sprintf("DHTMode(%d)", int(m))
}

// ParseDHTMode parses "auto", "server" or "client" (as written by String),
// for flags and config files. The empty string is "auto".
func ParseDHTMode(s string) (DHTMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return DHTAuto, nil
	case "server":
		return DHTServer, nil
	case "client":
		return DHTClient, nil
	}
	return DHTAuto, fmt.Errorf("mesh: unknown DHT mode %q (want auto, server or client)", s)
}

func (m DHTMode) dhtOption() (dht.ModeOpt, error) {
	switch m {
	case DHTAuto:
		return dht.ModeAutoServer, nil
	case DHTServer:
		return dht.ModeServer, nil
	case DHTClient:
		return dht.ModeClient, nil
	}
	return 0, fmt.Errorf("mesh: invalid DHT mode %d", int(m))
}

// Config configures New. Zero values take the documented defaults; only
// Key is required.
type Config struct {
	// Key is the peer's private key (see identity.LoadOrCreate); the peer
	// id derives from it. Required.
	Key crypto.PrivKey

	// ListenAddrs are multiaddrs to listen on. Default: DefaultListenAddrs
	// (TCP and QUIC on port 4033, IPv4 and IPv6). Port 0 picks a free port;
	// tests use /ip4/127.0.0.1/tcp/0.
	ListenAddrs []string

	// AnnounceAddrs, when set, replace the addresses the peer announces to
	// others (for example a public address forwarded to this machine by
	// hand). Default: the listen addresses plus what NAT traversal and
	// identify discover.
	AnnounceAddrs []string

	// Bootstrap are multiaddrs of peers to join the mesh through, each
	// ending in /p2p/<peer id>; several addresses of one peer are merged.
	// New dials them all concurrently and then bootstraps the DHT; the DHT
	// dials them again whenever its routing table empties. Default: none
	// (the peer waits for others to find it, or for mDNS).
	Bootstrap []string

	// BootstrapTimeout bounds each bootstrap dial in New. Default:
	// DefaultBootstrapTimeout (15 s).
	BootstrapTimeout time.Duration

	// MDNS enables discovery of peers on the local network by multicast
	// DNS (service MDNSServiceName); found peers are dialled. Default off
	// here; the CLI turns it on.
	MDNS bool

	// DHTMode selects whether this peer serves the DHT. Default: DHTAuto.
	DHTMode DHTMode

	// Loopback switches off everything that only matters across NATs and
	// the Internet: UPnP/NAT-PMP port mapping, the AutoNAT service for
	// others, hole punching, and relays (as client, as service and
	// auto-relay). Meant for tests and single-machine simulations, where
	// these only cost time and log noise. Default false.
	Loopback bool

	// ConnLow, ConnHigh and ConnGrace configure the connection manager
	// (see DefaultConnLow, DefaultConnHigh, DefaultConnGrace: 100, 400,
	// one minute).
	ConnLow, ConnHigh int
	ConnGrace         time.Duration

	// Logger receives the mesh's logs, tagged component=mesh. Default:
	// slog.Default().
	Logger *slog.Logger
}

// Host is a running mesh peer: a libp2p host with its DHT, gossipsub and
// discovery. Its methods are safe for concurrent use.
type Host struct {
	host   host.Host
	dht    *dht.IpfsDHT
	ps     *pubsub.PubSub
	mdns   mdns.Service
	log    *slog.Logger
	boot   []peer.AddrInfo
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// New starts a mesh peer as cfg describes and returns once it listens and
// has tried its bootstrap peers (each dial bounded by
// cfg.BootstrapTimeout). Failing to reach bootstrap peers is logged, not
// returned: the first peer of a mesh has nobody to reach, and the DHT keeps
// retrying. ctx bounds the start only; the Host lives until Close.
func New(ctx context.Context, cfg Config) (*Host, error) {
	if cfg.Key == nil {
		return nil, errors.New("mesh: Config.Key is required")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	listen := cfg.ListenAddrs
	if len(listen) == 0 {
		listen = DefaultListenAddrs
	}
	boot, err := parseBootstrap(cfg.Bootstrap)
	if err != nil {
		return nil, err
	}
	announce, err := parseAddrs(cfg.AnnounceAddrs)
	if err != nil {
		return nil, fmt.Errorf("mesh: announce address: %w", err)
	}
	mode, err := cfg.DHTMode.dhtOption()
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	h := &Host{
		log:  logger.With("component", "mesh"),
		boot: boot,
	}

	opts, err := h.libp2pOptions(cfg, listen, announce, mode)
	if err != nil {
		return nil, err
	}
	lh, err := libp2p.New(opts...)
	if err != nil {
		// The DHT may have been built before a later part of the host
		// failed; it is ours to close.
		if h.dht != nil {
			_ = h.dht.Close()
		}
		return nil, fmt.Errorf("mesh: start libp2p host: %w", err)
	}
	h.host = lh

	// The Host's goroutines, pubsub's included, live until Close, not
	// until the caller's ctx ends; values (trace ids) are kept.
	life, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h.cancel = cancel

	h.ps, err = pubsub.NewGossipSub(life, lh,
		// StrictSign: sign what we publish, drop what is unsigned or
		// badly signed. It is pubsub's default; stating it keeps a
		// future default change from weakening the mesh. (The older
		// WithMessageSigning/WithStrictSignatureVerification pair is
		// deprecated in this version and means the same.)
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		// No topic discovery through the DHT: a subscriber always
		// connects to the topic's target to bind, so it needs no other
		// members, and advertising every topic as provider records
		// cost the DHT more than the events themselves.
		//
		// A target publishes its events to every peer it knows in the
		// topic, not to a fanout of six: each subscriber reached it to
		// bind, so a direct send reaches every one, whether or not
		// subscribers know each other. Off by default in this version.
		pubsub.WithFloodPublish(true),
	)
	if err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("mesh: start gossipsub: %w", err)
	}

	if cfg.MDNS {
		if err := h.startMDNS(life); err != nil {
			_ = h.Close()
			return nil, err
		}
	}

	timeout := cfg.BootstrapTimeout
	if timeout <= 0 {
		timeout = DefaultBootstrapTimeout
	}
	h.bootstrap(ctx, timeout)
	if err := ctx.Err(); err != nil {
		// Cancelled during the bootstrap dials: the caller gave up on
		// the start, so it gets no half-joined Host.
		_ = h.Close()
		return nil, fmt.Errorf("mesh: start: %w", err)
	}
	if err := h.dht.Bootstrap(life); err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("mesh: bootstrap DHT: %w", err)
	}
	h.log.Info("mesh started", "peer", lh.ID(), "addrs", lh.Addrs(), "dht", cfg.DHTMode, "mdns", cfg.MDNS)
	return h, nil
}

// libp2pOptions translates cfg into libp2p options. The DHT is created by
// the routing constructor so that the host can find a peer's addresses
// through it when it only knows the peer id.
func (h *Host) libp2pOptions(cfg Config, listen []string, announce []multiaddr.Multiaddr, mode dht.ModeOpt) ([]libp2p.Option, error) {
	low, high, grace := cfg.ConnLow, cfg.ConnHigh, cfg.ConnGrace
	if low <= 0 {
		low = DefaultConnLow
	}
	if high <= 0 {
		high = DefaultConnHigh
	}
	if grace <= 0 {
		grace = DefaultConnGrace
	}
	if high < low {
		return nil, fmt.Errorf("mesh: ConnHigh %d below ConnLow %d", high, low)
	}
	cm, err := connmgr.NewConnManager(low, high, connmgr.WithGracePeriod(grace))
	if err != nil {
		return nil, fmt.Errorf("mesh: connection manager: %w", err)
	}
	// libp2p's default limits, scaled to this machine's memory and file
	// descriptors, with the default per-service limits (identify, ping,
	// relay, autonat) that libp2p would apply if we passed no manager.
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
	if err != nil {
		_ = cm.Close()
		return nil, fmt.Errorf("mesh: resource manager: %w", err)
	}

	dhtOpts := []dht.Option{
		dht.Mode(mode),
		dht.ProtocolPrefix(DHTProtocolPrefix),
	}
	if len(h.boot) > 0 {
		dhtOpts = append(dhtOpts, dht.BootstrapPeers(h.boot...))
	}

	opts := []libp2p.Option{
		libp2p.Identity(cfg.Key),
		libp2p.ListenAddrStrings(listen...),
		libp2p.UserAgent(UserAgent),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Transport(ws.New),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.Routing(func(lh host.Host) (routing.PeerRouting, error) {
			d, err := dht.New(lh, dhtOpts...)
			if err != nil {
				return nil, fmt.Errorf("mesh: start DHT: %w", err)
			}
			// Written once, inside libp2p.New and before any of the
			// host's goroutines (auto-relay among them) start.
			h.dht = d
			return d, nil
		}),
	}
	if len(announce) > 0 {
		opts = append(opts, libp2p.AddrsFactory(func([]multiaddr.Multiaddr) []multiaddr.Multiaddr {
			return announce
		}))
	}
	if cfg.Loopback {
		opts = append(opts, libp2p.DisableRelay())
	} else {
		opts = append(opts,
			libp2p.NATPortMap(),
			// AutoNAT service: tell other peers whether we can dial
			// them back, so peers behind NATs learn they need relays.
			libp2p.EnableNATService(),
			libp2p.EnableHolePunching(),
			libp2p.EnableRelay(),
			// libp2p starts the relay service only while AutoNAT says
			// we are publicly reachable, so passing it always is safe:
			// peers behind NATs never become relays.
			libp2p.EnableRelayService(),
			libp2p.EnableAutoRelayWithPeerSource(h.relayCandidates),
		)
	}
	return opts, nil
}

// relayCandidates feeds auto-relay when the peer finds itself behind a
// NAT: bootstrap peers first (usually public), then the DHT's routing
// table (server-mode peers, which are publicly reachable). Auto-relay
// checks that a candidate really offers the relay protocol.
func (h *Host) relayCandidates(ctx context.Context, num int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo)
	go func() {
		defer close(out)
		seen := make(map[peer.ID]bool)
		candidates := append([]peer.AddrInfo(nil), h.boot...)
		for _, p := range h.dht.RoutingTable().ListPeers() {
			candidates = append(candidates, peer.AddrInfo{ID: p})
		}
		for _, ai := range candidates {
			if num <= 0 || seen[ai.ID] {
				continue
			}
			seen[ai.ID] = true
			if len(ai.Addrs) == 0 {
				// h.dht.Host, not h.host: auto-relay may ask before
				// libp2p.New has returned and h.host is set.
				ai = h.dht.Host().Peerstore().PeerInfo(ai.ID)
				if len(ai.Addrs) == 0 {
					continue
				}
			}
			select {
			case out <- ai:
				num--
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func parseAddrs(ss []string) ([]multiaddr.Multiaddr, error) {
	addrs := make([]multiaddr.Multiaddr, 0, len(ss))
	for _, s := range ss {
		a, err := multiaddr.NewMultiaddr(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

func parseBootstrap(ss []string) ([]peer.AddrInfo, error) {
	addrs, err := parseAddrs(ss)
	if err != nil {
		return nil, fmt.Errorf("mesh: bootstrap address: %w", err)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil {
		return nil, fmt.Errorf("mesh: bootstrap address must end in /p2p/<peer id>: %w", err)
	}
	return infos, nil
}

// bootstrap dials every bootstrap peer concurrently and waits for all the
// dials, each bounded by timeout and all by ctx.
func (h *Host) bootstrap(ctx context.Context, timeout time.Duration) {
	var wg sync.WaitGroup
	for _, ai := range h.boot {
		if ai.ID == h.host.ID() {
			continue // a bootstrap list shared by every peer includes us
		}
		wg.Go(func() {
			dctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			if err := h.host.Connect(dctx, ai); err != nil {
				h.log.Warn("bootstrap peer unreachable", "peer", ai.ID, "addrs", ai.Addrs, "err", err)
				return
			}
			h.log.Debug("bootstrap peer connected", "peer", ai.ID)
		})
	}
	wg.Wait()
}

// ID returns the peer id.
func (h *Host) ID() peer.ID { return h.host.ID() }

// LibP2P returns the underlying libp2p host, for protocols built on it
// (the dispatch stream protocol, gateways). Its Connect and NewStream look
// a peer's addresses up in the DHT when the peerstore has none. Do not
// close it; close the Host.
func (h *Host) LibP2P() host.Host { return h.host }

// DHT returns the mesh's Kademlia DHT (protocol /jstp/kad/1.0.0). Do not
// close it; close the Host.
func (h *Host) DHT() *dht.IpfsDHT { return h.dht }

// PubSub returns the gossipsub router. It stops when the Host closes.
func (h *Host) PubSub() *pubsub.PubSub { return h.ps }

// Addrs returns the addresses others can dial this peer at, each ending in
// /p2p/<peer id> so that it can be handed out as a bootstrap address.
func (h *Host) Addrs() []multiaddr.Multiaddr {
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.host.ID(), Addrs: h.host.Addrs()})
	if err != nil {
		// Only possible with an invalid peer id, which a running host
		// does not have.
		h.log.Error("cannot build own addresses", "err", err)
		return nil
	}
	return addrs
}

// Connect dials the peer (a no-op when already connected). With no
// addresses in ai it looks the peer up in the peerstore, then the DHT.
func (h *Host) Connect(ctx context.Context, ai peer.AddrInfo) error {
	if err := h.host.Connect(ctx, ai); err != nil {
		return fmt.Errorf("mesh: connect to %s: %w", ai.ID, err)
	}
	return nil
}

// Close stops the peer: it cancels the Host's goroutines and gossipsub,
// then closes mDNS, the DHT and the libp2p host, in that order, and waits
// for the goroutines it started. It is idempotent; later calls return the
// first call's result.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		if h.cancel != nil {
			h.cancel()
		}
		var errs []error
		if h.mdns != nil {
			if err := h.mdns.Close(); err != nil {
				errs = append(errs, fmt.Errorf("mesh: close mDNS: %w", err))
			}
		}
		h.wg.Wait()
		if h.dht != nil {
			if err := h.dht.Close(); err != nil {
				errs = append(errs, fmt.Errorf("mesh: close DHT: %w", err))
			}
		}
		if err := h.host.Close(); err != nil {
			errs = append(errs, fmt.Errorf("mesh: close host: %w", err))
		}
		h.closeErr = errors.Join(errs...)
		h.log.Info("mesh stopped", "peer", h.host.ID())
	})
	return h.closeErr
}

// mdnsNotifee hands peers found by mDNS to the Host's dialer. mDNS calls
// HandlePeerFound on a goroutine of its own per peer and does not wait for
// it, so the handler only queues (or drops) and returns at once; the
// dialling happens on goroutines the Host owns and waits for in Close.
type mdnsNotifee struct {
	ctx   context.Context
	found chan peer.AddrInfo
	log   *slog.Logger
}

func (n *mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	select {
	case n.found <- ai:
	case <-n.ctx.Done():
	default:
		// mDNS re-announces peers periodically; a dropped one comes back.
		n.log.Debug("mDNS queue full, peer dropped", "peer", ai.ID)
	}
}

func (h *Host) startMDNS(ctx context.Context) error {
	n := &mdnsNotifee{ctx: ctx, found: make(chan peer.AddrInfo, mdnsQueue), log: h.log}
	svc := mdns.NewMdnsService(h.host, MDNSServiceName, n)
	if err := svc.Start(); err != nil {
		return fmt.Errorf("mesh: start mDNS: %w", err)
	}
	h.mdns = svc
	h.wg.Go(func() { h.dialFound(ctx, n.found) })
	return nil
}

// dialFound dials peers found on the LAN, at most mdnsDialers at a time,
// until ctx ends.
func (h *Host) dialFound(ctx context.Context, found <-chan peer.AddrInfo) {
	sem := make(chan struct{}, mdnsDialers)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		var ai peer.AddrInfo
		select {
		case ai = <-found:
		case <-ctx.Done():
			return
		}
		if ai.ID == h.host.ID() || h.host.Network().Connectedness(ai.ID) == network.Connected {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			dctx, cancel := context.WithTimeout(ctx, mdnsDialTimeout)
			defer cancel()
			if err := h.host.Connect(dctx, ai); err != nil {
				h.log.Debug("LAN peer unreachable", "peer", ai.ID, "err", err)
				return
			}
			h.log.Info("LAN peer connected", "peer", ai.ID)
		})
	}
}
