package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/identity"
	"github.com/jstp-peer/jstp-peer/mesh"
	"github.com/jstp-peer/jstp-peer/routing"
	"github.com/jstp-peer/jstp-peer/saturation"
	"github.com/libp2p/go-libp2p/core/peer"
)

// PeerConfig configures Start. Zero values take the defaults of the parts
// they configure.
type PeerConfig struct {
	// Mesh configures the libp2p host (Key is required).
	Mesh mesh.Config
	// Provide are service names this peer announces through the DHT; a
	// dispatch to one of them is processed here.
	Provide []string
	// NoForward makes the peer refuse to be a gateway (502).
	NoForward bool
	// SignAll makes the peer sign every dispatch it sends to another
	// peer, not only those that cross gateways (WithSignAll).
	SignAll bool
	// GatewayTCP and GatewayWS are where the classic gateways listen
	// (newline-delimited JSON over TCP; WebSocket). Empty disables one.
	// The CLI defaults them to mesh.DefaultGatewayTCP and
	// mesh.DefaultGatewayWS.
	GatewayTCP, GatewayWS string
	// GatewayOrigins are the web origins whose pages may use the
	// WebSocket gateway (mesh.GatewayConfig.OriginPatterns). Default: none
	// but the gateway's own host.
	GatewayOrigins []string
	// QueueLen bounds each link's outgoing queue, in frames (default
	// mesh.DefaultQueueLen).
	QueueLen int
	// Names configures name resolution (cache TTLs, timeouts).
	Names routing.NamesConfig
	// Chooser orders the replicas of a service name (default
	// routing.HotCold over this peer's signals: saturation reports,
	// requests in flight and answer latency per replica).
	Chooser routing.Chooser
	// Balance names the replica policy (routing.PolicyNames) used when
	// Chooser is nil. Default: routing.DefaultPolicy.
	Balance string
	// DataDir is the peer's data directory; the saturation reports
	// measure the free space of its filesystem. Default: the system's
	// temporary directory.
	DataDir string
	// Saturation configures the peer's saturation reports.
	Saturation SaturationConfig
	// Options are passed to New after the peer's own.
	Options []Option
	// LinkRate bounds the dispatches per second read from one link
	// (WithLinkRate; default: none).
	LinkRate int
	// Access are the access rules the peer starts with (nil: allow all);
	// Node.SetAccessRules replaces them while it runs.
	Access *AccessRules
	// Recent, when positive, makes the peer remember that many of the
	// dispatches it receives, for GET ["dispatches"] (Node.KeepRecent).
	Recent int
	// Setup, if set, registers the application's handlers and bindings
	// on the built peer before it lets anything in and before its first
	// saturation report: a handler registered after Start may miss the
	// first dispatches, and a binding the first level change. An error
	// stops the start.
	Setup func(*Peer) error
	// Logger receives every part's logs. Default: slog.Default().
	Logger *slog.Logger
}

// Peer is a running jstp-peer: the engine and the mesh parts it is
// composed of. The fields are the parts, for inspection; the peer owns
// them, and Close stops them all.
type Peer struct {
	Node     *Node
	Host     *mesh.Host
	Names    *routing.Names
	Gateways []*mesh.Gateway // TCP first, as configured

	router  *routing.Router
	streams *mesh.Streams
	topics  *mesh.Topics
	dialer  *mesh.Dialer
	sat     *peerSaturation
	// tap, set by tests in Setup, wraps the engine as the streams'
	// ingress to see the frames other peers send.
	tap     func(mesh.Ingress) mesh.Ingress
	gwAddrs []net.Addr
}

