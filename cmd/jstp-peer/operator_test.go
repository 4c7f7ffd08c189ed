package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/internal/poll"
	"github.com/jstp-peer/jstp-peer/node"
)

// send --format body prints one line per answer: each subscriber's body,
// nothing else.
func TestSendBodyOnePerLine(t *testing.T) {
	a := startUp(t, loopbackUp(t)...)
	for i := 1; i <= 2; i++ {
		_, err := a.p.Node.Handle(dispatch.Endpoint{Method: dispatch.POST, Resource: []string{"feed"}}, func(context.Context, *node.Incoming) (any, error) {
			return map[string]any{"handler": i, "text": "line\nbreak"}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := runCmd(context.Background(), "send", "POST jstp:///feed", "--via", a.gw, "--format", "body")
	if code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	slices.Sort(lines)
	want := []string{`{"handler":1,"text":"line\nbreak"}`, `{"handler":2,"text":"line\nbreak"}`}
	if !slices.Equal(lines, want) {
		t.Fatalf("stdout %q, want the two bodies, one per line: %q", out, want)
	}
}

// provide, resolve and unprovide change what the local peer serves, and
// the rest of the mesh sees it.
func TestProvideResolveUnprovide(t *testing.T) {
	a := startUp(t, loopbackUp(t)...)
	b := startUp(t, append(loopbackUp(t), "--bootstrap", a.p.Host.Addrs()[0].String())...)
	ctx := context.Background()
	const name = "menu.cli.test"

	code, out, errOut := runCmd(ctx, "provide", name, "--via", b.gw)
	if code != 0 || !strings.HasPrefix(out, "providing: "+name) {
		t.Fatalf("provide: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	if !b.p.Names.Provides(name) {
		t.Fatal("b does not provide the name")
	}
	// A dispatch to the name reaches b.
	poll.Until(t, 30*time.Second, "a dispatch to the name to reach b", func() bool {
		code, out, _ := runCmd(ctx, "send", "jstp://"+name+"/peer", "--via", a.gw, "--format", "body")
		return code == 0 && strings.Contains(out, b.id())
	})

	// a resolves it to b, with b's saturation once a has heard b's report.
	var got struct {
		Name      string        `json:"name"`
		Providers []providerRow `json:"providers"`
	}
	// b's next report lists the name: provide reaches the reports.
	poll.Until(t, 30*time.Second, "a to resolve the name to b, with b's report naming it", func() bool {
		code, out, _ := runCmd(ctx, "resolve", name, "--via", a.gw, "--json")
		return code == 0 && json.Unmarshal([]byte(out), &got) == nil && len(got.Providers) == 1 &&
			got.Providers[0].Saturation != nil && slices.Contains(got.Providers[0].Saturation.Names, name)
	})
	p := got.Providers[0]
	if got.Name != name || p.ID != b.id() || p.Self || len(p.Addrs) == 0 || p.Saturation.Peer != b.id() || p.AgeMS == nil {
		t.Fatalf("resolve --json: %+v", got)
	}
	code, out, _ = runCmd(ctx, "resolve", name, "--via", a.gw)
	if code != 0 || !strings.HasPrefix(out, "PEER") || !strings.Contains(out, b.id()) || !strings.Contains(out, p.Saturation.Level.String()) {
		t.Fatalf("resolve: exit %d\n%s", code, out)
	}
	// b resolving its own name sees itself, its report marked self.
	code, out, _ = runCmd(ctx, "resolve", name, "--via", b.gw)
	if code != 0 || !strings.Contains(out, b.id()) || !strings.Contains(out, " self ") {
		t.Fatalf("resolve on the provider: exit %d\n%s", code, out)
	}

	code, out, errOut = runCmd(ctx, "unprovide", name, "--via", b.gw)
	if code != 0 || !strings.HasPrefix(out, "no longer providing: "+name) {
		t.Fatalf("unprovide: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	if b.p.Names.Provides(name) {
		t.Fatal("b still provides the name")
	}
	if code, out, _ := runCmd(ctx, "send", "jstp:///names", "--via", b.gw, "--format", "body"); code != 0 || out != "[]\n" {
		t.Fatalf("names after unprovide: exit %d, %q", code, out)
	}
}

// bind --count stops after N dispatches; when its peer restarts, bind
// reconnects and binds again, and what is sent then still arrives.
func TestBindCountAndReconnect(t *testing.T) {
	gw := closedPort(t)
	dir := t.TempDir()
	args := []string{"--data-dir", dir, "--listen", "/ip4/127.0.0.1/tcp/0", "--gateway-tcp", gw,
		"--gateway-ws", "", "--no-mdns", "--log-level", "warn"}
	first, stopFirst := startStoppable(t, args...)

	bindOut, bindErr := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"bind", "POST jstp:///news/*", "--via", gw, "--count", "2", "--format", "body"},
			strings.NewReader(""), bindOut, bindErr)
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		poll.Until(t, 30*time.Second, what, func() bool {
			select {
			case code := <-done:
				t.Fatalf("bind exited %d while waiting for %s\nstdout %s\nstderr %s", code, what, bindOut, bindErr)
			default:
			}
			return cond()
		})
	}
	post := func(body string) {
		t.Helper()
		if code, out, errOut := runCmd(context.Background(), "send", "POST jstp:///news/today", "--via", gw, "--body", body); code != 0 {
			t.Fatalf("send: exit %d\nstdout %s\nstderr %s", code, out, errOut)
		}
	}
	waitFor("the BIND", func() bool { return strings.Contains(bindErr.String(), "bound: POST /news/*") })
	post("before")
	waitFor("the first POST", func() bool { return bindOut.String() == "\"before\"\n" })
	if first.gw != gw {
		t.Fatalf("up listens on %s, want %s", first.gw, gw)
	}

	stopFirst()
	waitFor("bind to notice", func() bool { return strings.Contains(bindErr.String(), "reconnecting") })
	_, stopSecond := startStoppable(t, args...)
	waitFor("bind to bind again", func() bool { return strings.Contains(bindErr.String(), "bound again: POST /news/*") })
	post("after")
	select {
	case code := <-done:
		if code != 0 || bindOut.String() != "\"before\"\n\"after\"\n" || !strings.Contains(bindErr.String(), "released: POST /news/*") {
			t.Fatalf("bind --count 2: exit %d\nstdout %q\nstderr %s", code, bindOut, bindErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("bind --count 2 did not stop after two dispatches\nstdout %q\nstderr %s", bindOut, bindErr)
	}
	stopSecond()

	// --no-reconnect ends with the connection, status 1.
	third, stopThird := startStoppable(t, args...)
	bindErr = &syncBuffer{}
	go func() {
		done <- run(context.Background(), []string{"bind", "POST jstp:///news/*", "--via", third.gw, "--no-reconnect"},
			strings.NewReader(""), &syncBuffer{}, bindErr)
	}()
	waitFor("the BIND", func() bool { return strings.Contains(bindErr.String(), "bound: POST /news/*") })
	stopThird()
	select {
	case code := <-done:
		if code != exitFail || !strings.Contains(bindErr.String(), "closed the connection") || strings.Contains(bindErr.String(), "reconnecting") {
			t.Fatalf("bind --no-reconnect after its peer stopped: exit %d, stderr %s", code, bindErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("bind --no-reconnect did not end with its peer\nstderr %s", bindErr)
	}
}

// startStoppable runs `up` in-process; stop ends it and checks it exited
// 0 (the test's end does too, if stop was not called).
func startStoppable(t *testing.T, args ...string) (*upPeer, func()) {
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
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("up exited %d\nstderr: %s", code, u.stderr)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("up did not stop within 20s")
		}
	}
	t.Cleanup(stop)
	return u, stop
}

// up --log-format json writes one JSON object per line, and a dispatch
// in a log record in the HTTP-like notation.
func TestUpLogFormatJSON(t *testing.T) {
	args := loopbackUp(t)
	for i, a := range args {
		if a == "--log-level" {
			args[i+1] = "info"
		}
	}
	a := startUp(t, append(args, "--log-format", "json")...)
	if code, _, errOut := runCmd(context.Background(), "provide", "logged.example", "--via", a.gw); code != 0 {
		t.Fatalf("provide: exit %d, %s", code, errOut)
	}
	var record map[string]any
	poll.Until(t, 10*time.Second, "the provide to be logged", func() bool {
		for _, line := range strings.Split(strings.TrimSpace(a.stderr.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("a log line that is not JSON: %q (%v)", line, err)
			}
			if m["msg"] == "name provided on request" {
				record = m
				return true
			}
		}
		return false
	})
	d, _ := record["dispatch"].(string)
	if record["name"] != "logged.example" || !strings.HasPrefix(d, "PUT /names/logged.example JSTP/0.4") {
		t.Fatalf("log record %v: want the dispatch in the HTTP-like notation", record)
	}
	if _, err := dispatch.ParseHTTP([]byte(d)); err != nil {
		t.Fatalf("the logged dispatch does not read back: %v\n%s", err, d)
	}
}

// Both log formats write a dispatch in the HTTP-like notation, one
// string whose line breaks the handler escapes.
func TestLoggerRendersDispatches(t *testing.T) {
	d := dispatch.New(dispatch.PUT, "names", "x")
	d.Timestamp = 1365647440759
	for format, want := range map[string]string{
		logText: `dispatch="PUT /names/x JSTP/0.4\ntimestamp: 1365647440759"`,
		logJSON: `"dispatch":"PUT /names/x JSTP/0.4\ntimestamp: 1365647440759"`,
	} {
		var buf syncBuffer
		newLogger(&buf, slog.LevelInfo, format).Info("asked", "dispatch", d)
		if got := buf.String(); !strings.Contains(got, want) || strings.Count(got, "\n") != 1 {
			t.Errorf("%s log: %q, want one line with %s", format, got, want)
		}
	}
}

// The completion scripts complete commands, flags and flag values; bash
// runs them here, zsh and fish (when installed) check and load them.
func TestCompletion(t *testing.T) {
	scripts := map[string]string{}
	for _, sh := range completionShells {
		code, out, errOut := runCmd(context.Background(), "completion", sh)
		if code != 0 || out == "" {
			t.Fatalf("completion %s: exit %d, stderr %s", sh, code, errOut)
		}
		scripts[sh] = out
	}
	for _, sh := range completionShells {
		for _, c := range commands {
			if !regexp.MustCompile(`\b` + c.name + `\b`).MatchString(scripts[sh]) {
				t.Errorf("%s completion does not know %q", sh, c.name)
			}
		}
	}

	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	file := t.TempDir() + "/jstp-peer.bash"
	if err := os.WriteFile(file, []byte(scripts["bash"]), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line string // what is typed; the word under the cursor is the last
		want string // COMPREPLY, sorted, space-separated
	}{
		{"jstp-peer se", "send"},
		{"jstp-peer s", "saturation send sim"},
		{"jstp-peer send --fo", "--format"},
		{"jstp-peer send --format ", "body http json"},
		{"jstp-peer bind --no-", "--no-answer --no-reconnect"},
		{"jstp-peer up --log-format j", "json"},
		{"jstp-peer up --dht ", "auto client server"},
		{"jstp-peer config ", "init show"},
		{"jstp-peer config init --d", "--data-dir --dht"},
		{"jstp-peer completion ", "bash fish zsh"},
		{"jstp-peer help pr", "provide"},
		{"jstp-peer ping --via ", ""},
		{"jstp-peer ping --c", "--config --count"},
	} {
		words := strings.Split(tc.line, " ")
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+w+"'")
		}
		script := fmt.Sprintf(`source %s
COMP_WORDS=(%s); COMP_CWORD=%d
_jstp_peer
printf '%%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' '`, file, strings.Join(quoted, " "), len(words)-1)
		out, err := exec.Command(bash, "--norc", "-c", script).CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != tc.want {
			t.Errorf("%q: completes %q (%v), want %q", tc.line, got, err, tc.want)
		}
	}

	if zsh, err := exec.LookPath("zsh"); err == nil {
		f := t.TempDir() + "/_jstp-peer"
		if err := os.WriteFile(f, []byte(scripts["zsh"]), 0o600); err != nil {
			t.Fatal(err)
		}
		// compdef stands in for compinit's (seconds to load): the script
		// must parse and register its function for jstp-peer.
		out, err := exec.Command(zsh, "-fc", "compdef() { print -r -- \"$*\" }; source "+f+"; whence -w _jstp_peer").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "_jstp_peer jstp-peer\n_jstp_peer: function" {
			t.Errorf("zsh does not load the completion: %v\n%s", err, out)
		}
	}
	if fish, err := exec.LookPath("fish"); err == nil {
		f := t.TempDir() + "/jstp-peer.fish"
		if err := os.WriteFile(f, []byte(scripts["fish"]), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(fish, "--no-config", "-c", "source "+f+"; complete -C 'jstp-peer send --format '").CombinedOutput()
		var values []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			v, _, _ := strings.Cut(l, "\t")
			values = append(values, v)
		}
		slices.Sort(values)
		if err != nil || strings.Join(values, " ") != "body http json" {
			t.Errorf("fish completes --format with %q (%v)\n%s", values, err, out)
		}
	}
}

// bind sends a BIND refused with 503 and retry-after again after the
// hint, as Node.BindAt does, instead of failing. The gateway here is a
// classic engine written for the test: it refuses the first BIND.
func TestBindRetriesAfterTheHint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var binds atomic.Int32
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			d, err := dispatch.Decoder{}.Decode(sc.Bytes())
			if err != nil || d.Kind() != dispatch.Subscription {
				continue
			}
			a := dispatch.NewAnswer(200, d.TransactionID(), "", nil)
			if d.Method == dispatch.BIND && binds.Add(1) == 1 {
				a = dispatch.NewAnswer(503, d.TransactionID(), "", json.RawMessage(`"not yet"`))
				a.Extra.Set(node.RetryAfterHeader, json.RawMessage("50"))
			}
			if _, err := conn.Write(append(a.AppendJSON(nil), '\n')); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	bindErr := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"bind", "POST jstp:///news/*", "--via", ln.Addr().String()}, strings.NewReader(""), &syncBuffer{}, bindErr)
	}()
	poll.Until(t, 30*time.Second, "the BIND sent again", func() bool {
		select {
		case code := <-done:
			t.Fatalf("bind exited %d\nstderr %s", code, bindErr)
		default:
		}
		return strings.Contains(bindErr.String(), "bound: POST /news/*")
	})
	if n := binds.Load(); n != 2 {
		t.Errorf("the gateway got %d BINDs, want 2", n)
	}
	if !strings.Contains(bindErr.String(), "answered 503 not yet; trying again in 50ms") {
		t.Errorf("stderr does not say why it bound again: %s", bindErr)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("bind exited %d after Ctrl-C\nstderr %s", code, bindErr)
	}
}
