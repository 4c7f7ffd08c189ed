package simulations

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Outcome classes of a request.
const (
	OutcomeAnswered = "answered" // 200
	OutcomeRefused  = "refused"  // 503: a replica said it could not serve
	OutcomeTimedOut = "timedOut" // 504: no answer by the deadline, said so
	OutcomeFailed   = "failed"   // any other code (404, 502, ...): said so
	OutcomeLost     = "lost"     // no answer at all: the engine's promise broken
)

// outcomeOf classifies a final answer code (0: none came).
func outcomeOf(code int) string {
	switch {
	case code == 0:
		return OutcomeLost
	case code >= 200 && code < 300:
		return OutcomeAnswered
	case code == 503:
		return OutcomeRefused
	case code == 504:
		return OutcomeTimedOut
	}
	return OutcomeFailed
}

// Record is one request's fate.
type Record struct {
	Sent    time.Time
	Latency time.Duration
	Code    int
	Replica int // which replica answered, -1 if none said
	// Detail is the body of an answer that was neither 200, 503 nor 504
	// (what went wrong, in the engine's words), cut to 200 bytes.
	Detail string
}

// Recorder collects Records. Safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	records []Record
}

// Add records r.
func (r *Recorder) Add(rec Record) {
	r.mu.Lock()
	r.records = append(r.records, rec)
	r.mu.Unlock()
}

// Records returns the records sent in [from, to).
func (r *Recorder) Records(from, to time.Time) []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Record
	for _, rec := range r.records {
		if !rec.Sent.Before(from) && rec.Sent.Before(to) {
			out = append(out, rec)
		}
	}
	return out
}

// Reset forgets every record.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.records = nil
	r.mu.Unlock()
}

// Latencies summarises a set of requests.
type Latencies struct {
	Count    int            `json:"count"`
	Outcomes map[string]int `json:"outcomes"`
	// Answered is the share of requests answered 200.
	Answered float64 `json:"answered"`
	// Percentiles of the latency of answered requests, in milliseconds.
	Mean float64 `json:"meanMs"`
	P50  float64 `json:"p50Ms"`
	P90  float64 `json:"p90Ms"`
	P99  float64 `json:"p99Ms"`
	P999 float64 `json:"p999Ms"`
	Max  float64 `json:"maxMs"`
}

// Summarise computes Latencies over records.
func Summarise(records []Record) Latencies {
	l := Latencies{Count: len(records), Outcomes: map[string]int{}}
	ms := make([]float64, 0, len(records))
	for _, r := range records {
		o := outcomeOf(r.Code)
		l.Outcomes[o]++
		if o == OutcomeAnswered {
			ms = append(ms, float64(r.Latency)/float64(time.Millisecond))
		}
	}
	if len(records) > 0 {
		l.Answered = float64(len(ms)) / float64(len(records))
	}
	if len(ms) == 0 {
		return l
	}
	slices.Sort(ms)
	var sum float64
	for _, v := range ms {
		sum += v
	}
	l.Mean = sum / float64(len(ms))
	l.P50 = Quantile(ms, 0.50)
	l.P90 = Quantile(ms, 0.90)
	l.P99 = Quantile(ms, 0.99)
	l.P999 = Quantile(ms, 0.999)
	l.Max = ms[len(ms)-1]
	return l
}

// Quantile returns the q-quantile of sorted values (nearest rank).
func Quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// timeline is requests binned by the time they were sent: for each bin
// its start in seconds from the run's start, the requests sent per second
// that were answered 200 and the others, and the answered ones' p99
// latency in milliseconds.
type timeline struct {
	xs, ok, bad, p99 []float64
}

// binRecords bins the records sent from start on into bins of width bin,
// enough to reach total.
func binRecords(recs []Record, start time.Time, total, bin time.Duration) timeline {
	n := int(total/bin) + 1
	tl := timeline{xs: make([]float64, n), ok: make([]float64, n), bad: make([]float64, n), p99: make([]float64, n)}
	lat := make([][]float64, n)
	for _, rec := range recs {
		i := int(rec.Sent.Sub(start) / bin)
		if i < 0 || i >= n {
			continue
		}
		if rec.Code == 200 {
			tl.ok[i]++
			lat[i] = append(lat[i], ms(rec.Latency))
		} else {
			tl.bad[i]++
		}
	}
	for i := range n {
		tl.xs[i] = (time.Duration(i) * bin).Seconds()
		slices.Sort(lat[i])
		tl.p99[i] = Quantile(lat[i], 0.99)
		tl.ok[i] /= bin.Seconds()
		tl.bad[i] /= bin.Seconds()
	}
	return tl
}
