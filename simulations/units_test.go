package simulations

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"math"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
)

func TestQuantileAndSummarise(t *testing.T) {
	v := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct{ q, want float64 }{{0.5, 5}, {0.9, 9}, {0.99, 10}, {0, 1}} {
		if got := Quantile(v, tc.q); got != tc.want {
			t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if !math.IsNaN(Quantile(nil, 0.5)) {
		t.Error("quantile of nothing is a number")
	}
	now := time.Now()
	s := Summarise([]Record{
		{Sent: now, Latency: 10 * time.Millisecond, Code: 200},
		{Sent: now, Latency: 30 * time.Millisecond, Code: 200},
		{Sent: now, Code: 503}, {Sent: now, Code: 504}, {Sent: now, Code: 502}, {Sent: now},
	})
	want := map[string]int{OutcomeAnswered: 2, OutcomeRefused: 1, OutcomeTimedOut: 1, OutcomeFailed: 1, OutcomeLost: 1}
	for k, n := range want {
		if s.Outcomes[k] != n {
			t.Errorf("%s: %d, want %d", k, s.Outcomes[k], n)
		}
	}
	if s.Answered != 2.0/6 || s.P50 != 10 || s.Max != 30 {
		t.Errorf("summary %+v", s)
	}
}

func TestSpreadCapacities(t *testing.T) {
	got := spreadCapacities(10, 4)
	if got[0] != 1 || got[9] != 4 || len(got) != 10 {
		t.Fatalf("capacities %v: want 1 to 4", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1] {
			t.Fatalf("capacities %v not sorted", got)
		}
	}
}

func TestFiguresAreSVG(t *testing.T) {
	for _, f := range []Figure{
		{Title: "lines <&>", Kind: "line", LogX: true, LogY: true, Series: []Series{{Name: "a", X: []float64{1, 10, 100}, Y: []float64{5, math.NaN(), 500}}}, VLines: []VLine{{Label: "x", X: 3}}},
		{Title: "bars", Kind: "bar", Categories: []string{"p50", "p99"}, Series: []Series{{Name: "hot-cold", Y: []float64{1, 2}}, {Name: "b", Y: []float64{0, math.Inf(1)}}}, HLines: []HLine{{Label: "goal", Y: 1.5}}},
		{Title: "empty", Kind: "line"},
	} {
		svg := f.SVG()
		d := xml.NewDecoder(strings.NewReader(svg))
		for {
			_, err := d.Token()
			if err != nil {
				if err.Error() != "EOF" {
					t.Fatalf("%s: not XML: %v\n%s", f.Title, err, svg)
				}
				break
			}
		}
		if strings.Contains(svg, "NaN") || strings.Contains(svg, "Inf") {
			t.Errorf("%s: non-finite coordinates in\n%s", f.Title, svg)
		}
	}
	// Missing points are null in result.json, which JSON requires.
	b, err := json.Marshal(Result{Figures: []Figure{{Series: []Series{{Y: []float64{1, math.NaN()}}}}}, Goals: []Goal{{Value: math.NaN()}}})
	if err != nil || !strings.Contains(string(b), `"y":[1,null]`) || !strings.Contains(string(b), `"value":null`) {
		t.Fatalf("%s %v", b, err)
	}
}

func TestOracleJoinsTheShortestQueuePerWorker(t *testing.T) {
	o := NewOracle()
	a, b := peer.ID("a"), peer.ID("b")
	doneA := o.Track(a, 1)
	o.Track(b, 3)
	// b has three workers: it takes three requests before a takes one
	// more than it has workers.
	counts := map[peer.ID]int{}
	for range 4 {
		ps := o.Order("svc", []peer.AddrInfo{{ID: a}, {ID: b}})
		counts[ps[0].ID]++
	}
	if counts[a] != 1 || counts[b] != 3 {
		t.Fatalf("first choices %v, want a once and b three times", counts)
	}
	doneA()
	if ps := o.Order("svc", []peer.AddrInfo{{ID: a}, {ID: b}}); ps[0].ID != a {
		t.Fatalf("a finished its request but is not chosen")
	}
}

func TestReplicaQueues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewReplica(0, 1, 100*time.Millisecond)
		body := func() []byte { return []byte(`{"w":1}`) }
		start := time.Now()
		done := make(chan time.Duration, 2)
		for range 2 {
			go func() {
				_, err := r.Handle(context.Background(), incoming(body()))
				if err != nil {
					t.Error(err)
				}
				done <- time.Since(start)
			}()
		}
		first, second := <-done, <-done
		// One worker: the second request waits for the first.
		if first != 100*time.Millisecond || second != 200*time.Millisecond {
			t.Fatalf("answered after %v and %v, want 100ms and 200ms", first, second)
		}
		s, _ := r.Sample(context.Background())
		if s.CPU != 1 {
			t.Fatalf("CPU %v after 200ms of work in 200ms, want 1", s.CPU)
		}
		if _, err := r.Handle(context.Background(), incoming([]byte(`{"w":-1}`))); err == nil {
			t.Fatal("negative work accepted")
		}
	})
}

func TestNetworkCutsAndPartitions(t *testing.T) {
	n, err := NewNetwork(ThreeRegions)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	a, b, c := n.endpoint(0), n.endpoint(1), n.endpoint(2)
	ka, kb, kc := ipKey(a), ipKey(b), ipKey(c)
	if n.blocked(ka, kb) {
		t.Fatal("blocked before any cut")
	}
	n.partition(map[uint32]int{ka: 0, kb: 1, kc: 1})
	if !n.blocked(ka, kb) || n.blocked(kb, kc) {
		t.Fatal("partition does not follow the sides")
	}
	n.Heal()
	n.cut(c)
	if n.blocked(ka, kb) || !n.blocked(kb, kc) || !n.blocked(kc, ka) {
		t.Fatal("a cut endpoint is reachable, or others are not")
	}
	if n.Dropped() != 3 {
		t.Fatalf("dropped %d, want 3", n.Dropped())
	}
	udp := func(ip net.IP) *net.UDPAddr { return &net.UDPAddr{IP: ip, Port: 1} }
	if n.topo.Latency[0][2] != 90*time.Millisecond || addrKey(udp(c)) != kc {
		t.Fatal("regions or addresses mixed up")
	}
	if _, err := NewNetwork(Topology{Name: "bad", Regions: []Region{{Name: "x"}}}); err == nil {
		t.Fatal("a topology without latencies was accepted")
	}
}

func incoming(body []byte) *node.Incoming {
	d := dispatch.New(dispatch.GET, "work")
	d.Body = body
	return &node.Incoming{Dispatch: d}
}
