package node

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/internal/poll"
	"github.com/jstp-peer/jstp-peer/routing"
	"github.com/jstp-peer/jstp-peer/saturation"
)

// fastReports makes a peer measure a fixed load and report often, so
// tests see reports travel without waiting for the default interval.
func fastReports(c *PeerConfig) {
	c.Saturation = SaturationConfig{
		Source: saturation.NewStaticSource(saturation.Sample{
			Disk:   saturation.Space{Free: 80, Total: 100},
			Memory: saturation.Space{Free: 50, Total: 100},
		}),
		Interval: 50 * time.Millisecond,
	}
}

func saturationOf(t *testing.T, p *Peer) SaturationView {
	t.Helper()
	as := request(t, p, dispatch.New("GET", "saturation"))
	if len(as) != 1 || codeOf(t, as[0]) != 200 {
		t.Fatalf("GET saturation: %v", as)
	}
	var v SaturationView
	if err := json.Unmarshal(as[0].Body, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// A metric one peer reports through JSTP reaches the others in its
// gossiped report, and GET ["saturation"] lists every peer heard from.
func TestSaturationReportsTravel(t *testing.T) {
	a := newTestPeer(t, nil, fastReports)
	b := newTestPeer(t, a, fastReports)
	c := newTestPeer(t, a, fastReports)
	put := dispatch.New("PUT", "saturation", "metrics", "queue")
	put.Body = json.RawMessage(`{"value": 95, "capacity": 100}`)
	if as := request(t, c, put); len(as) != 1 || codeOf(t, as[0]) != 200 {
		t.Fatalf("PUT metric: %v", as)
	}
	poll.Until(t, 20*time.Second, "a to hear of b, and of c's queue", func() bool {
		v := saturationOf(t, a)
		var sawB, sawC bool
		for _, p := range v.Peers {
			sawB = sawB || p.Peer == b.Host.ID().String()
			if p.Peer == c.Host.ID().String() && p.Saturation["queue"] >= 0.9 {
				sawC = true
			}
		}
		return sawB && sawC
	})
	if v := saturationOf(t, c); v.Self.Peer != c.Host.ID().String() || v.Self.Saturation["queue"] == 0 {
		t.Fatalf("c's own report: %+v", v.Self)
	}
}

func TestSaturationMetricBadBodyIs400(t *testing.T) {
	a := newTestPeer(t, nil, fastReports)
	for _, body := range []string{`{}`, `{"value": 1}`, `{"value": -1, "capacity": 10}`, `{"value": 1, "capacity": 0}`, `"high"`} {
		put := dispatch.New("PUT", "saturation", "metrics", "queue")
		put.Body = json.RawMessage(body)
		if as := request(t, a, put); len(as) != 1 || codeOf(t, as[0]) != 400 {
			t.Fatalf("body %s: %v, want one 400", body, as)
		}
	}
}

// A report published by one peer in the name of another is refused by
// the first peer that sees it — a hostile peer's own gossipsub does not
// check — and never kept or passed on: a peer can at worst misreport its
// own load.
func TestSaturationForgedReportDropped(t *testing.T) {
	a := newTestPeer(t, nil, fastReports)
	b := newTestPeer(t, a, fastReports)
	victim := newTestPeer(t, a, fastReports)
	forged := victim.sat.meter.Report()
	forged.Saturation[saturation.DimCPU] = 1
	forged.Headroom = 0
	forged.Seq += 1 << 40
	data, err := saturation.EncodeReport(forged)
	if err != nil {
		t.Fatal(err)
	}

	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ps, err := pubsub.NewGossipSub(t.Context(), h, pubsub.WithFloodPublish(true))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(SaturationTopic)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	if err := h.Connect(t.Context(), peer.AddrInfo{ID: a.Host.ID(), Addrs: a.Host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "the hostile peer to see a on the topic", func() bool {
		return slices.Contains(topic.ListPeers(), a.Host.ID())
	})
	before := a.topics.Stats().Refused
	if err := topic.Publish(t.Context(), data); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "a to refuse the forged report", func() bool {
		return a.topics.Stats().Refused > before
	})
	for _, p := range []*Peer{a, b} {
		for _, r := range saturationOf(t, p).Peers {
			if r.Peer == victim.Host.ID().String() && r.Seq == forged.Seq {
				t.Fatalf("%s kept the forged report: %+v", p.Host.ID(), r)
			}
		}
	}
}

// A replica that reports itself critical gets no new requests while
// others can serve the name.
func TestCriticalReplicaIsAvoided(t *testing.T) {
	// A short cache, so that the poll below sees providers as they
	// announce themselves.
	a := newTestPeer(t, nil, fastReports, func(c *PeerConfig) { c.Names.CacheTTL = 50 * time.Millisecond })
	provide := func(c *PeerConfig) { c.Provide = []string{"menu.test"} }
	var replicas []*Peer
	for range 3 {
		p := newTestPeer(t, a, fastReports, provide)
		id := p.Host.ID().String()
		if _, err := p.Node.Handle(ep("GET", "menu"), func(context.Context, *Incoming) (any, error) { return id, nil }); err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, p)
	}
	critical := replicas[2]
	put := dispatch.New("PUT", "saturation", "metrics", "queue")
	put.Body = json.RawMessage(`{"value": 99, "capacity": 100}`)
	if as := request(t, critical, put); len(as) != 1 || codeOf(t, as[0]) != 200 {
		t.Fatalf("PUT metric: %v", as)
	}
	poll.Until(t, 30*time.Second, "a to resolve every replica and hear the critical one", func() bool {
		ps, err := a.Names.Resolve(t.Context(), "menu.test")
		if err != nil || len(ps) != 3 {
			return false
		}
		for _, p := range saturationOf(t, a).Peers {
			if p.Peer == critical.Host.ID().String() && p.Level == saturation.LevelCritical {
				return true
			}
		}
		return false
	})
	served := map[string]int{}
	for range 30 {
		req := dispatch.New("GET", "menu")
		req.Host = []dispatch.Host{{Name: "menu.test"}}
		as := request(t, a, req)
		if len(as) != 1 || codeOf(t, as[0]) != 200 {
			t.Fatalf("answers %v", as)
		}
		var who string
		json.Unmarshal(as[0].Body, &who)
		served[who]++
	}
	if n := served[critical.Host.ID().String()]; n != 0 {
		t.Fatalf("the critical replica served %d of 30 requests (%v)", n, served)
	}
}

// A peer that turns critical is an event every peer that hears of it
// processes, as POST ["saturation", PEER, "critical"] with its report.
func TestCriticalIsAnEvent(t *testing.T) {
	a := newTestPeer(t, nil, fastReports)
	c := newTestPeer(t, a, fastReports)
	events := make(chan *Incoming, 16)
	for _, p := range []*Peer{a, c} {
		if _, err := p.Node.Bind(ep("POST", "saturation", "*", "critical"), func(_ context.Context, in *Incoming) { events <- in }); err != nil {
			t.Fatal(err)
		}
	}
	put := dispatch.New("PUT", "saturation", "metrics", "queue")
	put.Body = json.RawMessage(`{"value": 99, "capacity": 100}`)
	if as := request(t, c, put); len(as) != 1 || codeOf(t, as[0]) != 200 {
		t.Fatalf("PUT metric: %v", as)
	}
	got := 0
	for got < 2 {
		select {
		case in := <-events:
			var r saturation.Report
			if err := json.Unmarshal(in.Dispatch.Body, &r); err != nil || r.Peer != c.Host.ID().String() || r.Level != saturation.LevelCritical {
				t.Fatalf("event %s", in.Dispatch)
			}
			if in.Dispatch.ResourceText()[1] != c.Host.ID().String() {
				t.Fatalf("event resource %v", in.Dispatch.ResourceText())
			}
			got++
		case <-time.After(20 * time.Second):
			t.Fatalf("%d of 2 events (c's own, and a's on hearing it)", got)
		}
	}
}

// Three replicas whose capacities are 1:2:4 — as many requests served at
// once, each taking the same time — share a steady load in proportion,
// with the default policy (which sees requests in flight and latency)
// as with weighted random (which sees the capacity they declare).
func TestCapacitySharesOneTwoFour(t *testing.T) {
	for _, policy := range []string{routing.PolicyHotCold, routing.PolicyWeightedRandom} {
		t.Run(policy, func(t *testing.T) {
			a := newTestPeer(t, nil, fastReports, func(c *PeerConfig) { c.Balance = policy })
			caps := []int{1, 2, 4}
			ids := make([]string, len(caps))
			for i, c := range caps {
				p := newTestPeer(t, a, fastReports, func(pc *PeerConfig) {
					pc.Provide = []string{"work.test"}
					pc.Saturation.Capacity = float64(c)
				})
				ids[i] = p.Host.ID().String()
				workers := make(chan struct{}, c)
				id := ids[i]
				if _, err := p.Node.Handle(ep("GET", "work"), func(ctx context.Context, _ *Incoming) (any, error) {
					workers <- struct{}{}
					defer func() { <-workers }()
					// The service time of one request: the model of a
					// replica's work, not a wait for anything.
					time.Sleep(3 * time.Millisecond)
					return id, nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			poll.Until(t, 30*time.Second, "a to resolve every replica and hear their capacities", func() bool {
				ps, err := a.Names.Resolve(t.Context(), "work.test")
				if err != nil || len(ps) != 3 {
					return false
				}
				for _, p := range ps {
					if a.Replica(p.ID).Capacity == 0 {
						return false
					}
				}
				return true
			})
			const clients, each = 14, 60
			served := make(chan string, clients*each)
			errs := make(chan error, clients)
			for range clients {
				go func() {
					for range each {
						req := dispatch.New("GET", "work")
						req.Host = []dispatch.Host{{Name: "work.test"}}
						ch, err := a.Node.Request(t.Context(), req)
						if err != nil {
							errs <- err
							return
						}
						var as []*dispatch.Dispatch
						for d := range ch {
							as = append(as, d)
						}
						if code, _, _, _ := as[0].AnswerInfo(); len(as) != 1 || code != 200 {
							errs <- fmt.Errorf("answers %v", as)
							return
						}
						var who string
						json.Unmarshal(as[0].Body, &who)
						served <- who
					}
					errs <- nil
				}()
			}
			for range clients {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			close(served)
			count := map[string]float64{}
			for who := range served {
				count[who]++
			}
			// Weighted random draws by the declared capacity; hot-cold
			// equalises the wait it measures, which follows capacity
			// less tightly on a busy machine.
			tol := 0.1
			if policy == routing.PolicyHotCold {
				tol = 0.15
			}
			prev := 0.0
			for i, c := range caps {
				share := count[ids[i]] / (clients * each)
				want := float64(c) / 7
				t.Logf("capacity %d: share %.3f (want %.3f)", c, share, want)
				if math.Abs(share-want) > tol {
					t.Errorf("capacity %d served %.3f of the requests, want %.3f ± %.2f", c, share, want, tol)
				}
				if share <= prev {
					t.Errorf("capacity %d served %.3f, no more than a smaller replica", c, share)
				}
				prev = share
			}
		})
	}
}

// A replica's answers tell the peer that asked how many requests it has
// in flight, so choosing a replica does not wait for its next gossiped
// report (tests' reports come once a minute).
func TestAnswersCarryLoad(t *testing.T) {
	a := newTestPeer(t, nil)
	b := newTestPeer(t, a)
	c := newTestPeer(t, a)
	release := make(chan struct{})
	if _, err := b.Node.Handle(ep("GET", "slow"), func(ctx context.Context, _ *Incoming) (any, error) {
		<-release
		return "done", nil
	}); err != nil {
		t.Fatal(err)
	}
	whoAmI(t, b)
	connectAll(t, a, b, c)
	const busy = 5
	done := make(chan []*dispatch.Dispatch, busy)
	for range busy {
		go func() {
			req := dispatch.New("GET", "slow")
			req.Host = []dispatch.Host{hostOf(b)}
			done <- request(t, c, req)
		}()
	}
	poll.Until(t, 20*time.Second, "b to hold the slow requests", func() bool { return b.Node.InFlight() >= busy })
	req := dispatch.New("GET", "who")
	req.Host = []dispatch.Host{hostOf(b)}
	authorIn(t, request(t, a, req))
	if got := a.Replica(b.Host.ID()).InFlight; got < busy {
		t.Fatalf("a sees %d requests in flight at b, want at least %d", got, busy)
	}
	close(release)
	for range busy {
		if as := <-done; len(as) != 1 || codeOf(t, as[0]) != 200 {
			t.Fatalf("slow answers %v", as)
		}
	}
	req = dispatch.New("GET", "who")
	req.Host = []dispatch.Host{hostOf(b)}
	authorIn(t, request(t, a, req))
	if got := a.Replica(b.Host.ID()).InFlight; got >= busy {
		t.Fatalf("a still sees %d requests in flight at b", got)
	}
}

// A replica that refuses with 503 does not fail idempotent requests while
// another can serve them: they go to the other replica. Other methods get
// the 503 unless their emitter opts in.
func TestRetryOnAnotherReplica(t *testing.T) {
	a := newTestPeer(t, nil, func(c *PeerConfig) { c.Balance = routing.PolicyRoundRobin })
	provide := func(c *PeerConfig) { c.Provide = []string{"svc.test"} }
	refusing := newTestPeer(t, a, provide)
	serving := newTestPeer(t, a, provide)
	for _, m := range []string{"GET", "POST"} {
		if _, err := refusing.Node.Handle(ep(m, "job"), func(context.Context, *Incoming) (any, error) {
			return nil, dispatch.Errorf(dispatch.ErrUnavailable, "too busy")
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := serving.Node.Handle(ep(m, "job"), func(context.Context, *Incoming) (any, error) {
			return "served", nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, 30*time.Second, "a to resolve both replicas", func() bool {
		ps, err := a.Names.Resolve(t.Context(), "svc.test")
		return err == nil && len(ps) == 2
	})
	codes := func(method string, optIn bool) map[int]int {
		out := map[int]int{}
		for range 10 {
			req := dispatch.New(method, "job")
			req.Host = []dispatch.Host{{Name: "svc.test"}}
			if optIn {
				req.Extra = dispatch.Headers{{Name: RetryHeader, Value: json.RawMessage(`true`)}}
			}
			as := request(t, a, req)
			if len(as) != 1 {
				t.Fatalf("%s: answers %v, want one", method, as)
			}
			out[codeOf(t, as[0])]++
		}
		return out
	}
	if got := codes("GET", false); got[200] != 10 {
		t.Fatalf("GET: codes %v, want ten 200", got)
	}
	// Round robin sent at least one first to the refusing replica.
	if got := a.Node.Stats().Retried; got == 0 || got > 10 {
		t.Fatalf("a retried %d requests, want between 1 and 10", got)
	}
	if got := codes("POST", false); got[503] != 5 || got[200] != 5 {
		t.Fatalf("POST: codes %v, want five 503 and five 200", got)
	}
	if got := codes("POST", true); got[200] != 10 {
		t.Fatalf("POST with %q: codes %v, want ten 200", RetryHeader, got)
	}
}

// A peer that does not follow the overview hears of the replicas of the
// names it sends to, and of no other peer.
func TestNameTopicsWithoutOverview(t *testing.T) {
	noOverview := func(c *PeerConfig) { c.Saturation.NoOverview = true }
	a := newTestPeer(t, nil, fastReports, noOverview, func(c *PeerConfig) { c.Names.CacheTTL = 50 * time.Millisecond })
	provide := func(c *PeerConfig) { c.Provide = []string{"menu.test"} }
	b := newTestPeer(t, a, fastReports, provide)
	c := newTestPeer(t, a, fastReports, provide)
	bystander := newTestPeer(t, a, fastReports)
	for _, p := range []*Peer{b, c} {
		whoAmI(t, p)
	}
	poll.Until(t, 30*time.Second, "a to resolve both replicas", func() bool {
		ps, err := a.Names.Resolve(t.Context(), "menu.test")
		return err == nil && len(ps) == 2
	})
	req := dispatch.New("GET", "who")
	req.Host = []dispatch.Host{{Name: "menu.test"}}
	authorIn(t, request(t, a, req))
	heard := func(p *Peer) (uint64, bool) {
		for _, r := range saturationOf(t, a).Peers {
			if r.Peer == p.Host.ID().String() {
				return r.Seq, true
			}
		}
		return 0, false
	}
	var first uint64
	poll.Until(t, 30*time.Second, "a to hear of both replicas", func() bool {
		sb, okb := heard(b)
		_, okc := heard(c)
		if okb && first == 0 {
			first = sb
		}
		return okb && okc
	})
	// Several more of b's reports: the bystander published as often.
	poll.Until(t, 30*time.Second, "five more of b's reports", func() bool {
		s, _ := heard(b)
		return s >= first+5
	})
	if _, ok := heard(bystander); ok {
		t.Fatal("a heard of a peer that provides nothing it uses")
	}
}

// A replica that starts providing a name is used from its first report:
// the peers that hear it add it to the providers they cached, long
// before their next DHT lookup.
func TestNewReplicaLearnedFromItsReport(t *testing.T) {
	a := newTestPeer(t, nil, fastReports, func(c *PeerConfig) { c.Names.CacheTTL = time.Hour })
	provide := func(c *PeerConfig) { c.Provide = []string{"menu.test"} }
	b := newTestPeer(t, a, fastReports, provide)
	poll.Until(t, 30*time.Second, "a to resolve the first replica", func() bool {
		ps, err := a.Names.Resolve(t.Context(), "menu.test")
		return err == nil && len(ps) == 1 && ps[0].ID == b.Host.ID()
	})
	c := newTestPeer(t, a, fastReports, provide)
	poll.Until(t, 30*time.Second, "a to learn of the second replica from its report", func() bool {
		ps, err := a.Names.Resolve(t.Context(), "menu.test")
		return err == nil && len(ps) == 2 && slices.ContainsFunc(ps, func(p peer.AddrInfo) bool { return p.ID == c.Host.ID() })
	})
	if got := a.Names.Stats().Refreshes; got != 0 {
		t.Fatalf("a looked the name up again (%d refreshes): the test proves nothing", got)
	}
}
