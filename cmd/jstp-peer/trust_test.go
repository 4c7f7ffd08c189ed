package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/identity"
	"github.com/jstp-peer/jstp-peer/internal/poll"
)

// send --seal through a gateway peer: the recipient echoes the plaintext
// it opened, with the author's signature inside, and the answer comes
// back opened.
func TestSendSealed(t *testing.T) {
	a := startUp(t, loopbackUp(t)...)
	g := startUp(t, append(loopbackUp(t), "--bootstrap", a.p.Host.Addrs()[0].String()+"/p2p/"+a.id())...)
	b := startUp(t, append(loopbackUp(t), "--bootstrap", a.p.Host.Addrs()[0].String()+"/p2p/"+a.id())...)
	code, out, errOut := runCmd(context.Background(), "send", "POST jstp://"+g.id()+","+b.id()+"/echo/vault",
		"--body", `"secret"`, "--seal", "--via", a.gw, "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	as := answersIn(t, out)
	if len(as) != 1 || answerCode(t, as[0]) != 200 {
		t.Fatalf("answers: %s", out)
	}
	echoed, err := dispatch.Decode(as[0].Body)
	if err != nil {
		t.Fatalf("echo body %s: %v", as[0].Body, err)
	}
	if strings.Join(echoed.ResourceText(), "/") != "echo/vault" || string(echoed.Body) != `"secret"` {
		t.Fatalf("b opened %s", echoed)
	}
	for _, h := range []string{identity.SessionKeyHeader, identity.SessionHeader, identity.SealedHeader} {
		if echoed.Extra.Has(h) {
			t.Fatalf("the handler saw the %q header: %s", h, echoed)
		}
	}

	code, _, errOut = runCmd(context.Background(), "send", "jstp:///peer", "--seal", "--via", a.gw)
	if code != exitUsage || !strings.Contains(errOut, "--seal") {
		t.Fatalf("--seal without a recipient: exit %d, %s", code, errOut)
	}
}

// id --new makes a new peer id and keeps the old key aside; a key file
// others may read stops the command with a clear message.
func TestIDNewAndKeyMode(t *testing.T) {
	dir := t.TempDir()
	idOf := func(args ...string) string {
		t.Helper()
		code, out, errOut := runCmd(context.Background(), append([]string{"id", "--data-dir", dir, "--listen", "/ip4/127.0.0.1/tcp/4033"}, args...)...)
		if code != 0 {
			t.Fatalf("id %v: exit %d, %s", args, code, errOut)
		}
		m := regexp.MustCompile(`peer id: (\S+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("id printed %s", out)
		}
		return m[1]
	}
	first := idOf()
	if again := idOf(); again != first {
		t.Fatalf("id changed without --new: %s, %s", first, again)
	}
	second := idOf("--new")
	if second == first || idOf() != second {
		t.Fatalf("--new: %s then %s", first, second)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "identity.key.old-*"))
	if len(old) != 1 {
		t.Fatalf("old keys kept: %v", old)
	}
	key := filepath.Join(dir, "identity.key")
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCmd(context.Background(), "id", "--data-dir", dir)
	if code != exitFail || !strings.Contains(errOut, "identity.key") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("world-readable key: exit %d, %q; want one line naming the file", code, errOut)
	}
}

// up --metrics and --ui serve the metrics and the web view on the
// addresses it prints; a bad balance policy is a usage error.
func TestUpOperatorEndpoints(t *testing.T) {
	args := loopbackUp(t)
	for i, a := range args {
		if a == "--gateway-ws" {
			args[i+1] = "127.0.0.1:0"
		}
	}
	a := startUp(t, append(args, "--metrics", "127.0.0.1:0", "--ui", "127.0.0.1:0", "--balance", "round-robin")...)
	get := func(url string) string {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
		}
		return string(b)
	}
	m := regexp.MustCompile(`(?m)^metrics: (\S+)$`).FindStringSubmatch(a.stdout.String())
	u := regexp.MustCompile(`(?m)^web view: (\S+)$`).FindStringSubmatch(a.stdout.String())
	if m == nil || u == nil {
		t.Fatalf("up printed no metrics or web view address:\n%s", a.stdout)
	}
	if body := get(m[1]); !strings.Contains(body, "jstp_dispatches_received_total") {
		t.Fatalf("metrics without the project's series:\n%.500s", body)
	}
	if body := get(u[1]); !strings.Contains(strings.ToLower(body), "<html") {
		t.Fatalf("web view:\n%.300s", body)
	}

	code, _, errOut := runCmd(context.Background(), append([]string{"up"}, append(loopbackUp(t), "--balance", "fastest")...)...)
	if code != exitUsage || !strings.Contains(errOut, "hot-cold") {
		t.Fatalf("--balance fastest: exit %d, %s", code, errOut)
	}
}

// up reads DATA-DIR/access.json: another peer is refused 403 where a rule
// denies it, and a change of the file takes effect while the peer runs.
func TestUpAccessRules(t *testing.T) {
	a := startUp(t, loopbackUp(t)...)
	args := loopbackUp(t)
	dataDir := args[1]
	rules := filepath.Join(dataDir, "access.json")
	if err := os.WriteFile(rules, []byte(`{"rules": [{"action": "deny", "peers": ["*"], "resource": ["echo", "..."]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	b := startUp(t, append(args, "--bootstrap", a.p.Host.Addrs()[0].String()+"/p2p/"+a.id())...)
	send := func() int {
		_, out, errOut := runCmd(context.Background(), "send", "jstp://"+b.id()+"/echo/x", "--via", a.gw, "--format", "json")
		as := answersIn(t, out)
		if len(as) != 1 {
			t.Fatalf("answers %s (%s)", out, errOut)
		}
		return answerCode(t, as[0])
	}
	if code := send(); code != 403 {
		t.Fatalf("denied echo: %d, want 403", code)
	}
	if err := os.WriteFile(rules, []byte(`{"rules": [{"action": "deny", "peers": ["*"], "resource": ["nothing", "here", "..."]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "the new rules to apply", func() bool { return send() == 200 })

	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"rules": [{"action": "perhaps", "peers": ["*"]}]}`), 0o600)
	code, _, errOut := runCmd(context.Background(), append([]string{"up"}, append(loopbackUp(t), "--access", bad)...)...)
	if code != exitUsage || !strings.Contains(errOut, "allow or deny") {
		t.Fatalf("bad rules: exit %d, %s", code, errOut)
	}
}
