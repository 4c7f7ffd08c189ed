package routing

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/multiformats/go-multihash"

	"github.com/jstp-peer/jstp-peer/dispatch"

	"github.com/jstp-peer/jstp-peer/internal/poll"
)

// fakeClock is the cache's clock in tests: time moves only when the test
// says so, so TTL behaviour is tested without sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testPeer is a libp2p host with its DHT, built here rather than with
// package mesh (which imports routing) the way mesh builds them: loopback
// TCP, DHT server mode under the /jstp prefix.
type testPeer struct {
	h host.Host
	d *dht.IpfsDHT
}

func (p *testPeer) ID() peer.ID { return p.h.ID() }

// newMesh starts n loopback peers in DHT server mode, all bootstrapping
// from peer 0, and waits until peer 0's routing table holds every other
// peer and every peer's holds peer 0.
func newMesh(t *testing.T, n int) []*testPeer {
	t.Helper()
	peers := make([]*testPeer, n)
	for i := range peers {
		h, err := libp2p.New(
			libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
			libp2p.Transport(tcp.NewTCPTransport),
			libp2p.DisableRelay(),
			libp2p.DisableMetrics(),
		)
		if err != nil {
			t.Fatalf("host %d: %v", i, err)
		}
		opts := []dht.Option{dht.Mode(dht.ModeServer), dht.ProtocolPrefix("/jstp")}
		if i > 0 {
			opts = append(opts, dht.BootstrapPeers(peer.AddrInfo{ID: peers[0].ID(), Addrs: peers[0].h.Addrs()}))
		}
		d, err := dht.New(h, opts...)
		if err != nil {
			h.Close()
			t.Fatalf("DHT %d: %v", i, err)
		}
		t.Cleanup(func() {
			d.Close()
			h.Close()
		})
		peers[i] = &testPeer{h: h, d: d}
		if i > 0 {
			if err := h.Connect(t.Context(), peer.AddrInfo{ID: peers[0].ID(), Addrs: peers[0].h.Addrs()}); err != nil {
				t.Fatalf("host %d bootstrap: %v", i, err)
			}
			if err := d.Bootstrap(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}
	poll.Until(t, 15*time.Second, "routing tables to fill", func() bool {
		if peers[0].d.RoutingTable().Size() < n-1 {
			return false
		}
		for _, p := range peers[1:] {
			if p.d.RoutingTable().Size() == 0 {
				return false
			}
		}
		return true
	})
	return peers
}

func newNames(t *testing.T, p *testPeer, cfg NamesConfig) *Names {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	n := NewNames(p.d, cfg)
	t.Cleanup(func() { n.Close() })
	return n
}

func ids(ais []peer.AddrInfo) []peer.ID {
	out := make([]peer.ID, len(ais))
	for i, ai := range ais {
		out[i] = ai.ID
	}
	slices.Sort(out)
	return out
}

func TestNameCID(t *testing.T) {
	got, err := NameCID("pizza")
	if err != nil {
		t.Fatal(err)
	}
	mh, err := multihash.Sum([]byte("/jstp/name/pizza"), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	if want := cid.NewCidV1(cid.Raw, mh); !got.Equals(want) {
		t.Fatalf("NameCID(pizza) = %s, want %s", got, want)
	}
	other, _ := NameCID("pasta")
	if got.Equals(other) {
		t.Fatal("two names share a CID")
	}
	if _, err := NameCID(""); err == nil {
		t.Fatal("empty name accepted")
	}
}

// TestResolveThreeProvidersFromTwenty: a name provided by 3 peers of a
// 20-peer mesh resolves, from a peer that does not provide it, to exactly
// those 3; from a provider, to the same 3 (itself included).
func TestResolveThreeProvidersFromTwenty(t *testing.T) {
	start := time.Now()
	hosts := newMesh(t, 20)
	t.Logf("mesh up in %v", time.Since(start))
	names := make([]*Names, len(hosts))
	for i, h := range hosts {
		names[i] = newNames(t, h, NamesConfig{})
	}
	providers := []int{3, 9, 17}
	var want []peer.ID
	for _, i := range providers {
		if err := names[i].Provide(t.Context(), "pizza"); err != nil {
			t.Fatalf("host %d Provide: %v", i, err)
		}
		want = append(want, hosts[i].ID())
	}
	slices.Sort(want)
	t.Logf("provided in %v", time.Since(start))

	got, err := names[12].Resolve(t.Context(), "pizza")
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if !slices.Equal(ids(got), want) {
		t.Fatalf("Resolve(pizza) = %v, want %v", ids(got), want)
	}
	t.Logf("resolved in %v", time.Since(start))
	for _, ai := range got {
		if len(ai.Addrs) == 0 {
			t.Errorf("provider %s came without addresses", ai.ID)
		}
	}

	got, err = names[9].Resolve(t.Context(), "pizza")
	if err != nil {
		t.Fatalf("Resolve from a provider: %v", err)
	}
	if !slices.Equal(ids(got), want) {
		t.Fatalf("Resolve(pizza) from provider = %v, want %v", ids(got), want)
	}
	if p := names[9].Provided(); !slices.Equal(p, []string{"pizza"}) {
		t.Errorf("Provided() = %v", p)
	}
}

func TestResolveNotFoundIsCachedBriefly(t *testing.T) {
	hosts := newMesh(t, 3)
	clock := newFakeClock()
	n := newNames(t, hosts[1], NamesConfig{now: clock.Now, NegativeTTL: 5 * time.Second})

	_, err := n.Resolve(t.Context(), "nobody-provides-this")
	if !errors.Is(err, dispatch.ErrNotFound) {
		t.Fatalf("err = %v, want one wrapping dispatch.ErrNotFound", err)
	}
	if dispatch.Code(err) != 404 {
		t.Errorf("Code(err) = %d, want 404", dispatch.Code(err))
	}
	if s := n.Stats(); s.Lookups != 1 {
		t.Fatalf("lookups = %d, want 1", s.Lookups)
	}
	_, err = n.Resolve(t.Context(), "nobody-provides-this")
	if !errors.Is(err, dispatch.ErrNotFound) {
		t.Fatalf("cached err = %v", err)
	}
	if s := n.Stats(); s.Lookups != 1 || s.NegativeHits != 1 {
		t.Fatalf("after a cached miss: %+v, want 1 lookup and 1 negative hit", s)
	}
	clock.Advance(5 * time.Second)
	if _, err := n.Resolve(t.Context(), "nobody-provides-this"); !errors.Is(err, dispatch.ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	if s := n.Stats(); s.Lookups != 2 {
		t.Fatalf("lookups after the negative TTL = %d, want 2", s.Lookups)
	}
}

func TestResolveCacheAndRefresh(t *testing.T) {
	hosts := newMesh(t, 4)
	if err := newNames(t, hosts[2], NamesConfig{}).Provide(t.Context(), "pizza"); err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	n := newNames(t, hosts[3], NamesConfig{now: clock.Now, CacheTTL: time.Minute})
	want := []peer.ID{hosts[2].ID()}

	resolve := func() {
		t.Helper()
		got, err := n.Resolve(t.Context(), "pizza")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(got), want) {
			t.Fatalf("Resolve = %v, want %v", ids(got), want)
		}
	}
	resolve()
	resolve()
	if s := n.Stats(); s.Lookups != 1 || s.CacheHits != 1 {
		t.Fatalf("fresh entry: %+v, want 1 lookup and 1 hit", s)
	}

	// Past half the TTL the cached answer is still served at once, and
	// one background refresh starts however many callers there are.
	clock.Advance(31 * time.Second)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(resolve)
	}
	wg.Wait()
	if s := n.Stats(); s.Refreshes != 1 || s.Lookups != 2 {
		t.Fatalf("stale entry: %+v, want 1 refresh, 2 lookups", s)
	}
	poll.Until(t, 10*time.Second, "the refresh to land", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return len(n.flights) == 0
	})
	// The refresh reset the entry's age: no further refresh yet.
	resolve()
	if s := n.Stats(); s.Lookups != 2 {
		t.Fatalf("after refresh: %+v, want 2 lookups", s)
	}

	// An expired entry makes the caller wait for a new lookup.
	clock.Advance(2 * time.Minute)
	resolve()
	if s := n.Stats(); s.Lookups != 3 || s.Refreshes != 1 {
		t.Fatalf("expired entry: %+v, want 3 lookups, 1 refresh", s)
	}
}

func TestResolveConcurrentCallersShareOneLookup(t *testing.T) {
	hosts := newMesh(t, 3)
	n := newNames(t, hosts[1], NamesConfig{now: newFakeClock().Now})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := n.Resolve(t.Context(), "unknown"); !errors.Is(err, dispatch.ErrNotFound) {
				t.Errorf("err = %v", err)
			}
		})
	}
	wg.Wait()
	if s := n.Stats(); s.Lookups != 1 {
		t.Fatalf("lookups = %d for 20 concurrent callers, want 1", s.Lookups)
	}
}

