package mesh

import (
	"context"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// LinkKind says what is at the other end of a Link.
type LinkKind int

const (
	// PeerLink is a session with another peer of the mesh over libp2p
	// streams (Session).
	PeerLink LinkKind = iota + 1
	// ClassicIn is a classic client or engine that connected to one of
	// this peer's gateways (TCP or WebSocket).
	ClassicIn
	// ClassicOut is a classic engine this peer connected to (Dialer).
	ClassicOut
)

func (k LinkKind) String() string {
	switch k {
	case PeerLink:
		return "peer"
	case ClassicIn:
		return "classic-in"
	case ClassicOut:
		return "classic-out"
	}
	return "link"
}

// Link is one connection that carries dispatches, in both directions: a
// session with a peer, or a classic connection. mesh moves its frames; what
// they mean is the engine's business (see Ingress).
//
// The three ways of writing differ only in what happens when the link's
// outgoing queue is full: Send waits for room, Offer refuses with an error
// wrapping dispatch.ErrUnavailable, Push queues beyond the bound. All of
// them encode d before returning, fail once the link is closed, and are
// safe for concurrent use.
type Link interface {
	// ID names the link in logs and in the engine: the peer id for a
	// peer link, "tcp:ADDR" or "ws:ADDR" for a classic one.
	ID() string
	// Kind says what is at the other end.
	Kind() LinkKind
	// Remote is the peer id of a peer link and the remote network
	// address ("host:port") of a classic one.
	Remote() string
	// Done is closed when the link ends.
	Done() <-chan struct{}

	// Send queues d, waiting for room until ctx ends.
	Send(ctx context.Context, d *dispatch.Dispatch) error
	// SendNow is Send that writes on the caller's goroutine when the
	// link is idle (FrameQueue.SendNow): for callers that may block,
	// never for a goroutine others depend on.
	SendNow(ctx context.Context, d *dispatch.Dispatch) error
	// Offer queues d, or refuses it when the queue is full.
	Offer(d *dispatch.Dispatch) error
	// Push queues d whatever the queue holds.
	Push(d *dispatch.Dispatch) error
	// WaitRoom waits until Offer would accept a dispatch, the link
	// closes, or ctx ends (its error).
	WaitRoom(ctx context.Context) error

	// Close ends the link.
	Close()
}

// FrameFunc receives what a link reads, frame by frame, on the link's read
// goroutine (a session reads each of its streams on a goroutine of its
// own, so calls for one link may be concurrent). The frame aliases the
// reader's buffer: it is valid until the function returns. err is non-nil
// for a frame the link could not read, and frame is then nil: one too
// large (err wraps dispatch.ErrTooLarge; it was skipped) or a WebSocket
// message that is not text (dispatch.ErrBadDispatch). Reading goes on.
//
// The function may block: the link reads nothing more meanwhile, which is
// how a peer that sends faster than it is served is slowed down by the
// transport's own flow control. It must return once ctx ends.
type FrameFunc func(ctx context.Context, frame []byte, err error)

// Ingress is where links deliver what they read: the engine. Attach is
// called once for every link, before its first frame is read; the frames
// go to the function it returns. Attach must not block.
type Ingress interface {
	Attach(l Link) FrameFunc
}
