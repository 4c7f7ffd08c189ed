package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/jstp-peer/jstp-peer/internal/webui/assets"
)

// Default gateway addresses. 33333 is the customary JSTP port; both
// gateways listen on loopback by default, for local applications.
const (
	DefaultGatewayTCP = "127.0.0.1:33333"
	DefaultGatewayWS  = "127.0.0.1:33334"
)

// GatewayConfig configures a gateway; zero values take the defaults.
type GatewayConfig struct {
	// QueueLen bounds each connection's outgoing queue, in frames.
	// Default: DefaultQueueLen.
	QueueLen int
	// MaxFrame bounds each frame read. Default: DefaultMaxFrame.
	MaxFrame int
	// Logger receives the gateway's logs. Default: slog.Default().
	Logger *slog.Logger
	// OriginPatterns are the web origins (host patterns such as
	// "app.example.com" or "*.example.com") whose pages may open a
	// WebSocket to the gateway. Default: none but the gateway's own host,
	// so a page a local browser happens to show cannot drive the peer.
	// Clients that send no Origin (programs, not browsers) are accepted.
	OriginPatterns []string
}

func (c GatewayConfig) withDefaults() GatewayConfig {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.QueueLen <= 0 {
		c.QueueLen = DefaultQueueLen
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = DefaultMaxFrame
	}
	return c
}

// Gateway serves classic JSTP clients and engines on TCP (newline-delimited
// JSON) or WebSocket (one dispatch per text message). Every connection is
// a Conn handed to the Ingress.
//
// Listen opens the socket, so the address is known before anything is
// served; Start serves it.
type Gateway struct {
	network string // "tcp" or "ws"
	addr    net.Addr
	ln      net.Listener
	cfg     connConfig
	origins []string
	log     *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	start  sync.Once

	accepted atomic.Int64

	mu     sync.Mutex
	srv    *http.Server
	closed bool
	conns  map[*Conn]bool
}

// ListenGateway listens on addr for the classic wire: network "tcp" for
// newline-delimited JSON, "ws" for WebSocket. Nothing is served before
// Start.
func ListenGateway(network, addr string, cfg GatewayConfig) (*Gateway, error) {
	if network != "tcp" && network != "ws" {
		return nil, fmt.Errorf("mesh: gateway network %q is not tcp or ws", network)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mesh: %s gateway: %w", network, err)
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gateway{
		network: network,
		addr:    ln.Addr(),
		ln:      ln,
		log:     log.With("component", "gateway", "gateway", network),
		ctx:     ctx,
		cancel:  cancel,
		conns:   map[*Conn]bool{},
	}
	g.cfg = connConfig{kind: ClassicIn, queueLen: cfg.QueueLen, maxFrame: cfg.MaxFrame, log: g.log, wg: &g.wg}
	g.origins = cfg.OriginPatterns
	return g, nil
}

// ListenTCP listens on addr ("127.0.0.1:33333") and serves the classic
// TCP wire to in.
func ListenTCP(addr string, in Ingress, cfg GatewayConfig) (*Gateway, error) {
	g, err := ListenGateway("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	g.Start(in)
	return g, nil
}

// ListenWS listens on addr and serves the classic WebSocket wire to in.
func ListenWS(addr string, in Ingress, cfg GatewayConfig) (*Gateway, error) {
	g, err := ListenGateway("ws", addr, cfg)
	if err != nil {
		return nil, err
	}
	g.Start(in)
	return g, nil
}

// Start serves the gateway's connections to in. Later calls do nothing.
func (g *Gateway) Start(in Ingress) {
	g.start.Do(func() {
		g.cfg.in = in
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.closed {
			return
		}
		g.wg.Add(1)
		if g.network == "tcp" {
			go g.acceptTCP()
			return
		}
		g.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(g.serveWS)}
		go func() {
			defer g.wg.Done()
			if err := g.srv.Serve(g.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.log.Warn("WebSocket gateway stopped", "err", err)
			}
		}()
	})
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
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			conn.Close()
			return
		}
		g.track(newTCPConn(g.ctx, conn, g.cfg))
		g.mu.Unlock()
	}
}

// ClientPath is where the WebSocket gateway serves the browser client,
// an ES module (docs/browser.md), to plain GET requests.
const ClientPath = "/jstp.js"

// serveWS accepts an upgrade on any path, as the Node engine does, from
// pages of the allowed origins only (GatewayConfig.OriginPatterns). A
// plain GET of ClientPath gets the browser client, so a page can import
// it from the peer it talks to.
func (g *Gateway) serveWS(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == ClientPath && r.Header.Get("Upgrade") == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		serveClient(w)
		return
	}
	// Handlers run on the HTTP server's goroutines, which Close does not
	// wait for: count this one before it starts any of its own, or it
	// could add to the WaitGroup after Close's Wait returned.
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		http.Error(w, "gateway closing", http.StatusServiceUnavailable)
		return
	}
	g.wg.Add(1)
	g.mu.Unlock()
	defer g.wg.Done()
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: g.origins})
	if err != nil {
		// Accept has answered (403 for a foreign origin).
		g.log.Info("WebSocket upgrade refused", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"), "err", err)
		return
	}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		conn.CloseNow()
		return
	}
	c := newWSConn(g.ctx, conn, r.RemoteAddr, g.cfg)
	g.track(c)
	g.mu.Unlock()
	// The handler must not return while the connection lives.
	select {
	case <-c.done:
	case <-g.ctx.Done():
	}
}

// serveClient writes the browser client. It is public code: any origin
// may import it (the module is fetched with CORS), while the WebSocket
// itself still admits only the allowed origins.
func serveClient(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", assets.ClientType)
	h.Set("Cache-Control", "no-cache")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(assets.Client)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(assets.Client)
}

// track remembers a connection until it ends. g.mu must be held.
func (g *Gateway) track(c *Conn) {
	g.accepted.Add(1)
	g.conns[c] = true
	g.log.Debug("classic connection", "conn", c.id)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		select {
		case <-c.done:
		case <-g.ctx.Done():
			c.Close()
		}
		g.mu.Lock()
		delete(g.conns, c)
		g.mu.Unlock()
	}()
}

// Addr is the address the gateway listens on.
func (g *Gateway) Addr() net.Addr { return g.addr }

// Network is "tcp" or "ws".
func (g *Gateway) Network() string { return g.network }

// Conns returns the number of open connections.
func (g *Gateway) Conns() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// Accepted returns the number of connections accepted so far.
func (g *Gateway) Accepted() int64 { return g.accepted.Load() }

// Close stops accepting, closes every connection and waits for their
// goroutines.
func (g *Gateway) Close() error {
	g.once.Do(func() {
		g.mu.Lock()
		g.closed = true
		srv := g.srv
		g.mu.Unlock()
		g.cancel()
		if srv != nil {
			srv.Close()
		}
		g.ln.Close()
		g.mu.Lock()
		for c := range g.conns {
			c.Close()
		}
		g.mu.Unlock()
		g.wg.Wait()
	})
	return nil
}
