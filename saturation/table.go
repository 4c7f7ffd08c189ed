package saturation

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// Table defaults.
const (
	// DefaultInterval is how often a Meter samples, and the report
	// interval the other defaults assume (2 s).
	DefaultInterval = 2 * time.Second
	// DefaultTTL is how long a report stays in a Table after it was
	// received (6 s): three report intervals, so one or two lost gossip
	// messages do not make a live peer vanish, while a dead one is
	// dropped within seconds.
	DefaultTTL = 3 * DefaultInterval
	// DefaultMaxEntries bounds a Table (4096 peers): enough for any mesh
	// this project targets, and a cap on what a flood of forged peer
	// ids can cost.
	DefaultMaxEntries = 4096
)

// Entry is one peer's latest report as a Table holds it.
type Entry struct {
	Report Report
	// ReceivedAt is when the report arrived, by the receiver's clock:
	// staleness is judged by it, not by the sender's timestamp, so a
	// sender's skewed clock cannot keep its report alive.
	ReceivedAt time.Time
	// Age is how long ago the report arrived, as of the call that
	// returned the entry.
	Age time.Duration
}

// TableStats counts what a Table did with the reports it was given.
type TableStats struct {
	Accepted   uint64 // stored
	Replayed   uint64 // refused: lower seq than the report held (ErrReplayed)
	Duplicates uint64 // refused: same seq as the report held (ErrDuplicate)
	Late       uint64 // refused: older than the TTL on arrival (ErrExpired)
	Invalid    uint64 // refused: Report.Validate failed
	Evicted    uint64 // live entries dropped to make room for a new peer
	Expired    uint64 // entries removed once older than the TTL
}

// Table holds the latest report of every peer heard from, with
// staleness. Reports older than the TTL are treated as absent (and
// removed lazily); a report with a sequence number not above the one held
// for its peer is refused, so replays and reorderings cannot roll a
// peer's state back. The table is bounded: a new peer arriving when it is
// full evicts the stalest entry. Safe for concurrent use.
//
// The table offers what routing needs to choose (entries, ages, names
// provided); the choice itself is routing's.
type Table struct {
	ttl        time.Duration
	maxEntries int
	now        func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
	stats   TableStats
}

type entry struct {
	report     Report
	receivedAt time.Time
}

// TableOption configures NewTable.
type TableOption func(*Table)

// WithTTL sets how long an entry lives after its report was received
// (default DefaultTTL, 6 s). Values <= 0 keep the default.
func WithTTL(d time.Duration) TableOption {
	return func(t *Table) {
		if d > 0 {
			t.ttl = d
		}
	}
}

// WithMaxEntries bounds the number of peers held (default
// DefaultMaxEntries, 4096). Values <= 0 keep the default.
func WithMaxEntries(n int) TableOption {
	return func(t *Table) {
		if n > 0 {
			t.maxEntries = n
		}
	}
}

// WithTableClock sets the clock that ages entries (default time.Now), so
// tests and simulations can drive expiry deterministically.
func WithTableClock(now func() time.Time) TableOption {
	return func(t *Table) {
		if now != nil {
			t.now = now
		}
	}
}

// NewTable returns an empty table.
func NewTable(opts ...TableOption) *Table {
	t := &Table{
		ttl:        DefaultTTL,
		maxEntries: DefaultMaxEntries,
		now:        time.Now,
		entries:    make(map[string]*entry),
	}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Update stores r as its peer's latest report, received at receivedAt,
// unless it is invalid (an error wrapping ErrReportInvalid or
// ErrReportVersion), already older than the TTL (ErrExpired), or not newer
// than the live report held for that peer (ErrReplayed, ErrDuplicate).
// Every refusal is counted in Stats. The table keeps a copy of r.
func (t *Table) Update(r Report, receivedAt time.Time) error {
	err := r.Validate()
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.stats.Invalid++
		return err
	}
	now := t.now()
	if now.Sub(receivedAt) >= t.ttl {
		t.stats.Late++
		return ErrExpired
	}
	e, found := t.entries[r.Peer]
	if found && t.expired(e, now) {
		delete(t.entries, r.Peer)
		t.stats.Expired++
		found = false
	}
	if found {
		switch {
		case r.Seq < e.report.Seq:
			t.stats.Replayed++
			return ErrReplayed
		case r.Seq == e.report.Seq:
			t.stats.Duplicates++
			return ErrDuplicate
		}
		e.report, e.receivedAt = r.Clone(), receivedAt
		t.stats.Accepted++
		return nil
	}
	if len(t.entries) >= t.maxEntries {
		t.makeRoom(now)
	}
	t.entries[r.Peer] = &entry{report: r.Clone(), receivedAt: receivedAt}
	t.stats.Accepted++
	return nil
}

// makeRoom frees one slot: expired entries go first; if none, the entry
// received longest ago. The scan is linear, but runs only when a new peer
// arrives at a full table, which a healthy mesh sized below the bound
// never does.
func (t *Table) makeRoom(now time.Time) {
	if t.pruneLocked(now) > 0 {
		return
	}
	var stalest string
	var oldest time.Time
	for id, e := range t.entries {
		if stalest == "" || e.receivedAt.Before(oldest) || e.receivedAt.Equal(oldest) && id < stalest {
			stalest, oldest = id, e.receivedAt
		}
	}
	delete(t.entries, stalest)
	t.stats.Evicted++
}

func (t *Table) expired(e *entry, now time.Time) bool {
	return now.Sub(e.receivedAt) >= t.ttl
}

// Get returns a copy of the live entry for peer.
func (t *Table) Get(peer string) (Entry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	e, ok := t.entries[peer]
	if !ok {
		return Entry{}, false
	}
	if t.expired(e, now) {
		delete(t.entries, peer)
		t.stats.Expired++
		return Entry{}, false
	}
	return e.export(now), true
}

// List returns copies of every live entry, sorted by peer id so the order
// is stable from call to call.
func (t *Table) List() []Entry {
	return t.collect(func(*Report) bool { return true })
}

// Providers returns copies of the live entries of the peers that provide
// the service name, sorted by peer id.
func (t *Table) Providers(name string) []Entry {
	return t.collect(func(r *Report) bool { return r.Provides(name) })
}

func (t *Table) collect(keep func(*Report) bool) []Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.pruneLocked(now)
	var out []Entry
	for _, e := range t.entries {
		if keep(&e.report) {
			out = append(out, e.export(now))
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Report.Peer, b.Report.Peer) })
	return out
}

// Remove forgets peer (one that left the mesh, say) and reports whether
// it was held.
func (t *Table) Remove(peer string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.entries[peer]
	delete(t.entries, peer)
	return ok
}

// Prune removes the expired entries and returns how many it removed.
// Lookups skip expired entries anyway; Prune only returns their memory
// early.
func (t *Table) Prune() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pruneLocked(t.now())
}

func (t *Table) pruneLocked(now time.Time) int {
	n := 0
	for id, e := range t.entries {
		if t.expired(e, now) {
			delete(t.entries, id)
			n++
		}
	}
	t.stats.Expired += uint64(n)
	return n
}

// Len returns the number of live entries.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pruneLocked(t.now())
	return len(t.entries)
}

// Stats returns the counters.
func (t *Table) Stats() TableStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

func (e *entry) export(now time.Time) Entry {
	return Entry{Report: e.report.Clone(), ReceivedAt: e.receivedAt, Age: now.Sub(e.receivedAt)}
}
