package webui

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/internal/webui/assets"
	"github.com/jstp-peer/jstp-peer/mesh"
	"github.com/jstp-peer/jstp-peer/node"
)

func TestOrigins(t *testing.T) {
	for _, c := range []struct {
		addr  string
		hosts []string
		want  []string // nil: an error
	}{
		{"127.0.0.1:8080", nil, []string{"http://127.0.0.1:8080", "http://localhost:8080"}},
		{"[::1]:8080", nil, []string{`http://\[::1\]:8080`, "http://localhost:8080"}},
		{"localhost:8080", nil, []string{"http://localhost:8080", "http://127.0.0.1:8080"}},
		{"127.0.0.1:80", nil, []string{"http://127.0.0.1", "http://localhost"}},
		{"192.0.2.7:8080", nil, []string{"http://192.0.2.7:8080"}},
		{"192.0.2.7:8080", []string{"Peer.LAN", "proxy.example:443"}, []string{"http://192.0.2.7:8080", "http://peer.lan:8080", "http://proxy.example:443"}},
		{"0.0.0.0:8080", []string{"peer.lan"}, []string{"http://peer.lan:8080"}},
		{"0.0.0.0:8080", nil, nil},
		{":8080", nil, nil},
		{"127.0.0.1:0", nil, nil},
		{"127.0.0.1", nil, nil},
	} {
		got, err := Config{Addr: c.addr, Hosts: c.hosts}.Origins()
		if c.want == nil {
			if err == nil {
				t.Errorf("Origins(%q, %q) = %q, want an error", c.addr, c.hosts, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("Origins(%q, %q) = %q, %v; want %q", c.addr, c.hosts, got, err, c.want)
		}
	}
}

// TestOriginsAdmitThePage: the patterns admit the page's origin to a real
// WebSocket gateway, and nothing else.
func TestOriginsAdmitThePage(t *testing.T) {
	for _, c := range []struct {
		addr         string
		admit, block []string
	}{
		{"127.0.0.1:8080", []string{"http://127.0.0.1:8080", "http://localhost:8080"}, []string{"http://127.0.0.1:8081", "https://127.0.0.1:8080", "http://127.0.0.10:8080", "http://evil.example:8080", "null"}},
		{"[::1]:8080", []string{"http://[::1]:8080", "http://localhost:8080"}, []string{"http://[::2]:8080", "http://1:8080", "http://[::1]:80"}},
	} {
		patterns, err := Config{Addr: c.addr}.Origins()
		if err != nil {
			t.Fatal(err)
		}
		g, err := mesh.ListenWS("127.0.0.1:0", discard{}, mesh.GatewayConfig{OriginPatterns: patterns, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		for _, origin := range append(c.admit, c.block...) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			conn, _, err := websocket.Dial(ctx, "ws://"+g.Addr().String()+"/", &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
			cancel()
			if conn != nil {
				conn.CloseNow()
			}
			if want := slices.Contains(c.admit, origin); (err == nil) != want {
				t.Errorf("view at %s, page of origin %s: admitted %v, want %v (%v)", c.addr, origin, err == nil, want, err)
			}
		}
	}
}

// discard is an engine that reads nothing: the test is about admission.
type discard struct{}

func (discard) Attach(mesh.Link) mesh.FrameFunc {
	return func(context.Context, []byte, error) {}
}

func TestNewNeedsAGateway(t *testing.T) {
	cfg := testPeerConfig(t)
	cfg.GatewayWS = ""
	p := startPeer(t, cfg)
	if _, err := New(p, Config{Addr: "127.0.0.1:8080"}); err == nil || !strings.Contains(err.Error(), "WebSocket gateway") {
		t.Fatalf("New without a gateway: %v", err)
	}
	// Unless the page is told where one is.
	if _, err := New(p, Config{Addr: "127.0.0.1:8080", GatewayURL: "ws://127.0.0.1:9/"}); err != nil {
		t.Fatalf("New with a gateway URL: %v", err)
	}
	if _, err := New(p, Config{Addr: "127.0.0.1:8080", GatewayURL: "http://x/; script-src *"}); err == nil {
		t.Fatal("New accepted a gateway URL that is no ws:// URL")
	}
	if _, err := New(p, Config{Addr: "0.0.0.0:8080"}); err == nil {
		t.Fatal("New accepted an unspecified address without hosts")
	}
}

// view serves the web view of a fresh peer.
type view struct {
	url, host string
	peer      *node.Peer
}

func newView(t *testing.T, mod func(*Config)) view {
	t.Helper()
	ui := newUIServer(t)
	if mod != nil {
		mod(&ui.cfg)
	}
	cfg := testPeerConfig(t)
	cfg.GatewayOrigins = ui.origins(t)
	p := startPeer(t, cfg)
	u := ui.serve(t, p)
	return view{url: u, host: strings.TrimPrefix(u, "http://"), peer: p}
}

// post sends a POST as the view's own page does.
func (v view) post(t *testing.T, path, body string) (*http.Response, string) {
	t.Helper()
	return httpDo(t, "POST", v.url+path, body, map[string]string{
		"Origin":         v.url,
		"Content-Type":   "application/json",
		"Sec-Fetch-Site": "same-origin",
	})
}

func TestViewServesItsFiles(t *testing.T) {
	v := newView(t, nil)
	gw := wsGateway(v.peer)

	res, body := httpDo(t, "GET", v.url+"/", "", nil)
	csp := res.Header.Get("Content-Security-Policy")
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, `<script type="module" src="app.js">`) {
		t.Fatalf("GET /: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	// The page may connect to the gateway and to nothing else outside.
	if !strings.Contains(csp, "connect-src 'self' "+gw+";") || !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("Content-Security-Policy = %q (gateway %s)", csp, gw)
	}
	if res.Header.Get("X-Content-Type-Options") != "nosniff" || res.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("headers: %v", res.Header)
	}

	res, body = httpDo(t, "GET", v.url+"/jstp.js", "", nil)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != assets.ClientType || body != string(assets.Client) || res.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("GET /jstp.js: %d %v", res.StatusCode, res.Header)
	}
	for _, path := range []string{"/app.js", "/style.css", "/favicon.svg"} {
		if res, _ := httpDo(t, "GET", v.url+path, "", nil); res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("GET %s: %d %v", path, res.StatusCode, res.Header)
		}
	}
	for _, path := range []string{"/index.html", "/assets/jstp.js", "/../go.mod", "/api/replica"} {
		if res, _ := httpDo(t, "GET", v.url+path, "", nil); res.StatusCode == 200 {
			t.Errorf("GET %s: 200", path)
		}
	}

	var c configDoc
	res, body = httpDo(t, "GET", v.url+"/api/config", "", nil)
	if err := json.Unmarshal([]byte(body), &c); err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /api/config: %d %s", res.StatusCode, body)
	}
	if c.Peer != v.peer.Host.ID().String() || c.Gateway != gw || c.Version != node.Version || c.Replica {
		t.Fatalf("config = %+v (gateway %s)", c, gw)
	}
}

