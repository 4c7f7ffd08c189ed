package mesh

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
	"github.com/jstp-peer/jstp-peer/routing"
)

// Classic sends dispatches to classic JSTP engines (TCP, WebSocket).
type Classic interface {
	Forward(ctx context.Context, t routing.Target, d *dispatch.Dispatch) error
}

// Forwarder is the engine's way out to the mesh: it resolves the host
// element a dispatch goes to and sends it there.
type Forwarder struct {
	tr      *Transport
	gossip  *Gossip
	names   *routing.Names
	classic Classic
	self    peer.ID
	recv    Receiver
	log     *slog.Logger
	// Choose picks the replica a name's dispatch goes to first; the
	// others are tried in turn if it cannot be reached. Default: random.
	Choose func(name string, providers []peer.AddrInfo) []peer.AddrInfo

	mu     sync.Mutex
	binds  map[bindKey]dispatch.Endpoint
	origin map[node.Origin]bool // origins watched for departure
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

type bindKey struct {
	origin node.Origin
	target peer.ID
	topic  string
}

// NewForwarder returns a forwarder over the transport, gossip, names and
// classic client (classic may be nil: such hosts are then answered 502).
func NewForwarder(tr *Transport, g *Gossip, names *routing.Names, classic Classic, recv Receiver, log *slog.Logger) *Forwarder {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Forwarder{
		tr: tr, gossip: g, names: names, classic: classic, recv: recv,
		self:   tr.h.ID(),
		log:    log.With("component", "forward"),
		binds:  map[bindKey]dispatch.Endpoint{},
		origin: map[node.Origin]bool{},
		ctx:    ctx,
		cancel: cancel,
		Choose: func(_ string, ps []peer.AddrInfo) []peer.AddrInfo {
			rand.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
			return ps
		},
	}
}

// Close stops the departure watchers.
func (f *Forwarder) Close() error {
	f.cancel()
	f.wg.Wait()
	return nil
}

// Forward implements node.Forwarder.
func (f *Forwarder) Forward(ctx context.Context, to dispatch.Host, d *dispatch.Dispatch, from node.Origin) error {
	t, err := routing.Classify(to)
	if err != nil {
		return err
	}
	switch t.Kind {
	case routing.Classic:
		if f.classic == nil {
			return dispatch.Errorf(dispatch.ErrNotGateway, "no classic transport for %s", t)
		}
		return f.classic.Forward(ctx, t, d)
	case routing.Peer:
		return f.toPeer(ctx, t.Peer, d, from)
	}
	if f.names == nil {
		return dispatch.Errorf(dispatch.ErrNotFound, "cannot resolve %q: no DHT", t.Name)
	}
	providers, err := f.names.Resolve(ctx, t.Name)
	if err != nil {
		return err
	}
	var last error
	for _, p := range f.Choose(t.Name, providers) {
		if err := f.toPeer(ctx, p, d, from); err != nil {
			last = err
			f.log.Info("replica unreachable; trying the next", "name", t.Name, "peer", p.ID, "err", err)
			continue
		}
		return nil
	}
	return dispatch.Errorf(dispatch.ErrNotGateway, "no provider of %q could be reached: %v", t.Name, last)
}

func (f *Forwarder) toPeer(ctx context.Context, ai peer.AddrInfo, d *dispatch.Dispatch, from node.Origin) error {
	if ai.ID == f.self {
		// Ourselves, named by a route the engine could not tell was
		// ours (a multiaddr, a name we provide): take the next step here.
		f.recv.Receive(ctx, from, d)
		return nil
	}
	if err := f.reach(ctx, ai); err != nil {
		return err
	}
	s := f.tr.Session(ai.ID)
	if d.Kind() == dispatch.Subscription {
		return f.subscription(ctx, s, d, from)
	}
	return s.Send(ctx, d)
}

// reach connects to a peer, finding its addresses when none are known.
func (f *Forwarder) reach(ctx context.Context, ai peer.AddrInfo) error {
	if len(ai.Addrs) == 0 && len(f.tr.h.Peerstore().Addrs(ai.ID)) == 0 && f.names != nil {
		found, err := f.names.ResolvePeer(ctx, ai.ID)
		if err != nil {
			return dispatch.Errorf(dispatch.ErrNotFound, "peer %s not found: %v", ai.ID, err)
		}
		ai = found
	}
	if err := f.tr.Connect(ctx, ai); err != nil {
		if errors.Is(err, context.Canceled) {
			return err
		}
		return dispatch.Errorf(dispatch.ErrNotGateway, "peer %s unreachable: %v", ai.ID, err)
	}
	return nil
}

// subscription turns a BIND or RELEASE for a peer into a subscription to
// the peer's topic. Only the first local subscriber's BIND and the last
// one's RELEASE go to the peer; the others are answered here.
func (f *Forwarder) subscription(ctx context.Context, s *Session, d *dispatch.Dispatch, from node.Origin) error {
	key := bindKey{origin: from, target: s.id, topic: Topic(s.id, *d.Endpoint)}
	f.mu.Lock()
	_, bound := f.binds[key]
	f.mu.Unlock()
	switch d.Method {
	case dispatch.BIND:
		if bound {
			return f.answerHere(ctx, from, d)
		}
		first, err := f.gossip.Subscribe(s.id, *d.Endpoint)
		if err != nil {
			return dispatch.Errorf(dispatch.ErrInternal, "subscribe to %s: %v", key.topic, err)
		}
		f.mu.Lock()
		f.binds[key] = *d.Endpoint
		f.mu.Unlock()
		f.watch(from)
		if !first {
			return f.answerHere(ctx, from, d)
		}
		if err := s.Send(ctx, d); err != nil {
			f.unbind(key, *d.Endpoint)
			return err
		}
		return nil
	default:
		if !bound {
			return dispatch.Errorf(dispatch.ErrUnbound, "nothing bound to %s at %s by %s", d.Endpoint, s.id, from.ID())
		}
		if !f.unbind(key, *d.Endpoint) {
			return f.answerHere(ctx, from, d)
		}
		return s.Send(ctx, d)
	}
}

// unbind forgets one binding and reports whether it was the topic's last.
func (f *Forwarder) unbind(key bindKey, ep dispatch.Endpoint) bool {
	f.mu.Lock()
	delete(f.binds, key)
	f.mu.Unlock()
	return f.gossip.Unsubscribe(key.target, ep)
}

func (f *Forwarder) answerHere(ctx context.Context, to node.Origin, d *dispatch.Dispatch) error {
	if txid := d.TransactionID(); txid != "" {
		return to.Deliver(ctx, dispatch.NewAnswer(200, txid, "", nil))
	}
	return nil
}

// watch releases an origin's remote bindings when it goes away: the last
// one of a topic sends the target its RELEASE.
func (f *Forwarder) watch(o node.Origin) {
	done := o.Done()
	if done == nil {
		return
	}
	f.mu.Lock()
	if f.origin[o] {
		f.mu.Unlock()
		return
	}
	f.origin[o] = true
	f.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		select {
		case <-done:
		case <-f.ctx.Done():
			return
		}
		f.mu.Lock()
		delete(f.origin, o)
		gone := map[bindKey]dispatch.Endpoint{}
		for k, ep := range f.binds {
			if k.origin == o {
				gone[k] = ep
			}
		}
		f.mu.Unlock()
		for k, ep := range gone {
			if f.unbind(k, ep) {
				rel := dispatch.NewSubscription(dispatch.RELEASE, ep)
				if err := f.tr.Session(k.target).Deliver(f.ctx, rel); err != nil {
					f.log.Debug("could not release departed origin's binding", "target", k.target, "err", err)
				}
			}
		}
	}()
}
