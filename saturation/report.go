package saturation

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
)

// ReportVersion is the version of the report format this package writes
// and the only one it reads. A change that older peers could misread
// (a new field, a new dimension) takes a new version.
const ReportVersion = 1

// Decoder defaults.
const (
	// DefaultMaxSize bounds an encoded report (8 KiB). The largest report
	// the limits on names and metrics allow fits; anything bigger is
	// refused before it is parsed.
	DefaultMaxSize = 8 << 10
	// DefaultMaxAge is how old a report may be when decoded (30 s): many
	// report intervals, so a slow gossip path still delivers, yet a
	// recorded report cannot be replayed much later.
	DefaultMaxAge = 30 * time.Second
	// DefaultMaxSkew is how far in the future a report's timestamp may be
	// (10 s), for peers whose clocks run ahead.
	DefaultMaxSkew = 10 * time.Second
)

// Report is the gossip message: one peer's saturation at one moment. It
// encodes as one JSON object, for example
//
//	{"v":1,"peer":"12D3KooW…","seq":1735689600000001,"ts":1735689600123,
//	 "names":["thumbnails"],"sat":{"cpu":0.42,"disk":0.61,"ram":0.35,
//	 "jobs":0.5},"metrics":[{"name":"jobs","value":5,"capacity":10}],
//	 "rif":3,"headroom":0.39,"level":"ok"}
//
// Saturations are smoothed (see Meter); metrics carry the raw value last
// set; rif is the instantaneous count. Headroom and Level are the
// sender's own view; a receiver may recompute headroom with Headroom and
// the level with its own Thresholds.
type Report struct {
	// Version is ReportVersion.
	Version int `json:"v"`
	// Peer is the sender's peer id.
	Peer string `json:"peer"`
	// Seq increases with every report of one peer, across restarts (a
	// Meter starts it from the clock), so receivers drop replays and
	// reorderings by comparing it.
	Seq uint64 `json:"seq"`
	// Time is when the report was made, in Unix milliseconds.
	Time int64 `json:"ts"`
	// Names are the service names the peer provides.
	Names []string `json:"names,omitempty"`
	// Saturation maps each dimension, system (Dim*) or application
	// (a metric's name), to its saturation in [0,1].
	Saturation map[string]float64 `json:"sat"`
	// Metrics are the application metrics, sorted by name.
	Metrics []Metric `json:"metrics,omitempty"`
	// InFlight is the number of requests in flight (RIF).
	InFlight int64 `json:"rif"`
	// Headroom is 1 - max(Saturation), in [0,1].
	Headroom float64 `json:"headroom"`
	// Level is the peer's own level, with its thresholds and hysteresis.
	Level Level `json:"level"`
	// Capacity is how much work the peer declares it can do, relative to
	// the other replicas of its names (its operator's choice; by default
	// its number of CPUs). Weighted policies share requests by it; zero
	// means undeclared.
	Capacity float64 `json:"cap,omitempty"`
}

// Timestamp returns Time as a time.Time.
func (r *Report) Timestamp() time.Time { return time.UnixMilli(r.Time) }

// Provides reports whether the peer announced the service name.
func (r *Report) Provides(name string) bool { return slices.Contains(r.Names, name) }

// Clone returns a deep copy, so the copy can be kept or changed without
// touching r.
func (r *Report) Clone() Report {
	c := *r
	c.Names = slices.Clone(r.Names)
	c.Saturation = maps.Clone(r.Saturation)
	c.Metrics = slices.Clone(r.Metrics)
	return c
}

// Validate checks everything about a report but its age: the version,
// the peer id, names and metrics against their limits, saturations and
// headroom within [0,1], every saturation key a system dimension or one
// of the report's metrics, counts within the limits. Errors wrap
// ErrReportVersion or ErrReportInvalid (and so dispatch.ErrBadDispatch).
func (r *Report) Validate() error {
	if r.Version != ReportVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrReportVersion, r.Version, ReportVersion)
	}
	if err := ValidatePeer(r.Peer); err != nil {
		return fmt.Errorf("%w: %w", ErrReportInvalid, err)
	}
	if r.Seq > maxSafeInt {
		return fmt.Errorf("%w: seq %d exceeds %d", ErrReportInvalid, r.Seq, uint64(maxSafeInt))
	}
	if r.Time <= 0 || r.Time > maxSafeInt {
		return fmt.Errorf("%w: timestamp %d out of range", ErrReportInvalid, r.Time)
	}
	if err := ValidateNames(r.Names); err != nil {
		return fmt.Errorf("%w: %w", ErrReportInvalid, err)
	}
	if len(r.Metrics) > MaxMetrics {
		return fmt.Errorf("%w: %d metrics, at most %d", ErrReportInvalid, len(r.Metrics), MaxMetrics)
	}
	metrics := make(map[string]bool, len(r.Metrics))
	for _, m := range r.Metrics {
		if err := ValidateMetric(m.Name, m.Value, m.Capacity); err != nil {
			return fmt.Errorf("%w: %w", ErrReportInvalid, err)
		}
		if metrics[m.Name] {
			return fmt.Errorf("%w: metric %q given twice", ErrReportInvalid, m.Name)
		}
		metrics[m.Name] = true
	}
	for dim, s := range r.Saturation {
		if !systemDims[dim] && !metrics[dim] {
			return fmt.Errorf("%w: unknown dimension %q", ErrReportInvalid, dim)
		}
		if !isFinite(s) || s < 0 || s > 1 {
			return fmt.Errorf("%w: saturation %q = %v outside [0,1]", ErrReportInvalid, dim, s)
		}
	}
	if r.InFlight < 0 || r.InFlight > maxSafeInt {
		return fmt.Errorf("%w: rif %d out of range", ErrReportInvalid, r.InFlight)
	}
	if !isFinite(r.Headroom) || r.Headroom < 0 || r.Headroom > 1 {
		return fmt.Errorf("%w: headroom %v outside [0,1]", ErrReportInvalid, r.Headroom)
	}
	if !isFinite(r.Capacity) || r.Capacity < 0 || r.Capacity > MaxCapacity {
		return fmt.Errorf("%w: capacity %v outside [0,%d]", ErrReportInvalid, r.Capacity, MaxCapacity)
	}
	if r.Level > LevelCritical {
		return fmt.Errorf("%w: %v", ErrReportInvalid, r.Level)
	}
	return nil
}

// EncodeReport validates r and encodes it as one line of JSON. A report
// that peers with the default decoder would refuse (invalid, or over
// DefaultMaxSize) is an error here rather than silently lost there. A
// zero Version is taken as ReportVersion.
func EncodeReport(r Report) ([]byte, error) {
	if r.Version == 0 {
		r.Version = ReportVersion
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if r.Saturation == nil {
		// "sat" is required on the wire; null would read as missing.
		r.Saturation = map[string]float64{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Names may hold <, > and &; escaping them would only grow reports
	// that never meet an HTML page.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&r); err != nil {
		return nil, fmt.Errorf("saturation: encode report: %w", err)
	}
	out := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(out) > DefaultMaxSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrReportTooLarge, len(out), DefaultMaxSize)
	}
	return out, nil
}
