package saturation

import (
	"errors"
	"fmt"
	"testing"
)

func mustThresholds(t *testing.T, cfg ThresholdConfig) *Thresholds {
	t.Helper()
	th, err := NewThresholds(cfg)
	if err != nil {
		t.Fatalf("NewThresholds(%+v): %v", cfg, err)
	}
	return th
}

func satReport(peer string, sats map[string]float64) Report {
	return Report{Peer: peer, Saturation: sats}
}

// observeAll feeds one dimension's values and returns the transitions.
func observeAll(th *Thresholds, dim string, values []float64) []string {
	var out []string
	for _, v := range values {
		if ev, ok := th.Observe(satReport("peer-a", map[string]float64{dim: v})); ok {
			out = append(out, fmt.Sprintf("%v->%v@%v", ev.From, ev.To, v))
		}
	}
	return out
}

func TestThresholdsHysteresisPreventsFlapping(t *testing.T) {
	th := mustThresholds(t, ThresholdConfig{})
	var values []float64
	for range 50 {
		values = append(values, 0.96, 0.94, 0.951, 0.91)
	}
	got := observeAll(th, DimCPU, values)
	if len(got) != 1 || got[0] != "ok->critical@0.96" {
		t.Fatalf("oscillation around the critical threshold gave %v, want exactly [ok->critical@0.96]", got)
	}
	if l := th.Level("peer-a"); l != LevelCritical {
		t.Fatalf("Level = %v, want critical", l)
	}
}

func TestThresholdsWithoutHysteresisFlaps(t *testing.T) {
	// The control for the test above: with no band, the same input flaps.
	th := mustThresholds(t, ThresholdConfig{Hysteresis: -1})
	got := observeAll(th, DimCPU, []float64{0.96, 0.94, 0.96, 0.94})
	if len(got) != 4 {
		t.Fatalf("without hysteresis got %v, want 4 transitions", got)
	}
}

func TestThresholdsLevels(t *testing.T) {
	th := mustThresholds(t, ThresholdConfig{})
	got := observeAll(th, DimRAM, []float64{
		0.5,  // ok
		0.8,  // reaches warning
		0.76, // within the band below 0.80: stays warning
		0.95, // reaches critical
		0.90, // exactly critical-h: stays critical
		0.89, // below 0.90: falls, to warning (0.89 >= 0.80-0.05)
		0.75, // exactly warning-h: stays warning
		0.74, // ok
		0.99, // jumps straight to critical
		0.1,  // falls straight to ok
	})
	want := "[ok->warning@0.8 warning->critical@0.95 critical->warning@0.89 warning->ok@0.74 ok->critical@0.99 critical->ok@0.1]"
	if fmt.Sprint(got) != want {
		t.Fatalf("transitions\n got %v\nwant %s", got, want)
	}
}

func TestThresholdsPerDimensionAndPeer(t *testing.T) {
	th := mustThresholds(t, ThresholdConfig{
		Default:    Limits{Warning: 0.7, Critical: 0.9},
		Dimensions: map[string]Limits{DimDisk: {Warning: 0.5, Critical: 0.6}, "jobs": {Warning: 0.95, Critical: 1}},
		Hysteresis: 0.02,
	})
	if l := th.Limits(DimCPU); l != (Limits{0.7, 0.9}) {
		t.Fatalf("Limits(cpu) = %+v", l)
	}
	ev, ok := th.Observe(satReport("peer-a", map[string]float64{DimCPU: 0.75, DimDisk: 0.65, "jobs": 0.9}))
	if !ok || ev.From != LevelOK || ev.To != LevelCritical || fmt.Sprint(ev.Dimensions) != "[disk]" || ev.Peer != "peer-a" {
		t.Fatalf("event %+v, %v; want peer-a ok->critical on [disk]", ev, ok)
	}
	if ev.Report.Peer != "peer-a" || ev.Report.Saturation[DimDisk] != 0.65 {
		t.Fatalf("event report %+v", ev.Report)
	}
	// Another peer has its own state.
	if _, ok := th.Observe(satReport("peer-b", map[string]float64{DimCPU: 0.1})); ok {
		t.Fatal("an ok peer first seen produced an event")
	}
	// The disk leaves: cpu alone keeps peer-a at warning.
	ev, ok = th.Observe(satReport("peer-a", map[string]float64{DimCPU: 0.75}))
	if !ok || ev.To != LevelWarning || fmt.Sprint(ev.Dimensions) != "[cpu]" {
		t.Fatalf("event %+v, %v; want critical->warning on [cpu]", ev, ok)
	}
	if th.Level("peer-b") != LevelOK || th.Level("unknown") != LevelOK {
		t.Fatal("levels of other peers changed")
	}
	th.Forget("peer-a")
	if th.Level("peer-a") != LevelOK {
		t.Fatal("Forget kept the level")
	}
	// A forgotten peer starts again from ok.
	if ev, ok := th.Observe(satReport("peer-a", map[string]float64{DimCPU: 0.75})); !ok || ev.From != LevelOK {
		t.Fatalf("after Forget: %+v, %v", ev, ok)
	}
}

func TestThresholdsConfigValidation(t *testing.T) {
	for _, cfg := range []ThresholdConfig{
		{Default: Limits{Warning: 0.9, Critical: 0.8}},
		{Default: Limits{Warning: 0, Critical: 0.8}},
		{Default: Limits{Warning: 0.5, Critical: 1.1}},
		{Dimensions: map[string]Limits{DimCPU: {Warning: -1, Critical: 0.5}}},
		{Hysteresis: 1},
	} {
		if _, err := NewThresholds(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("NewThresholds(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
}
