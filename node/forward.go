package node

import (
	"context"
	"errors"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/mesh"
	"github.com/jstp-peer/jstp-peer/routing"
)

// Route implements Forwarder for a peer: routing says where a host element
// leads, mesh reaches it.
func (p *Peer) Route(ctx context.Context, to dispatch.Host) (mesh.Link, error) {
	r, err := p.router.Resolve(ctx, to)
	if err != nil {
		return nil, err
	}
	if r.Target.Kind == routing.Classic {
		return p.dialer.Dial(ctx, r.Target.Transport, r.Target.Addr)
	}
	if r.Target.Kind == routing.Name && p.sat != nil {
		p.sat.follow(r.Target.Name)
	}
	var last error
	for _, ai := range r.Peers {
		l, err := p.toPeer(ctx, ai)
		if err == nil || errors.Is(err, ErrLocalHop) {
			return l, err
		}
		last = err
		if r.Target.Kind == routing.Name {
			p.Node.log.Info("replica unreachable; trying the next", "name", r.Target.Name, "peer", ai.ID, "err", err)
		}
	}
	if r.Target.Kind == routing.Peer {
		return nil, last
	}
	return nil, dispatch.Errorf(dispatch.ErrNotGateway, "no provider of %q could be reached: %w", r.Target.Name, last)
}

// RouteAgain implements Retrier: the replicas of the name to, in the
// chooser's order, but for those already tried.
func (p *Peer) RouteAgain(ctx context.Context, to dispatch.Host, tried []string) (mesh.Link, error) {
	r, err := p.router.Resolve(ctx, to)
	if err != nil {
		return nil, err
	}
	for _, ai := range r.Peers {
		if slices.Contains(tried, ai.ID.String()) || ai.ID == p.Host.ID() {
			continue
		}
		if l, err := p.toPeer(ctx, ai); err == nil {
			return l, nil
		}
	}
	return nil, dispatch.Errorf(dispatch.ErrUnavailable, "no other replica of %q could be reached", to)
}

// toPeer returns the session with a peer, connecting first (and finding
// its addresses when none are known).
func (p *Peer) toPeer(ctx context.Context, ai peer.AddrInfo) (mesh.Link, error) {
	if ai.ID == p.Host.ID() {
		// Ourselves, named by a route the engine could not tell was ours
		// (a multiaddr, a name we provide).
		return nil, ErrLocalHop
	}
	if s, ok := p.streams.Open(ai.ID); ok {
		return s, nil
	}
	if len(ai.Addrs) == 0 && len(p.Host.LibP2P().Peerstore().Addrs(ai.ID)) == 0 {
		found, err := p.Names.ResolvePeer(ctx, ai.ID)
		if err != nil {
			if errors.Is(err, dispatch.ErrNotFound) {
				return nil, dispatch.Errorf(dispatch.ErrNotFound, "peer %s is not connected and the DHT knows no address for it", ai.ID)
			}
			return nil, err
		}
		ai = found
	}
	if err := p.streams.Connect(ctx, ai); err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		return nil, dispatch.Errorf(dispatch.ErrNotGateway, "peer %s unreachable: %s", ai.ID, oneLine(rootCause(err).Error()))
	}
	return p.streams.Session(ai.ID)
}
