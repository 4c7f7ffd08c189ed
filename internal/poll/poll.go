// Package poll waits in tests for conditions that become true eventually:
// a subscription released, a routing table filled, a message delivered.
// It checks on a short tick until the condition holds or a deadline
// passes, so tests wait on the state they need instead of sleeping for a
// guessed duration, and fail with what they were waiting for.
package poll

import (
	"runtime"
	"testing"
	"time"
)

// Interval is how often Until checks its condition.
const Interval = 10 * time.Millisecond

// Until checks cond every Interval until it holds, and fails t (with
// what) if timeout passes first. The timeout guards against hangs; it is
// not a performance bound, so make it generous.
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Wait(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// Wait checks cond every Interval until it holds (true) or timeout passes
// (false), for callers that report a timeout their own way.
func Wait(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			return cond()
		}
	}
	return true
}

// Goroutines waits until at most n goroutines run, and fails t with every
// goroutine's stack if that does not happen within timeout: what is left
// running after a Close is a leak, and the stacks say whose.
func Goroutines(t testing.TB, timeout time.Duration, n int) {
	t.Helper()
	if Wait(timeout, func() bool { return runtime.NumGoroutine() <= n }) {
		return
	}
	buf := make([]byte, 1<<20)
	t.Fatalf("%d goroutines still running, want at most %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
}

// SettledGoroutines waits until the goroutine count stops falling (closed
// parts' goroutines wind down asynchronously) and returns it, for a leak
// check's baseline.
func SettledGoroutines() int {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	n := runtime.NumGoroutine()
	for range 100 {
		<-tick.C
		m := runtime.NumGoroutine()
		if m >= n {
			return m
		}
		n = m
	}
	return n
}
