package routing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/amino"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
)

// NameKeyPrefix is prepended to a service name before hashing it into the
// name's CID. It keeps name keys apart from anything else stored in the
// DHT, such as gossipsub's topic advertisements.
const NameKeyPrefix = "/jstp/name/"

// Defaults of the NamesConfig fields left zero.
const (
	// DefaultReprovideInterval is how often a provided name is announced
	// again: amino's 22 hours, well inside the 48 hours
	// (amino.DefaultProvideValidity) a provider record lives.
	DefaultReprovideInterval = amino.DefaultReprovideInterval
	// DefaultRetryInterval is the longest wait before a failed
	// announcement is retried (the first retry comes after a second),
	// for example one made before the peer had joined the mesh.
	DefaultRetryInterval = time.Minute
	// DefaultProvideTimeout bounds one announcement (a DHT walk to the
	// closest peers, then a put to each).
	DefaultProvideTimeout = time.Minute
	// DefaultCacheTTL is how long a resolution that found providers is
	// served from the cache.
	DefaultCacheTTL = time.Minute
	// DefaultNegativeTTL is how long a resolution that found no provider
	// is served from the cache; short, so that a name announced a moment
	// later is soon seen.
	DefaultNegativeTTL = 5 * time.Second
	// DefaultLookupTimeout bounds one DHT lookup.
	DefaultLookupTimeout = 10 * time.Second
	// DefaultMaxProviders is how many providers a lookup collects before
	// it stops: the DHT's bucket size, plenty of replicas to choose from.
	DefaultMaxProviders = amino.DefaultBucketSize
	// DefaultMaxCacheEntries bounds the resolution cache.
	DefaultMaxCacheEntries = 4096
)

// ErrNamesClosed is returned by Names methods called after Close.
var ErrNamesClosed = errors.New("routing: names closed")

// NameCID returns the CID under which providers of a service name are
// recorded in the DHT: a CIDv1, raw codec, of the SHA-256 multihash of
// NameKeyPrefix+name. Every peer computes the same CID for the same name.
func NameCID(name string) (cid.Cid, error) {
	if name == "" {
		return cid.Undef, errors.New("routing: empty service name")
	}
	mh, err := multihash.Sum([]byte(NameKeyPrefix+name), multihash.SHA2_256, -1)
	if err != nil {
		return cid.Undef, fmt.Errorf("routing: hash name %q: %w", name, err)
	}
	return cid.NewCidV1(cid.Raw, mh), nil
}

// NamesConfig configures NewNames. Zero values take the documented
// defaults.
type NamesConfig struct {
	// ReprovideInterval is how often each provided name is announced
	// again. Default: DefaultReprovideInterval (22 h).
	ReprovideInterval time.Duration
	// RetryInterval bounds the backoff between retries of a failed
	// announcement.
	// Default: DefaultRetryInterval (1 min).
	RetryInterval time.Duration
	// ProvideTimeout bounds each announcement. Default:
	// DefaultProvideTimeout (1 min).
	ProvideTimeout time.Duration
	// CacheTTL is how long found providers are served from the cache.
	// An entry used after half its TTL is refreshed in the background.
	// Default: DefaultCacheTTL (1 min).
	CacheTTL time.Duration
	// NegativeTTL is how long "no provider" is served from the cache.
	// Default: DefaultNegativeTTL (5 s).
	NegativeTTL time.Duration
	// LookupTimeout bounds each DHT lookup (Resolve and ResolvePeer).
	// Default: DefaultLookupTimeout (10 s).
	LookupTimeout time.Duration
	// MaxProviders is how many providers a lookup collects at most.
	// Default: DefaultMaxProviders (20).
	MaxProviders int
	// MaxCacheEntries bounds the number of cached names; past it expired
	// entries go first, then arbitrary ones. Default:
	// DefaultMaxCacheEntries (4096).
	MaxCacheEntries int
	// Logger receives the logs, tagged component=routing. Default:
	// slog.Default().
	Logger *slog.Logger

	// now is the clock the cache reads; tests replace it.
	now func() time.Time
}

