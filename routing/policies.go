package routing

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Policy names, for configuration (`jstp-peer up --balance`) and
// simulations that compare them.
const (
	PolicyHotCold        = "hot-cold"
	PolicyRandom         = "random"
	PolicyRoundRobin     = "round-robin"
	PolicyWeightedRandom = "weighted-random"
	PolicyLeastSaturated = "least-saturated"

	// DefaultPolicy is what a peer uses unless told otherwise.
	DefaultPolicy = PolicyHotCold
)

// PolicyNames lists the policies Policy knows, the default first.
var PolicyNames = []string{PolicyHotCold, PolicyRandom, PolicyRoundRobin, PolicyWeightedRandom, PolicyLeastSaturated}

// Policy returns the Chooser named name, reading replicas' signals from
// s (the policies that need none ignore it). An unknown name is an error
// that lists the known ones.
func Policy(name string, s Signals) (Chooser, error) {
	switch name {
	case PolicyHotCold, "":
		return HotCold{Signals: s}, nil
	case PolicyRandom:
		return Random{}, nil
	case PolicyRoundRobin:
		return &RoundRobin{}, nil
	case PolicyWeightedRandom:
		return WeightedRandom{Signals: s}, nil
	case PolicyLeastSaturated:
		return LeastSaturated{Signals: s}, nil
	}
	return nil, fmt.Errorf("routing: unknown balance policy %q (known: %s)", name, strings.Join(PolicyNames, ", "))
}

// RoundRobin takes the replicas of each name in turn, in the order of
// their peer ids, so that the rotation does not depend on the order the
// DHT returned them in. It ignores load: a baseline, and what clients
// that know nothing of their replicas do.
type RoundRobin struct {
	next sync.Map // name → *atomic.Uint64
}

// Order implements Chooser.
func (r *RoundRobin) Order(name string, ps []peer.AddrInfo) []peer.AddrInfo {
	if len(ps) < 2 {
		return ps
	}
	slices.SortFunc(ps, func(a, b peer.AddrInfo) int { return cmp.Compare(a.ID, b.ID) })
	c, ok := r.next.Load(name)
	if !ok {
		c, _ = r.next.LoadOrStore(name, new(atomic.Uint64))
	}
	k := int((c.(*atomic.Uint64).Add(1) - 1) % uint64(len(ps)))
	out := make([]peer.AddrInfo, 0, len(ps))
	out = append(out, ps[k:]...)
	return append(out, ps[:k]...)
}

// WeightedRandom picks replicas at random in proportion to the capacity
// they declare (Replica.Capacity; a replica that declares none counts as
// the average of those that do, or 1), so a replica twice as big gets
// twice the requests. It ignores current load, as static weights do
// (Consul, weighted DNS).
type WeightedRandom struct {
	Signals Signals
}

// Order implements Chooser: a weighted shuffle (Efraimidis–Spirakis:
// each replica gets the key u^(1/w), the largest first).
func (w WeightedRandom) Order(_ string, ps []peer.AddrInfo) []peer.AddrInfo {
	if len(ps) < 2 || w.Signals == nil {
		return Random{}.Order("", ps)
	}
	info := make([]Replica, len(ps))
	for i, p := range ps {
		info[i] = w.Signals.Replica(p.ID)
	}
	keys := weightedKeys(info)
	return orderBy(ps, func(a, b int) int { return cmp.Compare(keys[b], keys[a]) })
}

// fillCapacity gives the replicas in info that declare no capacity the
// average of those that do (1 if none does).
func fillCapacity(info []Replica) {
	var sum float64
	known := 0
	for _, r := range info {
		if r.Capacity > 0 {
			sum += r.Capacity
			known++
		}
	}
	fill := 1.0
	if known > 0 {
		fill = sum / float64(known)
	}
	for i := range info {
		if info[i].Capacity <= 0 {
			info[i].Capacity = fill
		}
	}
}

// weightedKeys fills in the capacities info lacks (fillCapacity) and
// draws, for a weighted shuffle of the replicas, each one's key u^(1/w)
// (Efraimidis–Spirakis), the largest first, where w is the capacity.
func weightedKeys(info []Replica) []float64 {
	fillCapacity(info)
	keys := make([]float64, len(info))
	for i, r := range info {
		keys[i] = math.Pow(1-rand.Float64(), 1/r.Capacity)
	}
	return keys
}

// LeastSaturated sends each request to the replica with the most
// headroom in its last report (unreported replicas after reported ones,
// critical ones last). It is the greedy policy the documentation warns
// about: between two reports every client sends to the same replica. It
// exists to measure that against the others.
type LeastSaturated struct {
	Signals Signals
}

// Order implements Chooser.
func (l LeastSaturated) Order(_ string, ps []peer.AddrInfo) []peer.AddrInfo {
	if len(ps) < 2 || l.Signals == nil {
		return ps
	}
	rand.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
	info := make([]Replica, len(ps))
	for i, p := range ps {
		info[i] = l.Signals.Replica(p.ID)
	}
	rank := func(r Replica) int {
		switch {
		case r.Critical:
			return 2
		case !r.Reported:
			return 1
		}
		return 0
	}
	return orderBy(ps, func(a, b int) int {
		if c := cmp.Compare(rank(info[a]), rank(info[b])); c != 0 {
			return c
		}
		return cmp.Compare(info[b].Headroom, info[a].Headroom)
	})
}

// orderBy returns ps sorted (stably) by a comparison of their indices.
func orderBy(ps []peer.AddrInfo, less func(a, b int) int) []peer.AddrInfo {
	idx := make([]int, len(ps))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, less)
	out := make([]peer.AddrInfo, len(ps))
	for k, i := range idx {
		out[k] = ps[i]
	}
	return out
}
