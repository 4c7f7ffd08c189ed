package saturation

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

func TestReportRoundTrip(t *testing.T) {
	r := validReport("peer-a", 42, t0)
	data, err := EncodeReport(r)
	if err != nil {
		t.Fatalf("EncodeReport: %v", err)
	}
	const want = `{"v":1,"peer":"peer-a","seq":42,"ts":1772366400000,"names":["thumbnails"],` +
		`"sat":{"cpu":0.42,"disk":0.61,"jobs":0.5,"ram":0.35},"metrics":[{"name":"jobs","value":5,"capacity":10}],` +
		`"rif":3,"headroom":0.39,"level":"ok"}`
	if string(data) != want {
		t.Fatalf("encoding:\n got %s\nwant %s", data, want)
	}
	got, err := DecodeReport(data, t0)
	if err != nil {
		t.Fatalf("DecodeReport: %v", err)
	}
	if !reflect.DeepEqual(*got, r) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", *got, r)
	}
}

func TestEncodeReportDefaults(t *testing.T) {
	r := validReport("peer-a", 1, t0)
	r.Version = 0
	r.Saturation = nil
	r.Metrics = nil
	data, err := EncodeReport(r)
	if err != nil {
		t.Fatalf("EncodeReport: %v", err)
	}
	if !strings.Contains(string(data), `"v":1,`) || !strings.Contains(string(data), `"sat":{}`) {
		t.Fatalf("encoding %s lacks the version or an empty sat object", data)
	}
	if _, err := DecodeReport(data, t0); err != nil {
		t.Fatalf("DecodeReport(EncodeReport(r)): %v", err)
	}
	r.Saturation = map[string]float64{DimCPU: 1.5}
	if _, err := EncodeReport(r); !errors.Is(err, ErrReportInvalid) {
		t.Fatalf("EncodeReport of an invalid report: %v, want ErrReportInvalid", err)
	}
}

// The limits on names and metrics are sized so that the largest valid
// report still fits DefaultMaxSize: build it and check.
func TestLargestReportFits(t *testing.T) {
	r := Report{
		Version:    ReportVersion,
		Peer:       strings.Repeat("P", MaxPeerLen),
		Seq:        maxSafeInt,
		Time:       maxSafeInt,
		Saturation: map[string]float64{},
		InFlight:   maxSafeInt,
		Headroom:   0.12345678901234568,
		Level:      LevelCritical,
		Capacity:   MaxCapacity - 0.12345678901234568,
	}
	for i := range MaxNames {
		// Quotes and U+2028 both double in JSON; the index keeps names distinct.
		r.Names = append(r.Names, fmt.Sprintf("%02d", i)+strings.Repeat(`"`, MaxServiceNameLen-2))
	}
	for dim := range systemDims {
		r.Saturation[dim] = 0.12345678901234568
	}
	for i := range MaxMetrics {
		name := fmt.Sprintf("%02d", i) + strings.Repeat("m", MaxMetricNameLen-2)
		r.Metrics = append(r.Metrics, Metric{Name: name, Value: 1.2345678901234567e+300, Capacity: 1.2345678901234567e-300})
		r.Saturation[name] = 0.12345678901234568
	}
	data, err := EncodeReport(r)
	if err != nil {
		t.Fatalf("EncodeReport of the largest report: %v", err)
	}
	t.Logf("largest report: %d bytes of %d", len(data), DefaultMaxSize)
	if _, err := (ReportDecoder{MaxAge: time.Duration(1<<62 - 1)}).Decode(data, time.UnixMilli(maxSafeInt)); err != nil {
		t.Fatalf("decoding the largest report: %v", err)
	}
}

// decodeCase is the JSON of a valid report changed by mutate (nil: as
// is), or raw when that is set.
type decodeCase struct {
	name   string
	mutate func(m map[string]any)
	raw    string
	now    time.Time
	dec    ReportDecoder
	want   error
}

