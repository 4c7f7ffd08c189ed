package mesh

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// Conn is a Link with a classic JSTP client or engine: newline-delimited
// JSON over TCP, or one dispatch per WebSocket text message, in either
// direction (a gateway's client, or an engine the Dialer reached). Both
// write through a FrameQueue; a WebSocket writes each queued frame as a
// message of its own.
//
// What is written is written as given: making a dispatch readable by the
// classic engines is the engine's job, not the link's.
type Conn struct {
	id     string
	kind   LinkKind
	remote string
	q      *FrameQueue
	frames FrameFunc
	log    *slog.Logger
	shut   func()
	done   chan struct{}
	once   sync.Once

	lastSend atomic.Int64 // Unix nanoseconds of the last frame queued
}

// ID is "tcp:ADDR" or "ws:ADDR".
func (c *Conn) ID() string { return c.id }

// Kind is ClassicIn for a gateway's connections, ClassicOut for a Dialer's.
func (c *Conn) Kind() LinkKind { return c.kind }

// Remote is the other end's network address.
func (c *Conn) Remote() string { return c.remote }

// Done is closed when the connection ends.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Close ends the connection: what was queued is written first (within
// classicDrainTimeout).
func (c *Conn) Close() {
	c.once.Do(func() {
		close(c.done)
		c.shut()
	})
}

// Send queues d, waiting for room until ctx ends.
func (c *Conn) Send(ctx context.Context, d *dispatch.Dispatch) error {
	c.lastSend.Store(time.Now().UnixNano())
	return c.q.Enqueue(ctx, d)
}

// SendNow is Send that writes on the caller's goroutine when the
// connection is idle.
func (c *Conn) SendNow(ctx context.Context, d *dispatch.Dispatch) error {
	c.lastSend.Store(time.Now().UnixNano())
	return c.q.SendNow(ctx, d)
}

// Offer queues d unless the queue is full.
func (c *Conn) Offer(d *dispatch.Dispatch) error {
	c.lastSend.Store(time.Now().UnixNano())
	return c.q.TryEnqueue(d)
}

// Push queues d whatever the queue holds.
func (c *Conn) Push(d *dispatch.Dispatch) error {
	c.lastSend.Store(time.Now().UnixNano())
	return c.q.Push(d)
}

// WaitRoom waits until Offer would accept a dispatch.
func (c *Conn) WaitRoom(ctx context.Context) error { return c.q.WaitRoom(ctx) }

// serveStream reads newline-delimited frames from r until it ends and
// returns why (io.EOF for the peer's FIN). Once the connection is closing
// what still arrives is read, so that closing sends no reset, but not
// delivered.
func (c *Conn) serveStream(ctx context.Context, r io.Reader, max int) error {
	fr := NewFrameReader(r, max)
	fr.AcceptUnterminated = true
	for {
		frame, err := fr.ReadFrame()
		if err != nil && !errors.Is(err, dispatch.ErrTooLarge) {
			return err
		}
		select {
		case <-c.done:
			continue
		default:
		}
		c.frames(ctx, frame, err)
	}
}

// Closing a classic TCP connection.
const (
	// classicLingerIdle and classicLingerMax: after a client's FIN the
	// gateway keeps the connection open for writing until nothing has been
	// queued for it for classicLingerIdle (at most classicLingerMax), so
	// the answers to its last dispatches still reach it: a client that
	// writes its request and half-closes (socket.end(json), a shell
	// one-liner) reads the answer after its FIN. Its subscriptions end
	// when the connection does.
	classicLingerIdle = 250 * time.Millisecond
	classicLingerMax  = 15 * time.Second
	// classicDrainTimeout bounds the two halves of a close: writing what
	// was queued, and reading until the peer's FIN after ours.
	classicDrainTimeout = 2 * time.Second
)

// linger waits, after the peer's FIN, until the connection has been idle
// for classicLingerIdle (see above), or it closes.
func (c *Conn) linger(ctx context.Context) {
	start := time.Now()
	t := time.NewTimer(classicLingerIdle)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-c.done:
			return
		case <-ctx.Done():
			return
		}
		now := time.Now()
		idle := now.Sub(time.Unix(0, max(c.lastSend.Load(), start.UnixNano())))
		if (idle >= classicLingerIdle && c.q.Len() == 0) || now.Sub(start) >= classicLingerMax {
			return
		}
		t.Reset(max(classicLingerIdle-idle, 10*time.Millisecond))
	}
}

// connConfig is what a new classic connection needs from its owner.
type connConfig struct {
	kind     LinkKind
	in       Ingress
	queueLen int
	maxFrame int
	log      *slog.Logger
	wg       *sync.WaitGroup // the owner's: Close waits for the connection's goroutines
}

