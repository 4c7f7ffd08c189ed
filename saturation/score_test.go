package saturation

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/shirou/gopsutil/v3/cpu"
)

func TestSaturations(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		name    string
		scoring Scoring
		sample  Sample
		load    Load
		want    map[string]float64
	}{
		{
			name: "nothing measured",
			want: map[string]float64{},
		},
		{
			name: "every dimension",
			sample: Sample{
				Disk:   Space{Free: 25 * gib, Total: 100 * gib},
				Memory: Space{Free: 6 * gib, Total: 8 * gib},
				CPU:    0.3, HasCPU: true,
				NetIn: 12.5e6, NetOut: 62.5e6, HasNet: true,
			},
			load: Load{InFlight: 7, QueueDepth: 3, QueueCapacity: 12},
			want: map[string]float64{DimDisk: 0.75, DimRAM: 0.25, DimCPU: 0.3, DimNet: 0.5, DimQueue: 0.25},
		},
		{
			name:    "disk reserve",
			scoring: Scoring{DiskReserve: 20 * gib},
			sample:  Sample{Disk: Space{Free: 60 * gib, Total: 100 * gib}},
			// (60-20)/(100-20) free = 0.5
			want: map[string]float64{DimDisk: 0.5},
		},
		{
			name:    "disk down to its reserve is full",
			scoring: Scoring{DiskReserve: 20 * gib},
			sample:  Sample{Disk: Space{Free: 15 * gib, Total: 100 * gib}},
			want:    map[string]float64{DimDisk: 1},
		},
		{
			name:    "reserve larger than the disk",
			scoring: Scoring{DiskReserve: 200 * gib},
			sample:  Sample{Disk: Space{Free: 60 * gib, Total: 100 * gib}},
			want:    map[string]float64{DimDisk: 1},
		},
		{
			name:    "network against a configured capacity, larger direction",
			scoring: Scoring{NetCapacity: 1e6},
			sample:  Sample{NetIn: 800e3, NetOut: 200e3, HasNet: true},
			want:    map[string]float64{DimNet: 0.8},
		},
		{
			name:   "over capacity clamps",
			sample: Sample{NetIn: 500e6, HasNet: true, CPU: 1.2, HasCPU: true},
			load:   Load{QueueDepth: 50, QueueCapacity: 10},
			want:   map[string]float64{DimNet: 1, DimCPU: 1, DimQueue: 1},
		},
		{
			name:   "flags off: values ignored",
			sample: Sample{CPU: 0.9, NetIn: 1e9},
			load:   Load{QueueDepth: 5},
			want:   map[string]float64{},
		},
		{
			name:   "non-finite readings are dropped",
			sample: Sample{CPU: math.NaN(), HasCPU: true, NetIn: math.Inf(1), HasNet: true},
			want:   map[string]float64{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.scoring.Saturations(tc.sample, tc.load)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for dim, w := range tc.want {
				g, ok := got[dim]
				if !ok {
					t.Fatalf("dimension %s missing from %v", dim, got)
				}
				approx(t, dim, g, w)
			}
		})
	}
}

func TestHeadroom(t *testing.T) {
	for _, tc := range []struct {
		sats map[string]float64
		want float64
	}{
		{nil, 1},
		{map[string]float64{}, 1},
		{map[string]float64{DimCPU: 0.2, DimDisk: 0.9, "jobs": 0.5}, 0.1},
		{map[string]float64{DimCPU: 1}, 0},
		{map[string]float64{DimCPU: 0.3, DimRAM: math.NaN()}, 0.7},
		{map[string]float64{DimCPU: 2}, 0},
	} {
		approx(t, fmt.Sprintf("Headroom(%v)", tc.sats), Headroom(tc.sats), tc.want)
	}
}

func TestScoringValidate(t *testing.T) {
	for _, c := range []float64{-1, math.NaN(), math.Inf(1)} {
		if err := (Scoring{NetCapacity: c}).validate(); err == nil {
			t.Errorf("NetCapacity %v accepted", c)
		}
	}
	if err := (Scoring{}).validate(); err != nil {
		t.Errorf("zero Scoring: %v", err)
	}
}

func TestCPUCounter(t *testing.T) {
	var c cpuCounter
	if _, ok := c.update(cpu.TimesStat{User: 10, Idle: 90}); ok {
		t.Fatal("first update measured a utilisation without a baseline")
	}
	// +30 busy (user 20, system 5, steal 5) and +70 idle (60 idle, 10 iowait).
	u, ok := c.update(cpu.TimesStat{User: 30, System: 5, Steal: 5, Idle: 150, Iowait: 10})
	if !ok {
		t.Fatal("second update measured nothing")
	}
	approx(t, "utilisation", u, 0.3)
	if _, ok := c.update(cpu.TimesStat{User: 30, System: 5, Steal: 5, Idle: 150, Iowait: 10}); ok {
		t.Fatal("counters that did not advance gave a utilisation")
	}
}

func TestRateCounter(t *testing.T) {
	var r rateCounter
	if _, _, ok := r.update(t0, map[string][2]uint64{"eth0": {1000, 500}}); ok {
		t.Fatal("first update measured a rate without a baseline")
	}
	in, out, ok := r.update(t0.Add(2*time.Second), map[string][2]uint64{
		"eth0":  {5000, 2500}, // +4000, +2000 over 2 s
		"wlan0": {9e9, 9e9},   // new: no baseline, ignored
	})
	if !ok {
		t.Fatal("second update measured nothing")
	}
	approx(t, "in", in, 2000)
	approx(t, "out", out, 1000)

	in, out, ok = r.update(t0.Add(3*time.Second), map[string][2]uint64{
		"eth0":  {100, 3500},     // received counter reset: ignored for this interval
		"wlan0": {9e9 + 10, 9e9}, // +10 in over 1 s
	})
	if !ok {
		t.Fatal("third update measured nothing")
	}
	approx(t, "in after a reset", in, 10)
	approx(t, "out after a reset", out, 1000)

	if _, _, ok := r.update(t0.Add(3*time.Second), map[string][2]uint64{}); ok {
		t.Fatal("zero elapsed time gave a rate")
	}
}
