package node

import (
	"bufio"
	"context"
	"encoding/json"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/internal/poll"
	"github.com/jstp-peer/jstp-peer/mesh"
	"github.com/libp2p/go-libp2p/core/network"
)

// The Client knows when a transaction is complete: its stream ends after
// exactly the answers the peer said would come, whether one handler, many,
// a peer across the mesh or nothing answers.
func TestClientCountsAnswers(t *testing.T) {
	a, b := gatewayPair(t)
	for _, p := range []*Peer{a, b} {
		for range 3 {
			if _, err := p.Node.Handle(ep("GET", "many"), func(context.Context, *Incoming) (any, error) { return "one of many", nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	c, err := Dial(t.Context(), a.Gateways[0].Addr().String(), ClientConfig{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for _, tc := range []struct {
		name  string
		d     *dispatch.Dispatch
		host  []dispatch.Host
		codes map[int]int
	}{
		{"one local handler", dispatch.New("GET", "peer"), nil, map[int]int{200: 1}},
		{"three local handlers", dispatch.New("GET", "many"), nil, map[int]int{200: 3}},
		{"three handlers across the mesh", dispatch.New("GET", "many"), []dispatch.Host{hostOf(b)}, map[int]int{200: 3}},
		{"nothing bound", dispatch.New("GET", "nothing"), []dispatch.Host{hostOf(b)}, map[int]int{404: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.d.Host = tc.host
			as := collectAll(t, must(c.Request(t.Context(), tc.d)))
			got := map[int]int{}
			for _, a := range as {
				got[answerCode(t, a)]++
			}
			if len(got) != len(tc.codes) {
				t.Fatalf("codes %v, want %v", got, tc.codes)
			}
			for code, n := range tc.codes {
				if got[code] != n {
					t.Fatalf("codes %v, want %v", got, tc.codes)
				}
			}
		})
	}
}

// A Client's binding: the BIND is answered, events arrive on Events, and
// answering one reaches the emitter.
func TestClientBindAndAnswer(t *testing.T) {
	a, _ := gatewayPair(t)
	c, err := Dial(t.Context(), a.Gateways[0].Addr().String(), ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	as := collectAll(t, must(c.Request(t.Context(), dispatch.NewSubscription("BIND", ep("POST", "orders", "*")))))
	if len(as) != 1 || answerCode(t, as[0]) != 200 {
		t.Fatalf("BIND answered %v", as)
	}
	answers := must(a.Node.Request(t.Context(), dispatch.New("POST", "orders", "7")))
	ev := <-c.Events()
	if ev.Method != "POST" || len(ev.Token) != 2 {
		t.Fatalf("event %s", ev)
	}
	if err := c.Send(dispatch.NewAnswer(201, ev.Token[0].(string), ev.Token[1].(string), nil)); err != nil {
		t.Fatal(err)
	}
	got := collectAll(t, answers)
	if len(got) != 1 || answerCode(t, got[0]) != 201 {
		t.Fatalf("the emitter got %v", got)
	}
}

var _ mesh.Link = (*memLink)(nil)

// A BIND the target refuses binds nothing on the way: the gateway drops
// the mirror and the topic subscription it set up for it, so the same
// BIND again reaches the target and is refused again, rather than being
// answered 200 by the gateway as if it were bound.
func TestRefusedBindLeavesNothingBound(t *testing.T) {
	a, b := gatewayPair(t)
	rules, err := ParseAccessRules([]byte(`{"rules": [{"action": "deny", "peers": ["*"], "method": "*", "resource": ["admin", "..."]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	b.Node.SetAccessRules(rules)
	c, err := Dial(t.Context(), a.Gateways[0].Addr().String(), ClientConfig{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	refused := ep("POST", "admin", "news")
	for i := range 2 {
		d := dispatch.NewSubscription(dispatch.BIND, refused)
		d.Host = []dispatch.Host{hostOf(b)}
		as := collectAll(t, must(c.Request(t.Context(), d)))
		if len(as) != 1 || answerCode(t, as[0]) != 403 {
			t.Fatalf("BIND %d: answers %v, want one 403", i+1, as)
		}
	}
	for _, s := range a.Node.Subscriptions() {
		if len(s.Resource) > 0 && s.Resource[0] == "admin" {
			t.Errorf("the gateway still holds %s %v for %s", s.Method, s.Resource, s.Owner)
		}
	}
	g := a.Node.gossip
	g.mu.Lock()
	defer g.mu.Unlock()
	if topic := Topic(b.Host.ID(), refused); g.subs[topic] != nil {
		t.Errorf("the gateway is still subscribed to %s", topic)
	}
	if len(g.binds) != 0 {
		t.Errorf("the gateway still records %d bindings", len(g.binds))
	}
}

// A BIND that reaches a gateway while the target has not yet answered the
// first BIND for the same topic waits for that answer and shares it: told
// 200 at once, its client would believe itself bound where the target
// refused, and get nothing.
func TestBindWaitingForTheFirstSharesItsOutcome(t *testing.T) {
	t.Run("refused", func(t *testing.T) { bindTwiceDuringFirst(t, ep("POST", "admin", "news"), 403) })
	t.Run("accepted", func(t *testing.T) { bindTwiceDuringFirst(t, ep("POST", "news"), 200) })
}

func bindTwiceDuringFirst(t *testing.T, endpoint dispatch.Endpoint, want int) {
	// B reads one dispatch at a time from A: while a slow request is in
	// its handler, the first BIND waits on the stream, unanswered.
	a, b := gatewayPair(t, func(c *PeerConfig) { c.Options = append(c.Options, WithLinkInflight(1)) })
	rules, err := ParseAccessRules([]byte(`{"rules": [{"action": "deny", "peers": ["*"], "method": "*", "resource": ["admin", "..."]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	b.Node.SetAccessRules(rules)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	must(b.Node.Handle(ep("GET", "slow"), func(ctx context.Context, in *Incoming) (any, error) {
		entered <- struct{}{}
		<-release
		return "done", nil
	}))
	dial := func() *Client {
		c, err := Dial(t.Context(), a.Gateways[0].Addr().String(), ClientConfig{Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	slow := dispatch.New("GET", "slow")
	slow.Host = []dispatch.Host{hostOf(b)}
	slowAnswers := must(dial().Request(t.Context(), slow))
	<-entered

	clients := []*Client{dial(), dial()}
	binds := make([]<-chan *dispatch.Dispatch, len(clients))
	for i, c := range clients {
		d := dispatch.NewSubscription(dispatch.BIND, endpoint)
		d.Host = []dispatch.Host{hostOf(b)}
		binds[i] = must(c.Request(t.Context(), d))
		// The second is sent once the gateway holds the first's binding.
		poll.Until(t, 10*time.Second, "the gateway holding the binding", func() bool {
			g := a.Node.gossip
			g.mu.Lock()
			defer g.mu.Unlock()
			return len(g.binds) == i+1
		})
	}
	close(release)
	if as := collectAll(t, slowAnswers); len(as) != 1 || answerCode(t, as[0]) != 200 {
		t.Fatalf("slow request: answers %v, want one 200", as)
	}
	for i, ch := range binds {
		if as := collectAll(t, ch); len(as) != 1 || answerCode(t, as[0]) != want {
			t.Fatalf("BIND %d: answers %v, want one %d", i+1, as, want)
		}
	}
	g := a.Node.gossip
	topic := Topic(b.Host.ID(), endpoint)
	g.mu.Lock()
	subscribed, bindings := g.subs[topic] != nil, len(g.binds)
	g.mu.Unlock()
	if want != 200 {
		if subscribed || bindings != 0 {
			t.Errorf("after the refusal the gateway is subscribed (%v) and records %d bindings", subscribed, bindings)
		}
		for _, s := range a.Node.Subscriptions() {
			if len(s.Resource) > 0 && s.Resource[0] == "admin" {
				t.Errorf("the gateway still holds %s %v for %s", s.Method, s.Resource, s.Owner)
			}
		}
		return
	}
	// Both are bound: an event at B reaches each client once.
	ev := dispatch.New(endpoint.Method, anys(endpoint.Resource)...)
	collectAll(t, must(b.Node.Request(t.Context(), ev)))
	for i, c := range clients {
		select {
		case d := <-c.Events():
			if d.Method != endpoint.Method {
				t.Errorf("client %d got %s, want the event", i+1, d)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("client %d got no event", i+1)
		}
	}
}

// A client bound through a gateway stays bound when the link between the
// gateway and the target goes: the target releases the gateway's
// subscription as it sees it depart, and the gateway binds it again over
// a new link, so events flow again without the client doing anything.
func TestBindSurvivesTheLinkToTheTarget(t *testing.T) {
	a, b := gatewayPair(t)
	c, err := Dial(t.Context(), a.Gateways[0].Addr().String(), ClientConfig{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	news := ep("POST", "news")
	d := dispatch.NewSubscription(dispatch.BIND, news)
	d.Host = []dispatch.Host{hostOf(b)}
	if as := collectAll(t, must(c.Request(t.Context(), d))); len(as) != 1 || answerCode(t, as[0]) != 200 {
		t.Fatalf("BIND: answers %v, want one 200", as)
	}
	// eventReaches publishes one event at b and reports whether c gets
	// it within a second.
	eventReaches := func() bool {
		collectAll(t, must(b.Node.Request(t.Context(), dispatch.New("POST", "news"))))
		select {
		case <-c.Events():
			return true
		case <-time.After(time.Second):
			return false
		}
	}
	poll.Until(t, 10*time.Second, "an event before the link goes", eventReaches)

	// The subscription b holds for the gateway has handled the event; the
	// one made again after the link went has handled nothing yet.
	owner := a.Host.ID().String()
	boundAfresh := func() bool {
		for _, s := range b.Node.Subscriptions() {
			if s.Owner == owner && slices.Equal(s.Resource, news.Resource) && s.Handled == 0 {
				return true
			}
		}
		return false
	}
	if boundAfresh() {
		t.Fatal("b's subscription for the gateway handled nothing")
	}
	if err := a.Host.LibP2P().Network().ClosePeer(b.Host.ID()); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "the subscription bound again at b", boundAfresh)
	for len(c.Events()) > 0 {
		<-c.Events()
	}
	poll.Until(t, 10*time.Second, "an event after the link came back", eventReaches)
}

// withTopicPeerWait shortens how long a target waits for a subscriber to
// show up on a BIND's topic.
func withTopicPeerWait(d time.Duration) Option {
	return func(c *config) { c.topicPeerWait = d }
}

// A target that does not see the subscribing peer on the endpoint's topic
// refuses its BIND with 503 and a retry-after hint, and binds nothing:
// accepted, the subscriber would believe itself bound while every event
// went past it. Once the peer is on the topic, the same BIND is accepted.
func TestBindFromAPeerNotOnTheTopicIsRefused(t *testing.T) {
	a := newTestPeer(t, nil, func(c *PeerConfig) {
		c.Options = []Option{withTopicPeerWait(200 * time.Millisecond)}
	})
	b := newTestPeer(t, a)
	news := ep("POST", "news")
	st, err := b.Host.LibP2P().NewStream(t.Context(), a.Host.ID(), mesh.ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sc := bufio.NewScanner(st)
	bind := func(txid string) *dispatch.Dispatch {
		t.Helper()
		d := dispatch.NewSubscription(dispatch.BIND, news)
		d.Token = []any{txid}
		if _, err := st.Write(append(d.AppendJSON(nil), '\n')); err != nil {
			t.Fatal(err)
		}
		for sc.Scan() {
			a, err := dispatch.Decoder{}.Decode(sc.Bytes())
			if err != nil {
				t.Fatalf("peer wrote %q: %v", sc.Text(), err)
			}
			if code, _, _, _ := a.AnswerInfo(); code >= 200 {
				return a
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return nil
	}

	a1 := bind("unseen")
	if answerCode(t, a1) != 503 || len(a1.Extra.Value(RetryAfterHeader)) == 0 {
		t.Fatalf("BIND from a peer not on the topic answered %s, want 503 with %s", a1.AppendJSON(nil), RetryAfterHeader)
	}
	if n := a.Node.Stats().Dropped["unseenSubscriber"]; n != 1 {
		t.Errorf("unseenSubscriber = %d, want 1", n)
	}
	for _, s := range a.Node.Subscriptions() {
		if slices.Equal(s.Resource, news.Resource) {
			t.Fatalf("the refused BIND left %s %v bound for %s", s.Method, s.Resource, s.Owner)
		}
	}

	topic, err := b.Host.PubSub().Join(Topic(a.Host.ID(), news))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	if a2 := bind("seen"); answerCode(t, a2) != 200 {
		t.Fatalf("BIND from a peer on the topic answered %s, want 200", a2.AppendJSON(nil))
	}
}

// BindAt sends a BIND refused with 503 and a retry-after hint again after
// the hint, and returns once it is accepted. The target here is a peer
// whose dispatch streams are served by hand: it refuses the first BIND
// and accepts the second.
func TestBindAtRetriesAfterTheHint(t *testing.T) {
	x := newTestPeer(t, nil)
	s := newTestPeer(t, x)
	var binds atomic.Int32
	x.Host.LibP2P().SetStreamHandler(mesh.ProtocolID, func(st network.Stream) {
		defer st.Close()
		sc := bufio.NewScanner(st)
		for sc.Scan() {
			d, err := dispatch.Decoder{}.Decode(sc.Bytes())
			if err != nil || d.Method != dispatch.BIND {
				continue
			}
			a := dispatch.NewAnswer(200, d.TransactionID(), "", nil)
			if binds.Add(1) == 1 {
				a = dispatch.NewAnswer(503, d.TransactionID(), "", jsonString("not yet"))
				a.Extra.Set(RetryAfterHeader, json.RawMessage("50"))
			}
			if via, ok := d.Extra.Get(ViaHeader); ok {
				a.Extra.Set(ViaHeader, via) // the label the sender gave the transaction
			}
			if _, err := st.Write(append(a.AppendJSON(nil), '\n')); err != nil {
				return
			}
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	rb, err := s.Node.BindAt(ctx, []dispatch.Host{hostOf(x)}, ep("POST", "news"), func(context.Context, *Incoming) {})
	if err != nil {
		t.Fatalf("BindAt: %v", err)
	}
	defer rb.o.close()
	if n := binds.Load(); n != 2 {
		t.Fatalf("the target got %d BINDs, want 2", n)
	}
}
