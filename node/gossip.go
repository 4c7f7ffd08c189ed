package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/mesh"
	"github.com/jstp-peer/jstp-peer/saturation"
)

// TopicPrefix starts every subscription topic.
const TopicPrefix = "/jstp/0.4/bind/"

// topicPeerWait bounds how long a target waits, before accepting a BIND,
// for the subscriber's topic subscription to reach it; what is published
// before then would be lost to that subscriber, so a BIND whose
// subscriber is not seen by then is refused (503 with retry-after) rather
// than accepted with events missing.
const topicPeerWait = 5 * time.Second

// Topic names the gossipsub topic of an endpoint on a target peer:
// TopicPrefix + target + "/" + a hash of the endpoint. Only the target
// publishes on it, and subscribers drop anything authored by another.
func Topic(target peer.ID, ep dispatch.Endpoint) string {
	b, _ := json.Marshal(dispatch.Endpoint{Method: ep.Method, Resource: ep.Resource})
	sum := sha256.Sum256(b)
	return TopicPrefix + target.String() + "/" + hex.EncodeToString(sum[:16])
}

// gossip maps subscriptions between peers onto gossipsub topics
// (docs/mesh.md): a target publishes each dispatch that matches an
// endpoint once on the endpoint's topic, and every peer with subscribers
// to it receives it there. Only the first local subscriber's BIND and the
// last one's RELEASE reach the target; the others are answered here.
type gossip struct {
	n      *Node // set by New
	topics *mesh.Topics
	self   peer.ID
	log    *slog.Logger
	// drops reads what gossipsub's queues dropped on this peer.
	drops func() mesh.GossipDrops

	mu    sync.Mutex
	sinks map[string]*topicSink
	subs  map[string]*topicSub
	binds map[bindKey]binding
}

// bindKey is one origin's binding to an endpoint of a target peer.
type bindKey struct {
	origin Origin
	target peer.ID
	topic  string
}

type binding struct {
	ep   dispatch.Endpoint
	next *linkOrigin
}

// topicSub is this peer's subscription to a target's topic, shared by
// every local subscriber of that endpoint.
type topicSub struct {
	refs   int
	cancel func()
	// outcome is the code the target answered the topic's first BIND
	// with, 0 until it has; BINDs that come meanwhile wait in waiting
	// for it (join).
	outcome int
	waiting []func(code int)
}

func newGossip(topics *mesh.Topics, self peer.ID, drops func() mesh.GossipDrops, log *slog.Logger) *gossip {
	return &gossip{
		topics: topics,
		self:   self,
		drops:  drops,
		log:    log.With("component", "gossip"),
		sinks:  map[string]*topicSink{},
		subs:   map[string]*topicSub{},
		binds:  map[bindKey]binding{},
	}
}

// sink returns the origin that publishes on this peer's topic for ep.
func (g *gossip) sink(ep dispatch.Endpoint) Origin {
	name := Topic(g.self, ep)
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.sinks[name]
	if s == nil {
		s = &topicSink{g: g, name: name}
		g.sinks[name] = s
	}
	return s
}

// awaitSubscriber holds a peer's BIND until the peer's subscription to the
// topic is known here, so the first events reach it. If it is not known
// within the wait, a BIND that wants an answer is refused with an error
// wrapping dispatch.ErrUnavailable: accepted, its subscriber would believe
// itself bound while the events went past it. The subscribing peer drops
// the topic when its BIND is refused, so a new BIND subscribes, and
// announces, afresh. A BIND without a transaction (a peer binding again
// after its link came back, see targetGone) has nobody to hear a refusal:
// it is accepted after the wait, with a warning, as the best left to do.
func (g *gossip) awaitSubscriber(ctx context.Context, from Origin, ep dispatch.Endpoint, answered bool) error {
	id, ok := peerOf(from)
	if !ok {
		return nil
	}
	name := Topic(g.self, ep)
	wait := g.n.cfg.topicPeerWait
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	err := g.topics.WaitMember(wctx, name, id)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("wait for %s on %s: %w", id, name, ctx.Err())
	case !answered:
		g.n.warn.Warn("subscriber not seen on its topic; events may miss it until it is", "peer", id, "topic", name)
		return nil
	}
	g.n.stats.unseenSubscriber.Add(1)
	g.n.warn.Warn("subscriber not seen on its topic; BIND refused", "peer", id, "topic", name)
	return dispatch.Errorf(dispatch.ErrUnavailable, "%s was not seen subscribed to %s within %v; BIND again", id, name, wait)
}

