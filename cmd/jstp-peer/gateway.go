package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/mesh"
)

// Timeouts of a gateway connection. The gateway is a peer on this machine
// (or a classic engine nearby): it accepts at once or not at all.
const (
	gatewayDialTimeout  = 5 * time.Second
	gatewayWriteTimeout = 10 * time.Second
)

// received is one line read from a gateway: a dispatch, or the error that
// kept it from decoding (with the line, for the message).
type received struct {
	d    *dispatch.Dispatch
	line string
	err  error
}

// gatewayConn is a client connection to a classic TCP gateway: one JSON
// dispatch per line each way. A reader goroutine, owned by the conn and
// stopped by Close, decodes what arrives onto In.
type gatewayConn struct {
	addr string
	conn net.Conn
	in   chan received
	done chan struct{}
	wg   sync.WaitGroup

	wmu sync.Mutex // one writer at a time: lines must not interleave

	once    sync.Once
	readErr error // why In closed; written before close(in)
}

// errNoPeer is wrapped by dialGateway's error when nothing accepts at the
// address.
var errNoPeer = errors.New("no peer")

// dialGateway connects to the TCP gateway at addr.
func dialGateway(ctx context.Context, addr string) (*gatewayConn, error) {
	dctx, cancel := context.WithTimeout(ctx, gatewayDialTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w at %s: %w", errNoPeer, addr, err)
	}
	g := &gatewayConn{addr: addr, conn: conn, in: make(chan received, 64), done: make(chan struct{})}
	g.wg.Add(1)
	go g.read()
	return g, nil
}

// read decodes lines until the connection ends or Close is called. The
// frame reader bounds every line (1 MiB), so a misbehaving peer costs at
// most that much memory.
func (g *gatewayConn) read() {
	defer g.wg.Done()
	defer close(g.in)
	fr := mesh.NewFrameReader(g.conn, 0)
	fr.AcceptUnterminated = true
	// Quirks: the gateway may be a classic Node.js engine, which leaves
	// out what the drafts require (docs/classic-wire.md).
	dec := dispatch.Decoder{Quirks: true}
	for {
		frame, err := fr.ReadFrame()
		var r received
		switch {
		case errors.Is(err, dispatch.ErrTooLarge):
			r.err = err
		case err != nil:
			g.readErr = err
			return
		default:
			r.d, r.err = dec.Decode(frame)
			if r.err != nil {
				r.line = string(frame)
			}
		}
		select {
		case g.in <- r:
		case <-g.done:
			return
		}
	}
}

// In delivers what the gateway sends, and closes when the connection
// ends (Err then says why).
func (g *gatewayConn) In() <-chan received { return g.in }

// Err is why In closed: io.EOF when the peer closed the connection.
// Valid once In is closed.
func (g *gatewayConn) Err() error { return g.readErr }

// Send writes one dispatch as one line.
func (g *gatewayConn) Send(d *dispatch.Dispatch) error {
	line := append(d.AppendJSON(nil), '\n')
	g.wmu.Lock()
	defer g.wmu.Unlock()
	if err := g.conn.SetWriteDeadline(time.Now().Add(gatewayWriteTimeout)); err != nil {
		return fmt.Errorf("writing to %s: %w", g.addr, err)
	}
	if _, err := g.conn.Write(line); err != nil {
		return fmt.Errorf("writing to %s: %w", g.addr, err)
	}
	return nil
}

// Close closes the connection and waits for the reader. A FIN goes out
// first: a classic engine releases the connection's subscriptions on it.
func (g *gatewayConn) Close() error {
	var err error
	g.once.Do(func() {
		close(g.done)
		if tc, ok := g.conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		err = g.conn.Close()
		g.wg.Wait()
	})
	return err
}

// closedReason describes why a gateway connection ended, for messages.
func closedReason(g *gatewayConn) string {
	if err := g.Err(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Sprintf("the connection to %s failed: %v", g.addr, err)
	}
	return fmt.Sprintf("the peer at %s closed the connection", g.addr)
}
