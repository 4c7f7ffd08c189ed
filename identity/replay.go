package identity

import (
	"container/heap"
	"crypto/sha256"
	"fmt"
	"hash"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// Replay guard defaults.
const (
	// DefaultReplaySkew is how far a signed dispatch's timestamp may be
	// from the receiver's clock, either way.
	DefaultReplaySkew = 2 * time.Minute
	// DefaultReplayEntries bounds the dispatches remembered (about 100
	// bytes each, so some 6 MiB at most).
	DefaultReplayEntries = 1 << 16
)

// ReplayGuard rejects signed dispatches that were seen before, or whose
// timestamp is further than the skew from now. Call it after Verify, with
// the author Verify returned: only verified dispatches should take up its
// memory, or a flood of forgeries would push real entries out.
//
// A dispatch is identified by its author and its signature. Not by the
// transaction id: every answer to a transaction carries the same token[0],
// and one peer may send several; and a dispatch without a transaction
// would not be identified at all. Ed25519 signatures cannot be altered
// into another valid one for the same dispatch without the author's key
// (Go's verifier refuses non-canonical ones), so the signature names the
// signed content, and routing headers a gateway rewrote do not change it.
//
// An entry is kept until its dispatch's timestamp plus the skew; after
// that the timestamp check rejects a replay on its own. Memory is
// bounded: when MaxEntries are held, the entry closest to expiry is
// dropped (counted by Evicted), which reopens a replay of that one
// dispatch until it expires. Size MaxEntries above the rate of signed
// dispatches times twice the skew to keep Evicted at zero.
//
// A ReplayGuard is safe for concurrent use.
type ReplayGuard struct {
	skew    time.Duration
	max     int
	now     func() time.Time
	mu      sync.Mutex
	seen    map[replayKey]struct{}
	byExp   expiryHeap
	evicted uint64
}

type replayKey [sha256.Size]byte

// ReplayOption configures a ReplayGuard.
type ReplayOption func(*ReplayGuard)

// WithSkew sets how far a timestamp may be from now, either way
// (default DefaultReplaySkew). Values ≤ 0 keep the default.
func WithSkew(d time.Duration) ReplayOption {
	return func(g *ReplayGuard) {
		if d > 0 {
			g.skew = d
		}
	}
}

// WithMaxEntries bounds the dispatches remembered (default
// DefaultReplayEntries). Values ≤ 0 keep the default.
func WithMaxEntries(n int) ReplayOption {
	return func(g *ReplayGuard) {
		if n > 0 {
			g.max = n
		}
	}
}

// WithClock sets the clock (default time.Now), for tests.
func WithClock(now func() time.Time) ReplayOption {
	return func(g *ReplayGuard) {
		if now != nil {
			g.now = now
		}
	}
}

// NewReplayGuard returns a guard with the defaults: a skew of ±2 minutes,
// at most 65536 entries, the system clock.
func NewReplayGuard(opts ...ReplayOption) *ReplayGuard {
	g := &ReplayGuard{skew: DefaultReplaySkew, max: DefaultReplayEntries, now: time.Now}
	for _, o := range opts {
		o(g)
	}
	g.seen = make(map[replayKey]struct{})
	return g
}

// Check records d, a dispatch Verify attributed to author, and fails with
// an error wrapping ErrReplay (401) when its timestamp is outside the
// skew or it was recorded before. An unsigned dispatch fails with
// ErrUnsigned, a malformed signature header with ErrBadSignature.
func (g *ReplayGuard) Check(author peer.ID, d *dispatch.Dispatch) error {
	_, _, sig, err := signatureParts(d)
	if err != nil {
		return err
	}
	h := sha256.New()
	h.Write([]byte(author))
	h.Write([]byte{0})
	h.Write(sig)
	return g.record(h, d.Timestamp, "dispatch by "+author.String())
}

// CheckSealed records a dispatch sealed in a session (OpenSession), by its
// session id and nonce, like Check: it fails with ErrReplay when its
// timestamp is outside the skew or it was recorded before.
func (g *ReplayGuard) CheckSealed(sessionID, nonce string, timestamp int64) error {
	h := sha256.New()
	h.Write([]byte("session\x00"))
	h.Write([]byte(sessionID))
	h.Write([]byte{0})
	h.Write([]byte(nonce))
	return g.record(h, timestamp, "sealed dispatch of session "+sessionID)
}

func (g *ReplayGuard) record(h hash.Hash, timestamp int64, what string) error {
	var key replayKey
	h.Sum(key[:0])

	now := g.now().UnixMilli()
	skew := g.skew.Milliseconds()
	if timestamp < now-skew || timestamp > now+skew {
		return fmt.Errorf("%w: timestamp %d is more than %s from this engine's clock (%d)", ErrReplay, timestamp, g.skew, now)
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	g.expire(now)
	if _, dup := g.seen[key]; dup {
		return fmt.Errorf("%w: %s seen before", ErrReplay, what)
	}
	for len(g.seen) >= g.max {
		old := heap.Pop(&g.byExp).(replayEntry)
		delete(g.seen, old.key)
		g.evicted++
	}
	g.seen[key] = struct{}{}
	heap.Push(&g.byExp, replayEntry{exp: timestamp + skew, key: key})
	return nil
}

// expire drops the entries whose dispatches the skew check now rejects.
func (g *ReplayGuard) expire(now int64) {
	for len(g.byExp) > 0 && g.byExp[0].exp < now {
		old := heap.Pop(&g.byExp).(replayEntry)
		delete(g.seen, old.key)
	}
}

// Len returns the number of dispatches remembered.
func (g *ReplayGuard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.seen)
}

// Evicted returns how many entries were dropped before expiry to stay
// within MaxEntries: replays that went undetectable early. Non-zero means
// the guard is too small for the traffic.
func (g *ReplayGuard) Evicted() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.evicted
}

type replayEntry struct {
	exp int64 // Unix ms after which the skew check rejects the dispatch
	key replayKey
}

// expiryHeap is a min-heap by expiry: timestamps arrive out of order
// within the skew, so insertion order is not expiry order.
type expiryHeap []replayEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].exp < h[j].exp }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(replayEntry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