func TestUnprovide(t *testing.T) {
	hosts := newMesh(t, 3)
	n := newNames(t, hosts[1], NamesConfig{})
	if err := n.Provide(t.Context(), "pizza"); err != nil {
		t.Fatal(err)
	}
	got, err := n.Resolve(t.Context(), "pizza")
	if err != nil || !slices.Equal(ids(got), []peer.ID{hosts[1].ID()}) {
		t.Fatalf("own Resolve = %v, %v; want itself", ids(got), err)
	}
	n.Unprovide("pizza")
	if p := n.Provided(); len(p) != 0 {
		t.Fatalf("Provided() = %v after Unprovide", p)
	}
	// The DHT keeps the record until it expires, but this peer no longer
	// lists itself.
	if _, err := n.Resolve(t.Context(), "pizza"); !errors.Is(err, dispatch.ErrNotFound) {
		t.Fatalf("own Resolve after Unprovide: err = %v, want not found", err)
	}
}

func TestReprovide(t *testing.T) {
	hosts := newMesh(t, 3)
	n := newNames(t, hosts[1], NamesConfig{ReprovideInterval: 100 * time.Millisecond})
	if err := n.Provide(t.Context(), "pizza"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "two re-announcements", func() bool {
		return n.Stats().Announcements >= 3
	})
	n.Unprovide("pizza")
	before := n.Stats().Announcements
	// One announcement may have been under way at Unprovide.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if after := n.Stats().Announcements; after > before+1 {
		t.Fatalf("announcements went on after Unprovide: %d -> %d", before, after)
	}
}