// TestViewRefusesOtherHosts: a request that names another host, as one
// from a page whose name was made to resolve to this machine does, is
// refused, whatever it asks.
func TestViewRefusesOtherHosts(t *testing.T) {
	v := newView(t, nil)
	port := v.host[strings.LastIndexByte(v.host, ':'):]
	for _, host := range []string{"evil.example" + port, "evil.example", "127.0.0.2" + port, "127.0.0.1:1"} {
		for _, path := range []string{"/", "/jstp.js", "/api/config"} {
			res, _ := httpDo(t, "GET", v.url+path, "", map[string]string{"Host": host})
			if res.StatusCode != http.StatusMisdirectedRequest {
				t.Errorf("GET %s with Host %s: %d", path, host, res.StatusCode)
			}
		}
	}
	// localhost names the same loopback address.
	if res, _ := httpDo(t, "GET", v.url+"/", "", map[string]string{"Host": "LOCALHOST" + port}); res.StatusCode != 200 {
		t.Errorf("GET / as localhost: %d", res.StatusCode)
	}
}

func TestParse(t *testing.T) {
	v := newView(t, nil)
	parse := func(req string) (int, *dispatch.Dispatch, apiError) {
		t.Helper()
		res, body := v.post(t, "/api/parse", req)
		var doc struct {
			Dispatch json.RawMessage `json:"dispatch"`
			apiError
		}
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatalf("%s: %d %q", req, res.StatusCode, body)
		}
		if res.StatusCode != 200 {
			return res.StatusCode, nil, doc.apiError
		}
		d, err := dispatch.Decode(doc.Dispatch)
		if err != nil {
			t.Fatalf("%s: the answer is no dispatch: %v", doc.Dispatch, err)
		}
		return res.StatusCode, d, doc.apiError
	}

	for _, c := range []struct{ req, want string }{
		{`{"text": "jstp://a,b:33333/users/97"}`, `GET /users/97 host a, b:33333/tcp`},
		{`{"text": "POST /news/today JSTP/0.4\nhost: 12D3KooWExample\n\nmessage: hi"}`, `POST /news/today host 12D3KooWExample body {"message":"hi"}`},
		{`{"text": "{\"method\":\"GET\",\"resource\":[\"peer\"]}"}`, `GET /peer`},
		{`{"text": "POST jstp:///news/*", "as": "endpoint"}`, `BIND POST /news/*`},
		{`{"text": "{\"method\":\"post\",\"resource\":[\"news\",\":id\"]}", "as": "endpoint", "host": "12D3KooWExample, edge:33333"}`, `BIND POST /news/:id host 12D3KooWExample, edge:33333/tcp`},
	} {
		code, d, e := parse(c.req)
		if code != 200 {
			t.Errorf("%s: %d %+v", c.req, code, e)
			continue
		}
		if got := summary(d); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.req, got, c.want)
		}
		if d.Timestamp == 0 {
			t.Errorf("%s: not stamped", c.req)
		}
	}

	for _, c := range []struct {
		req        string
		status     int
		code       int
		msgContain string
	}{
		{`{"text": "FETCH jstp:///x"}`, 400, 405, "FETCH"},
		{`{"text": "GET /a//b JSTP/0.4"}`, 400, 400, ""},
		{`{"text": "GET jstp:///x", "host": "h"}`, 400, 400, "host chain"},
		{`{"text": "POST jstp://h/news/*", "as": "endpoint", "host": "other"}`, 400, 400, "host"},
		{`{"text": "{\"method\":\"GET\",\"resource\":[]}", "as": "endpoint"}`, 400, 400, ""},
		{`{"text": "{\"method\":\"GET\",\"pattern\":[\"a\"]}", "as": "endpoint"}`, 400, 400, "endpoint"},
		{`{"text": "jstp:///x", "as": "other"}`, 400, 0, "other"},
		{`{"text": 12}`, 400, 0, "JSON"},
		{`{"text": "` + strings.Repeat("x", 2*dispatch.DefaultMaxSize+8192) + `"}`, 413, 413, "exceeds"},
		{`{"text": "POST jstp:///x` + strings.Repeat("/x", dispatch.DefaultMaxSize/2) + `"}`, 400, 413, ""},
	} {
		status, _, e := parse(c.req)
		if status != c.status || e.Code != c.code || !strings.Contains(e.Error, c.msgContain) || e.Error == "" {
			short := c.req
			if len(short) > 80 {
				short = short[:80] + "…"
			}
			t.Errorf("%s: %d %+v, want %d, code %d, %q", short, status, e, c.status, c.code, c.msgContain)
		}
	}
}

