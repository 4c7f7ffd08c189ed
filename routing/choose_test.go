package routing

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

type signals map[peer.ID]Replica

func (s signals) Replica(id peer.ID) Replica { return s[id] }

func replicas(n int) []peer.AddrInfo {
	out := make([]peer.AddrInfo, n)
	for i := range out {
		out[i] = peer.AddrInfo{ID: peer.ID(rune('a' + i))}
	}
	return out
}

func TestHotColdPutsCriticalLast(t *testing.T) {
	s := signals{"a": {Reported: true, Critical: true}, "b": {Reported: true}, "c": {Reported: true}}
	for range 200 {
		got := HotCold{Signals: s}.Order("x", replicas(3))
		if got[2].ID != "a" {
			t.Fatalf("order %v: the critical replica is not last", got)
		}
	}
	// With nothing else, a critical replica is still tried.
	if got := (HotCold{Signals: signals{"a": {Critical: true}}}).Order("x", replicas(1)); len(got) != 1 {
		t.Fatalf("order %v", got)
	}
}

func TestHotColdPrefersCold(t *testing.T) {
	// With every replica in the sample: a is hot (loaded above the
	// median), b and c are cold; c has fewer requests in flight per unit
	// of capacity, though more in all.
	s := signals{
		"a": {InFlight: 50, Capacity: 1, Latency: time.Microsecond},
		"b": {InFlight: 2, Capacity: 1, Latency: time.Millisecond},
		"c": {InFlight: 3, Capacity: 4, Latency: 9 * time.Millisecond},
	}
	for range 200 {
		if got := (HotCold{Signals: s, Sample: 3}).Order("x", replicas(3)); got[0].ID != "c" {
			t.Fatalf("order %v, want c first", got)
		}
	}
	// Equally loaded, the faster one wins: at low load, the nearest.
	s["b"] = Replica{InFlight: 3, Capacity: 4, Latency: time.Millisecond}
	for range 200 {
		if got := (HotCold{Signals: s, Sample: 3}).Order("x", replicas(3)); got[0].ID != "b" {
			t.Fatalf("order %v, want b first", got)
		}
	}
	// A replica never measured is tried first: new replicas get traffic.
	s["d"] = Replica{Capacity: 1}
	for range 200 {
		if got := (HotCold{Signals: s, Sample: 4}).Order("x", replicas(4)); got[0].ID != "d" {
			t.Fatalf("order %v, want d first", got)
		}
	}
}

// The sample is drawn by capacity: a replica with a quarter of the
// capacity of the others is rarely in it.
func TestHotColdSamplesByCapacity(t *testing.T) {
	s := signals{"a": {Capacity: 1}, "b": {Capacity: 4}, "c": {Capacity: 4}, "d": {Capacity: 4}, "e": {Capacity: 4}}
	first := map[peer.ID]int{}
	for range 4000 {
		first[(HotCold{Signals: s, Sample: 1}).Order("x", replicas(5))[0].ID]++
	}
	// Expected shares: a 1/17, the others 4/17 each.
	if first["a"] > 4000/17*2 || first["a"] < 4000/17/2 {
		t.Fatalf("first choices %v: a, a quarter of the others' capacity, chosen %d of 4000", first, first["a"])
	}
}

// Sampling spreads choices: with equal replicas none is always first.
func TestHotColdSpreads(t *testing.T) {
	s := signals{}
	first := map[peer.ID]int{}
	for range 3000 {
		first[(HotCold{Signals: s}).Order("x", replicas(4))[0].ID]++
	}
	for _, id := range []peer.ID{"a", "b", "c", "d"} {
		if first[id] < 300 {
			t.Fatalf("first choices %v: %s was chosen %d times of 3000", first, id, first[id])
		}
	}
}

// A replica whose report has not come yet counts as the average
// capacity, not as 1: otherwise replicas that declare more always win.
func TestHotColdUnreportedCountsAsAverage(t *testing.T) {
	s := signals{"a": {Capacity: 2, Latency: time.Millisecond}, "b": {Capacity: 2, Latency: time.Millisecond}, "c": {}}
	for range 100 {
		if got := (HotCold{Signals: s, Sample: 3}).Order("x", replicas(3)); got[0].ID != "c" {
			t.Fatalf("order %v: the unmeasured, unreported replica is not tried first", got)
		}
	}
}
