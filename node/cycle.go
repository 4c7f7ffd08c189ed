package node

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// hookDepthKey marks contexts of BIND/RELEASE hooks: a hook that binds
// again must not trigger itself without end.
type hookDepthKey struct{}

// maxHookDepth is how many BIND/RELEASE hooks may nest: a hook may bind,
// but the BIND it makes does not run hooks again.
const maxHookDepth = 1

// Receive takes a dispatch that arrived from another engine through from,
// and runs the dispatch cycle on it. Failures are answered to from (an
// ANSWER when the dispatch wanted one, an exception dispatch otherwise),
// so the caller only has to keep reading.
func (n *Node) Receive(ctx context.Context, from Origin, d *dispatch.Dispatch) {
	if n.closed() {
		return
	}
	n.stats.received.Add(1)
	if err := n.dispatch(ctx, d, from, !n.cfg.noForward); err != nil {
		n.answerErr(ctx, from, d, err)
	}
}

// ReceiveFrame decodes one encoded dispatch with the engine's decoder and
// receives it. Input that does not decode is answered with an exception
// (400, 405, 413, 505) and logged; the engine keeps serving.
func (n *Node) ReceiveFrame(ctx context.Context, from Origin, frame []byte) {
	d, err := n.cfg.decoder.Decode(frame)
	if err != nil {
		n.log.Info("rejected dispatch", "from", from.ID(), "code", dispatch.Code(err), "err", err)
		n.answerErr(ctx, from, d, err)
		return
	}
	n.Receive(ctx, from, d)
}

// Decoder returns the decoder ReceiveFrame uses, so transports can apply
// the same size limit to their frames.
func (n *Node) Decoder() dispatch.Decoder { return n.cfg.decoder }

// IsLocal reports whether a host element names this engine.
func (n *Node) IsLocal(h dispatch.Host) bool {
	if !h.IsTuple() && n.cfg.localNames[strings.ToLower(h.Name)] {
		return true
	}
	return n.cfg.isLocal != nil && n.cfg.isLocal(h)
}

// trimLocal drops the leading host elements that name this engine.
func (n *Node) trimLocal(hosts []dispatch.Host) []dispatch.Host {
	for len(hosts) > 0 && n.IsLocal(hosts[0]) {
		hosts = hosts[1:]
	}
	return hosts
}

// dispatch takes one host-chain step: forward to the first element that
// is not this engine, with the rest of the chain, or process here.
func (n *Node) dispatch(ctx context.Context, d *dispatch.Dispatch, from Origin, mayForward bool) error {
	rest := n.trimLocal(d.Host)
	if len(rest) > 0 {
		if !mayForward {
			return dispatch.Errorf(dispatch.ErrNotGateway, "this engine does not forward (to %s)", rest[0])
		}
		if n.cfg.forwarder == nil {
			return dispatch.Errorf(dispatch.ErrNotGateway, "no route to %s: this engine is not connected to a mesh", rest[0])
		}
		if err := n.countHop(d); err != nil {
			return err
		}
		to := rest[0]
		d.Host = rest[1:]
		if len(d.Host) == 0 {
			d.Host = nil
		}
		n.stats.forwarded.Add(1)
		if wantsAnswer(d) && from != Origin(n.local) {
			// Answers come back through this engine: remember who asked.
			n.addRoute(d.TransactionID(), from)
			if !provisional(from) {
				n.watchAnswers(from, d.TransactionID(), nil)
			}
		}
		undo, err := n.mirrorSubscription(d, from)
		if err != nil {
			return err
		}
		if err := n.cfg.forwarder.Forward(ctx, to, d, from); err != nil {
			undo()
			return err
		}
		return nil
	}
	d.Host = nil
	return n.process(ctx, d, from)
}

// HopsHeader counts the gateways a dispatch has crossed. It is a routing
// header, like the host chain: gateways change it, signatures leave it out.
const HopsHeader = "hops"