// summary renders what a parsed dispatch says, for comparison.
func summary(d *dispatch.Dispatch) string {
	var b strings.Builder
	b.WriteString(d.Method)
	if d.Endpoint != nil {
		b.WriteString(" " + d.Endpoint.String())
	} else {
		b.WriteString(" /" + strings.Join(d.ResourceText(), "/"))
	}
	if len(d.Host) > 0 {
		var hs []string
		for _, h := range d.Host {
			hs = append(hs, h.String())
		}
		b.WriteString(" host " + strings.Join(hs, ", "))
	}
	if len(d.Body) > 0 {
		b.WriteString(" body " + string(d.Body))
	}
	return b.String()
}

// TestPostsOnlyFromThePage: the API's POSTs come from the view's own page
// or are refused, and the replica action does not run for them.
func TestPostsOnlyFromThePage(t *testing.T) {
	var mu sync.Mutex
	runs := 0
	v := newView(t, func(c *Config) {
		c.AddReplica = func(context.Context, json.RawMessage) error {
			mu.Lock()
			runs++
			mu.Unlock()
			return nil
		}
	})
	id := v.peer.Host.ID().String()
	body := `{"peer": "` + id + `"}`
	for _, c := range []struct {
		name   string
		header map[string]string
		status int
	}{
		{"no Origin", map[string]string{"Content-Type": "application/json"}, 403},
		{"another origin", map[string]string{"Origin": "http://evil.example", "Content-Type": "application/json"}, 403},
		{"the origin on another port", map[string]string{"Origin": "http://127.0.0.1:1", "Content-Type": "application/json"}, 403},
		{"a cross-site fetch", map[string]string{"Origin": v.url, "Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"}, 403},
		{"a form", map[string]string{"Origin": v.url, "Content-Type": "application/x-www-form-urlencoded"}, 415},
		{"text", map[string]string{"Origin": v.url, "Content-Type": "text/plain"}, 415},
	} {
		for _, path := range []string{"/api/replica", "/api/parse"} {
			res, got := httpDo(t, "POST", v.url+path, body, c.header)
			if res.StatusCode != c.status {
				t.Errorf("%s to %s: %d %s, want %d", c.name, path, res.StatusCode, got, c.status)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if runs != 0 {
		t.Fatalf("the action ran %d times for foreign requests", runs)
	}
}

func TestAddReplica(t *testing.T) {
	reports := make(chan json.RawMessage, 1)
	fail := errors.New("no room on this machine")
	failNext := false
	var mu sync.Mutex
	v := newView(t, func(c *Config) {
		c.AddReplica = func(_ context.Context, report json.RawMessage) error {
			mu.Lock()
			defer mu.Unlock()
			if failNext {
				return fail
			}
			reports <- report
			return nil
		}
	})
	id := v.peer.Host.ID().String()

	var c configDoc
	_, body := httpDo(t, "GET", v.url+"/api/config", "", nil)
	if json.Unmarshal([]byte(body), &c); !c.Replica {
		t.Fatalf("config does not offer the action: %s", body)
	}

	res, body := v.post(t, "/api/replica", `{"peer": "`+id+`"}`)
	if res.StatusCode != 200 {
		t.Fatalf("POST /api/replica: %d %s", res.StatusCode, body)
	}
	var r map[string]json.RawMessage
	if err := json.Unmarshal(<-reports, &r); err != nil || string(r["peer"]) != `"`+id+`"` || r["sat"] == nil || r["level"] == nil {
		t.Fatalf("the action got %v (%v), want the peer's report", r, err)
	}

	for _, c := range []struct {
		body   string
		status int
	}{
		{`{"peer": "12D3KooWNobodyReportsThis"}`, 404},
		{`{}`, 400},
		{`{"peer": "` + id + `", "extra": 1}`, 400},
		{`[`, 400},
		{`{"peer": "` + strings.Repeat("x", maxReplicaBody) + `"}`, 413},
	} {
		if res, body := v.post(t, "/api/replica", c.body); res.StatusCode != c.status {
			t.Errorf("POST %.40s: %d %s, want %d", c.body, res.StatusCode, body, c.status)
		}
	}

	mu.Lock()
	failNext = true
	mu.Unlock()
	res, body = v.post(t, "/api/replica", `{"peer": "`+id+`"}`)
	if res.StatusCode != http.StatusBadGateway || !strings.Contains(body, fail.Error()) {
		t.Fatalf("a failing action: %d %s", res.StatusCode, body)
	}
}

func TestNoReplicaActionNoRoute(t *testing.T) {
	v := newView(t, nil)
	if res, body := v.post(t, "/api/replica", `{"peer": "`+v.peer.Host.ID().String()+`"}`); res.StatusCode != http.StatusNotFound {
		t.Fatalf("POST /api/replica without an action: %d %s", res.StatusCode, body)
	}
}
