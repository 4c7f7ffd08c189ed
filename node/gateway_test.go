package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/mesh"
	"github.com/jstp-peer/jstp-peer/routing"

	"github.com/jstp-peer/jstp-peer/internal/poll"
)

// The tests below drive the classic gateways (ListenTCP, ListenWS) with a
// Go client over real loopback sockets, against a real engine, the way a
// classic client or engine would (docs/classic-wire.md §7).

// clReadTimeout bounds every wait for a line from the gateway.
const clReadTimeout = 10 * time.Second

// clNode starts an engine configured as Start configures it (quirks
// decoding), plus opts.
func clNode(t *testing.T, opts ...Option) *Node {
	t.Helper()
	base := []Option{WithLogger(testLogger(t)), WithDecoder(dispatch.Decoder{Quirks: true})}
	n, err := New(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// clHello binds GET ["hello"] to a handler answering {"hi": true}.
func clHello(t *testing.T, n *Node) {
	t.Helper()
	_, err := n.Handle(dispatch.Endpoint{Method: "GET", Resource: []string{"hello"}}, func(context.Context, *Incoming) (any, error) {
		return map[string]bool{"hi": true}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func clListen(t *testing.T, listen func(string, mesh.Ingress, mesh.GatewayConfig) (*mesh.Gateway, error), n *Node) *mesh.Gateway {
	t.Helper()
	g, err := listen("127.0.0.1:0", n, mesh.GatewayConfig{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// clTCP is a classic client on a TCP connection to a gateway.
type clTCP struct {
	t    *testing.T
	conn *net.TCPConn
	fr   *mesh.FrameReader
}

func clDial(t *testing.T, g *mesh.Gateway) *clTCP {
	t.Helper()
	conn, err := net.Dial("tcp", g.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &clTCP{t: t, conn: conn.(*net.TCPConn), fr: mesh.NewFrameReader(conn, 0)}
}

// send writes one line: text and its "\n".
func (c *clTCP) send(text string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(clReadTimeout))
	if _, err := io.WriteString(c.conn, text+"\n"); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *clTCP) sendDispatch(d *dispatch.Dispatch) { c.t.Helper(); c.send(d.String()) }

// next reads the next line the gateway wrote and decodes it as the Node
// engine's reader would be fed it.
func (c *clTCP) next() (*dispatch.Dispatch, string) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(clReadTimeout))
	frame, err := c.fr.ReadFrame()
	if err != nil {
		c.t.Fatalf("reading from the gateway: %v", err)
	}
	d, err := dispatch.Decoder{Quirks: true}.Decode(frame)
	if err != nil {
		c.t.Fatalf("the gateway wrote %q: %v", frame, err)
	}
	return d, string(frame)
}

// expectEOF half-closes (if not done yet) and checks that the gateway
// writes nothing more and ends the connection with a FIN.
func (c *clTCP) expectEOF() {
	c.t.Helper()
	c.conn.CloseWrite()
	c.conn.SetReadDeadline(time.Now().Add(clReadTimeout))
	frame, err := c.fr.ReadFrame()
	if err == nil {
		c.t.Fatalf("unexpected line %q", frame)
	}
	if !errors.Is(err, io.EOF) {
		c.t.Fatalf("want EOF from the gateway, got %v", err)
	}
}

// clGet is GET resource with the given token, as a classic client sends it.
func clGet(token []any, resource ...any) *dispatch.Dispatch {
	d := dispatch.New("GET", resource...)
	d.Token = token
	return d
}

// clAnswer checks that d is an ANSWER the Node engine accepts: code,
// transaction id, a non-empty triggering id, and an empty token (an
// answer with a token is bound and echoed back by the engine, §5).
func clAnswer(t *testing.T, d *dispatch.Dispatch, frame string, code int, txid string) string {
	t.Helper()
	c, tx, trig, ok := d.AnswerInfo()
	if !ok || c != code || tx != txid || trig == "" || len(d.Resource) != 3 {
		t.Fatalf("want ANSWER [%d, %q, trig], got %s", code, txid, frame)
	}
	if d.Token == nil || len(d.Token) != 0 {
		t.Fatalf("an answer to a classic peer must carry token [], got %s", frame)
	}
	return trig
}

func clException(t *testing.T, d *dispatch.Dispatch, frame string, code int) {
	t.Helper()
	if d.Exception == nil || d.Exception.Code != code {
		t.Fatalf("want an exception %d, got %s", code, frame)
	}
}

func TestClassicGatewayTCPRoundTrip(t *testing.T) {
	n := clNode(t)
	clHello(t, n)
	g := clListen(t, mesh.ListenTCP, n)
	c := clDial(t, g)

	c.sendDispatch(clGet([]any{"tx1"}, "hello"))
	d, frame := c.next()
	clAnswer(t, d, frame, 200, "tx1")
	if string(d.Body) != `{"hi":true}` {
		t.Fatalf("body %s", d.Body)
	}

	// Nothing bound: a whole-transaction 404, given a triggering id the
	// Node engine's answer binding ["*", txid, "*"] accepts.
	c.sendDispatch(clGet([]any{"tx2"}, "nobody", "home"))
	d, frame = c.next()
	if trig := clAnswer(t, d, frame, 404, "tx2"); !strings.HasPrefix(trig, "whole-") {
		t.Fatalf("404 triggering id %q does not start with whole-", trig)
	}

	// A malformed line is answered with an exception; the connection
	// keeps working.
	c.send(`this is not JSON`)
	d, frame = c.next()
	clException(t, d, frame, 400)
	c.sendDispatch(clGet([]any{"tx3"}, "hello"))
	d, frame = c.next()
	clAnswer(t, d, frame, 200, "tx3")

	// Unknown methods: 405, as an exception without a transaction and as
	// an answer with one.
	c.send(`{"protocol":["JSTP","0.4"],"method":"FETCH","resource":["hello"],"timestamp":1,"token":[]}`)
	d, frame = c.next()
	clException(t, d, frame, 405)
	c.send(`{"protocol":["JSTP","0.4"],"method":"FETCH","resource":["hello"],"timestamp":1,"token":["tx4"]}`)
	d, frame = c.next()
	clAnswer(t, d, frame, 405, "tx4")

	// What the Node engine writes: lowercase method, referer, "\r\n".
	c.send(`{"resource":["hello"],"method":"get","protocol":["JSTP","0.4"],"timestamp":1795414300436,"token":["tx5"],"referer":[],"body":{}}` + "\r")
	d, frame = c.next()
	clAnswer(t, d, frame, 200, "tx5")

	// Nothing else was written: each request got exactly one line.
	c.expectEOF()
}

func TestClassicGatewayOversizedLine(t *testing.T) {
	n := clNode(t, WithDecoder(dispatch.Decoder{Quirks: true, MaxSize: 1024}))
	clHello(t, n)
	g := clListen(t, mesh.ListenTCP, n)
	c := clDial(t, g)

	big := clGet([]any{"big"}, "hello")
	big.Body = json.RawMessage(`"` + strings.Repeat("x", 4000) + `"`)
	c.sendDispatch(big)
	d, frame := c.next()
	clException(t, d, frame, 413)

	// Just under the limit still passes.
	fits := clGet([]any{"fits"}, "hello")
	fits.Body = json.RawMessage(`"` + strings.Repeat("y", 800) + `"`)
	if l := len(fits.String()); l > 1024 {
		t.Fatalf("test dispatch is %d bytes", l)
	}
	c.sendDispatch(fits)
	d, frame = c.next()
	clAnswer(t, d, frame, 200, "fits")
	c.expectEOF()
}

// A final line without "\n" followed by the client's FIN is still a
// dispatch, and its answer still comes back before the gateway's FIN.
func TestClassicGatewayUnterminatedLastLine(t *testing.T) {
	n := clNode(t)
	clHello(t, n)
	g := clListen(t, mesh.ListenTCP, n)
	c := clDial(t, g)

	c.conn.SetWriteDeadline(time.Now().Add(clReadTimeout))
	if _, err := io.WriteString(c.conn, clGet([]any{"first"}, "hello").String()+"\n"+clGet([]any{"last"}, "hello").String()); err != nil {
		t.Fatal(err)
	}
	c.conn.CloseWrite()
	got := map[string]bool{}
	for range 2 {
		d, frame := c.next()
		_, txid, _, _ := d.AnswerInfo()
		clAnswer(t, d, frame, 200, txid)
		got[txid] = true
	}
	if !got["first"] || !got["last"] {
		t.Fatalf("answers for %v, want first and last", got)
	}
	c.expectEOF()
}

// clBind binds ep from a classic connection and waits for the engine's
// acknowledgement, so the subscription exists when it returns.
func clBind(t *testing.T, c *clTCP, ep dispatch.Endpoint) {
	t.Helper()
	b := dispatch.NewSubscription("BIND", ep)
	txid := "bind-" + strings.Join(ep.Resource, "-")
	b.Token = []any{txid}
	c.sendDispatch(b)
	d, frame := c.next()
	clAnswer(t, d, frame, 200, txid)
}

// A classic client serves a resource: it binds on the gateway, another
// client's request is pushed to it with [txid, trigid], and its answer
// goes back to the requester.
func TestClassicGatewayClientServes(t *testing.T) {
	n := clNode(t)
	g := clListen(t, mesh.ListenTCP, n)
	a, b := clDial(t, g), clDial(t, g)
	clBind(t, a, dispatch.Endpoint{Method: "GET", Resource: []string{"svc", "*"}})

	b.sendDispatch(clGet([]any{"tx"}, "svc", "1"))
	req, frame := a.next()
	if req.Method != "GET" || len(req.Token) != 2 || req.Token[0] != "tx" {
		t.Fatalf("A received %s, want GET with token [tx, trig]", frame)
	}
	trig, _ := req.Token[1].(string)
	if trig == "" || req.Host != nil {
		t.Fatalf("A received %s", frame)
	}
	// The answer as the Node engine writes it.
	a.send(fmt.Sprintf(`{"method":"ANSWER","resource":[200,"tx",%q],"body":{"served":1},"protocol":["JSTP","0.4"],"timestamp":1795414348052,"token":[],"referer":[]}`, trig))
	ans, frame := b.next()
	if got := clAnswer(t, ans, frame, 200, "tx"); got != trig || string(ans.Body) != `{"served":1}` {
		t.Fatalf("B received %s, want A's answer for %s", frame, trig)
	}
}

// A classic subscriber that never answers: the requester, a classic
// client too, gets a 504 for that triggering id when the engine's answer
// timeout passes (a Node requester's own timer only covers callbacks it
// ran itself).
func TestClassicGatewayClientSilent504(t *testing.T) {
	n := clNode(t, WithAnswerTimeout(200*time.Millisecond))
	g := clListen(t, mesh.ListenTCP, n)
	a, b := clDial(t, g), clDial(t, g)
	clBind(t, a, dispatch.Endpoint{Method: "GET", Resource: []string{"svc", "*"}})

	start := time.Now()
	b.sendDispatch(clGet([]any{"tx-silent"}, "svc", "2"))
	req, frame := a.next()
	if len(req.Token) != 2 || req.Token[0] != "tx-silent" {
		t.Fatalf("A received %s", frame)
	}
	trig, _ := req.Token[1].(string)
	ans, frame := b.next()
	if got := clAnswer(t, ans, frame, 504, "tx-silent"); got != trig {
		t.Fatalf("504 for %q, want A's triggering id %q", got, trig)
	}
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Fatalf("504 after %v, before the answer timeout", el)
	}
	b.expectEOF()
}

// A classic requester whose answers all arrived gets no 504 afterwards,
// whoever answered: a local handler or a classic subscriber. A quick
// answer must not overtake the announcement of its triggering id, or the
// watch standing in for the emitter's timer would answer 504 for it.
func TestClassicGatewayNoSpurious504(t *testing.T) {
	const timeout = 200 * time.Millisecond
	n := clNode(t, WithAnswerTimeout(timeout))
	clHello(t, n)
	g := clListen(t, mesh.ListenTCP, n)
	a, b := clDial(t, g), clDial(t, g)
	clBind(t, a, dispatch.Endpoint{Method: "GET", Resource: []string{"svc", "*"}})

	const rounds = 50
	for i := range rounds {
		txid := fmt.Sprintf("local-%d", i)
		b.sendDispatch(clGet([]any{txid}, "hello"))
		d, frame := b.next()
		clAnswer(t, d, frame, 200, txid)

		txid = fmt.Sprintf("remote-%d", i)
		b.sendDispatch(clGet([]any{txid}, "svc", i))
		req, frame := a.next()
		if len(req.Token) != 2 || req.Token[0] != txid {
			t.Fatalf("A received %s", frame)
		}
		a.send(fmt.Sprintf(`{"method":"ANSWER","resource":[200,%q,%q],"protocol":["JSTP","0.4"],"timestamp":1,"token":[]}`, txid, req.Token[1]))
		d, frame = b.next()
		clAnswer(t, d, frame, 200, txid)
	}
	// Silence for three answer timeouts.
	b.conn.SetReadDeadline(time.Now().Add(3 * timeout))
	if frame, err := b.fr.ReadFrame(); err == nil {
		t.Fatalf("after every answer arrived, B received %s", frame)
	} else if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal(err)
	}
}

func clOwned(n *Node, owner string) int {
	count := 0
	for _, s := range n.Subscriptions() {
		if s.Owner == owner {
			count++
		}
	}
	return count
}

func TestClassicGatewayCloseReleasesSubscriptions(t *testing.T) {
	n := clNode(t)
	g := clListen(t, mesh.ListenTCP, n)
	a := clDial(t, g)
	owner := "tcp:" + a.conn.LocalAddr().String()
	clBind(t, a, dispatch.Endpoint{Method: "GET", Resource: []string{"svc", "*"}})
	clBind(t, a, dispatch.Endpoint{Method: "POST", Resource: []string{"news", "..."}})
	if got := clOwned(n, owner); got != 2 {
		t.Fatalf("%d subscriptions owned by %s, want 2: %+v", got, owner, n.Subscriptions())
	}
	a.conn.Close()
	poll.Until(t, 10*time.Second, "subscriptions released", func() bool { return clOwned(n, owner) == 0 })

	// With its subscriber gone, a request is answered 404 again.
	b := clDial(t, g)
	b.sendDispatch(clGet([]any{"tx"}, "svc", "1"))
	d, frame := b.next()
	clAnswer(t, d, frame, 404, "tx")
}

// A BIND from a classic client receives matching dispatches as lines,
// always with a token header (the Node engine requires one).
func TestClassicGatewayBindPush(t *testing.T) {
	n := clNode(t)
	g := clListen(t, mesh.ListenTCP, n)
	a := clDial(t, g)
	clBind(t, a, dispatch.Endpoint{Method: "POST", Resource: []string{"news", "*"}})

	ev := dispatch.New("POST", "news", "x")
	ev.Body = json.RawMessage(`{"n":1}`)
	if err := n.Send(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	d, frame := a.next()
	if d.Method != "POST" || strings.Join(d.ResourceText(), "/") != "news/x" || string(d.Body) != `{"n":1}` {
		t.Fatalf("pushed %s", frame)
	}
	if !strings.Contains(frame, `"token":[]`) {
		t.Fatalf("pushed dispatch has no token header: %s", frame)
	}
	// A dispatch that does not match is not pushed.
	if err := n.Send(t.Context(), dispatch.New("POST", "news", "x", "y")); err != nil {
		t.Fatal(err)
	}
	a.expectEOF()
}

func clWSDial(t *testing.T, g *mesh.Gateway) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), clReadTimeout)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws://"+g.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	return conn
}

func clWSRoundTrip(t *testing.T, conn *websocket.Conn, msg string) (*dispatch.Dispatch, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), clReadTimeout)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	typ, data, err := conn.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("message type %v, want text", typ)
	}
	if strings.Contains(string(data), "\n") {
		t.Fatalf("message %q has a newline", data)
	}
	d, err := dispatch.Decoder{Quirks: true}.Decode(data)
	if err != nil {
		t.Fatalf("message %q: %v", data, err)
	}
	return d, string(data)
}