func TestProvideBeforeJoiningRetries(t *testing.T) {
	// A lone peer has nobody to announce to; the name is kept and
	// retried.
	hosts := newMesh(t, 1)
	n := newNames(t, hosts[0], NamesConfig{RetryInterval: 50 * time.Millisecond})
	if err := n.Provide(t.Context(), "pizza"); err == nil {
		t.Fatal("Provide with an empty routing table succeeded")
	}
	if p := n.Provided(); !slices.Equal(p, []string{"pizza"}) {
		t.Fatalf("Provided() = %v, want the name kept", p)
	}
	poll.Until(t, 10*time.Second, "retries", func() bool {
		return n.Stats().Announcements >= 3
	})
}

func TestProvideAnnouncesSoonAfterJoining(t *testing.T) {
	// Two peers that do not know each other yet: the provider's first
	// announcement fails. With the default one-minute cap, the backoff
	// still announces within seconds of the two meeting.
	hosts := newMesh(t, 1)
	other := newMesh(t, 1)[0]
	n := newNames(t, hosts[0], NamesConfig{})
	if err := n.Provide(t.Context(), "pizza"); err == nil {
		t.Fatal("Provide with an empty routing table succeeded")
	}
	if err := other.h.Connect(t.Context(), peer.AddrInfo{ID: hosts[0].ID(), Addrs: hosts[0].h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	key, err := NameCID("pizza")
	if err != nil {
		t.Fatal(err)
	}
	// The record reaches the other peer's store only through a retried
	// announcement; a fixed one-minute retry would miss this deadline.
	poll.Until(t, 20*time.Second, "the retried announcement to reach the other peer", func() bool {
		ps, err := other.d.ProviderStore().GetProviders(t.Context(), key.Hash())
		return err == nil && len(ps) == 1 && ps[0].ID == hosts[0].ID()
	})
}

func TestResolvePeer(t *testing.T) {
	hosts := newMesh(t, 4)
	n := newNames(t, hosts[1], NamesConfig{LookupTimeout: 2 * time.Second})

	self, err := n.ResolvePeer(t.Context(), hosts[1].ID())
	if err != nil || self.ID != hosts[1].ID() || len(self.Addrs) == 0 {
		t.Fatalf("ResolvePeer(self) = %v, %v", self, err)
	}
	for _, h := range []*testPeer{hosts[0], hosts[3]} {
		ai, err := n.ResolvePeer(t.Context(), h.ID())
		if err != nil {
			t.Fatalf("ResolvePeer(%s): %v", h.ID(), err)
		}
		if ai.ID != h.ID() || len(ai.Addrs) == 0 {
			t.Fatalf("ResolvePeer(%s) = %v", h.ID(), ai)
		}
	}

	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ghost, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.ResolvePeer(t.Context(), ghost); !errors.Is(err, dispatch.ErrNotFound) {
		t.Fatalf("ResolvePeer(unknown) err = %v, want not found", err)
	}
}

func TestResolvePeerFindsUnknownPeerThroughDHT(t *testing.T) {
	hosts := newMesh(t, 4)
	n := newNames(t, hosts[1], NamesConfig{})
	target := hosts[3]
	// The lookup needs a DHT neighbour that knows target; on a loaded
	// machine routing tables fill a moment after the mesh forms.
	poll.Until(t, 20*time.Second, "a DHT neighbour to know the target", func() bool {
		return hosts[0].d.RoutingTable().Find(target.ID()) != "" || hosts[2].d.RoutingTable().Find(target.ID()) != ""
	})
	// Forget what identify and the bootstrap taught hosts[1] about
	// target, so only the DHT can answer.
	hosts[1].h.Network().ClosePeer(target.ID())
	hosts[1].h.Peerstore().ClearAddrs(target.ID())
	ai, err := n.ResolvePeer(t.Context(), target.ID())
	if err != nil {
		t.Fatalf("ResolvePeer: %v", err)
	}
	if ai.ID != target.ID() || len(ai.Addrs) == 0 {
		t.Fatalf("ResolvePeer = %v", ai)
	}
}

func TestNamesClose(t *testing.T) {
	hosts := newMesh(t, 2)
	n := NewNames(hosts[1].d, NamesConfig{Logger: testLogger(t)})
	if err := n.Provide(t.Context(), "pizza"); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := n.Resolve(t.Context(), "pizza"); !errors.Is(err, ErrNamesClosed) {
		t.Fatalf("Resolve after Close: %v", err)
	}
	if err := n.Provide(t.Context(), "pizza"); !errors.Is(err, ErrNamesClosed) {
		t.Fatalf("Provide after Close: %v", err)
	}
	if _, err := n.ResolvePeer(t.Context(), hosts[0].ID()); !errors.Is(err, ErrNamesClosed) {
		t.Fatalf("ResolvePeer after Close: %v", err)
	}
}

func TestResolveHonoursCallerContext(t *testing.T) {
	hosts := newMesh(t, 2)
	n := newNames(t, hosts[1], NamesConfig{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := n.Resolve(ctx, "anything"); !errors.Is(err, context.Canceled) {
		// The lookup may also have finished first; either way it must
		// not hang.
		if !errors.Is(err, dispatch.ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	}
}
