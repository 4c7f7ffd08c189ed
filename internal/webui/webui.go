package webui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/jstp-peer/jstp-peer/internal/ratelog"
	"github.com/jstp-peer/jstp-peer/node"
)

// Config configures the web view.
type Config struct {
	// Addr is where the web view is served, host:port as a browser's
	// address bar shows it ("127.0.0.1:8080"), with the port actually
	// listened on (not 0). Required. Requests whose Host header names
	// another host are refused: a page of another site whose name was
	// made to resolve to this machine (DNS rebinding) cannot use the
	// view. A loopback Addr is also reached as localhost.
	Addr string
	// Hosts are more names the view is reached by ("peer.lan", or
	// "peer.lan:80" with a port of its own; without one, Addr's port).
	// Required when Addr's host is unspecified (":8080", "0.0.0.0:8080"),
	// since any name could then point at the view.
	Hosts []string
	// GatewayURL is the WebSocket URL the page connects to. Default: the
	// peer's WebSocket gateway, ws://ADDR/ (with the host the page was
	// loaded from when the gateway listens on every interface).
	GatewayURL string
	// AddReplica, when set, is what the page's "Add a replica" button
	// runs, for a peer the user chose: report is that peer's latest
	// saturation report, the JSON that `up --on-critical` commands read on
	// their standard input. The error, if any, is shown on the page. Nil
	// hides the button. Runs are one at a time.
	AddReplica func(ctx context.Context, report json.RawMessage) error
	// Logger receives the view's logs. Default: slog.Default().
	Logger *slog.Logger
}

// Origins returns the patterns that admit the view's page to the peer's
// WebSocket gateway, for node.PeerConfig.GatewayOrigins: the page's web
// origin, "http://HOST:PORT", for every host the view may be reached by.
// They match those origins exactly (the brackets of an IPv6 address are
// escaped, as the patterns' syntax requires), so no other page on this
// machine gains access.
func (c Config) Origins() ([]string, error) {
	hosts, err := c.hosts()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = "http://" + patternEscaper.Replace(h)
	}
	return out, nil
}

// patternEscaper makes a host literal in a gateway origin pattern, which
// path.Match reads.
var patternEscaper = strings.NewReplacer(`\`, `\\`, "[", `\[`, "]", `\]`, "*", `\*`, "?", `\?`)

// hosts lists the Host header values the view answers to, lowercase.
func (c Config) hosts() ([]string, error) {
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return nil, fmt.Errorf("webui: address %q: %w", c.Addr, err)
	}
	if port == "" || port == "0" {
		return nil, fmt.Errorf("webui: address %q: give the port listened on", c.Addr)
	}
	var out []string
	add := func(h, p string) {
		hp := strings.ToLower(net.JoinHostPort(h, p))
		if p == "80" {
			// Browsers leave the default port out of Host and Origin.
			hp = strings.ToLower(h)
			if strings.Contains(h, ":") {
				hp = "[" + hp + "]"
			}
		}
		if !slices.Contains(out, hp) {
			out = append(out, hp)
		}
	}
	ip := net.ParseIP(host)
	unspecified := host == "" || (ip != nil && ip.IsUnspecified())
	if !unspecified {
		add(host, port)
		if host == "localhost" || (ip != nil && ip.IsLoopback()) {
			add("localhost", port)
			if host == "localhost" {
				add("127.0.0.1", port)
			}
		}
	}
	for _, h := range c.Hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if hh, p, err := net.SplitHostPort(h); err == nil {
			add(hh, p)
		} else {
			add(strings.Trim(h, "[]"), port)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("webui: address %q listens on every interface: name the hosts it is reached by (Config.Hosts)", c.Addr)
	}
	return out, nil
}

// New returns the web view of p as an http.Handler, to serve at
// cfg.Addr. The peer must have a WebSocket gateway (PeerConfig.GatewayWS)
// unless cfg.GatewayURL names one, and must accept cfg.Origins there.
func New(p *node.Peer, cfg Config) (http.Handler, error) {
	if p == nil || p.Node == nil {
		return nil, errors.New("webui: no peer")
	}
	hosts, err := cfg.hosts()
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger.With("component", "webui")
	h := &handler{
		p:       p,
		cfg:     cfg,
		hosts:   hosts,
		log:     log,
		refused: ratelog.New(log, ratelog.DefaultInterval),
	}
	if cfg.GatewayURL == "" {
		for _, g := range p.Gateways {
			if g.Network() == "ws" {
				h.gw, _ = g.Addr().(*net.TCPAddr)
			}
		}
		if h.gw == nil {
			return nil, errors.New("webui: the peer has no WebSocket gateway (PeerConfig.GatewayWS) for the page to connect to")
		}
	} else if err := checkGatewayURL(cfg.GatewayURL); err != nil {
		return nil, err
	}
	h.routes()
	return h, nil
}

func checkGatewayURL(u string) error {
	if !strings.HasPrefix(u, "ws://") && !strings.HasPrefix(u, "wss://") {
		return fmt.Errorf("webui: gateway URL %q is not ws:// or wss://", u)
	}
	if strings.ContainsAny(u, " ;'\"\n\r\t") {
		return fmt.Errorf("webui: gateway URL %q has characters a URL cannot have", u)
	}
	return nil
}

// handler is the web view.
type handler struct {
	p     *node.Peer
	cfg   Config
	hosts []string
	gw    *net.TCPAddr // the WebSocket gateway, when GatewayURL is not set
	mux   *http.ServeMux
	log   *slog.Logger
	// refused logs refused requests, at most once per interval: a page
	// that keeps trying must not flood the log.
	refused *ratelog.Logger

	replica sync.Mutex // one AddReplica run at a time
}
