package saturation

import (
	"context"
	"sync"
)

// Source reads a peer's resources. The Meter calls Sample from its own
// goroutine, one call at a time, once per interval; a Source that keeps
// state between calls (as SystemSource does for rates) can rely on that.
// Sample should return promptly and honour ctx.
//
// A Source may return a partial Sample together with a non-nil error when
// some collectors failed: the Meter uses what was measured and logs the
// error, so one broken collector does not blind the others.
//
// SystemSource reads the real machine; StaticSource and SourceFunc let
// tests and simulations drive a Meter with synthetic values.
type Source interface {
	Sample(ctx context.Context) (Sample, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context) (Sample, error)

// Sample calls f.
func (f SourceFunc) Sample(ctx context.Context) (Sample, error) { return f(ctx) }

// Space is a quantity of bytes that can run out: Free of Total. A zero
// Total means the dimension was not measured.
type Space struct {
	Free  uint64
	Total uint64
}

// Sample is one reading of the machine, in raw units: saturations are
// derived from it by Scoring, in one place, so that every Source (real or
// synthetic) is scored alike. Dimensions not measured are marked as such
// rather than given a made-up value.
type Sample struct {
	// Disk is the filesystem holding the data dir. Total is what the
	// filesystem offers unprivileged processes (used + available), so
	// blocks reserved for root do not count as free.
	Disk Space
	// Memory is RAM: Free is the memory available to new work without
	// swapping (Linux's MemAvailable), not merely unused pages.
	Memory Space
	// CPU is the share of CPU time spent busy, over all cores, since the
	// previous sample, in [0,1]. Valid only when HasCPU.
	CPU    float64
	HasCPU bool
	// NetIn and NetOut are the bytes per second received and sent, over
	// all non-loopback interfaces, since the previous sample. Valid only
	// when HasNet.
	NetIn, NetOut float64
	HasNet        bool
}

// Load is what the peer itself knows of its work, supplied to the Meter
// through WithLoad.
type Load struct {
	// InFlight is the number of requests being processed now (RIF). It
	// is reported raw, not smoothed: replica choice wants it fresh.
	InFlight int64
	// QueueDepth and QueueCapacity give the "backlog" dimension,
	// QueueDepth/QueueCapacity, when QueueCapacity > 0.
	QueueDepth    int64
	QueueCapacity int64
}

// StaticSource returns whatever sample it was last given: a settable
// source for tests and simulations. Safe for concurrent use.
type StaticSource struct {
	mu     sync.Mutex
	sample Sample
	err    error
	calls  int
}

// NewStaticSource returns a source that yields s until Set changes it.
func NewStaticSource(s Sample) *StaticSource { return &StaticSource{sample: s} }

// Set replaces the sample returned from now on.
func (s *StaticSource) Set(sample Sample) {
	s.mu.Lock()
	s.sample = sample
	s.mu.Unlock()
}

// SetError makes Sample return err (with the current sample) until it is
// called again with nil.
func (s *StaticSource) SetError(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

// Calls returns how many times Sample was called.
func (s *StaticSource) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Sample returns the current sample and error.
func (s *StaticSource) Sample(ctx context.Context) (Sample, error) {
	if err := ctx.Err(); err != nil {
		return Sample{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	return s.sample, s.err
}