func TestClassicGatewayWebSocket(t *testing.T) {
	n := clNode(t)
	clHello(t, n)
	g := clListen(t, mesh.ListenWS, n)
	conn := clWSDial(t, g)

	d, frame := clWSRoundTrip(t, conn, clGet([]any{"tx1"}, "hello").String())
	clAnswer(t, d, frame, 200, "tx1")
	// The Node client ends its second and later messages with "\n".
	d, frame = clWSRoundTrip(t, conn, clGet([]any{"tx2"}, "hello").String()+"\n")
	clAnswer(t, d, frame, 200, "tx2")
	d, frame = clWSRoundTrip(t, conn, clGet([]any{"tx3"}, "nobody").String())
	clAnswer(t, d, frame, 404, "tx3")
	d, frame = clWSRoundTrip(t, conn, `{"not":"a dispatch"`)
	clException(t, d, frame, 400)
	d, frame = clWSRoundTrip(t, conn, clGet([]any{"tx4"}, "hello").String())
	clAnswer(t, d, frame, 200, "tx4")

	// Any path upgrades, as with the Node engine.
	ctx, cancel := context.WithTimeout(t.Context(), clReadTimeout)
	defer cancel()
	other, _, err := websocket.Dial(ctx, "ws://"+g.Addr().String()+"/any/path", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.CloseNow()
	d, frame = clWSRoundTrip(t, other, clGet([]any{"tx5"}, "hello").String())
	clAnswer(t, d, frame, 200, "tx5")
	other.Close(websocket.StatusNormalClosure, "")
	if err := conn.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
}

// Close with connections open returns, ends every connection and leaves
// no goroutine behind.
func TestGatewayCloseWithOpenConnections(t *testing.T) {
	n := clNode(t)
	clHello(t, n)
	base := poll.SettledGoroutines()

	tg, err := mesh.ListenTCP("127.0.0.1:0", n, mesh.GatewayConfig{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	wg, err := mesh.ListenWS("127.0.0.1:0", n, mesh.GatewayConfig{Logger: testLogger(t)})
	if err != nil {
		tg.Close()
		t.Fatal(err)
	}
	var tcps []*clTCP
	for range 3 {
		c := clDial(t, tg)
		// One that bound, one that asked, one idle.
		tcps = append(tcps, c)
	}
	clBind(t, tcps[0], dispatch.Endpoint{Method: "POST", Resource: []string{"news", "*"}})
	tcps[1].sendDispatch(clGet([]any{"tx"}, "hello"))
	d, frame := tcps[1].next()
	clAnswer(t, d, frame, 200, "tx")
	ws := clWSDial(t, wg)
	d, frame = clWSRoundTrip(t, ws, clGet([]any{"wtx"}, "hello").String())
	clAnswer(t, d, frame, 200, "wtx")

	// The clients read until the gateway ends their connection, and then
	// close, as the Node engine does on a FIN.
	ended := make(chan error, len(tcps)+1)
	for _, c := range tcps {
		go func() {
			c.conn.SetReadDeadline(time.Now().Add(clReadTimeout))
			_, err := io.Copy(io.Discard, c.conn)
			c.conn.Close()
			ended <- err
		}()
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), clReadTimeout)
		defer cancel()
		_, _, err := ws.Read(ctx)
		ended <- err
	}()

	closed := make(chan struct{})
	go func() {
		tg.Close()
		wg.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(15 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("Gateway.Close did not return:\n%s", buf[:runtime.Stack(buf, true)])
	}
	// Every connection ended from the gateway's side: TCP with a FIN
	// (a clean EOF), WebSocket with a close frame.
	for range len(tcps) + 1 {
		err := <-ended
		if err == nil {
			continue // io.Copy's clean EOF
		}
		if s := websocket.CloseStatus(err); s == websocket.StatusNormalClosure || s == websocket.StatusGoingAway {
			continue
		}
		t.Fatalf("a client's connection ended with %v", err)
	}
	ws.CloseNow()
	// The subscription of the bound client is released too.
	poll.Until(t, 10*time.Second, "subscriptions released", func() bool {
		return clOwned(n, "tcp:"+tcps[0].conn.LocalAddr().String()) == 0
	})
	// Closing twice is harmless.
	tg.Close()
	wg.Close()

	poll.Goroutines(t, 10*time.Second, base+1)
}

// clRelayForwarder routes what the engine forwards to classic hosts
// through a Dialer (the peer's Forwarder does the same for classic
// targets).
type clRelayForwarder struct{ cc *mesh.Dialer }

func (f *clRelayForwarder) Route(ctx context.Context, to dispatch.Host) (mesh.Link, error) {
	t, err := routing.Classify(to)
	if err != nil {
		return nil, err
	}
	return f.cc.Dial(ctx, t.Transport, t.Addr)
}

// A Dialer against our own gateways, over TCP and WebSocket: the
// request goes out on a pooled connection, the answer comes back on it.
func TestClassicClientToGateway(t *testing.T) {
	server := clNode(t)
	clHello(t, server)
	tg := clListen(t, mesh.ListenTCP, server)
	wg := clListen(t, mesh.ListenWS, server)

	fwd := &clRelayForwarder{}
	client := clNode(t, WithForwarder(fwd))
	fwd.cc = mesh.NewDialer(client, mesh.GatewayConfig{Logger: testLogger(t)})
	closed := false
	t.Cleanup(func() {
		if !closed {
			fwd.cc.Close()
		}
	})

	for _, tc := range []struct {
		transport string
		g         *mesh.Gateway
	}{{"tcp", tg}, {"ws", wg}} {
		for i := range 2 { // the second request reuses the connection
			d := clGet(nil, "hello")
			d.Host = []dispatch.Host{{Name: "127.0.0.1", Port: tc.g.Addr().(*net.TCPAddr).Port, Transport: tc.transport}}
			ctx, cancel := context.WithTimeout(t.Context(), clReadTimeout)
			ch, err := client.Request(ctx, d)
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			a, ok := <-ch
			cancel() // a classic engine announces nothing: do not wait for the deadline
			if !ok {
				t.Fatalf("%s #%d: no answer", tc.transport, i)
			}
			if code, _, trig, _ := a.AnswerInfo(); code != 200 || trig == "" || string(a.Body) != `{"hi":true}` {
				t.Fatalf("%s #%d: answer %s", tc.transport, i, a)
			}
		}
	}
	// One pooled connection per gateway.
	poll.Until(t, clReadTimeout, "one connection per gateway", func() bool {
		return tg.Accepted() == 1 && wg.Accepted() == 1
	})

	// Closing the client ends its connections, which releases nothing
	// but closes them on the gateways' side too.
	closed = true
	if err := fwd.cc.Close(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, clReadTimeout, "the gateways to drop the client's connections", func() bool {
		return tg.Conns() == 0 && wg.Conns() == 0
	})
	// A closed client refuses to forward: 502.
	d := clGet(nil, "hello")
	d.Host = []dispatch.Host{{Name: "127.0.0.1", Port: tg.Addr().(*net.TCPAddr).Port, Transport: "tcp"}}
	ctx, cancel := context.WithTimeout(t.Context(), clReadTimeout)
	defer cancel()
	ch, err := client.Request(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if a := <-ch; a == nil || func() int { c, _, _, _ := a.AnswerInfo(); return c }() != 502 {
		t.Fatalf("after Close: %v, want a 502", a)
	}
}