// Start starts a peer as cfg describes: it joins the mesh, serves
// GET ["peer"], ["subscriptions"], ["peers"], ["saturation"], PUT
// ["saturation", "metrics", NAME] and any method on ["echo", ...]
// (answered with the dispatch it got), publishes its saturation reports,
// and announces the names in cfg.Provide. ctx bounds the start only.
//
// The parts are built and wired first, and started once every one of them
// is complete, so nothing that arrives early meets a half-built peer.
func Start(ctx context.Context, cfg PeerConfig) (*Peer, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg.Mesh.Logger = log
	cfg.Names.Logger = log
	for _, name := range cfg.Provide {
		if err := routing.ValidName(name); err != nil {
			return nil, fmt.Errorf("node: provide %q: %w", name, err)
		}
	}
	if _, err := routing.Policy(cfg.Balance, nil); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	h, err := mesh.New(ctx, cfg.Mesh)
	if err != nil {
		return nil, err
	}
	p := &Peer{Host: h}
	p.Names = routing.NewNames(h.DHT(), cfg.Names)
	chooser := cfg.Chooser
	if chooser == nil {
		chooser, _ = routing.Policy(cfg.Balance, p) // checked above
	}
	p.router = routing.NewRouter(p.Names, chooser)
	dec := dispatch.Decoder{Quirks: true}
	p.streams = mesh.NewStreams(h.LibP2P(), cfg.QueueLen, dec.MaxSize, log)
	p.topics = mesh.NewTopics(h.PubSub(), log)
	gwCfg := mesh.GatewayConfig{QueueLen: cfg.QueueLen, MaxFrame: dec.MaxSize, Logger: log, OriginPatterns: cfg.GatewayOrigins}
	for _, gw := range []struct{ network, addr string }{{"tcp", cfg.GatewayTCP}, {"ws", cfg.GatewayWS}} {
		if gw.addr == "" {
			continue
		}
		g, err := mesh.ListenGateway(gw.network, gw.addr, gwCfg)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.Gateways = append(p.Gateways, g)
		p.gwAddrs = append(p.gwAddrs, g.Addr())
	}
	opts := []Option{
		WithID(h.ID().String()),
		WithLogger(log),
		WithForwarder(p),
		WithDecoder(dec),
		WithLocalHost(p.isLocal),
		WithIdentity(cfg.Mesh.Key),
		withGossip(newGossip(p.topics, h.ID(), h.GossipDrops, log)),
	}
	if cfg.NoForward {
		opts = append(opts, WithoutForwarding())
	}
	if cfg.SignAll {
		opts = append(opts, WithSignAll())
	}
	if cfg.LinkRate > 0 {
		opts = append(opts, WithLinkRate(cfg.LinkRate))
	}
	sk, record, err := sealingKeyOf(cfg)
	if err != nil {
		p.Close()
		return nil, err
	}
	opts = append(opts, WithSealing(sk, record))
	n, err := New(append(opts, cfg.Options...)...)
	if err != nil {
		p.Close()
		return nil, err
	}
	p.Node = n
	// Events are validated with the engine's own decoder: what the
	// validator decodes is what the engine receives (validGossip).
	p.topics.Validate(func(topic string, author peer.ID, data []byte) (any, bool) {
		return validGossip(topic, author, data, n.cfg.decoder)
	})
	n.SetAccessRules(cfg.Access)
	if err := n.KeepRecent(cfg.Recent); err != nil {
		p.Close()
		return nil, err
	}
	p.dialer = mesh.NewDialer(n, gwCfg)
	if err := p.serveBuiltins(); err != nil {
		p.Close()
		return nil, err
	}
	if err := p.serveOperator(); err != nil {
		p.Close()
		return nil, err
	}
	if p.sat, err = newPeerSaturation(ctx, p, cfg.Saturation, cfg.DataDir, cfg.Provide, log); err != nil {
		p.Close()
		return nil, err
	}
	if err := p.sat.serve(n); err != nil {
		p.Close()
		return nil, err
	}
	if cfg.Setup != nil {
		if err := cfg.Setup(p); err != nil {
			p.Close()
			return nil, fmt.Errorf("node: setup: %w", err)
		}
	}
	// Everything is wired: let dispatches in.
	var in mesh.Ingress = n
	if p.tap != nil {
		in = p.tap(n)
	}
	p.streams.Start(in)
	for _, g := range p.Gateways {
		g.Start(n)
	}
	if err := p.sat.start(); err != nil {
		p.Close()
		return nil, err
	}
	for _, name := range cfg.Provide {
		// Announcing walks the DHT and may fail while the peer is alone;
		// Names retries in the background, so the start does not wait.
		if err := p.Names.Provide(ctx, name); err != nil {
			log.Info("name announcement will be retried", "name", name, "err", err)
		}
	}
	return p, nil
}