// forward passes a BIND or RELEASE for a peer on as a topic subscription.
func (g *gossip) forward(ctx context.Context, d *dispatch.Dispatch, rt replyTo, next *linkOrigin, l *ledger) error {
	target, _ := peerOf(next)
	key := bindKey{origin: rt.o, target: target, topic: Topic(target, *d.Endpoint)}
	g.mu.Lock()
	_, bound := g.binds[key]
	g.mu.Unlock()
	if d.Method == dispatch.BIND {
		if bound {
			return g.answerHere(ctx, d, rt, l)
		}
		first, err := g.subscribe(key.topic, target)
		if err != nil {
			return dispatch.Errorf(dispatch.ErrInternal, "subscribe to %s: %v", key.topic, err)
		}
		g.mu.Lock()
		g.binds[key] = binding{ep: *d.Endpoint, next: next}
		g.mu.Unlock()
		if !first {
			if l != nil {
				return g.join(ctx, d, rt, l, key)
			}
			return g.answerHere(ctx, d, rt, l)
		}
		unbind := func() { g.unbind(key) }
		if l != nil {
			// The caller runs it if the send fails, as the answer
			// does if the target refuses; either way the BINDs that
			// joined this one learn how it went.
			l.onRefusal(unbind)
			l.onOutcome(func(code int) { g.settled(key.topic, code) })
			unbind = func() {}
		} else {
			// Nobody will hear whether the target accepted it: later
			// BINDs are answered here, as they were before.
			g.settled(key.topic, 200)
		}
		if err := g.n.sendOn(ctx, next, d, false); err != nil {
			unbind()
			return err
		}
		return nil
	}
	if !bound {
		return dispatch.Errorf(dispatch.ErrUnbound, "nothing bound to %s at %s by %s", d.Endpoint, target, rt.o.ID())
	}
	if !g.unbind(key) {
		return g.answerHere(ctx, d, rt, l)
	}
	return g.n.sendOn(ctx, next, d, false)
}

// answerHere answers a BIND or RELEASE that did not need to reach the
// target.
func (g *gossip) answerHere(ctx context.Context, d *dispatch.Dispatch, rt replyTo, l *ledger) error {
	g.n.abandonLedger(l)
	if txid := d.TransactionID(); txid != "" {
		g.n.reply(ctx, rt, dispatch.NewAnswer(200, txid, "", nil))
	}
	return nil
}

// join answers a BIND for a topic that another BIND subscribed to first
// as the target answered that one, waiting for the answer if it has not
// come yet: answered 200 at once, its origin would believe itself bound
// where the target may yet refuse. If its own deadline passes or its link
// goes first, it is answered that way instead, and its binding goes.
func (g *gossip) join(ctx context.Context, d *dispatch.Dispatch, rt replyTo, l *ledger, key bindKey) error {
	txid := d.TransactionID()
	// resolve runs later, from the first BIND's answer: ctx, this
	// dispatch's, may have ended by then.
	ctx = g.n.ctx
	resolve := func(code int) {
		l.mu.Lock()
		ok := l.t.final("")
		l.mu.Unlock()
		if !ok {
			return // answered already (its deadline, its link)
		}
		if code < 300 {
			g.answerHere(ctx, d, rt, l)
			return
		}
		g.n.abandonLedger(l)
		g.unbind(key)
		l.ended(code) // the origin's mirror goes too
		g.n.reply(ctx, rt, newAnswer(code, txid, "", jsonString(fmt.Sprintf("%s was not bound at %s: the BIND this one waited for was answered %d", d.Endpoint, key.target, code))))
	}
	l.onRefusal(func() { g.unbind(key) })
	g.mu.Lock()
	s := g.subs[key.topic]
	switch {
	case s != nil && s.outcome == 0:
		s.waiting = append(s.waiting, resolve)
		g.mu.Unlock()
	case s != nil:
		code := s.outcome
		g.mu.Unlock()
		resolve(code)
	default:
		g.mu.Unlock()
		resolve(200)
	}
	return nil
}

