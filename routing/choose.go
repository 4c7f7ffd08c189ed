package routing

import (
	"math/rand/v2"
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
// samples a few replicas at random (DefaultSample) among those not
// reported critical; in the sample, replicas with more requests in flight
// than the sample's median are hot, and the cold one with the lowest
// expected wait wins — its latency times its requests in flight plus one
// (one with no latency measured yet wins first, so new replicas are
// tried). The rest follow in random order, critical replicas last: they
// are still tried when nothing else answers.
//
// Choosing greedily by gossiped headroom alone would send every client to
// the same replica between two reports; random sampling and in-flight
// counts that change with every request keep clients apart.
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
	rand.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
	info := make([]Replica, len(ps))
	for i, p := range ps {
		info[i] = h.Signals.Replica(p.ID)
	}
	// Critical replicas to the back, keeping the random order otherwise.
	idx := make([]int, len(ps))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case info[a].Critical == info[b].Critical:
			return 0
		case info[a].Critical:
			return 1
		}
		return -1
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

// pickCold returns the sampled replica to use: among those with no more
// requests in flight than the sample's median, the lowest expected wait.
func pickCold(sample []int, info []Replica) int {
	rifs := make([]int64, len(sample))
	for k, i := range sample {
		rifs[k] = info[i].InFlight
	}
	slices.Sort(rifs)
	median := rifs[(len(rifs)-1)/2]
	best := -1
	for _, i := range sample {
		if info[i].InFlight > median {
			continue
		}
		if best < 0 || better(info[i], info[best]) {
			best = i
		}
	}
	return best
}

// better compares two cold replicas by the wait a request can expect:
// the replica's latency times the requests ahead of it, plus one (as
// Envoy's and Linkerd's peak-EWMA do). Latency alone would starve a
// replica once it was slow: it gets no requests, so its average never
// learns that it has emptied its queue.
func better(a, b Replica) bool {
	if ca, cb := cost(a), cost(b); ca != cb {
		return ca < cb
	}
	if a.InFlight != b.InFlight {
		return a.InFlight < b.InFlight
	}
	return a.Headroom > b.Headroom
}

func cost(r Replica) float64 {
	return float64(r.Latency) * float64(r.InFlight+1)
}
