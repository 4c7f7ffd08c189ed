package poll

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	Until(t, 10*time.Second, "three checks", func() bool { return n.Add(1) >= 3 })
	if n.Load() != 3 {
		t.Fatalf("checked %d times, want 3", n.Load())
	}
}

// failRecorder stands in for a test so the failure can be observed.
type failRecorder struct {
	testing.TB
	failed bool
}

func (f *failRecorder) Helper() {}
func (f *failRecorder) Fatalf(string, ...any) {
	f.failed = true
	panic(f)
}

func TestUntilFailsAtTheDeadline(t *testing.T) {
	f := &failRecorder{TB: t}
	func() {
		defer func() { recover() }()
		Until(f, 30*time.Millisecond, "never", func() bool { return false })
	}()
	if !f.failed {
		t.Fatal("Until did not fail when the condition never held")
	}
}
