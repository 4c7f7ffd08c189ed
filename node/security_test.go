package node

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/mesh"
)

// A remote peer cannot make a peer connect to a host:port — its own
// loopback least of all — by naming it in a host chain: 403, and no
// connection is opened.
func TestRemoteOriginCannotReachLoopbackHostPort(t *testing.T) {
	a, b := gatewayPair(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	for _, target := range []dispatch.Host{
		{Name: "127.0.0.1:" + strconv.Itoa(port)},
		{Name: "127.0.0.1", Port: port, Transport: "tcp"},
	} {
		req := dispatch.New("GET", "x")
		req.Host = []dispatch.Host{hostOf(b), target}
		as := request(t, a, req)
		if len(as) != 1 || codeOf(t, as[0]) != 403 {
			t.Fatalf("through %s: answers %v, want one 403", target, as)
		}
	}
	// Had b dialled, the connection would be in the listener's backlog
	// before b could answer.
	ln.(*net.TCPListener).SetDeadline(time.Now())
	if c, err := ln.Accept(); err == nil {
		c.Close()
		t.Fatal("b connected to its loopback for a remote peer")
	} else if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal(err)
	}
}

// The WebSocket gateway refuses pages of foreign origins, and takes its
// own host's pages and programs that send no Origin.
func TestWebSocketGatewayChecksOrigin(t *testing.T) {
	n := clNode(t)
	g := clListen(t, mesh.ListenWS, n)
	url := "ws://" + g.Addr().String() + "/"
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{"http://" + g.Addr().String(), true},
		{"http://evil.example", false},
		{"http://localhost.evil.example", false},
	} {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		ctx, cancel := context.WithTimeout(t.Context(), clReadTimeout)
		conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
		cancel()
		if tc.ok != (err == nil) {
			t.Fatalf("origin %q: err = %v, want accepted %v", tc.origin, err, tc.ok)
		}
		if err == nil {
			conn.CloseNow()
		} else if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("origin %q: refused with %v, want 403", tc.origin, resp)
		}
	}
}

// Another peer cannot set this peer's load: PUT ["saturation", "metrics",
// NAME] answers it 403 and the metric is not set, while the same PUT from
// the application goes through.
func TestRemoteCannotSetMetrics(t *testing.T) {
	a, b := gatewayPair(t)
	put := dispatch.New(dispatch.PUT, "saturation", "metrics", "queue")
	put.Body = []byte(`{"value": 99, "capacity": 100}`)
	put.Host = []dispatch.Host{hostOf(b)}
	if as := request(t, a, put); len(as) != 1 || codeOf(t, as[0]) != 403 {
		t.Fatalf("remote PUT: answers %v, want one 403", as)
	}
	if _, ok := b.sat.view().Self.Saturation["queue"]; ok {
		t.Fatal("a remote peer set b's metric")
	}
	put.Host = nil
	if as := request(t, b, put); len(as) != 1 || codeOf(t, as[0]) != 200 {
		t.Fatalf("local PUT: answers %v, want one 200", as)
	}
	if _, ok := b.sat.view().Self.Saturation["queue"]; !ok {
		t.Fatal("the application's PUT did not set the metric")
	}
}
