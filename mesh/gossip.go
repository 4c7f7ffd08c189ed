package mesh

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
)

// TopicPrefix starts every subscription topic.
const TopicPrefix = "/jstp/0.4/bind/"

// topicPeerWait bounds how long a target waits, before accepting a BIND,
// for the subscriber's topic subscription to reach it; what is published
// before then would be lost to that subscriber.
const topicPeerWait = 5 * time.Second

// Topic names the gossipsub topic of an endpoint on a target peer:
// TopicPrefix + target + "/" + a hash of the endpoint. Only the target
// publishes on it, and subscribers drop anything authored by another.
func Topic(target peer.ID, ep dispatch.Endpoint) string {
	b, _ := json.Marshal(dispatch.Endpoint{Method: ep.Method, Resource: ep.Resource})
	sum := sha256.Sum256(b)
	return TopicPrefix + target.String() + "/" + hex.EncodeToString(sum[:16])
}

// Gossip maps subscriptions onto gossipsub: a target publishes each
// dispatch that matches an endpoint once on the endpoint's topic, and
// every peer with subscribers to it receives it there.
type Gossip struct {
	ps   *pubsub.PubSub
	self peer.ID
	recv Receiver
	tr   *Transport
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	topics  map[string]*pubsub.Topic
	sinks   map[string]*topicSink
	subs    map[string]*topicSub
	watched map[string]*topicMembers
}

// NewGossip wires gossip into a transport: BINDs from peers get topic
// sinks, and the target waits for the subscriber's topic membership.
func NewGossip(ps *pubsub.PubSub, tr *Transport, recv Receiver, log *slog.Logger) *Gossip {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gossip{
		ps: ps, self: tr.h.ID(), recv: recv, tr: tr,
		log:     log.With("component", "gossip"),
		ctx:     ctx,
		cancel:  cancel,
		topics:  map[string]*pubsub.Topic{},
		sinks:   map[string]*topicSink{},
		subs:    map[string]*topicSub{},
		watched: map[string]*topicMembers{},
	}
	tr.sink = g.sink
	tr.beforeBind = g.awaitSubscriber
	return g
}

// Close stops every subscription reader.
func (g *Gossip) Close() error {
	g.cancel()
	g.mu.Lock()
	for _, s := range g.subs {
		s.sub.Cancel()
	}
	g.mu.Unlock()
	// Topics close only after every reader and event handler is gone:
	// pubsub does not guard closing a topic against a handler cancelling.
	g.wg.Wait()
	g.mu.Lock()
	for _, t := range g.topics {
		t.Close()
	}
	g.mu.Unlock()
	return nil
}

func (g *Gossip) topic(name string) (*pubsub.Topic, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t := g.topics[name]; t != nil {
		return t, nil
	}
	t, err := g.ps.Join(name)
	if err != nil {
		return nil, err
	}
	g.topics[name] = t
	return t, nil
}

// awaitSubscriber holds a peer's BIND until the peer's subscription to
// the topic is known here, so the first events reach it. It waits on the
// topic's peer events: polling the topic's peers would queue requests on
// the pubsub event loop that has to process the very announcement
// awaited.
func (g *Gossip) awaitSubscriber(ctx context.Context, s *Session, d *dispatch.Dispatch) {
	name := Topic(g.self, *d.Endpoint)
	m, err := g.members(name)
	if err != nil {
		return
	}
	deadline := time.NewTimer(topicPeerWait)
	defer deadline.Stop()
	for {
		in, changed := m.has(s.id)
		if in {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			g.log.Warn("subscriber not seen on its topic; events may miss it until it is", "peer", s.id, "topic", name)
			return
		case <-ctx.Done():
			return
		}
	}
}

// topicMembers tracks the peers subscribed to a topic from its events.
type topicMembers struct {
	mu      sync.Mutex
	peers   map[peer.ID]bool
	changed chan struct{} // closed and replaced on every change
}

func (m *topicMembers) has(id peer.ID) (bool, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.peers[id], m.changed
}

