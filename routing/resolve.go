package routing

// Resolving names: the cache, lookups shared by concurrent callers, and
// finding a peer's addresses.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// neighbourWait bounds how long a lookup waits for the DHT's first
// neighbour: long enough for a peer that has just started to finish
// meeting its bootstrap peers, short enough that a peer that is really
// alone answers "not found" promptly.
const neighbourWait = 3 * time.Second

// awaitNeighbours gives a peer that has just started the moment it needs
// to fill its routing table: a lookup from an empty table fails at once,
// and a negative answer would then be cached.
func (n *Names) awaitNeighbours(ctx context.Context) {
	if n.dht.RoutingTable().Size() > 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, neighbourWait)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for n.dht.RoutingTable().Size() == 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// Resolve returns the peers that provide name, sorted by peer id. This
// peer is among them, with its own addresses, if it provides the name
// itself: callers should recognise their own id and process locally.
//
// Results come from the cache when fresh: found providers for CacheTTL
// (refreshed in the background once older than half of it, one refresh
// per name at a time), "not found" for NegativeTTL. Otherwise Resolve
// waits for a DHT lookup, bounded by ctx and LookupTimeout; concurrent
// Resolves of one name share one lookup. When no peer provides the name
// the error wraps dispatch.ErrNotFound.
//
// Provider records outlive a provider that stopped (up to 48 h), so a
// listed provider may no longer serve the name, or be gone.
func (n *Names) Resolve(ctx context.Context, name string) ([]peer.AddrInfo, error) {
	if name == "" {
		return nil, errors.New("routing: empty service name")
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, ErrNamesClosed
	}
	if e, ok := n.cache[name]; ok {
		age := n.cfg.now().Sub(e.at)
		switch {
		case e.negative && age < n.cfg.NegativeTTL:
			n.mu.Unlock()
			n.negHits.Add(1)
			return nil, notFound(name)
		case !e.negative && age < n.cfg.CacheTTL:
			if age >= n.cfg.CacheTTL/2 {
				// Refresh ahead of expiry so that busy names never
				// make a caller wait for the DHT.
				if _, started := n.startLookupLocked(name); started {
					n.refreshes.Add(1)
				}
			}
			providers := slices.Clone(e.providers)
			n.mu.Unlock()
			n.hits.Add(1)
			return providers, nil
		}
	}
	f, _ := n.startLookupLocked(name)
	n.mu.Unlock()

	select {
	case <-f.done:
		return slices.Clone(f.providers), f.err
	case <-ctx.Done():
		// The lookup goes on for whoever else waits, and fills the
		// cache.
		return nil, fmt.Errorf("routing: resolve %q: %w", name, ctx.Err())
	}
}

func notFound(name string) error {
	return dispatch.Errorf(dispatch.ErrNotFound, "no peer provides %q", name)
}

// startLookupLocked returns the lookup in flight for name, starting one
// if there is none (started reports which). n.mu must be held.
func (n *Names) startLookupLocked(name string) (f *flight, started bool) {
	if f, ok := n.flights[name]; ok {
		return f, false
	}
	f = &flight{done: make(chan struct{})}
	if n.closed {
		f.err = ErrNamesClosed
		close(f.done)
		return f, false
	}
	n.flights[name] = f
	n.lookups.Add(1)
	n.wg.Go(func() {
		providers, err := n.lookup(name)
		n.mu.Lock()
		delete(n.flights, name)
		if !errors.Is(err, ErrNamesClosed) {
			n.storeLocked(name, providers)
		}
		n.mu.Unlock()
		f.providers, f.err = providers, err
		close(f.done)
	})
	return f, true
}

// lookup asks the DHT for the providers of name.
func (n *Names) lookup(name string) ([]peer.AddrInfo, error) {
	key, err := NameCID(name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.LookupTimeout)
	defer cancel()
	n.awaitNeighbours(ctx)
	found := make(map[peer.ID]peer.AddrInfo)
	// Read until the channel closes: the DHT stops on its own after
	// MaxProviders providers, at the end of the walk, or at the timeout,
	// and stalls if nobody reads.
	for ai := range n.dht.FindProvidersAsync(ctx, key, n.cfg.MaxProviders) {
		prev := found[ai.ID]
		prev.ID = ai.ID
		for _, a := range ai.Addrs {
			if !slices.ContainsFunc(prev.Addrs, a.Equal) {
				prev.Addrs = append(prev.Addrs, a)
			}
		}
		found[ai.ID] = prev
	}
	if n.ctx.Err() != nil {
		return nil, ErrNamesClosed
	}
	n.mu.Lock()
	_, providing := n.provided[name]
	n.mu.Unlock()
	if providing {
		// Our record may not have come back (the lookup stops at
		// MaxProviders) and carries no addresses when it does.
		found[n.self] = peer.AddrInfo{ID: n.self, Addrs: n.dht.Host().Addrs()}
	} else {
		// The local record outlives Unprovide; it is not true any
		// more.
		delete(found, n.self)
	}
	if len(found) == 0 {
		if err := ctx.Err(); err != nil {
			n.log.Debug("name lookup timed out", "name", name, "timeout", n.cfg.LookupTimeout)
		}
		return nil, notFound(name)
	}
	providers := make([]peer.AddrInfo, 0, len(found))
	for _, ai := range found {
		providers = append(providers, ai)
	}
	slices.SortFunc(providers, func(a, b peer.AddrInfo) int { return cmp.Compare(a.ID, b.ID) })
	return providers, nil
}

