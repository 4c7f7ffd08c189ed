package node

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/mesh"
)

// Attach implements mesh.Ingress: every link — a session with a peer, a
// gateway's client, a classic engine this peer reached — enters the engine
// here, and what it reads goes through one path: admission, decoding, the
// classic dialect where it applies, the dispatch cycle.
func (n *Node) Attach(l mesh.Link) mesh.FrameFunc {
	o := &linkOrigin{
		n:     n,
		l:     l,
		kind:  l.Kind(),
		limit: int64(n.cfg.linkInflight),
		wake:  make(chan struct{}, 1),
	}
	if o.kind == mesh.PeerLink {
		o.peer, _ = peer.Decode(l.ID())
	}
	if n.cfg.linkRate > 0 && o.kind != mesh.ClassicOut {
		o.rate = rate.NewLimiter(rate.Limit(n.cfg.linkRate), max(1, n.cfg.linkRate/10))
	}
	if o.kind != mesh.ClassicIn {
		// Peers and classic engines are where forwarded dispatches go;
		// the engine finds their origin again from the link.
		n.links.Store(l, o)
	}
	n.watch(o)
	return o.receive
}

// linkOrigin is the engine's Origin for a link.
type linkOrigin struct {
	n     *Node
	l     mesh.Link
	kind  mesh.LinkKind
	peer  peer.ID     // the peer at the other end of a PeerLink
	prov  atomic.Bool // a classic client declared the "provisional" extension
	limit int64
	rate  *rate.Limiter // nil: no rate limit (WithLinkRate)

	// inflight counts deliveries caused by this link's dispatches that
	// are queued or running. At the limit the link is not read until one
	// completes: a peer that sends faster than it is served is slowed by
	// its transport's flow control instead of growing queues here.
	inflight atomic.Int64
	wake     chan struct{}

	// outstanding counts the transactions this engine passed on to the
	// link and still waits for; latency is the moving average of how long
	// their answers took (nanoseconds). Replica choice reads both.
	outstanding atomic.Int64
	latency     atomic.Int64
	// remoteLoad is the peer's requests in flight as its last answer
	// said (LoadHeader), remoteLoadAt when (Unix nanoseconds).
	remoteLoad, remoteLoadAt atomic.Int64
	// remoteLoadOwn is how many of this engine's own requests the
	// remote count included: the outstanding ones but the answered one.
	remoteLoadOwn atomic.Int64
}

// observe folds one answer's latency into the link's moving average
// (weight 1/8).
func (o *linkOrigin) observe(d time.Duration) {
	old := o.latency.Load()
	if old == 0 {
		o.latency.Store(int64(d))
		return
	}
	o.latency.Store(old + (int64(d)-old)/8)
}

func (o *linkOrigin) ID() string            { return o.l.ID() }
func (o *linkOrigin) Done() <-chan struct{} { return o.l.Done() }

// WantsProvisional: peers always; classic clients once they declare it.
func (o *linkOrigin) WantsProvisional() bool {
	return o.kind == mesh.PeerLink || o.prov.Load()
}

// Sink is the gossipsub topic of ep for a peer's subscriptions.
func (o *linkOrigin) Sink(ep dispatch.Endpoint) Origin {
	if o.kind != mesh.PeerLink || o.n.gossip == nil {
		return nil
	}
	return o.n.gossip.sink(ep)
}

// Deliver queues d on the link: answers and exceptions always (they are
// bounded by the link's requests in flight), anything else only when the
// link keeps up.
func (o *linkOrigin) Deliver(_ context.Context, d *dispatch.Dispatch) error {
	if d = o.out(d); d == nil {
		return nil
	}
	switch d.Kind() {
	case dispatch.Answer, dispatch.Exception:
		return o.l.Push(d)
	}
	return o.l.Offer(d)
}

// send queues a dispatch this engine passes on, waiting for room: the
// sender is slowed down rather than its dispatch dropped.
func (o *linkOrigin) send(ctx context.Context, d *dispatch.Dispatch) error {
	if d = o.out(d); d == nil {
		return nil
	}
	return o.l.Send(ctx, d)
}

