package node

import (
	"sync/atomic"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/mesh"
	"github.com/jstp-peer/jstp-peer/routing"
	"github.com/jstp-peer/jstp-peer/saturation"
)

// What the engine records for metrics (package internal/metrics serves it
// in the Prometheus format). Recording sits on the path of every dispatch,
// so it takes no lock and allocates nothing: counters are fixed arrays of
// atomics indexed by method and by a small fixed set of codes, and
// latency histograms are arrays of atomic bucket counts. Everything else
// (queues, subscriptions, links, saturation, names) is read when metrics
// are asked for, from the state the peer keeps anyway.

// Method indexes. methodNone marks a ledger of something that was not
// passed on (a remote subscriber's copy), whose answers are not counted
// as answers to a forwarded dispatch.
const (
	methodNone uint8 = iota
	methodGET
	methodPOST
	methodPUT
	methodPATCH
	methodDELETE
	methodBIND
	methodRELEASE
	methodANSWER
	methodOther // no method (an exception) or one the engine does not name
	numMethods
)

var methodNames = [numMethods]string{
	"", dispatch.GET, dispatch.POST, dispatch.PUT, dispatch.PATCH, dispatch.DELETE,
	dispatch.BIND, dispatch.RELEASE, dispatch.ANSWER, "other",
}

// methodIndex indexes a method name; decoding made it uppercase.
func methodIndex(m string) uint8 {
	switch m {
	case dispatch.GET:
		return methodGET
	case dispatch.POST:
		return methodPOST
	case dispatch.PUT:
		return methodPUT
	case dispatch.PATCH:
		return methodPATCH
	case dispatch.DELETE:
		return methodDELETE
	case dispatch.BIND:
		return methodBIND
	case dispatch.RELEASE:
		return methodRELEASE
	case dispatch.ANSWER:
		return methodANSWER
	}
	return methodOther
}

// The codes counted one by one: every code the protocol names and the
// engine answers with. Any other code a handler chooses is counted in its
// class ("2xx", "4xx"...), so a handler cannot make the series unbounded.
var codeNames = [...]string{
	"200", "202", "400", "401", "403", "404", "405", "406", "413",
	"500", "502", "503", "504", "505", "508",
	"1xx", "2xx", "3xx", "4xx", "5xx", "other",
}

const numCodes = len(codeNames)

func codeIndex(c int) int {
	switch c {
	case 200:
		return 0
	case 202:
		return 1
	case 400:
		return 2
	case 401:
		return 3
	case 403:
		return 4
	case 404:
		return 5
	case 405:
		return 6
	case 406:
		return 7
	case 413:
		return 8
	case 500:
		return 9
	case 502:
		return 10
	case 503:
		return 11
	case 504:
		return 12
	case 505:
		return 13
	case 508:
		return 14
	}
	if c >= 100 && c < 600 {
		return 15 + c/100 - 1
	}
	return numCodes - 1
}

// latencyBounds are the upper bounds of the latency buckets: from a fast
// handler answering from memory (0.1 ms) to the default answer timeout.
var latencyBounds = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// LatencyBounds returns the upper bounds, in seconds, of the buckets of
// every LatencyHistogram.
func LatencyBounds() []float64 {
	out := make([]float64, len(latencyBounds))
	for i, b := range latencyBounds {
		out[i] = b.Seconds()
	}
	return out
}

// latency is a histogram: counts per bucket (not cumulative; the last
// bucket is above every bound) and the sum of what was observed.
type latency struct {
	buckets [len(latencyBounds) + 1]atomic.Uint64
	sum     atomic.Int64 // nanoseconds
}

func (h *latency) observe(d time.Duration) {
	i := 0
	for i < len(latencyBounds) && d > latencyBounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sum.Add(int64(d))
}

func (h *latency) snapshot(method string) (LatencyHistogram, bool) {
	out := LatencyHistogram{Method: method, Buckets: make([]uint64, len(latencyBounds))}
	var total uint64
	for i := range h.buckets {
		total += h.buckets[i].Load()
		if i < len(latencyBounds) {
			out.Buckets[i] = total
		}
	}
	out.Count = total
	out.Sum = time.Duration(h.sum.Load())
	return out, total > 0
}

// observations are the engine's counts by method and code, and its
// latency histograms; they live in counters.
type observations struct {
	received  [numMethods]atomic.Uint64
	forwarded [numMethods]atomic.Uint64
	answered  [numMethods][numCodes]atomic.Uint64
	returned  [numMethods][numCodes]atomic.Uint64
	handlers  [numMethods]latency
	forwards  [numMethods]latency
}

