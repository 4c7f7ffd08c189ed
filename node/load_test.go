package node

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/mesh"
)

// The tests below load peers the way users do: classic clients on a
// gateway, dispatches to a peer across the mesh. They count outcomes and
// assert on counts, never on timings.

// gatewayPair starts peer a with a TCP gateway, and peer b connected to
// it, serving ["echo", ...] (every peer does).
func gatewayPair(t *testing.T, mod ...func(*PeerConfig)) (a, b *Peer) {
	t.Helper()
	a = newTestPeer(t, nil, append([]func(*PeerConfig){func(c *PeerConfig) { c.GatewayTCP = "127.0.0.1:0" }}, mod...)...)
	b = newTestPeer(t, a, mod...)
	return a, b
}

// marker sends a GET ["peer"] with token marker and reads until its
// answer, returning every other line read on the way: on one connection
// answers come in the order they are written, so anything a client was
// sent before the marker's answer is among them.
func (c *clTCP) marker(t *testing.T, token string) []string {
	t.Helper()
	c.sendDispatch(clGet([]any{token}, "peer"))
	var other []string
	for {
		d, frame := c.next()
		if _, txid, _, ok := d.AnswerInfo(); ok && txid == token {
			return other
		}
		other = append(other, frame)
	}
}

func TestSameTransactionIDTwoClients(t *testing.T) {
	a, b := gatewayPair(t)
	for _, where := range []struct {
		name string
		host []dispatch.Host
	}{{"local", nil}, {"remote", []dispatch.Host{hostOf(b)}}} {
		t.Run(where.name, func(t *testing.T) {
			c1, c2 := clDial(t, a.Gateways[0]), clDial(t, a.Gateways[0])
			outsider := clDial(t, a.Gateways[0])
			for i, c := range []*clTCP{c1, c2} {
				d := clGet([]any{"same"}, "echo", fmt.Sprint("client", i+1))
				d.Host = where.host
				c.sendDispatch(d)
			}
			for i, c := range []*clTCP{c1, c2} {
				d, frame := c.next()
				clAnswer(t, d, frame, 200, "same")
				echoed, err := dispatch.Decode(d.Body)
				if err != nil || echoed.ResourceText()[1] != fmt.Sprint("client", i+1) {
					t.Fatalf("client %d got an answer to another's dispatch: %s", i+1, frame)
				}
				if extra := c.marker(t, fmt.Sprint("marker", i)); len(extra) > 0 {
					t.Fatalf("client %d got more than its answer: %q", i+1, extra)
				}
			}
			if extra := outsider.marker(t, "outsider"); len(extra) > 0 {
				t.Fatalf("a client that sent nothing received %q", extra)
			}
		})
	}
}

// TestReuseTransactionIDOnNewConnection: a client that reconnects and
// reuses its transaction id right away gets its answer on the new
// connection.
func TestReuseTransactionIDOnNewConnection(t *testing.T) {
	a, b := gatewayPair(t)
	for range 3 {
		c := clDial(t, a.Gateways[0])
		d := clGet([]any{"counter-1"}, "echo", "again")
		d.Host = []dispatch.Host{hostOf(b)}
		c.sendDispatch(d)
		got, frame := c.next()
		clAnswer(t, got, frame, 200, "counter-1")
		c.conn.Close()
	}
}

// pipeline writes n requests on one gateway connection without waiting,
// while reading; it returns how often each transaction was answered, by
// code.
func pipeline(t *testing.T, c *clTCP, n int, host []dispatch.Host) map[string]map[int]int {
	t.Helper()
	got := make(map[string]map[int]int, n)
	writeErr := make(chan error, 1)
	go func() {
		var buf strings.Builder
		for i := range n {
			d := clGet([]any{fmt.Sprint("p", i)}, "echo", "p")
			d.Host = host
			buf.WriteString(d.String())
			buf.WriteByte('\n')
			if buf.Len() > 64<<10 || i == n-1 {
				c.conn.SetWriteDeadline(time.Now().Add(60 * time.Second))
				if _, err := c.conn.Write([]byte(buf.String())); err != nil {
					writeErr <- err
					return
				}
				buf.Reset()
			}
		}
		writeErr <- nil
	}()
	for answered := 0; answered < n; answered++ {
		c.conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		frame, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d answers: %v", answered, err)
		}
		d, err := dispatch.Decoder{Quirks: true}.Decode(frame)
		if err != nil {
			t.Fatalf("undecodable answer %q: %v", frame, err)
		}
		code, txid, _, ok := d.AnswerInfo()
		if !ok {
			t.Fatalf("not an answer: %s", frame)
		}
		if got[txid] == nil {
			got[txid] = map[int]int{}
		}
		got[txid][code]++
	}
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	return got
}

func TestPipelined50000ThroughGatewayToRemotePeer(t *testing.T) {
	const n = 50000
	a, b := gatewayPair(t)
	c := clDial(t, a.Gateways[0])
	got := pipeline(t, c, n, []dispatch.Host{hostOf(b)})
	if len(got) != n {
		t.Fatalf("%d transactions answered, want %d", len(got), n)
	}
	for txid, codes := range got {
		if len(codes) != 1 || codes[200] != 1 {
			t.Fatalf("transaction %s answered %v, want one 200", txid, codes)
		}
	}
	// Nothing more comes: no late 504 for any of them.
	if extra := c.marker(t, "after"); len(extra) > 0 {
		t.Fatalf("%d more lines after every answer, first %s", len(extra), extra[0])
	}
}

