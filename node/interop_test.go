//go:build unix

package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/identity"
	"github.com/jstp-peer/jstp-peer/mesh"

	"github.com/jstp-peer/jstp-peer/internal/poll"
)

// The tests below run the gateways and the classic client against the
// original Node.js engine (npm jstp 1.1.5) through the scripts in
// mesh/testdata/interop (docs/classic-wire.md §8).

var (
	interopOnce sync.Once
	interopDir  string
	interopErr  error
)

// requireInterop returns the interop directory with the engine installed
// (running npm ci there once per test binary if needed). Without node or
// npm on PATH, or in -short mode, it skips the test, unless CI=true: CI
// must run these tests, so there it fails instead.
func requireInterop(t *testing.T) string {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if testing.Short() && !ci {
		t.Skip("-short: not starting Node.js processes")
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if ci {
				t.Fatalf("CI=true but %s is not on PATH: the interop tests against the Node.js engine must run in CI", tool)
			}
			t.Skipf("%s is not on PATH: skipping the interop tests against the Node.js engine (install Node.js and npm to run them)", tool)
		}
	}
	interopOnce.Do(func() {
		dir, err := filepath.Abs(filepath.Join("..", "mesh", "testdata", "interop"))
		if err != nil {
			interopErr = err
			return
		}
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "jstp", "lib", "jstp.js")); err == nil {
			interopDir = dir
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			interopErr = fmt.Errorf("npm ci in %s: %v\n%s", dir, err, out)
			return
		}
		interopDir = dir
	})
	if interopErr != nil {
		if ci {
			t.Fatal(interopErr)
		}
		t.Skipf("cannot install the Node.js engine: %v", interopErr)
	}
	return interopDir
}

// lockedBuffer collects a process's stderr for failure reports.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// interopProc is a running harness script.
type interopProc struct {
	t      *testing.T
	name   string
	lines  chan string // stdout, closed at its end
	seen   []string
	stderr *lockedBuffer
	exited chan struct{} // closed once the process has been waited for
	err    error         // Wait's result, set before exited closes
	cancel context.CancelFunc
}

// interopStart runs `node args...` in dir, in a process group of its own
// that is killed when the test ends or after timeout, whichever is first.
func interopStart(t *testing.T, dir string, timeout time.Duration, args ...string) *interopProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	p := &interopProc{t: t, name: strings.Join(args, " "), lines: make(chan string, 1024), stderr: &lockedBuffer{}, exited: make(chan struct{}), cancel: cancel}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		cancel() // kills the group unless it has exited already
		for l := range p.lines {
			p.seen = append(p.seen, l)
		}
		<-p.exited
		if t.Failed() {
			t.Logf("node %s\nstdout seen: %s\nstderr:\n%s", p.name, strings.Join(p.seen, "\n"), p.stderr.String())
		}
	})
	return p
}

// next returns the next stdout line, or ok == false when stdout ended.
// It fails the test when nothing comes for 10 s.
func (p *interopProc) next() (line string, ok bool) {
	p.t.Helper()
	select {
	case l, ok := <-p.lines:
		if ok {
			p.seen = append(p.seen, l)
		}
		return l, ok
	case <-time.After(10 * time.Second):
		p.t.Fatalf("node %s printed nothing for 10 s", p.name)
	}
	return "", false
}

// expect reads lines until one satisfies match and returns it.
func (p *interopProc) expect(what string, match func(string) bool) string {
	p.t.Helper()
	for {
		l, ok := p.next()
		if !ok {
			p.t.Fatalf("node %s ended before printing %s", p.name, what)
		}
		if match(l) {
			return l
		}
	}
}

// stop kills the process group and waits for it.
func (p *interopProc) stop() {
	p.t.Helper()
	p.cancel()
	p.wait()
}

// wait waits for the process to exit and returns its error (nil for
// status 0).
func (p *interopProc) wait() error {
	p.t.Helper()
	for l := range p.lines {
		p.seen = append(p.seen, l)
	}
	select {
	case <-p.exited:
		return p.err
	case <-time.After(15 * time.Second):
		p.t.Fatalf("node %s did not exit", p.name)
	}
	return nil
}