func (m *topicMembers) set(id peer.ID, in bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if in {
		m.peers[id] = true
	} else {
		delete(m.peers, id)
	}
	close(m.changed)
	m.changed = make(chan struct{})
}

// members returns the member set of a topic this peer publishes on,
// watching its events from the first call on.
func (g *Gossip) members(name string) (*topicMembers, error) {
	t, err := g.topic(name)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if m := g.watched[name]; m != nil {
		return m, nil
	}
	h, err := t.EventHandler()
	if err != nil {
		return nil, err
	}
	m := &topicMembers{peers: map[peer.ID]bool{}, changed: make(chan struct{})}
	g.watched[name] = m
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer h.Cancel()
		for {
			ev, err := h.NextPeerEvent(g.ctx)
			if err != nil {
				return
			}
			m.set(ev.Peer, ev.Type == pubsub.PeerJoin)
		}
	}()
	return m, nil
}

// topicSink publishes what a target's subscriptions deliver.
type topicSink struct {
	g    *Gossip
	name string
}

func (g *Gossip) sink(ep dispatch.Endpoint) node.Origin {
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

func (s *topicSink) ID() string            { return "topic:" + s.name }
func (s *topicSink) Done() <-chan struct{} { return nil }

func (s *topicSink) Deliver(ctx context.Context, d *dispatch.Dispatch) error {
	if d.Kind() == dispatch.Answer || d.Kind() == dispatch.Exception {
		return nil // notifications are not answered; nothing to route
	}
	t, err := s.g.topic(s.name)
	if err != nil {
		return dispatch.Errorf(dispatch.ErrInternal, "join topic: %v", err)
	}
	return t.Publish(ctx, d.AppendJSON(nil))
}

// topicSub is this peer's subscription to a target's topic, shared by
// every local subscriber of that endpoint.
type topicSub struct {
	sub    *pubsub.Subscription
	target peer.ID
	refs   int
}

// Subscribe subscribes this peer to target's endpoint topic (counted:
// every call needs an Unsubscribe) and reports whether this is the first
// subscriber, which must tell the target.
func (g *Gossip) Subscribe(target peer.ID, ep dispatch.Endpoint) (first bool, err error) {
	name := Topic(target, ep)
	t, err := g.topic(name)
	if err != nil {
		return false, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.subs[name]; s != nil {
		s.refs++
		return false, nil
	}
	sub, err := t.Subscribe()
	if err != nil {
		return false, err
	}
	ts := &topicSub{sub: sub, target: target, refs: 1}
	g.subs[name] = ts
	g.wg.Add(1)
	go g.read(ts)
	return true, nil
}

// Unsubscribe drops one reference and reports whether it was the last,
// after which the target should be sent the RELEASE.
func (g *Gossip) Unsubscribe(target peer.ID, ep dispatch.Endpoint) (last bool) {
	name := Topic(target, ep)
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.subs[name]
	if s == nil {
		return false
	}
	s.refs--
	if s.refs > 0 {
		return false
	}
	delete(g.subs, name)
	s.sub.Cancel()
	return true
}

// read delivers a topic's messages to this engine's subscribers.
func (g *Gossip) read(ts *topicSub) {
	defer g.wg.Done()
	from := g.tr.Session(ts.target)
	dec := g.recv.Decoder()
	for {
		msg, err := ts.sub.Next(g.ctx)
		if err != nil {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, pubsub.ErrSubscriptionCancelled) {
				g.log.Debug("topic read ended", "topic", ts.sub.Topic(), "err", err)
			}
			return
		}
		// Messages are signed by their author (strict signature
		// verification); only the target may publish its events.
		if msg.GetFrom() != ts.target {
			g.log.Info("dropped event not published by the topic's target", "topic", ts.sub.Topic(), "author", msg.GetFrom())
			continue
		}
		d, err := dec.Decode(msg.Data)
		if err != nil {
			g.log.Info("dropped undecodable event", "topic", ts.sub.Topic(), "err", err)
			continue
		}
		g.recv.ReceiveNotification(g.ctx, from, d)
	}
}
