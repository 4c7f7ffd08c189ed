package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/routing"
)

// Default gateway addresses. 33333 is the customary JSTP port; both
// gateways listen on loopback by default, for local applications.
const (
	DefaultGatewayTCP = "127.0.0.1:33333"
	DefaultGatewayWS  = "127.0.0.1:33334"
)

// classicDialTimeout bounds connecting to a classic engine.
const classicDialTimeout = 10 * time.Second

// classicConn is one connection with a classic engine or client, TCP or
// WebSocket, in either direction. It is the engine's Origin for what
// arrives on it, and what is delivered to it is adapted to what the
// Node.js engine can read (docs/classic-wire.md §7).
type classicConn struct {
	id   string
	recv Receiver
	// outbound is set on connections we opened to a classic engine.
	outbound bool
	log      *slog.Logger
	send     func(ctx context.Context, frame []byte, wait bool) error
	shut     func()
	done     chan struct{}
	once     sync.Once
}

func (c *classicConn) ID() string            { return c.id }
func (c *classicConn) Done() <-chan struct{} { return c.done }

func (c *classicConn) close() {
	c.once.Do(func() {
		close(c.done)
		c.shut()
	})
}

// Deliver queues d without waiting (ErrUnavailable when the peer is not
// reading).
func (c *classicConn) Deliver(ctx context.Context, d *dispatch.Dispatch) error {
	frame, ok := c.encode(d)
	if !ok {
		return nil
	}
	return c.send(ctx, frame, false)
}

// write queues d, waiting for room until ctx ends.
func (c *classicConn) write(ctx context.Context, d *dispatch.Dispatch) error {
	frame, ok := c.encode(d)
	if !ok {
		return nil
	}
	return c.send(ctx, frame, true)
}

// adaptClassic makes a dispatch readable by the Node.js engine
// (docs/classic-wire.md §7): every dispatch carries a token header, and
// answers carry token [] (the engine echoes an answer with a transaction
// in its token back as "[object Object]") and a triggering id (a
// whole-transaction answer gets a fresh one, which the engine's answer
// binding ["*", txid, "*"] accepts; it drops two-element answers).
func adaptClassic(d *dispatch.Dispatch) *dispatch.Dispatch {
	_, txid, trig, isAnswer := d.AnswerInfo()
	if !isAnswer && d.Token != nil {
		return d
	}
	c := *d
	if c.Token == nil || isAnswer {
		c.Token = []any{}
	}
	if isAnswer && trig == "" {
		c.Resource = []any{d.Resource[0], txid, "whole-" + uuid.NewString()}
	}
	return &c
}

// encode adapts d for the classic peer. Exception dispatches are not sent
// to engines we connected to: the Node engine cannot read them (it fails
// on the missing method and drops the rest of the chunk), and the one it
// would get most is a 406 for its own completion notice, a RELEASE of
// ANSWER ["*", txid, "*"] that must not be answered (§7). Failures of
// dispatches that wanted answers travel as ANSWERs, which are sent.
func (c *classicConn) encode(d *dispatch.Dispatch) ([]byte, bool) {
	if c.outbound && d.Kind() == dispatch.Exception {
		c.log.Debug("not sending an exception to a classic engine", "conn", c.id, "code", d.Exception.Code, "message", d.Exception.Message)
		return nil, false
	}
	return adaptClassic(d).AppendJSON(nil), true
}

// serveStream reads newline-delimited frames from r until it ends and
// returns why (io.EOF for the peer's FIN). Once the connection is closing
// what still arrives is read, so that closing sends no reset, but not
// processed.
func (c *classicConn) serveStream(ctx context.Context, r io.Reader, max int) error {
	fr := NewFrameReader(r, max)
	fr.AcceptUnterminated = true
	for {
		frame, err := fr.ReadFrame()
		if err != nil {
			if errors.Is(err, dispatch.ErrTooLarge) {
				c.log.Info("classic frame too large", "conn", c.id, "err", err)
				c.Deliver(ctx, dispatch.NewException(err, nil))
				continue
			}
			return err
		}
		select {
		case <-c.done:
			continue
		default:
		}
		c.recv.ReceiveFrame(ctx, c, frame)
	}
}

