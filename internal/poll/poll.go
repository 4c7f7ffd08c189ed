// Package poll waits in tests for conditions that become true eventually:
// a subscription released, a routing table filled, a message delivered.
// It checks on a short tick until the condition holds or a deadline
// passes, so tests wait on the state they need instead of sleeping for a
// guessed duration, and fail with what they were waiting for.
package poll

import (
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
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}