func TestDecodeReportRejects(t *testing.T) {
	set := setField
	del := func(k string) func(map[string]any) { return func(m map[string]any) { delete(m, k) } }
	setSat := func(k string, v any) func(map[string]any) {
		return func(m map[string]any) { m["sat"].(map[string]any)[k] = v }
	}
	setMetric := func(k string, v any) func(map[string]any) {
		return func(m map[string]any) { m["metrics"].([]any)[0].(map[string]any)[k] = v }
	}
	n := func(count int, f func(i int) any) []any {
		out := make([]any, count)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	cases := []decodeCase{
		{name: "over the size limit", raw: "{" + strings.Repeat(" ", DefaultMaxSize) + "}", want: ErrReportTooLarge},
		{name: "over a custom size limit", mutate: func(map[string]any) {}, dec: ReportDecoder{MaxSize: 64}, want: ErrReportTooLarge},
		{name: "only whitespace", raw: " \n\t", want: ErrReportSyntax},
		{name: "not JSON", raw: "saturation", want: ErrReportSyntax},
		{name: "an array", raw: "[]", want: ErrReportSyntax},
		{name: "truncated", raw: `{"v":1,"peer":"a"`, want: ErrReportSyntax},
		{name: "trailing data", raw: validJSON(t) + ` {}`, want: ErrReportSyntax},
		{name: "unknown field", mutate: set("gpu", 0.5), want: ErrReportSyntax},
		{name: "seq as a string", mutate: set("seq", "1"), want: ErrReportSyntax},
		{name: "negative seq", mutate: set("seq", -1), want: ErrReportSyntax},
		{name: "fractional rif", mutate: set("rif", 1.5), want: ErrReportSyntax},
		{name: "saturation overflows float64", raw: strings.Replace(validJSON(t), `"cpu":0.42`, `"cpu":1e999`, 1), want: ErrReportSyntax},
		{name: "sat not an object", mutate: set("sat", []any{0.5}), want: ErrReportSyntax},
		{name: "version 2", mutate: set("v", 2), want: ErrReportVersion},
		{name: "version 2 with a new field", mutate: func(m map[string]any) { m["v"] = 2; m["gpu"] = 0.1 }, want: ErrReportVersion},
		{name: "version 0", mutate: set("v", 0), want: ErrReportVersion},
		{name: "null document", raw: "null", want: ErrReportMissing},
		{name: "no version", mutate: del("v"), want: ErrReportMissing},
		{name: "no peer", mutate: del("peer"), want: ErrReportMissing},
		{name: "no seq", mutate: del("seq"), want: ErrReportMissing},
		{name: "no timestamp", mutate: del("ts"), want: ErrReportMissing},
		{name: "no sat", mutate: del("sat"), want: ErrReportMissing},
		{name: "null sat", mutate: set("sat", nil), want: ErrReportMissing},
		{name: "no rif", mutate: del("rif"), want: ErrReportMissing},
		{name: "no headroom", mutate: del("headroom"), want: ErrReportMissing},
		{name: "no level", mutate: del("level"), want: ErrReportMissing},
		{name: "metric without capacity", mutate: func(m map[string]any) { delete(m["metrics"].([]any)[0].(map[string]any), "capacity") }, want: ErrReportMissing},
		{name: "null metric", mutate: set("metrics", []any{nil}), want: ErrReportMissing},
		{name: "empty peer", mutate: set("peer", ""), want: ErrReportInvalid},
		{name: "peer with a space", mutate: set("peer", "peer a"), want: ErrReportInvalid},
		{name: "peer too long", mutate: set("peer", strings.Repeat("p", MaxPeerLen+1)), want: ErrReportInvalid},
		{name: "seq beyond 2^53", mutate: set("seq", uint64(1)<<53), want: ErrReportInvalid},
		{name: "saturation above 1", mutate: setSat(DimCPU, 1.01), want: ErrReportInvalid},
		{name: "negative saturation", mutate: setSat(DimRAM, -0.01), want: ErrReportInvalid},
		{name: "unknown dimension", mutate: setSat("gpu", 0.5), want: ErrReportInvalid},
		{name: "saturation of a metric not sent", mutate: setSat("conns", 0.5), want: ErrReportInvalid},
		{name: "headroom above 1", mutate: set("headroom", 1.5), want: ErrReportInvalid},
		{name: "negative headroom", mutate: set("headroom", -0.1), want: ErrReportInvalid},
		{name: "negative rif", mutate: set("rif", -1), want: ErrReportInvalid},
		{name: "negative capacity", mutate: set("cap", -1), want: ErrReportInvalid},
		{name: "absurd capacity", mutate: set("cap", 1e300), want: ErrReportInvalid},
		{name: "capacity as a string", mutate: set("cap", "4"), want: ErrReportSyntax},
		{name: "rif beyond 2^53", mutate: set("rif", int64(1)<<53), want: ErrReportInvalid},
		{name: "unknown level", mutate: set("level", "panic"), want: ErrReportInvalid},
		{name: "uppercase level", mutate: set("level", "OK"), want: ErrReportInvalid},
		{name: "negative metric value", mutate: setMetric("value", -1), want: ErrReportInvalid},
		{name: "zero metric capacity", mutate: setMetric("capacity", 0), want: ErrReportInvalid},
		{name: "metric name uppercase", mutate: setMetric("name", "Jobs"), want: ErrReportInvalid},
		{name: "metric named like a system dimension", mutate: setMetric("name", DimCPU), want: ErrReportInvalid},
		{name: "metric given twice", mutate: func(m map[string]any) {
			m["metrics"] = append(m["metrics"].([]any), map[string]any{"name": "jobs", "value": 1, "capacity": 2})
		}, want: ErrReportInvalid},
		{name: "too many metrics", mutate: set("metrics", n(MaxMetrics+1, func(i int) any {
			return map[string]any{"name": fmt.Sprintf("m%d", i), "value": 1, "capacity": 2}
		})), want: ErrReportInvalid},
		{name: "too many names", mutate: set("names", n(MaxNames+1, func(i int) any { return fmt.Sprint("svc", i) })), want: ErrReportInvalid},
		{name: "duplicate names", mutate: set("names", []any{"a", "a"}), want: ErrReportInvalid},
		{name: "empty name", mutate: set("names", []any{""}), want: ErrReportInvalid},
		{name: "name with a newline", mutate: set("names", []any{"a\nb"}), want: ErrReportInvalid},
		{name: "zero timestamp", mutate: set("ts", 0), want: ErrReportInvalid},
		{name: "too old", now: t0.Add(DefaultMaxAge + time.Millisecond), want: ErrReportTooOld},
		{name: "too old for a custom limit", now: t0.Add(2 * time.Second), dec: ReportDecoder{MaxAge: time.Second}, want: ErrReportTooOld},
		{name: "from the future", now: t0.Add(-DefaultMaxSkew - time.Millisecond), want: ErrReportFuture},
		{name: "future beyond a custom skew", now: t0.Add(-2 * time.Second), dec: ReportDecoder{MaxSkew: time.Second}, want: ErrReportFuture},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.raw)
			if tc.raw == "" {
				data = mutatedJSON(t, tc.mutate)
			}
			now := tc.now
			if now.IsZero() {
				now = t0
			}
			r, err := tc.dec.Decode(data, now)
			if err == nil {
				t.Fatalf("accepted %s as %+v", data, r)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %q does not wrap %q", err, tc.want)
			}
			if !errors.Is(err, dispatch.ErrBadDispatch) || dispatch.Code(err) != 400 {
				t.Fatalf("error %q does not map to bad dispatch (code %d)", err, dispatch.Code(err))
			}
		})
	}
}

