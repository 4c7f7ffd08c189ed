package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jstp-peer/jstp-peer/internal/ratelog"
	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/google/uuid"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/identity"
)

// ErrClosed is returned by every method of a closed Node.
var ErrClosed = errors.New("node closed")

// Handler processes a dispatch that matched its endpoint and returns the
// answer's body (marshalled with encoding/json; json.RawMessage is used
// as it is; a Reply sets the code). A non-nil error answers with the code
// dispatch.Code gives it and the error text as the body. The answer is
// sent only when the dispatch wanted one.
//
// Handlers run on the subscription's workers: concurrently with other
// subscriptions, and with themselves when the subscription has more than
// one worker. ctx ends when the engine closes or the answer deadline
// passes. in and in.Dispatch are shared with no one else but must not be
// kept after the handler returns.
type Handler func(ctx context.Context, in *Incoming) (any, error)

// Reply lets a Handler answer with a code other than 200.
type Reply struct {
	Code int
	Body any
}

// Incoming is what a subscription receives.
type Incoming struct {
	// Dispatch is the subscriber's copy; when an answer is wanted its
	// token is [transaction id, triggering id].
	Dispatch *dispatch.Dispatch
	// Params holds the pattern's :name captures (nil when none).
	Params map[string]string
	// From is the id of the origin that sent the dispatch.
	From string
	// Author is the peer that wrote the dispatch: its verified signer, or
	// else the peer at the other end of the link it came on, or this
	// peer for its own application and gateway clients.
	Author string

	origin Origin
}

// Local reports whether the dispatch comes from this machine: the
// application through the Go API, or a client of one of this peer's
// gateways connected over loopback. Resources that act on the machine or
// on the peer itself (its connections, its names, its load) serve only
// local dispatches; see LocalOnly.
func (in *Incoming) Local() bool { return in.origin == nil || fromThisMachine(in.origin) }

// Node is a JSTP engine. Its methods are safe for concurrent use.
type Node struct {
	cfg     config
	log     *slog.Logger
	warn    *ratelog.Logger
	local   localOrigin
	subs    *table
	routes  *routeTable
	gossip  *gossip // nil for an engine that is not on a mesh
	started time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	nextSub atomic.Uint64
	links   sync.Map // mesh.Link → *linkOrigin, for the links dispatches are passed on to

	txs *txTable // this engine's Requests

	replay  *identity.ReplayGuard // signed dispatches seen
	retries retryBudget
	access  atomic.Pointer[AccessRules]
	recent  atomic.Pointer[recentRing]
	sealing *sealing // nil without a sealing key

	omu     sync.Mutex
	origins map[Origin]struct{} // origins watched for departure

	hooks atomic.Int64 // hook deliveries suppressed by the loop guard
	busy  atomic.Int64 // deliveries queued or running: requests in flight
	stats counters
}

// InFlight returns how many deliveries to subscriptions are queued or
// running here: the peer's requests in flight, which its saturation
// reports carry.
func (n *Node) InFlight() int64 { return n.busy.Load() }

// New returns a running engine. Defaults: a random id, slog.Default(),
// 10 s answer timeout, 1024-dispatch subscription queues, 256 dispatches
// in flight per link, no forwarder (dispatches for other hosts are
// answered 502), strict decoding with a 1 MiB limit. It serves
// GET ["peer"] (with the engine's counts) and GET ["subscriptions"].
func New(opts ...Option) (*Node, error) {
	cfg := config{
		answerTimeout: DefaultAnswerTimeout,
		queueLen:      DefaultQueueLen,
		linkInflight:  DefaultLinkInflight,
		maxHops:       DefaultMaxHops,
		topicPeerWait: topicPeerWait,
		localNames:    map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true, "[::1]": true, "local": true},
		now:           time.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.id == "" {
		cfg.id = uuid.NewString()
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if cfg.answerTimeout <= 0 {
		return nil, fmt.Errorf("node: answer timeout must be positive, got %v", cfg.answerTimeout)
	}
	if cfg.queueLen <= 0 {
		return nil, fmt.Errorf("node: queue length must be positive, got %d", cfg.queueLen)
	}
	if cfg.linkInflight <= 0 {
		return nil, fmt.Errorf("node: dispatches in flight per link must be positive, got %d", cfg.linkInflight)
	}
	if cfg.key != nil && cfg.key.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("node: dispatches are signed with Ed25519 identity keys; this one is %s", cfg.key.Type())
	}
	cfg.localNames[string(appendLower(nil, cfg.id))] = true
	ctx, cancel := context.WithCancel(context.Background())
	log := cfg.logger.With("component", "node")
	n := &Node{
		cfg:     cfg,
		log:     log,
		warn:    ratelog.New(log, ratelog.DefaultInterval),
		subs:    newTable(),
		routes:  newRouteTable(2*cfg.answerTimeout, cfg.now),
		gossip:  cfg.gossip,
		started: cfg.now(),
		ctx:     ctx,
		cancel:  cancel,
		origins: map[Origin]struct{}{},
	}
	n.replay = identity.NewReplayGuard(identity.WithClock(cfg.now))
	n.retries.tokens = retryReserve
	var err error
	if n.sealing, err = newSealing(cfg); err != nil {
		cancel()
		return nil, err
	}
	n.txs = newTxTable(&n.wg, ctx.Done(), &n.stats)
	n.local = localOrigin{n}
	if n.gossip != nil {
		n.gossip.n = n
	}
	if err := n.registerBuiltins(); err != nil {
		cancel()
		return nil, err
	}
	return n, nil
}

