package node

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/mesh"
	"github.com/libp2p/go-libp2p/core/peer"
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

// One origin cannot hold more than MaxSubscriptionsPerOrigin
// subscriptions: the next BIND is refused with 403, and a RELEASE makes
// room again.
func TestSubscriptionCapPerOrigin(t *testing.T) {
	n := newNode(t)
	o := newChanOrigin("binder")
	bind := func(i int) *dispatch.Dispatch {
		d := dispatch.NewSubscription("BIND", ep("POST", "feed", strconv.Itoa(i)))
		d.Token = []any{"tx" + strconv.Itoa(i)}
		n.Receive(context.Background(), o, d)
		return o.next(t)
	}
	for i := range MaxSubscriptionsPerOrigin {
		if a := bind(i); answerCode(t, a) != 200 {
			t.Fatalf("BIND %d: %s", i, a)
		}
	}
	if a := bind(MaxSubscriptionsPerOrigin); answerCode(t, a) != 403 {
		t.Fatalf("BIND over the cap: %s, want 403", a)
	}
	rel := dispatch.NewSubscription("RELEASE", ep("POST", "feed", "0"))
	rel.Token = []any{"rel"}
	n.Receive(context.Background(), o, rel)
	if a := o.next(t); answerCode(t, a) != 200 {
		t.Fatalf("RELEASE: %s", a)
	}
	if a := bind(MaxSubscriptionsPerOrigin + 1); answerCode(t, a) != 200 {
		t.Fatalf("BIND after a RELEASE: %s, want 200", a)
	}
}

// A peer that floods another is read no faster than the link rate, and
// loses nothing: every one of its requests is answered, and another
// peer's requests keep being answered meanwhile.
func TestFloodIsRateLimited(t *testing.T) {
	b := newTestPeer(t, nil, func(c *PeerConfig) { c.LinkRate = 200 })
	flooder := newTestPeer(t, b)
	client := newTestPeer(t, b)
	const flood = 400
	floodDone := make(chan int, 1)
	go func() {
		var chans []<-chan *dispatch.Dispatch
		for i := range flood {
			req := dispatch.New("GET", "echo", strconv.Itoa(i))
			req.Host = []dispatch.Host{hostOf(b)}
			ch, err := flooder.Node.Request(t.Context(), req)
			if err != nil {
				floodDone <- -1
				return
			}
			chans = append(chans, ch)
		}
		ok := 0
		for _, ch := range chans {
			for a := range ch {
				if c, _, _, _ := a.AnswerInfo(); c == 200 {
					ok++
				}
			}
		}
		floodDone <- ok
	}()
	for i := range 20 {
		req := dispatch.New("GET", "echo", "client", strconv.Itoa(i))
		req.Host = []dispatch.Host{hostOf(b)}
		if as := request(t, client, req); len(as) != 1 || codeOf(t, as[0]) != 200 {
			t.Fatalf("the other client's request %d: %v", i, as)
		}
	}
	if ok := <-floodDone; ok != flood {
		t.Fatalf("the flooder got %d of %d answers", ok, flood)
	}
	if b.Node.Stats().RateLimited == 0 {
		t.Fatal("the flood was never held at the link rate")
	}
}

func TestValidGossip(t *testing.T) {
	author, other := testKey(t), testKey(t)
	aid, _ := peer.IDFromPrivateKey(author)
	oid, _ := peer.IDFromPrivateKey(other)
	event := dispatch.New("POST", "news").AppendJSON(nil)
	topic := Topic(aid, ep("POST", "news"))
	dec := dispatch.Decoder{Quirks: true}
	for _, c := range []struct {
		name   string
		topic  string
		author peer.ID
		data   []byte
		want   bool
	}{
		{"event by the topic's peer", topic, aid, event, true},
		{"event by another peer", topic, oid, event, false},
		{"an answer on an event topic", topic, aid, dispatch.NewAnswer(200, "t", "", nil).AppendJSON(nil), false},
		{"junk", topic, aid, []byte("{"), false},
		{"a topic of nobody's", "/elsewhere", aid, event, false},
		{"junk on the saturation topic", SaturationTopic, aid, []byte(`{"v":1}`), false},
	} {
		if _, got := validGossip(c.topic, c.author, c.data, dec); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// GET ["dispatches"] lists what the peer received, newest first, to this
// machine's clients only, and only once it keeps them.
func TestRecentDispatches(t *testing.T) {
	a := newTestPeer(t, nil)
	b := newTestPeer(t, a, func(c *PeerConfig) { c.Recent = 3 })
	for _, r := range []string{"one", "two", "three", "four"} {
		req := dispatch.New("GET", "echo", r)
		req.Host = []dispatch.Host{hostOf(b)}
		request(t, a, req)
	}
	as := request(t, b, dispatch.New("GET", "dispatches"))
	if len(as) != 1 || codeOf(t, as[0]) != 200 {
		t.Fatalf("answers %v", as)
	}
	var got []RecentDispatch
	if err := json.Unmarshal(as[0].Body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || strings.Join(got[0].Resource, "/") != "echo/four" || strings.Join(got[2].Resource, "/") != "echo/two" || got[0].From != a.Host.ID().String() {
		t.Fatalf("recent %+v", got)
	}
	req := dispatch.New("GET", "dispatches")
	req.Host = []dispatch.Host{hostOf(b)}
	if as := request(t, a, req); len(as) != 1 || codeOf(t, as[0]) != 403 {
		t.Fatalf("from another peer: %v, want 403", as)
	}
	if as := request(t, a, dispatch.New("GET", "dispatches")); len(as) != 1 || codeOf(t, as[0]) != 404 {
		t.Fatalf("a keeps none: %v, want 404", as)
	}
}
