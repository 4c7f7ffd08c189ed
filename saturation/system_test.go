package saturation

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jstp-peer/jstp-peer/internal/poll"
)

// TestSystemSourceReal reads this machine through gopsutil and checks the
// readings are sane. CPU utilisation needs the kernel's counters to tick
// between two samples, so the test samples until they have; the timeout
// only guards against a hang.
func TestSystemSourceReal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src, err := NewSystemSource(ctx, dir)
	if err != nil {
		t.Fatalf("NewSystemSource(%q): %v", dir, err)
	}
	var s Sample
	poll.Until(t, 30*time.Second, "a sample with CPU utilisation", func() bool {
		s, err = src.Sample(ctx)
		if err != nil {
			t.Fatalf("Sample: %v", err)
		}
		return s.HasCPU
	})
	t.Logf("sample: %+v", s)

	if s.Disk.Total == 0 || s.Disk.Free == 0 || s.Disk.Free > s.Disk.Total {
		t.Errorf("disk of %s: %+v; want 0 < free <= total", dir, s.Disk)
	}
	if s.Memory.Total == 0 || s.Memory.Free > s.Memory.Total {
		t.Errorf("memory: %+v; want total > 0, available <= total", s.Memory)
	}
	if s.CPU < 0 || s.CPU > 1 {
		t.Errorf("cpu %v outside [0,1]", s.CPU)
	}
	if s.HasNet && (s.NetIn < 0 || s.NetOut < 0) {
		t.Errorf("network rates %v in, %v out", s.NetIn, s.NetOut)
	}

	sats := Scoring{}.Saturations(s, Load{})
	for _, dim := range []string{DimDisk, DimRAM, DimCPU} {
		v, ok := sats[dim]
		if !ok || v < 0 || v > 1 {
			t.Errorf("saturation %s = %v (present %v), want in [0,1]", dim, v, ok)
		}
	}
	if h := Headroom(sats); h < 0 || h > 1 {
		t.Errorf("headroom %v", h)
	}

	// A Meter over the real source makes a report peers accept.
	m, err := NewMeter("peer-a", src, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Update(ctx); err != nil {
		t.Fatalf("Update: %v", err)
	}
	data, err := EncodeReport(m.Report())
	if err != nil {
		t.Fatalf("EncodeReport: %v", err)
	}
	if _, err := DecodeReport(data, time.Now()); err != nil {
		t.Fatalf("DecodeReport(%s): %v", data, err)
	}
}

func TestSystemSourceMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "absent")
	if _, err := NewSystemSource(context.Background(), dir); err == nil {
		t.Fatalf("NewSystemSource(%q) succeeded", dir)
	}
	// Without a data dir the disk is simply not measured.
	src, err := NewSystemSource(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := src.Sample(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Disk != (Space{}) {
		t.Fatalf("disk measured without a data dir: %+v", s.Disk)
	}
}
