package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/mesh"
	"github.com/jstp-peer/jstp-peer/routing"
	"github.com/jstp-peer/jstp-peer/saturation"

	"github.com/jstp-peer/jstp-peer/internal/poll"
)

// testPeerConfig is a loopback peer of a test mesh: a short resolution
// cache, so that names are seen soon after they are announced, and a
// fixed, moderate load sampled once a minute: the machine's own CPU, busy
// with twenty peers under the race detector, would make replicas report
// themselves critical, and meshes of fifty peers should spend their CPU
// on what the test exercises (tests of saturation set their own).
func testPeerConfig(t testing.TB) PeerConfig {
	return PeerConfig{
		Mesh:   testConfig(t),
		Logger: testLogger(t),
		Names:  routing.NamesConfig{CacheTTL: 100 * time.Millisecond},
		Saturation: SaturationConfig{
			Source: saturation.NewStaticSource(saturation.Sample{
				Disk:   saturation.Space{Free: 50, Total: 100},
				Memory: saturation.Space{Free: 50, Total: 100},
			}),
			Interval: time.Minute,
		},
	}
}

// newTestPeer starts a loopback peer that bootstraps from boot (if any).
func newTestPeer(t testing.TB, boot *Peer, mod ...func(*PeerConfig)) *Peer {
	t.Helper()
	cfg := testPeerConfig(t)
	if boot != nil {
		cfg.Mesh.Bootstrap = addrStrings(boot.Host.Addrs())
	}
	for _, m := range mod {
		m(&cfg)
	}
	p, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// startPeers starts n peers at once, all bootstrapping from boot.
func startPeers(t testing.TB, n int, boot *Peer, mod ...func(*PeerConfig)) []*Peer {
	t.Helper()
	peers := make([]*Peer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range peers {
		cfg := testPeerConfig(t)
		cfg.Mesh.Bootstrap = addrStrings(boot.Host.Addrs())
		for _, m := range mod {
			m(&cfg)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			peers[i], errs[i] = Start(t.Context(), cfg)
		}()
	}
	wg.Wait()
	for i, p := range peers {
		if p != nil {
			t.Cleanup(func() { p.Close() })
		}
		if errs[i] != nil {
			t.Fatalf("Start %d: %v", i, errs[i])
		}
	}
	return peers
}

func hostOf(p *Peer) dispatch.Host { return dispatch.Host{Name: p.Host.ID().String()} }

func request(t testing.TB, p *Peer, d *dispatch.Dispatch) []*dispatch.Dispatch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ch, err := p.Node.Request(ctx, d)
	if err != nil {
		t.Fatalf("Request: %v", err)
	}
	var out []*dispatch.Dispatch
	for a := range ch {
		out = append(out, a)
	}
	return out
}

func codeOf(t testing.TB, a *dispatch.Dispatch) int {
	t.Helper()
	c, _, _, ok := a.AnswerInfo()
	if !ok {
		t.Fatalf("not an answer: %s", a)
	}
	return c
}

func TestThreeHopChain(t *testing.T) {
	a := newTestPeer(t, nil)
	b := newTestPeer(t, a)
	c := newTestPeer(t, a)
	d := newTestPeer(t, a)
	// The test is about what three gateways do, not about finding each
	// other through the DHT, which a loaded machine may not do in time.
	connectAll(t, a, b, c, d)
	req := dispatch.New("GET", "echo", "chain")
	req.Host = []dispatch.Host{hostOf(b), hostOf(c), hostOf(d)}
	as := request(t, a, req)
	if len(as) != 1 || codeOf(t, as[0]) != 200 {
		t.Fatalf("answers = %v", as)
	}
	echoed, err := dispatch.Decode(as[0].Body)
	if err != nil {
		t.Fatalf("echo body: %v", err)
	}
	// Three gateways crossed, the chain consumed, the timestamp kept.
	if string(echoed.Extra.Value(HopsHeader)) != "3" || len(echoed.Host) != 0 || echoed.Timestamp != req.Timestamp {
		t.Fatalf("echoed = %s", echoed)
	}
}

func TestNameProvidedByThreeResolvedFromTwenty(t *testing.T) {
	const n = 20
	first := newTestPeer(t, nil)
	peers := append([]*Peer{first}, startPeers(t, n-1, first)...)
	// Announcing needs DHT neighbours; peers started together find them
	// a moment after they start.
	for _, p := range append(peers[5:8], peers[n-1]) {
		poll.Until(t, 20*time.Second, "DHT routing table", func() bool { return p.Host.DHT().RoutingTable().Size() > 0 })
	}
	providers := map[string]bool{}
	for _, p := range peers[5:8] {
		p := p
		providers[p.Host.ID().String()] = true
		if _, err := p.Node.Handle(dispatch.Endpoint{Method: "GET", Resource: []string{"menu"}}, func(context.Context, *Incoming) (any, error) {
			return p.Host.ID().String(), nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := p.Names.Provide(t.Context(), "pizza.com.ar"); err != nil {
			t.Fatal(err)
		}
	}
	client := peers[n-1]
	// Announcements reach the DHT one by one: wait until the client sees
	// every provider (its cache is short, see testPeerConfig).
	poll.Until(t, 20*time.Second, "the client to resolve the three providers", func() bool {
		ps, err := client.Names.Resolve(t.Context(), "pizza.com.ar")
		return err == nil && len(ps) == 3
	})
	served := map[string]bool{}
	for i := 0; i < 12 && len(served) < 2; i++ {
		req := dispatch.New("GET", "menu")
		req.Host = []dispatch.Host{{Name: "pizza.com.ar"}}
		as := request(t, client, req)
		if len(as) != 1 || codeOf(t, as[0]) != 200 {
			t.Fatalf("answers = %v", as)
		}
		var who string
		json.Unmarshal(as[0].Body, &who)
		if !providers[who] {
			t.Fatalf("answered by %s, not a provider", who)
		}
		served[who] = true
	}
	// Replicas are chosen at random: a dozen requests reach more than one.
	if len(served) < 2 {
		t.Fatalf("all requests went to %v", served)
	}
	// A name nobody provides is 404, not silence.
	req := dispatch.New("GET", "menu")
	req.Host = []dispatch.Host{{Name: "nobody.example"}}
	if as := request(t, client, req); len(as) != 1 || codeOf(t, as[0]) != 404 {
		t.Fatalf("answers = %v", as)
	}
}

// events counts what each subscriber received, by event id.
type events struct {
	mu  sync.Mutex
	got map[int]map[string]int
}

func (e *events) add(sub int, id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.got[sub] == nil {
		e.got[sub] = map[string]int{}
	}
	e.got[sub][id]++
}

func (e *events) all(subs int, id string) bool { return len(e.missing(subs, id)) == 0 }

// missing lists the subscribers that have not got id yet.
func (e *events) missing(subs int, id string) []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []int
	for i := 0; i < subs; i++ {
		if e.got[i][id] == 0 {
			out = append(out, i)
		}
	}
	return out
}

// awaitAll waits until every subscriber has id, and otherwise names the
// subscribers it missed and what the target's topics counted, so that a
// loss says where it happened.
func (e *events) awaitAll(t *testing.T, target *Peer, subs []*Peer, topic, id string) {
	t.Helper()
	if poll.Wait(20*time.Second, func() bool { return e.all(len(subs), id) }) {
		return
	}
	miss := e.missing(len(subs), id)
	members := map[peer.ID]bool{}
	for _, p := range target.Host.PubSub().ListPeers(topic) {
		members[p] = true
	}
	var seen []string
	for _, i := range miss {
		seen = append(seen, fmt.Sprintf("%d (a member: %v): %+v", i, members[subs[i].Host.ID()], subs[i].topics.Stats()))
	}
	t.Fatalf("subscribers %v did not get %s within 20s; target's topics %+v; theirs %v", miss, id, target.topics.Stats(), seen)
}

func TestRemoteBindFiftySubscribers(t *testing.T) {
	const subs = 50
	target := newTestPeer(t, nil)
	// Subscribers need no DHT service; client mode spares fifty
	// routing-table refreshes on two cores.
	peers := startPeers(t, subs, target, func(c *PeerConfig) { c.Mesh.DHTMode = mesh.DHTClient })
	ev := &events{got: map[int]map[string]int{}}
	ep := dispatch.Endpoint{Method: "POST", Resource: []string{"news", ":id"}}
	topic := Topic(target.Host.ID(), ep)
	// Subscribers bind at once, as independent peers would.
	bindings := make([]*RemoteBinding, subs)
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rb, err := p.Node.BindAt(t.Context(), []dispatch.Host{hostOf(target)}, ep, func(ctx context.Context, in *Incoming) {
				ev.add(i, in.Params["id"])
			})
			if err != nil {
				t.Errorf("BindAt %d: %v", i, err)
			}
			bindings[i] = rb
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	const rounds = 5
	for r := 0; r < rounds; r++ {
		id := fmt.Sprint("e", r)
		if err := target.Node.Send(t.Context(), dispatch.New("POST", "news", id)); err != nil {
			t.Fatal(err)
		}
		ev.awaitAll(t, target, peers, topic, id)
	}
	// A last event flushes anything still in flight before the count.
	target.Node.Send(t.Context(), dispatch.New("POST", "news", "last"))
	ev.awaitAll(t, target, peers, topic, "last")
	ev.mu.Lock()
	for i := 0; i < subs; i++ {
		for id, n := range ev.got[i] {
			if n != 1 {
				t.Errorf("subscriber %d got %s %d times", i, id, n)
			}
		}
		if len(ev.got[i]) != rounds+1 {
			t.Errorf("subscriber %d got %d distinct events, want %d", i, len(ev.got[i]), rounds+1)
		}
	}
	ev.mu.Unlock()
	// One publish per event, however many subscribers: the target holds
	// one subscription per subscribing peer, all feeding one topic.
	remote := 0
	for _, s := range target.Node.Subscriptions() {
		if s.Method == "POST" && strings.Join(s.Resource, "/") == "news/:id" {
			remote++
		}
	}
	if remote != subs {
		t.Fatalf("target holds %d subscriptions, want %d", remote, subs)
	}

	// RELEASE ends one binding; a departed subscriber is released too.
	if err := bindings[0].Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	peers[1].Close()
	poll.Until(t, 20*time.Second, "released and departed subscriptions to go", func() bool {
		for _, s := range target.Node.Subscriptions() {
			if s.Owner == peers[0].Host.ID().String() || s.Owner == peers[1].Host.ID().String() {
				return false
			}
		}
		return true
	})
	target.Node.Send(t.Context(), dispatch.New("POST", "news", "after"))
	poll.Until(t, 20*time.Second, "the rest to get the event after release", func() bool {
		ev.mu.Lock()
		defer ev.mu.Unlock()
		for i := 2; i < subs; i++ {
			if ev.got[i]["after"] == 0 {
				return false
			}
		}
		return true
	})
	ev.mu.Lock()
	if ev.got[0]["after"] != 0 {
		t.Error("released subscriber still received events")
	}
	ev.mu.Unlock()
}

func TestNotGatewayAnd404(t *testing.T) {
	a := newTestPeer(t, nil)
	b := newTestPeer(t, a, func(c *PeerConfig) { c.NoForward = true })
	c := newTestPeer(t, a)
	req := dispatch.New("GET", "echo", "x")
	req.Host = []dispatch.Host{hostOf(b), hostOf(c)}
	if as := request(t, a, req); len(as) != 1 || codeOf(t, as[0]) != 502 {
		t.Fatalf("through a non-gateway: %v", as)
	}
	// b still serves what is addressed to it.
	req.Host = []dispatch.Host{hostOf(b)}
	if as := request(t, a, req); len(as) != 1 || codeOf(t, as[0]) != 200 {
		t.Fatalf("to the non-gateway itself: %v", as)
	}
	req = dispatch.New("GET", "missing")
	req.Host = []dispatch.Host{hostOf(c)}
	if as := request(t, a, req); len(as) != 1 || codeOf(t, as[0]) != 404 {
		t.Fatalf("nothing bound: %v", as)
	}
}

func TestOversizedFrameOverStream(t *testing.T) {
	a := newTestPeer(t, nil, func(c *PeerConfig) {
		c.Options = []Option{WithDecoder(dispatch.Decoder{Quirks: true, MaxSize: 4096})}
	})
	b := newTestPeer(t, a)
	st, err := b.Host.LibP2P().NewStream(t.Context(), a.Host.ID(), mesh.ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	big := `{"protocol":["JSTP","0.4"],"method":"POST","resource":["x"],"timestamp":1,"body":"` + strings.Repeat("x", 10000) + `"}` + "\n"
	ok := `{"protocol":["JSTP","0.4"],"method":"GET","resource":["peer"],"timestamp":1,"token":["t1"]}` + "\n"
	if _, err := st.Write([]byte(big + ok)); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(st)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	var got []*dispatch.Dispatch
	for len(got) < 2 && sc.Scan() {
		d, err := dispatch.Decoder{}.Decode(sc.Bytes())
		if err != nil {
			t.Fatalf("peer wrote %q: %v", sc.Text(), err)
		}
		got = append(got, d)
	}
	// The exception for the oversized frame, then the stream still
	// serves: the answer to the next request (one local handler answers,
	// so no provisional answer comes before it).
	if len(got) < 2 || got[0].Exception == nil || got[0].Exception.Code != 413 {
		t.Fatalf("got %v", got)
	}
	if c, _, _, _ := got[1].AnswerInfo(); c != 200 {
		t.Fatalf("after the oversized frame: %v", got)
	}
}

func TestBindAtUnknownPeerFails(t *testing.T) {
	a := newTestPeer(t, nil)
	ghost, _ := peer.IDFromPrivateKey(testKey(t))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := a.Node.BindAt(ctx, []dispatch.Host{{Name: ghost.String()}}, dispatch.Endpoint{Method: "POST", Resource: []string{"x"}}, func(context.Context, *Incoming) {})
	if code := dispatch.Code(err); code != 404 && code != 502 {
		t.Fatalf("err = %v (code %d), want 404 or 502", err, code)
	}
}

var (
	_ = slices.Contains[[]string]
	_ = atomic.Int32{}
	_ = routing.Classify
)

func TestAutoDHTModeResolvesNamesOnALAN(t *testing.T) {
	// Peers with the default DHT mode, where AutoNAT reaches no verdict
	// (one machine, a LAN): they must still serve the DHT to each other,
	// or no name would ever resolve.
	auto := func(c *PeerConfig) { c.Mesh.DHTMode = mesh.DHTAuto }
	a := newTestPeer(t, nil, auto)
	b := newTestPeer(t, a, auto, func(c *PeerConfig) { c.Provide = []string{"menu.lan"} })
	poll.Until(t, 20*time.Second, "the name to resolve", func() bool {
		ps, err := a.Names.Resolve(t.Context(), "menu.lan")
		return err == nil && len(ps) == 1 && ps[0].ID == b.Host.ID()
	})
}

// TestStartUnderIncomingTraffic starts a peer while another floods it
// with requests from the moment it can be reached: every part is wired
// before the first dispatch is let in (the race detector checks the
// rest), and every request gets exactly one outcome.
func TestStartUnderIncomingTraffic(t *testing.T) {
	a := newTestPeer(t, nil)
	key := testKey(t)
	bID, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	flood := make(chan map[int]int, 1)
	go func() {
		codes := map[int]int{}
		defer func() { flood <- codes }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			req := dispatch.New("GET", "echo", "early")
			req.Host = []dispatch.Host{{Name: bID.String()}}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			ch, err := a.Node.Request(ctx, req)
			if err != nil {
				cancel()
				t.Error(err)
				return
			}
			n := 0
			for ans := range ch {
				c, _, _, _ := ans.AnswerInfo()
				codes[c]++
				n++
			}
			cancel()
			if n != 1 {
				t.Errorf("a request got %d outcomes", n)
				return
			}
		}
	}()
	b := newTestPeer(t, a, func(c *PeerConfig) { c.Mesh.Key = key })
	// Once b is up the flood reaches it.
	poll.Until(t, 30*time.Second, "a request answered by the new peer", func() bool {
		req := dispatch.New("GET", "echo", "late")
		req.Host = []dispatch.Host{hostOf(b)}
		as := request(t, a, req)
		return len(as) == 1 && codeOf(t, as[0]) == 200
	})
	close(stop)
	codes := <-flood
	for c := range codes {
		if c != 200 && c != 404 && c != 502 {
			t.Fatalf("outcomes %v: only 200, or 404/502 before the peer could be reached", codes)
		}
	}
}