func (c *NamesConfig) applyDefaults() {
	setDur := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	setDur(&c.ReprovideInterval, DefaultReprovideInterval)
	setDur(&c.RetryInterval, DefaultRetryInterval)
	setDur(&c.ProvideTimeout, DefaultProvideTimeout)
	setDur(&c.CacheTTL, DefaultCacheTTL)
	setDur(&c.NegativeTTL, DefaultNegativeTTL)
	setDur(&c.LookupTimeout, DefaultLookupTimeout)
	if c.MaxProviders <= 0 {
		c.MaxProviders = DefaultMaxProviders
	}
	if c.MaxCacheEntries <= 0 {
		c.MaxCacheEntries = DefaultMaxCacheEntries
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
}

// NamesStats counts what Names did, for tests, logs and the CLI.
type NamesStats struct {
	// Lookups is the number of DHT provider lookups started, background
	// refreshes included.
	Lookups uint64
	// Refreshes is the number of those lookups started in the background
	// to refresh a cached entry.
	Refreshes uint64
	// CacheHits and NegativeHits count resolutions answered from the
	// cache with providers and with "not found".
	CacheHits, NegativeHits uint64
	// Announcements counts provider announcements made (first ones and
	// re-announcements, failed ones included).
	Announcements uint64
	// Provided and Cached are the current number of provided names and
	// of cached resolutions.
	Provided, Cached int
}

// Names provides and resolves service names through the DHT. Its methods
// are safe for concurrent use. It owns one goroutine that re-announces
// provided names, plus one per lookup in flight; Close stops them all.
type Names struct {
	dht  *dht.IpfsDHT
	self peer.ID
	cfg  NamesConfig
	log  *slog.Logger

	ctx    context.Context // ends at Close; parent of every lookup
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // wakes the re-announce loop when names change
	once   sync.Once

	mu       sync.Mutex
	closed   bool
	provided map[string]*provision
	cache    map[string]*cacheEntry
	flights  map[string]*flight

	lookups, refreshes, hits, negHits, announcements atomic.Uint64
}

// provision is the announcement schedule of one provided name.
type provision struct {
	next     time.Time // when the name is due for announcement
	failures int       // announcements failed in a row
}

// firstRetry is how soon a failed announcement is first retried; the
// delay doubles with each failure up to RetryInterval. A peer that
// starts alone (its DHT table empty) announces its names a second or two
// after it meets its first neighbour, not a minute later.
const firstRetry = time.Second

func (n *Names) retryDelay(failures int) time.Duration {
	d := firstRetry << min(failures-1, 16)
	return min(d, n.cfg.RetryInterval)
}

// cacheEntry is one cached resolution; providers is nil when negative.
type cacheEntry struct {
	providers []peer.AddrInfo
	at        time.Time
	negative  bool
}

// flight is a lookup in progress; everyone resolving the name meanwhile
// waits for it rather than starting another (no thundering herd).
type flight struct {
	done      chan struct{}
	providers []peer.AddrInfo
	err       error
}

// NewNames returns a Names that provides and resolves through d (the
// mesh's DHT, see mesh.Host.DHT; not nil) on behalf of the peer that owns
// d, which must outlive the Names. It
// starts the re-announce goroutine; call Close to stop it.
func NewNames(d *dht.IpfsDHT, cfg NamesConfig) *Names {
	cfg.applyDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	n := &Names{
		dht:      d,
		self:     d.PeerID(),
		cfg:      cfg,
		log:      cfg.Logger.With("component", "routing"),
		ctx:      ctx,
		cancel:   cancel,
		kick:     make(chan struct{}, 1),
		provided: make(map[string]*provision),
		cache:    make(map[string]*cacheEntry),
		flights:  make(map[string]*flight),
	}
	n.wg.Go(n.reprovideLoop)
	return n
}

// Close stops re-announcing and every lookup in flight, and waits for the
// goroutines to end. Provider records already in the DHT stay there until
// they expire (48 h). Close is idempotent.
func (n *Names) Close() error {
	n.once.Do(func() {
		n.mu.Lock()
		n.closed = true // no goroutine starts after this
		n.mu.Unlock()
		n.cancel()
		n.wg.Wait()
	})
	return nil
}

// Provide announces through the DHT that this peer provides name, and
// keeps announcing it every ReprovideInterval until Unprovide or Close.
// It blocks for the first announcement (bounded by ctx and
// ProvideTimeout) and returns its error; the name is remembered even when
// that announcement fails, for example before the peer has joined the
// mesh, and the announcement is then retried, after one second at first
// and at most every RetryInterval.
// Providing a name again announces it again at once.
func (n *Names) Provide(ctx context.Context, name string) error {
	key, err := NameCID(name)
	if err != nil {
		return err
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrNamesClosed
	}
	p := &provision{next: n.cfg.now().Add(n.cfg.ReprovideInterval)}
	n.provided[name] = p
	// Our own resolutions must see the change at once.
	delete(n.cache, name)
	n.mu.Unlock()

	err = n.announce(ctx, name, key, p)
	n.wakeLoop()
	if errors.Is(err, ErrNamesClosed) {
		return err
	}
	if err != nil {
		return fmt.Errorf("routing: provide %q (retrying in the background): %w", name, err)
	}
	n.log.Debug("name provided", "name", name)
	return nil
}

// Unprovide stops announcing name. Provider records already in the DHT are
// not withdrawn (the DHT has no way to): they expire by themselves within
// 48 hours, and until then other peers may still resolve the name to this
// peer, which then answers that nothing is bound there. This peer's own
// Resolve stops listing itself at once.
func (n *Names) Unprovide(name string) {
	n.mu.Lock()
	delete(n.provided, name)
	delete(n.cache, name)
	n.mu.Unlock()
}

// Provides reports whether this peer provides name. It is asked for every
// host element, so it allocates nothing.
func (n *Names) Provides(name string) bool {
	n.mu.Lock()
	_, ok := n.provided[name]
	n.mu.Unlock()
	return ok
}

// Provided returns the names this peer provides, sorted.
func (n *Names) Provided() []string {
	n.mu.Lock()
	names := make([]string, 0, len(n.provided))
	for name := range n.provided {
		names = append(names, name)
	}
	n.mu.Unlock()
	slices.Sort(names)
	return names
}

// announce puts one provider record for name and schedules the next one.
// p is the provision the announcement belongs to; if the name was
// unprovided (or provided anew) meanwhile, the schedule is left alone.
func (n *Names) announce(ctx context.Context, name string, key cid.Cid, p *provision) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ProvideTimeout)
	defer cancel()
	// Close must not wait for a caller's long announcement.
	stop := context.AfterFunc(n.ctx, cancel)
	defer stop()

	n.announcements.Add(1)
	err := n.dht.Provide(ctx, key, true)
	if n.ctx.Err() != nil {
		return ErrNamesClosed
	}
	n.mu.Lock()
	if n.provided[name] == p {
		if err != nil {
			p.failures++
			p.next = n.cfg.now().Add(n.retryDelay(p.failures))
		} else {
			p.failures = 0
			p.next = n.cfg.now().Add(n.cfg.ReprovideInterval)
		}
	}
	n.mu.Unlock()
	return err
}

