package node

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/identity"
	"github.com/jstp-peer/jstp-peer/mesh"
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
	// DefaultLinkInflight is how many dispatches from one link (a peer, a
	// gateway's client) may be queued or processed at once; the link is
	// not read meanwhile. A quarter of a subscription's queue: four busy
	// links fill a handler's queue before anyone is answered 503.
	DefaultLinkInflight = 256
)

// Forwarder finds where a dispatch goes when its host chain names another
// engine: the link towards to, the first element of the chain that is not
// this engine (a peer, a service name, a classic engine). It returns
// ErrLocalHop when to turns out to be this engine after all (a multiaddr
// of ours, a name whose chosen provider is us); the engine then takes the
// next step itself. Other errors are answered to the emitter with the code
// dispatch.Code gives them: ErrNotFound for a host that does not resolve,
// ErrNotGateway for one that cannot be reached.
//
// The link must be one the engine was attached to (mesh.Ingress), so that
// what comes back on it finds its way.
type Forwarder interface {
	Route(ctx context.Context, to dispatch.Host) (mesh.Link, error)
}

// ErrLocalHop is returned by a Forwarder for a host element that names
// this engine.
var ErrLocalHop = errors.New("node: host names this engine")

type config struct {
	id            string
	logger        *slog.Logger
	answerTimeout time.Duration
	queueLen      int
	linkInflight  int
	forwarder     Forwarder
	gossip        *gossip
	noForward     bool
	decoder       dispatch.Decoder
	localNames    map[string]bool
	isLocal       func(dispatch.Host) bool
	now           func() time.Time
	maxHops       int
	topicPeerWait time.Duration // how long a BIND waits for its subscriber on the topic
	key           crypto.PrivKey
	signAll       bool
	linkRate      int
	sealKey       *identity.SealingKey
	sealRecord    []byte
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

// WithLinkInflight bounds the dispatches from one link that may be queued
// or processed at once (default 256); at the bound the link is not read
// until one completes.
func WithLinkInflight(n int) Option { return func(c *config) { c.linkInflight = n } }

// WithLinkRate bounds how many dispatches per second the engine reads
// from one link (a peer, a gateway client), with bursts of a tenth of a
// second's worth (default: no bound; the in-flight limit still applies).
// Beyond it the link is not read until the rate allows, so a peer that
// floods is slowed down by its transport's flow control while the others
// are served.
func WithLinkRate(perSecond int) Option { return func(c *config) { c.linkRate = perSecond } }

// WithClock sets the clock the engine reads for timestamps, uptime and the
// expiry of routes (default time.Now). Deadlines still run on timers.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// withGossip puts the engine's subscriptions for other peers on gossipsub
// topics (Start does).
func withGossip(g *gossip) Option { return func(c *config) { c.gossip = g } }

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
			c.localNames[string(appendLower(nil, n))] = true
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
