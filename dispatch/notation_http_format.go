// Writing the HTTP-like notation.

package dispatch

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// FormatHTTP writes d in the HTTP-like notation (see Decoder.ParseHTTP),
// ending with a newline. It never fails: every part of a dispatch has a
// place, and each is written in the simplest form that reads back to the
// same bytes, so ParseHTTP(FormatHTTP(d)) is d (compare MarshalJSON) for
// every valid d whose body is valid UTF-8. Invalid dispatches are written
// as well as they can be, for logs.
//
// The header order is host, timestamp, token, then method, resource and
// endpoint when the start line has no place for them, then the unknown
// headers sorted by name. A body that is an object of one-line strings
// under simple keys is written as "key: value" lines, a string as its
// text, anything else as its JSON.
func FormatHTTP(d *Dispatch) string { return string(d.AppendHTTP(nil)) }

// AppendHTTP appends FormatHTTP's text to buf.
func (d *Dispatch) AppendHTTP(buf []byte) []byte {
	var methodDone, resourceDone, endpointDone bool
	if d.Exception != nil {
		buf = appendProtocolToken(buf, d.Protocol)
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, int64(d.Exception.Code), 10)
		if d.Exception.Message != "" {
			buf = append(buf, ' ')
			buf = appendLineString(buf, d.Exception.Message)
		}
	} else {
		if isMethodToken(d.Method) {
			buf = append(buf, d.Method...)
			buf = append(buf, ' ')
			methodDone = true
		}
		if methodDone && (d.Method == BIND || d.Method == RELEASE) {
			if d.Endpoint != nil && isMethodToken(d.Endpoint.Method) {
				buf = append(buf, d.Endpoint.Method...)
				buf = append(buf, ' ')
				if d.Endpoint.Resource != nil {
					buf = appendPatternPath(buf, d.Endpoint.Resource)
					buf = append(buf, ' ')
				}
				endpointDone = true
			}
		} else if d.Resource != nil {
			buf = appendPath(buf, d.Resource, segResource)
			buf = append(buf, ' ')
			resourceDone = true
		}
		buf = appendProtocolToken(buf, d.Protocol)
	}
	buf = append(buf, '\n')

	header := func(name string) {
		buf = append(buf, name...)
		buf = append(buf, ':', ' ')
	}
	if d.Host != nil {
		header("host")
		buf = appendHostList(buf, d.Host, true)
		buf = endLine(buf)
	}
	if d.Timestamp != 0 {
		header("timestamp")
		buf = strconv.AppendInt(buf, d.Timestamp, 10)
		buf = endLine(buf)
	}
	if d.Token != nil {
		header("token")
		for i, t := range d.Token {
			if i > 0 {
				buf = append(buf, ',', ' ')
			}
			buf = appendSegment(buf, t, segToken)
		}
		buf = endLine(buf)
	}
	if !methodDone && d.Method != "" {
		header("method")
		buf = appendLineString(buf, d.Method)
		buf = endLine(buf)
	}
	if !resourceDone && d.Resource != nil {
		header("resource")
		buf = appendPath(buf, d.Resource, segResource)
		buf = endLine(buf)
	}
	if !endpointDone && d.Endpoint != nil {
		header("endpoint")
		buf = appendEndpointValue(buf, d.Endpoint)
		buf = endLine(buf)
	}
	for _, h := range d.Extra {
		if isToken(h.Name) && lower(h.Name) == h.Name {
			buf = append(buf, h.Name...)
		} else {
			buf = appendString(buf, h.Name)
		}
		buf = append(buf, ':', ' ')
		buf = appendHeaderValue(buf, h.Value)
		buf = endLine(buf)
	}
	if d.Body != nil {
		buf = append(buf, '\n')
		buf = appendBody(buf, d.Body)
		buf = append(buf, '\n')
	}
	return buf
}

// endLine ends a header line, dropping the space after the colon when the
// value is empty so lines carry no trailing white space.
func endLine(buf []byte) []byte {
	if n := len(buf); n >= 2 && buf[n-2] == ':' && buf[n-1] == ' ' {
		buf = buf[:n-1]
	}
	return append(buf, '\n')
}

// isMethodToken reports whether m can stand as a word in a start line (or
// an endpoint header) and be read back as a method.
func isMethodToken(m string) bool {
	if m == "" || strings.IndexByte(`/{["'`, m[0]) >= 0 || isVersionToken(m) || !utf8.ValidString(m) {
		return false
	}
	// The start line is split with strings.Fields, so any Unicode space,
	// not only ASCII ones, would cut the word in two.
	for _, r := range m {
		if r < ' ' || unicode.IsSpace(r) {
			return false
		}
	}
	return strings.ToUpper(m) == m
}

func appendEndpointValue(buf []byte, ep *Endpoint) []byte {
	if isMethodToken(ep.Method) && ep.Resource != nil {
		buf = append(buf, ep.Method...)
		buf = append(buf, ' ')
		return appendPatternPath(buf, ep.Resource)
	}
	buf = append(buf, `{"method":`...)
	buf = appendString(buf, ep.Method)
	if ep.Resource != nil {
		buf = append(buf, `,"resource":[`...)
		for i, r := range ep.Resource {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, r)
		}
		buf = append(buf, ']')
	}
	return append(buf, '}')
}

func appendHeaderValue(buf []byte, raw json.RawMessage) []byte {
	if len(raw) > 0 && raw[0] == '"' {
		if s, ok := unquote(raw); ok && checkLine(s) == nil {
			if back, err := parseHeaderValue(strings.Trim(s, " \t"), DefaultMaxDepth); err == nil && s == strings.Trim(s, " \t") && bytes.Equal(back, raw) {
				return append(buf, s...)
			}
		}
	}
	return appendRaw(buf, raw)
}

func appendBody(buf []byte, raw json.RawMessage) []byte {
	if text, ok := keyValueText(raw); ok {
		if back, err := parseBody(text, 1, DefaultMaxDepth); err == nil && bytes.Equal(back, raw) {
			return append(buf, text...)
		}
	}
	if len(raw) > 0 && raw[0] == '"' {
		if s, ok := unquote(raw); ok {
			if back, err := parseBody(s, 1, DefaultMaxDepth); err == nil && bytes.Equal(back, raw) {
				return append(buf, s...)
			}
		}
	}
	return append(buf, raw...)
}

// keyValueText renders a JSON object of strings as "key: value" lines, in
// the order of the members. ok is false for anything else.
func keyValueText(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '{' {
		return "", false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", false
	}
	var b strings.Builder
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return "", false
		}
		v, err := dec.Token()
		if err != nil {
			return "", false
		}
		ks, _ := k.(string)
		vs, ok := v.(string)
		if !ok || !isBodyKey(ks) || strings.ContainsAny(vs, "\r\n") {
			return "", false
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(ks)
		b.WriteByte(':')
		if vs != "" {
			b.WriteByte(' ')
			b.WriteString(vs)
		}
	}
	if b.Len() == 0 {
		return "", false
	}
	return b.String(), true
}