// observeReceived counts a dispatch that reached the engine from outside.
func (n *Node) observeReceived(d *dispatch.Dispatch) {
	n.stats.obs.received[methodIndex(d.Method)].Add(1)
}

// observeForwarded counts a dispatch passed on to another engine.
func (n *Node) observeForwarded(d *dispatch.Dispatch) {
	n.stats.obs.forwarded[methodIndex(d.Method)].Add(1)
}

// observeAnswered counts an answer the engine made itself for a dispatch
// it received or was given: 404 when nothing is bound, 503 when a
// subscriber's queue is full, the code of an error (502, 508...).
func (n *Node) observeAnswered(method string, code int) {
	n.stats.obs.answered[methodIndex(method)][codeIndex(code)].Add(1)
}

// observeHandled counts a handler's answer and how long it took from the
// handler's start. The code is the one answerFor gives body and err
// (an answer body that does not encode, 500 there, counts as 200 here).
func (n *Node) observeHandled(method string, body any, err error, start time.Time) {
	code := 200
	switch r := body.(type) {
	case Reply:
		code = r.Code
	case *Reply:
		code = r.Code
	}
	if err != nil {
		code = dispatch.Code(err)
	}
	m := methodIndex(method)
	n.stats.obs.answered[m][codeIndex(code)].Add(1)
	n.stats.obs.handlers[m].observe(time.Since(start))
}

// observeReturned counts a final answer that came back for a dispatch this
// engine passed on, and, for one passed on to a peer, how long after.
// Answers to a remote subscriber's copy (a ledger with no method) are
// not answers to a forwarded dispatch.
func (n *Node) observeReturned(l *ledger, code int) {
	if l.method == methodNone || code < 200 {
		return
	}
	n.stats.obs.returned[l.method][codeIndex(code)].Add(1)
	// sent was set before the ledger's route was added, and the answer
	// was found through that route.
	if !l.sent.IsZero() {
		n.stats.obs.forwards[l.method].observe(time.Since(l.sent))
	}
}

// MetricsSnapshot is what the engine recorded, read at one time (each
// count atomically, not all of them together).
type MetricsSnapshot struct {
	// Stats are the counts GET ["peer"] reports, drops by reason included.
	Stats Stats
	// Received counts, by method, the dispatches that reached the engine
	// from its links (peers, gateway clients, classic engines) and
	// through Receive; the application's own are not received.
	Received []MethodCount
	// Forwarded counts, by method, the dispatches passed on to another
	// engine.
	Forwarded []MethodCount
	// Answered counts the answers made here, by the dispatch's method
	// and the answer's code: the handlers' answers, 404 when nothing was
	// bound, 503 when a subscriber's queue was full, and the errors of
	// dispatches that could not be processed or passed on (400, 403,
	// 502, 508...). A BIND or RELEASE accepted (200) is not counted.
	// Only counts above zero are listed.
	Answered []OutcomeCount
	// Returned counts the final answers that came back for dispatches
	// passed on, by method and code. Only counts above zero are listed.
	Returned []OutcomeCount
	// HandlerLatency is, by method, how long handlers took from their
	// start to their answer, for dispatches that wanted one.
	HandlerLatency []LatencyHistogram
	// ForwardLatency is, by method, how long each final answer to a
	// dispatch passed on to another peer took to come back.
	ForwardLatency []LatencyHistogram
	// InFlight is the number of deliveries to subscriptions queued or
	// running (Node.InFlight).
	InFlight int64
	// Subscriptions describes the subscription table and its queues.
	Subscriptions SubscriptionMetrics
	// Links are the links attached to the engine, by kind.
	Links []LinkMetrics
}

// MethodCount is a count for one method ("other" for an exception or an
// unknown method).
type MethodCount struct {
	Method string
	Count  uint64
}

// OutcomeCount is a count for one method and answer code. Code is the
// code's number for the codes the protocol names, its class ("2xx")
// for any other.
type OutcomeCount struct {
	Method, Code string
	Count        uint64
}

// LatencyHistogram is a latency distribution for one method.
type LatencyHistogram struct {
	Method string
	// Buckets[i] counts the observations of at most LatencyBounds()[i]
	// (cumulative, as Prometheus has them).
	Buckets []uint64
	// Count counts every observation, those above the last bound too.
	Count uint64
	Sum   time.Duration
}

// SubscriptionMetrics describes the subscription table.
type SubscriptionMetrics struct {
	// Local are the application's handlers and bindings (built-in
	// resources included), Remote those of other peers and of gateway
	// clients, Relayed the bindings of clients passed on to another
	// engine (mirrors that deliver what comes back).
	Local, Remote, Relayed int
	// Queued is how many dispatches wait in subscription queues,
	// MaxQueued the longest queue, QueueCapacity the engine's bound of a
	// queue (its own resources have BuiltinQueueLen).
	Queued, MaxQueued, QueueCapacity int
}

