package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Topics publishes and receives bytes on gossipsub topics. It does not
// know what the bytes mean: the engine names the topics and encodes what
// goes on them.
//
// Every message is signed by its author (gossipsub strict signing, see
// New); Subscribe takes the one author whose messages are wanted and drops
// the rest, so a topic cannot be used by others to inject messages.
type Topics struct {
	ps  *pubsub.PubSub
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	topics  map[string]*pubsub.Topic
	watched map[string]*topicMembers

	published, publishFailed, received, refused atomic.Uint64

	// validate, when set, judges every message of every topic before
	// gossipsub delivers it here or passes it on to other peers.
	validate Validator
}

// Validator judges a message of a topic by its author and data. It
// returns whether the message is valid and, if it is, what it decoded, so
// that the subscriptions need not decode the message again.
type Validator func(topic string, author peer.ID, data []byte) (decoded any, ok bool)

// Validate makes every topic joined from now on check its messages with
// v before gossipsub delivers them or forwards them to other peers: a
// peer must not relay what no subscriber would accept. What v decoded
// reaches the subscriptions with the data (gossipsub's ValidatorData);
// every subscription to the topic on this host gets the same value, so
// they must not change it. Set it before the first topic is used.
func (g *Topics) Validate(v Validator) {
	g.mu.Lock()
	g.validate = v
	g.mu.Unlock()
}

// TopicStats counts the gossip messages Topics handled since it started.
type TopicStats struct {
	Published     uint64 `json:"published"`
	PublishFailed uint64 `json:"publishFailed"`
	Received      uint64 `json:"received"`
	// Refused counts messages from an author other than the one a
	// subscription expects.
	Refused uint64 `json:"refused"`
}

// Stats returns the counts.
func (g *Topics) Stats() TopicStats {
	return TopicStats{
		Published:     g.published.Load(),
		PublishFailed: g.publishFailed.Load(),
		Received:      g.received.Load(),
		Refused:       g.refused.Load(),
	}
}

// NewTopics returns Topics on ps.
func NewTopics(ps *pubsub.PubSub, log *slog.Logger) *Topics {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Topics{
		ps:      ps,
		log:     log.With("component", "topics"),
		ctx:     ctx,
		cancel:  cancel,
		topics:  map[string]*pubsub.Topic{},
		watched: map[string]*topicMembers{},
	}
}

// Close cancels every subscription and waits for their readers.
func (g *Topics) Close() error {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.cancel()
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

func (g *Topics) topic(name string) (*pubsub.Topic, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, errors.New("mesh: topics closed")
	}
	if t := g.topics[name]; t != nil {
		return t, nil
	}
	if v := g.validate; v != nil {
		err := g.ps.RegisterTopicValidator(name, func(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
			if decoded, ok := v(name, msg.GetFrom(), msg.Data); ok {
				msg.ValidatorData = decoded
				return pubsub.ValidationAccept
			}
			g.refused.Add(1)
			g.log.Debug("refused a gossip message", "topic", name, "from", from, "author", msg.GetFrom())
			return pubsub.ValidationReject
		})
		if err != nil {
			return nil, fmt.Errorf("mesh: validator for %s: %w", name, err)
		}
	}
	t, err := g.ps.Join(name)
	if err != nil {
		if g.validate != nil {
			g.ps.UnregisterTopicValidator(name)
		}
		return nil, fmt.Errorf("mesh: join topic %s: %w", name, err)
	}
	g.topics[name] = t
	return t, nil
}

// Publish sends data to every peer subscribed to the topic.
func (g *Topics) Publish(ctx context.Context, topic string, data []byte) error {
	t, err := g.topic(topic)
	if err != nil {
		return err
	}
	if err := t.Publish(ctx, data); err != nil {
		g.publishFailed.Add(1)
		return fmt.Errorf("mesh: publish on %s: %w", topic, err)
	}
	g.published.Add(1)
	return nil
}

// Subscribe receives the topic's messages authored by author and hands
// their data, with what the validator decoded of it (nil without one), to
// deliver, one at a time, on a goroutine Topics owns. The returned
// function cancels the subscription; it is safe to call more than once.
func (g *Topics) Subscribe(topic string, author peer.ID, deliver func(data []byte, decoded any)) (cancel func(), err error) {
	return g.subscribe(topic, func(from peer.ID, data []byte, decoded any) {
		if from != author {
			g.refused.Add(1)
			g.log.Info("dropped message from another author", "topic", topic, "author", from)
			return
		}
		deliver(data, decoded)
	})
}

// SubscribeAll receives every author's messages, with the author (whose
// signature gossipsub checked), for topics every peer publishes on.
func (g *Topics) SubscribeAll(topic string, deliver func(author peer.ID, data []byte, decoded any)) (cancel func(), err error) {
	return g.subscribe(topic, deliver)
}

func (g *Topics) subscribe(topic string, deliver func(peer.ID, []byte, any)) (cancel func(), err error) {
	t, err := g.topic(topic)
	if err != nil {
		return nil, err
	}
	// Counted under the lock that Close takes first, so the reader is
	// either refused or waited for.
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil, errors.New("mesh: topics closed")
	}
	g.wg.Add(1)
	g.mu.Unlock()
	sub, err := t.Subscribe()
	if err != nil {
		g.wg.Done()
		return nil, fmt.Errorf("mesh: subscribe to %s: %w", topic, err)
	}
	go g.read(sub, deliver)
	var once sync.Once
	return func() { once.Do(sub.Cancel) }, nil
}

func (g *Topics) read(sub *pubsub.Subscription, deliver func(peer.ID, []byte, any)) {
	defer g.wg.Done()
	defer sub.Cancel()
	for {
		msg, err := sub.Next(g.ctx)
		if err != nil {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, pubsub.ErrSubscriptionCancelled) {
				g.log.Debug("topic read ended", "topic", sub.Topic(), "err", err)
			}
			return
		}
		g.received.Add(1)
		deliver(msg.GetFrom(), msg.Data, msg.ValidatorData)
	}
}

// WaitMember waits until p is subscribed to the topic as far as this peer
// knows, or ctx ends. A publisher uses it before accepting a subscriber,
// so that the first messages reach it. It watches the topic's peer events
// rather than polling the topic's peers, which would queue requests on
// the pubsub event loop that has to process the very announcement awaited.
func (g *Topics) WaitMember(ctx context.Context, topic string, p peer.ID) error {
	m, err := g.members(topic)
	if err != nil {
		return err
	}
	for {
		in, changed := m.has(p)
		if in {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-g.ctx.Done():
			return g.ctx.Err()
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

// members returns the member set of a topic, watching its events from the
// first call on.
func (g *Topics) members(name string) (*topicMembers, error) {
	t, err := g.topic(name)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if m := g.watched[name]; m != nil {
		return m, nil
	}
	if g.closed {
		return nil, errors.New("mesh: topics closed")
	}
	h, err := t.EventHandler()
	if err != nil {
		return nil, fmt.Errorf("mesh: watch topic %s: %w", name, err)
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
