package mesh

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/jstp-peer/jstp-peer/internal/poll"
)

func testKey(t testing.TB) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testConfig is a loopback peer in DHT server mode: the shape of every
// in-process test mesh.
func testConfig(t testing.TB) Config {
	return Config{
		Key:         testKey(t),
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		DHTMode:     DHTServer,
		Loopback:    true,
		Logger:      testLogger(t),
	}
}

func newTestHost(t testing.TB, cfg Config) *Host {
	t.Helper()
	h, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

func addrStrings(addrs []multiaddr.Multiaddr) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}

func TestBootstrapConnects(t *testing.T) {
	a := newTestHost(t, testConfig(t))
	cfg := testConfig(t)
	cfg.Bootstrap = addrStrings(a.Addrs())
	b := newTestHost(t, cfg)

	// New returns after the bootstrap dials, so b is already connected.
	if got := b.LibP2P().Network().Connectedness(a.ID()); got != network.Connected {
		t.Fatalf("b -> a connectedness = %v after New", got)
	}
	poll.Until(t, 5*time.Second, "a to see b", func() bool {
		return a.LibP2P().Network().Connectedness(b.ID()) == network.Connected
	})
	// Both are DHT servers under /jstp, so each lands in the other's
	// routing table once identify has run.
	poll.Until(t, 5*time.Second, "DHT routing tables to fill", func() bool {
		return a.DHT().RoutingTable().Find(b.ID()) != "" && b.DHT().RoutingTable().Find(a.ID()) != ""
	})
	if !slices.Contains(a.LibP2P().Mux().Protocols(), "/jstp/kad/1.0.0") {
		t.Errorf("protocols %v lack /jstp/kad/1.0.0", a.LibP2P().Mux().Protocols())
	}
	for _, addr := range a.Addrs() {
		if _, err := addr.ValueForProtocol(multiaddr.P_P2P); err != nil {
			t.Errorf("Addrs() entry %s lacks /p2p/", addr)
		}
	}
}

func TestBootstrapUnreachableIsNotFatal(t *testing.T) {
	// A peer id nobody listens for, on a port nobody listens on.
	ghost, err := peer.IDFromPrivateKey(testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg := testConfig(t)
	cfg.Bootstrap = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, ghost)}
	cfg.BootstrapTimeout = 2 * time.Second
	h := newTestHost(t, cfg)
	if n := len(h.Peers()); n != 0 {
		t.Fatalf("%d peers, want 0", n)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := map[string]func(*Config){
		"no key":            func(c *Config) { c.Key = nil },
		"bootstrap no /p2p": func(c *Config) { c.Bootstrap = []string{"/ip4/127.0.0.1/tcp/4033"} },
		"bootstrap garbage": func(c *Config) { c.Bootstrap = []string{"not a multiaddr"} },
		"announce garbage":  func(c *Config) { c.AnnounceAddrs = []string{"nope"} },
		"bad listen":        func(c *Config) { c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/notaport"} },
		"bad DHT mode":      func(c *Config) { c.DHTMode = 42 },
		"conn high < low":   func(c *Config) { c.ConnLow, c.ConnHigh = 50, 10 },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t)
			mutate(&cfg)
			h, err := New(t.Context(), cfg)
			if err == nil {
				h.Close()
				t.Fatal("New accepted a bad config")
			}
		})
	}
}

func TestGossipsubDelivers(t *testing.T) {
	a := newTestHost(t, testConfig(t))
	cfg := testConfig(t)
	cfg.Bootstrap = addrStrings(a.Addrs())
	b := newTestHost(t, cfg)

	const topic = "jstp/test/topic"
	ta, err := a.PubSub().Join(topic)
	if err != nil {
		t.Fatal(err)
	}
	defer ta.Close()
	tb, err := b.PubSub().Join(topic)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	sub, err := tb.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	// a must know that b subscribes before publishing, or the message
	// has nobody to go to.
	poll.Until(t, 10*time.Second, "a to see b on the topic", func() bool {
		return slices.Contains(ta.ListPeers(), b.ID())
	})

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	payload := []byte(`{"event":["greeting"],"body":"hello"}`)
	if err := ta.Publish(ctx, payload); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("no message: %v", err)
	}
	if !bytes.Equal(msg.Data, payload) {
		t.Errorf("data = %q, want %q", msg.Data, payload)
	}
	if msg.GetFrom() != a.ID() {
		t.Errorf("from = %s, want %s", msg.GetFrom(), a.ID())
	}
	if len(msg.Signature) == 0 {
		t.Error("message is not signed")
	}
}

