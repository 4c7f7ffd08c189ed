package node

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/mesh"
)

// RemoteBinding is a subscription made on another engine with BindAt.
type RemoteBinding struct {
	n    *Node
	o    *callbackOrigin
	host []dispatch.Host
	ep   dispatch.Endpoint
	once sync.Once
}

// BindAt binds fn to ep on the engine named by host (a host chain, as in
// a dispatch). It returns once that engine accepted the BIND, or with its
// refusal (404 for a host that does not resolve, 502 with no mesh). A
// refusal with 503 and a retry-after hint (a peer that has not yet seen
// this one on the endpoint's topic, a full queue) is retried after the
// hint, up to four BINDs in all, while ctx allows.
// Dispatches arrive one at a time, in order, from a queue of the engine's
// queue length; fn must not block for long. Release, or closing the Node,
// ends the binding.
func (n *Node) BindAt(ctx context.Context, host []dispatch.Host, ep dispatch.Endpoint, fn func(ctx context.Context, in *Incoming)) (*RemoteBinding, error) {
	if n.closed() {
		return nil, ErrClosed
	}
	if len(n.trimLocal(host)) == 0 {
		return nil, dispatch.Errorf(dispatch.ErrBadDispatch, "BindAt needs a remote host; use Bind for local bindings")
	}
	c, err := dispatch.CompileEndpoint(ep)
	if err != nil {
		return nil, err
	}
	o := &callbackOrigin{
		id:      "bind:" + uuid.NewString()[:8],
		n:       n,
		ep:      c,
		fn:      fn,
		queue:   make(chan *dispatch.Dispatch, n.cfg.queueLen),
		done:    make(chan struct{}),
		answers: map[string]chan *dispatch.Dispatch{},
	}
	n.wg.Add(1)
	go o.run()
	rb := &RemoteBinding{n: n, o: o, host: host, ep: c.Endpoint}
	if err := o.bind(ctx, host, c.Endpoint); err != nil {
		o.close()
		return nil, err
	}
	return rb, nil
}

// Release sends the RELEASE and stops deliveries. Deliveries stop even if
// the remote engine cannot be reached; its binding then ends when this
// engine departs.
func (r *RemoteBinding) Release(ctx context.Context) error {
	var err error
	r.once.Do(func() {
		_, err = r.o.exchange(ctx, dispatch.RELEASE, r.host, r.ep)
		r.o.close()
	})
	return err
}

// Dropped counts dispatches dropped because fn did not keep up.
func (r *RemoteBinding) Dropped() uint64 { return r.o.dropped.Load() }

// callbackOrigin is the origin of a remote binding made from the Go API:
// the remote engine's events and answers come back to it.
type callbackOrigin struct {
	id    string
	n     *Node
	ep    *dispatch.CompiledEndpoint
	fn    func(context.Context, *Incoming)
	queue chan *dispatch.Dispatch
	done  chan struct{}
	once  sync.Once

	mu      sync.Mutex
	answers map[string]chan *dispatch.Dispatch
	dropped atomic.Uint64
}

func (o *callbackOrigin) ID() string            { return o.id }
func (o *callbackOrigin) Done() <-chan struct{} { return o.done }
func (o *callbackOrigin) close()                { o.once.Do(func() { close(o.done) }) }

func (o *callbackOrigin) Deliver(ctx context.Context, d *dispatch.Dispatch) error {
	switch d.Kind() {
	case dispatch.Answer, dispatch.Exception:
		o.mu.Lock()
		ch := o.answers[d.TransactionID()]
		o.mu.Unlock()
		if ch != nil {
			select {
			case ch <- d:
			default:
			}
		}
		return nil
	}
	select {
	case <-o.done:
		return nil
	default:
	}
	select {
	case o.queue <- d:
		return nil
	default:
		o.dropped.Add(1)
		return dispatch.Errorf(dispatch.ErrUnavailable, "remote binding %s is not keeping up", o.id)
	}
}

func (o *callbackOrigin) run() {
	defer o.n.wg.Done()
	for {
		select {
		case d := <-o.queue:
			// The mirror subscription matched d already, but Deliver
			// carries only the dispatch: matching again recovers the
			// captures for fn.
			params, ok := o.ep.Match(d)
			if !ok {
				o.n.log.Debug("dropped event that does not match the binding", "binding", o.ep.Endpoint.String())
				continue
			}
			o.fn(o.n.ctx, &Incoming{Dispatch: d, Params: params, From: o.id})
		case <-o.done:
			return
		case <-o.n.ctx.Done():
			return
		}
	}
}

// BindAttempts bounds the BINDs one BindAt sends when each is refused
// with 503 and a retry-after hint; the CLI's bind keeps to it too.
const BindAttempts = 4

