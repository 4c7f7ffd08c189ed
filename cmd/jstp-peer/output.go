package main

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// Output formats of the network commands.
const (
	formatJSON = "json" // one JSON dispatch per line, as peers send them
	formatHTTP = "http" // the HTTP-like notation, a blank line between dispatches
	formatBody = "body" // only the body, one line of JSON per dispatch (null for none)
)

func newFormatFlag() *choiceFlag {
	return &choiceFlag{v: formatJSON, choices: []string{formatJSON, formatHTTP, formatBody}}
}

// printer writes dispatches in one format. It is used from one goroutine.
type printer struct {
	w      io.Writer
	format string
	n      int
}

func (p *printer) print(d *dispatch.Dispatch) {
	switch p.format {
	case formatHTTP:
		if p.n > 0 {
			_, _ = io.WriteString(p.w, "\n")
		}
		_, _ = io.WriteString(p.w, dispatch.FormatHTTP(d))
	case formatBody:
		// Scripts read one JSON value per line, as jq does.
		body := "null"
		if len(d.Body) > 0 {
			body = compactJSON(d.Body)
		}
		_, _ = io.WriteString(p.w, body+"\n")
	default:
		_, _ = p.w.Write(append(d.AppendJSON(nil), '\n'))
	}
	p.n++
}

// bodyText renders a body for a one-line message: a JSON string as its
// text, anything else as compact JSON.
func bodyText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) == nil {
		return buf.String()
	}
	return string(raw)
}

func itoa(n int) string { return strconv.Itoa(n) }