func TestDecodeReportEmpty(t *testing.T) {
	for _, data := range [][]byte{nil, {}} {
		if _, err := DecodeReport(data, t0); !errors.Is(err, ErrReportSyntax) {
			t.Errorf("DecodeReport(%q) = %v, want ErrReportSyntax", data, err)
		}
	}
}

func TestDecodeReportAccepts(t *testing.T) {
	for _, tc := range []decodeCase{
		{name: "no names or metrics", mutate: func(m map[string]any) {
			delete(m, "names")
			delete(m, "metrics")
			delete(m["sat"].(map[string]any), "jobs")
		}},
		{name: "empty sat", mutate: setField("sat", map[string]any{})},
		{name: "surrounding whitespace", raw: " \n" + validJSON(t) + "\n "},
		{name: "at the age limit", now: t0.Add(DefaultMaxAge)},
		{name: "at the skew limit", now: t0.Add(-DefaultMaxSkew)},
		{name: "old with a longer age limit", now: t0.Add(time.Minute), dec: ReportDecoder{MaxAge: 2 * time.Minute}},
		{name: "metric over its capacity", mutate: func(m map[string]any) { m["metrics"].([]any)[0].(map[string]any)["value"] = 50 }},
		{name: "at the size limit", mutate: func(map[string]any) {}, dec: ReportDecoder{MaxSize: len(validJSON(t))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.raw)
			if tc.raw == "" {
				data = mutatedJSON(t, tc.mutate)
			}
			now := tc.now
			if now.IsZero() {
				now = t0
			}
			if _, err := tc.dec.Decode(data, now); err != nil {
				t.Fatalf("Decode(%s): %v", data, err)
			}
		})
	}
}

func setField(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }

// validJSON is the encoding of validReport at t0.
func validJSON(t testing.TB) string {
	data, err := EncodeReport(validReport("peer-a", 7, t0))
	if err != nil {
		t.Fatalf("EncodeReport: %v", err)
	}
	return string(data)
}

// mutatedJSON decodes validJSON into generic JSON, applies mutate and
// encodes the result.
func mutatedJSON(t *testing.T, mutate func(map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(validJSON(t)), &m); err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(m)
	}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
