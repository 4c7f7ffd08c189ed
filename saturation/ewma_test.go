package saturation

import (
	"math"
	"testing"
	"time"
)

func TestAlpha(t *testing.T) {
	h := 10 * time.Second
	for _, tc := range []struct {
		dt, half time.Duration
		want     float64
	}{
		{h, h, 0.5},
		{2 * h, h, 0.75},
		{3 * h, h, 0.875},
		{h / 2, h, 1 - 1/math.Sqrt2},
		{0, h, 0},
		{-time.Second, h, 0},
		{time.Second, 0, 1},
		{0, 0, 1},
	} {
		approx(t, "Alpha("+tc.dt.String()+", "+tc.half.String()+")", Alpha(tc.dt, tc.half), tc.want)
	}
	// Tiny steps keep their precision (no 1-(1-ε) cancellation).
	if a := Alpha(time.Nanosecond, time.Hour); a <= 0 {
		t.Errorf("Alpha(1ns, 1h) = %v, want > 0", a)
	}
}

func TestEWMAFirstSampleSetsValue(t *testing.T) {
	e := NewEWMA(10 * time.Second)
	if e.Started() || e.Value() != 0 {
		t.Fatalf("new EWMA: started %v, value %v", e.Started(), e.Value())
	}
	if v := e.Update(0.7, t0); v != 0.7 {
		t.Fatalf("first Update = %v, want 0.7", v)
	}
}

func TestEWMAIrregularIntervals(t *testing.T) {
	h := 10 * time.Second
	e := NewEWMA(h)
	e.Update(0, t0)
	approx(t, "after one half-life", e.Update(1, t0.Add(h)), 0.5)
	// 20 s later: the remaining gap of 0.5 shrinks by 1-2^-2 = 0.75.
	approx(t, "after two more half-lives", e.Update(1, t0.Add(3*h)), 0.875)
}

// A value held constant reaches the same average however the time is cut
// into samples: that is what makes the weights right for irregular
// sampling.
func TestEWMAPartitionInvariance(t *testing.T) {
	h := 10 * time.Second
	steps := [][]time.Duration{
		{10 * time.Second},
		{time.Second, 3 * time.Second, 500 * time.Millisecond, 5500 * time.Millisecond},
		{9 * time.Second, 999 * time.Millisecond, time.Millisecond},
	}
	for _, parts := range steps {
		e := NewEWMA(h)
		e.Update(0, t0)
		at := t0
		for _, d := range parts {
			at = at.Add(d)
			e.Update(1, at)
		}
		approx(t, "value after 10 s in "+formatParts(parts), e.Value(), 0.5)
	}
}

func formatParts(parts []time.Duration) string {
	s := ""
	for i, d := range parts {
		if i > 0 {
			s += "+"
		}
		s += d.String()
	}
	return s
}

func TestEWMAOutOfOrderAndNonFinite(t *testing.T) {
	h := 10 * time.Second
	e := NewEWMA(h)
	e.Update(0, t0.Add(h))
	// Earlier than the last sample: no weight, and the clock stays.
	if v := e.Update(1, t0); v != 0 {
		t.Fatalf("out-of-order sample moved the value to %v", v)
	}
	if v := e.Update(math.NaN(), t0.Add(2*h)); v != 0 {
		t.Fatalf("NaN moved the value to %v", v)
	}
	if v := e.Update(math.Inf(1), t0.Add(2*h)); v != 0 {
		t.Fatalf("+Inf moved the value to %v", v)
	}
	// One half-life after the last accepted sample, not after t0.
	approx(t, "after out-of-order sample", e.Update(1, t0.Add(2*h)), 0.5)
}

func TestEWMANoSmoothing(t *testing.T) {
	e := NewEWMA(0)
	e.Update(0.2, t0)
	if v := e.Update(0.9, t0); v != 0.9 {
		t.Fatalf("half-life 0: value %v, want the latest sample 0.9", v)
	}
	e.Reset()
	if e.Started() {
		t.Fatal("Reset left the EWMA started")
	}
}
