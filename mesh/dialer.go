package mesh

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// classicDialTimeout bounds connecting to a classic engine.
const classicDialTimeout = 10 * time.Second

// Dialer connects to classic JSTP engines, one pooled connection per
// address. Its connections are Links handed to the Ingress like a
// gateway's: what the engine sends back on them (answers, pushes for the
// BINDs sent on them, its own requests) is received like anything else.
type Dialer struct {
	in  Ingress
	cfg connConfig
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu    sync.Mutex
	conns map[string]*Conn
	dials map[string]chan struct{}
}

// NewDialer returns a Dialer whose connections deliver to in.
func NewDialer(in Ingress, cfg GatewayConfig) *Dialer {
	cfg = cfg.withDefaults()
	log := cfg.Logger
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dialer{
		in: in, log: log.With("component", "classic"),
		ctx: ctx, cancel: cancel,
		conns: map[string]*Conn{}, dials: map[string]chan struct{}{},
	}
	d.cfg = connConfig{kind: ClassicOut, in: in, queueLen: cfg.QueueLen, maxFrame: cfg.MaxFrame, log: d.log, wg: &d.wg}
	return d
}

// Dial returns the connection to the classic engine at addr, opening it
// when there is none: transport "tcp" takes "host:port", "ws" a ws:// URL.
// Concurrent calls for one address share one dial.
func (cd *Dialer) Dial(ctx context.Context, transport, addr string) (*Conn, error) {
	key := transport + " " + addr
	for {
		cd.mu.Lock()
		if cd.ctx.Err() != nil {
			cd.mu.Unlock()
			return nil, dispatch.Errorf(dispatch.ErrNotGateway, "classic dialer closed")
		}
		if c := cd.conns[key]; c != nil {
			select {
			case <-c.done:
				delete(cd.conns, key)
			default:
				cd.mu.Unlock()
				return c, nil
			}
		}
		if wait := cd.dials[key]; wait != nil {
			cd.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		wait := make(chan struct{})
		cd.dials[key] = wait
		cd.mu.Unlock()
		start, abort, err := cd.dial(ctx, transport, addr)
		cd.mu.Lock()
		delete(cd.dials, key)
		close(wait)
		var c *Conn
		if err == nil {
			if cd.ctx.Err() != nil {
				// Closed while dialling: Close has waited already.
				abort()
				err = errors.New("classic dialer closed")
			} else {
				c = start()
				cd.conns[key] = c
			}
		}
		cd.mu.Unlock()
		if err != nil {
			return nil, dispatch.Errorf(dispatch.ErrNotGateway, "cannot reach the classic engine at %s: %v", addr, err)
		}
		return c, nil
	}
}

// dial connects. start wires the connection up and abort drops it; Dial
// calls one of them with cd.mu held, so that no connection starts
// goroutines once Close is waiting for them.
func (cd *Dialer) dial(ctx context.Context, transport, addr string) (start func() *Conn, abort func(), err error) {
	dctx, cancel := context.WithTimeout(ctx, classicDialTimeout)
	defer cancel()
	if transport == "ws" {
		conn, _, err := websocket.Dial(dctx, addr, nil)
		if err != nil {
			return nil, nil, err
		}
		return func() *Conn { return newWSConn(cd.ctx, conn, addr, cd.cfg) }, func() { conn.CloseNow() }, nil
	}
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	return func() *Conn { return newTCPConn(cd.ctx, conn, cd.cfg) }, func() { conn.Close() }, nil
}

// Close closes every connection and waits for their goroutines.
func (cd *Dialer) Close() error {
	cd.once.Do(func() {
		cd.mu.Lock()
		cd.cancel()
		for _, c := range cd.conns {
			c.Close()
		}
		cd.mu.Unlock()
		cd.wg.Wait()
	})
	return nil
}
