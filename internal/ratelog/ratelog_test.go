package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestSuppressesWithinIntervalAndCounts(t *testing.T) {
	var buf bytes.Buffer
	r := New(slog.New(slog.NewTextHandler(&buf, nil)), time.Minute)
	clock := time.Unix(1000, 0)
	r.now = func() time.Time { return clock }
	for range 5 {
		r.Warn("queue full", "n", 1)
	}
	r.Warn("other message")
	clock = clock.Add(time.Minute)
	r.Warn("queue full", "n", 2)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("logged %d lines, want 3:\n%s", len(lines), buf.String())
	}
	if strings.Contains(lines[0], "suppressed") || !strings.Contains(lines[2], "suppressed=4") || !strings.Contains(lines[2], "n=2") {
		t.Fatalf("lines:\n%s", buf.String())
	}
}

func TestDisabledLevelCostsNothing(t *testing.T) {
	var buf bytes.Buffer
	r := New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError})), time.Minute)
	r.Warn("x")
	if buf.Len() != 0 || len(r.last) != 0 {
		t.Fatalf("logged %q, kept %d entries", buf.String(), len(r.last))
	}
}