// storeLocked caches a lookup's result (nil providers: not found), making
// room first if the cache is full. n.mu must be held.
func (n *Names) storeLocked(name string, providers []peer.AddrInfo) {
	now := n.cfg.now()
	if _, ok := n.cache[name]; !ok && len(n.cache) >= n.cfg.MaxCacheEntries {
		for k, e := range n.cache {
			ttl := n.cfg.CacheTTL
			if e.negative {
				ttl = n.cfg.NegativeTTL
			}
			if now.Sub(e.at) >= ttl {
				delete(n.cache, k)
			}
		}
		// Still full: evict arbitrary entries; map order is random
		// enough for a cache this simple.
		for k := range n.cache {
			if len(n.cache) < n.cfg.MaxCacheEntries {
				break
			}
			delete(n.cache, k)
		}
	}
	n.cache[name] = &cacheEntry{providers: providers, at: now, negative: len(providers) == 0}
}

// ResolvePeer returns the addresses of a peer: this peer's own for its
// own id, else the peerstore's when it knows any, else a DHT lookup
// bounded by ctx and LookupTimeout. An unknown peer gives an error
// wrapping dispatch.ErrNotFound.
func (n *Names) ResolvePeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
	if err := id.Validate(); err != nil {
		return peer.AddrInfo{}, fmt.Errorf("routing: peer id: %w", err)
	}
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return peer.AddrInfo{}, ErrNamesClosed
	}
	h := n.dht.Host()
	if id == n.self {
		return peer.AddrInfo{ID: id, Addrs: h.Addrs()}, nil
	}
	if ai := h.Peerstore().PeerInfo(id); len(ai.Addrs) > 0 {
		return ai, nil
	}
	if ai, ok := n.connAddrs(id); ok {
		return ai, nil
	}
	lctx, cancel := context.WithTimeout(ctx, n.cfg.LookupTimeout)
	defer cancel()
	stop := context.AfterFunc(n.ctx, cancel)
	defer stop()
	n.awaitNeighbours(lctx)
	ai, err := n.dht.FindPeer(lctx, id)
	if err == nil && len(ai.Addrs) > 0 {
		return ai, nil
	}
	// A lookup that met the peer itself first, with no address to dial
	// it, ends there even though its neighbours' answers taught the
	// peerstore where it is.
	if ai := h.Peerstore().PeerInfo(id); len(ai.Addrs) > 0 {
		return ai, nil
	}
	// FindPeer answers from the peerstore when the peer is connected,
	// which it may have become during the lookup, before identify has
	// told us its listen addresses.
	if ai, ok := n.connAddrs(id); ok {
		return ai, nil
	}
	if ctx.Err() != nil {
		return peer.AddrInfo{}, fmt.Errorf("routing: resolve peer %s: %w", id, ctx.Err())
	}
	if err == nil {
		err = errors.New("no addresses")
	}
	// Anything else (no such peer, empty routing table, our lookup
	// timeout) means the peer cannot be reached from here: not found.
	n.log.Debug("peer not found", "peer", id, "err", err)
	return peer.AddrInfo{}, dispatch.Errorf(dispatch.ErrNotFound, "peer %s: no address here or in the DHT", id)
}

// connAddrs returns the remote addresses of the open connections to id.
// They matter when the peerstore has none (expired, or not yet learnt
// through identify): a connection's address is one known to work.
func (n *Names) connAddrs(id peer.ID) (peer.AddrInfo, bool) {
	conns := n.dht.Host().Network().ConnsToPeer(id)
	if len(conns) == 0 {
		return peer.AddrInfo{}, false
	}
	ai := peer.AddrInfo{ID: id}
	for _, c := range conns {
		ai.Addrs = append(ai.Addrs, c.RemoteMultiaddr())
	}
	return ai, true
}

// Learn adds id to the cached providers of name when the cache holds a
// list for it without id: a replica that says it provides the name (in
// its signed saturation report) is used from its first report, not from
// the next DHT lookup. The list's age is kept, so the next lookup still
// comes when it would have. Nothing is cached for a name not resolved
// yet; the DHT remains the source of the list.
func (n *Names) Learn(name string, id peer.ID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e, ok := n.cache[name]
	if !ok || e.negative || len(e.providers) >= n.cfg.MaxProviders {
		return
	}
	for _, p := range e.providers {
		if p.ID == id {
			return
		}
	}
	e.providers = append(slices.Clip(e.providers), peer.AddrInfo{ID: id})
}
