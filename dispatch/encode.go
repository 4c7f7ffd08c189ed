package dispatch

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// MarshalJSON encodes the dispatch on one line with lowercase header names:
// the known headers in a fixed order, then the unknown ones sorted by name.
// The output never contains a raw newline, so it is a valid frame on the
// newline-delimited classic wire as it is.
func (d *Dispatch) MarshalJSON() ([]byte, error) {
	return d.AppendJSON(make([]byte, 0, 256)), nil
}

// AppendJSON appends the encoding MarshalJSON returns to buf.
func (d *Dispatch) AppendJSON(buf []byte) []byte {
	buf = append(buf, '{')
	first := true
	key := func(name string) {
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = append(buf, '"')
		buf = append(buf, name...)
		buf = append(buf, '"', ':')
	}
	if d.Protocol != nil {
		key("protocol")
		buf = append(buf, '[')
		for i, p := range d.Protocol {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, p)
		}
		buf = append(buf, ']')
	}
	if d.Method != "" {
		key("method")
		buf = appendString(buf, d.Method)
	}
	if d.Resource != nil {
		key("resource")
		buf = appendScalars(buf, d.Resource)
	}
	if d.Endpoint != nil {
		key("endpoint")
		buf = append(buf, `{"method":`...)
		buf = appendString(buf, d.Endpoint.Method)
		buf = append(buf, `,"resource":[`...)
		for i, r := range d.Endpoint.Resource {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, r)
		}
		buf = append(buf, ']', '}')
	}
	if d.Timestamp != 0 {
		key("timestamp")
		buf = strconv.AppendInt(buf, d.Timestamp, 10)
	}
	if d.Token != nil {
		key("token")
		buf = appendScalars(buf, d.Token)
	}
	if d.Host != nil {
		key("host")
		buf = append(buf, '[')
		for i, h := range d.Host {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendHost(buf, h)
		}
		buf = append(buf, ']')
	}
	if d.Exception != nil {
		key("exception")
		buf = append(buf, `{"code":`...)
		buf = strconv.AppendInt(buf, int64(d.Exception.Code), 10)
		buf = append(buf, `,"message":`...)
		buf = appendString(buf, d.Exception.Message)
		buf = append(buf, '}')
	}
	if d.Body != nil {
		key("body")
		buf = appendRaw(buf, d.Body)
	}
	for _, h := range d.Extra {
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = appendString(buf, h.Name)
		buf = append(buf, ':')
		buf = appendRaw(buf, h.Value)
	}
	return append(buf, '}')
}

// String renders the dispatch as one line of JSON, for logs and errors.
func (d *Dispatch) String() string { return string(d.AppendJSON(nil)) }

func appendHost(buf []byte, h Host) []byte {
	if !h.IsTuple() {
		return appendString(buf, h.Name)
	}
	buf = append(buf, '[')
	buf = appendString(buf, h.Name)
	buf = append(buf, ',')
	if h.Port != 0 {
		buf = strconv.AppendInt(buf, int64(h.Port), 10)
	} else {
		buf = append(buf, "null"...)
	}
	if h.Transport != "" {
		buf = append(buf, ',')
		buf = appendString(buf, h.Transport)
	}
	return append(buf, ']')
}

func appendScalars(buf []byte, vs []any) []byte {
	buf = append(buf, '[')
	for i, v := range vs {
		if i > 0 {
			buf = append(buf, ',')
		}
		switch x := v.(type) {
		case string:
			buf = appendString(buf, x)
		case json.Number:
			buf = append(buf, x...)
		case bool:
			buf = strconv.AppendBool(buf, x)
		case nil:
			buf = append(buf, "null"...)
		default:
			b, err := json.Marshal(normScalar(x))
			if err != nil {
				b = []byte("null")
			}
			buf = append(buf, b...)
		}
	}
	return append(buf, ']')
}

// appendRaw copies a raw JSON value, compacting it when it spans lines so
// the whole dispatch stays one line.
func appendRaw(buf []byte, raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return append(buf, "null"...)
	}
	if bytes.IndexByte(raw, '\n') < 0 && bytes.IndexByte(raw, '\r') < 0 {
		return append(buf, raw...)
	}
	var out bytes.Buffer
	if err := json.Compact(&out, raw); err != nil {
		return append(buf, "null"...)
	}
	return append(buf, out.Bytes()...)
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as encoding/json does; U+2028 and U+2029 are escaped so the output is
// also safe to embed in JavaScript.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
