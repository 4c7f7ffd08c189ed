package saturation

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"
)

// Change is a significant change of the Meter's state, handed to the
// WithOnChange function.
type Change struct {
	// Report is a fresh report (with its own sequence number), ready to
	// gossip.
	Report Report
	// Event is the level change, when the level changed; nil otherwise.
	// Its Report is the same report as above.
	Event *Event
}

// Meter measures one peer: it samples a Source, smooths every dimension
// with an EWMA, scores headroom and level, and makes Reports.
//
// Sampling happens on Update. Start runs Update at once and then every
// interval on a goroutine the Meter owns, until Close or the end of
// Start's ctx. Simulations that step time themselves call Update instead
// of Start.
//
// A change is significant, and told to the WithOnChange function, on the
// first sample, when the level changes, when a dimension appears or
// disappears, when names are set or a metric removed, and when any
// dimension's smoothed saturation moved by more than the change delta
// since the last significant change. The comparison is with the last
// signalled state, not the previous sample, so a slow drift is signalled
// too, once it adds up.
//
// Safe for concurrent use.
type Meter struct {
	peer string
	src  Source
	cfg  meterConfig

	// updateMu serialises Update from sampling to the OnChange call, so
	// changes are told in order.
	updateMu sync.Mutex

	mu         sync.Mutex // guards everything below
	thresholds *Thresholds
	seq        uint64
	names      []string
	dims       map[string]*EWMA
	metrics    map[string]*appMetric
	smoothed   map[string]float64
	level      Level
	signalled  map[string]float64 // saturations at the last significant change; nil before the first
	dirty      bool               // names or metrics changed since then
	lastErr    string
	started    bool
	closed     bool
	cancel     context.CancelFunc

	wg        sync.WaitGroup
	closeOnce sync.Once
}

// appMetric is an application metric and its smoothed saturation.
type appMetric struct {
	Metric
	ewma *EWMA
}

// NewMeter returns a meter for peer reading src. It starts nothing; see
// Start. The first report's sequence number is the clock in Unix
// microseconds, so a restarted peer's reports outrank its earlier ones
// without any state kept on disk (as long as its clock does not step
// back).
func NewMeter(peer string, src Source, opts ...MeterOption) (*Meter, error) {
	if err := ValidatePeer(peer); err != nil {
		return nil, err
	}
	if src == nil {
		return nil, fmt.Errorf("%w: nil source", ErrInvalidConfig)
	}
	cfg := defaultMeterConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	th, err := NewThresholds(cfg.thresholds)
	if err != nil {
		return nil, err
	}
	return &Meter{
		peer:       peer,
		src:        src,
		cfg:        cfg,
		thresholds: th,
		seq:        uint64(max(cfg.now().UnixMicro(), 0)),
		dims:       make(map[string]*EWMA),
		metrics:    make(map[string]*appMetric),
		smoothed:   map[string]float64{},
	}, nil
}

// Start runs Update now and then every interval, on a goroutine owned by
// the Meter, until ctx ends or Close is called. Calling it again, or
// after Close, does nothing.
func (m *Meter) Start(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started || m.closed {
		return
	}
	m.started = true
	ctx, m.cancel = context.WithCancel(ctx)
	m.wg.Add(1)
	go m.loop(ctx)
}

func (m *Meter) loop(ctx context.Context) {
	defer m.wg.Done()
	tick := time.NewTicker(m.cfg.interval)
	defer tick.Stop()
	for {
		// The error is logged by Update; the loop goes on regardless,
		// since a collector may recover.
		_ = m.Update(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Close stops the sampling goroutine and waits for it to return. It is
// idempotent and always returns nil. It must not be called from the
// OnChange function.
func (m *Meter) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		cancel := m.cancel
		m.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		m.wg.Wait()
	})
	return nil
}

// Update takes one sample, folds it into the smoothed state, updates the
// level, and calls the OnChange function if the change is significant.
// It returns the Source's error, if any; a partial sample is still used.
// A dimension missing from a sample because its collector failed keeps
// its last smoothed value (a transient error should not look like a
// recovery); one the Source stops reporting without error is dropped.
func (m *Meter) Update(ctx context.Context) error {
	m.updateMu.Lock()
	defer m.updateMu.Unlock()
	s, err := m.src.Sample(ctx)
	if err != nil && ctx.Err() != nil {
		return err
	}
	sats := m.cfg.scoring.Saturations(s, m.cfg.load())

	m.mu.Lock()
	now := m.cfg.now()
	for dim, v := range sats {
		e := m.dims[dim]
		if e == nil {
			e = NewEWMA(m.cfg.halfLife)
			m.dims[dim] = e
		}
		e.Update(v, now)
	}
	if err == nil {
		for dim := range m.dims {
			if _, ok := sats[dim]; !ok {
				delete(m.dims, dim)
			}
		}
	}
	smoothed := make(map[string]float64, len(m.dims)+len(m.metrics))
	for dim, e := range m.dims {
		smoothed[dim] = e.Value()
	}
	for name, am := range m.metrics {
		smoothed[name] = am.ewma.Update(am.saturation(), now)
	}
	m.smoothed = smoothed
	ev, levelChanged := m.thresholds.Observe(Report{Peer: m.peer, Saturation: smoothed})
	m.level = m.thresholds.Level(m.peer)
	significant := levelChanged || m.dirty || m.movedLocked()
	if significant {
		// A copy: SetMetric updates m.smoothed in place.
		m.signalled = maps.Clone(smoothed)
		m.dirty = false
	}
	logSample := m.sampleLogLocked(err)
	m.mu.Unlock()
	logSample()

	if significant && m.cfg.onChange != nil {
		c := Change{Report: m.Report()}
		if levelChanged {
			ev.Report = c.Report
			c.Event = &ev
		}
		m.cfg.onChange(c)
	}
	return err
}

