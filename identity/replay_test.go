package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct{ ms atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ms.Store(t.UnixMilli())
	return c
}
func (c *fakeClock) Now() time.Time      { return time.UnixMilli(c.ms.Load()) }
func (c *fakeClock) Add(d time.Duration) { c.ms.Add(d.Milliseconds()) }
func (c *fakeClock) stamp() int64        { return c.ms.Load() }

// signedAt returns a sample dispatch stamped ts, with body n so that
// each n is a distinct dispatch, signed by key.
func signedAt(t testing.TB, key crypto.PrivKey, ts int64, n int) *dispatch.Dispatch {
	t.Helper()
	d := sample(t)
	d.Timestamp = ts
	d.Body = json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))
	if err := Sign(key, d); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestReplayRejected(t *testing.T) {
	clock := newFakeClock(time.Now())
	g := NewReplayGuard(WithClock(clock.Now))
	key, _ := newIdentity(t)
	d := signedAt(t, key, clock.stamp(), 1)
	author, err := Verify(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Check(author, d); err != nil {
		t.Fatalf("first delivery: %v", err)
	}
	// The same dispatch again, after a gateway rewrote its routing
	// headers and re-serialised it.
	again := roundTrip(t, d)
	again.Host = []dispatch.Host{{Name: "elsewhere"}}
	again.Extra.Set(HopsHeader, json.RawMessage("2"))
	if _, err := Verify(again); err != nil {
		t.Fatal(err)
	}
	err = g.Check(author, again)
	if !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: err = %v, want ErrReplay", err)
	}
	if c := dispatch.Code(err); c != 401 {
		t.Fatalf("code = %d, want 401", c)
	}
	// Another dispatch by the same author with the same transaction id
	// (as answers to one transaction have) is not a replay.
	if err := g.Check(author, signedAt(t, key, clock.stamp(), 2)); err != nil {
		t.Fatalf("distinct dispatch, same token: %v", err)
	}
}

func TestReplayTimestampSkew(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	key, _ := newIdentity(t)
	cases := []struct {
		name   string
		skew   time.Duration
		offset time.Duration
		ok     bool
	}{
		{"now", 0, 0, true},
		{"1 min old", 0, -time.Minute, true},
		{"1 min ahead", 0, time.Minute, true},
		{"at the edge", 0, -2 * time.Minute, true},
		{"3 min old", 0, -3 * time.Minute, false},
		{"3 min ahead", 0, 3 * time.Minute, false},
		{"custom skew, 20 s old", 10 * time.Second, -20 * time.Second, false},
		{"custom skew, 5 s ahead", 10 * time.Second, 5 * time.Second, true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock := newFakeClock(now)
			g := NewReplayGuard(WithClock(clock.Now), WithSkew(c.skew))
			d := signedAt(t, key, now.Add(c.offset).UnixMilli(), i)
			err := g.Check(peerID(t, key), d)
			if c.ok && err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if !c.ok && !errors.Is(err, ErrReplay) {
				t.Fatalf("err = %v, want ErrReplay", err)
			}
		})
	}
}

func TestReplayWindowExpires(t *testing.T) {
	clock := newFakeClock(time.Now())
	g := NewReplayGuard(WithClock(clock.Now), WithSkew(time.Minute))
	key, id := newIdentity(t)
	for i := range 10 {
		if err := g.Check(id, signedAt(t, key, clock.stamp(), i)); err != nil {
			t.Fatal(err)
		}
	}
	old := signedAt(t, key, clock.stamp(), 0)
	if g.Len() != 10 {
		t.Fatalf("Len = %d, want 10", g.Len())
	}
	clock.Add(61 * time.Second)
	if err := g.Check(id, signedAt(t, key, clock.stamp(), 100)); err != nil {
		t.Fatal(err)
	}
	if g.Len() != 1 {
		t.Fatalf("after the window Len = %d, want 1: expired entries must go", g.Len())
	}
	// Forgetting it is safe: the timestamp check now rejects it.
	if err := g.Check(id, old); !errors.Is(err, ErrReplay) {
		t.Fatalf("expired replay: err = %v, want ErrReplay", err)
	}
}

func TestReplayBounded(t *testing.T) {
	clock := newFakeClock(time.Now())
	g := NewReplayGuard(WithClock(clock.Now), WithMaxEntries(3))
	key, id := newIdentity(t)
	var ds []*dispatch.Dispatch
	for i := range 5 {
		// Stamps out of order: the oldest by timestamp goes first.
		d := signedAt(t, key, clock.stamp()-int64(i%3)*1000, i)
		ds = append(ds, d)
		if err := g.Check(id, d); err != nil {
			t.Fatal(err)
		}
	}
	if g.Len() != 3 || g.Evicted() != 2 {
		t.Fatalf("Len = %d, Evicted = %d; want 3 and 2", g.Len(), g.Evicted())
	}
	// The two closest to expiry (stamped 2 s and 1 s ago) went; the
	// others are still caught.
	for _, i := range []int{0, 3, 4} {
		if err := g.Check(id, ds[i]); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay of %d: err = %v, want ErrReplay", i, err)
		}
	}
	if err := g.Check(id, ds[2]); err != nil {
		t.Fatalf("evicted entry: %v (eviction was not oldest-first)", err)
	}
}

func TestReplayUnsigned(t *testing.T) {
	g := NewReplayGuard()
	_, id := newIdentity(t)
	if err := g.Check(id, sample(t)); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("err = %v, want ErrUnsigned", err)
	}
}

func TestReplayConcurrent(t *testing.T) {
	clock := newFakeClock(time.Now())
	g := NewReplayGuard(WithClock(clock.Now), WithMaxEntries(64))
	key, id := newIdentity(t)
	ds := make([]*dispatch.Dispatch, 32)
	for i := range ds {
		ds[i] = signedAt(t, key, clock.stamp(), i)
	}
	var accepted atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for _, d := range ds {
				if g.Check(id, d) == nil {
					accepted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if accepted.Load() != int64(len(ds)) {
		t.Fatalf("accepted %d deliveries of %d distinct dispatches", accepted.Load(), len(ds))
	}
}