// Closing a classic TCP connection.
const (
	// classicLingerIdle and classicLingerMax: after a client's FIN the
	// gateway keeps the connection open for writing until nothing has been
	// delivered to it for classicLingerIdle (at most classicLingerMax), so
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
func (c *classicConn) linger(ctx context.Context, last *atomic.Int64) {
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
		idle := now.Sub(time.Unix(0, max(last.Load(), start.UnixNano())))
		if idle >= classicLingerIdle || now.Sub(start) >= classicLingerMax {
			return
		}
		t.Reset(classicLingerIdle - idle)
	}
}

// newTCPConn wires a TCP connection: a FrameQueue writes, serveStream
// reads. Closing writes what was queued, then sends a FIN and reads until
// the peer's FIN (both bounded by classicDrainTimeout) before closing the
// socket: the Node engine treats a reset as fatal, and only a FIN
// releases the connection's subscriptions there.
func newTCPConn(ctx context.Context, conn net.Conn, outbound bool, recv Receiver, queueLen int, log *slog.Logger, wg *sync.WaitGroup) *classicConn {
	q := NewFrameQueue(conn, queueLen)
	var lastSend atomic.Int64
	c := &classicConn{
		id:       "tcp:" + conn.RemoteAddr().String(),
		recv:     recv,
		outbound: outbound,
		log:      log,
		done:     make(chan struct{}),
		send: func(ctx context.Context, frame []byte, wait bool) error {
			lastSend.Store(time.Now().UnixNano())
			if wait {
				return q.EnqueueFrame(ctx, frame)
			}
			return q.TryEnqueueFrame(frame)
		},
	}
	c.shut = func() {
		q.Close()
		// A write blocked on a peer that does not read must end too;
		// when the gateway is closing, at once.
		d := classicDrainTimeout
		if ctx.Err() != nil {
			d = 0
		}
		conn.SetWriteDeadline(time.Now().Add(d))
	}
	max := recv.Decoder().MaxSize
	if max <= 0 {
		max = dispatch.DefaultMaxSize
	}
	readDone := make(chan struct{})
	wg.Add(2)
	go func() {
		defer wg.Done()
		q.Run(ctx)
		c.close()
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		conn.SetReadDeadline(time.Now().Add(classicDrainTimeout))
		<-readDone
		conn.Close()
	}()
	go func() {
		defer wg.Done()
		defer close(readDone)
		err := c.serveStream(ctx, conn, max)
		if errors.Is(err, io.EOF) && !outbound {
			c.linger(ctx, &lastSend)
		}
		c.close()
	}()
	return c
}

