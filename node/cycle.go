package node

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"strings"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/identity"
	"github.com/jstp-peer/jstp-peer/mesh"
	"github.com/jstp-peer/jstp-peer/routing"
)

// The dispatch cycle: a host-chain step (forward, or process here), then
// by kind — regular dispatches trigger subscriptions, BIND and RELEASE
// change them, answers and exceptions go back to their emitters.

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
	n.receive(ctx, replyTo{o: from, via: takeVia(d)}, d)
}

// ReceiveFrame decodes one encoded dispatch with the engine's decoder and
// receives it. Input that does not decode is answered with an exception
// (400, 405, 413, 505) and logged; the engine keeps serving.
func (n *Node) ReceiveFrame(ctx context.Context, from Origin, frame []byte) {
	d, err := n.cfg.decoder.Decode(frame)
	if err != nil {
		n.refuse(ctx, replyTo{o: from}, d, err)
		return
	}
	n.Receive(ctx, from, d)
}

func (n *Node) receive(ctx context.Context, rt replyTo, d *dispatch.Dispatch) {
	if n.closed() {
		return
	}
	n.stats.received.Add(1)
	n.observeReceived(d)
	author, to, err := n.verify(d)
	if err != nil {
		n.warn.Warn("refused a dispatch whose signature does not hold", "from", rt.o.ID(), "err", err)
		n.answerErr(ctx, rt, d, err)
		return
	}
	rt.author, rt.signedFor = author, to
	n.noteRecent(d, rt)
	if err := n.dispatch(ctx, d, rt, !n.cfg.noForward); err != nil {
		n.answerErr(ctx, rt, d, err)
	}
}

// refuse answers input that could not be read or accepted, and counts it.
func (n *Node) refuse(ctx context.Context, rt replyTo, d *dispatch.Dispatch, err error) {
	n.stats.rejected.Add(1)
	n.warn.Info("rejected dispatch", "from", rt.o.ID(), "code", dispatch.Code(err), "err", err)
	n.answerErr(ctx, rt, d, err)
}

// Decoder returns the decoder ReceiveFrame uses, so transports can apply
// the same size limit to their frames.
func (n *Node) Decoder() dispatch.Decoder { return n.cfg.decoder }

// IsLocal reports whether a host element names this engine.
func (n *Node) IsLocal(h dispatch.Host) bool {
	if !h.IsTuple() {
		// Lowered into a buffer on the stack: a peer id has capitals,
		// and strings.ToLower would allocate on every dispatch.
		var buf [64]byte
		if n.cfg.localNames[string(appendLower(buf[:0], h.Name))] {
			return true
		}
	}
	return n.cfg.isLocal != nil && n.cfg.isLocal(h)
}

