package node

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/mesh"
)

type delivery struct {
	in    *Incoming
	rt    replyTo // where the answer goes, and whose dispatch this is
	txid  string
	trig  string
	depth int     // BIND/RELEASE hook nesting of what caused it
	sink  Origin  // set for fan-out notifications
	l     *ledger // set when the answer passes through a ledger (see trigger)
}

// RetryAfterHeader, on a 503 answer, says in milliseconds when the
// request is worth sending again.
const RetryAfterHeader = "retry-after"

// retryAfter is the hint every 503 this engine makes carries: how long a
// full queue takes to drain, or a subscriber to show up on its topic, is
// unknowable here, so the hint is a short, fixed back-off that spreads
// retries rather than a promise.
const retryAfter = "100"

// newAnswer is dispatch.NewAnswer with, on a 503, the retry-after hint.
func newAnswer(code int, txid, trig string, body json.RawMessage) *dispatch.Dispatch {
	a := dispatch.NewAnswer(code, txid, trig, body)
	if code == 503 {
		a.Extra = dispatch.Headers{{Name: RetryAfterHeader, Value: json.RawMessage(retryAfter)}}
	}
	return a
}

// RetryAfter is the wait a 503 answer's retry-after header asks for, or
// 0 when it is no 503 or asks for none; it is kept within [1 ms, 10 s],
// whatever a remote engine wrote.
func RetryAfter(a *dispatch.Dispatch) time.Duration {
	if code, _, _, ok := a.AnswerInfo(); !ok || code != 503 {
		return 0
	}
	ms, err := strconv.Atoi(string(a.Extra.Value(RetryAfterHeader)))
	if err != nil || ms < 0 {
		return 0
	}
	return min(max(time.Duration(ms)*time.Millisecond, time.Millisecond), 10*time.Second)
}

// trigger delivers d to every matching subscription. When an answer is
// wanted each answering subscriber gets its own triggering id, and the
// emitter is told which ids to expect when there is more than one; with
// nothing triggered it is answered 404, with only fan-out sinks notified,
// 202.
func (n *Node) trigger(ctx context.Context, d *dispatch.Dispatch, rt replyTo, want bool) {
	matches := n.subs.match(d)
	txid := d.TransactionID()
	if len(matches) == 0 {
		if want {
			n.observeAnswered(d.Method, 404)
			n.reply(ctx, rt, dispatch.NewAnswer(404, txid, "", jsonString("nothing is bound to "+describe(d))))
		}
		return
	}
	depth, _ := ctx.Value(hookDepthKey{}).(int)
	notification, _ := ctx.Value(notificationKey{}).(bool)
	var trigs []string
	var sinks map[Origin]bool
	peers := 0 // peers whose subscribers are notified, through the sinks
	type pending struct {
		sub *subscription
		dl  delivery
	}
	var few [2]pending // most dispatches trigger one or two subscribers
	answering := few[:0]
	remote := false
	for _, m := range matches {
		if m.sub.handler == nil && !m.sub.mirror {
			if f, ok := m.sub.owner.(Fanout); ok {
				if sink := f.Sink(m.sub.ep.Endpoint); sink != nil {
					if notification {
						continue
					}
					peers++
					// Notifications for a shared sink (a gossipsub
					// topic) go out once, however many subscriptions
					// feed it, and are not answered.
					if sinks[sink] {
						continue
					}
					if sinks == nil {
						sinks = map[Origin]bool{}
					}
					sinks[sink] = true
					n.enqueueOrDrop(ctx, m.sub, delivery{in: &Incoming{Dispatch: notificationCopy(d), Params: m.params, From: rt.o.ID(), Author: n.authorOf(rt), origin: rt.o}, rt: replyTo{o: rt.o}, sink: sink, depth: depth})
					continue
				}
			}
		}
		c := d
		var trig string
		if want {
			trig = n.routes.newKey()
			trigs = append(trigs, trig)
			cc := *d
			cc.Token = append([]any{txid, trig}, d.Token[min(len(d.Token), 2):]...)
			c = &cc
			remote = remote || m.sub.handler == nil
		}
		answering = append(answering, pending{m.sub, delivery{in: &Incoming{Dispatch: c, Params: m.params, From: rt.o.ID(), Author: n.authorOf(rt), origin: rt.o}, rt: rt, txid: txid, trig: trig, depth: depth}})
	}
	// Remote subscribers answer later and from elsewhere; a lone local
	// handler answers in the same breath, and then the emitter needs no
	// announcement (see tally).
	announce := len(trigs) > 1 || remote
	var l *ledger
	if want && len(trigs) > 0 {
		// A ledger counts the answers when someone must: this engine,
		// for an emitter that cannot time out answers itself, or the
		// routes of remote subscribers' answers, which come back here.
		if remote || !provisional(rt.o) {
			l = &ledger{back: rt, txid: txid}
			l.t.expect(trigs)
			if !provisional(rt.o) {
				n.owe(l)
			}
			for _, p := range answering {
				if p.sub.handler == nil {
					n.routes.add(p.dl.trig, l, p.sub.owner)
				}
			}
		}
		// The emitter learns which answers to expect before any
		// subscriber can answer.
		n.announce(ctx, rt, txid, trigs, announce)
	}
	for _, p := range answering {
		p.dl.l = l
		if !n.runInline(p.sub, p.dl) {
			n.enqueueOrDrop(ctx, p.sub, p.dl)
		}
	}
	if want && len(trigs) == 0 {
		// Each peer counts its own subscribers: this one cannot see
		// them, so it says how many peers and topics it notified.
		body, _ := json.Marshal(map[string]int{"peers": peers, "topics": len(sinks)})
		n.reply(ctx, rt, dispatch.NewAnswer(202, txid, "", body))
	}
}

