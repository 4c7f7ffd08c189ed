package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/metrics"

	"github.com/jstp-peer/jstp-peer/mesh"
	"github.com/jstp-peer/jstp-peer/node"
	"github.com/jstp-peer/jstp-peer/saturation"
)

// The gossip benchmark: what saturation reports cost each peer of a mesh
// of n, in CPU and in bytes on the gossipsub protocol. n peers run in this
// process on loopback, reporting a steady load (so only heartbeats are
// sent, the common case), at a sampling interval up to 20 times shorter
// than the default (less for large meshes, whose reports would otherwise
// take more CPU than two cores have); the same mesh with reports switched off (one report an
// hour) is the baseline, and the difference, scaled back to the default
// interval, is the cost. Peers in one process share CPU caches and the
// scheduler, so the figure is indicative, not exact.

const gossipWindow = 15 * time.Second

// gossipSpeedup is how many times faster than the default the peers
// report: 20 for small meshes, down to 1 at 200 peers and more.
func gossipSpeedup(n int) int { return max(1, min(20, 200/n)) }

type gossipCost struct {
	cpu   time.Duration // process CPU time over the window
	bytes int64         // gossipsub bytes in and out, all peers
	msgs  uint64        // messages received, all peers
}

func runGossip(ctx context.Context, n int, w io.Writer) error {
	speedup := gossipSpeedup(n)
	interval := saturation.DefaultInterval / time.Duration(speedup)
	fmt.Fprintf(w, "saturation gossip at %d peers: %d peers in one process, reports every %v (heartbeat), %v measured\n",
		n, n, node.HeartbeatEvery*interval, gossipWindow)
	on, err := measureGossip(ctx, n, interval)
	if err != nil {
		return err
	}
	off, err := measureGossip(ctx, n, time.Hour)
	if err != nil {
		return err
	}
	perMinute := float64(time.Minute) / float64(gossipWindow) / float64(speedup) / float64(n)
	cpu := time.Duration(float64(on.cpu-off.cpu) * perMinute)
	bytes := float64(on.bytes-off.bytes) * perMinute
	msgs := float64(on.msgs-off.msgs) * perMinute
	fmt.Fprintf(w, "  with reports:    CPU %v, gossipsub %s, %d messages received (all peers, window)\n", on.cpu.Round(time.Millisecond), kib(on.bytes), on.msgs)
	fmt.Fprintf(w, "  without reports: CPU %v, gossipsub %s, %d messages received\n", off.cpu.Round(time.Millisecond), kib(off.bytes), off.msgs)
	fmt.Fprintf(w, "  per peer per minute at the default interval (%v, heartbeat %v): CPU %v (%.3f%% of one core), %s, %.0f reports received\n",
		saturation.DefaultInterval, node.HeartbeatEvery*saturation.DefaultInterval, cpu.Round(10*time.Microsecond),
		100*float64(cpu)/float64(time.Minute), kib(int64(bytes)), msgs)
	return nil
}

func kib(b int64) string { return fmt.Sprintf("%.1f KiB", float64(b)/1024) }

// measureGossip starts n peers reporting every interval, waits until each
// hears of all the others (or, for the baseline, until the mesh has
// formed), and measures the window.
func measureGossip(ctx context.Context, n int, interval time.Duration) (gossipCost, error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	src := saturation.NewStaticSource(saturation.Sample{
		Disk:   saturation.Space{Free: 50, Total: 100},
		Memory: saturation.Space{Free: 50, Total: 100},
	})
	var peers []*node.Peer
	var counters []*metrics.BandwidthCounter
	defer func() {
		for _, p := range peers {
			p.Close()
		}
	}()
	for i := range n {
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return gossipCost{}, err
		}
		bw := metrics.NewBandwidthCounter()
		cfg := node.PeerConfig{
			Mesh: mesh.Config{
				Key:         key,
				ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
				DHTMode:     mesh.DHTServer,
				Loopback:    true,
				Options:     []libp2p.Option{libp2p.BandwidthReporter(bw)},
			},
			Saturation: node.SaturationConfig{Source: src, Interval: interval},
			Logger:     log,
		}
		if i > 0 {
			// A few bootstrap peers, as a real mesh has.
			for _, b := range peers[:min(len(peers), 3)] {
				for _, a := range b.Host.Addrs() {
					cfg.Mesh.Bootstrap = append(cfg.Mesh.Bootstrap, a.String())
				}
			}
		}
		p, err := node.Start(ctx, cfg)
		if err != nil {
			return gossipCost{}, fmt.Errorf("peer %d: %w", i, err)
		}
		peers = append(peers, p)
		counters = append(counters, bw)
	}
	// Formed: nine peers in ten hear of four in five of the others at
	// once (with reports; reports expire after three heartbeats, so a
	// loaded machine rarely shows all at the same instant), or the
	// gossipsub mesh has settled (without).
	deadline := time.Now().Add(3 * time.Minute)
	for {
		ready := 0
		for _, p := range peers {
			m := p.Metrics()
			if interval < time.Hour && 5*len(m.Saturation.Peers) >= 4*(n-1) {
				ready++
			}
		}
		if interval >= time.Hour || 10*ready >= 9*n {
			break
		}
		if time.Now().After(deadline) {
			return gossipCost{}, fmt.Errorf("after 3 minutes %d of %d peers heard of most others", ready, n)
		}
		select {
		case <-ctx.Done():
			return gossipCost{}, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	if interval >= time.Hour {
		// The baseline's peers settle (DHT, gossipsub mesh) as long as
		// the measured ones did.
		time.Sleep(10 * time.Second)
	}
	snap := func() gossipCost {
		var c gossipCost
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		c.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		for i, bw := range counters {
			for proto, st := range bw.GetBandwidthByProtocol() {
				if strings.Contains(string(proto), "meshsub") {
					c.bytes += st.TotalIn + st.TotalOut
				}
			}
			c.msgs += peers[i].Metrics().Gossip.Received
		}
		return c
	}
	before := snap()
	select {
	case <-ctx.Done():
		return gossipCost{}, ctx.Err()
	case <-time.After(gossipWindow):
	}
	after := snap()
	return gossipCost{cpu: after.cpu - before.cpu, bytes: after.bytes - before.bytes, msgs: after.msgs - before.msgs}, nil
}
