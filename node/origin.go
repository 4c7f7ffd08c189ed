package node

import (
	"context"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// Origin is where dispatches come from and where what they cause goes
// back: answers and exceptions for the dispatches it sent, and the
// dispatches that trigger the subscriptions it made. Every link of the
// mesh (Attach) is one; applications can make their own for Receive.
//
// Deliver is called from the engine's workers and read loops,
// concurrently; it must not block for long. Answers and exceptions must
// not be lost: they are bounded by the requests the origin was let have in
// flight. Other dispatches (events for its subscriptions) may be refused
// with an error wrapping dispatch.ErrUnavailable when the origin does not
// keep up. Done is closed when the origin goes away; the engine then
// releases every subscription it made, as if it had sent RELEASEs. A nil
// Done means the origin never goes away.
type Origin interface {
	ID() string
	Deliver(ctx context.Context, d *dispatch.Dispatch) error
	Done() <-chan struct{}
}

// Provisional is implemented by origins that understand provisional
// answers: engines of this project across the mesh, and clients that
// declare the "provisional" protocol extension. They are told which
// triggering ids to expect (ANSWER 102) so their emitter can answer 504
// for the missing ones. Classic engines are not sent them.
type Provisional interface {
	Origin
	WantsProvisional() bool
}

// Fanout is implemented by origins whose subscriptions share sinks. A
// dispatch that matches several subscriptions with the same sink is
// delivered to the sink once, as a notification: it is not answered and
// not counted among the answers the emitter waits for. Peers use it so one
// gossipsub publish reaches every subscriber of a topic. Sink returns nil
// when the origin has no sink for ep.
type Fanout interface {
	Origin
	Sink(ep dispatch.Endpoint) Origin
}

// localOrigin stands for the application using the Go API: answers for
// its transactions go to the transaction table.
type localOrigin struct{ n *Node }

func (l localOrigin) ID() string { return "local" }

func (l localOrigin) Done() <-chan struct{} { return nil }

func (l localOrigin) Deliver(ctx context.Context, d *dispatch.Dispatch) error {
	l.n.deliverLocal(d)
	return nil
}

func (l localOrigin) WantsProvisional() bool { return true }

func provisional(o Origin) bool {
	p, ok := o.(Provisional)
	return ok && p.WantsProvisional()
}
