package saturation

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// FuzzDecodeReport checks the decoder on any input: it never panics,
// every error is a bad dispatch (400), and a report it accepts is valid,
// encodes within the size limit, and decodes again to the same report.
func FuzzDecodeReport(f *testing.F) {
	now := t0
	seeds := []Report{validReport("peer-a", 7, now)}
	bare := validReport("12D3KooWGzh6Y7MoZ1Qz5hBzqVdVEsrxY5jiEaA8G6ZEiSbq3wfF", 1<<40, now)
	bare.Names, bare.Metrics, bare.Saturation = nil, nil, map[string]float64{}
	seeds = append(seeds, bare)
	for _, r := range seeds {
		data, err := EncodeReport(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"", "null", "{}", "[]", `{"v":2}`, `{"v":1,"peer":"a","seq":-1}`,
		`{"v":1,"peer":"a","seq":1,"ts":1772366400000,"sat":{"cpu":1e999},"rif":0,"headroom":1,"level":"ok"}`,
		`{"v":1,"peer":"a","seq":1,"ts":1772366400000,"sat":{"cpu":-0},"rif":0,"headroom":1,"level":"ok"}`,
		`{"V":1,"PEER":"a","seq":1,"ts":1772366400000,"sat":{},"rif":0,"headroom":1,"level":"critical","names":["\u2028\"x"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeReport(data, now)
		if err != nil {
			if !errors.Is(err, dispatch.ErrBadDispatch) || dispatch.Code(err) != 400 {
				t.Fatalf("error %q is not a bad dispatch (code %d)", err, dispatch.Code(err))
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("decoded report fails Validate: %v", err)
		}
		enc, err := EncodeReport(*r)
		if err != nil {
			t.Fatalf("EncodeReport of a decoded report: %v\ninput: %q", err, data)
		}
		back, err := DecodeReport(enc, now)
		if err != nil {
			t.Fatalf("Decode(Encode(r)): %v\ninput: %q\nencoding: %s", err, data, enc)
		}
		if !reflect.DeepEqual(back, r) {
			t.Fatalf("round trip changed the report:\n got %+v\nwant %+v", back, r)
		}
	})
}

// The decoder's limits hold for a clock far from the timestamps: no
// overflow turns an ancient report into a fresh one.
func TestDecodeReportExtremeClock(t *testing.T) {
	data := []byte(validJSON(t))
	for _, tc := range []struct {
		now  time.Time
		want error
	}{
		{time.Unix(0, 0), ErrReportFuture},
		{time.Time{}, ErrReportFuture},
		{time.UnixMilli(1 << 62), ErrReportTooOld},
		{time.UnixMilli(1<<63 - 1), ErrReportTooOld},
	} {
		if _, err := DecodeReport(data, tc.now); !errors.Is(err, tc.want) {
			t.Errorf("at %v: %v, want %v", tc.now, err, tc.want)
		}
	}
}