// newTCPConn wires a TCP connection: a FrameQueue writes, serveStream
// reads. Closing writes what was queued, then sends a FIN and reads until
// the peer's FIN (both bounded by classicDrainTimeout) before closing the
// socket: the Node engine treats a reset as fatal, and only a FIN
// releases the connection's subscriptions there.
func newTCPConn(ctx context.Context, conn net.Conn, cfg connConfig) *Conn {
	c := &Conn{
		id:     "tcp:" + conn.RemoteAddr().String(),
		kind:   cfg.kind,
		remote: conn.RemoteAddr().String(),
		q:      NewFrameQueue(conn, cfg.queueLen),
		log:    cfg.log,
		done:   make(chan struct{}),
	}
	c.shut = func() {
		c.q.Close()
		// A write blocked on a peer that does not read must end too;
		// when the owner is closing, at once.
		d := classicDrainTimeout
		if ctx.Err() != nil {
			d = 0
		}
		conn.SetWriteDeadline(time.Now().Add(d))
	}
	c.frames = cfg.in.Attach(c)
	readDone := make(chan struct{})
	cfg.wg.Add(2)
	go func() {
		defer cfg.wg.Done()
		c.q.Run(ctx)
		c.Close()
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		conn.SetReadDeadline(time.Now().Add(classicDrainTimeout))
		<-readDone
		conn.Close()
	}()
	go func() {
		defer cfg.wg.Done()
		defer close(readDone)
		err := c.serveStream(ctx, conn, cfg.maxFrame)
		if errors.Is(err, io.EOF) && cfg.kind == ClassicIn {
			c.linger(ctx)
		}
		c.Close()
	}()
	return c
}

// wsWriter writes each frame of a FrameQueue batch as a WebSocket text
// message of its own: frames never contain a raw newline, so the batch
// splits back into them.
type wsWriter struct {
	ctx  context.Context
	conn *websocket.Conn
}

func (w wsWriter) Write(batch []byte) (int, error) {
	n := 0
	for len(batch) > 0 {
		i := bytes.IndexByte(batch, '\n')
		if i < 0 {
			i = len(batch)
		}
		if err := w.conn.Write(w.ctx, websocket.MessageText, batch[:i]); err != nil {
			return n, err
		}
		n += min(i+1, len(batch))
		batch = batch[min(i+1, len(batch)):]
	}
	return n, nil
}

// newWSConn wires a WebSocket connection: one dispatch per text message
// each way.
func newWSConn(ctx context.Context, conn *websocket.Conn, remote string, cfg connConfig) *Conn {
	// Reads and writes use a context of the connection's own: the
	// library cuts the socket when theirs is cancelled, and closing the
	// owner cancels ctx, which must not pre-empt the close handshake.
	wctx, wcancel := context.WithCancel(context.WithoutCancel(ctx))
	c := &Conn{
		id:     "ws:" + remote,
		kind:   cfg.kind,
		remote: remote,
		q:      NewFrameQueue(wsWriter{wctx, conn}, cfg.queueLen),
		log:    cfg.log,
		done:   make(chan struct{}),
	}
	c.shut = func() {
		c.q.Close()
		conn.Close(websocket.StatusNormalClosure, "")
		wcancel()
	}
	c.frames = cfg.in.Attach(c)
	// Allow the Node client's trailing newline on top of the frame limit.
	conn.SetReadLimit(int64(cfg.maxFrame) + 2)
	cfg.wg.Add(2)
	go func() {
		defer cfg.wg.Done()
		defer c.Close()
		c.q.Run(ctx)
	}()
	go func() {
		defer cfg.wg.Done()
		defer c.Close()
		for {
			typ, msg, err := conn.Read(wctx)
			if err != nil {
				if errors.As(err, new(websocket.CloseError)) || ctx.Err() != nil {
					return
				}
				if errors.Is(err, websocket.ErrMessageTooBig) || isTooBig(err) {
					c.frames(ctx, nil, dispatch.Errorf(dispatch.ErrTooLarge, "WebSocket message over %d bytes", cfg.maxFrame))
				}
				return
			}
			if typ != websocket.MessageText {
				c.frames(ctx, nil, dispatch.Errorf(dispatch.ErrBadDispatch, "binary WebSocket message; dispatches are text"))
				continue
			}
			if frame := TrimMessage(msg); len(frame) > 0 {
				c.frames(ctx, frame, nil)
			}
		}
	}()
	return c
}

func isTooBig(err error) bool {
	var ce websocket.CloseError
	return errors.As(err, &ce) && ce.Code == websocket.StatusMessageTooBig
}
