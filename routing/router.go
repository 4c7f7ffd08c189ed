package routing

import (
	"context"
	"math/rand/v2"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// Chooser orders the replicas of a service name: a dispatch goes to the
// first, and to the next when one cannot be reached. It is where replica
// policies plug in (random today; saturation-aware choice builds on the
// same interface). Order may reorder candidates in place and must be safe
// for concurrent use.
type Chooser interface {
	Order(name string, candidates []peer.AddrInfo) []peer.AddrInfo
}

// Random is the Chooser that picks replicas uniformly at random.
type Random struct{}

// Order shuffles the candidates.
func (Random) Order(_ string, ps []peer.AddrInfo) []peer.AddrInfo {
	rand.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
	return ps
}

// Route is where a host element leads: a classic engine (Target), or
// peers to try in order (one for a peer id or multiaddr, the replicas of a
// name).
type Route struct {
	Target Target
	Peers  []peer.AddrInfo
}

// Router turns a host element into a Route: Classify, then names through
// Names and the Chooser.
type Router struct {
	names   *Names
	chooser Chooser

	// classified caches Classify for host elements that do not change
	// meaning: peer ids, multiaddrs and classic addresses. Parsing a peer
	// id is a base58 decode and a multihash check, on every dispatch
	// otherwise. Bounded: cleared when it reaches maxClassified.
	mu         sync.Mutex
	classified map[string]Target
}

const maxClassified = 4096

// NewRouter returns a Router; names may be nil (names then do not
// resolve), chooser nil means Random.
func NewRouter(names *Names, chooser Chooser) *Router {
	if chooser == nil {
		chooser = Random{}
	}
	return &Router{names: names, chooser: chooser, classified: map[string]Target{}}
}

// Resolve says where h leads. A name no peer provides is an error wrapping
// dispatch.ErrNotFound; a malformed element one wrapping
// dispatch.ErrBadDispatch.
func (r *Router) Resolve(ctx context.Context, h dispatch.Host) (Route, error) {
	t, err := r.classify(h)
	if err != nil {
		return Route{}, err
	}
	switch t.Kind {
	case Classic:
		return Route{Target: t}, nil
	case Peer:
		return Route{Target: t, Peers: []peer.AddrInfo{t.Peer}}, nil
	}
	if r.names == nil {
		return Route{}, dispatch.Errorf(dispatch.ErrNotFound, "cannot resolve %q: no DHT", t.Name)
	}
	providers, err := r.names.Resolve(ctx, t.Name)
	if err != nil {
		return Route{}, err
	}
	return Route{Target: t, Peers: r.chooser.Order(t.Name, providers)}, nil
}

func (r *Router) classify(h dispatch.Host) (Target, error) {
	if h.IsTuple() {
		return Classify(h)
	}
	r.mu.Lock()
	t, ok := r.classified[h.Name]
	r.mu.Unlock()
	if ok {
		return t, nil
	}
	t, err := Classify(h)
	if err != nil || t.Kind == Name {
		return t, err
	}
	r.mu.Lock()
	if len(r.classified) >= maxClassified {
		clear(r.classified)
	}
	r.classified[h.Name] = t
	r.mu.Unlock()
	return t, nil
}