// settled passes the outcome of a topic's first BIND on to the BINDs
// that joined it.
func (g *gossip) settled(topic string, code int) {
	g.mu.Lock()
	var waiting []func(int)
	if s := g.subs[topic]; s != nil {
		waiting, s.waiting = s.waiting, nil
		s.outcome = code
	}
	g.mu.Unlock()
	for _, w := range waiting {
		w(code)
	}
}

// subscribe joins target's topic (counted) and reports whether this is
// the first subscriber, which must tell the target.
func (g *gossip) subscribe(name string, target peer.ID) (first bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.subs[name]; s != nil {
		s.refs++
		return false, nil
	}
	from := peerNotifier(target.String())
	dec := g.n.cfg.decoder
	cancel, err := g.topics.Subscribe(name, target, func(data []byte, decoded any) {
		// The validator decoded the event already; this peer subscribes
		// to each topic once, so the dispatch is this delivery's alone.
		d, ok := decoded.(*dispatch.Dispatch)
		if !ok {
			var err error
			if d, err = dec.Decode(data); err != nil {
				g.n.stats.rejected.Add(1)
				g.n.warn.Info("dropped undecodable event", "topic", name, "err", err)
				return
			}
		}
		g.n.ReceiveNotification(g.n.ctx, from, d)
	})
	if err != nil {
		return false, err
	}
	g.subs[name] = &topicSub{refs: 1, cancel: cancel}
	return true, nil
}

// unbind forgets one binding, once, and reports whether it was its
// topic's last, after which the target should be sent the RELEASE.
func (g *gossip) unbind(key bindKey) (last bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.binds[key]; !ok {
		return false
	}
	delete(g.binds, key)
	s := g.subs[key.topic]
	if s == nil {
		return false
	}
	s.refs--
	if s.refs > 0 {
		return false
	}
	delete(g.subs, key.topic)
	s.cancel()
	return true
}

// departed releases the remote bindings of an origin that went away: the
// last one of a topic sends the target its RELEASE. When o is the link
// to a target peer, what is bound there is bound again (targetGone).
func (g *gossip) departed(o Origin) {
	if id, ok := peerOf(o); ok && !g.n.closed() {
		defer g.targetGone(id)
	}
	g.mu.Lock()
	gone := map[bindKey]binding{}
	for k, b := range g.binds {
		if k.origin == o {
			gone[k] = b
		}
	}
	g.mu.Unlock()
	for k, b := range gone {
		if g.unbind(k) {
			if err := b.next.Deliver(g.n.ctx, dispatch.NewSubscription(dispatch.RELEASE, b.ep)); err != nil {
				g.log.Debug("could not release departed origin's binding", "target", k.target, "err", err)
			}
		}
	}
}

// rebindMaxWait bounds the wait between two attempts to bind a target's
// topics again after its link went.
const rebindMaxWait = 30 * time.Second

// targetGone binds this peer's subscriptions to target's topics again
// after the link to target went: target released them as it saw this
// peer depart, and the origins bound through here, which were told 200,
// would get no further event. It sends target each topic's BIND over a
// new link (opened as any dispatch opens one), and tries again, waiting
// twice as long each time up to rebindMaxWait, until the BINDs are sent
// or nobody here is bound at target any more. A link that goes again
// starts it again.
func (g *gossip) targetGone(target peer.ID) {
	if len(g.heldAt(target)) == 0 {
		return
	}
	n := g.n
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		t := time.NewTimer(0)
		defer t.Stop()
		for wait := time.Second; ; wait = min(2*wait, rebindMaxWait) {
			select {
			case <-t.C:
			case <-n.ctx.Done():
				return
			}
			eps := g.heldAt(target)
			if len(eps) == 0 {
				return
			}
			err := g.rebind(n.ctx, target, eps)
			if err == nil {
				g.log.Debug("bound again at a peer whose link went", "peer", target, "endpoints", len(eps))
				return
			}
			n.warn.Warn("cannot bind again at a peer whose link went; retrying", "peer", target, "err", err, "retry_in", wait)
			t.Reset(wait)
		}
	}()
}