// idle reports whether the link carries nothing in flight but the
// dispatch about to be sent (counted already).
func (o *linkOrigin) idle() bool { return o.outstanding.Load() <= 1 }

// sendNow writes a dispatch on the caller's goroutine when the link's
// queue is idle, and queues it otherwise (FrameQueue.SendNow). A lone
// request saves the hand-over to the queue's writer, while requests that
// overlap go through the queue, whose writer sends them together (one
// write for many instead of one each, FrameQueue.Run).
func (o *linkOrigin) sendNow(ctx context.Context, d *dispatch.Dispatch) error {
	if d = o.out(d); d == nil {
		return nil
	}
	return o.l.SendNow(ctx, d)
}

// offer queues a dispatch this engine passes on if there is room.
func (o *linkOrigin) offer(d *dispatch.Dispatch) error {
	if d = o.out(d); d == nil {
		return nil
	}
	return o.l.Offer(d)
}

// out is d as the link reads it: the classic dialect for classic links,
// nil when d is not for this link.
func (o *linkOrigin) out(d *dispatch.Dispatch) *dispatch.Dispatch {
	if o.kind == mesh.PeerLink {
		return d
	}
	return o.classicOut(d)
}

// receive is the link's FrameFunc.
func (o *linkOrigin) receive(ctx context.Context, frame []byte, ferr error) {
	n := o.n
	if ferr != nil {
		n.refuse(ctx, replyTo{o: o}, nil, ferr)
		return
	}
	if !o.admit(ctx) {
		return
	}
	d, err := n.cfg.decoder.Decode(frame)
	if err != nil {
		n.refuse(ctx, replyTo{o: o}, d, err)
		return
	}
	rt := replyTo{o: o, via: takeVia(d)}
	if o.kind == mesh.PeerLink && d.Kind() == dispatch.Answer {
		o.takeLoad(d)
	}
	if o.kind != mesh.PeerLink {
		o.classicIn(d, &rt)
	}
	n.receive(ctx, rt, d)
}

// admit waits until the link may send more: its requests in flight are
// under the limit and, for a gateway's client, what it has not read yet of
// its answers fits its queue. A peer link is never held for its own
// backlog: two peers that each waited for the other to read would wait
// for ever; its backlog is bounded by what it has in flight instead.
func (o *linkOrigin) admit(ctx context.Context) bool {
	if o.kind == mesh.ClassicIn {
		if err := o.l.WaitRoom(ctx); err != nil {
			return false
		}
	}
	if o.rate != nil {
		// Over its rate the link is read no faster: the sender is slowed
		// by flow control, nothing it sent is dropped.
		if d := o.rate.Reserve().Delay(); d > 0 {
			o.n.stats.rateLimited.Add(1)
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return false
			case <-o.l.Done():
				t.Stop()
				return false
			}
		}
	}
	for o.inflight.Load() >= o.limit {
		o.n.stats.held.Add(1)
		select {
		case <-o.wake:
		case <-ctx.Done():
			return false
		case <-o.l.Done():
			return false
		}
	}
	return true
}

func (o *linkOrigin) hold() { o.inflight.Add(1) }

func (o *linkOrigin) release() {
	if o.inflight.Add(-1) < o.limit {
		select {
		case o.wake <- struct{}{}:
		default:
		}
	}
}

// holdFor and releaseFor count a delivery against the link that caused
// it, when it was a link.
func holdFor(o Origin) {
	if lo, ok := o.(*linkOrigin); ok {
		lo.hold()
	}
}

func releaseFor(o Origin) {
	if lo, ok := o.(*linkOrigin); ok {
		lo.release()
	}
}

// linkTo returns the origin of the link that leads to host element to,
// opening one if needed; the forwarder's errors (ErrLocalHop among them)
// come back as they are.
func (n *Node) linkTo(ctx context.Context, to dispatch.Host) (*linkOrigin, error) {
	if n.cfg.forwarder == nil {
		return nil, dispatch.Errorf(dispatch.ErrNotGateway, "this engine forwards nothing")
	}
	l, err := n.cfg.forwarder.Route(ctx, to)
	if err != nil {
		return nil, err
	}
	next, ok := n.linkOf(l)
	if !ok {
		return nil, dispatch.Errorf(dispatch.ErrInternal, "no engine attached to the link towards %s", to)
	}
	return next, nil
}

