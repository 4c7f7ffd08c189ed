package saturation

import (
	"fmt"
	"maps"
	"slices"
)

// Threshold defaults.
const (
	// DefaultWarning is the saturation at which a dimension reaches
	// LevelWarning (0.80): time to plan, for instance to start a replica.
	DefaultWarning = 0.80
	// DefaultCritical is the saturation at which a dimension reaches
	// LevelCritical (0.95): the peer should get no new work it can avoid.
	DefaultCritical = 0.95
	// DefaultHysteresis is how far below a threshold a dimension must
	// fall to leave the level (0.05). Smoothed signals still wobble by a
	// few percent; without a band a peer at 0.95 would flap between
	// critical and warning and spray events at whoever binds to them.
	DefaultHysteresis = 0.05
)

// Limits are the warning and critical thresholds of one dimension, as
// saturations: 0 < Warning <= Critical <= 1.
type Limits struct {
	Warning  float64
	Critical float64
}

// ThresholdConfig configures NewThresholds. The zero value uses the
// defaults (warning 0.80, critical 0.95, hysteresis 0.05, for every
// dimension).
type ThresholdConfig struct {
	// Default applies to every dimension without its own limits. A zero
	// Limits takes DefaultWarning and DefaultCritical.
	Default Limits
	// Dimensions overrides the limits of single dimensions, keyed by
	// system dimension (Dim*) or metric name.
	Dimensions map[string]Limits
	// Hysteresis is the band below a threshold within which a dimension
	// keeps its level (0: DefaultHysteresis; negative: no band).
	Hysteresis float64
}

// Event is a change of a peer's level.
type Event struct {
	Peer string
	From Level
	To   Level
	// Dimensions are the dimensions at level To, sorted (none when To is
	// LevelOK): what to look at, or what to scale.
	Dimensions []string
	// Report is the report that caused the change.
	Report Report
}

// Thresholds turns saturations into levels and level changes, per peer
// and per dimension, with hysteresis:
//
//   - a dimension rises to the highest level whose threshold it reaches
//     (it may jump from ok to critical at once);
//   - it falls only once it is below its current level's threshold minus
//     the hysteresis, to the level its saturation reaches with every
//     threshold lowered by the hysteresis.
//
// A peer's level is the highest of its dimensions'. A value oscillating
// around a threshold, by less than the hysteresis, thus changes the level
// once, not at every crossing.
//
// It is deterministic and starts no goroutine: the same reports in the
// same order give the same events. A peer first seen starts at LevelOK.
// Not safe for concurrent use; the Meter guards its own.
type Thresholds struct {
	def        Limits
	dims       map[string]Limits
	hysteresis float64
	peers      map[string]*peerLevels
}

type peerLevels struct {
	level Level
	dims  map[string]Level
}

// NewThresholds checks cfg and returns thresholds with no peer seen.
func NewThresholds(cfg ThresholdConfig) (*Thresholds, error) {
	t := &Thresholds{
		def:        cfg.Default,
		dims:       maps.Clone(cfg.Dimensions),
		hysteresis: cfg.Hysteresis,
		peers:      make(map[string]*peerLevels),
	}
	if t.def == (Limits{}) {
		t.def = Limits{Warning: DefaultWarning, Critical: DefaultCritical}
	}
	switch {
	case t.hysteresis == 0:
		t.hysteresis = DefaultHysteresis
	case t.hysteresis < 0:
		t.hysteresis = 0
	}
	if !isFinite(t.hysteresis) || t.hysteresis >= 1 {
		return nil, fmt.Errorf("%w: hysteresis %v must be in [0,1)", ErrInvalidConfig, cfg.Hysteresis)
	}
	if err := t.def.validate("default"); err != nil {
		return nil, err
	}
	for dim, l := range t.dims {
		if err := l.validate(dim); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (l Limits) validate(dim string) error {
	if !isFinite(l.Warning) || !isFinite(l.Critical) || l.Warning <= 0 || l.Warning > l.Critical || l.Critical > 1 {
		return fmt.Errorf("%w: %s limits %+v: want 0 < warning <= critical <= 1", ErrInvalidConfig, dim, l)
	}
	return nil
}

// Limits returns the limits that apply to dim.
func (t *Thresholds) Limits(dim string) Limits {
	if l, ok := t.dims[dim]; ok {
		return l
	}
	return t.def
}

// Observe updates r.Peer's levels from r.Saturation and returns the
// event when the peer's level changed. Dimensions absent from r are
// forgotten (they start again from ok if they come back). Report.Level is
// not read: the thresholds are the observer's own.
func (t *Thresholds) Observe(r Report) (Event, bool) {
	p := t.peers[r.Peer]
	if p == nil {
		p = &peerLevels{dims: make(map[string]Level, len(r.Saturation))}
		t.peers[r.Peer] = p
	}
	for dim := range p.dims {
		if _, ok := r.Saturation[dim]; !ok {
			delete(p.dims, dim)
		}
	}
	level := LevelOK
	for dim, s := range r.Saturation {
		l := step(p.dims[dim], s, t.Limits(dim), t.hysteresis)
		p.dims[dim] = l
		level = max(level, l)
	}
	if level == p.level {
		return Event{}, false
	}
	ev := Event{Peer: r.Peer, From: p.level, To: level, Report: r.Clone()}
	p.level = level
	if level > LevelOK {
		for dim, l := range p.dims {
			if l == level {
				ev.Dimensions = append(ev.Dimensions, dim)
			}
		}
		slices.Sort(ev.Dimensions)
	}
	return ev, true
}

// Level returns peer's current level (LevelOK for a peer not seen).
func (t *Thresholds) Level(peer string) Level {
	if p := t.peers[peer]; p != nil {
		return p.level
	}
	return LevelOK
}

// Forget drops peer's state, for a peer gone from the mesh (or from the
// Table), so the thresholds' memory follows the mesh.
func (t *Thresholds) Forget(peer string) { delete(t.peers, peer) }

// step moves one dimension from level cur given saturation s.
func step(cur Level, s float64, l Limits, h float64) Level {
	if !isFinite(s) {
		return cur
	}
	up := classify(s, l.Warning, l.Critical)
	if up >= cur {
		return up
	}
	// Falling: keep every level whose threshold s is still within the
	// band of, and never rise above where we were.
	return min(cur, classify(s, l.Warning-h, l.Critical-h))
}

func classify(s, warning, critical float64) Level {
	switch {
	case s >= critical:
		return LevelCritical
	case s >= warning:
		return LevelWarning
	default:
		return LevelOK
	}
}