// heldAt returns the endpoints this peer is bound to at target, by topic.
func (g *gossip) heldAt(target peer.ID) map[string]dispatch.Endpoint {
	g.mu.Lock()
	defer g.mu.Unlock()
	eps := map[string]dispatch.Endpoint{}
	for k, b := range g.binds {
		if k.target == target {
			eps[k.topic] = b.ep
		}
	}
	return eps
}

// rebind sends target a BIND for each endpoint over the link that now
// leads there, and makes that link the one the bindings are released on.
// The BINDs carry no transaction: target accepted them once already.
func (g *gossip) rebind(ctx context.Context, target peer.ID, eps map[string]dispatch.Endpoint) error {
	n := g.n
	rctx, cancel := context.WithTimeout(ctx, n.cfg.answerTimeout)
	defer cancel()
	next, err := n.linkTo(rctx, dispatch.Host{Name: target.String()})
	if err != nil {
		return err
	}
	g.mu.Lock()
	for k, b := range g.binds {
		if k.target == target {
			b.next = next
			g.binds[k] = b
		}
	}
	g.mu.Unlock()
	for _, ep := range eps {
		if err := n.sendOn(rctx, next, dispatch.NewSubscription(dispatch.BIND, ep), false); err != nil {
			return err
		}
	}
	return nil
}

func peerOf(o Origin) (peer.ID, bool) {
	lo, ok := o.(*linkOrigin)
	if !ok || lo.kind != mesh.PeerLink {
		return "", false
	}
	id, err := peer.Decode(lo.l.Remote())
	return id, err == nil
}

// topicSink publishes what a target's subscriptions deliver.
type topicSink struct {
	g    *gossip
	name string
}

func (s *topicSink) ID() string            { return "topic:" + s.name }
func (s *topicSink) Done() <-chan struct{} { return nil }

func (s *topicSink) Deliver(ctx context.Context, d *dispatch.Dispatch) error {
	if d.Kind() == dispatch.Answer || d.Kind() == dispatch.Exception {
		return nil // notifications are not answered; nothing to route
	}
	if err := s.g.topics.Publish(ctx, s.name, d.AppendJSON(nil)); err != nil {
		return dispatch.Errorf(dispatch.ErrInternal, "%v", err)
	}
	return nil
}

// peerNotifier is the origin of notifications from a target peer's topic:
// subscribers see its id, and nothing is sent back to it.
type peerNotifier string

func (p peerNotifier) ID() string                                        { return string(p) }
func (p peerNotifier) Done() <-chan struct{}                             { return nil }
func (p peerNotifier) Deliver(context.Context, *dispatch.Dispatch) error { return nil }

// validGossip judges a gossip message before gossipsub delivers it here
// or forwards it to others, so that no peer relays what no subscriber
// would accept: a saturation report must decode, be fresh and speak for
// its author (and, on a name's topic, provide the name); an event must
// be a valid regular dispatch published by the peer whose topic it is.
// Messages on any other topic are refused. What it decoded (a
// *saturation.Report, a *dispatch.Dispatch) goes to the subscription with
// the message, which then decodes nothing again.
func validGossip(topic string, author peer.ID, data []byte, dec dispatch.Decoder) (any, bool) {
	switch {
	case topic == SaturationTopic || strings.HasPrefix(topic, SaturationTopic+"/"):
		r, err := saturation.DecodeReport(data, time.Now())
		if err != nil || r.Peer != author.String() {
			return nil, false
		}
		if name, ok := strings.CutPrefix(topic, SaturationTopic+"/"); ok && !r.Provides(name) {
			return nil, false
		}
		return r, true
	case strings.HasPrefix(topic, TopicPrefix):
		target, _, _ := strings.Cut(strings.TrimPrefix(topic, TopicPrefix), "/")
		if target != author.String() {
			return nil, false
		}
		d, err := dec.Decode(data)
		if err != nil || d.Kind() != dispatch.Regular {
			return nil, false
		}
		return d, true
	}
	return nil, false
}