// interopJSON is one JSON line a script printed: a dispatch, or a string
// for a line that was not JSON.
type interopJSON struct {
	Method   string            `json:"method"`
	Resource []json.RawMessage `json:"resource"`
	Token    []any             `json:"token"`
	Body     json.RawMessage   `json:"body"`
	Endpoint *struct {
		Method   string   `json:"method"`
		Resource []string `json:"resource"`
	} `json:"endpoint"`
	Exception json.RawMessage `json:"exception"`
}

func parseInterop(t *testing.T, line string) interopJSON {
	t.Helper()
	var v interopJSON
	if err := json.Unmarshal([]byte(line), &v); err != nil {
		t.Fatalf("script printed %s, not a dispatch: %v", line, err)
	}
	return v
}

func isAnswerLine(l string) bool { return strings.Contains(l, `"method":"ANSWER"`) }

// interopRecorder is the engine as the gateway's Ingress that also keeps
// what it could not decode (such as the "[object Object]" the Node engine
// echoes for an answer that carries a token), and the links frames came
// from.
type interopRecorder struct {
	*Node
	mu      sync.Mutex
	bad     []string
	origins map[mesh.Link]bool
}

func (r *interopRecorder) Attach(l mesh.Link) mesh.FrameFunc {
	inner := r.Node.Attach(l)
	return func(ctx context.Context, frame []byte, err error) {
		r.mu.Lock()
		if r.origins == nil {
			r.origins = map[mesh.Link]bool{}
		}
		r.origins[l] = true
		if err == nil {
			if _, derr := r.Node.Decoder().Decode(frame); derr != nil {
				r.bad = append(r.bad, string(frame))
			}
		}
		r.mu.Unlock()
		inner(ctx, frame, err)
	}
}

// quiet waits until every connection that sent something has ended, then
// fails if any of them sent a frame the engine could not decode.
func (r *interopRecorder) quiet(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	var dones []<-chan struct{}
	for o := range r.origins {
		dones = append(dones, o.Done())
	}
	r.mu.Unlock()
	for _, d := range dones {
		select {
		case <-d:
		case <-time.After(15 * time.Second):
			t.Fatal("a classic connection did not end")
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) > 0 {
		t.Fatalf("the Node engine sent frames that do not decode: %q", r.bad)
	}
}

func interopGateway(t *testing.T, recv mesh.Ingress) (*mesh.Gateway, string) {
	t.Helper()
	g, err := mesh.ListenTCP("127.0.0.1:0", recv, mesh.GatewayConfig{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g, strconv.Itoa(g.Addr().(*net.TCPAddr).Port)
}

// The Node engine's client, through its own client pool, asks our
// gateway; it gets an answer it accepts, and a 404 instead of silence
// when nothing is bound.
func TestInteropNodeClientToGateway(t *testing.T) {
	dir := requireInterop(t)
	n := clNode(t)
	if _, err := n.Handle(dispatch.Endpoint{Method: "GET", Resource: []string{"hello", ":x"}}, func(_ context.Context, in *Incoming) (any, error) {
		return map[string]string{"hello": in.Params["x"]}, nil
	}); err != nil {
		t.Fatal(err)
	}
	rec := &interopRecorder{Node: n}
	_, port := interopGateway(t, rec)

	c := interopStart(t, dir, 30*time.Second, "client.js", port, "GET", `["hello","world"]`, "", "8000")
	a := parseInterop(t, c.expect("an ANSWER", isAnswerLine))
	if len(a.Resource) != 3 || string(a.Resource[0]) != "200" || string(a.Body) != `{"hello":"world"}` {
		t.Fatalf("client.js received %+v", a)
	}
	if err := c.wait(); err != nil {
		t.Fatalf("client.js: %v", err)
	}

	start := time.Now()
	c = interopStart(t, dir, 30*time.Second, "client.js", port, "GET", `["nobody","home"]`, "", "8000")
	a = parseInterop(t, c.expect("an ANSWER", isAnswerLine))
	if len(a.Resource) != 3 || string(a.Resource[0]) != "404" || !strings.HasPrefix(string(a.Resource[2]), `"whole-`) {
		t.Fatalf("client.js received %+v, want a three-element 404", a)
	}
	if err := c.wait(); err != nil {
		t.Fatalf("client.js: %v", err)
	}
	if el := time.Since(start); el > 6*time.Second {
		t.Fatalf("client.js took %v: it waited for its timeout rather than the 404", el)
	}
	rec.quiet(t)
}

// interopProxy relays TCP connections to 127.0.0.1:target and records the
// lines that travel towards it. sent returns them once every relayed
// connection has ended in that direction.
func interopProxy(t *testing.T, target string) (port string, sent func() []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		up    sync.WaitGroup // the client→target directions
		mu    sync.Mutex
		lines []string
		conns []net.Conn
	)
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", "127.0.0.1:"+target)
			if err != nil {
				in.Close()
				continue
			}
			track(in)
			track(out)
			wg.Add(2)
			up.Add(1)
			go func() {
				defer wg.Done()
				defer up.Done()
				sc := bufio.NewScanner(in)
				sc.Buffer(nil, 1<<20)
				for sc.Scan() {
					mu.Lock()
					lines = append(lines, sc.Text())
					mu.Unlock()
					if _, err := out.Write(append(sc.Bytes(), '\n')); err != nil {
						break
					}
				}
				out.(*net.TCPConn).CloseWrite()
			}()
			go func() {
				defer wg.Done()
				io.Copy(in, out)
				in.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), func() []string {
		done := make(chan struct{})
		go func() { up.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Fatal("the relayed connection did not end")
		}
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), lines...)
	}
}