func (n *Names) wakeLoop() {
	select {
	case n.kick <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// reprovideLoop announces provided names when they fall due, one at a
// time: announcements are rare and a burst of them would only compete
// for the same DHT peers.
func (n *Names) reprovideLoop() {
	timer := time.NewTimer(n.cfg.ReprovideInterval)
	defer timer.Stop()
	for {
		now := n.cfg.now()
		next := now.Add(n.cfg.ReprovideInterval)
		type due struct {
			name string
			p    *provision
		}
		var todo []due
		n.mu.Lock()
		for name, p := range n.provided {
			if !p.next.After(now) {
				// Pushed back so that nothing else picks it up while
				// it is being announced; announce sets the real time.
				p.next = now.Add(n.cfg.ReprovideInterval)
				todo = append(todo, due{name, p})
			} else if p.next.Before(next) {
				next = p.next
			}
		}
		n.mu.Unlock()

		for _, d := range todo {
			key, err := NameCID(d.name)
			if err != nil {
				continue // cannot happen: the name was checked by Provide
			}
			if err := n.announce(n.ctx, d.name, key, d.p); err != nil {
				if n.ctx.Err() != nil {
					return
				}
				n.log.Info("name announcement failed; retrying", "name", d.name, "err", err)
			}
			next = n.nextDue(d.p, next)
		}

		timer.Reset(max(next.Sub(n.cfg.now()), 0))
		select {
		case <-n.ctx.Done():
			return
		case <-timer.C:
		case <-n.kick:
			// A name was provided or failed its first announcement:
			// the earliest due time may have moved. (Since Go 1.23
			// Reset needs no Stop-and-drain first.)
		}
	}
}

// nextDue returns the earlier of p's due time and next.
func (n *Names) nextDue(p *provision, next time.Time) time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p.next.Before(next) {
		return p.next
	}
	return next
}

// Stats returns counters and sizes; see NamesStats.
func (n *Names) Stats() NamesStats {
	n.mu.Lock()
	provided, cached := len(n.provided), len(n.cache)
	n.mu.Unlock()
	return NamesStats{
		Lookups:       n.lookups.Load(),
		Refreshes:     n.refreshes.Load(),
		CacheHits:     n.hits.Load(),
		NegativeHits:  n.negHits.Load(),
		Announcements: n.announcements.Load(),
		Provided:      provided,
		Cached:        cached,
	}
}
