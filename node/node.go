package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/jstp-peer/jstp-peer/dispatch"
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
}

// Node is a JSTP engine. Its methods are safe for concurrent use.
type Node struct {
	cfg     config
	log     *slog.Logger
	local   localOrigin
	subs    *table
	started time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	nextSub atomic.Uint64

	mu      sync.Mutex
	txs     map[string]*transaction
	routes  map[string]route        // txid → emitter elsewhere
	watches map[string]*answerWatch // txid → a classic emitter's 504s
	origins map[Origin]*struct{}    // origins with subscriptions, watched
	hooks   atomic.Int64            // hook deliveries suppressed by the loop guard
	stats   struct{ received, forwarded, answered, dropped atomic.Uint64 }
}

type route struct {
	to      Origin
	expires time.Time
}

// New returns a running engine. Defaults: a random id, slog.Default(),
// 10 s answer timeout, 1024-dispatch subscription queues, no forwarder
// (dispatches for other hosts are answered 502), strict decoding with a
// 1 MiB limit. It serves GET ["peer"] and GET ["subscriptions"].
func New(opts ...Option) (*Node, error) {
	cfg := config{
		answerTimeout: DefaultAnswerTimeout,
		queueLen:      DefaultQueueLen,
		maxHops:       DefaultMaxHops,
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
	cfg.localNames[strings.ToLower(cfg.id)] = true
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		cfg:     cfg,
		log:     cfg.logger.With("component", "node"),
		subs:    newTable(),
		started: cfg.now(),
		ctx:     ctx,
		cancel:  cancel,
		txs:     map[string]*transaction{},
		routes:  map[string]route{},
		watches: map[string]*answerWatch{},
		origins: map[Origin]*struct{}{},
	}
	n.local = localOrigin{n}
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
		n.stopWatches()
		n.wg.Wait()
	})
	return nil
}

func (n *Node) closed() bool { return n.ctx.Err() != nil }

// Handle binds a handler to ep; its return value answers every dispatch
// that wants an answer. Handlers get up to 16 dispatches at once.
func (n *Node) Handle(ep dispatch.Endpoint, h Handler) (*Subscription, error) {
	return n.subscribe(ep, n.local, h, DefaultHandlerWorkers, false)
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

func (n *Node) subscribe(ep dispatch.Endpoint, owner Origin, h Handler, workers int, mirror bool) (*Subscription, error) {
	if n.closed() {
		return nil, ErrClosed
	}
	c, err := dispatch.CompileEndpoint(ep)
	if err != nil {
		return nil, err
	}
	s := &subscription{
		id:      n.nextSub.Add(1),
		ep:      c,
		owner:   owner,
		handler: h,
		queue:   make(chan delivery, n.cfg.queueLen),
		max:     workers,
		mirror:  mirror,
	}
	n.subs.add(s)
	if owner != Origin(n.local) {
		n.watch(owner)
	}
	return &Subscription{s}, nil
}

func (n *Node) unsubscribe(s *subscription) bool {
	if !s.released.CompareAndSwap(false, true) {
		return false
	}
	return n.subs.remove(s)
}

// watch releases an origin's subscriptions when it goes away.
func (n *Node) watch(o Origin) {
	done := o.Done()
	if done == nil {
		return
	}
	n.mu.Lock()
	if _, ok := n.origins[o]; ok {
		n.mu.Unlock()
		return
	}
	n.origins[o] = nil
	n.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		select {
		case <-done:
		case <-n.ctx.Done():
			return
		}
		n.mu.Lock()
		delete(n.origins, o)
		for id, r := range n.routes {
			if r.to == o {
				delete(n.routes, id)
			}
		}
		n.mu.Unlock()
		var gone []*subscription
		n.subs.each(func(s *subscription) {
			if s.owner == o {
				gone = append(gone, s)
			}
		})
		for _, s := range gone {
			n.unsubscribe(s)
			n.runHooks(n.ctx, dispatch.NewSubscription(dispatch.RELEASE, s.ep.Endpoint), o)
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
	return n.dispatch(ctx, d.Clone(), n.local, true)
}

// Request sends d and streams its answers: one per triggered subscriber,
// as they arrive, then a 504 answer for each one still missing at the
// deadline (the earlier of ctx's and the answer timeout), then the channel
// closes. It closes early without 504s if ctx is cancelled. A transaction
// id is generated when token[0] is not a string already. Only an invalid
// dispatch is an error; every other outcome (404, 502, 504) is an answer.
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
	txid := d.TransactionID()
	if txid == "" {
		txid = uuid.NewString()
		if len(d.Token) == 0 {
			d.Token = []any{txid}
		} else {
			d.Token[0] = txid
		}
	}
	tx := newTransaction(txid)
	n.mu.Lock()
	if _, dup := n.txs[txid]; dup {
		n.mu.Unlock()
		return nil, dispatch.Errorf(dispatch.ErrBadDispatch, "transaction %q is already pending", txid)
	}
	n.txs[txid] = tx
	n.mu.Unlock()

	deadline := n.cfg.now().Add(n.cfg.answerTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	out := make(chan *dispatch.Dispatch, 16)
	n.wg.Add(1)
	go n.collect(ctx, tx, deadline, out)
	if err := n.dispatch(ctx, d, n.local, true); err != nil {
		n.answerErr(ctx, n.local, d, err)
	}
	return out, nil
}

// collect streams a transaction's answers to out and ends it.
func (n *Node) collect(ctx context.Context, tx *transaction, deadline time.Time, out chan<- *dispatch.Dispatch) {
	defer n.wg.Done()
	defer close(out)
	defer func() {
		n.mu.Lock()
		delete(n.txs, tx.id)
		n.mu.Unlock()
	}()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	send := func(a *dispatch.Dispatch, stop <-chan struct{}, expire <-chan time.Time) bool {
		select {
		case out <- a:
			return true
		case <-stop:
		case <-expire:
		case <-n.ctx.Done():
		}
		return false
	}
	if !n.await(ctx, tx, timer.C, func(a *dispatch.Dispatch) bool { return send(a, ctx.Done(), nil) }) {
		return
	}
	// Deadline: whatever arrived in the meantime, then a 504 for each
	// missing answer. The caller's ctx may be at its deadline too, so the
	// last answers get a short grace of their own rather than be lost.
	grace := time.NewTimer(time.Second)
	defer grace.Stop()
	as, _ := tx.take()
	for _, a := range as {
		if !send(a, nil, grace.C) {
			return
		}
	}
	body := jsonString("no answer before the deadline")
	missing, known := tx.missing()
	if !known {
		send(dispatch.NewAnswer(504, tx.id, "", body), nil, grace.C)
		return
	}
	slices.Sort(missing)
	for _, trig := range missing {
		if !send(dispatch.NewAnswer(504, tx.id, trig, body), nil, grace.C) {
			return
		}
	}
}

// await forwards answers until the transaction completes (false: nothing
// more to do) or the deadline passes (true: answer 504s).
func (n *Node) await(ctx context.Context, tx *transaction, deadline <-chan time.Time, send func(*dispatch.Dispatch) bool) bool {
	for {
		as, done := tx.take()
		for _, a := range as {
			if !send(a) {
				return false
			}
		}
		if done {
			return false
		}
		select {
		case <-tx.notify:
		case <-deadline:
			return true
		case <-ctx.Done():
			return errors.Is(ctx.Err(), context.DeadlineExceeded)
		case <-n.ctx.Done():
			return false
		}
	}
}