// isLocal recognises the host elements that name this peer besides its
// id: the names it provides, and its own gateways' addresses (a classic
// engine told to reach us at [host, port] must not be sent to ourselves).
func (p *Peer) isLocal(h dispatch.Host) bool {
	if !h.IsTuple() {
		return p.Names.Provides(h.Name)
	}
	for _, a := range p.gwAddrs {
		ta, ok := a.(*net.TCPAddr)
		if !ok || ta.Port != h.Port {
			continue
		}
		if ta.IP.IsUnspecified() || isLoopbackName(h.Name) || h.Name == ta.IP.String() {
			return true
		}
	}
	return false
}

func isLoopbackName(name string) bool {
	if name == "localhost" {
		return true
	}
	ip := net.ParseIP(name)
	return ip != nil && ip.IsLoopback()
}

func (p *Peer) serveBuiltins() error {
	if err := p.Node.Serve([]string{"peers"}, func(context.Context) (any, error) {
		return p.Host.Peers(), nil
	}); err != nil {
		return err
	}
	_, err := p.Node.Handle(dispatch.Endpoint{Method: "*", Resource: []string{"echo", "..."}}, func(ctx context.Context, in *Incoming) (any, error) {
		return json.RawMessage(in.Dispatch.AppendJSON(nil)), nil
	}, Inline())
	return err
}

// Close stops the peer: the gateways and streams first (nothing new comes
// in), then the engine, the parts that carry dispatches, and the host.
func (p *Peer) Close() error {
	var errs []error
	for _, g := range p.Gateways {
		errs = append(errs, g.Close())
	}
	if p.streams != nil {
		errs = append(errs, p.streams.Close())
	}
	if p.dialer != nil {
		errs = append(errs, p.dialer.Close())
	}
	if p.sat != nil {
		p.sat.close()
	}
	if p.Node != nil {
		errs = append(errs, p.Node.Close())
	}
	if p.topics != nil {
		errs = append(errs, p.topics.Close())
	}
	if p.Names != nil {
		errs = append(errs, p.Names.Close())
	}
	errs = append(errs, p.Host.Close())
	return errors.Join(errs...)
}

// Replica implements routing.Signals: what this peer knows of another as a
// replica of a name. Its requests in flight are the larger of this peer's
// own requests waiting for it and the count it last gave (on an answer,
// or else in its report): the replica's count includes this peer's, and
// adding the two would count them twice.
func (p *Peer) Replica(id peer.ID) routing.Replica {
	var r routing.Replica
	piggybacked := false
	if s, ok := p.streams.Open(id); ok {
		if lo, ok := p.Node.linkOf(s); ok {
			r.InFlight = lo.outstanding.Load()
			r.Latency = time.Duration(lo.latency.Load())
			if rif, ok := lo.remoteInFlight(); ok {
				r.InFlight = max(r.InFlight, rif)
				piggybacked = true
			}
		}
	}
	if p.sat != nil {
		if e, ok := p.sat.table.Get(id.String()); ok {
			r.Reported = true
			r.Critical = e.Report.Level == saturation.LevelCritical
			r.Headroom = e.Report.Headroom
			r.Capacity = e.Report.Capacity
			if !piggybacked {
				r.InFlight = max(r.InFlight, e.Report.InFlight)
			}
		}
	}
	return r
}

// sealingKeyOf loads the peer's sealing key from its data directory
// (creating it the first time), or makes one for this run when it has
// none, and the record its identity key signs for it.
func sealingKeyOf(cfg PeerConfig) (*identity.SealingKey, []byte, error) {
	var sk *identity.SealingKey
	var err error
	if cfg.DataDir != "" {
		sk, err = identity.LoadOrCreateSealingKey(cfg.DataDir)
	} else {
		sk, err = identity.GenerateSealingKey()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("node: %w", err)
	}
	record, err := identity.NewKeyRecord(cfg.Mesh.Key, sk)
	if err != nil {
		return nil, nil, fmt.Errorf("node: %w", err)
	}
	return sk, record, nil
}
