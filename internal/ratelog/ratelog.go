// Package ratelog keeps repeated log lines from flooding a log under load:
// a message is logged at most once per interval, and the next line says how
// many were suppressed meanwhile.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// DefaultInterval is how often one message may be logged.
const DefaultInterval = 10 * time.Second

// Logger rate-limits messages by their text: callers pass constant
// messages and put what varies in the attributes, so the set of keys stays
// as small as the set of call sites.
type Logger struct {
	l     *slog.Logger
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	last map[string]*entry
}

type entry struct {
	at         time.Time
	suppressed int
}

// New returns a Logger that writes to l at most once per every for each
// message.
func New(l *slog.Logger, every time.Duration) *Logger {
	return &Logger{l: l, every: every, now: time.Now, last: map[string]*entry{}}
}

// Warn logs at warning level, unless msg was logged less than the interval
// ago.
func (r *Logger) Warn(msg string, args ...any) { r.log(slog.LevelWarn, msg, args) }

// Info logs at info level, unless msg was logged less than the interval
// ago.
func (r *Logger) Info(msg string, args ...any) { r.log(slog.LevelInfo, msg, args) }

func (r *Logger) log(level slog.Level, msg string, args []any) {
	if !r.l.Enabled(context.Background(), level) {
		return
	}
	now := r.now()
	r.mu.Lock()
	e := r.last[msg]
	if e != nil && now.Sub(e.at) < r.every {
		e.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := 0
	if e == nil {
		e = &entry{}
		r.last[msg] = e
	} else {
		suppressed = e.suppressed
	}
	e.at, e.suppressed = now, 0
	r.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	r.l.Log(context.Background(), level, msg, args...)
}
