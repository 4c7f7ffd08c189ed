package saturation

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// meterFixture is a Meter on a StaticSource and a hand-moved clock, with
// the changes it signalled.
type meterFixture struct {
	m     *Meter
	src   *StaticSource
	clock *fakeClock
	mu    sync.Mutex
	chg   []Change
}

func newMeterFixture(t *testing.T, s Sample, opts ...MeterOption) *meterFixture {
	t.Helper()
	f := &meterFixture{src: NewStaticSource(s), clock: newFakeClock()}
	base := []MeterOption{
		WithClock(f.clock.Now),
		WithLogger(quietLogger()),
		WithOnChange(func(c Change) {
			f.mu.Lock()
			f.chg = append(f.chg, c)
			f.mu.Unlock()
		}),
	}
	m, err := NewMeter("peer-a", f.src, append(base, opts...)...)
	if err != nil {
		t.Fatalf("NewMeter: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	f.m = m
	return f
}

func (f *meterFixture) changes() []Change {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Change(nil), f.chg...)
}

func (f *meterFixture) update(t *testing.T) {
	t.Helper()
	if err := f.m.Update(context.Background()); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func cpuSample(u float64) Sample { return Sample{CPU: u, HasCPU: true} }

func TestMeterSmoothsIrregularSamples(t *testing.T) {
	f := newMeterFixture(t, cpuSample(0), WithHalfLife(10*time.Second))
	f.update(t)
	f.src.Set(cpuSample(1))
	f.clock.Advance(10 * time.Second)
	f.update(t)
	approx(t, "cpu after one half-life", f.m.Report().Saturation[DimCPU], 0.5)
	f.clock.Advance(3 * time.Second)
	f.update(t)
	f.clock.Advance(17 * time.Second)
	f.update(t)
	// Two more half-lives in uneven steps: 1 - 0.5*0.25.
	approx(t, "cpu after three half-lives", f.m.Report().Saturation[DimCPU], 0.875)
}

func TestMeterReport(t *testing.T) {
	const gib = 1 << 30
	var rif atomic.Int64
	rif.Store(4)
	f := newMeterFixture(t, Sample{
		Disk:   Space{Free: 40 * gib, Total: 100 * gib},
		Memory: Space{Free: 3 * gib, Total: 4 * gib},
		CPU:    0.2, HasCPU: true,
	}, WithLoad(func() Load { return Load{InFlight: rif.Load(), QueueDepth: 1, QueueCapacity: 4} }))

	first := f.m.Report()
	if first.Headroom != 1 || len(first.Saturation) != 0 || first.Level != LevelOK {
		t.Fatalf("report before any sample: %+v", first)
	}
	if first.Seq != uint64(t0.UnixMicro())+1 {
		t.Fatalf("first seq %d, want the clock in µs + 1 = %d", first.Seq, t0.UnixMicro()+1)
	}

	if err := f.m.SetNames("web", "db"); err != nil {
		t.Fatal(err)
	}
	if err := f.m.SetMetric("jobs", 3, 10); err != nil {
		t.Fatal(err)
	}
	if err := f.m.SetMetric("conns", 50, 100); err != nil {
		t.Fatal(err)
	}
	f.update(t)
	f.clock.Advance(1500 * time.Millisecond)
	r := f.m.Report()

	want := map[string]float64{DimDisk: 0.6, DimRAM: 0.25, DimCPU: 0.2, DimQueue: 0.25, "jobs": 0.3, "conns": 0.5}
	if fmt.Sprint(r.Saturation) != fmt.Sprint(want) {
		t.Fatalf("saturations %v, want %v", r.Saturation, want)
	}
	// Every report takes the next number; the change Update signalled
	// took one.
	if c := f.changes(); len(c) != 1 || c[0].Report.Seq != first.Seq+1 {
		t.Fatalf("changes %+v, want one with seq %d", c, first.Seq+1)
	}
	if r.Seq != first.Seq+2 || r.Time != t0.Add(1500*time.Millisecond).UnixMilli() || r.Peer != "peer-a" || r.Version != ReportVersion {
		t.Fatalf("header fields: %+v", r)
	}
	if fmt.Sprint(r.Names) != "[db web]" || fmt.Sprint(r.Metrics) != "[{conns 50 100} {jobs 3 10}]" {
		t.Fatalf("names %v, metrics %v", r.Names, r.Metrics)
	}
	if r.InFlight != 4 || r.Headroom != 0.4 || r.Level != LevelOK {
		t.Fatalf("rif %d headroom %v level %v; want 4, 0.4, ok", r.InFlight, r.Headroom, r.Level)
	}
	rif.Store(9)
	if r := f.m.Report(); r.InFlight != 9 {
		t.Fatalf("rif %d, want the fresh 9", r.InFlight)
	}
	// What a Meter reports, peers accept.
	data, err := EncodeReport(r)
	if err != nil {
		t.Fatalf("EncodeReport: %v", err)
	}
	if _, err := DecodeReport(data, f.clock.Now()); err != nil {
		t.Fatalf("DecodeReport: %v", err)
	}
}

func TestMeterSignalsSignificantChanges(t *testing.T) {
	f := newMeterFixture(t, cpuSample(0.2), WithHalfLife(0))
	step := func(cpu float64) {
		t.Helper()
		f.src.Set(cpuSample(cpu))
		f.clock.Advance(2 * time.Second)
		f.update(t)
	}
	step(0.2)  // first sample: signalled
	step(0.25) // small move
	step(0.29) // still within 0.1 of 0.2
	step(0.31) // drifted 0.11 from the last signal: signalled
	step(0.31)
	if err := f.m.SetNames("web"); err != nil {
		t.Fatal(err)
	}
	step(0.31) // names changed: signalled
	step(0.85) // level to warning, and a big move
	step(0.85)
	if err := f.m.SetMetric("jobs", 1, 10); err != nil {
		t.Fatal(err)
	}
	step(0.85) // a new dimension: signalled
	f.m.RemoveMetric("jobs")
	step(0.85) // a dimension gone: signalled

	var got []string
	for _, c := range f.changes() {
		s := fmt.Sprintf("%.2f", c.Report.Saturation[DimCPU])
		if c.Event != nil {
			s += fmt.Sprintf("(%v->%v)", c.Event.From, c.Event.To)
			if c.Event.Report.Seq != c.Report.Seq {
				t.Errorf("event report seq %d, change report seq %d", c.Event.Report.Seq, c.Report.Seq)
			}
		}
		got = append(got, s)
	}
	want := "[0.20 0.31 0.31 0.85(ok->warning) 0.85 0.85]"
	if fmt.Sprint(got) != want {
		t.Fatalf("signalled %v, want %s", got, want)
	}
}

func TestMeterCriticalDoesNotFlap(t *testing.T) {
	f := newMeterFixture(t, cpuSample(0.2), WithHalfLife(0))
	for i := range 40 {
		v := 0.96
		if i%2 == 1 {
			v = 0.93
		}
		f.src.Set(cpuSample(v))
		f.clock.Advance(2 * time.Second)
		f.update(t)
	}
	var events []string
	for _, c := range f.changes() {
		if c.Event != nil {
			events = append(events, fmt.Sprintf("%v->%v", c.Event.From, c.Event.To))
		}
	}
	if fmt.Sprint(events) != "[ok->critical]" {
		t.Fatalf("events %v, want exactly [ok->critical]", events)
	}
	if l := f.m.Report().Level; l != LevelCritical {
		t.Fatalf("level %v", l)
	}
}

// A metric is smoothed as the step function the application set: its old
// value counts for the time it held.
func TestMeterMetricHeldValues(t *testing.T) {
	f := newMeterFixture(t, Sample{}, WithHalfLife(10*time.Second))
	if err := f.m.SetMetric("jobs", 0, 10); err != nil {
		t.Fatal(err)
	}
	if s, ok := f.m.Report().Saturation["jobs"]; !ok || s != 0 {
		t.Fatalf("a new metric is not reported at once: %v, %v", s, ok)
	}
	f.clock.Advance(10 * time.Second)
	if err := f.m.SetMetric("jobs", 10, 10); err != nil { // 0 held for 10 s, then 1
		t.Fatal(err)
	}
	approx(t, "right after the change", f.m.Report().Saturation["jobs"], 0)
	f.clock.Advance(10 * time.Second)
	f.update(t)
	approx(t, "one half-life after the change", f.m.Report().Saturation["jobs"], 0.5)
	// Setting it often, at irregular times, changes nothing while the
	// value stays the same.
	for _, d := range []time.Duration{time.Second, 3 * time.Second, 6 * time.Second} {
		f.clock.Advance(d)
		f.m.SetMetric("jobs", 10, 10)
	}
	approx(t, "two half-lives after the change", f.m.Report().Saturation["jobs"], 0.75)
}

func TestMeterSetMetricValidation(t *testing.T) {
	f := newMeterFixture(t, Sample{})
	for _, tc := range []struct {
		name            string
		value, capacity float64
	}{
		{"", 1, 1}, {"CPU", 1, 1}, {"cpu", 1, 1}, {"jobs", -1, 1}, {"jobs", 1, 0},
	} {
		if err := f.m.SetMetric(tc.name, tc.value, tc.capacity); !errors.Is(err, ErrInvalidMetric) {
			t.Errorf("SetMetric(%q, %v, %v) = %v, want ErrInvalidMetric", tc.name, tc.value, tc.capacity, err)
		}
	}
	for i := range MaxMetrics {
		if err := f.m.SetMetric(fmt.Sprintf("m%d", i), 1, 2); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.m.SetMetric("one-more", 1, 2); !errors.Is(err, ErrTooManyMetrics) {
		t.Fatalf("metric %d: %v, want ErrTooManyMetrics", MaxMetrics+1, err)
	}
	if err := f.m.SetMetric("m0", 2, 2); err != nil {
		t.Fatalf("updating an existing metric at the limit: %v", err)
	}
	if !f.m.RemoveMetric("m0") || f.m.RemoveMetric("m0") {
		t.Fatal("RemoveMetric did not report presence")
	}
	if err := f.m.SetNames("a", "a"); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("SetNames with a duplicate: %v", err)
	}
}

func TestMeterPartialSample(t *testing.T) {
	f := newMeterFixture(t, Sample{CPU: 0.5, HasCPU: true, Memory: Space{Free: 1, Total: 2}}, WithHalfLife(0))
	f.update(t)
	// The memory collector fails: ram keeps its last value.
	boom := errors.New("boom")
	f.src.Set(cpuSample(0.7))
	f.src.SetError(boom)
	f.clock.Advance(2 * time.Second)
	if err := f.m.Update(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want the source's error", err)
	}
	r := f.m.Report()
	if r.Saturation[DimCPU] != 0.7 || r.Saturation[DimRAM] != 0.5 {
		t.Fatalf("after a partial sample: %v", r.Saturation)
	}
	// It recovers but no longer reports memory: ram is dropped.
	f.src.SetError(nil)
	f.clock.Advance(2 * time.Second)
	f.update(t)
	if _, ok := f.m.Report().Saturation[DimRAM]; ok {
		t.Fatal("a dimension the source stopped reporting is still there")
	}
}

func TestNewMeterValidation(t *testing.T) {
	src := NewStaticSource(Sample{})
	for _, tc := range []struct {
		name string
		peer string
		src  Source
		opts []MeterOption
	}{
		{"bad peer", "a b", src, nil},
		{"nil source", "a", nil, nil},
		{"zero interval", "a", src, []MeterOption{WithInterval(0)}},
		{"negative half-life", "a", src, []MeterOption{WithHalfLife(-time.Second)}},
		{"nil clock", "a", src, []MeterOption{WithClock(nil)}},
		{"nil load", "a", src, []MeterOption{WithLoad(nil)}},
		{"nil logger", "a", src, []MeterOption{WithLogger(nil)}},
		{"zero delta", "a", src, []MeterOption{WithChangeDelta(0)}},
		{"negative capacity", "a", src, []MeterOption{WithScoring(Scoring{NetCapacity: -1})}},
		{"bad thresholds", "a", src, []MeterOption{WithThresholds(ThresholdConfig{Hysteresis: 2})}},
	} {
		if _, err := NewMeter(tc.peer, tc.src, tc.opts...); err == nil {
			t.Errorf("%s: NewMeter succeeded", tc.name)
		}
	}
}
