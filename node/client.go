package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/mesh"
)

// ErrNoPeer is wrapped by Dial's error when nothing accepts at the address.
var ErrNoPeer = errors.New("no peer")

// Timeouts of a client's connection. The gateway is a peer on this
// machine (or a classic engine nearby): it accepts at once or not at all.
const (
	clientDialTimeout  = 5 * time.Second
	clientWriteTimeout = 10 * time.Second
	// clientEvents is how many dispatches that are not answers (events
	// for the client's bindings, requests for it) wait for Events to be
	// read; past it the client stops reading the connection.
	clientEvents = 64
)

// Client is a connection to a peer's classic TCP gateway: how the CLI, and
// any Go program without a peer of its own, reaches a running peer. It
// declares the "provisional" protocol extension (ProvisionalExtension), so
// the gateway tells it how many answers each transaction gets, and a
// Request's stream ends exactly when its answers are in: no guessing how
// long to wait.
//
// A Client is safe for concurrent use. Answers go to their Requests;
// everything else the peer sends (events for the client's bindings,
// dispatches that ask it something, exceptions about input it could not
// read) arrives on Events, which must be read: while it is full the
// client reads nothing, answers included.
type Client struct {
	addr    string
	conn    net.Conn
	timeout time.Duration
	log     *slog.Logger

	wmu    sync.Mutex // one writer at a time: lines must not interleave
	events chan *dispatch.Dispatch
	txs    *txTable
	stats  counters

	done    chan struct{} // Close was called
	ended   chan struct{} // the connection ended
	wg      sync.WaitGroup
	once    sync.Once
	readErr error // why the connection ended; written before close(events)
}

// ClientConfig configures Dial; zero values take the defaults.
type ClientConfig struct {
	// AnswerTimeout bounds a Request whose ctx has no earlier deadline
	// (default DefaultAnswerTimeout plus a second, so the peer's own 504s
	// arrive first).
	AnswerTimeout time.Duration
	// Logger receives what the client could not read. Default: a logger
	// that discards.
	Logger *slog.Logger
}

// Dial connects to the classic TCP gateway at addr ("127.0.0.1:33333").
func Dial(ctx context.Context, addr string, cfg ClientConfig) (*Client, error) {
	dctx, cancel := context.WithTimeout(ctx, clientDialTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w at %s: %w", ErrNoPeer, addr, err)
	}
	if cfg.AnswerTimeout <= 0 {
		cfg.AnswerTimeout = DefaultAnswerTimeout + time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		addr:    addr,
		conn:    conn,
		timeout: cfg.AnswerTimeout,
		log:     cfg.Logger,
		events:  make(chan *dispatch.Dispatch, clientEvents),
		done:    make(chan struct{}),
		ended:   make(chan struct{}),
	}
	c.txs = newTxTable(&c.wg, c.done, &c.stats)
	c.wg.Add(1)
	go c.read()
	return c, nil
}

// Addr is the gateway's address.
func (c *Client) Addr() string { return c.addr }

// Events delivers what the peer sends that answers none of the client's
// Requests, and closes when the connection ends (Err says why).
func (c *Client) Events() <-chan *dispatch.Dispatch { return c.events }

// Err is why the connection ended: io.EOF when the peer closed it. Valid
// once Ended is closed.
func (c *Client) Err() error { return c.readErr }

// Ended is closed when the connection ends, before the streams of the
// Requests still pending close.
func (c *Client) Ended() <-chan struct{} { return c.ended }

// Send writes d as it is, answers or not.
func (c *Client) Send(d *dispatch.Dispatch) error {
	line := append(d.AppendJSON(nil), '\n')
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.conn.SetWriteDeadline(time.Now().Add(clientWriteTimeout)); err != nil {
		return fmt.Errorf("node: writing to %s: %w", c.addr, err)
	}
	if _, err := c.conn.Write(line); err != nil {
		return fmt.Errorf("node: writing to %s: %w", c.addr, err)
	}
	return nil
}

// Request sends d and streams its answers, as Node.Request does: one per
// triggered subscriber, then a 504 for each one still missing at the
// deadline (the earlier of ctx's and the answer timeout), then the channel
// closes. A transaction id is generated when token[0] is not a string
// already. d is not modified.
func (c *Client) Request(ctx context.Context, d *dispatch.Dispatch) (<-chan *dispatch.Dispatch, error) {
	if k := d.Kind(); k != dispatch.Regular && k != dispatch.Subscription {
		return nil, dispatch.Errorf(dispatch.ErrBadDispatch, "a %s dispatch takes no answers", k)
	}
	d = d.Clone()
	stampTransaction(d)
	if !hasExtension(d.Protocol, ProvisionalExtension) {
		if len(d.Protocol) < 2 {
			d.Protocol = []string{"JSTP", dispatch.Version}
		}
		d.Protocol = append(slices.Clip(d.Protocol), ProvisionalExtension)
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(c.timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	tx, err := c.txs.start(ctx, d.TransactionID(), deadline)
	if err != nil {
		return nil, err
	}
	if err := c.Send(d); err != nil {
		tx.add(dispatch.NewAnswer(502, tx.id, "", jsonString(err.Error())))
	}
	return tx.out, nil
}

// read decodes lines until the connection ends or Close is called. The
// frame reader bounds every line, so a misbehaving peer costs at most that
// much memory.
func (c *Client) read() {
	defer c.wg.Done()
	defer func() {
		// Ended first: a Request whose stream closes now can tell it was
		// cut short.
		close(c.ended)
		close(c.events)
		c.txs.closeAll()
	}()
	fr := mesh.NewFrameReader(c.conn, 0)
	fr.AcceptUnterminated = true
	// Quirks: the gateway may be a classic Node.js engine, which leaves
	// out what the drafts require (docs/classic-wire.md).
	dec := dispatch.Decoder{Quirks: true}
	for {
		frame, err := fr.ReadFrame()
		if err != nil && !errors.Is(err, dispatch.ErrTooLarge) {
			c.readErr = err
			return
		}
		var d *dispatch.Dispatch
		if err == nil {
			d, err = dec.Decode(frame)
		}
		if err != nil {
			c.stats.rejected.Add(1)
			c.log.Warn("ignored a line from the peer", "peer", c.addr, "err", err)
			continue
		}
		if c.answer(d) {
			continue
		}
		select {
		case c.events <- d:
		case <-c.done:
			return
		}
	}
}

// answer hands an answer, or an exception about one of the client's
// dispatches, to its Request; it reports whether d was one.
func (c *Client) answer(d *dispatch.Dispatch) bool {
	switch d.Kind() {
	case dispatch.Answer:
		_, txid, _, _ := d.AnswerInfo()
		if tx := c.txs.get(txid); tx != nil {
			tx.add(d)
			return true
		}
	case dispatch.Exception:
		if tx := c.txs.get(d.TransactionID()); tx != nil && d.TransactionID() != "" {
			tx.add(dispatch.NewAnswer(d.Exception.Code, tx.id, "", jsonString(d.Exception.Message)))
			return true
		}
	}
	return false
}

// Close closes the connection (a FIN first: a classic engine releases
// the connection's subscriptions on it) and waits for the reader; pending
// Requests end.
func (c *Client) Close() error {
	var err error
	c.once.Do(func() {
		close(c.done)
		if tc, ok := c.conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		err = c.conn.Close()
		c.wg.Wait()
	})
	return err
}

// Closed describes why the connection ended, for messages.
func (c *Client) Closed() string {
	if err := c.Err(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Sprintf("the connection to %s failed: %v", c.addr, err)
	}
	return fmt.Sprintf("the peer at %s closed the connection", c.addr)
}