// linkOf returns the origin of a link the engine was attached to.
func (n *Node) linkOf(l mesh.Link) (*linkOrigin, bool) {
	v, ok := n.links.Load(l)
	if !ok {
		return nil, false
	}
	return v.(*linkOrigin), true
}

// ViaHeader carries the label an engine gave a transaction it passed on;
// answers carry it back, and the engine finds the emitter by it. It is a
// routing header, like host and hops: every gateway rewrites it, and
// signatures leave it out.
const ViaHeader = "via"

// LoadHeader carries, on a final answer from one peer to the next, how
// many requests the answering peer has in flight (its RIF). Replica
// choice reads it: between two peers that talk, it is as fresh as their
// last answer, where the gossiped reports are seconds old. It is a
// per-link header: taken off where it arrives, never relayed, never
// signed.
const LoadHeader = "rif"

// setLoad puts this engine's requests in flight on an answer to a peer.
func (n *Node) setLoad(d *dispatch.Dispatch) {
	// The answer being sent ends one of them: the count is what remains.
	d.Extra.Set(LoadHeader, smallInt(int(max(n.InFlight()-1, 0))))
}

// takeLoad takes the load header off an answer from a peer and keeps it
// for the link.
func (o *linkOrigin) takeLoad(d *dispatch.Dispatch) {
	raw, ok := d.Extra.Get(LoadHeader)
	if !ok {
		return
	}
	d.Extra.Delete(LoadHeader)
	if v, err := strconv.ParseInt(string(raw), 10, 64); err == nil && v >= 0 {
		o.remoteLoad.Store(v)
		o.remoteLoadOwn.Store(max(o.outstanding.Load()-1, 0))
		o.remoteLoadAt.Store(time.Now().UnixNano())
	}
}

// remoteInFlight is the peer's requests in flight as its last answer
// said, when that answer is recent, brought up to date with what this
// engine sent it or heard back from it since: the count covered this
// engine's requests then, and this engine knows exactly how its own
// changed. Only the other emitters' part is as old as the answer.
func (o *linkOrigin) remoteInFlight() (int64, bool) {
	at := o.remoteLoadAt.Load()
	if at == 0 || time.Since(time.Unix(0, at)) > loadFresh {
		return 0, false
	}
	own := o.outstanding.Load()
	return max(o.remoteLoad.Load()+own-o.remoteLoadOwn.Load(), own), true
}

// loadFresh is how long a piggybacked load is preferred to the gossiped
// one: about the gossip heartbeat at the default interval.
const loadFresh = 10 * time.Second

// takeVia removes the via header from d and returns it.
func takeVia(d *dispatch.Dispatch) string {
	raw, ok := d.Extra.Get(ViaHeader)
	if !ok {
		return ""
	}
	d.Extra.Delete(ViaHeader)
	s := string(raw)
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' || strings.ContainsAny(s[1:len(s)-1], `"\`) {
		return "" // labels are plain strings; anything else is not ours
	}
	return s[1 : len(s)-1]
}

// setVia sets (or, with an empty label, removes) the via header of a
// dispatch the engine owns alone.
func setVia(d *dispatch.Dispatch, label string) {
	if label == "" {
		d.Extra.Delete(ViaHeader)
		return
	}
	d.Extra.Set(ViaHeader, quote(label))
}

// withVia returns d with the via header set to label (or removed when
// label is empty), sharing everything else with d.
func withVia(d *dispatch.Dispatch, label string) *dispatch.Dispatch {
	if had := d.Extra.Has(ViaHeader); !had && label == "" {
		return d
	}
	c := *d
	setVia(&c, label) // a new Extra: d's stays as it is
	return &c
}

func quote(s string) json.RawMessage {
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func hasExtension(protocol []string, ext string) bool {
	return len(protocol) > 2 && slices.ContainsFunc(protocol[2:], func(p string) bool { return strings.EqualFold(p, ext) })
}