// ID returns the engine's id.
func (n *Node) ID() string { return n.cfg.id }

// Close stops every goroutine the engine started and fails pending
// Requests (their streams end). It is idempotent.
func (n *Node) Close() error {
	n.once.Do(func() {
		n.cancel()
		n.txs.closeAll()
		n.wg.Wait()
	})
	return nil
}

func (n *Node) closed() bool { return n.ctx.Err() != nil }

// Handle binds a handler to ep; its return value answers every dispatch
// that wants an answer. Handlers get up to 16 dispatches at once.
func (n *Node) Handle(ep dispatch.Endpoint, h Handler, opts ...HandleOption) (*Subscription, error) {
	return n.subscribe(ep, n.local, h, DefaultHandlerWorkers, false, opts...)
}

// MaxSubscriptionsPerOrigin bounds the subscriptions one origin (a
// peer, a gateway client) may hold on an engine: each holds a queue, and
// an outsider must not be able to bind its way through the peer's
// memory. Beyond it, BIND is answered 403.
const MaxSubscriptionsPerOrigin = 256

// HandleOption configures a Handle subscription.
type HandleOption func(*subscription)

// Inline runs the handler on the goroutine that received the dispatch —
// a link's read loop, the caller of Send or Request — instead of handing
// it to a worker, while it answers in under 50 µs on average. Handing a
// dispatch over to another goroutine costs a wake-up that is most of a
// fast handler's round trip. Use it for handlers that answer from memory
// and never wait: one that waits on a dispatch arriving on the same link
// would stall that link until its deadline. A handler that turns slow is
// sent back to the workers by its average.
func Inline() HandleOption { return func(s *subscription) { s.inline = true } }

// QueueLen bounds the handler's queue at n dispatches instead of the
// engine's (WithQueueLen); beyond it, dispatches are answered 503.
func QueueLen(n int) HandleOption {
	return func(s *subscription) {
		if n > 0 {
			s.queueLen = n
		}
	}
}

// BuiltinQueueLen is the queue of the engine's and the peer's own
// resources (["peer"], ["saturation"], the operator's): they answer from
// memory, so a long queue in front of them would only hide a flood.
const BuiltinQueueLen = 64

// LocalOnly answers 403 to dispatches that do not come from this machine
// (Incoming.Local) instead of running the handler: for resources through
// which an outsider could use the peer against its own machine.
func LocalOnly() HandleOption {
	return func(s *subscription) {
		h := s.handler
		s.handler = func(ctx context.Context, in *Incoming) (any, error) {
			if !in.Local() {
				return nil, dispatch.Errorf(dispatch.ErrForbidden, "%s is served to clients on this machine only", strings.Join(in.Dispatch.ResourceText(), "/"))
			}
			return h(ctx, in)
		}
	}
}

// Bind binds an observer to ep. It receives matching dispatches one at a
// time, in order; when an answer is wanted it answers 200 once fn returns.
func (n *Node) Bind(ep dispatch.Endpoint, fn func(ctx context.Context, in *Incoming)) (*Subscription, error) {
	return n.subscribe(ep, n.local, func(ctx context.Context, in *Incoming) (any, error) {
		fn(ctx, in)
		return nil, nil
	}, 1, false)
}

// Release removes a subscription made with Handle or Bind. Releasing one
// twice fails with dispatch.ErrUnbound (406).
func (n *Node) Release(s *Subscription) error {
	if s == nil || s.s == nil || !n.unsubscribe(s.s) {
		return dispatch.Errorf(dispatch.ErrUnbound, "subscription is not bound")
	}
	return nil
}

// Subscription is a handle on a binding.
type Subscription struct{ s *subscription }

// Endpoint returns the bound endpoint.
func (s *Subscription) Endpoint() dispatch.Endpoint { return s.s.ep.Endpoint }

// Dropped counts dispatches dropped because the queue was full.
func (s *Subscription) Dropped() uint64 { return s.s.dropped.Load() }