func (n *Node) countHop(d *dispatch.Dispatch) error {
	hops := 0
	if raw, ok := d.Extra[HopsHeader]; ok {
		if err := json.Unmarshal(raw, &hops); err != nil || hops < 0 {
			return dispatch.Errorf(dispatch.ErrBadDispatch, "header %q must be a non-negative integer", HopsHeader)
		}
	}
	if hops >= n.cfg.maxHops {
		return dispatch.Errorf(dispatch.ErrLoop, "crossed %d gateways, the limit", hops)
	}
	if d.Extra == nil {
		d.Extra = map[string]json.RawMessage{}
	}
	d.Extra[HopsHeader] = json.RawMessage(strconv.Itoa(hops + 1))
	return nil
}

// mirrorSubscription makes a forwarded BIND also bind its origin here:
// the remote engine pushes matching dispatches to this one, which
// processes them like any other and so delivers them to the origin. This
// is how the classic engines do it, and it needs no routing of its own.
// A forwarded RELEASE drops the mirror. undo reverts a BIND whose
// forwarding failed.
func (n *Node) mirrorSubscription(d *dispatch.Dispatch, from Origin) (undo func(), err error) {
	undo = func() {}
	if d.Kind() != dispatch.Subscription {
		return undo, nil
	}
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

// notificationKey marks dispatches that arrived as notifications (from a
// gossipsub topic): they are delivered to this engine's own subscribers
// but never published again, so engines bound to each other cannot pass
// an event back and forth for ever.
type notificationKey struct{}

// ReceiveNotification is Receive for a dispatch another engine published
// to its subscribers: it is delivered here and goes no further, and it is
// never answered.
func (n *Node) ReceiveNotification(ctx context.Context, from Origin, d *dispatch.Dispatch) {
	if n.closed() || d.Kind() != dispatch.Regular {
		return
	}
	d.Host = nil
	n.stats.received.Add(1)
	n.trigger(context.WithValue(ctx, notificationKey{}, true), d, from, false)
}

// process handles a dispatch addressed to this engine.
func (n *Node) process(ctx context.Context, d *dispatch.Dispatch, from Origin) error {
	switch d.Kind() {
	case dispatch.Answer:
		n.routeAnswer(ctx, d)
		return nil
	case dispatch.Exception:
		n.routeException(ctx, d, from)
		return nil
	case dispatch.Subscription:
		return n.processSubscription(ctx, d, from)
	}
	n.trigger(ctx, d, from, wantsAnswer(d))
	return nil
}

func provisional(o Origin) bool {
	p, ok := o.(Provisional)
	return ok && p.WantsProvisional()
}

func wantsAnswer(d *dispatch.Dispatch) bool {
	k := d.Kind()
	return (k == dispatch.Regular || k == dispatch.Subscription) && d.TransactionID() != ""
}

func (n *Node) processSubscription(ctx context.Context, d *dispatch.Dispatch, from Origin) error {
	if from == Origin(n.local) {
		// A BIND or RELEASE from the Go API that stays here has no origin
		// to deliver to or release for; Bind and Release are the API.
		return dispatch.Errorf(dispatch.ErrBadDispatch, "a local %s has nobody to deliver to: use Node.Bind or Node.Release", d.Method)
	}
	ep := *d.Endpoint
	switch d.Method {
	case dispatch.BIND:
		if _, err := n.subscribe(ep, from, nil, 1, false); err != nil {
			return err
		}
	case dispatch.RELEASE:
		subs := n.subs.find(from, ep)
		if len(subs) == 0 {
			return dispatch.Errorf(dispatch.ErrUnbound, "nothing bound to %s by %s", ep, from.ID())
		}
		for _, s := range subs {
			n.unsubscribe(s)
		}
	}
	n.runHooks(ctx, d, from)
	if wantsAnswer(d) {
		n.deliver(ctx, from, dispatch.NewAnswer(200, d.TransactionID(), "", nil))
	}
	return nil
}

// runHooks triggers the endpoints bound to BIND or RELEASE on the
// subscription's resource. Hooks are told, not asked: their copies carry
// no transaction, so nothing waits for them.
func (n *Node) runHooks(ctx context.Context, d *dispatch.Dispatch, from Origin) {
	depth, _ := ctx.Value(hookDepthKey{}).(int)
	if depth >= maxHookDepth {
		n.hooks.Add(1)
		n.log.Debug("hook loop guard: not running hooks for a subscription made by a hook", "dispatch", d.Endpoint.String())
		return
	}
	c := d.Clone()
	c.Token = nil
	n.trigger(context.WithValue(ctx, hookDepthKey{}, depth+1), c, from, false)
}

// trigger delivers d to every matching subscription. When an answer is
// wanted each answering subscriber gets its own triggering id, and the
// emitter (replyTo) is told which ids to expect; with nothing triggered it
// is answered 404, with only fan-out sinks notified, 202.
func (n *Node) trigger(ctx context.Context, d *dispatch.Dispatch, replyTo Origin, want bool) {
	matches := n.subs.match(d)
	txid := d.TransactionID()
	if len(matches) == 0 {
		if want {
			n.deliver(ctx, replyTo, dispatch.NewAnswer(404, txid, "", jsonString("nothing is bound to "+describe(d))))
		}
		return
	}
	depth, _ := ctx.Value(hookDepthKey{}).(int)
	notification, _ := ctx.Value(notificationKey{}).(bool)
	var trigs []string
	var sinks map[Origin]bool
	type pending struct {
		sub *subscription
		dl  delivery
	}
	var answering []pending
	for _, m := range matches {
		if f, ok := m.sub.owner.(Fanout); ok && m.sub.handler == nil && !m.sub.mirror {
			if notification {
				continue
			}
			// Notifications for a shared sink (a gossipsub topic) go out
			// once, however many subscriptions feed it, and are not
			// answered.
			sink := f.Sink(m.sub.ep.Endpoint)
			if sinks[sink] {
				continue
			}
			if sinks == nil {
				sinks = map[Origin]bool{}
			}
			sinks[sink] = true
			n.enqueueOrDrop(ctx, m.sub, delivery{in: &Incoming{Dispatch: notificationCopy(d), Params: m.params, From: replyTo.ID()}, sink: sink, depth: depth}, replyTo, false)
			continue
		}
		c := d
		var trig string
		if want {
			trig = uuid.NewString()
			trigs = append(trigs, trig)
			cc := *d
			cc.Token = append([]any{txid, trig}, d.Token[min(len(d.Token), 2):]...)
			c = &cc
			if m.sub.handler == nil && replyTo != Origin(n.local) {
				n.addRoute(txid, replyTo)
			}
		}
		answering = append(answering, pending{m.sub, delivery{in: &Incoming{Dispatch: c, Params: m.params, From: replyTo.ID()}, replyTo: replyTo, txid: txid, trig: trig, depth: depth}})
	}
	// The emitter learns which answers to expect before any subscriber
	// can answer: an answer that overtook the announcement would find no
	// watch for a classic emitter, which would then get a 504 for it.
	if want && len(trigs) > 0 {
		n.announce(ctx, replyTo, txid, trigs)
	}
	for _, p := range answering {
		n.enqueueOrDrop(ctx, p.sub, p.dl, replyTo, want)
	}
	if want && len(trigs) == 0 {
		body, _ := json.Marshal(map[string]int{"notified": len(sinks)})
		n.deliver(ctx, replyTo, dispatch.NewAnswer(202, txid, "", body))
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

func (n *Node) enqueueOrDrop(ctx context.Context, s *subscription, dl delivery, replyTo Origin, want bool) {
	if n.enqueue(s, dl) {
		return
	}
	s.dropped.Add(1)
	n.stats.dropped.Add(1)
	n.log.Warn("subscriber queue full; dispatch dropped for it", "endpoint", s.ep.Endpoint.String(), "owner", s.owner.ID())
	if want && dl.trig != "" {
		n.deliver(ctx, replyTo, dispatch.NewAnswer(503, dl.txid, dl.trig, jsonString("subscriber overloaded")))
	}
}

// announce tells the emitter which triggering ids to expect.
func (n *Node) announce(ctx context.Context, to Origin, txid string, trigs []string) {
	if to == Origin(n.local) {
		n.mu.Lock()
		tx := n.txs[txid]
		n.mu.Unlock()
		if tx != nil {
			tx.expect(trigs)
		}
		return
	}
	if !provisional(to) {
		n.watchAnswers(to, txid, trigs)
		return
	}
	body, _ := json.Marshal(map[string]any{"triggered": trigs})
	n.deliver(ctx, to, dispatch.NewAnswer(102, txid, "", body))
}

// enqueue puts a delivery on the subscription's queue and makes sure a
// worker runs, without ever blocking the dispatch cycle.
func (n *Node) enqueue(s *subscription, dl delivery) bool {
	if s.released.Load() {
		return true
	}
	select {
	case s.queue <- dl:
	default:
		return false
	}
	s.mu.Lock()
	if s.running < s.max {
		s.running++
		s.mu.Unlock()
		n.wg.Add(1)
		go n.work(s)
		return true
	}
	s.mu.Unlock()
	return true
}

// work drains a subscription's queue and exits when it is empty, so idle
// subscriptions cost no goroutine.
func (n *Node) work(s *subscription) {
	defer n.wg.Done()
	for {
		select {
		case dl := <-s.queue:
			ctx := n.ctx
			if dl.depth > 0 {
				ctx = context.WithValue(ctx, hookDepthKey{}, dl.depth)
			}
			n.run(ctx, s, dl)
			continue
		case <-n.ctx.Done():
			return
		default:
		}
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.running--
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

// run delivers one dispatch to a subscription and answers for local
// handlers.
func (n *Node) run(ctx context.Context, s *subscription, dl delivery) {
	if s.released.Load() {
		return
	}
	s.handled.Add(1)
	if s.handler == nil {
		to := s.owner
		if dl.sink != nil {
			to = dl.sink
		}
		if err := to.Deliver(ctx, dl.in.Dispatch); err != nil {
			n.log.Info("delivery to subscriber failed", "owner", s.owner.ID(), "err", err)
			if dl.trig != "" {
				n.deliver(ctx, dl.replyTo, dispatch.NewAnswer(dispatch.Code(err), dl.txid, dl.trig, jsonString(err.Error())))
			}
		}
		return
	}
	hctx, cancel := context.WithTimeout(ctx, n.cfg.answerTimeout)
	body, err := s.handler(hctx, dl.in)
	cancel()
	if dl.trig == "" {
		if err != nil {
			n.log.Debug("handler failed", "endpoint", s.ep.Endpoint.String(), "err", err)
		}
		return
	}
	n.deliver(ctx, dl.replyTo, answerFor(dl.txid, dl.trig, body, err))
	n.stats.answered.Add(1)
}

func answerFor(txid, trig string, body any, err error) *dispatch.Dispatch {
	if err != nil {
		return dispatch.NewAnswer(dispatch.Code(err), txid, trig, jsonString(err.Error()))
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
	return dispatch.NewAnswer(code, txid, trig, raw)
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

// deliver sends d to an origin, logging failures: the origin is gone or
// congested, and there is nobody else to tell.
func (n *Node) deliver(ctx context.Context, to Origin, d *dispatch.Dispatch) {
	if d.Kind() == dispatch.Answer {
		n.answered(d)
	}
	if err := to.Deliver(ctx, d); err != nil {
		n.log.Debug("could not deliver", "to", to.ID(), "err", err)
	}
}

// answerErr answers a failed dispatch: an ANSWER when one was wanted,
// otherwise an exception dispatch. Answers and exceptions are never
// answered, so a failure cannot echo between engines for ever.
func (n *Node) answerErr(ctx context.Context, to Origin, d *dispatch.Dispatch, err error) {
	if d != nil && wantsAnswer(d) {
		n.deliver(ctx, to, dispatch.NewAnswer(dispatch.Code(err), d.TransactionID(), "", jsonString(err.Error())))
		return
	}
	if d != nil && (d.Kind() == dispatch.Answer || d.Kind() == dispatch.Exception) && d.Validate() == nil {
		n.log.Info("dropped answer or exception that could not be routed", "from", to.ID(), "err", err)
		return
	}
	n.deliver(ctx, to, dispatch.NewException(err, d))
}

// deliverLocal receives what reaches the Go API's origin: answers and
// exceptions for its transactions.
func (n *Node) deliverLocal(ctx context.Context, d *dispatch.Dispatch) {
	switch d.Kind() {
	case dispatch.Answer:
		n.routeAnswer(ctx, d)
	case dispatch.Exception:
		n.routeException(ctx, d, n.local)
	}
}

// routeAnswer hands an answer to its transaction: a local Request, or an
// emitter elsewhere that this engine processed for. Provisional answers
// (1xx) only announce triggering ids.
func (n *Node) routeAnswer(ctx context.Context, a *dispatch.Dispatch) {
	code, txid, _, _ := a.AnswerInfo()
	n.mu.Lock()
	tx := n.txs[txid]
	r, routed := n.routes[txid]
	if routed && n.cfg.now().After(r.expires) {
		delete(n.routes, txid)
		routed = false
	}
	n.mu.Unlock()
	switch {
	case tx != nil:
		if code >= 100 && code < 200 {
			var p struct {
				Triggered []string `json:"triggered"`
			}
			if json.Unmarshal(a.Body, &p) == nil {
				tx.expect(p.Triggered)
			}
			return
		}
		tx.add(a)
	case routed:
		if code >= 100 && code < 200 && !provisional(r.to) {
			// The emitter cannot take the list: keep its 504s here.
			var p struct {
				Triggered []string `json:"triggered"`
			}
			if json.Unmarshal(a.Body, &p) == nil {
				n.watchAnswers(r.to, txid, p.Triggered)
			}
			return
		}
		n.deliver(ctx, r.to, a)
		return
	default:
		if code >= 100 && code < 200 {
			return
		}
		n.log.Debug("answer for no pending transaction", "txid", txid, "code", code)
	}
	// Answers processed here trigger ANSWER endpoints like any dispatch.
	n.trigger(ctx, a, n.local, false)
}

func (n *Node) routeException(ctx context.Context, x *dispatch.Dispatch, from Origin) {
	txid := x.TransactionID()
	n.mu.Lock()
	tx := n.txs[txid]
	r, routed := n.routes[txid]
	n.mu.Unlock()
	switch {
	case tx != nil && txid != "":
		tx.add(dispatch.NewAnswer(x.Exception.Code, txid, "", jsonString(x.Exception.Message)))
	case routed && txid != "":
		n.deliver(ctx, r.to, x)
	default:
		n.log.Info("exception received", "from", from.ID(), "code", x.Exception.Code, "message", x.Exception.Message)
	}
}

// addRoute remembers where answers for txid go when they come back from
// a remote subscriber; entries outlive the answer timeout a little and
// are swept as new ones are added.
func (n *Node) addRoute(txid string, to Origin) {
	now := n.cfg.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.routes) > 0 && len(n.routes)%256 == 0 {
		for id, r := range n.routes {
			if now.After(r.expires) {
				delete(n.routes, id)
			}
		}
	}
	// The first route is the emitter's. A host chain that passes this
	// engine again (A, B, A) must not replace it with the peer it came
	// back from, or answers would bounce between the two.
	if r, ok := n.routes[txid]; ok && now.Before(r.expires) {
		return
	}
	n.routes[txid] = route{to: to, expires: now.Add(2 * n.cfg.answerTimeout)}
}

func describe(d *dispatch.Dispatch) string {
	return d.Method + " /" + strings.Join(d.ResourceText(), "/")
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}
