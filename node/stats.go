package node

import "sync/atomic"

// counters are the engine's counts, reported by GET ["peer"].
type counters struct {
	received, forwarded, answered atomic.Uint64

	held          atomic.Uint64 // a link was held at its in-flight limit
	rejected      atomic.Uint64 // input that did not decode or was refused
	overloaded    atomic.Uint64 // answered 503: a subscriber's queue was full
	droppedEvents atomic.Uint64 // events not delivered to a slow subscriber
	undeliverable atomic.Uint64 // something for an origin that has gone
	late          atomic.Uint64 // answers after their transaction ended
	duplicate     atomic.Uint64 // second answers for one triggering id
	unrouted      atomic.Uint64 // answers for no transaction passed on here
	timedOut      atomic.Uint64 // 504s this engine answered
	exceptions    atomic.Uint64 // exceptions received for nothing pending
	sendTimeouts  atomic.Uint64 // a link took nothing for the answer timeout
	linkGone      atomic.Uint64 // answers owed by a link that went away (503)
	forbidden     atomic.Uint64 // refused for who sent them (403)
	unauthorized  atomic.Uint64 // bad signatures and replays (401)
	retried       atomic.Uint64 // requests sent to another replica after a 503
	rateLimited   atomic.Uint64 // reads a link waited for, over its rate

	unseenSubscriber atomic.Uint64 // BINDs refused: the subscriber was not seen on the topic (503)

	obs observations // by method and code, with latencies (observe.go)
}

// Stats, in the body of GET ["peer"], says what the engine did since it
// started, and what it holds now. Dropped counts, by reason, the
// dispatches and answers that were not passed on; each reason is a
// documented queue policy (docs/mesh.md, "Load").
type Stats struct {
	Received     uint64            `json:"received"`
	Forwarded    uint64            `json:"forwarded"`
	Answered     uint64            `json:"answered"`
	TimedOut     uint64            `json:"timedOut"`
	Overloaded   uint64            `json:"overloaded"`
	Held         uint64            `json:"held"`
	Retried      uint64            `json:"retried"`
	RateLimited  uint64            `json:"rateLimited"`
	Routes       int               `json:"routes"`
	Transactions int               `json:"transactions"`
	Dropped      map[string]uint64 `json:"dropped"`
}

// Stats returns the engine's counts.
func (n *Node) Stats() Stats {
	s := &n.stats
	txs := n.txs.len()
	st := Stats{
		Received:     s.received.Load(),
		Forwarded:    s.forwarded.Load(),
		Answered:     s.answered.Load(),
		TimedOut:     s.timedOut.Load(),
		Overloaded:   s.overloaded.Load(),
		Held:         s.held.Load(),
		Retried:      s.retried.Load(),
		RateLimited:  s.rateLimited.Load(),
		Routes:       n.routes.len(),
		Transactions: txs,
		Dropped: map[string]uint64{
			"rejected":         s.rejected.Load(),
			"slowSubscriber":   s.droppedEvents.Load(),
			"originGone":       s.undeliverable.Load(),
			"late":             s.late.Load(),
			"duplicate":        s.duplicate.Load(),
			"unrouted":         s.unrouted.Load(),
			"exceptions":       s.exceptions.Load(),
			"sendTimeout":      s.sendTimeouts.Load(),
			"linkGone":         s.linkGone.Load(),
			"forbidden":        s.forbidden.Load(),
			"unauthorized":     s.unauthorized.Load(),
			"unseenSubscriber": s.unseenSubscriber.Load(),
		},
	}
	if n.gossip != nil {
		g := n.gossip.drops()
		st.Dropped["gossipOutbound"] = g.Outbound
		st.Dropped["gossipValidation"] = g.Validation
		st.Dropped["gossipSubscriber"] = g.Subscriber
	}
	return st
}