func TestPeersAndPing(t *testing.T) {
	a := newTestHost(t, testConfig(t))
	cfg := testConfig(t)
	cfg.Bootstrap = addrStrings(a.Addrs())
	b := newTestHost(t, cfg)

	rtt, err := b.Ping(t.Context(), a.ID())
	if err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if rtt <= 0 {
		t.Errorf("rtt = %v", rtt)
	}
	poll.Until(t, 5*time.Second, "identify to record the agent", func() bool {
		ps := b.Peers()
		return len(ps) == 1 && ps[0].Agent == UserAgent
	})
	p := b.Peers()[0]
	if p.ID != a.ID() || len(p.Addrs) == 0 || p.Latency <= 0 || p.Inbound {
		t.Errorf("peer info = %+v", p)
	}
	poll.Until(t, 5*time.Second, "a to list b as inbound", func() bool {
		ps := a.Peers()
		return len(ps) == 1 && ps[0].ID == b.ID() && ps[0].Inbound
	})
}

func TestCloseIdempotent(t *testing.T) {
	h, err := New(t.Context(), testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestCloseStopsGoroutines builds a small mesh, uses it (bootstrap, DHT,
// gossipsub), closes it, and checks that the goroutine count returns to
// what it was before.
func TestCloseStopsGoroutines(t *testing.T) {
	// mDNS too where the machine allows it: its dialer is ours to stop.
	mdns := multicastInterface()
	run := func() {
		cfg := testConfig(t)
		cfg.MDNS = mdns
		a, err := New(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		cfg = testConfig(t)
		cfg.MDNS = mdns
		cfg.Bootstrap = addrStrings(a.Addrs())
		b, err := New(t.Context(), cfg)
		if err != nil {
			a.Close()
			t.Fatal(err)
		}
		for _, h := range []*Host{a, b} {
			tp, err := h.PubSub().Join("leak")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tp.Subscribe(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := b.Ping(t.Context(), a.ID()); err != nil {
			t.Fatal(err)
		}
		b.Close()
		a.Close()
	}
	// The first run starts process-wide goroutines that libp2p and its
	// dependencies keep for good (metrics, timers, resolvers); measure from
	// the second.
	run()
	base := poll.SettledGoroutines()
	run()
	poll.Goroutines(t, 10*time.Second, base)
}

func TestParseDHTMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want DHTMode
		ok   bool
	}{
		{"", DHTAuto, true},
		{"auto", DHTAuto, true},
		{"Server", DHTServer, true},
		{" client ", DHTClient, true},
		{"serve", DHTAuto, false},
	} {
		got, err := ParseDHTMode(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseDHTMode(%q) = %v, %v", tc.in, got, err)
		}
		if tc.ok {
			if back, _ := ParseDHTMode(got.String()); back != got {
				t.Errorf("String round trip of %v gave %v", got, back)
			}
		}
	}
}

// multicastInterface reports whether a non-loopback interface that is up
// supports multicast, which mDNS needs.
func multicastInterface() bool {
	ifaces, err := net.Interfaces()
	if err != nil {
		return false
	}
	for _, i := range ifaces {
		if i.Flags&net.FlagUp != 0 && i.Flags&net.FlagMulticast != 0 && i.Flags&net.FlagLoopback == 0 {
			return true
		}
	}
	return false
}

func TestMDNSFindsPeer(t *testing.T) {
	if !multicastInterface() {
		t.Skip("no multicast-capable network interface is up; mDNS cannot run here")
	}
	newMDNS := func() *Host {
		cfg := testConfig(t)
		cfg.MDNS = true
		return newTestHost(t, cfg)
	}
	a, b := newMDNS(), newMDNS()
	poll.Until(t, 20*time.Second, "mDNS to connect the peers", func() bool {
		return a.LibP2P().Network().Connectedness(b.ID()) == network.Connected
	})
	if strings.Contains(MDNSServiceName, " ") {
		t.Fatal("service name has a space")
	}
}
