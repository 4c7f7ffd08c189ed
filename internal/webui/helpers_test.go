package webui

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/multiformats/go-multiaddr"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/internal/poll"
	"github.com/jstp-peer/jstp-peer/mesh"
	"github.com/jstp-peer/jstp-peer/node"
	"github.com/jstp-peer/jstp-peer/routing"
	"github.com/jstp-peer/jstp-peer/saturation"
)

// chromiumPath is where Debian's chromium package puts the browser;
// $CHROMIUM overrides it.
const chromiumPath = "/usr/bin/chromium"

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testPeerConfig is a loopback peer with a WebSocket gateway on a free
// port, a fixed moderate load (the machine's own would make the test
// depend on what else runs), and reports gossiped every second, so a
// second peer's report reaches the first soon after they connect.
func testPeerConfig(t testing.TB) node.PeerConfig {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return node.PeerConfig{
		Mesh: mesh.Config{
			Key:         k,
			ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
			DHTMode:     mesh.DHTServer,
			Loopback:    true,
			Logger:      testLogger(t),
		},
		GatewayWS: "127.0.0.1:0",
		Logger:    testLogger(t),
		Names:     routing.NamesConfig{CacheTTL: 100 * time.Millisecond},
		Saturation: node.SaturationConfig{
			Source: saturation.NewStaticSource(saturation.Sample{
				Disk:   saturation.Space{Free: 60, Total: 100},
				Memory: saturation.Space{Free: 50, Total: 100},
			}),
			Interval: 200 * time.Millisecond,
		},
	}
}

func startPeer(t testing.TB, cfg node.PeerConfig) *node.Peer {
	t.Helper()
	p, err := node.Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func addrStrings(addrs []multiaddr.Multiaddr) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}

// connected waits until a has a connection to b.
func connected(t testing.TB, a, b *node.Peer) {
	t.Helper()
	poll.Until(t, 30*time.Second, "the peers to connect", func() bool {
		for _, p := range a.Host.Peers() {
			if p.ID == b.Host.ID() {
				return true
			}
		}
		return false
	})
}

// uiServer is a web view being served: the server is not started until
// serve is called, because the peer needs the view's origins first.
type uiServer struct {
	srv *httptest.Server
	cfg Config
}

func newUIServer(t testing.TB) *uiServer {
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	return &uiServer{srv: srv, cfg: Config{Addr: srv.Listener.Addr().String(), Logger: testLogger(t)}}
}

// origins are the view's origins, for PeerConfig.GatewayOrigins.
func (u *uiServer) origins(t testing.TB) []string {
	o, err := u.cfg.Origins()
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func (u *uiServer) serve(t testing.TB, p *node.Peer) string {
	h, err := New(p, u.cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	u.srv.Config.Handler = h
	u.srv.Start()
	return u.srv.URL
}

// wsGateway is the ws:// URL of p's WebSocket gateway.
func wsGateway(p *node.Peer) string {
	for _, g := range p.Gateways {
		if g.Network() == "ws" {
			return "ws://" + g.Addr().String() + "/"
		}
	}
	return ""
}

// browser is a headless Chromium tab. On a failed test it leaves a
// screenshot of the page, its text and its console log behind (in
// $TEST_ARTIFACTS, or a directory of the system's temporary one that is
// kept after the test) and logs where.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []string
}

// requireChromium returns the browser's path, or skips the test when it
// is not installed, except under CI (the CI variable set), where a
// missing browser fails the test: .ci/run installs it. Tests call it
// first, before they start anything.
func requireChromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		path = chromiumPath
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Chromium is required under CI and is not at %s (.ci/run installs Debian's chromium package): %v", path, err)
		}
		t.Skipf("Chromium is not installed at %s; install it (apt-get install chromium) or set $CHROMIUM to run the browser tests", path)
	}
	return path
}

// newBrowser starts Chromium. Call it after starting the peers and
// servers the page uses: cleanups run last first, so the artefacts of a
// failed test show the page before they stop.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := requireChromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		// The tests run as root in containers, where Chromium's sandbox
		// cannot start; the pages are the tests' own.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1100),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	b := &browser{t: t, ctx: ctx}
	t.Cleanup(func() {
		if t.Failed() {
			b.keepArtefacts()
		}
		cancelTab()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium (%s): %v", path, err)
	}
	if err := chromedp.Listen(ctx, b.record); err != nil {
		t.Fatal(err)
	}
	return b
}

// record keeps the page's console messages and uncaught exceptions, for
// the artefacts of a failed test.
func (b *browser) record(ev any) {
	var line string
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		var args []string
		for _, a := range e.Args {
			if len(a.Value) > 0 {
				args = append(args, string(a.Value))
			} else {
				args = append(args, a.Description)
			}
		}
		line = fmt.Sprintf("console.%s: %s", e.Type, strings.Join(args, " "))
	case *runtime.EventExceptionThrown:
		line = "exception: " + (&chromedp.ExceptionError{ExceptionDetails: e.ExceptionDetails}).Error()
	default:
		return
	}
	b.mu.Lock()
	b.console = append(b.console, line)
	b.mu.Unlock()
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func (b *browser) keepArtefacts() {
	t := b.t
	dir := os.Getenv("TEST_ARTIFACTS")
	var err error
	if dir == "" {
		// Not t.TempDir: that is removed with the test, and the point is
		// to look at the picture afterwards.
		dir, err = os.MkdirTemp("", "jstp-webui-artefacts-")
	} else {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		t.Logf("no artefacts: %v", err)
		return
	}
	base := filepath.Join(dir, unsafeName.ReplaceAllString(t.Name(), "_"))
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err != nil {
		t.Logf("no screenshot: %v", err)
	} else if err := os.WriteFile(base+".png", png, 0o644); err != nil {
		t.Logf("no screenshot: %v", err)
	} else {
		t.Logf("screenshot of the page: %s", base+".png")
	}
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n\n" + document.body.innerText`))
	b.mu.Lock()
	log := strings.Join(b.console, "\n")
	b.mu.Unlock()
	if err := os.WriteFile(base+".txt", []byte(text+"\n\nconsole:\n"+log+"\n"), 0o644); err == nil {
		t.Logf("text and console of the page: %s", base+".txt")
	}
}

// run runs actions on the tab, failing the test on error.
func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// waitFor polls a JavaScript expression in the page until it is truthy.
// The timeout guards against hangs only.
func (b *browser) waitFor(what, expr string) {
	b.t.Helper()
	b.run("waiting for "+what, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(45*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))(ctx, t)
		return err
	}))
}

// eval evaluates a JavaScript expression (awaiting a promise) and decodes
// its value.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// goRequest sends a dispatch from Go through p and returns its answers.
func goRequest(t testing.TB, p *node.Peer, method string, resource ...any) []answer {
	t.Helper()
	return goRequestBody(t, p, nil, method, resource...)
}

type answer struct {
	code int
	body string
}

func goRequestBody(t testing.TB, p *node.Peer, body []byte, method string, resource ...any) []answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	d := dispatch.New(method, resource...)
	d.Body = body
	ch, err := p.Node.Request(ctx, d)
	if err != nil {
		t.Fatalf("Request: %v", err)
	}
	var out []answer
	for a := range ch {
		code, _, _, _ := a.AnswerInfo()
		out = append(out, answer{code, string(a.Body)})
	}
	return out
}

// httpDo sends a request to the view with the headers given.
func httpDo(t testing.TB, method, url, body string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}
