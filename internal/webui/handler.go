package webui

import (
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/jstp-peer/jstp-peer/internal/webui/assets"
)

// files are the embedded files the view serves, by path, with their type.
var files = map[string]string{
	"/":            "text/html; charset=utf-8",
	"/app.js":      assets.ClientType,
	"/jstp.js":     assets.ClientType,
	"/style.css":   "text/css; charset=utf-8",
	"/favicon.svg": "image/svg+xml",
}

func (h *handler) routes() {
	mux := http.NewServeMux()
	for path, typ := range files {
		name := strings.TrimPrefix(path, "/")
		pattern := "GET " + path
		if path == "/" {
			name, pattern = "index.html", "GET /{$}"
		}
		body, err := fs.ReadFile(assets.Files, name)
		if err != nil {
			panic("webui: embedded file missing: " + name) // a build mistake, caught by every test
		}
		mux.HandleFunc(pattern, h.static(path, typ, body))
	}
	mux.HandleFunc("GET /api/config", h.config)
	mux.HandleFunc("POST /api/parse", h.parse)
	if h.cfg.AddReplica != nil {
		mux.HandleFunc("POST /api/replica", h.addReplica)
	}
	h.mux = mux
}

// ServeHTTP refuses requests that do not name the view's own address,
// then serves them with headers that keep the page to itself.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.hostOK(r.Host) {
		h.refused.Info("request for another host refused", "host", r.Host, "remote", r.RemoteAddr)
		http.Error(w, "misdirected request: this web view answers only as "+strings.Join(h.hosts, ", "), http.StatusMisdirectedRequest)
		return
	}
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	// Nothing but the view's own files, and the gateway to connect to.
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self' "+h.gatewayURL(r)+"; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.mux.ServeHTTP(w, r)
}

func (h *handler) hostOK(host string) bool {
	host = strings.ToLower(host)
	for _, ok := range h.hosts {
		if host == ok {
			return true
		}
	}
	return false
}

// gatewayURL is where the page connects: the configured URL, or the
// gateway's address, with the host the page was loaded from when the
// gateway listens on every interface (r.Host was checked by then).
func (h *handler) gatewayURL(r *http.Request) string {
	if h.cfg.GatewayURL != "" {
		return h.cfg.GatewayURL
	}
	host := h.gw.IP.String()
	if h.gw.IP.IsUnspecified() {
		host = r.Host
		if hh, _, err := net.SplitHostPort(r.Host); err == nil {
			host = hh
		}
		host = strings.Trim(host, "[]")
	}
	return "ws://" + net.JoinHostPort(host, strconv.Itoa(h.gw.Port)) + "/"
}

func (h *handler) static(path, typ string, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Type", typ)
		hd.Set("Cache-Control", "no-cache")
		if path == "/jstp.js" {
			// The client is public code that any page the gateway
			// accepts may import, from any origin.
			hd.Set("Access-Control-Allow-Origin", "*")
		} else {
			hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		}
		hd.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	}
}
