package saturation

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestValidateMetric(t *testing.T) {
	for _, tc := range []struct {
		name            string
		value, capacity float64
		ok              bool
	}{
		{"jobs", 5, 10, true},
		{"http.rps_v2-a", 0, 1, true},
		{"over", 20, 10, true}, // over capacity: allowed, saturation clamps to 1
		{strings.Repeat("a", 64), 1, 1, true},
		{strings.Repeat("a", 65), 1, 1, false},
		{"", 1, 1, false},
		{"Jobs", 1, 1, false},
		{"jobs queued", 1, 1, false},
		{"jobs/s", 1, 1, false},
		{"jöbs", 1, 1, false},
		{DimCPU, 1, 1, false},
		{DimQueue, 1, 1, false},
		{"jobs", -1, 10, false},
		{"jobs", math.NaN(), 10, false},
		{"jobs", math.Inf(1), 10, false},
		{"jobs", 1, 0, false},
		{"jobs", 1, -5, false},
		{"jobs", 1, math.NaN(), false},
		{"jobs", 1, math.Inf(1), false},
	} {
		err := ValidateMetric(tc.name, tc.value, tc.capacity)
		if tc.ok != (err == nil) {
			t.Errorf("ValidateMetric(%q, %v, %v) = %v, want ok=%v", tc.name, tc.value, tc.capacity, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidMetric) {
			t.Errorf("ValidateMetric(%q, …): %v does not wrap ErrInvalidMetric", tc.name, err)
		}
	}
}

func TestValidatePeer(t *testing.T) {
	for _, id := range []string{"12D3KooWGzh6Y7MoZ1Qz5hBzqVdVEsrxY5jiEaA8G6ZEiSbq3wfF", "peer-1", "sim:a.b_c", strings.Repeat("x", 128)} {
		if err := ValidatePeer(id); err != nil {
			t.Errorf("ValidatePeer(%q): %v", id, err)
		}
	}
	for _, id := range []string{"", strings.Repeat("x", 129), "peer 1", "peer\"1", "pé", "a/b"} {
		if err := ValidatePeer(id); !errors.Is(err, ErrInvalidPeer) {
			t.Errorf("ValidatePeer(%q) = %v, want ErrInvalidPeer", id, err)
		}
	}
}

func TestValidateNames(t *testing.T) {
	many := make([]string, MaxNames+1)
	for i := range many {
		many[i] = strings.Repeat("n", i+1)
	}
	for _, tc := range []struct {
		names []string
		ok    bool
	}{
		{nil, true},
		{[]string{"thumbnails", "résumé", "a<b>&c"}, true},
		{many[:MaxNames], true},
		{many, false},
		{[]string{""}, false},
		{[]string{strings.Repeat("n", MaxServiceNameLen+1)}, false},
		{[]string{"a", "a"}, false},
		{[]string{"tab\there"}, false},
		{[]string{"nul\x00"}, false},
		{[]string{"\xff\xfe"}, false},
	} {
		err := ValidateNames(tc.names)
		if tc.ok != (err == nil) {
			t.Errorf("ValidateNames(%q) = %v, want ok=%v", tc.names, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateNames(%q): %v does not wrap ErrInvalidName", tc.names, err)
		}
	}
}

func TestLevelText(t *testing.T) {
	for _, l := range []Level{LevelOK, LevelWarning, LevelCritical} {
		b, err := l.MarshalText()
		if err != nil {
			t.Fatalf("MarshalText(%v): %v", l, err)
		}
		var back Level
		if err := back.UnmarshalText(b); err != nil || back != l {
			t.Fatalf("UnmarshalText(%q) = %v, %v; want %v", b, back, err, l)
		}
	}
	if _, err := ParseLevel("OK"); err == nil {
		t.Error("ParseLevel accepted uppercase")
	}
	if _, err := Level(7).MarshalText(); err == nil {
		t.Error("MarshalText accepted Level(7)")
	}
	if s := Level(7).String(); s != "Level(7)" {
		t.Errorf("Level(7).String() = %q", s)
	}
}
