package saturation

import (
	"fmt"
	"log/slog"
	"time"
)

// Meter defaults not shared with other types.
const (
	// DefaultHalfLife is the Meter's smoothing half-life (10 s): five
	// samples at the default interval, long enough to ignore a
	// garbage-collection spike, short enough that a real surge shows
	// within a few report intervals.
	DefaultHalfLife = 10 * time.Second
	// DefaultChangeDelta is how far a smoothed saturation must move since
	// the last signalled change to count as significant (0.1).
	DefaultChangeDelta = 0.1
)

// MeterOption configures NewMeter.
type MeterOption func(*meterConfig) error

type meterConfig struct {
	interval   time.Duration
	halfLife   time.Duration
	now        func() time.Time
	load       func() Load
	scoring    Scoring
	thresholds ThresholdConfig
	delta      float64
	onChange   func(Change)
	logger     *slog.Logger
	capacity   float64
}

func defaultMeterConfig() meterConfig {
	return meterConfig{
		interval: DefaultInterval,
		halfLife: DefaultHalfLife,
		now:      time.Now,
		load:     func() Load { return Load{} },
		delta:    DefaultChangeDelta,
		logger:   slog.Default().With("pkg", "saturation"),
	}
}

// WithInterval sets how often the Meter samples its Source once started
// (default DefaultInterval, 2 s).
func WithInterval(d time.Duration) MeterOption {
	return func(c *meterConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: interval %v must be > 0", ErrInvalidConfig, d)
		}
		c.interval = d
		return nil
	}
}

// WithHalfLife sets the smoothing half-life (default DefaultHalfLife,
// 10 s). Zero turns smoothing off: reports carry the latest sample.
func WithHalfLife(d time.Duration) MeterOption {
	return func(c *meterConfig) error {
		if d < 0 {
			return fmt.Errorf("%w: half-life %v must be >= 0", ErrInvalidConfig, d)
		}
		c.halfLife = d
		return nil
	}
}

// WithClock sets the clock that stamps samples, reports and the first
// sequence number (default time.Now). The sampling ticker still runs on
// real time; simulations that step time call Update themselves.
func WithClock(now func() time.Time) MeterOption {
	return func(c *meterConfig) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidConfig)
		}
		c.now = now
		return nil
	}
}

// WithLoad supplies the peer's own load: requests in flight and queue
// depth (default: none). fn is called on every sample and every Report,
// possibly from several goroutines at once, so it must be safe for
// concurrent use and fast (reading atomic counters, typically); it must
// not call the Meter.
func WithLoad(fn func() Load) MeterOption {
	return func(c *meterConfig) error {
		if fn == nil {
			return fmt.Errorf("%w: nil load function", ErrInvalidConfig)
		}
		c.load = fn
		return nil
	}
}

// WithScoring sets the network capacity and disk reserve (default: 1
// Gbit/s, no reserve; see Scoring).
func WithScoring(s Scoring) MeterOption {
	return func(c *meterConfig) error {
		if err := s.validate(); err != nil {
			return err
		}
		c.scoring = s
		return nil
	}
}

// WithThresholds sets the warning and critical thresholds and the
// hysteresis (default: the zero ThresholdConfig, 0.80 / 0.95 / 0.05).
func WithThresholds(cfg ThresholdConfig) MeterOption {
	return func(c *meterConfig) error {
		c.thresholds = cfg
		return nil
	}
}

// WithChangeDelta sets how far a dimension's smoothed saturation must
// move, since the last signalled change, to signal again (default
// DefaultChangeDelta, 0.1).
func WithChangeDelta(d float64) MeterOption {
	return func(c *meterConfig) error {
		if !isFinite(d) || d <= 0 || d > 1 {
			return fmt.Errorf("%w: change delta %v must be in (0,1]", ErrInvalidConfig, d)
		}
		c.delta = d
		return nil
	}
}

// WithOnChange sets the function told of significant changes (default:
// none), so the peer can gossip a fresh report at once instead of at its
// next interval. It is called on the goroutine running Update (the
// Meter's own once started), one call at a time and in order. It may call
// Report, SetMetric, RemoveMetric and SetNames, but not Update or Close,
// which wait for it. A slow fn delays the next sample, nothing else.
func WithOnChange(fn func(Change)) MeterOption {
	return func(c *meterConfig) error {
		c.onChange = fn
		return nil
	}
}

// WithLogger sets the logger (default slog.Default() with pkg=saturation).
func WithLogger(l *slog.Logger) MeterOption {
	return func(c *meterConfig) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidConfig)
		}
		c.logger = l
		return nil
	}
}

// WithCapacity sets the capacity the reports declare (Report.Capacity):
// how much work the peer can do relative to the other replicas of its
// names. Default: zero, undeclared. It must be finite and in
// [0, MaxCapacity].
func WithCapacity(c float64) MeterOption {
	return func(cfg *meterConfig) error {
		if !isFinite(c) || c < 0 || c > MaxCapacity {
			return fmt.Errorf("%w: capacity %v outside [0,%d]", ErrInvalidConfig, c, MaxCapacity)
		}
		cfg.capacity = c
		return nil
	}
}
