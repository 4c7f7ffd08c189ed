package main

import (
	"io"
	"log/slog"
	"strings"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// newLogger returns the logger of a running peer: text (key=value) or
// JSON lines on w, dispatches written in the HTTP-like notation wherever a
// part of the peer logs one.
func newLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: dispatchAttr}
	if format == logJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// dispatchAttr renders a dispatch logged as an attribute value in the
// HTTP-like notation, the one people read (docs/notation.md), instead of
// the wire's JSON: a string in either log format, its lines separated by
// "\n" as the handler escapes them.
func dispatchAttr(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindAny {
		return a
	}
	switch d := a.Value.Any().(type) {
	case *dispatch.Dispatch:
		if d != nil {
			a.Value = slog.StringValue(strings.TrimRight(dispatch.FormatHTTP(d), "\n"))
		}
	case dispatch.Dispatch:
		a.Value = slog.StringValue(strings.TrimRight(dispatch.FormatHTTP(&d), "\n"))
	}
	return a
}
