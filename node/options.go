package node

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// Version is the engine version reported by GET ["peer"].
const Version = "0.1.0"

// Defaults for New.
const (
	// DefaultAnswerTimeout is how long an emitter waits for answers
	// before answering 504 for the missing ones; the Node engine waits
	// the same 10 s.
	DefaultAnswerTimeout = 10 * time.Second
	// DefaultQueueLen bounds each subscription's queue.
	DefaultQueueLen = 1024
	// DefaultMaxHops is how many gateways a dispatch may cross before it
	// is answered 508: host chains shrink at every hop, but name
	// resolution and classic engines can send a dispatch round in a loop.
	DefaultMaxHops = 16
	// DefaultHandlerWorkers is how many dispatches a Handle subscription
	// processes at once; Bind subscriptions use one, to keep order.
	DefaultHandlerWorkers = 16
)

// Forwarder sends a dispatch towards a host that is not this engine. to
// is the first host-chain element that is not local; d.Host already holds
// the rest of the chain. from is where d came from, where answers and
// errors for it go back. An error is answered to from (its code from
// dispatch.Code), so return dispatch sentinels: ErrNotFound for a host
// that does not resolve, ErrNotGateway when forwarding is refused.
type Forwarder interface {
	Forward(ctx context.Context, to dispatch.Host, d *dispatch.Dispatch, from Origin) error
}

type config struct {
	id            string
	logger        *slog.Logger
	answerTimeout time.Duration
	queueLen      int
	forwarder     Forwarder
	noForward     bool
	decoder       dispatch.Decoder
	localNames    map[string]bool
	isLocal       func(dispatch.Host) bool
	now           func() time.Time
	maxHops       int
}

// Option configures a Node.
type Option func(*config)

// WithID sets the engine's id, the name GET ["peer"] reports and that
// counts as local in a host chain (default: a random UUID; the mesh sets
// the peer id).
func WithID(id string) Option { return func(c *config) { c.id = id } }

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithAnswerTimeout sets how long Request waits for answers when its
// context has no earlier deadline (default 10 s).
func WithAnswerTimeout(d time.Duration) Option { return func(c *config) { c.answerTimeout = d } }

// WithQueueLen bounds each subscription's queue (default 1024).
func WithQueueLen(n int) Option { return func(c *config) { c.queueLen = n } }

// WithForwarder sets where dispatches for other hosts go (default: none,
// so they are answered 502).
func WithForwarder(f Forwarder) Option { return func(c *config) { c.forwarder = f } }

// WithoutForwarding makes the engine refuse to be a gateway: dispatches
// for other hosts that arrive through Receive are answered 502. Its own
// Send and Request still use the Forwarder.
func WithoutForwarding() Option { return func(c *config) { c.noForward = true } }

// WithDecoder sets the limits and quirks ReceiveFrame decodes with
// (default: dispatch.Decoder{}, strict, 1 MiB, depth 64).
func WithDecoder(d dispatch.Decoder) Option { return func(c *config) { c.decoder = d } }

// WithLocalNames adds host names that mean this engine, besides the
// loopback names (localhost, 127.0.0.1, ::1, local) and the id.
func WithLocalNames(names ...string) Option {
	return func(c *config) {
		for _, n := range names {
			c.localNames[strings.ToLower(n)] = true
		}
	}
}

// WithLocalHost adds a test for host elements that mean this engine, for
// forms names cannot express (a gateway's own [host, port, transport]).
func WithLocalHost(f func(dispatch.Host) bool) Option { return func(c *config) { c.isLocal = f } }

// WithMaxHops sets how many gateways a dispatch may cross (default 16).
// Each forward increments the dispatch's "hops" header; one that arrives
// with the limit reached is answered 508 instead of forwarded.
func WithMaxHops(n int) Option { return func(c *config) { c.maxHops = n } }
