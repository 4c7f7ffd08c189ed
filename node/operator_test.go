package node

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/internal/poll"
)

// opRequest sends method resource (with body, if any) to p itself, as
// the application, and returns its only answer.
func opRequest(t *testing.T, p *Peer, method string, body string, resource ...string) (int, json.RawMessage) {
	t.Helper()
	d := dispatch.New(method, anys(resource)...)
	if body != "" {
		d.Body = json.RawMessage(body)
	}
	as := request(t, p, d)
	if len(as) != 1 {
		t.Fatalf("%s %v: %d answers, want one: %v", method, resource, len(as), as)
	}
	return codeOf(t, as[0]), as[0].Body
}

// Names provided, resolved and withdrawn at run time, through the
// peers' own resources.
func TestOperatorProvideResolveUnprovide(t *testing.T) {
	a := newTestPeer(t, nil)
	b := newTestPeer(t, a)
	const name = "menu.operator.test"

	code, body := opRequest(t, b, dispatch.PUT, "", "names", name)
	var pi ProvideInfo
	if code != 200 || json.Unmarshal(body, &pi) != nil || pi.Name != name {
		t.Fatalf("PUT names: %d %s", code, body)
	}
	if !b.Names.Provides(name) {
		t.Fatal("b does not provide the name after PUT")
	}
	if code, body := opRequest(t, b, dispatch.GET, "", "names"); code != 200 || string(body) != `["`+name+`"]` {
		t.Fatalf("GET names: %d %s", code, body)
	}
	if names := b.sat.meter.Report().Names; !slices.Contains(names, name) {
		t.Fatalf("b's saturation report names %v, want %q among them", names, name)
	}
	// A dispatch to the name now reaches b.
	get := dispatch.New(dispatch.GET, "peer")
	get.Host = []dispatch.Host{{Name: name}}
	poll.Until(t, 30*time.Second, "a dispatch to the name to reach b", func() bool {
		as := request(t, a, get)
		return len(as) == 1 && codeOf(t, as[0]) == 200 && strings.Contains(string(as[0].Body), b.Host.ID().String())
	})

	// a resolves the name to b, marked as not itself; b sees itself.
	var info NameInfo
	poll.Until(t, 30*time.Second, "a to resolve the name to b", func() bool {
		code, body := opRequest(t, a, dispatch.GET, "", "names", name)
		return code == 200 && json.Unmarshal(body, &info) == nil && len(info.Providers) == 1
	})
	if p := info.Providers[0]; p.ID != b.Host.ID().String() || p.Self || len(p.Addrs) == 0 || info.Name != name {
		t.Fatalf("a resolved %+v", info)
	}
	code, body = opRequest(t, b, dispatch.GET, "", "names", name)
	if code != 200 || json.Unmarshal(body, &info) != nil || len(info.Providers) != 1 || !info.Providers[0].Self {
		t.Fatalf("b resolving its own name: %d %s", code, body)
	}

	if code, body := opRequest(t, b, dispatch.DELETE, "", "names", name); code != 200 {
		t.Fatalf("DELETE names: %d %s", code, body)
	}
	if b.Names.Provides(name) || slices.Contains(b.sat.meter.Report().Names, name) {
		t.Fatal("b still provides the name after DELETE")
	}
	if code, body := opRequest(t, b, dispatch.DELETE, "", "names", name); code != 404 || !strings.Contains(string(body), "does not provide") {
		t.Fatalf("second DELETE: %d %s, want 404", code, body)
	}
	if code, body := opRequest(t, a, dispatch.GET, "", "names", "nobody.operator.test"); code != 404 || string(body) != `"no peer provides \"nobody.operator.test\""` {
		t.Fatalf("resolving a name nobody provides: %d %s, want 404 and one clear line", code, body)
	}
	for _, bad := range []string{"a b", "a:b", strings.Repeat("x", 300)} {
		if code, _ := opRequest(t, b, dispatch.PUT, "", "names", bad); code != 400 {
			t.Errorf("PUT names %q: %d, want 400", bad, code)
		}
	}
}