// movedLocked reports whether the smoothed state differs significantly
// from the last signalled one.
func (m *Meter) movedLocked() bool {
	if m.signalled == nil || len(m.signalled) != len(m.smoothed) {
		return true
	}
	for dim, v := range m.smoothed {
		old, ok := m.signalled[dim]
		if !ok || math.Abs(v-old) > m.cfg.delta {
			return true
		}
	}
	return false
}

// sampleLogLocked decides what to log about a sample's error: a failing
// Source once per distinct error, not at every interval, and once when it
// recovers. The returned function logs, after the lock is released.
func (m *Meter) sampleLogLocked(err error) func() {
	switch {
	case err != nil && err.Error() != m.lastErr:
		m.lastErr = err.Error()
		return func() { m.cfg.logger.Warn("sample failed; using what was measured", "peer", m.peer, "err", err) }
	case err == nil && m.lastErr != "":
		m.lastErr = ""
		return func() { m.cfg.logger.Info("sample recovered", "peer", m.peer) }
	}
	return func() {}
}

// Report returns the current state as a new report, with the next
// sequence number and the current time: call it when about to publish.
// Saturations and headroom are rounded to 4 decimals, finer than any
// measurement here is accurate, which keeps reports short; headroom is
// computed from the rounded values, so a receiver recomputing it with
// Headroom gets the same number.
func (m *Meter) Report() Report {
	load := m.cfg.load()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	sat := make(map[string]float64, len(m.smoothed))
	for dim, v := range m.smoothed {
		sat[dim] = round4(v)
	}
	r := Report{
		Version:    ReportVersion,
		Peer:       m.peer,
		Seq:        m.seq,
		Time:       m.cfg.now().UnixMilli(),
		Names:      slices.Clone(m.names),
		Saturation: sat,
		InFlight:   max(load.InFlight, 0),
		Headroom:   round4(Headroom(sat)),
		Level:      m.level,
		Capacity:   m.cfg.capacity,
	}
	for _, name := range slices.Sorted(maps.Keys(m.metrics)) {
		r.Metrics = append(r.Metrics, m.metrics[name].Metric)
	}
	return r
}

// SetMetric sets an application metric: its current value against its
// capacity. The name must be 1..64 bytes of [a-z0-9._-] and not a system
// dimension; value finite and >= 0; capacity finite and > 0 (errors wrap
// ErrInvalidMetric). At most MaxMetrics metrics may be set
// (ErrTooManyMetrics).
//
// The value is taken as held until the next SetMetric, and smoothed as
// such: the old value is folded in for the time it held, so the average
// is exact however irregularly the application sets it. A new metric
// appears in Report at once with its first value; it is signalled as a
// change at the next Update.
func (m *Meter) SetMetric(name string, value, capacity float64) error {
	if err := ValidateMetric(name, value, capacity); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.now()
	am := m.metrics[name]
	if am == nil {
		if len(m.metrics) >= MaxMetrics {
			return fmt.Errorf("%w: %q would be metric %d, at most %d", ErrTooManyMetrics, name, len(m.metrics)+1, MaxMetrics)
		}
		am = &appMetric{ewma: NewEWMA(m.cfg.halfLife)}
		m.metrics[name] = am
	} else {
		am.ewma.Update(am.saturation(), now)
	}
	am.Metric = Metric{Name: name, Value: value, Capacity: capacity}
	if !am.ewma.Started() {
		am.ewma.Update(am.saturation(), now)
	}
	m.smoothed[name] = am.ewma.Value()
	return nil
}

// RemoveMetric drops an application metric and reports whether it was
// set.
func (m *Meter) RemoveMetric(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.metrics[name]; !ok {
		return false
	}
	delete(m.metrics, name)
	delete(m.smoothed, name)
	m.dirty = true
	return true
}

// SetNames sets the service names reported as provided (see
// ValidateNames; errors wrap ErrInvalidName). They are reported sorted.
// The next Update signals a change, so the new names are gossiped at
// once.
func (m *Meter) SetNames(names ...string) error {
	if err := ValidateNames(names); err != nil {
		return err
	}
	sorted := slices.Sorted(slices.Values(names))
	m.mu.Lock()
	defer m.mu.Unlock()
	m.names = sorted
	m.dirty = true
	return nil
}

// saturation is the metric's Value/Capacity clamped to [0,1].
func (am *appMetric) saturation() float64 { return ratio(am.Value, am.Capacity) }

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }
