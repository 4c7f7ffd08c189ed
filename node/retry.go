package node

import (
	"context"
	"slices"
	"sync"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/mesh"
	"github.com/jstp-peer/jstp-peer/routing"
)

// Retries (docs/saturation.md): a request to a service name that a
// replica refuses with 503 before answering anything else goes to another
// replica instead of back to its emitter, when repeating it is harmless —
// GET, PUT and DELETE, or any method whose emitter opts in with the
// header "retry": true. A replica that cannot be reached at all is
// skipped by the forwarder already (Route).

// RetryHeader opts a dispatch of another method in to retries.
const RetryHeader = "retry"

// Retrier is implemented by forwarders that can route a host element
// again while avoiding the peers already tried (their ids).
type Retrier interface {
	RouteAgain(ctx context.Context, to dispatch.Host, tried []string) (mesh.Link, error)
}

// MaxRetries bounds the replicas one request goes to after the first.
const MaxRetries = 2

// retry is what a ledger keeps to send its request again.
type retry struct {
	to    dispatch.Host
	orig  *dispatch.Dispatch // as it was before it was passed on
	tried []string
}

// retryBudget bounds retries to a share of the requests, so that a mesh
// whose replicas all refuse does not multiply its load by retrying (as
// Finagle's and gRPC's retry budgets do): each request to a name earns a
// fifth of a retry, up to twenty in reserve.
type retryBudget struct {
	mu     sync.Mutex
	tokens float64
}

const (
	retryEarn    = 0.2
	retryReserve = 20
)

func (b *retryBudget) earn() {
	b.mu.Lock()
	b.tokens = min(b.tokens+retryEarn, retryReserve)
	b.mu.Unlock()
}

func (b *retryBudget) spend() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// retryable returns what the ledger needs to retry d, about to be passed
// on towards the name to, or nil when d is not to be retried.
func (n *Node) retryable(d *dispatch.Dispatch, to dispatch.Host, next *linkOrigin) *retry {
	if _, ok := n.cfg.forwarder.(Retrier); !ok || !wantsAnswer(d) || d.Kind() != dispatch.Regular || next.kind != mesh.PeerLink {
		return nil
	}
	if t, err := routing.Classify(to); err != nil || t.Kind != routing.Name {
		return nil
	}
	switch d.Method {
	case dispatch.GET, dispatch.PUT, dispatch.DELETE:
	default:
		if string(d.Extra.Value(RetryHeader)) != "true" {
			return nil
		}
	}
	n.retries.earn()
	return &retry{to: to, orig: d.Clone(), tried: []string{next.l.ID()}}
}

// retryRefused sends the request of l, which its replica refused with 503
// before anything else was passed back, to another replica. It reports
// whether it did; if not, the 503 goes back as usual.
func (n *Node) retryRefused(ctx context.Context, l *ledger) bool {
	r := l.retry
	if r == nil || len(r.tried) > MaxRetries || !n.retries.spend() {
		return false
	}
	link, err := n.cfg.forwarder.(Retrier).RouteAgain(ctx, r.to, r.tried)
	if err != nil {
		return false
	}
	next, ok := n.linkOf(link)
	if !ok || slices.Contains(r.tried, next.l.ID()) {
		return false
	}
	// The refused attempt ends quietly, if nothing of it went back yet:
	// its emitter hears only of the next one.
	l.mu.Lock()
	untouched := !l.t.known && !l.t.open && !l.t.done && l.t.count == 0
	l.t.done = true
	l.mu.Unlock()
	if !untouched {
		return false
	}
	n.finishLedger(l)
	n.stats.retried.Add(1)
	n.log.Debug("replica refused; retrying on another", "name", r.to.String(), "refused", r.tried[len(r.tried)-1], "next", next.l.ID())
	d := r.orig.Clone()
	again := &retry{to: r.to, orig: r.orig, tried: append(slices.Clip(r.tried), next.l.ID())}
	if err := n.forwardRetry(ctx, d, l.back, next, r.to, again); err != nil {
		n.answerErr(ctx, l.back, d, err)
	}
	return true
}