// bind sends the BIND, and sends it again after the hint when it is
// refused with 503 and retry-after (a target that has not seen this peer
// on the endpoint's topic yet, a full queue), while ctx allows.
func (o *callbackOrigin) bind(ctx context.Context, host []dispatch.Host, ep dispatch.Endpoint) error {
	for attempt := 1; ; attempt++ {
		wait, err := o.exchange(ctx, dispatch.BIND, host, ep)
		if err == nil || wait == 0 || attempt == BindAttempts {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		case <-o.n.ctx.Done():
			t.Stop()
			return ErrClosed
		}
	}
}

// exchange sends a BIND or RELEASE through the engine with this origin
// and waits for its answer. A refusal with 503 comes with the wait its
// retry-after header asks for.
func (o *callbackOrigin) exchange(ctx context.Context, method string, host []dispatch.Host, ep dispatch.Endpoint) (time.Duration, error) {
	d := dispatch.NewSubscription(method, ep)
	d.Host = append([]dispatch.Host(nil), host...)
	txid := newUUID()
	d.Token = []any{txid}
	ch := make(chan *dispatch.Dispatch, 4)
	o.mu.Lock()
	o.answers[txid] = ch
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		delete(o.answers, txid)
		o.mu.Unlock()
	}()
	if err := o.n.dispatch(ctx, d, replyTo{o: o}, true); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.n.cfg.answerTimeout)
	defer cancel()
	for {
		select {
		case a := <-ch:
			code := 0
			msg := ""
			if a.Exception != nil {
				code, msg = a.Exception.Code, a.Exception.Message
			} else {
				code, _, _, _ = a.AnswerInfo()
				msg = string(a.Body)
			}
			if code >= 100 && code < 200 {
				continue
			}
			if code >= 300 {
				return RetryAfter(a), &dispatch.CodeError{Code: code, Message: fmt.Sprintf("%s %s refused: %s", method, ep, msg)}
			}
			return 0, nil
		case <-ctx.Done():
			return 0, dispatch.Errorf(dispatch.ErrTimeout, "%s %s: no answer: %v", method, ep, ctx.Err())
		case <-o.n.ctx.Done():
			return 0, ErrClosed
		}
	}
}

// forwardSubscription passes a BIND or RELEASE on to next. The engine
// binds the origin here as well (a mirror): what next pushes back is
// processed like any dispatch and so delivered to the origin. This is how
// the classic engines do it, and it needs no routing of its own. A BIND
// for a peer becomes a gossipsub subscription (see gossip).
func (n *Node) forwardSubscription(ctx context.Context, d *dispatch.Dispatch, rt replyTo, next *linkOrigin, l *ledger) error {
	undo, err := n.mirrorSubscription(d, rt.o)
	if err != nil {
		n.abandonLedger(l)
		return err
	}
	if l != nil && d.Method == dispatch.BIND {
		// Taken back if the BIND fails, now or when its answer comes.
		l.onRefusal(undo)
		undo = func() {}
	}
	if next.kind == mesh.PeerLink && n.gossip != nil {
		err = n.gossip.forward(ctx, d, rt, next, l)
	} else {
		err = n.sendOn(ctx, next, d, false)
	}
	if err != nil {
		undo()
		if l != nil {
			l.ended(dispatch.Code(err))
		}
		n.abandonLedger(l)
	}
	return err
}

// mirrorSubscription binds (for a BIND) or releases (for a RELEASE) the
// origin's mirror of a subscription made elsewhere. undo reverts a BIND
// whose forwarding failed.
func (n *Node) mirrorSubscription(d *dispatch.Dispatch, from Origin) (undo func(), err error) {
	undo = func() {}
	if from == Origin(n.local) {
		return undo, dispatch.Errorf(dispatch.ErrBadDispatch, "a remote %s from the Go API needs somewhere to deliver: use Node.BindAt", d.Method)
	}
	switch d.Method {
	case dispatch.BIND:
		for _, s := range n.subs.find(from, *d.Endpoint) {
			if s.mirror {
				return undo, nil // bound already; binding twice would deliver twice
			}
		}
		// A mirror delivers straight to its origin, never to a fan-out
		// sink: a gateway passes events on to the one peer that bound
		// through it.
		s, err := n.subscribe(*d.Endpoint, from, nil, 1, true)
		if err != nil {
			return undo, err
		}
		return func() { n.unsubscribe(s.s) }, nil
	case dispatch.RELEASE:
		for _, s := range n.subs.find(from, *d.Endpoint) {
			n.unsubscribe(s)
		}
	}
	return undo, nil
}
