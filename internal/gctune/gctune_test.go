package gctune

import (
	"runtime/debug"
	"testing"
)

func TestApply(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	if got := Apply(); got != Percent {
		t.Fatalf("Apply() = %d without GOGC, want %d", got, Percent)
	}
	if got := debug.SetGCPercent(Percent); got != Percent {
		t.Fatalf("GC percent is %d after Apply, want %d", got, Percent)
	}
	// GOGC in the environment wins: the runtime read it at start, so
	// Apply leaves the current setting alone.
	debug.SetGCPercent(150)
	t.Setenv("GOGC", "150")
	if got := Apply(); got != 150 {
		t.Fatalf("Apply() = %d with GOGC=150, want 150", got)
	}
}
