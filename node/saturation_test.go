package node

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

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

// A report published by one peer in the name of another is dropped: a
// peer can at worst misreport its own load.
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
	before := saturationOf(t, a).Rejected
	if err := b.topics.Publish(t.Context(), SaturationTopic, data); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "the forged report to be rejected", func() bool {
		return saturationOf(t, a).Rejected > before
	})
	for _, p := range saturationOf(t, a).Peers {
		if p.Peer == victim.Host.ID().String() && p.Seq == forged.Seq {
			t.Fatalf("a kept the forged report: %+v", p)
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
			for i, c := range caps {
				share := count[ids[i]] / (clients * each)
				want := float64(c) / 7
				t.Logf("capacity %d: share %.3f (want %.3f)", c, share, want)
				if math.Abs(share-want) > 0.1 {
					t.Errorf("capacity %d served %.3f of the requests, want %.3f ± 0.1", c, share, want)
				}
			}
		})
	}
}
