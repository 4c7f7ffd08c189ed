package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jstp-peer/jstp-peer/internal/poll"
)

// Golden tests: what a command prints, byte for byte, for every command
// and every error a user meets. Each case's exit status, standard output
// and standard error are kept under testdata/golden; what changes from run
// to run (peer ids, ports, UUIDs, times, temporary paths) is replaced by
// placeholders first. After an intended change, regenerate with
//
//	go test ./cmd/jstp-peer/ -run Golden -update
//
// and read the diff.
var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// normalizer replaces what differs between runs with placeholders.
type normalizer struct {
	literal []string // old, new, ... (longest first matters: ids before prefixes)
}

func (n *normalizer) add(old, placeholder string) {
	if old != "" {
		n.literal = append(n.literal, old, placeholder)
	}
}

var varying = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), "<UUID>"},
	{regexp.MustCompile(`\b1[0-9]{12}\b`), "<MS>"},
	{regexp.MustCompile(`(time=|average )[0-9.]+(µs|ms|s)`), "$1<RTT>"},
	{regexp.MustCompile(`go1\.[0-9.]+[^,)]*, [a-z0-9]+/[a-z0-9]+`), "<GO>, <OS>/<ARCH>"},
	{regexp.MustCompile(`12D3KooW[1-9A-HJ-NP-Za-km-z]{44}`), "<OTHER-PEER>"},
	{regexp.MustCompile(`(?m)^data dir: .*$`), "data dir: <TMP>"},
	// An engine's labels for triggering ids and routes (node/routes.go).
	{regexp.MustCompile(`\b[0-9A-V]{8}\.[0-9a-z]+\b`), "<LABEL>"},
}

// port finds ports in multiaddrs and loopback addresses; those the docs
// name (4033, 33333, 33334) stay.
var port = regexp.MustCompile(`(/tcp/|/udp/|127\.0\.0\.1:)([0-9]+)`)

func (n *normalizer) apply(s string) string {
	s = strings.NewReplacer(n.literal...).Replace(s)
	for _, v := range varying {
		s = v.re.ReplaceAllString(s, v.repl)
	}
	return port.ReplaceAllStringFunc(s, func(m string) string {
		sub := port.FindStringSubmatch(m)
		switch sub[2] {
		case "4033", "33333", "33334":
			return m
		}
		return sub[1] + "<PORT>"
	})
}

// goldenCase is one command line and what it must print.
type goldenCase struct {
	name  string // the file: testdata/golden/NAME.txt
	args  []string
	stdin string
}

// runGolden runs the cases in-process and compares with, or with
// -update writes, their golden files.
func runGolden(t *testing.T, n *normalizer, cases []goldenCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut syncBuffer
			// A bound, should a command that must fail start a peer.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			code := run(ctx, tc.args, strings.NewReader(tc.stdin), &out, &errOut)
			checkGolden(t, n, tc.name, tc.args, code, out.String(), errOut.String())
		})
	}
}

