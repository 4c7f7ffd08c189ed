package saturation

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// The sampling goroutine runs under synctest: time.Sleep advances the
// bubble's virtual clock exactly, and synctest.Wait returns once the
// goroutine is blocked again, so the counts below are exact, and the
// bubble fails the test if the goroutine outlives Close.
func TestMeterStartClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := NewStaticSource(cpuSample(0.5))
		var changes atomic.Int32
		m, err := NewMeter("peer-a", src, WithInterval(2*time.Second), WithLogger(quietLogger()),
			WithOnChange(func(Change) { changes.Add(1) }))
		if err != nil {
			t.Fatal(err)
		}
		m.Start(t.Context())
		synctest.Wait()
		if n := src.Calls(); n != 1 {
			t.Fatalf("%d samples right after Start, want 1", n)
		}
		m.Start(t.Context()) // no second loop
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := src.Calls(); n != 2 {
			t.Fatalf("%d samples after one interval, want 2", n)
		}
		time.Sleep(6 * time.Second)
		synctest.Wait()
		if n := src.Calls(); n != 5 {
			t.Fatalf("%d samples after four intervals, want 5", n)
		}
		if n := changes.Load(); n != 1 {
			t.Fatalf("%d changes for a constant source, want 1 (the first sample)", n)
		}
		m.Close()
		m.Close()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := src.Calls(); n != 5 {
			t.Fatalf("%d samples after Close, want still 5", n)
		}
		m.Start(t.Context()) // after Close: nothing
		synctest.Wait()
		if n := src.Calls(); n != 5 {
			t.Fatalf("Start after Close sampled (%d)", n)
		}
	})
}

func TestMeterStopsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := NewStaticSource(cpuSample(0.5))
		m, err := NewMeter("peer-a", src, WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		m.Start(ctx)
		synctest.Wait()
		cancel()
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := src.Calls(); n != 1 {
			t.Fatalf("%d samples, want 1: the loop went on after its context ended", n)
		}
		m.Close() // returns: the goroutine is gone
	})
}
