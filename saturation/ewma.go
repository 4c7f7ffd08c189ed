package saturation

import (
	"math"
	"time"
)

// EWMA is an exponentially weighted moving average over samples that
// arrive at irregular times. A fixed smoothing factor would weigh a sample
// taken after a 10 s stall like one taken after 100 ms; here the weight of
// a sample depends on the time since the previous one:
//
//	alpha = 1 - 2^(-dt/halfLife)
//	value = value + alpha*(x - value)
//
// so the past loses half its weight every half-life, however it was
// sampled. For a value held constant between samples (a step function)
// this is exactly the continuous-time average. The first sample sets the
// value. The zero value is not usable; use NewEWMA. Not safe for
// concurrent use.
type EWMA struct {
	halfLife time.Duration
	value    float64
	last     time.Time
	started  bool
}

// NewEWMA returns an average with the given half-life. A half-life <= 0
// means no smoothing: the value is always the latest sample.
func NewEWMA(halfLife time.Duration) *EWMA { return &EWMA{halfLife: halfLife} }

// Alpha is the weight a sample taken dt after the previous one gets, for
// the given half-life: 1 - 2^(-dt/halfLife). It is 0 for dt <= 0 and 1
// for halfLife <= 0.
func Alpha(dt, halfLife time.Duration) float64 {
	if halfLife <= 0 {
		return 1
	}
	if dt <= 0 {
		return 0
	}
	// -expm1(-x ln2) is 1-2^-x without the cancellation that loses
	// precision when dt is tiny against the half-life.
	return -math.Expm1(-float64(dt) / float64(halfLife) * math.Ln2)
}

// Update folds in sample x taken at time at and returns the new value. A
// sample not later than the previous one carries no weight (alpha 0) and
// does not move the clock back, so reordered samples cannot distort the
// average. A non-finite x is ignored.
func (e *EWMA) Update(x float64, at time.Time) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return e.value
	}
	if !e.started {
		e.value, e.last, e.started = x, at, true
		return e.value
	}
	dt := at.Sub(e.last)
	if a := Alpha(dt, e.halfLife); a == 1 {
		e.value = x // exactly, where v + 1*(x-v) might round
	} else {
		e.value += a * (x - e.value)
	}
	if dt > 0 {
		e.last = at
	}
	return e.value
}

// Value returns the current average (0 before the first sample).
func (e *EWMA) Value() float64 { return e.value }

// Started reports whether a sample has been folded in.
func (e *EWMA) Started() bool { return e.started }

// Reset forgets every sample.
func (e *EWMA) Reset() { *e = EWMA{halfLife: e.halfLife} }
