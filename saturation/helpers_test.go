package saturation

import (
	"log/slog"
	"sync"
	"testing"
	"time"
)

// t0 is an arbitrary fixed instant the tests measure time from.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// validReport returns a report that DecodeReport accepts at now.
func validReport(peer string, seq uint64, now time.Time) Report {
	return Report{
		Version:    ReportVersion,
		Peer:       peer,
		Seq:        seq,
		Time:       now.UnixMilli(),
		Names:      []string{"thumbnails"},
		Saturation: map[string]float64{DimCPU: 0.42, DimDisk: 0.61, DimRAM: 0.35, "jobs": 0.5},
		Metrics:    []Metric{{Name: "jobs", Value: 5, Capacity: 10}},
		InFlight:   3,
		Headroom:   0.39,
		Level:      LevelOK,
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func approx(t *testing.T, what string, got, want float64) {
	t.Helper()
	const eps = 1e-9
	if got-want > eps || want-got > eps {
		t.Errorf("%s = %.12g, want %.12g", what, got, want)
	}
}