// connect and ping reach a peer the local peer did not know.
func TestOperatorConnectAndPing(t *testing.T) {
	a := newTestPeer(t, nil)
	c := newTestPeer(t, nil)
	if len(a.Host.Peers()) != 0 {
		t.Fatalf("a is connected before the test: %v", a.Host.Peers())
	}
	cAddr := c.Host.Addrs()[0].String()
	code, body := opRequest(t, a, dispatch.POST, fmt.Sprintf(`{"addr": %q}`, cAddr), "peers")
	if code != 200 || !strings.Contains(string(body), `"id":"`+c.Host.ID().String()+`"`) {
		t.Fatalf("POST peers: %d %s", code, body)
	}
	if ps := a.Host.Peers(); len(ps) != 1 || ps[0].ID != c.Host.ID() {
		t.Fatalf("a's peers after connect: %v", ps)
	}
	// The multiaddr as a plain JSON string, again: a no-op that succeeds.
	if code, body := opRequest(t, a, dispatch.POST, fmt.Sprintf(`%q`, cAddr), "peers"); code != 200 {
		t.Fatalf("POST peers again: %d %s", code, body)
	}

	var ping PingInfo
	code, body = opRequest(t, a, dispatch.GET, "", "ping", c.Host.ID().String())
	if code != 200 || json.Unmarshal(body, &ping) != nil || ping.ID != c.Host.ID().String() || ping.RTTMS <= 0 {
		t.Fatalf("ping c: %d %s", code, body)
	}

	// A peer known only by the multiaddr in the ping itself.
	d := newTestPeer(t, nil)
	code, body = opRequest(t, a, dispatch.GET, "", "ping", d.Host.Addrs()[0].String())
	if code != 200 || json.Unmarshal(body, &ping) != nil || ping.ID != d.Host.ID().String() {
		t.Fatalf("ping d by multiaddr: %d %s", code, body)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	gone := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", closed, newTestPeerID(t))
	for _, tc := range []struct {
		name, method, body string
		resource           []string
		code               int
		says               string
	}{
		{"connect to nothing", dispatch.POST, fmt.Sprintf("%q", gone), []string{"peers"}, 502, "cannot connect to " + gone},
		{"connect without a peer id", dispatch.POST, `"/ip4/127.0.0.1/tcp/1"`, []string{"peers"}, 400, "not a peer id or a multiaddr"},
		{"connect with a bad body", dispatch.POST, `{"address": 1}`, []string{"peers"}, 400, `{"addr": MULTIADDR}`},
		{"connect to itself", dispatch.POST, fmt.Sprintf("%q", a.Host.Addrs()[0].String()), []string{"peers"}, 400, "is this peer"},
		{"ping itself", dispatch.GET, "", []string{"ping", a.Host.ID().String()}, 400, "is this peer"},
		{"ping nonsense", dispatch.GET, "", []string{"ping", "nonsense"}, 400, "not a peer id"},
		{"ping nothing", dispatch.GET, "", []string{"ping", gone}, 502, "no pong from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := opRequest(t, a, tc.method, tc.body, tc.resource...)
			var msg string
			if code != tc.code || json.Unmarshal(body, &msg) != nil || !strings.Contains(msg, tc.says) || strings.Contains(msg, "\n") {
				t.Fatalf("%d %s; want %d and one line saying %q", code, body, tc.code, tc.says)
			}
		})
	}
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// newTestPeerID is the id of a key no peer uses.
func newTestPeerID(t *testing.T) string {
	t.Helper()
	id, err := peer.IDFromPrivateKey(testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// The operator's resources serve this machine only: another peer is
// answered 403 and changes nothing.
func TestOperatorRemoteForbidden(t *testing.T) {
	a, b := gatewayPair(t)
	c := newTestPeer(t, nil)
	for _, tc := range []struct {
		method, body string
		resource     []string
	}{
		{dispatch.PUT, "", []string{"names", "stolen.operator.test"}},
		{dispatch.GET, "", []string{"names"}},
		{dispatch.GET, "", []string{"names", "any.operator.test"}},
		{dispatch.DELETE, "", []string{"names", "any.operator.test"}},
		{dispatch.POST, fmt.Sprintf("%q", c.Host.Addrs()[0].String()), []string{"peers"}},
		{dispatch.GET, "", []string{"ping", c.Host.Addrs()[0].String()}},
	} {
		d := dispatch.New(tc.method, anys(tc.resource)...)
		if tc.body != "" {
			d.Body = json.RawMessage(tc.body)
		}
		d.Host = []dispatch.Host{hostOf(b)}
		as := request(t, a, d)
		if len(as) != 1 || codeOf(t, as[0]) != 403 {
			t.Errorf("remote %s %v: answers %v, want one 403", tc.method, tc.resource, as)
		}
	}
	if b.Names.Provides("stolen.operator.test") {
		t.Error("a remote peer made b provide a name")
	}
	for _, p := range b.Host.Peers() {
		if p.ID == c.Host.ID() {
			t.Error("a remote peer made b connect to c")
		}
	}
}