// announce tells the emitter which triggering ids to expect: the
// application's Request directly, a peer (or a client that reads
// provisional answers) with ANSWER 102 when asked to. A classic emitter
// is told nothing; the ledger answers 504 for it.
func (n *Node) announce(ctx context.Context, rt replyTo, txid string, trigs []string, send bool) {
	if rt.o == Origin(n.local) {
		tx := n.txs.get(txid)
		if tx != nil {
			tx.expect(trigs)
		}
		return
	}
	if send && provisional(rt.o) {
		n.reply(ctx, rt, announcement(txid, trigs))
	}
}

// notificationCopy strips the transaction id (token[0] becomes null) so
// subscribers do not answer a notification; the rest of the token is the
// application's and stays.
func notificationCopy(d *dispatch.Dispatch) *dispatch.Dispatch {
	if d.TransactionID() == "" {
		return d
	}
	c := *d
	c.Token = append([]any{nil}, d.Token[1:]...)
	return &c
}

// enqueueOrDrop queues a delivery, or answers 503 for it when the
// subscription's queue is full: the subscriber is overloaded, and the
// emitter is told so at once instead of waiting for a 504.
func (n *Node) enqueueOrDrop(ctx context.Context, s *subscription, dl delivery) {
	if n.enqueue(s, dl) {
		return
	}
	s.dropped.Add(1)
	if dl.sink != nil || dl.trig == "" {
		n.stats.droppedEvents.Add(1)
		n.warn.Warn("subscriber queue full; dispatch dropped for it", "endpoint", s.ep.Endpoint.String(), "owner", s.owner.ID())
		return
	}
	n.stats.overloaded.Add(1)
	n.observeAnswered(dl.in.Dispatch.Method, 503)
	n.warn.Warn("subscriber queue full; answered 503", "endpoint", s.ep.Endpoint.String(), "owner", s.owner.ID())
	n.settle(ctx, dl.rt, dl.l, dl.trig, newAnswer(503, dl.txid, dl.trig, jsonString("subscriber overloaded")))
}

// inlineBelow is how fast, on average, an Inline handler must answer to
// run on the goroutine that received the dispatch instead of a worker. A
// handler that turns slow blocks that one link once, and its average then
// sends it back to the workers.
const inlineBelow = 50 * time.Microsecond

// runInline runs a fast handler's delivery at once, when the subscription
// has a free worker slot and nothing queued (so order is kept), and
// reports whether it did.
func (n *Node) runInline(s *subscription, dl delivery) bool {
	if !s.inline || dl.depth > 0 || time.Duration(s.avgNanos.Load()) > inlineBelow {
		return false
	}
	s.mu.Lock()
	if s.running >= s.max || s.queue.n > 0 || s.released.Load() {
		s.mu.Unlock()
		return false
	}
	s.running++
	s.mu.Unlock()
	n.busy.Add(1)
	n.run(n.ctx, s, dl)
	n.busy.Add(-1)
	// Anything queued meanwhile found no free slot: it needs a worker.
	s.mu.Lock()
	s.running--
	start := s.queue.n > 0 && s.running < s.max
	if start {
		s.running++
	}
	s.mu.Unlock()
	if start {
		n.wg.Add(1)
		go n.work(s)
	}
	return true
}

// enqueue puts a delivery on the subscription's queue and makes sure a
// worker runs, without ever blocking the dispatch cycle.
func (n *Node) enqueue(s *subscription, dl delivery) bool {
	if s.released.Load() {
		return true
	}
	// Counted before a worker can see the delivery, and finish it.
	holdFor(dl.rt.o)
	n.busy.Add(1)
	s.mu.Lock()
	if !s.queue.push(dl) {
		s.mu.Unlock()
		n.busy.Add(-1)
		releaseFor(dl.rt.o)
		return false
	}
	start := s.running < s.max
	if start {
		s.running++
	}
	s.mu.Unlock()
	if start {
		n.wg.Add(1)
		go n.work(s)
	}
	return true
}

