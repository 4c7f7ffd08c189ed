package saturation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ReportDecoder decodes reports from untrusted peers. Its zero value uses
// the defaults: 8 KiB, 30 s maximum age, 10 s maximum clock skew.
type ReportDecoder struct {
	// MaxSize is the largest encoded report accepted, in bytes
	// (0: DefaultMaxSize).
	MaxSize int
	// MaxAge is how far before now a report's timestamp may be
	// (0: DefaultMaxAge).
	MaxAge time.Duration
	// MaxSkew is how far after now a report's timestamp may be
	// (0: DefaultMaxSkew).
	MaxSkew time.Duration
}

// DecodeReport decodes one report with the default ReportDecoder.
func DecodeReport(data []byte, now time.Time) (*Report, error) {
	return ReportDecoder{}.Decode(data, now)
}

// wireReport mirrors Report with pointers, so that a missing field is
// told apart from a zero one: every field but names and metrics is
// required.
type wireReport struct {
	Version    *int               `json:"v"`
	Peer       *string            `json:"peer"`
	Seq        *uint64            `json:"seq"`
	Time       *int64             `json:"ts"`
	Names      []string           `json:"names"`
	Saturation map[string]float64 `json:"sat"`
	Metrics    []wireMetric       `json:"metrics"`
	InFlight   *int64             `json:"rif"`
	Headroom   *float64           `json:"headroom"`
	Level      *string            `json:"level"`
	Capacity   float64            `json:"cap"`
}

type wireMetric struct {
	Name     *string  `json:"name"`
	Value    *float64 `json:"value"`
	Capacity *float64 `json:"capacity"`
}

// Decode checks the size, parses strictly (one JSON object, no unknown
// field, no trailing data), requires every field but names and metrics,
// validates the values (Report.Validate) and checks the timestamp
// against now. Every error wraps dispatch.ErrBadDispatch, through one of
// ErrReportTooLarge, ErrReportSyntax, ErrReportVersion, ErrReportMissing,
// ErrReportInvalid, ErrReportTooOld and ErrReportFuture.
func (d ReportDecoder) Decode(data []byte, now time.Time) (*Report, error) {
	maxSize := d.MaxSize
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if len(data) > maxSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrReportTooLarge, len(data), maxSize)
	}
	var w wireReport
	if err := strictUnmarshal(data, &w); err != nil {
		if v, ok := peekVersion(data); ok && v != ReportVersion {
			// A newer format fails the strict parse on its new fields;
			// say so rather than call it malformed.
			return nil, fmt.Errorf("%w: version %d, want %d", ErrReportVersion, v, ReportVersion)
		}
		return nil, fmt.Errorf("%w: %w", ErrReportSyntax, err)
	}
	r, err := w.report()
	if err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if err := d.checkTime(r.Time, now); err != nil {
		return nil, err
	}
	return r, nil
}

func (d ReportDecoder) checkTime(ts int64, now time.Time) error {
	maxAge, maxSkew := d.MaxAge, d.MaxSkew
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	if maxSkew <= 0 {
		maxSkew = DefaultMaxSkew
	}
	// Validate bounded ts to (0, 2^53); clamping now to ±2^62 ms (146
	// million years) keeps the difference within int64 for any clock.
	const bound = 1 << 62
	nowMs := min(max(now.UnixMilli(), -bound), bound)
	ageMs := nowMs - ts
	switch {
	case ageMs > maxAge.Milliseconds():
		return fmt.Errorf("%w: made %d ms ago, limit %v", ErrReportTooOld, ageMs, maxAge)
	case -ageMs > maxSkew.Milliseconds():
		return fmt.Errorf("%w: timestamp %d ms ahead, limit %v", ErrReportFuture, -ageMs, maxSkew)
	}
	return nil
}

// strictUnmarshal decodes exactly one JSON value into v, refusing unknown
// fields and anything but whitespace after the value.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty input")
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the report")
	}
	return nil
}

// peekVersion reads the "v" field leniently, only to word the error for
// a report that failed the strict parse.
func peekVersion(data []byte) (int, bool) {
	var p struct {
		V *int `json:"v"`
	}
	if json.Unmarshal(data, &p) != nil || p.V == nil {
		return 0, false
	}
	return *p.V, true
}

// report checks that the required fields are present and builds the
// Report. Empty lists become nil, so a decoded report encodes back to the
// same bytes and compares equal after a round trip.
func (w *wireReport) report() (*Report, error) {
	// The version decides how the rest reads, and the counts bound the
	// work below: both before anything else.
	if w.Version != nil && *w.Version != ReportVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrReportVersion, *w.Version, ReportVersion)
	}
	if len(w.Metrics) > MaxMetrics {
		return nil, fmt.Errorf("%w: %d metrics, at most %d", ErrReportInvalid, len(w.Metrics), MaxMetrics)
	}
	if len(w.Names) > MaxNames {
		return nil, fmt.Errorf("%w: %d names, at most %d", ErrReportInvalid, len(w.Names), MaxNames)
	}
	var missing []string
	need := func(present bool, name string) {
		if !present {
			missing = append(missing, name)
		}
	}
	need(w.Version != nil, "v")
	need(w.Peer != nil, "peer")
	need(w.Seq != nil, "seq")
	need(w.Time != nil, "ts")
	need(w.Saturation != nil, "sat")
	need(w.InFlight != nil, "rif")
	need(w.Headroom != nil, "headroom")
	need(w.Level != nil, "level")
	for i, m := range w.Metrics {
		need(m.Name != nil, fmt.Sprintf("metrics[%d].name", i))
		need(m.Value != nil, fmt.Sprintf("metrics[%d].value", i))
		need(m.Capacity != nil, fmt.Sprintf("metrics[%d].capacity", i))
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrReportMissing, strings.Join(missing, ", "))
	}
	level, err := ParseLevel(*w.Level)
	if err != nil {
		return nil, err
	}
	r := &Report{
		Version:    *w.Version,
		Peer:       *w.Peer,
		Seq:        *w.Seq,
		Time:       *w.Time,
		Saturation: w.Saturation,
		InFlight:   *w.InFlight,
		Headroom:   *w.Headroom,
		Level:      level,
		Capacity:   w.Capacity,
	}
	if len(w.Names) > 0 {
		r.Names = w.Names
	}
	if len(w.Metrics) > 0 {
		r.Metrics = make([]Metric, len(w.Metrics))
		for i, m := range w.Metrics {
			r.Metrics[i] = Metric{Name: *m.Name, Value: *m.Value, Capacity: *m.Capacity}
		}
	}
	return r, nil
}