// Our mesh asks the Node engine: a peer's Request with the host
// [127.0.0.1, PORT, "tcp"] goes through the classic client.
func TestInteropMeshToNodeServer(t *testing.T) {
	dir := requireInterop(t)
	nodePort := strconv.Itoa(freePort(t))
	srv := interopStart(t, dir, 60*time.Second, "server.js", nodePort)
	srv.expect("ready", func(l string) bool { return l == "ready" })
	port, sent := interopProxy(t, nodePort)
	portNum, _ := strconv.Atoi(port)

	p, err := Start(t.Context(), PeerConfig{Mesh: testConfig(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			p.Close()
		}
	})

	for _, who := range []string{"go", "again"} {
		d := dispatch.New("GET", "hello", who)
		d.Host = []dispatch.Host{{Name: "127.0.0.1", Port: portNum, Transport: "tcp"}}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		ch, err := p.Node.Request(ctx, d)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		a, ok := <-ch
		cancel() // the engine sends one answer; do not wait for a 504
		if !ok {
			t.Fatal("no answer")
		}
		code, _, trig, _ := a.AnswerInfo()
		if code != 200 || trig == "" || string(a.Body) != fmt.Sprintf(`{"hello":%q}`, who) {
			t.Fatalf("answer %s", a)
		}
	}

	// What went to the Node engine: the two requests (with a token and
	// lowercase headers, no host left), and nothing else: in particular
	// no exception for the engine's completion notices (RELEASE of
	// ANSWER ["*", txid, "*"], docs/classic-wire.md §7).
	closed = true
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	lines := sent()
	if len(lines) != 2 {
		t.Fatalf("sent to the Node engine:\n%s\nwant the two requests only", strings.Join(lines, "\n"))
	}
	for _, l := range lines {
		v := parseInterop(t, l)
		if v.Method != "GET" || len(v.Token) != 1 || strings.Contains(l, `"host"`) || v.Exception != nil {
			t.Fatalf("sent to the Node engine: %s", l)
		}
	}
	// The engine survived all of it (a reset would have killed it).
	select {
	case <-srv.exited:
		t.Fatalf("server.js exited: %v", srv.err)
	default:
	}
}

// interopWaitBound waits until a classic connection holds a subscription
// to ep on n (the binder prints "bound" when the BIND is written, not
// when the gateway has processed it).
func interopWaitBound(t *testing.T, n *Node, method string, resource ...string) {
	t.Helper()
	poll.Until(t, 10*time.Second, "the Node binder's subscription", func() bool {
		for _, s := range n.Subscriptions() {
			if s.Method == method && strings.Join(s.Resource, "/") == strings.Join(resource, "/") && strings.HasPrefix(s.Owner, "tcp:") {
				return true
			}
		}
		return false
	})
}