// newWSConn wires a WebSocket connection: one dispatch per text message
// each way.
func newWSConn(ctx context.Context, conn *websocket.Conn, id string, outbound bool, recv Receiver, queueLen int, log *slog.Logger, wg *sync.WaitGroup) *classicConn {
	if queueLen <= 0 {
		queueLen = 1024
	}
	out := make(chan []byte, queueLen)
	c := &classicConn{id: id, recv: recv, outbound: outbound, log: log, done: make(chan struct{})}
	c.send = func(ctx context.Context, frame []byte, wait bool) error {
		select {
		case <-c.done:
			return dispatch.Errorf(dispatch.ErrNotGateway, "connection %s closed", c.id)
		default:
		}
		if !wait {
			select {
			case out <- frame:
				return nil
			default:
				return dispatch.Errorf(dispatch.ErrUnavailable, "connection %s is not reading", c.id)
			}
		}
		select {
		case out <- frame:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return dispatch.Errorf(dispatch.ErrNotGateway, "connection %s closed", c.id)
		}
	}
	// Reads and writes use a context of the connection's own: the
	// library cuts the socket when theirs is cancelled, and closing the
	// gateway cancels ctx, which must not pre-empt the close handshake.
	wctx, wcancel := context.WithCancel(context.WithoutCancel(ctx))
	c.shut = func() {
		conn.Close(websocket.StatusNormalClosure, "")
		wcancel()
	}
	max := recv.Decoder().MaxSize
	if max <= 0 {
		max = dispatch.DefaultMaxSize
	}
	// Allow the Node client's trailing newline on top of the frame limit.
	conn.SetReadLimit(int64(max) + 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer c.close()
		for {
			select {
			case frame := <-out:
				if err := conn.Write(wctx, websocket.MessageText, frame); err != nil {
					return
				}
			case <-c.done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		defer c.close()
		for {
			typ, msg, err := conn.Read(wctx)
			if err != nil {
				if errors.As(err, new(websocket.CloseError)) || ctx.Err() != nil {
					return
				}
				if errors.Is(err, websocket.ErrMessageTooBig) || isTooBig(err) {
					c.Deliver(ctx, dispatch.NewException(dispatch.Errorf(dispatch.ErrTooLarge, "WebSocket message over %d bytes", max), nil))
				}
				return
			}
			if typ != websocket.MessageText {
				c.Deliver(ctx, dispatch.NewException(dispatch.Errorf(dispatch.ErrBadDispatch, "binary WebSocket message; dispatches are text"), nil))
				continue
			}
			if frame := TrimMessage(msg); len(frame) > 0 {
				c.recv.ReceiveFrame(ctx, c, frame)
			}
		}
	}()
	return c
}

func isTooBig(err error) bool {
	var ce websocket.CloseError
	return errors.As(err, &ce) && ce.Code == websocket.StatusMessageTooBig
}

// Gateway serves classic JSTP clients and engines on TCP (newline-delimited
// JSON) or WebSocket (one dispatch per text message). Every connection is
// an Origin: answers and pushes go back on it, and its subscriptions end
// with it.
type Gateway struct {
	addr  net.Addr
	ln    net.Listener
	srv   *http.Server
	log   *slog.Logger
	recv  Receiver
	qlen  int
	count atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu    sync.Mutex
	conns map[*classicConn]bool
}

func newGateway(ln net.Listener, recv Receiver, log *slog.Logger) *Gateway {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Gateway{
		addr: ln.Addr(), ln: ln, recv: recv, qlen: 1024,
		log:    log.With("component", "gateway"),
		ctx:    ctx,
		cancel: cancel,
		conns:  map[*classicConn]bool{},
	}
}

// ListenTCP starts the TCP gateway on addr ("127.0.0.1:33333").
func ListenTCP(addr string, recv Receiver, log *slog.Logger) (*Gateway, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mesh: TCP gateway: %w", err)
	}
	g := newGateway(ln, recv, log)
	g.wg.Add(1)
	go g.acceptTCP()
	return g, nil
}

func (g *Gateway) acceptTCP() {
	defer g.wg.Done()
	for {
		conn, err := g.ln.Accept()
		if err != nil {
			if g.ctx.Err() == nil {
				g.log.Warn("TCP gateway stopped accepting", "err", err)
			}
			return
		}
		g.track(newTCPConn(g.ctx, conn, false, g.recv, g.qlen, g.log, &g.wg))
	}
}

// ListenWS starts the WebSocket gateway on addr; it accepts an upgrade on
// any path, as the Node engine does, from any origin: JSTP carries no
// ambient credentials a foreign page could abuse, and browsers are meant
// to join.
func ListenWS(addr string, recv Receiver, log *slog.Logger) (*Gateway, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mesh: WebSocket gateway: %w", err)
	}
	g := newGateway(ln, recv, log)
	g.srv = &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Handlers run on the HTTP server's goroutines, which Close
			// does not wait for: count this one before it starts any of
			// its own, or it could add to the WaitGroup after Close's
			// Wait returned.
			g.mu.Lock()
			if g.ctx.Err() != nil {
				g.mu.Unlock()
				http.Error(w, "gateway closing", http.StatusServiceUnavailable)
				return
			}
			g.wg.Add(1)
			g.mu.Unlock()
			defer g.wg.Done()
			conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
			if err != nil {
				return
			}
			c := newWSConn(g.ctx, conn, "ws:"+r.RemoteAddr, false, g.recv, g.qlen, g.log, &g.wg)
			g.track(c)
			// The handler must not return while the connection lives.
			select {
			case <-c.done:
			case <-g.ctx.Done():
			}
		}),
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := g.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Warn("WebSocket gateway stopped", "err", err)
		}
	}()
	return g, nil
}

func (g *Gateway) track(c *classicConn) {
	g.mu.Lock()
	g.conns[c] = true
	g.mu.Unlock()
	g.count.Add(1)
	g.log.Debug("classic connection", "conn", c.id)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		select {
		case <-c.done:
		case <-g.ctx.Done():
			c.close()
		}
		g.mu.Lock()
		delete(g.conns, c)
		g.mu.Unlock()
	}()
}