func (n *Node) subscribe(ep dispatch.Endpoint, owner Origin, h Handler, workers int, mirror bool, opts ...HandleOption) (*Subscription, error) {
	if n.closed() {
		return nil, ErrClosed
	}
	c, err := dispatch.CompileEndpoint(ep)
	if err != nil {
		return nil, err
	}
	s := &subscription{
		id:       n.nextSub.Add(1),
		ep:       c,
		owner:    owner,
		handler:  h,
		max:      workers,
		mirror:   mirror,
		queueLen: n.cfg.queueLen,
	}
	// Options apply before the subscription is in the table: a dispatch
	// may reach it the moment it is.
	for _, o := range opts {
		o(s)
	}
	s.queue.limit = s.queueLen
	if owner == Origin(n.local) {
		n.subs.add(s)
		return &Subscription{s}, nil
	}
	if !n.subs.addLimited(s, MaxSubscriptionsPerOrigin) {
		n.stats.forbidden.Add(1)
		n.warn.Warn("refused a subscription over the limit", "owner", owner.ID(), "limit", MaxSubscriptionsPerOrigin)
		return nil, dispatch.Errorf(dispatch.ErrForbidden, "%s has %d subscriptions here, the limit", owner.ID(), MaxSubscriptionsPerOrigin)
	}
	n.watch(owner)
	return &Subscription{s}, nil
}

func (n *Node) unsubscribe(s *subscription) bool {
	if !s.released.CompareAndSwap(false, true) {
		return false
	}
	return n.subs.remove(s)
}

// watch releases what an origin leaves behind when it goes away: its
// subscriptions (as if it had sent RELEASEs, hooks included), its
// bindings on other peers, and the routes of answers to or from it.
func (n *Node) watch(o Origin) {
	done := o.Done()
	if done == nil {
		return
	}
	n.omu.Lock()
	if _, ok := n.origins[o]; ok || n.closed() {
		n.omu.Unlock()
		return
	}
	n.origins[o] = struct{}{}
	n.wg.Add(1)
	n.omu.Unlock()
	go func() {
		defer n.wg.Done()
		select {
		case <-done:
		case <-n.ctx.Done():
			return
		}
		n.omu.Lock()
		delete(n.origins, o)
		n.omu.Unlock()
		if lo, ok := o.(*linkOrigin); ok {
			n.links.Delete(lo.l)
		}
		n.failRoutesTo(o)
		if n.gossip != nil {
			n.gossip.departed(o)
		}
		var gone []*subscription
		n.subs.each(func(s *subscription) {
			if s.owner == o {
				gone = append(gone, s)
			}
		})
		for _, s := range gone {
			n.unsubscribe(s)
			n.runHooks(n.ctx, dispatch.NewSubscription(dispatch.RELEASE, s.ep.Endpoint), replyTo{o: o})
		}
		if len(gone) > 0 {
			n.log.Debug("origin departed; subscriptions released", "origin", o.ID(), "count", len(gone))
		}
	}()
}

// Send processes or forwards d without waiting for answers. Answers that
// arrive for it later trigger ANSWER subscriptions. The error reports
// what went wrong here (invalid dispatch, nothing bound is not an error,
// unreachable host is); d is not modified.
func (n *Node) Send(ctx context.Context, d *dispatch.Dispatch) error {
	if n.closed() {
		return ErrClosed
	}
	if err := d.Validate(); err != nil {
		return err
	}
	c := d.Clone()
	n.noteRecent(c, replyTo{o: n.local})
	return n.dispatch(ctx, c, replyTo{o: n.local}, true)
}

// Request sends d and streams its answers: one per triggered subscriber,
// as they arrive, then a 504 answer for each one still missing at the
// deadline (the earlier of ctx's and the answer timeout), then the channel
// closes. It closes early without 504s if ctx is cancelled. A transaction
// id is generated when token[0] is not a string already. Only an invalid
// dispatch is an error; every other outcome (404, 502, 503, 504) is an
// answer.
func (n *Node) Request(ctx context.Context, d *dispatch.Dispatch) (<-chan *dispatch.Dispatch, error) {
	if n.closed() {
		return nil, ErrClosed
	}
	if k := d.Kind(); k != dispatch.Regular && k != dispatch.Subscription {
		return nil, dispatch.Errorf(dispatch.ErrBadDispatch, "a %s dispatch takes no answers", k)
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	d = d.Clone()
	txid := stampTransaction(d)
	deadline := n.cfg.now().Add(n.cfg.answerTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	tx, err := n.txs.start(ctx, txid, deadline)
	if err != nil {
		return nil, err
	}
	rt := replyTo{o: n.local}
	n.noteRecent(d, rt)
	if err := n.dispatch(ctx, d, rt, true); err != nil {
		n.answerErr(ctx, rt, d, err)
	}
	return tx.out, nil
}