// The Node engine binds on our gateway; a dispatch without a transaction
// id reaches it intact.
func TestInteropNodeBinderToGateway(t *testing.T) {
	dir := requireInterop(t)
	n := clNode(t)
	rec := &interopRecorder{Node: n}
	_, port := interopGateway(t, rec)

	b := interopStart(t, dir, 30*time.Second, "binder.js", port, `{"method":"POST","resource":["events","*"]}`)
	b.expect("bound", func(l string) bool { return l == "bound" })
	interopWaitBound(t, n, "POST", "events", "*")

	ev := dispatch.New("POST", "events", "one")
	ev.Body = json.RawMessage(`{"n":1}`)
	if err := n.Send(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	l := b.expect("the pushed POST", func(l string) bool { return strings.Contains(l, `"method":"POST"`) })
	v := parseInterop(t, l)
	if string(v.Body) != `{"n":1}` || len(v.Resource) != 2 || string(v.Resource[1]) != `"one"` || v.Token == nil || len(v.Token) != 0 {
		t.Fatalf("binder.js received %s", l)
	}
	for _, l := range b.seen {
		if strings.HasPrefix(l, `"`) || strings.Contains(l, `"exception"`) {
			t.Fatalf("binder.js received %s", l)
		}
	}
}

// Node serves Node through our engine: binder.js binds on the gateway
// and answers what is pushed to it; client.js asks the gateway and gets
// the binder's answer.
func TestInteropNodeRequesterServedByNodeBinder(t *testing.T) {
	dir := requireInterop(t)
	n := clNode(t)
	rec := &interopRecorder{Node: n}
	_, port := interopGateway(t, rec)

	b := interopStart(t, dir, 30*time.Second, "binder.js", port, `{"method":"POST","resource":["events","*"]}`, "200")
	b.expect("bound", func(l string) bool { return l == "bound" })
	interopWaitBound(t, n, "POST", "events", "*")

	c := interopStart(t, dir, 30*time.Second, "client.js", port, "POST", `["events","two"]`, `{"n":2}`, "8000")
	a := parseInterop(t, c.expect("an ANSWER", isAnswerLine))
	if len(a.Resource) != 3 || string(a.Resource[0]) != "200" || string(a.Body) != `{"from":"binder"}` {
		t.Fatalf("client.js received %+v", a)
	}
	if err := c.wait(); err != nil {
		t.Fatalf("client.js: %v", err)
	}
	// The binder saw the request with [txid, trigid], as proper JSON.
	push := parseInterop(t, b.expect("the pushed POST", func(l string) bool { return strings.Contains(l, `"method":"POST"`) }))
	if len(push.Token) != 2 || string(push.Body) != `{"n":2}` {
		t.Fatalf("binder.js received %+v", push)
	}
	if got := string(a.Resource[2]); got != strconv.Quote(push.Token[1].(string)) {
		t.Fatalf("answer for triggering id %s, the binder was given %v", got, push.Token[1])
	}
	// Nothing the Node engines sent failed to decode (no echoed answers).
	b.stop()
	rec.quiet(t)
}

// A signed dispatch still verifies after the Node.js engine has parsed
// and re-serialised it (its key order and number formatting, not ours).
func TestInteropSignatureSurvivesNodeEngine(t *testing.T) {
	dir := requireInterop(t)
	nodePort := strconv.Itoa(freePort(t))
	srv := interopStart(t, dir, 60*time.Second, "server.js", nodePort)
	srv.expect("ready", func(l string) bool { return l == "ready" })
	portNum, _ := strconv.Atoi(nodePort)
	p, err := Start(t.Context(), PeerConfig{Mesh: testConfig(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	d := dispatch.New("POST", "events", "signed")
	d.Token = []any{uuid.NewString()}
	d.Body = json.RawMessage(`{"z":[1,2.5,1e3,"é\u2028"],"a":{"y":true,"b":null}}`)
	d.Extra = dispatch.Headers{{Name: "note", Value: json.RawMessage(`"kept"`)}}
	if err := identity.Sign(p.Host.LibP2P().Peerstore().PrivKey(p.Host.ID()), d); err != nil {
		t.Fatal(err)
	}
	d.Host = []dispatch.Host{{Name: "127.0.0.1", Port: portNum, Transport: "tcp"}}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ch, err := p.Node.Request(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	<-ch
	line := srv.expect("the signed event", func(l string) bool { return strings.Contains(l, `"signed"`) })
	got, err := dispatch.Decode([]byte(line))
	if err != nil {
		t.Fatalf("the Node engine printed %s: %v", line, err)
	}
	author, err := identity.Verify(got)
	if err != nil || author != p.Host.ID() {
		t.Fatalf("after the Node engine: author %s, %v\nit printed %s\nwe sent %s", author, err, line, d)
	}
}
