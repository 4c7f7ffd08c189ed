package routing

import (
	"cmp"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Replica is what a Chooser knows of one replica of a name: what it
// gossips (package saturation) and what this peer measures per request.
type Replica struct {
	// Reported is true when a fresh saturation report of the replica is
	// known; Critical and Headroom come from it.
	Reported bool
	Critical bool
	Headroom float64
	// Capacity is what the replica declares it can do relative to the
	// others (zero: undeclared).
	Capacity float64
	// InFlight is the replica's requests in flight as best known here:
	// the larger of this peer's own requests waiting for it and the
	// count the replica last gave.
	InFlight int64
	// Latency is the moving average of the replica's answers as measured
	// here; zero when it has not answered yet.
	Latency time.Duration
}

// Signals tells a Chooser about replicas. The engine implements it; it
// must be safe for concurrent use and cheap, as it is asked per request.
type Signals interface {
	Replica(id peer.ID) Replica
}

// DefaultSample is how many replicas HotCold compares per request.
const DefaultSample = 3

// HotCold is the default Chooser, after Prequal (NSDI 2024): gossip
// narrows the candidates, fresh per-request signals pick. Each request
// samples a few replicas (DefaultSample) among those not reported
// critical, drawn at random in proportion to the capacity they declare
// (a uniform sample offers the small replicas as often as the big ones).
// In the sample, replicas loaded above the sample's median are hot, and
// the coldest of the others wins: the fewest requests in flight per unit
// of capacity, so that a replica twice as big takes twice the queue;
// between equally loaded replicas, the one that answers faster (at low
// load, where every queue is empty, the nearest replica serves). The
// rest follow in the sampled order, critical replicas last: they are
// still tried when nothing else answers.
//
// Choosing greedily by gossiped headroom alone would send every client to
// the same replica between two reports; sampling and in-flight counts
// that change with every request keep clients apart.
type HotCold struct {
	Signals Signals
	Sample  int
}

// Order implements Chooser.
func (h HotCold) Order(_ string, ps []peer.AddrInfo) []peer.AddrInfo {
	if len(ps) < 2 || h.Signals == nil {
		return ps
	}
	d := h.Sample
	if d <= 0 {
		d = DefaultSample
	}
	info := make([]Replica, len(ps))
	for i, p := range ps {
		info[i] = h.Signals.Replica(p.ID)
	}
	// A replica whose report has not come yet counts as the average of
	// the others, in the sample's draw and in its load alike: counted as
	// 1 against replicas that declare more, it would never be chosen
	// until its report came.
	keys := weightedKeys(info)
	// Critical replicas to the back, in the weighted random order
	// otherwise: the sample is its first d healthy replicas.
	idx := make([]int, len(ps))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		if info[a].Critical != info[b].Critical {
			if info[a].Critical {
				return 1
			}
			return -1
		}
		return cmp.Compare(keys[b], keys[a])
	})
	healthy := 0
	for _, i := range idx {
		if !info[i].Critical {
			healthy++
		}
	}
	if healthy > 0 {
		sample := idx[:min(d, healthy)]
		best := pickCold(sample, info)
		// The winner first; the others keep their places.
		for k, i := range idx {
			if i == best {
				copy(idx[1:k+1], idx[:k])
				idx[0] = best
				break
			}
		}
	}
	out := make([]peer.AddrInfo, len(ps))
	for k, i := range idx {
		out[k] = ps[i]
	}
	return out
}

// pickCold returns the sampled replica to use: among those loaded no
// more than the sample's median, the least loaded.
func pickCold(sample []int, info []Replica) int {
	loads := make([]float64, len(sample))
	for k, i := range sample {
		loads[k] = load(info[i])
	}
	slices.Sort(loads)
	median := loads[(len(loads)-1)/2]
	best := -1
	for _, i := range sample {
		if load(info[i]) > median {
			continue
		}
		if best < 0 || better(info[i], info[best]) {
			best = i
		}
	}
	return best
}

// better compares two cold replicas: by load, then by latency (a replica
// not measured yet first, so new replicas are tried), then by the
// headroom they report.
//
// Load, not latency, decides first. A latency average is as old as the
// replica's last answers here, and a replica that was once slow gets no
// requests to show it has emptied its queue; the requests in flight
// change with every request this peer sends (Replica.InFlight).
func better(a, b Replica) bool {
	if la, lb := load(a), load(b); la != lb {
		return la < lb
	}
	if a.Latency != b.Latency {
		return a.Latency < b.Latency
	}
	return a.Headroom > b.Headroom
}

// load is a replica's requests in flight, counting the one about to be
// sent, per unit of its capacity (filled in by weightedKeys): the queue a
// request joins, in the replica's own time.
func load(r Replica) float64 {
	c := r.Capacity
	if c <= 0 {
		c = 1
	}
	return float64(r.InFlight+1) / c
}