func TestSlowReaderLosesNothingAndSlowsOnlyItself(t *testing.T) {
	const n = 20000
	a, b := gatewayPair(t)
	slow := clDial(t, a.Gateways[0])
	// The slow client writes everything and reads nothing, until its
	// answers fill its socket and the gateway's queue for it.
	writeDone := make(chan error, 1)
	go func() {
		var buf strings.Builder
		for i := range n {
			d := clGet([]any{fmt.Sprint("s", i)}, "echo", "slow")
			d.Host = []dispatch.Host{hostOf(b)}
			buf.WriteString(d.String())
			buf.WriteByte('\n')
		}
		slow.conn.SetWriteDeadline(time.Now().Add(2 * time.Minute))
		_, err := slow.conn.Write([]byte(buf.String()))
		writeDone <- err
	}()
	// Meanwhile another client is served as usual.
	fast := clDial(t, a.Gateways[0])
	for i := range 50 {
		d := clGet([]any{fmt.Sprint("f", i)}, "echo", "fast")
		d.Host = []dispatch.Host{hostOf(b)}
		fast.sendDispatch(d)
		got, frame := fast.next()
		clAnswer(t, got, frame, 200, fmt.Sprint("f", i))
	}
	// The slow one now reads, and finds every answer.
	seen := map[string]bool{}
	for len(seen) < n {
		slow.conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		frame, err := slow.fr.ReadFrame()
		if err != nil {
			t.Fatalf("slow reader: %v after %d answers", err, len(seen))
		}
		d, _ := dispatch.Decoder{Quirks: true}.Decode(frame)
		code, txid, _, _ := d.AnswerInfo()
		if code != 200 || seen[txid] {
			t.Fatalf("slow reader got %s", frame)
		}
		seen[txid] = true
	}
	if err := <-writeDone; err != nil {
		t.Fatal(err)
	}
}

func TestFullSubscriberQueueAnswers503(t *testing.T) {
	n := newNode(t, WithQueueLen(2))
	release := make(chan struct{})
	entered := make(chan struct{}, 64)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	if _, err := n.Handle(ep("GET", "busy"), func(ctx context.Context, _ *Incoming) (any, error) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return "done", nil
	}); err != nil {
		t.Fatal(err)
	}
	g := clListen(t, mesh.ListenTCP, n)
	c := clDial(t, g)
	send := func(from, to int) {
		for i := from; i < to; i++ {
			c.sendDispatch(clGet([]any{fmt.Sprint("b", i)}, "busy"))
		}
	}
	// Every worker busy, then the queue full: what comes next is refused
	// at once, with a hint of when to try again.
	for i := range DefaultHandlerWorkers {
		send(i, i+1)
		select {
		case <-entered:
		case <-time.After(clReadTimeout):
			t.Fatalf("request %d never reached the handler", i)
		}
	}
	const queued, refused = 2, 20
	send(DefaultHandlerWorkers, DefaultHandlerWorkers+queued+refused)
	for range refused {
		d, frame := c.next()
		if code := clAnswerCode(t, d, frame); code != 503 || len(d.Extra.Value(RetryAfterHeader)) == 0 {
			t.Fatalf("want 503 with a %s hint, got %s", RetryAfterHeader, frame)
		}
	}
	once.Do(func() { close(release) })
	for range DefaultHandlerWorkers + queued {
		d, frame := c.next()
		if code := clAnswerCode(t, d, frame); code != 200 {
			t.Fatalf("a request that was taken was answered %s", frame)
		}
	}
	var info PeerInfo
	as := collectAll(t, must(n.Request(context.Background(), dispatch.New("GET", "peer"))))
	if err := json.Unmarshal(as[0].Body, &info); err != nil {
		t.Fatal(err)
	}
	if info.Stats.Overloaded != refused {
		t.Fatalf("stats = %+v, want %d overloaded", info.Stats, refused)
	}
}

func clAnswerCode(t *testing.T, d *dispatch.Dispatch, frame string) int {
	t.Helper()
	code, _, _, ok := d.AnswerInfo()
	if !ok {
		t.Fatalf("not an answer: %s", frame)
	}
	return code
}

// A peer that goes away with requests in flight: their emitters are
// answered 503 when the link goes, not 504 at the deadline.
func TestPeerGoneAnswers503(t *testing.T) {
	a, b := gatewayPair(t)
	entered := make(chan struct{}, 4)
	if _, err := b.Node.Handle(ep("GET", "stuck"), func(ctx context.Context, _ *Incoming) (any, error) {
		entered <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	req := dispatch.New("GET", "stuck")
	req.Host = []dispatch.Host{hostOf(b)}
	answers := must(a.Node.Request(t.Context(), req))
	c := clDial(t, a.Gateways[0])
	classic := clGet([]any{"classic"}, "stuck")
	classic.Host = req.Host
	c.sendDispatch(classic)
	for range 2 {
		select {
		case <-entered:
		case <-time.After(clReadTimeout):
			t.Fatal("the requests never reached the handler")
		}
	}
	b.Close()
	if as := collectAll(t, answers); len(as) != 1 || answerCode(t, as[0]) != 503 {
		t.Fatalf("the application got %v, want one 503", as)
	}
	d, frame := c.next()
	clAnswer(t, d, frame, 503, "classic")
}
