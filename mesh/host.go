package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ws "github.com/libp2p/go-libp2p/p2p/transport/websocket"
	"github.com/multiformats/go-multiaddr"
)

// Host is a running mesh peer: a libp2p host with its DHT, gossipsub and
// discovery. Its methods are safe for concurrent use.
type Host struct {
	host host.Host
	dht  *dht.IpfsDHT
	ps   *pubsub.PubSub
	// drops counts what gossipsub's queues dropped.
	drops *dropCounter
	mdns  mdns.Service
	log   *slog.Logger
	boot  []peer.AddrInfo
	// joining is set once gossipsub is up: until then the DHT must not
	// dial the bootstrap peers (see libp2pOptions).
	joining atomic.Bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup

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

	h.drops = newDropCounter(h.log)
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
		pubsub.WithValidateQueueSize(gossipValidateQueue),
		pubsub.WithPeerOutboundQueueSize(gossipPeerQueue),
		pubsub.WithRawTracer(h.drops),
	)
	if err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("mesh: start gossipsub: %w", err)
	}

	if err := h.watchIdentification(life); err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("mesh: watch identification: %w", err)
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
	h.joining.Store(true)
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
	// The dispatch protocol needs one stream per pair of peers (two while
	// a session is replaced); a peer that opens more is up to something.
	// The protocol as a whole gets room for every connection the
	// connection manager keeps, twice.
	limits.AddProtocolPeerLimit(ProtocolID, rcmgr.BaseLimit{StreamsInbound: 8, StreamsOutbound: 8, Streams: 16}, rcmgr.BaseLimitIncrease{})
	limits.AddProtocolLimit(ProtocolID,
		rcmgr.BaseLimit{StreamsInbound: 2 * DefaultConnHigh, StreamsOutbound: 2 * DefaultConnHigh, Streams: 4 * DefaultConnHigh},
		rcmgr.BaseLimitIncrease{StreamsInbound: 256, StreamsOutbound: 256, Streams: 512})
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(admitConns(limits.AutoScale(), high)))
	if err != nil {
		_ = cm.Close()
		return nil, fmt.Errorf("mesh: resource manager: %w", err)
	}

	dhtOpts := []dht.Option{
		dht.Mode(mode),
		dht.ProtocolPrefix(DHTProtocolPrefix),
	}
	if len(h.boot) > 0 {
		// The DHT dials its bootstrap peers as soon as it is built,
		// inside libp2p.New, before gossipsub has registered its
		// protocols. The bootstrap peer then identifies us without them,
		// and when the identify push that should correct it is lost (a
		// busy bootstrap peer), its gossipsub never learns we speak
		// gossipsub: we are outside every topic there. So the DHT gets
		// the bootstrap peers only once New has built everything else
		// and dials them itself; later, the DHT reaches for them again
		// whenever its routing table empties.
		dhtOpts = append(dhtOpts, dht.BootstrapPeersFunc(func() []peer.AddrInfo {
			if !h.joining.Load() {
				return nil
			}
			return h.boot
		}))
	}

	opts := []libp2p.Option{
		libp2p.Identity(cfg.Key),
		libp2p.ListenAddrStrings(listen...),
		libp2p.UserAgent(UserAgent),
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
	if !cfg.NoDefaultTransports {
		opts = append(opts,
			libp2p.Transport(tcp.NewTCPTransport),
			libp2p.Transport(quic.NewTransport),
			libp2p.Transport(ws.New),
		)
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
	return append(opts, cfg.Options...), nil
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

// GossipDrops returns what gossipsub dropped here because a queue was full.
func (h *Host) GossipDrops() GossipDrops { return h.drops.drops() }

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

// admitConns raises the resource manager's connection limits, where
// libp2p's scaled defaults are lower, so that the peer admits twice the
// connections its connection manager keeps (high): the manager's
// trimming, which keeps the useful connections, is what shapes the peer
// set, not refusals at accept. libp2p's defaults admit 64 inbound
// connections plus 64 per GiB of memory given to the manager (252 on a
// machine with 24 GiB), so a publisher with a thousand subscribers
// refused three quarters of them. Transient connections (those still
// handshaking) get the same room, for subscribers that arrive together.
func admitConns(l rcmgr.ConcreteLimitConfig, high int) rcmgr.ConcreteLimitConfig {
	want := rcmgr.LimitVal(2 * high)
	p := l.ToPartialLimitConfig()
	raise := func(v *rcmgr.LimitVal) {
		if *v != rcmgr.Unlimited && *v < want {
			*v = want
		}
	}
	for _, r := range []*rcmgr.ResourceLimits{&p.System, &p.Transient} {
		raise(&r.ConnsInbound)
		raise(&r.ConnsOutbound)
		raise(&r.Conns)
	}
	// Every new connection is identified both ways at once, and libp2p
	// never identifies a connection again after a failure: the other
	// side's protocols stay unknown, so gossipsub never opens its stream
	// and the peer never joins a topic there. libp2p allows 64 identify
	// streams each way plus 64 per GiB, fewer than a thousand
	// subscribers connecting to one publisher at once open.
	raiseStreams := func(r rcmgr.ResourceLimits) rcmgr.ResourceLimits {
		raise(&r.StreamsInbound)
		raise(&r.StreamsOutbound)
		raise(&r.Streams)
		return r
	}
	if p.Service == nil {
		p.Service = map[string]rcmgr.ResourceLimits{}
	}
	if p.Protocol == nil {
		p.Protocol = map[protocol.ID]rcmgr.ResourceLimits{}
	}
	p.Service[identify.ServiceName] = raiseStreams(p.Service[identify.ServiceName])
	for _, id := range []protocol.ID{identify.ID, identify.IDPush} {
		p.Protocol[id] = raiseStreams(p.Protocol[id])
	}
	return p.Build(l)
}