// work drains a subscription's queue and exits when it is empty, so idle
// subscriptions cost no goroutine.
func (n *Node) work(s *subscription) {
	defer n.wg.Done()
	for n.ctx.Err() == nil {
		s.mu.Lock()
		dl, ok := s.queue.pop()
		if !ok {
			s.running--
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		ctx := n.ctx
		if dl.depth > 0 {
			ctx = context.WithValue(ctx, hookDepthKey{}, dl.depth)
		}
		n.run(ctx, s, dl)
		n.busy.Add(-1)
		releaseFor(dl.rt.o)
	}
}

// run delivers one dispatch to a subscription and answers for local
// handlers.
func (n *Node) run(ctx context.Context, s *subscription, dl delivery) {
	if s.released.Load() {
		if dl.trig != "" {
			n.settle(ctx, dl.rt, dl.l, dl.trig, dispatch.NewAnswer(406, dl.txid, dl.trig, jsonString("released before it was delivered")))
		}
		return
	}
	s.handled.Add(1)
	if s.handler == nil {
		to := s.owner
		if dl.sink != nil {
			to = dl.sink
		}
		if err := to.Deliver(ctx, dl.in.Dispatch); err != nil {
			n.stats.droppedEvents.Add(1)
			n.warn.Info("delivery to subscriber failed", "owner", s.owner.ID(), "err", err)
			if dl.trig != "" {
				n.settle(ctx, dl.rt, dl.l, dl.trig, dispatch.NewAnswer(dispatch.Code(err), dl.txid, dl.trig, jsonString(err.Error())))
			}
		}
		return
	}
	start := time.Now()
	hctx := withLazyDeadline(ctx, start.Add(n.cfg.answerTimeout))
	body, err := s.handler(hctx, dl.in)
	s.observe(time.Since(start))
	hctx.cancel()
	if dl.trig == "" {
		if err != nil {
			n.log.Debug("handler failed", "endpoint", s.ep.Endpoint.String(), "err", err)
		}
		return
	}
	n.settle(ctx, dl.rt, dl.l, dl.trig, answerFor(dl.txid, dl.trig, body, err))
	n.stats.answered.Add(1)
	n.observeHandled(dl.in.Dispatch.Method, body, err, start)
}

// settle sends an answer made here to the emitter, through the ledger
// when there is one: an answer the ledger has already given up on (its
// 504 went out) is not sent after it.
func (n *Node) settle(ctx context.Context, rt replyTo, l *ledger, trig string, a *dispatch.Dispatch) {
	if l != nil {
		l.mu.Lock()
		ok := l.t.final(trig)
		done := l.t.done
		l.mu.Unlock()
		if done {
			n.finishLedger(l)
		}
		if !ok {
			n.stats.late.Add(1)
			return
		}
	}
	n.reply(ctx, rt, a)
}

func answerFor(txid, trig string, body any, err error) *dispatch.Dispatch {
	if err != nil {
		return newAnswer(dispatch.Code(err), txid, trig, jsonString(err.Error()))
	}
	code := 200
	if r, ok := body.(Reply); ok {
		code, body = r.Code, r.Body
	}
	if r, ok := body.(*Reply); ok {
		code, body = r.Code, r.Body
	}
	raw, mErr := marshalBody(body)
	if mErr != nil {
		return dispatch.NewAnswer(500, txid, trig, jsonString("answer body does not encode: "+mErr.Error()))
	}
	return newAnswer(code, txid, trig, raw)
}

func marshalBody(body any) (json.RawMessage, error) {
	switch b := body.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		return b, nil
	}
	return json.Marshal(body)
}

// reply sends something back to where a dispatch came from, with the
// label that origin's engine gave the transaction. A failure is counted
// and logged: the origin is gone, and there is nobody else to tell.
//
// d is the engine's alone: made here, or decoded from a link and passed on.
func (n *Node) reply(ctx context.Context, rt replyTo, d *dispatch.Dispatch) {
	if rt.session != nil {
		if err := n.sealAnswer(rt, d); err != nil {
			n.warn.Warn("answer not sealed", "to", rt.session.Peer, "err", err)
			code, txid, trig, _ := d.AnswerInfo()
			d = dispatch.NewAnswer(500, txid, trig, jsonString(fmt.Sprintf("the %d answer could not be sealed", code)))
		}
	} else {
		n.signAnswer(rt, d)
	}
	if rt.via != "" {
		setVia(d, rt.via)
	}
	if lo, ok := rt.o.(*linkOrigin); ok && lo.kind == mesh.PeerLink {
		if code, _, _, ok := d.AnswerInfo(); ok && code >= 200 {
			n.setLoad(d)
		}
	}
	if err := rt.o.Deliver(ctx, d); err != nil {
		n.stats.undeliverable.Add(1)
		n.warn.Info("could not deliver", "to", rt.o.ID(), "err", err)
	}
}