// LinkMetrics describes the links of one kind ("peer", "classic-in",
// "classic-out").
type LinkMetrics struct {
	Kind  string
	Count int
	// InFlight counts the deliveries caused by these links' dispatches
	// that are queued or running; each link is held at LinkLimit.
	InFlight  int64
	LinkLimit int
	// Outstanding counts the transactions passed on to these links whose
	// answers are awaited.
	Outstanding int64
}

// Metrics returns what the engine recorded for metrics. It allocates and
// walks the subscription table: it is meant for a scrape, not for every
// dispatch.
func (n *Node) Metrics() MetricsSnapshot {
	o := &n.stats.obs
	s := MetricsSnapshot{
		Stats:     n.Stats(),
		InFlight:  n.busy.Load(),
		Received:  make([]MethodCount, 0, numMethods-1),
		Forwarded: make([]MethodCount, 0, numMethods-1),
	}
	for m := methodGET; m < numMethods; m++ {
		name := methodNames[m]
		s.Received = append(s.Received, MethodCount{name, o.received[m].Load()})
		s.Forwarded = append(s.Forwarded, MethodCount{name, o.forwarded[m].Load()})
		for c := range numCodes {
			if v := o.answered[m][c].Load(); v > 0 {
				s.Answered = append(s.Answered, OutcomeCount{name, codeNames[c], v})
			}
			if v := o.returned[m][c].Load(); v > 0 {
				s.Returned = append(s.Returned, OutcomeCount{name, codeNames[c], v})
			}
		}
		if h, ok := o.handlers[m].snapshot(name); ok {
			s.HandlerLatency = append(s.HandlerLatency, h)
		}
		if h, ok := o.forwards[m].snapshot(name); ok {
			s.ForwardLatency = append(s.ForwardLatency, h)
		}
	}
	sm := &s.Subscriptions
	sm.QueueCapacity = n.cfg.queueLen
	n.subs.each(func(sub *subscription) {
		switch {
		case sub.mirror:
			sm.Relayed++
		case sub.owner == Origin(n.local):
			sm.Local++
		default:
			sm.Remote++
		}
		q := sub.queued()
		sm.Queued += q
		sm.MaxQueued = max(sm.MaxQueued, q)
	})
	s.Links = n.linkMetrics()
	return s
}

// linkMetrics sums the links' counts by kind. Every link is watched from
// its Attach to its end, so the watched origins are the links.
func (n *Node) linkMetrics() []LinkMetrics {
	kinds := []mesh.LinkKind{mesh.PeerLink, mesh.ClassicIn, mesh.ClassicOut}
	out := make([]LinkMetrics, len(kinds))
	for i, k := range kinds {
		out[i] = LinkMetrics{Kind: k.String(), LinkLimit: n.cfg.linkInflight}
	}
	n.omu.Lock()
	defer n.omu.Unlock()
	for o := range n.origins {
		lo, ok := o.(*linkOrigin)
		if !ok {
			continue
		}
		for i, k := range kinds {
			if lo.kind == k {
				out[i].Count++
				out[i].InFlight += lo.inflight.Load()
				out[i].Outstanding += lo.outstanding.Load()
			}
		}
	}
	return out
}

// PeerMetrics is what a running peer reports for metrics: its engine's
// records, its saturation and what it heard of the others', its names.
type PeerMetrics struct {
	Engine MetricsSnapshot
	// Saturation is what GET ["saturation"] answers: this peer's report
	// and the latest report of every peer it heard from (bounded by the
	// table, saturation.DefaultMaxEntries).
	Saturation SaturationView
	// Reports counts what the table did with the reports received on
	// the saturation topic; Saturation.Rejected counts every report
	// dropped, those the table refused included.
	Reports saturation.TableStats
	// Names counts name announcements and resolutions.
	Names routing.NamesStats
	// Provided are the names this peer provides, sorted.
	Provided []string
	// Gossip counts gossipsub messages.
	Gossip mesh.TopicStats
}

// Metrics returns what the peer reports for metrics, read at the time of
// the call.
func (p *Peer) Metrics() PeerMetrics {
	m := PeerMetrics{
		Engine:   p.Node.Metrics(),
		Names:    p.Names.Stats(),
		Provided: p.Names.Provided(),
		Gossip:   p.topics.Stats(),
	}
	if p.sat != nil {
		m.Saturation = p.sat.view()
		m.Reports = p.sat.table.Stats()
	}
	return m
}
