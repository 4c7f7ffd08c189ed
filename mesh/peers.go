package mesh

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/multiformats/go-multiaddr"
)

// PeerInfo describes a connected peer, for the `peers` command and the
// built-in peer resource.
type PeerInfo struct {
	// ID is the peer's id.
	ID peer.ID
	// Addrs are the remote addresses of the open connections to the peer
	// (one per connection; a peer may be reached over TCP and QUIC, or
	// through a relay, at once).
	Addrs []multiaddr.Multiaddr
	// Latency is the moving average of round-trip times to the peer, as
	// recorded by DHT requests and pings; zero when none was measured yet.
	Latency time.Duration
	// Inbound reports that the peer dialled us (on its first connection).
	Inbound bool
	// Agent is the agent version the peer announced through identify
	// ("jstp-peer" for ours); empty until identify completes.
	Agent string
}

// MarshalJSON writes the lowercase keys the other built-in resources use,
// with the latency in milliseconds: {"id","addrs","latencyMs","inbound",
// "agent"}.
func (p PeerInfo) MarshalJSON() ([]byte, error) {
	addrs := make([]string, len(p.Addrs))
	for i, a := range p.Addrs {
		addrs[i] = a.String()
	}
	return json.Marshal(struct {
		ID        string   `json:"id"`
		Addrs     []string `json:"addrs"`
		LatencyMS float64  `json:"latencyMs"`
		Inbound   bool     `json:"inbound"`
		Agent     string   `json:"agent"`
	}{p.ID.String(), addrs, float64(p.Latency) / float64(time.Millisecond), p.Inbound, p.Agent})
}

// Peers returns the peers connected now, ordered by peer id.
func (h *Host) Peers() []PeerInfo {
	ps := h.host.Peerstore()
	ids := h.host.Network().Peers()
	out := make([]PeerInfo, 0, len(ids))
	for _, id := range ids {
		conns := h.host.Network().ConnsToPeer(id)
		if len(conns) == 0 {
			continue // disconnected since Peers() was read
		}
		info := PeerInfo{
			ID:      id,
			Latency: ps.LatencyEWMA(id),
			Inbound: conns[0].Stat().Direction == network.DirInbound,
		}
		for _, c := range conns {
			info.Addrs = append(info.Addrs, c.RemoteMultiaddr())
		}
		if v, err := ps.Get(id, "AgentVersion"); err == nil {
			info.Agent, _ = v.(string)
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b PeerInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Ping measures one round trip to a peer with libp2p's ping protocol,
// dialling it if needed, and records the result in the latency average
// that Peers reports.
func (h *Host) Ping(ctx context.Context, id peer.ID) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	// Cancelling stops the ping goroutine, which otherwise pings forever.
	defer cancel()
	select {
	case res, ok := <-ping.Ping(ctx, h.host, id):
		if !ok {
			return 0, fmt.Errorf("mesh: ping %s: %w", id, ctx.Err())
		}
		if res.Error != nil {
			return 0, fmt.Errorf("mesh: ping %s: %w", id, res.Error)
		}
		return res.RTT, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("mesh: ping %s: %w", id, ctx.Err())
	}
}
