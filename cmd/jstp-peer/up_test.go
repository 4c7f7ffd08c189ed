package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/mesh"
	"github.com/jstp-peer/jstp-peer/node"

	"github.com/jstp-peer/jstp-peer/internal/poll"
)

// syncBuffer is a bytes.Buffer that a command writes to while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// upPeer is a `jstp-peer up` running in-process.
type upPeer struct {
	p              *node.Peer
	gw             string // the TCP gateway, as printed
	stdout, stderr *syncBuffer
}

func (u *upPeer) id() string { return u.p.Host.ID().String() }

// loopbackUp are the flags of a test peer: loopback, free ports, no WS
// gateway, no mDNS (so the test meshes are exactly what the test builds).
func loopbackUp(t *testing.T) []string {
	return []string{"--data-dir", t.TempDir(), "--listen", "/ip4/127.0.0.1/tcp/0", "--gateway-tcp", "127.0.0.1:0",
		"--gateway-ws", "", "--no-mdns", "--dht", "server", "--log-level", "warn"}
}

// gatewayLine finds the TCP gateway in up's output.
var gatewayLine = regexp.MustCompile(`(?m)^gateways: tcp ([0-9.:\[\]a-f]+)`)

// startUp runs `up` with args in-process until the test ends, and checks
// that it then stops with status 0.
func startUp(t *testing.T, args ...string) *upPeer {
	t.Helper()
	u := &upPeer{stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *node.Peer, 1)
	done := make(chan int, 1)
	go func() { done <- up(ctx, args, u.stdout, u.stderr, func(p *node.Peer) { ready <- p }) }()
	select {
	case u.p = <-ready:
	case code := <-done:
		cancel()
		t.Fatalf("up exited %d before it was ready\nstderr: %s", code, u.stderr)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("up not ready after 60s\nstderr: %s", u.stderr)
	}
	if m := gatewayLine.FindStringSubmatch(u.stdout.String()); m != nil {
		u.gw = m[1]
		if got := u.p.Gateways[0].Addr().String(); got != u.gw {
			t.Errorf("printed gateway %s, listening on %s", u.gw, got)
		}
	} else if len(u.p.Gateways) > 0 {
		cancel()
		t.Fatalf("no gateway address in up's output:\n%s", u.stdout)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("up exited %d after cancellation\nstderr: %s", code, u.stderr)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("up did not stop within 20s")
		}
	})
	return u
}