// Addr is the address the gateway listens on.
func (g *Gateway) Addr() net.Addr { return g.addr }

// Close stops accepting, closes every connection and waits for their
// goroutines.
func (g *Gateway) Close() error {
	g.once.Do(func() {
		g.cancel()
		if g.srv != nil {
			g.srv.Close()
		}
		g.ln.Close()
		g.mu.Lock()
		for c := range g.conns {
			c.close()
		}
		g.mu.Unlock()
		g.wg.Wait()
	})
	return nil
}

// ClassicClient sends dispatches to classic engines, one pooled connection
// per address. What the engine sends back on it (answers, pushes for the
// BINDs sent on it, its own requests) is received like anything else.
type ClassicClient struct {
	recv Receiver
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu    sync.Mutex
	conns map[string]*classicConn
	dials map[string]chan struct{}
}

// NewClassicClient returns a client that hands what it receives to recv.
func NewClassicClient(recv Receiver, log *slog.Logger) *ClassicClient {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &ClassicClient{recv: recv, log: log.With("component", "classic"), ctx: ctx, cancel: cancel,
		conns: map[string]*classicConn{}, dials: map[string]chan struct{}{}}
}

// Forward sends d to the classic engine t, connecting first if needed.
func (cc *ClassicClient) Forward(ctx context.Context, t routing.Target, d *dispatch.Dispatch) error {
	c, err := cc.conn(ctx, t)
	if err != nil {
		return err
	}
	return c.write(ctx, d)
}

func (cc *ClassicClient) conn(ctx context.Context, t routing.Target) (*classicConn, error) {
	key := t.Transport + " " + t.Addr
	for {
		cc.mu.Lock()
		if cc.ctx.Err() != nil {
			cc.mu.Unlock()
			return nil, dispatch.Errorf(dispatch.ErrNotGateway, "classic client closed")
		}
		if c := cc.conns[key]; c != nil {
			select {
			case <-c.done:
				delete(cc.conns, key)
			default:
				cc.mu.Unlock()
				return c, nil
			}
		}
		if wait := cc.dials[key]; wait != nil {
			cc.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		wait := make(chan struct{})
		cc.dials[key] = wait
		cc.mu.Unlock()
		start, abort, err := cc.dial(ctx, t)
		cc.mu.Lock()
		delete(cc.dials, key)
		close(wait)
		var c *classicConn
		if err == nil {
			if cc.ctx.Err() != nil {
				// Closed while dialling: Close has waited already.
				abort()
				err = errors.New("classic client closed")
			} else {
				c = start()
				cc.conns[key] = c
			}
		}
		cc.mu.Unlock()
		if err != nil {
			return nil, dispatch.Errorf(dispatch.ErrNotGateway, "cannot reach the classic engine at %s: %v", t.Addr, err)
		}
		return c, nil
	}
}

// dial connects to t. start wires the connection up and abort drops it;
// conn calls one of them with cc.mu held, so that no connection starts
// goroutines once Close is waiting for them.
func (cc *ClassicClient) dial(ctx context.Context, t routing.Target) (start func() *classicConn, abort func(), err error) {
	dctx, cancel := context.WithTimeout(ctx, classicDialTimeout)
	defer cancel()
	if t.Transport == "ws" {
		conn, _, err := websocket.Dial(dctx, t.Addr, nil)
		if err != nil {
			return nil, nil, err
		}
		return func() *classicConn {
			return newWSConn(cc.ctx, conn, "ws:"+t.Addr, true, cc.recv, 1024, cc.log, &cc.wg)
		}, func() { conn.CloseNow() }, nil
	}
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", t.Addr)
	if err != nil {
		return nil, nil, err
	}
	return func() *classicConn {
		return newTCPConn(cc.ctx, conn, true, cc.recv, 1024, cc.log, &cc.wg)
	}, func() { conn.Close() }, nil
}

// Close closes every connection and waits for their goroutines.
func (cc *ClassicClient) Close() error {
	cc.once.Do(func() {
		cc.mu.Lock()
		cc.cancel()
		for _, c := range cc.conns {
			c.close()
		}
		cc.mu.Unlock()
		cc.wg.Wait()
	})
	return nil
}
