package node

import (
	"context"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

const (
	peerA = "12D3KooWGRUVh8Mrz8kDBQt5X2bAqxeT1pHjuvkB4W2ZXBnAfXQM"
	peerB = "12D3KooWJyr5ZrcrrnTcS1xzFHRBPxus9GD6aiqPVG6GbgE4xf7V"
)

func TestAccessRulesTable(t *testing.T) {
	rules, err := ParseAccessRules([]byte(`{
		"groups": {"ops": ["` + peerA + `"]},
		"rules": [
			{"action": "allow", "peers": ["@ops"], "method": "*", "resource": ["admin", "..."]},
			{"action": "deny", "peers": ["*"], "method": "*", "resource": ["admin", "..."]},
			{"action": "deny", "peers": ["*"], "method": "BIND", "resource": ["news", "..."]},
			{"action": "deny", "peers": ["` + peerB + `"], "method": "POST", "resource": ["orders"]}
		]}`))
	if err != nil {
		t.Fatal(err)
	}
	bind := dispatch.NewSubscription("BIND", dispatch.Endpoint{Method: "POST", Resource: []string{"news", "*"}})
	for _, c := range []struct {
		author string
		d      *dispatch.Dispatch
		want   bool
	}{
		{peerA, dispatch.New("DELETE", "admin", "users"), true},
		{peerB, dispatch.New("DELETE", "admin", "users"), false},
		{"not-a-peer", dispatch.New("GET", "admin"), false},
		{peerB, dispatch.New("GET", "news", "today"), true},
		{peerA, bind, false},
		{peerB, dispatch.New("POST", "orders"), false},
		{peerA, dispatch.New("POST", "orders"), true},
		{peerB, dispatch.New("GET", "orders"), true},
	} {
		if got, rule := rules.Allowed(c.author, c.d); got != c.want {
			t.Errorf("%s by %.12s: allowed %v (%s), want %v", c.d, c.author, got, rule, c.want)
		}
	}
	var none *AccessRules
	if ok, _ := none.Allowed(peerB, dispatch.New("GET", "admin")); !ok {
		t.Fatal("no rules refused a dispatch")
	}
}

func TestAccessRulesErrors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{`{"rules": [{"action": "maybe", "peers": ["*"], "resource": ["x"]}]}`, "allow or deny"},
		{`{"rules": [{"action": "deny", "peers": ["@nobody"], "resource": ["x"]}]}`, `no group "nobody"`},
		{`{"rules": [{"action": "deny", "peers": ["bob"], "resource": ["x"]}]}`, `"bob" is not a peer id`},
		{`{"rules": [{"action": "deny", "resource": ["x"]}]}`, "no peers"},
		{`{"rules": [], "extra": 1}`, "unknown field"},
		{`{"rules": [{"action": "deny", "peers": ["*"], "method": "FETCH", "resource": ["x"]}]}`, "rule 1"},
	} {
		_, err := ParseAccessRules([]byte(c.src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.src, err, c.want)
		}
	}
}

// A peer's rules refuse another peer's BIND with 403, admit a peer of
// the allowed group, and take effect again when replaced at run time.
func TestAccessRulesOnAPeer(t *testing.T) {
	a := newTestPeer(t, nil)
	ops := newTestPeer(t, a)
	b := newTestPeer(t, a)
	rules, err := ParseAccessRules([]byte(`{"groups": {"ops": ["` + ops.Host.ID().String() + `"]},
		"rules": [{"action": "allow", "peers": ["@ops"], "method": "*", "resource": ["admin", "..."]},
		          {"action": "deny", "peers": ["*"], "method": "*", "resource": ["admin", "..."]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	b.Node.SetAccessRules(rules)
	// Both reach b directly, so the test is about the rules, not about
	// finding b through the DHT.
	for _, p := range []*Peer{a, ops} {
		if err := p.Host.LibP2P().Connect(t.Context(), peer.AddrInfo{ID: b.Host.ID(), Addrs: b.Host.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	get := func(from *Peer) int {
		req := dispatch.New("GET", "echo", "x")
		req.Resource = []any{"admin", "x"}
		req.Host = []dispatch.Host{hostOf(b)}
		as := request(t, from, req)
		if len(as) != 1 {
			t.Fatalf("answers %v", as)
		}
		return codeOf(t, as[0])
	}
	if _, err := b.Node.Handle(ep("GET", "admin", "x"), func(_ context.Context, _ *Incoming) (any, error) { return "ok", nil }); err != nil {
		t.Fatal(err)
	}
	if code := get(a); code != 403 {
		t.Fatalf("a: %d, want 403", code)
	}
	if code := get(ops); code != 200 {
		t.Fatalf("ops: %d, want 200", code)
	}
	if got := b.Node.Stats().Dropped["forbidden"]; got != 1 {
		t.Fatalf("forbidden counted %d, want 1", got)
	}
	b.Node.SetAccessRules(nil)
	if code := get(a); code != 200 {
		t.Fatalf("a after the rules were dropped: %d, want 200", code)
	}
}