// appendLower appends s with ASCII letters lowered, as host names compare
// (non-ASCII bytes are kept: strings.ToLower's Unicode folding is not
// what names use).
func appendLower(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
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
func (n *Node) dispatch(ctx context.Context, d *dispatch.Dispatch, rt replyTo, mayForward bool) error {
	rest := n.trimLocal(d.Host)
	if len(rest) == 0 {
		d.Host = nil
		// Answers to sealed dispatches are opened by the ledger that
		// sealed them (relay), not here.
		if d.Kind() == dispatch.Regular && identity.IsSealed(d) {
			if err := n.openRequest(d, &rt); err != nil {
				return err
			}
		}
		if err := n.checkRecipient(rt.signedFor); err != nil {
			n.warn.Warn("refused a dispatch signed for another recipient", "from", rt.o.ID(), "err", err)
			return err
		}
		return n.process(ctx, d, rt)
	}
	if !mayForward {
		return dispatch.Errorf(dispatch.ErrNotGateway, "this engine does not forward (to %s)", rest[0])
	}
	if n.cfg.forwarder == nil {
		return dispatch.Errorf(dispatch.ErrNotGateway, "no route to %s: this engine is not connected to a mesh", rest[0])
	}
	to := rest[0]
	if !fromThisMachine(rt.o) {
		if t, err := routing.Classify(to); err == nil && t.Kind == routing.Classic {
			n.stats.forbidden.Add(1)
			n.warn.Warn("refused to reach a classic engine for a remote origin", "from", rt.o.ID(), "to", to.String())
			return dispatch.Errorf(dispatch.ErrForbidden, "%s is a classic engine: only local clients may reach one through this peer", to)
		}
	}
	d.Host = rest[1:]
	if len(d.Host) == 0 {
		d.Host = nil
	}
	next, err := n.linkTo(ctx, to)
	if errors.Is(err, ErrLocalHop) {
		return n.dispatch(ctx, d, rt, mayForward)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// The dispatch's deadline passed while its route was looked up
		// (a DHT walk): that is a timeout, not an internal error.
		return dispatch.Errorf(dispatch.ErrTimeout, "no route to %s before the deadline", to)
	}
	if err != nil {
		return err
	}
	if err := n.countHop(d); err != nil {
		return err
	}
	return n.forwardRetry(ctx, d, rt, next, to, n.retryable(d, to, next))
}

// fromThisMachine tells whether o is on this machine: the application
// and its own origins, and clients of a gateway connected over loopback.
// Only they may, for example, make this peer connect to a classic engine
// at a host:port. Anyone else —
// another peer, a client from the network — could otherwise make the
// peer open connections to any address, its own loopback included, and
// write to them.
func fromThisMachine(o Origin) bool {
	lo, ok := o.(*linkOrigin)
	if !ok {
		return true
	}
	if lo.kind != mesh.ClassicIn {
		return false
	}
	host, _, err := net.SplitHostPort(lo.l.Remote())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// forwardRetry passes d on to next, the peer or engine the host element
// to led to; rs, for a request that may be retried on another replica
// (nil when not). When d wants answers the engine gives the transaction a
// label of its own and keeps a ledger under it: the answers that come
// back with the label go to rt, with rt's label, and to nobody else.
func (n *Node) forwardRetry(ctx context.Context, d *dispatch.Dispatch, rt replyTo, next *linkOrigin, to dispatch.Host, rs *retry) error {
	n.stats.forwarded.Add(1)
	n.observeForwarded(d)
	var l *ledger
	if wantsAnswer(d) {
		l = &ledger{back: rt, txid: d.TransactionID(), retry: rs}
		l.method = methodIndex(d.Method)
		if !next.WantsProvisional() {
			// A classic engine says nothing of how many answers will
			// come: they are open-ended until the deadline.
			l.t.open = true
			if provisional(rt.o) {
				n.reply(ctx, rt, openAnnouncement(l.txid))
			}
		}
		if !provisional(rt.o) {
			n.owe(l)
		}
		if next.kind == mesh.PeerLink {
			l.track(next)
		}
		label := n.routes.newKey()
		n.routes.add(label, l, next)
		setVia(d, label)
	} else {
		setVia(d, "")
	}
	var err error
	if wantsSeal(d) {
		if !fromThisMachine(rt.o) {
			err = dispatch.Errorf(dispatch.ErrBadDispatch, "only the emitter's own peer seals a dispatch (header %q)", SealHeader)
		} else {
			err = n.sealRequest(ctx, d, next, l)
		}
	} else {
		err = n.signForward(d, next, to)
	}
	if err != nil {
		n.abandonLedger(l)
		return err
	}
	if d.Kind() == dispatch.Subscription {
		return n.forwardSubscription(ctx, d, rt, next, l)
	}
	if err := n.sendOn(ctx, next, d, n.writesItself(rt.o)); err != nil {
		n.abandonLedger(l)
		return err
	}
	return nil
}

// writesItself reports whether the goroutine that passes on o's
// dispatches may write one itself when the link is idle, saving the
// hand-over to the link's writer: the application's goroutine, which would
// wait anyway, and the reader of one classic client, whom a link that
// takes nothing slows alone. A peer link's reader never does: it reads
// for everyone behind that peer, and two peers each blocked writing to
// the other would never read again.
func (n *Node) writesItself(o Origin) bool {
	if lo, ok := o.(*linkOrigin); ok {
		return lo.kind == mesh.ClassicIn
	}
	return o == Origin(n.local)
}

// sendOn passes a dispatch on, waiting for room at most the answer
// timeout: a link that takes nothing for that long is as good as down.
// With now, a dispatch alone on an idle link is written on the caller's
// goroutine (writesItself).
func (n *Node) sendOn(ctx context.Context, next *linkOrigin, d *dispatch.Dispatch, now bool) error {
	if now && next.idle() {
		return next.sendNow(ctx, d)
	}
	if err := next.offer(d); !errors.Is(err, dispatch.ErrUnavailable) {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, n.cfg.answerTimeout)
	defer cancel()
	err := next.send(sctx, d)
	if err != nil && sctx.Err() != nil && ctx.Err() == nil {
		n.stats.sendTimeouts.Add(1)
		return dispatch.Errorf(dispatch.ErrUnavailable, "%s took nothing for %v", next.ID(), n.cfg.answerTimeout)
	}
	return err
}

// HopsHeader counts the gateways a dispatch has crossed. It is a routing
// header, like the host chain: gateways change it, signatures leave it out.
const HopsHeader = "hops"

func (n *Node) countHop(d *dispatch.Dispatch) error {
	hops := 0
	if raw, ok := d.Extra.Get(HopsHeader); ok {
		var err error
		if hops, err = strconv.Atoi(string(raw)); err != nil || hops < 0 {
			return dispatch.Errorf(dispatch.ErrBadDispatch, "header %q must be a non-negative integer", HopsHeader)
		}
	}
	if hops >= n.cfg.maxHops {
		return dispatch.Errorf(dispatch.ErrLoop, "crossed %d gateways, the limit", hops)
	}
	d.Extra.Set(HopsHeader, smallInt(hops+1))
	return nil
}

// smallInts are the integers up to 63 encoded, shared (header values are
// never written to in place), so that counting a hop or telling a load
// allocates nothing.
var smallInts = func() (v [64]json.RawMessage) {
	for i := range v {
		v[i] = json.RawMessage(strconv.Itoa(i))
	}
	return v
}()

func smallInt(n int) json.RawMessage {
	if n >= 0 && n < len(smallInts) {
		return smallInts[n]
	}
	return json.RawMessage(strconv.Itoa(n))
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
	n.trigger(context.WithValue(ctx, notificationKey{}, true), d, replyTo{o: from}, false)
}

// process handles a dispatch addressed to this engine.
func (n *Node) process(ctx context.Context, d *dispatch.Dispatch, rt replyTo) error {
	if k := d.Kind(); k == dispatch.Regular || k == dispatch.Subscription {
		if err := n.checkAccess(d, rt); err != nil {
			return err
		}
	}
	switch d.Kind() {
	case dispatch.Answer:
		n.routeAnswer(ctx, d, rt)
		return nil
	case dispatch.Exception:
		n.routeException(ctx, d, rt)
		return nil
	case dispatch.Subscription:
		return n.processSubscription(ctx, d, rt)
	}
	n.trigger(ctx, d, rt, wantsAnswer(d))
	return nil
}

func wantsAnswer(d *dispatch.Dispatch) bool {
	k := d.Kind()
	return (k == dispatch.Regular || k == dispatch.Subscription) && d.TransactionID() != ""
}

func (n *Node) processSubscription(ctx context.Context, d *dispatch.Dispatch, rt replyTo) error {
	from := rt.o
	if from == Origin(n.local) {
		// A BIND or RELEASE from the Go API that stays here has no origin
		// to deliver to or release for; Bind and Release are the API.
		return dispatch.Errorf(dispatch.ErrBadDispatch, "a local %s has nobody to deliver to: use Node.Bind or Node.Release", d.Method)
	}
	ep := *d.Endpoint
	switch d.Method {
	case dispatch.BIND:
		if n.gossip != nil {
			if err := n.gossip.awaitSubscriber(ctx, from, ep, wantsAnswer(d)); err != nil {
				return err
			}
		}
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
	n.runHooks(ctx, d, rt)
	if wantsAnswer(d) {
		n.reply(ctx, rt, dispatch.NewAnswer(200, d.TransactionID(), "", nil))
	}
	return nil
}

// runHooks triggers the endpoints bound to BIND or RELEASE on the
// subscription's resource. Hooks are told, not asked: their copies carry
// no transaction, so nothing waits for them.
func (n *Node) runHooks(ctx context.Context, d *dispatch.Dispatch, rt replyTo) {
	depth, _ := ctx.Value(hookDepthKey{}).(int)
	if depth >= maxHookDepth {
		n.hooks.Add(1)
		n.log.Debug("hook loop guard: not running hooks for a subscription made by a hook", "dispatch", d.Endpoint.String())
		return
	}
	c := d.Clone()
	c.Token = nil
	n.trigger(context.WithValue(ctx, hookDepthKey{}, depth+1), c, replyTo{o: rt.o}, false)
}

func describe(d *dispatch.Dispatch) string {
	return d.Method + " /" + strings.Join(d.ResourceText(), "/")
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}
