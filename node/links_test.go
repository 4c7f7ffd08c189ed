package node

import (
	"context"
	"sync"
	"testing"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/mesh"
)

// memLink is an in-process mesh.Link: what one engine sends on it, the
// engine at the other end reads, frame by frame, in order, as a stream
// would carry it. A link with no other end records what is sent instead.
type memLink struct {
	id     string
	kind   mesh.LinkKind
	out    chan []byte
	sent   chan *dispatch.Dispatch
	done   chan struct{}
	once   sync.Once
	frames mesh.FrameFunc
}

func newMemLink(id string, kind mesh.LinkKind) *memLink {
	return &memLink{id: id, kind: kind, out: make(chan []byte, 4096), sent: make(chan *dispatch.Dispatch, 4096), done: make(chan struct{})}
}

func (l *memLink) ID() string            { return l.id }
func (l *memLink) Kind() mesh.LinkKind   { return l.kind }
func (l *memLink) Remote() string        { return l.id }
func (l *memLink) Done() <-chan struct{} { return l.done }
func (l *memLink) Close()                { l.once.Do(func() { close(l.done) }) }
func (l *memLink) WaitRoom(context.Context) error {
	return nil
}

func (l *memLink) put(ctx context.Context, d *dispatch.Dispatch, wait bool) error {
	frame := d.AppendJSON(nil)
	if c, err := dispatch.Decode(frame); err == nil {
		select {
		case l.sent <- c:
		default:
		}
	}
	if wait {
		select {
		case l.out <- frame:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-l.done:
			return dispatch.Errorf(dispatch.ErrNotGateway, "link closed")
		}
	}
	select {
	case l.out <- frame:
		return nil
	default:
		return dispatch.Errorf(dispatch.ErrUnavailable, "link full")
	}
}

func (l *memLink) Send(ctx context.Context, d *dispatch.Dispatch) error { return l.put(ctx, d, true) }
func (l *memLink) SendNow(ctx context.Context, d *dispatch.Dispatch) error {
	return l.put(ctx, d, true)
}
func (l *memLink) Offer(d *dispatch.Dispatch) error { return l.put(context.Background(), d, false) }
func (l *memLink) Push(d *dispatch.Dispatch) error  { return l.put(context.Background(), d, true) }

// pipeLinks attaches a link on each engine and carries what each sends to
// the other. The link on a is named after b, and the other way round.
func pipeLinks(t *testing.T, a, b *Node) (ab, ba *memLink) {
	ab, ba = newMemLink(b.ID(), mesh.PeerLink), newMemLink(a.ID(), mesh.PeerLink)
	ab.frames, ba.frames = a.Attach(ab), b.Attach(ba)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	carry := func(from, to *memLink) {
		defer wg.Done()
		for {
			select {
			case f := <-from.out:
				to.frames(ctx, f, nil)
			case <-ctx.Done():
				return
			}
		}
	}
	wg.Add(2)
	go carry(ab, ba)
	go carry(ba, ab)
	t.Cleanup(func() { cancel(); wg.Wait() })
	return ab, ba
}

// recordLink attaches a link to n that records what n sends on it.
func recordLink(n *Node, id string) *memLink {
	l := newMemLink(id, mesh.PeerLink)
	l.frames = n.Attach(l)
	return l
}

type forwarderFunc func(ctx context.Context, to dispatch.Host) (mesh.Link, error)

func (f forwarderFunc) Route(ctx context.Context, to dispatch.Host) (mesh.Link, error) {
	return f(ctx, to)
}
