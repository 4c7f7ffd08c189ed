package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jstp-peer/jstp-peer/node"
)

// Limits of the metrics endpoint: scraping is cheap but not free, and an
// endpoint anyone can hit must not let them make the peer work without
// bound.
const (
	// maxScrapes is how many scrapes run at once; more are answered 503.
	maxScrapes = 4
	// scrapeTimeout bounds one scrape (503 after it).
	scrapeTimeout = 10 * time.Second
)

// Handler returns an http.Handler that serves p's metrics in the
// Prometheus text format to GET and HEAD: the peer's own series and,
// unless WithLibP2P says otherwise, libp2p's and the Go runtime's from
// prometheus.DefaultGatherer. Each Handler has its own registry, so
// several peers in one process each get their own jstp_ series; libp2p's
// are the process's.
func Handler(p *node.Peer, opts ...Option) http.Handler {
	cfg := newConfig(opts)
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(p, opts...))
	var g prometheus.Gatherer = reg
	if cfg.libp2p != nil {
		g = prometheus.Gatherers{reg, cfg.libp2p}
	}
	h := promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog: errorLog{cfg.log},
		// A series that fails (one of libp2p's, say) must not take the
		// others with it.
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            reg,
		MaxRequestsInFlight: maxScrapes,
		Timeout:             scrapeTimeout,
	})
	h = promhttp.InstrumentMetricHandler(reg, h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "metrics are read with GET", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// errorLog passes promhttp's errors on to slog.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Println(v ...any) { l.log.Warn("metrics: " + fmt.Sprint(v...)) }

// Path is where a Server serves the metrics.
const Path = "/metrics"

// Server serves a peer's metrics over HTTP at Path.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
	err  error
	once sync.Once
}

// Listen listens on addr (host:port; port 0 picks a free one) and serves
// p's metrics there at Path, on a goroutine the Server owns until Close.
// Nothing else is served: every other path is answered 404.
//
// The metrics name the peers this one hears from and the names it
// provides: listen on loopback, or on an address only the Prometheus
// server reaches.
func Listen(addr string, p *node.Peer, opts ...Option) (*Server, error) {
	cfg := newConfig(opts)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(Path, Handler(p, opts...))
	s := &Server{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      scrapeTimeout + 5*time.Second,
			IdleTimeout:       time.Minute,
			MaxHeaderBytes:    8 << 10,
			ErrorLog:          slog.NewLogLogger(cfg.log.Handler(), slog.LevelDebug),
		},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.err = fmt.Errorf("metrics: serve: %w", err)
		}
	}()
	return s, nil
}

// Addr returns the address the Server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL returns the address of the metrics, for people and logs.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + Path }

// Close stops serving, lets scrapes in progress finish for up to a
// second, and waits for the Server's goroutine. It is idempotent, and
// returns what ended the serving early, if anything did.
func (s *Server) Close() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.srv.Close()
		}
		<-s.done
	})
	return s.err
}
