package simulations

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/routing"
)

// PolicyOracle is the name of the reference policy: not something a
// peer can run, but the best a policy with full, instant knowledge of
// every replica's queue could do.
const PolicyOracle = "oracle"

// switchChooser is the Chooser of a client peer in a scenario that
// compares policies on one mesh: it forwards to the policy of the
// current phase, so every policy meets the same peers, links and seed.
type switchChooser struct {
	cur atomic.Pointer[chooserBox]
}

type chooserBox struct{ c routing.Chooser }

func newSwitchChooser() *switchChooser {
	s := &switchChooser{}
	s.set(routing.Random{})
	return s
}

func (s *switchChooser) set(c routing.Chooser) { s.cur.Store(&chooserBox{c}) }

// Order implements routing.Chooser.
func (s *switchChooser) Order(name string, ps []peer.AddrInfo) []peer.AddrInfo {
	return s.cur.Load().c.Order(name, ps)
}

// Oracle is the full-information policy: each request goes to the
// replica with the fewest requests per worker assigned to it and not yet
// finished, counted across all clients at the moment of choice (join the
// shortest queue, weighted by capacity). It is the yardstick the peers'
// policies are measured against; no real client knows that much.
type Oracle struct {
	mu       sync.Mutex
	replicas map[peer.ID]*oracleReplica
}

type oracleReplica struct {
	capacity float64
	assigned int
}

// NewOracle returns an oracle that knows nothing yet; Track tells it of
// each replica.
func NewOracle() *Oracle { return &Oracle{replicas: map[peer.ID]*oracleReplica{}} }

// Track registers a replica and returns the function its handler calls
// when a request leaves it.
func (o *Oracle) Track(id peer.ID, capacity int) (done func()) {
	o.mu.Lock()
	r := &oracleReplica{capacity: float64(capacity)}
	o.replicas[id] = r
	o.mu.Unlock()
	return func() {
		o.mu.Lock()
		if r.assigned > 0 {
			r.assigned--
		}
		o.mu.Unlock()
	}
}

// Reset forgets assignments, between phases that drained every queue.
func (o *Oracle) Reset() {
	o.mu.Lock()
	for _, r := range o.replicas {
		r.assigned = 0
	}
	o.mu.Unlock()
}

// Order implements routing.Chooser.
func (o *Oracle) Order(_ string, ps []peer.AddrInfo) []peer.AddrInfo {
	if len(ps) < 2 {
		return ps
	}
	rand.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
	o.mu.Lock()
	defer o.mu.Unlock()
	best, bestScore := -1, 0.0
	for i, p := range ps {
		r, ok := o.replicas[p.ID]
		if !ok {
			continue
		}
		score := float64(r.assigned+1) / r.capacity
		if best < 0 || score < bestScore {
			best, bestScore = i, score
		}
	}
	if best < 0 {
		return ps
	}
	o.replicas[ps[best].ID].assigned++
	ps[0], ps[best] = ps[best], ps[0]
	return ps
}
