package mesh

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
)

// relayCandidates feeds auto-relay when the peer finds itself behind a
// NAT: bootstrap peers first (usually public), then the DHT's routing
// table (server-mode peers, which are publicly reachable). Auto-relay
// checks that a candidate really offers the relay protocol.
func (h *Host) relayCandidates(ctx context.Context, num int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo)
	go func() {
		defer close(out)
		seen := make(map[peer.ID]bool)
		candidates := append([]peer.AddrInfo(nil), h.boot...)
		for _, p := range h.dht.RoutingTable().ListPeers() {
			candidates = append(candidates, peer.AddrInfo{ID: p})
		}
		for _, ai := range candidates {
			if num <= 0 || seen[ai.ID] {
				continue
			}
			seen[ai.ID] = true
			if len(ai.Addrs) == 0 {
				// h.dht.Host, not h.host: auto-relay may ask before
				// libp2p.New has returned and h.host is set.
				ai = h.dht.Host().Peerstore().PeerInfo(ai.ID)
				if len(ai.Addrs) == 0 {
					continue
				}
			}
			select {
			case out <- ai:
				num--
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// bootstrap dials every bootstrap peer concurrently and waits for all the
// dials, each bounded by timeout and all by ctx.
func (h *Host) bootstrap(ctx context.Context, timeout time.Duration) {
	var wg sync.WaitGroup
	for _, ai := range h.boot {
		if ai.ID == h.host.ID() {
			continue // a bootstrap list shared by every peer includes us
		}
		wg.Go(func() {
			dctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			if err := h.host.Connect(dctx, ai); err != nil {
				h.log.Warn("bootstrap peer unreachable", "peer", ai.ID, "addrs", ai.Addrs, "err", err)
				return
			}
			h.log.Debug("bootstrap peer connected", "peer", ai.ID)
		})
	}
	wg.Wait()
}

// mdnsNotifee hands peers found by mDNS to the Host's dialer. mDNS calls
// HandlePeerFound on a goroutine of its own per peer and does not wait for
// it, so the handler only queues (or drops) and returns at once; the
// dialling happens on goroutines the Host owns and waits for in Close.
type mdnsNotifee struct {
	ctx   context.Context
	found chan peer.AddrInfo
	log   *slog.Logger
}

func (n *mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	select {
	case n.found <- ai:
	case <-n.ctx.Done():
	default:
		// mDNS re-announces peers periodically; a dropped one comes back.
		n.log.Debug("mDNS queue full, peer dropped", "peer", ai.ID)
	}
}

func (h *Host) startMDNS(ctx context.Context) error {
	n := &mdnsNotifee{ctx: ctx, found: make(chan peer.AddrInfo, mdnsQueue), log: h.log}
	svc := mdns.NewMdnsService(h.host, MDNSServiceName, n)
	if err := svc.Start(); err != nil {
		return fmt.Errorf("mesh: start mDNS: %w", err)
	}
	h.mdns = svc
	h.wg.Go(func() { h.dialFound(ctx, n.found) })
	return nil
}

// dialFound dials peers found on the LAN, at most mdnsDialers at a time,
// until ctx ends.
func (h *Host) dialFound(ctx context.Context, found <-chan peer.AddrInfo) {
	sem := make(chan struct{}, mdnsDialers)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		var ai peer.AddrInfo
		select {
		case ai = <-found:
		case <-ctx.Done():
			return
		}
		if ai.ID == h.host.ID() || h.host.Network().Connectedness(ai.ID) == network.Connected {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			dctx, cancel := context.WithTimeout(ctx, mdnsDialTimeout)
			defer cancel()
			if err := h.host.Connect(dctx, ai); err != nil {
				h.log.Debug("LAN peer unreachable", "peer", ai.ID, "err", err)
				return
			}
			h.log.Info("LAN peer connected", "peer", ai.ID)
		})
	}
}
