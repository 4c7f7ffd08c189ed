package routing

import (
	"math"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestPolicyNames(t *testing.T) {
	for _, name := range PolicyNames {
		c, err := Policy(name, signals{})
		if err != nil || c == nil {
			t.Fatalf("Policy(%q): %v", name, err)
		}
		if got := c.Order("x", replicas(3)); len(got) != 3 {
			t.Fatalf("%s ordered %v", name, got)
		}
	}
	if c, err := Policy("", signals{}); err != nil {
		t.Fatal(err)
	} else if _, ok := c.(HotCold); !ok {
		t.Fatalf("the default policy is %T, want HotCold", c)
	}
	_, err := Policy("fastest", nil)
	if err == nil || !strings.Contains(err.Error(), "least-saturated") {
		t.Fatalf("unknown policy: %v, want an error listing the known ones", err)
	}
}

func TestRoundRobinRotates(t *testing.T) {
	r := &RoundRobin{}
	counts := map[peer.ID]int{}
	var prev peer.ID
	for range 30 {
		ps := replicas(3)
		// The DHT returns providers in any order; the rotation must not
		// follow it.
		ps[0], ps[2] = ps[2], ps[0]
		first := r.Order("x", ps)[0].ID
		if first == prev {
			t.Fatalf("%s chosen twice in a row", first)
		}
		prev = first
		counts[first]++
	}
	for _, id := range []peer.ID{"a", "b", "c"} {
		if counts[id] != 10 {
			t.Fatalf("first choices %v, want 10 each", counts)
		}
	}
	// Names rotate independently.
	if got := r.Order("y", replicas(3))[0].ID; got != "a" {
		t.Fatalf("first choice for a new name %s, want a", got)
	}
}

// Three replicas with capacities 1:2:4 get shares of 1/7, 2/7 and 4/7.
func TestWeightedRandomFollowsCapacity(t *testing.T) {
	s := signals{"a": {Capacity: 1}, "b": {Capacity: 2}, "c": {Capacity: 4}}
	const n = 70000
	first := map[peer.ID]float64{}
	for range n {
		first[(WeightedRandom{Signals: s}).Order("x", replicas(3))[0].ID]++
	}
	for id, want := range map[peer.ID]float64{"a": 1.0 / 7, "b": 2.0 / 7, "c": 4.0 / 7} {
		// Six standard deviations of a binomial share: a false failure
		// is a one-in-a-billion event.
		tol := 6 * math.Sqrt(want*(1-want)/n)
		if got := first[id] / n; math.Abs(got-want) > tol {
			t.Fatalf("share of %s: %.4f, want %.4f ± %.4f (%v)", id, got, want, tol, first)
		}
	}
	// Undeclared capacity counts as the average of the declared ones.
	s = signals{"a": {Capacity: 3}, "b": {Capacity: 1}}
	first = map[peer.ID]float64{}
	for range n {
		first[(WeightedRandom{Signals: s}).Order("x", replicas(3))[0].ID]++
	}
	if c := first["c"] / n; math.Abs(c-2.0/6) > 0.02 {
		t.Fatalf("share of the undeclared replica %.3f, want 1/3", c)
	}
}

func TestLeastSaturatedIsGreedy(t *testing.T) {
	s := signals{
		"a": {Reported: true, Headroom: 0.2},
		"b": {Reported: true, Headroom: 0.9, Critical: true},
		"c": {Reported: true, Headroom: 0.5},
		"d": {},
	}
	for range 100 {
		got := LeastSaturated{Signals: s}.Order("x", replicas(4))
		want := []peer.ID{"c", "a", "d", "b"}
		for i := range want {
			if got[i].ID != want[i] {
				t.Fatalf("order %v, want %v", got, want)
			}
		}
	}
}

var sinkOrder []peer.AddrInfo

// BenchmarkChoose measures what choosing a replica costs per request,
// each policy against random, over ten replicas.
func BenchmarkChoose(b *testing.B) {
	s := signals{}
	for i, p := range replicas(10) {
		s[p.ID] = Replica{Reported: true, Headroom: float64(i) / 10, Capacity: float64(i + 1), InFlight: int64(i)}
	}
	for _, name := range PolicyNames {
		c, err := Policy(name, s)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			ps := replicas(10)
			b.ReportAllocs()
			for b.Loop() {
				sinkOrder = c.Order("x", ps)
			}
		})
	}
}