// checkGolden compares what a command printed with, or with -update
// writes, testdata/golden/NAME.txt.
func checkGolden(t *testing.T, n *normalizer, name string, args []string, code int, stdout, stderr string) {
	t.Helper()
	got := n.apply(fmt.Sprintf("$ jstp-peer %s\nexit %d\n-- stdout --\n%s-- stderr --\n%s", shellWords(args), code, stdout, stderr))
	path := filepath.Join("testdata", "golden", name+".txt")
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)\ngot:\n%s", err, got)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update after checking):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// shellWords writes args as a shell would take them back.
func shellWords(args []string) string {
	words := make([]string, len(args))
	for i, a := range args {
		if a != "" && !strings.ContainsAny(a, " '\"*?$`\\|&;<>(){}[]!#~") {
			words[i] = a
			continue
		}
		words[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(words, " ")
}

// Every usage and configuration error: one line that names the mistake
// and where help is, and the status 2.
func TestGoldenUsage(t *testing.T) {
	dir := t.TempDir()
	badListen := filepath.Join(dir, "bad-listen.json")
	badBoot := filepath.Join(dir, "bad-bootstrap.json")
	for path, text := range map[string]string{
		badListen: `{"listen": ["/ip4/1.2.3/tcp/4033"]}`,
		badBoot:   `{"bootstrap": "/ip4/192.0.2.7/tcp/4033"}`,
	} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n := &normalizer{}
	n.add(dir, "<TMP>")
	runGolden(t, n, []goldenCase{
		{"usage-unknown-command", []string{"sned"}, ""},
		{"usage-unknown-command-far", []string{"launch"}, ""},
		{"usage-help-unknown", []string{"help", "nope"}, ""},
		{"usage-send-none", []string{"send"}, ""},
		{"usage-send-unknown-flag", []string{"send", "--nope", "jstp:///peer"}, ""},
		{"usage-send-bad-duration", []string{"send", "jstp:///peer", "--timeout", "soon"}, ""},
		{"usage-send-no-value", []string{"send", "jstp:///peer", "--timeout"}, ""},
		{"usage-send-bad-format", []string{"send", "jstp:///peer", "--format", "xml"}, ""},
		{"usage-send-invalid", []string{"send", "FETCH jstp:///a"}, ""},
		{"usage-send-multiaddr-no-resource", []string{"send", "jstp:///ip4/127.0.0.1/tcp/4033/p2p/12D3KooWD38BfNt3v9Mu62cntcC9FSoaKsmy2VvTk2Tab9ZzaCB9"}, ""},
		{"usage-send-bind", []string{"send", "BIND POST jstp:///a"}, ""},
		{"usage-bind-none", []string{"bind"}, ""},
		{"usage-bind-count", []string{"bind", "jstp:///a", "--count", "-1"}, ""},
		{"usage-bind-endpoint", []string{"bind", "POST jstp:///a/:"}, ""},
		{"usage-peers-bad-bool", []string{"peers", "--json=maybe"}, ""},
		{"usage-connect-none", []string{"connect"}, ""},
		{"usage-connect-not-a-peer", []string{"connect", "/ip4/127.0.0.1/tcp/4033"}, ""},
		{"usage-ping-none", []string{"ping"}, ""},
		{"usage-ping-count", []string{"ping", "12D3KooWD38BfNt3v9Mu62cntcC9FSoaKsmy2VvTk2Tab9ZzaCB9", "--count", "0"}, ""},
		{"usage-ping-count-not-a-number", []string{"ping", "x", "--count", "three"}, ""},
		{"usage-ping-not-a-peer", []string{"ping", "pizza.com.ar"}, ""},
		{"usage-resolve-none", []string{"resolve"}, ""},
		{"usage-resolve-bad-name", []string{"resolve", "a b"}, ""},
		{"usage-provide-none", []string{"provide"}, ""},
		{"usage-provide-bad-name", []string{"provide", "ok.example", "a:b"}, ""},
		{"usage-unprovide-none", []string{"unprovide"}, ""},
		{"usage-completion-none", []string{"completion"}, ""},
		{"usage-completion-tcsh", []string{"completion", "tcsh"}, ""},
		{"usage-config-none", []string{"config"}, ""},
		{"usage-config-unknown", []string{"config", "frob"}, ""},
		{"usage-config-show-extra", []string{"config", "show", "extra"}, ""},
		{"usage-up-extra", []string{"up", "extra"}, ""},
		{"usage-up-log-format", []string{"up", "--log-format", "xml"}, ""},
		{"usage-up-provide", []string{"up", "--provide", "a b"}, ""},
		{"usage-up-gateway", []string{"up", "--gateway-tcp", "33333"}, ""},
		{"config-show-bad-listen", []string{"config", "show", "--config", badListen}, ""},
		{"config-up-bad-listen", []string{"up", "--config", badListen}, ""},
		{"config-up-bad-bootstrap", []string{"up", "--config", badBoot}, ""},
		{"config-env-bad-listen", []string{"id", "--listen", "hello"}, ""},
		{"usage-check-unknown-flag", []string{"check", "--unknown"}, ""},
		{"usage-fmt-to", []string{"fmt", "--to", "yaml"}, "jstp:///a"},
		{"usage-match-none", []string{"match"}, ""},
	})
}

// The offline commands, as a user meets them first.
func TestGoldenOffline(t *testing.T) {
	dir := t.TempDir()
	n := &normalizer{}
	n.add(dir, "<TMP>")
	runGolden(t, n, []goldenCase{
		{"check-url", []string{"check"}, "jstp://pizza.com.ar/foods/pizza\n"},
		{"check-invalid", []string{"check"}, `{"protocol":["JSTP","0.4"],"method":"GET","timestamp":1}`},
		{"fmt-to-http", []string{"fmt", "--to", "http"}, `{"protocol":["JSTP","0.4"],"method":"GET","resource":["foods","pizza"],"timestamp":1365647440759,"host":["/ip4/127.0.0.1/tcp/4033/p2p/12D3KooWD38BfNt3v9Mu62cntcC9FSoaKsmy2VvTk2Tab9ZzaCB9"]}`},
		{"fmt-pasted-to-url", []string{"fmt", "--to", "url"}, "jstp:///ip4/127.0.0.1/tcp/4033/p2p/12D3KooWD38BfNt3v9Mu62cntcC9FSoaKsmy2VvTk2Tab9ZzaCB9/peer"},
		{"match-yes", []string{"match", `{"method":"POST","resource":["news",":day"]}`, `{"method":"POST","resource":["news","today"]}`}, ""},
		{"match-no", []string{"match", `{"method":"POST","resource":["news",":day"]}`, `{"method":"GET","resource":["news","today"]}`}, ""},
		{"id", []string{"id", "--data-dir", dir, "--listen", "/ip4/127.0.0.1/tcp/4033"}, ""},
		// A data directory of a fixed name (config show creates nothing),
		// so the table's columns do not move.
		{"config-show", []string{"config", "show", "--data-dir", "/nonexistent/jstp-peer", "--dht", "server"}, ""},
	})
}

// The help of the commands of the operator's day, and the version.
func TestGoldenHelp(t *testing.T) {
	n := &normalizer{}
	var cases []goldenCase
	for _, c := range []string{"send", "bind", "up", "connect", "ping", "resolve", "provide", "unprovide", "completion"} {
		cases = append(cases, goldenCase{"help-" + c, []string{c, "--help"}, ""})
	}
	cases = append(cases, goldenCase{"version", []string{"version"}, ""})
	runGolden(t, n, cases)
}

// Without a local peer every network command says so in one line, the
// same way, and exits 1.
func TestGoldenNoPeer(t *testing.T) {
	via := closedPort(t)
	n := &normalizer{}
	n.add(via, "<CLOSED>")
	const id = "12D3KooWD38BfNt3v9Mu62cntcC9FSoaKsmy2VvTk2Tab9ZzaCB9"
	runGolden(t, n, []goldenCase{
		{"nopeer-send", []string{"send", "jstp:///peer", "--via", via}, ""},
		{"nopeer-bind", []string{"bind", "POST jstp:///news/*", "--via", via}, ""},
		{"nopeer-peers", []string{"peers", "--via", via}, ""},
		{"nopeer-saturation", []string{"saturation", "--once", "--via", via}, ""},
		{"nopeer-connect", []string{"connect", "/ip4/127.0.0.1/tcp/4033/p2p/" + id, "--via", via}, ""},
		{"nopeer-ping", []string{"ping", id, "--via", via}, ""},
		{"nopeer-resolve", []string{"resolve", "menu.example", "--via", via}, ""},
		{"nopeer-provide", []string{"provide", "menu.example", "--via", via}, ""},
		{"nopeer-unprovide", []string{"unprovide", "menu.example", "--via", via}, ""},
	})
}

// The network commands against a small mesh: a and b joined, c alone
// until connect.
func TestGoldenNetwork(t *testing.T) {
	a := startUp(t, loopbackUp(t)...)
	b := startUp(t, append(loopbackUp(t), "--bootstrap", a.p.Host.Addrs()[0].String())...)
	c := startUp(t, loopbackUp(t)...)
	n := &normalizer{}
	for _, u := range []struct {
		p    *upPeer
		name string
	}{{a, "A"}, {b, "B"}, {c, "C"}} {
		n.add(u.p.id(), "<PEER-"+u.name+">")
		n.add(u.p.gw, "<GW-"+u.name+">")
	}
	bAddr := b.p.Host.Addrs()[0].String()
	runGolden(t, n, []goldenCase{
		// The multiaddr `up` prints, pasted into a URL.
		{"net-send-pasted-multiaddr", []string{"send", "jstp://" + bAddr + "/echo/pasted", "--via", a.gw, "--format", "http"}, ""},
		{"net-send-body", []string{"send", "jstp:///names", "--via", b.gw, "--format", "body"}, ""},
		{"net-send-body-404", []string{"send", "jstp:///nothing/here", "--via", a.gw, "--format", "body"}, ""},
		{"net-send-quiet", []string{"send", "jstp://" + b.id() + "/echo/q", "--via", a.gw, "--quiet"}, ""},
		{"net-send-quiet-404", []string{"send", "jstp:///nothing/here", "--via", a.gw, "--quiet"}, ""},
		// A peer's operator resources are its own machine's: b refuses a.
		{"net-send-remote-operator", []string{"send", "PUT jstp://" + b.id() + "/names/stolen", "--via", a.gw, "--format", "body"}, ""},
		{"net-connect", []string{"connect", c.p.Host.Addrs()[0].String(), "--via", a.gw}, ""},
		{"net-connect-self", []string{"connect", a.p.Host.Addrs()[0].String(), "--via", a.gw}, ""},
		{"net-ping", []string{"ping", b.id(), "--via", a.gw, "--count", "2", "--interval", "10ms"}, ""},
		{"net-ping-multiaddr", []string{"ping", bAddr, "--via", a.gw, "--count", "1"}, ""},
		{"net-ping-self", []string{"ping", a.id(), "--via", a.gw}, ""},
		{"net-unprovide-not-provided", []string{"unprovide", "nothing.example", "--via", b.gw}, ""},
		{"net-resolve-nobody", []string{"resolve", "nobody.example", "--via", a.gw}, ""},
	})

	// What up printed.
	checkGolden(t, n, "net-up", []string{"up", "--data-dir", "<TMP>", "..."}, 0, a.stdout.String(), "")

	// bind --count 1: bound, the dispatch's body, released.
	args := []string{"bind", "POST jstp:///news/*", "--via", b.gw, "--count", "1", "--format", "body"}
	out, errOut := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(context.Background(), args, strings.NewReader(""), out, errOut) }()
	poll.Until(t, 20*time.Second, "the BIND", func() bool { return strings.Contains(errOut.String(), "bound:") })
	if code, o, e := runCmd(context.Background(), "send", "POST jstp://"+b.id()+"/news/today", "--via", a.gw, "--body", `{"headline":"extra!"}`); code != 0 {
		t.Fatalf("send: exit %d\n%s%s", code, o, e)
	}
	select {
	case code := <-done:
		checkGolden(t, n, "net-bind-count", args, code, out.String(), errOut.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("bind --count 1 did not end\nstdout %s\nstderr %s", out, errOut)
	}
}