// run runs a command in-process.
func runCmd(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(ctx, args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// answersIn decodes the dispatches `send --format json` printed.
func answersIn(t *testing.T, out string) []*dispatch.Dispatch {
	t.Helper()
	var ds []*dispatch.Dispatch
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		d, err := dispatch.Decoder{Quirks: true}.Decode([]byte(line))
		if err != nil {
			t.Fatalf("output line is not a dispatch: %v\n%s", err, line)
		}
		ds = append(ds, d)
	}
	return ds
}

func answerCode(t *testing.T, d *dispatch.Dispatch) int {
	t.Helper()
	c, _, _, ok := d.AnswerInfo()
	if !ok {
		t.Fatalf("not an answer: %s", d)
	}
	return c
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestUpSendBindPeers(t *testing.T) {
	a := startUp(t, loopbackUp(t)...)
	b := startUp(t, append(loopbackUp(t), "--bootstrap", a.p.Host.Addrs()[0].String())...)
	ctx := context.Background()

	// Output of up: the peer id and full /p2p/ addresses.
	if !strings.HasPrefix(a.stdout.String(), "peer id: "+a.id()+"\n") || !strings.Contains(a.stdout.String(), "/p2p/"+a.id()) {
		t.Errorf("up output:\n%s", a.stdout)
	}

	t.Run("send to a peer by id through another", func(t *testing.T) {
		code, out, errOut := runCmd(ctx, "send", "jstp://"+b.id()+"/echo/x", "--via", a.gw, "--format", "json")
		if code != 0 {
			t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errOut)
		}
		as := answersIn(t, out)
		if len(as) != 1 || answerCode(t, as[0]) != 200 {
			t.Fatalf("answers: %s", out)
		}
		echoed, err := dispatch.Decode(as[0].Body)
		if err != nil || echoed.ResourceText()[1] != "x" {
			t.Fatalf("echo body %s: %v", as[0].Body, err)
		}
	})

	t.Run("peers", func(t *testing.T) {
		code, out, errOut := runCmd(ctx, "peers", "--via", b.gw, "--json")
		if code != 0 {
			t.Fatalf("exit %d, stderr %s", code, errOut)
		}
		var rows []peerRow
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("peers --json: %v\n%s", err, out)
		}
		if len(rows) != 1 || rows[0].ID != a.id() || len(rows[0].Addrs) == 0 {
			t.Fatalf("peers of b = %s, want a (%s)", out, a.id())
		}
		code, out, _ = runCmd(ctx, "peers", "--via", b.gw)
		if code != 0 || !strings.Contains(out, "PEER") || !strings.Contains(out, a.id()) {
			t.Fatalf("peers table: exit %d\n%s", code, out)
		}
	})

	t.Run("bind sees a POST from another peer", func(t *testing.T) {
		bctx, stopBind := context.WithCancel(ctx)
		defer stopBind()
		bindOut, bindErr := &syncBuffer{}, &syncBuffer{}
		done := make(chan int, 1)
		go func() {
			done <- run(bctx, []string{"bind", "POST jstp:///news/*", "--via", b.gw}, strings.NewReader(""), bindOut, bindErr)
		}()
		poll.Until(t, 20*time.Second, "the BIND's answer", func() bool {
			select {
			case code := <-done:
				t.Fatalf("bind exited %d: %s", code, bindErr)
			default:
			}
			return strings.Contains(bindErr.String(), "bound: POST /news/*")
		})

		code, out, errOut := runCmd(ctx, "send", "POST jstp://"+b.id()+"/news/today", "--via", a.gw, "--body", "extra! extra!")
		if code != 0 {
			t.Fatalf("send: exit %d\nstdout %s\nstderr %s", code, out, errOut)
		}
		if as := answersIn(t, out); len(as) != 1 || answerCode(t, as[0]) != 200 {
			t.Fatalf("the subscriber's answer: %s", out)
		}
		poll.Until(t, 10*time.Second, "bind to print the POST", func() bool { return strings.Contains(bindOut.String(), `"today"`) })
		got := answersIn(t, bindOut.String())
		if len(got) != 1 || got[0].Method != "POST" || bodyText(got[0].Body) != "extra! extra!" {
			t.Fatalf("bind printed %s", bindOut)
		}

		stopBind()
		select {
		case code := <-done:
			if code != 0 || !strings.Contains(bindErr.String(), "released: POST /news/*") {
				t.Fatalf("bind after Ctrl-C: exit %d, stderr %s", code, bindErr)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("bind did not stop")
		}
		poll.Until(t, 10*time.Second, "the subscription to go", func() bool {
			for _, s := range b.p.Node.Subscriptions() {
				if len(s.Resource) > 0 && s.Resource[0] == "news" {
					return false
				}
			}
			return true
		})
	})

	t.Run("bind failure", func(t *testing.T) {
		code, _, errOut := runCmd(ctx, "bind", "GET jstp://nobody.invalid/x", "--via", a.gw, "--timeout", "20s")
		if code != exitFail || !strings.Contains(errOut, "failed") {
			t.Fatalf("exit %d, stderr %q; want 1 and the BIND's failure", code, errOut)
		}
	})

	t.Run("send without a local peer, through its own", func(t *testing.T) {
		code, out, errOut := runCmd(ctx, "send", "jstp://"+a.id()+"/echo/own", "--via", closedPort(t),
			"--bootstrap", a.p.Host.Addrs()[0].String(), "--timeout", "20s")
		if code != 0 {
			t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errOut)
		}
		if as := answersIn(t, out); len(as) != 1 || answerCode(t, as[0]) != 200 {
			t.Fatalf("answers: %s", out)
		}
	})

	t.Run("http format and 404", func(t *testing.T) {
		code, out, _ := runCmd(ctx, "send", "jstp:///nothing/here", "--via", a.gw, "--format", "http")
		if code != exitFail || !strings.HasPrefix(out, "ANSWER /404/") || !strings.Contains(out, "nothing is bound") {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
}

func TestSendErrors(t *testing.T) {
	ctx := context.Background()
	via := closedPort(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"no dispatch", []string{"send"}, exitUsage, "want one DISPATCH"},
		{"two dispatches", []string{"send", "jstp:///a", "jstp:///b"}, exitUsage, "want one DISPATCH"},
		{"invalid", []string{"send", "FETCH jstp:///a"}, exitUsage, "invalid dispatch (405)"},
		{"bind is not for send", []string{"send", "BIND POST jstp:///a"}, exitUsage, "jstp-peer bind"},
		{"bad format", []string{"send", "jstp:///a", "--format", "xml"}, exitUsage, "want json, http or body"},
		{"no such file", []string{"send", "@" + filepath.Join(t.TempDir(), "none")}, exitUsage, "no such file"},
		{"nobody listening", []string{"send", "jstp:///peer", "--via", via}, exitFail,
			"no peer at " + via},
		{"nobody listening, bind", []string{"bind", "jstp:///a", "--via", via}, exitFail, "start one with `jstp-peer up`"},
		{"nobody listening, peers", []string{"peers", "--via", via}, exitFail, "no peer at"},
		{"bad endpoint", []string{"bind", "POST jstp:///a/:"}, exitUsage, "ENDPOINT"},
		{"host twice", []string{"bind", "jstp://h/a", "--host", "g"}, exitUsage, "--host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(ctx, tc.args...)
			if code != tc.code || out != "" || !strings.Contains(errOut, tc.says) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d, nothing, %q", code, out, errOut, tc.code, tc.says)
			}
		})
	}
	// The message names both ways out when there is no peer.
	_, _, errOut := runCmd(ctx, "send", "jstp:///peer", "--via", via)
	if !strings.Contains(errOut, "--via ADDR or --bootstrap MULTIADDR") || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("no-peer message: %q", errOut)
	}
}

