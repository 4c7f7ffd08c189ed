package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync/atomic"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
	"github.com/jstp-peer/jstp-peer/routing"
)

// PeerConfig configures StartPeer. Zero values take the defaults of the
// parts they configure.
type PeerConfig struct {
	// Host configures the libp2p host (Key is required).
	Host Config
	// Provide are service names this peer announces through the DHT; a
	// dispatch to one of them is processed here.
	Provide []string
	// NoForward makes the peer refuse to be a gateway (502).
	NoForward bool
	// GatewayTCP and GatewayWS are where the classic gateways listen
	// (newline-delimited JSON over TCP; WebSocket). Empty disables one.
	// The CLI defaults them to DefaultGatewayTCP and DefaultGatewayWS.
	GatewayTCP, GatewayWS string
	// QueueLen bounds each peer's outgoing dispatch queue (default 1024).
	QueueLen int
	// Names configures name resolution (cache TTLs, timeouts).
	Names routing.NamesConfig
	// NodeOptions are passed to node.New after the peer's own.
	NodeOptions []node.Option
	// Logger receives every part's logs. Default: slog.Default().
	Logger *slog.Logger
}

// Peer is a running jstp-peer: the libp2p host, the JSTP engine and the
// parts that connect them.
type Peer struct {
	Host      *Host
	Node      *node.Node
	Transport *Transport
	Gossip    *Gossip
	Names     *routing.Names
	Forwarder *Forwarder
	Classic   *ClassicClient
	// Gateways are the classic gateways that listen (TCP first).
	Gateways []*Gateway

	// gwAddrs is what isLocal reads while gateways start.
	gwAddrs atomic.Pointer[[]net.Addr]
}

// StartPeer starts a peer as cfg describes: it joins the mesh, serves
// GET ["peer"], ["subscriptions"], ["peers"] and any method on
// ["echo", ...] (answered with the dispatch it got), and announces the
// names in cfg.Provide. ctx bounds the start only.
func StartPeer(ctx context.Context, cfg PeerConfig) (*Peer, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg.Host.Logger = log
	cfg.Names.Logger = log
	for _, name := range cfg.Provide {
		if err := routing.ValidName(name); err != nil {
			return nil, fmt.Errorf("mesh: --provide %q: %w", name, err)
		}
	}
	h, err := New(ctx, cfg.Host)
	if err != nil {
		return nil, err
	}
	p := &Peer{Host: h}
	p.Names = routing.NewNames(h.DHT(), cfg.Names)
	// The forwarder needs the engine and the engine the forwarder; the
	// relay breaks the cycle for the moment between the two.
	relay := &forwardRelay{}
	opts := []node.Option{
		node.WithID(h.ID().String()),
		node.WithLogger(log),
		node.WithForwarder(relay),
		node.WithDecoder(dispatch.Decoder{Quirks: true}),
		node.WithLocalHost(p.isLocal),
	}
	if cfg.NoForward {
		opts = append(opts, node.WithoutForwarding())
	}
	n, err := node.New(append(opts, cfg.NodeOptions...)...)
	if err != nil {
		p.Names.Close()
		h.Close()
		return nil, err
	}
	p.Node = n
	p.Transport = NewTransport(h.LibP2P(), n, cfg.QueueLen, log)
	p.Gossip = NewGossip(h.PubSub(), p.Transport, n, log)
	p.Classic = NewClassicClient(n, log)
	p.Forwarder = NewForwarder(p.Transport, p.Gossip, p.Names, p.Classic, n, log)
	relay.f = p.Forwarder
	if err := p.serveBuiltins(); err != nil {
		p.Close()
		return nil, err
	}
	for _, gw := range []struct {
		addr   string
		listen func(string, Receiver, *slog.Logger) (*Gateway, error)
	}{{cfg.GatewayTCP, ListenTCP}, {cfg.GatewayWS, ListenWS}} {
		if gw.addr == "" {
			continue
		}
		g, err := gw.listen(gw.addr, n, log)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.Gateways = append(p.Gateways, g)
		addrs := make([]net.Addr, 0, len(p.Gateways))
		for _, g := range p.Gateways {
			addrs = append(addrs, g.Addr())
		}
		p.gwAddrs.Store(&addrs)
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
		return slices.Contains(p.Names.Provided(), h.Name)
	}
	addrs := p.gwAddrs.Load()
	if addrs == nil {
		return false
	}
	for _, a := range *addrs {
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

// forwardRelay lets the engine be built before its forwarder.
type forwardRelay struct{ f node.Forwarder }

func (r *forwardRelay) Forward(ctx context.Context, to dispatch.Host, d *dispatch.Dispatch, from node.Origin) error {
	return r.f.Forward(ctx, to, d, from)
}

func (p *Peer) serveBuiltins() error {
	if err := p.Node.Serve([]string{"peers"}, func(context.Context) (any, error) {
		return p.Host.Peers(), nil
	}); err != nil {
		return err
	}
	_, err := p.Node.Handle(dispatch.Endpoint{Method: "*", Resource: []string{"echo", "..."}}, func(ctx context.Context, in *node.Incoming) (any, error) {
		return json.RawMessage(in.Dispatch.AppendJSON(nil)), nil
	})
	return err
}

// Close stops the peer: the engine first (no new work), then the parts
// that carry dispatches, then the host.
func (p *Peer) Close() error {
	var errs []error
	if p.Node != nil {
		errs = append(errs, p.Node.Close())
	}
	for _, g := range p.Gateways {
		errs = append(errs, g.Close())
	}
	if p.Forwarder != nil {
		errs = append(errs, p.Forwarder.Close())
	}
	if p.Classic != nil {
		errs = append(errs, p.Classic.Close())
	}
	if p.Gossip != nil {
		errs = append(errs, p.Gossip.Close())
	}
	if p.Transport != nil {
		errs = append(errs, p.Transport.Close())
	}
	if p.Names != nil {
		errs = append(errs, p.Names.Close())
	}
	errs = append(errs, p.Host.Close())
	return errors.Join(errs...)
}
