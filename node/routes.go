package node

import (
	"crypto/rand"
	"encoding/base32"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/identity"
)

// replyTo is where what a dispatch causes goes back: the origin it came
// from, and the label that origin's engine gave the transaction (its "via"
// header). The label is empty for the application, for classic links and
// for dispatches that want no answer.
type replyTo struct {
	o   Origin
	via string
	// author is the verified signer of the dispatch being answered, ""
	// when it came unsigned.
	author string
	// signedFor is the recipient the signature names, "" for none: a
	// dispatch processed here must name this peer (checkRecipient).
	signedFor string
	// session, for a sealed dispatch opened here, is the session its
	// answers are sealed in.
	session *identity.Session
}

// ledger is one transaction as this engine serves it for one emitter: who
// gets its answers back (with which transaction id and label), and the
// tally that says when it is complete. Every engine that passes a
// transaction on, or hands a copy to a remote subscriber, keeps one; so
// does an engine whose emitter cannot time out answers itself (a classic
// one), and then the ledger's timer answers 504 for what is missing.
type ledger struct {
	back replyTo
	txid string

	mu    sync.Mutex
	t     tally
	timer *time.Timer // set when this engine owes back the 504s
	keys  []string    // the routes that lead here, dropped when it is done

	// sealedTo is the recipient this engine sealed the dispatch to: the
	// answers are opened here, and must be signed by it.
	sealedTo peer.ID
	// retry, for a request to a service name, is how to send it to
	// another replica if this one refuses it (retry.go).
	retry   *retry
	session *identity.Session

	// next and sent, for a transaction passed on to a peer: whose
	// outstanding count it is in, and since when (its latency).
	next *linkOrigin
	sent time.Time
	// method is the passed-on dispatch's (observe.go), methodNone for a subscriber's copy.
	method uint8
	// outcome, for a BIND passed on, learns how it ended: its final
	// answer's code, 504 at the deadline, 503 when its link went, or the
	// code of the error that kept it from being sent. What this engine
	// set up for the BIND (the origin's mirror, the topic subscription)
	// is taken back if it was not accepted: otherwise the origin, told it
	// is not bound, would still get events, and its next BIND would be
	// answered here instead of reaching the target. BINDs for the same
	// topic that came meanwhile get the same outcome (gossip.join).
	outcome []func(code int)
}

// onOutcome registers f to run once, with the transaction's final code.
func (l *ledger) onOutcome(f func(code int)) {
	l.mu.Lock()
	l.outcome = append(l.outcome, f)
	l.mu.Unlock()
}

// onRefusal registers f to run if the transaction does not succeed.
func (l *ledger) onRefusal(f func()) {
	l.onOutcome(func(code int) {
		if code >= 300 {
			f()
		}
	})
}

// ended runs what onOutcome registered, once.
func (l *ledger) ended(code int) {
	l.mu.Lock()
	fs := l.outcome
	l.outcome = nil
	l.mu.Unlock()
	for _, f := range fs {
		f(code)
	}
}

// track counts a transaction passed on to next until it is settled.
func (l *ledger) track(next *linkOrigin) {
	l.next, l.sent = next, time.Now()
	next.outstanding.Add(1)
}

// untrack ends the count once; answered says the transaction completed,
// and how long it took then goes into next's latency. Expiry counts as
// the whole wait.
func (l *ledger) untrack(answered bool) {
	l.mu.Lock()
	next := l.next
	l.next = nil
	l.mu.Unlock()
	if next == nil {
		return
	}
	next.outstanding.Add(-1)
	if answered {
		next.observe(time.Since(l.sent))
	}
}

// route leads answers that come back to a ledger. Answers are taken only
// from next, the origin the dispatch (or the subscriber's copy) went to:
// nobody else can answer in its place.
type route struct {
	l       *ledger
	next    Origin
	expires time.Time
}

// routeTable holds the routes by key: a label this engine gave a
// transaction it passed on (echoed in the answers' "via" header), or the
// triggering id of a copy handed to a remote subscriber (echoed in the
// answer's resource). Both are made here and never repeat, so two
// emitters that chose the same transaction id never meet.
//
// Routes are dropped when their transaction completes, and otherwise
// expire: the table is swept for expired routes once as many routes were
// added as it holds (at least sweepEvery), so sweeping costs O(1) per
// route and the table holds only the routes still waiting.
type routeTable struct {
	ttl    time.Duration
	now    func() time.Time
	prefix string
	seq    atomic.Uint64

	mu    sync.Mutex
	m     map[string]*route
	added int // routes added since the last sweep
}

const sweepEvery = 1024

func newRouteTable(ttl time.Duration, now func() time.Time) *routeTable {
	// A random prefix keeps labels of an engine apart from those of the
	// engine that ran before it under the same id: a late answer for a
	// transaction the previous run passed on must find no route here.
	var b [5]byte
	rand.Read(b[:])
	return &routeTable{
		ttl:    ttl,
		now:    now,
		prefix: base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]) + ".",
		m:      map[string]*route{},
	}
}

// newKey returns a label or triggering id that this engine never gave
// before: cheaper than a UUID, and unique all the same.
func (rt *routeTable) newKey() string {
	n := rt.seq.Add(1)
	var buf [32]byte // the prefix is 9 bytes, a counter at most 13
	b := append(buf[:0], rt.prefix...)
	return string(strconv.AppendUint(b, n, 36))
}

// add makes a route from key to l for answers from next.
func (rt *routeTable) add(key string, l *ledger, next Origin) {
	now := rt.now()
	r := &route{l: l, next: next, expires: now.Add(rt.ttl)}
	l.mu.Lock()
	l.keys = append(l.keys, key)
	l.mu.Unlock()
	rt.mu.Lock()
	rt.added++
	if rt.added >= max(sweepEvery, len(rt.m)) {
		rt.added = 0
		for k, r := range rt.m {
			if !now.Before(r.expires) {
				delete(rt.m, k)
			}
		}
	}
	rt.m[key] = r
	rt.mu.Unlock()
}

// get returns the route for key when from may answer on it.
func (rt *routeTable) get(key string, from Origin) *route {
	if key == "" {
		return nil
	}
	rt.mu.Lock()
	r := rt.m[key]
	rt.mu.Unlock()
	if r == nil || r.next != from || !rt.now().Before(r.expires) {
		return nil
	}
	return r
}

// drop removes the routes that lead to l.
func (rt *routeTable) drop(l *ledger) {
	l.mu.Lock()
	keys := l.keys
	l.keys = nil
	l.mu.Unlock()
	rt.mu.Lock()
	for _, k := range keys {
		if r := rt.m[k]; r != nil && r.l == l {
			delete(rt.m, k)
		}
	}
	rt.mu.Unlock()
}

// dropOrigin removes every route whose answers would come from o, or go
// to o, which has gone, and returns the routes that were waiting for o,
// by key, so their emitters can be told.
func (rt *routeTable) dropOrigin(o Origin) map[string]*route {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var waiting map[string]*route
	for k, r := range rt.m {
		switch {
		case r.next == o:
			if waiting == nil {
				waiting = map[string]*route{}
			}
			waiting[k] = r
			delete(rt.m, k)
		case r.l.back.o == o:
			delete(rt.m, k)
		}
	}
	return waiting
}

func (rt *routeTable) len() int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return len(rt.m)
}