func TestParseBindEndpoint(t *testing.T) {
	for _, tc := range []struct {
		arg, host string
		want      string // hosts | endpoint
	}{
		{"POST jstp://pizza.com.ar/foods/*", "", "pizza.com.ar | POST /foods/*"},
		{"jstp:///a/.../:ext", "", " | GET /a/.../:ext"},
		{`{"method":"post","resource":["foods","*"]}`, "a,b:33333", "a, b:33333/tcp | POST /foods/*"},
		{`{"method":"*","resource":["x"]}`, "", " | * /x"},
	} {
		hosts, ep, err := parseBindEndpoint(tc.arg, tc.host)
		if err != nil {
			t.Errorf("%q: %v", tc.arg, err)
			continue
		}
		if got := hostsText(hosts) + " | " + ep.String(); got != tc.want {
			t.Errorf("%q --host %q = %q, want %q", tc.arg, tc.host, got, tc.want)
		}
	}
}

func TestUpPortsTaken(t *testing.T) {
	held, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	port := held.Addr().(*net.TCPAddr).Port
	ctx := context.Background()

	// An explicit address that is taken is an error that says what to do.
	code, _, errOut := runCmd(ctx, "up", "--data-dir", t.TempDir(), "--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port), "--no-mdns")
	if code != exitFail || !strings.Contains(errOut, "is in use") || !strings.Contains(errOut, "--listen /ip4/0.0.0.0/tcp/0") {
		t.Fatalf("explicit busy listen: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCmd(ctx, "up", "--data-dir", t.TempDir(), "--listen", "/ip4/127.0.0.1/tcp/0", "--gateway-tcp", held.Addr().String(), "--no-mdns")
	if code != exitFail || !strings.Contains(errOut, "--gateway-tcp "+held.Addr().String()+" is in use") {
		t.Fatalf("explicit busy gateway: exit %d, stderr %q", code, errOut)
	}

	// Default gateway ports that are taken fall back to free ones. Hold
	// them if nobody does (if somebody does, the fallback happens anyway).
	for _, addr := range []string{mesh.DefaultGatewayTCP, mesh.DefaultGatewayWS} {
		if ln, err := net.Listen("tcp", addr); err == nil {
			defer ln.Close()
		}
	}
	u := startUp(t, "--data-dir", t.TempDir(), "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--log-level", "warn")
	if u.gw == mesh.DefaultGatewayTCP || !strings.Contains(u.stdout.String(), ", ws ws://127.0.0.1:") ||
		!strings.Contains(u.stderr.String(), "using a free port instead") {
		t.Fatalf("fallback: gateway %s\nstdout %s\nstderr %s", u.gw, u.stdout, u.stderr)
	}

	// One data directory, one peer.
	dir := t.TempDir()
	startUp(t, "--data-dir", dir, "--listen", "/ip4/127.0.0.1/tcp/0", "--gateway-tcp", "", "--gateway-ws", "", "--no-mdns")
	code, _, errOut = runCmd(ctx, "up", "--data-dir", dir, "--listen", "/ip4/127.0.0.1/tcp/0", "--gateway-tcp", "", "--gateway-ws", "", "--no-mdns")
	if code != exitFail || !strings.Contains(errOut, "is in use by another jstp-peer") {
		t.Fatalf("second peer on one data dir: exit %d, stderr %q", code, errOut)
	}
}

// built is the binary the process tests share: linking it takes seconds.
var built struct {
	once sync.Once
	bin  string
	err  error
}

// testBinary builds the command once per test run (into testBinDir, which
// TestMain removes) and returns its path; it skips in -short mode and
// without a go tool.
func testBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	built.once.Do(func() {
		built.bin = filepath.Join(testBinDir, "jstp-peer")
		args := append(append([]string{"build"}, buildFlags...), "-o", built.bin, ".")
		if out, err := exec.Command(goTool, args...).CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// TestBinaryUpAndSend runs `up` and `send` as two processes, as a user
// does in two terminals.
func TestBinaryUpAndSend(t *testing.T) {
	bin := testBinary(t)
	upCmd := exec.Command(bin, "up", "--data-dir", t.TempDir(), "--listen", "/ip4/127.0.0.1/tcp/0",
		"--gateway-tcp", "127.0.0.1:0", "--gateway-ws", "", "--no-mdns")
	stdout, err := upCmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var upErr syncBuffer
	upCmd.Stderr = &upErr
	if err := upCmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	gateway := make(chan string, 1)
	var listening []string // written before gateway is sent
	go func() {
		// Read up's output to the end (it ends when up exits), so up
		// never blocks on a full pipe; the wait comes after, as
		// exec.Cmd requires.
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "  /"); ok {
				listening = append(listening, "/"+a)
			}
			if m := gatewayLine.FindStringSubmatch(sc.Text()); m != nil {
				gateway <- m[1]
			}
		}
		exited <- upCmd.Wait()
	}()
	stopped := false
	defer func() {
		if !stopped {
			_ = upCmd.Process.Kill()
			<-exited
		}
	}()
	var gw string
	select {
	case gw = <-gateway:
	case err := <-exited:
		stopped = true
		t.Fatalf("up exited early: %v\nstderr: %s", err, upErr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("up printed no gateway within 60s\nstderr: %s", upErr.String())
	}

	send := func(args ...string) (int, string, string) {
		cmd := exec.Command(bin, append([]string{"send"}, args...)...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var exitErr *exec.ExitError
		switch {
		case errors.As(err, &exitErr):
			return exitErr.ExitCode(), out.String(), errOut.String()
		case err != nil:
			t.Fatalf("send: %v", err)
		}
		return 0, out.String(), errOut.String()
	}

	code, out, errOut := send("jstp:///echo/hello", "--via", gw, "--format", "json")
	if code != 0 {
		t.Fatalf("send echo: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	as := answersIn(t, out)
	if len(as) != 1 || answerCode(t, as[0]) != 200 {
		t.Fatalf("send echo: %s", out)
	}
	echoed, err := dispatch.Decode(as[0].Body)
	if err != nil || strings.Join(echoed.ResourceText(), "/") != "echo/hello" || echoed.Method != "GET" {
		t.Fatalf("the answer's body does not echo the dispatch: %s (%v)", as[0].Body, err)
	}

	// The address `up` printed, pasted into a URL as it is.
	if len(listening) == 0 {
		t.Fatal("up printed no listening address")
	}
	code, out, errOut = send("jstp://"+listening[0]+"/echo/pasted", "--via", gw, "--format", "body")
	if code != 0 || !strings.Contains(out, `"resource":["echo","pasted"]`) {
		t.Fatalf("send to the pasted multiaddr %s: exit %d\nstdout %s\nstderr %s", listening[0], code, out, errOut)
	}

	code, out, errOut = send("jstp:///nothing/here", "--via", gw)
	if code != 1 {
		t.Fatalf("send to nothing: exit %d, want 1\nstdout %s\nstderr %s", code, out, errOut)
	}
	if as := answersIn(t, out); len(as) != 1 || answerCode(t, as[0]) != 404 {
		t.Fatalf("send to nothing: %s", out)
	}

	if err := upCmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("up after SIGINT: %v\nstderr: %s", err, upErr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("up did not exit within 20s of SIGINT\nstderr: %s", upErr.String())
	}
}

// up --on-critical runs its command with the event when a peer of the
// mesh reports itself critical; PUT of an application metric gets it
// there.
func TestUpOnCritical(t *testing.T) {
	out := filepath.Join(t.TempDir(), "event.json")
	a := startUp(t, append(loopbackUp(t), "--on-critical", "cat > "+out)...)
	code, stdout, errOut := runCmd(context.Background(), "send", "PUT jstp:///saturation/metrics/queue", "--body", `{"value": 99, "capacity": 100}`, "--via", a.gw)
	if code != 0 {
		t.Fatalf("send exit %d\nstdout %s\nstderr %s", code, stdout, errOut)
	}
	poll.Until(t, 30*time.Second, "the command to write the event", func() bool {
		b, err := os.ReadFile(out)
		return err == nil && strings.Contains(string(b), `"level":"critical"`) && strings.Contains(string(b), a.id())
	})
}

// saturation --json and --once show the local peer and the peers it hears
// from, with the application metric a client reported.
func TestSaturationCommand(t *testing.T) {
	a := startUp(t, loopbackUp(t)...)
	code, _, errOut := runCmd(context.Background(), "send", "PUT jstp:///saturation/metrics/queue", "--body", `{"value": 40, "capacity": 100}`, "--via", a.gw)
	if code != 0 {
		t.Fatalf("send: exit %d, %s", code, errOut)
	}
	code, out, errOut := runCmd(context.Background(), "saturation", "--json", "--via", a.gw)
	if code != 0 {
		t.Fatalf("saturation --json: exit %d, %s", code, errOut)
	}
	var v struct {
		Self struct {
			Peer string             `json:"peer"`
			Sat  map[string]float64 `json:"sat"`
		} `json:"self"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Self.Peer != a.id() || v.Self.Sat["queue"] == 0 {
		t.Fatalf("saturation --json: %s (%v)", out, err)
	}
	code, out, errOut = runCmd(context.Background(), "saturation", "--once", "--via", a.gw)
	if code != 0 || !strings.Contains(out, "PEER") || !strings.Contains(out, a.id()) || !strings.Contains(out, "self") {
		t.Fatalf("saturation --once: exit %d\n%s\n%s", code, out, errOut)
	}
}
