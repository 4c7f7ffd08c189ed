package dispatch

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Default limits, applied before a byte of the document is interpreted.
const (
	// DefaultMaxSize bounds one encoded dispatch (1 MiB).
	DefaultMaxSize = 1 << 20
	// DefaultMaxDepth bounds JSON nesting, so a hostile "[[[[…" cannot
	// exhaust the stack or the allocator.
	DefaultMaxDepth = 64
)

// Decoder turns JSON text into a validated Dispatch. The zero value uses
// the defaults: 1 MiB, depth 64, strict.
type Decoder struct {
	// MaxSize is the largest document accepted, in bytes (0: 1 MiB).
	// Larger input fails with ErrTooLarge (413).
	MaxSize int
	// MaxDepth is the deepest nesting accepted (0: 64).
	MaxDepth int
	// Quirks accepts what the original Node.js engine (npm jstp 1.1.5)
	// sends but the drafts forbid: a missing timestamp is filled with the
	// time of arrival, a lowercase method or "jstp" is normalised (as in
	// strict mode), a string token becomes a one-element token, a null
	// token, host or resource is taken as absent.
	Quirks bool
	// Now stamps dispatches that quirks mode completes (nil: time.Now).
	Now func() time.Time
}

// Decode decodes and validates one dispatch with the default Decoder.
func Decode(data []byte) (*Dispatch, error) { return Decoder{}.Decode(data) }

// Decode decodes and validates one dispatch. On error the returned
// Dispatch holds whatever headers could be read (it is nil only when the
// document is not a JSON object), so the caller can address an exception
// to the right transaction.
func (dec Decoder) Decode(data []byte) (*Dispatch, error) {
	d, err := dec.decode(data)
	if err != nil {
		return d, err
	}
	if dec.Quirks {
		dec.complete(d)
	}
	return d, d.Validate()
}

func (dec Decoder) decode(data []byte) (*Dispatch, error) {
	maxSize := dec.MaxSize
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if len(data) > maxSize {
		return nil, Errorf(ErrTooLarge, "%d bytes exceeds the limit of %d", len(data), maxSize)
	}
	maxDepth := dec.MaxDepth
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	if err := checkDepth(data, maxDepth); err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, Errorf(ErrBadDispatch, "not a JSON object: %s", jsonErrText(err))
	}
	if fields == nil {
		return nil, Errorf(ErrBadDispatch, "not a JSON object: null")
	}
	d := &Dispatch{}
	err := d.fromFields(fields, dec.Quirks)
	return d, err
}

// UnmarshalJSON decodes the headers without semantic validation (use
// Decode for untrusted input: it also applies the limits and Validate).
func (d *Dispatch) UnmarshalJSON(data []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return Errorf(ErrBadDispatch, "not a JSON object: %s", jsonErrText(err))
	}
	*d = Dispatch{}
	return d.fromFields(fields, false)
}

func (d *Dispatch) fromFields(fields map[string]json.RawMessage, quirks bool) error {
	var firstErr error
	fail := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	seen := make(map[string]string, len(fields))
	for name, raw := range fields {
		key := lower(name)
		if prev, dup := seen[key]; dup {
			fail(Errorf(ErrBadDispatch, "header %q given twice (as %q and %q)", key, prev, name))
			continue
		}
		seen[key] = name
		if quirks && isNull(raw) && (key == "token" || key == "host" || key == "resource" || key == "body") {
			continue
		}
		var err error
		switch key {
		case "protocol":
			err = unmarshalHeader(key, raw, &d.Protocol, "an array of strings")
		case "method":
			var m string
			if err = unmarshalHeader(key, raw, &m, "a string"); err == nil {
				d.Method = strings.ToUpper(m)
			}
		case "resource":
			d.Resource, err = parseScalars(key, raw, false)
			if d.Resource == nil && err == nil {
				d.Resource = []any{}
			}
		case "timestamp":
			d.Timestamp, err = parseTimestamp(raw)
		case "token":
			if quirks && len(raw) > 0 && raw[0] == '"' {
				raw = append(append([]byte{'['}, raw...), ']')
			}
			d.Token, err = parseScalars(key, raw, true)
			if d.Token == nil && err == nil {
				d.Token = []any{}
			}
		case "host":
			d.Host, err = parseHosts(raw, quirks)
		case "body":
			d.Body = append(json.RawMessage(nil), raw...)
		case "endpoint":
			d.Endpoint, err = parseEndpoint(raw)
		case "exception":
			d.Exception, err = parseException(raw)
		default:
			if d.Extra == nil {
				d.Extra = make(map[string]json.RawMessage)
			}
			d.Extra[key] = append(json.RawMessage(nil), raw...)
		}
		if err != nil {
			fail(err)
		}
	}
	return firstErr
}

// complete fills in what the Node engine leaves out.
func (dec Decoder) complete(d *Dispatch) {
	if d.Timestamp == 0 {
		now := time.Now
		if dec.Now != nil {
			now = dec.Now
		}
		d.Timestamp = now().UnixMilli()
	}
	if d.Protocol == nil {
		d.Protocol = []string{"JSTP", Version}
	}
}

func unmarshalHeader(key string, raw json.RawMessage, v any, want string) error {
	if isNull(raw) {
		return Errorf(ErrBadDispatch, "header %q is null; want %s", key, want)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return Errorf(ErrBadDispatch, "header %q must be %s", key, want)
	}
	return nil
}

func parseTimestamp(raw json.RawMessage) (int64, error) {
	s := string(raw)
	ts, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// 1.3656e12 is an integer written as a float; accept it exactly.
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != float64(int64(f)) {
			return 0, Errorf(ErrBadDispatch, "header \"timestamp\" must be an integer (Unix milliseconds), got %s", clip(s))
		}
		ts = int64(f)
	}
	if ts <= 0 {
		return 0, Errorf(ErrBadDispatch, "header \"timestamp\" must be positive Unix milliseconds, got %s", clip(s))
	}
	return ts, nil
}

// parseScalars reads an array of strings, numbers and bools (and nulls
// when allowNull). Numbers are kept as their literal text.
func parseScalars(key string, raw json.RawMessage, allowNull bool) ([]any, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil || (len(raw) > 0 && raw[0] != '[') {
		return nil, Errorf(ErrBadDispatch, "header %q must be an array", key)
	}
	out := make([]any, 0, len(elems))
	for i, e := range elems {
		v, ok := parseScalar(e)
		if !ok || (v == nil && !allowNull) {
			kind := "strings, numbers or booleans"
			if allowNull {
				kind = "strings, numbers, booleans or nulls"
			}
			return out, Errorf(ErrBadDispatch, "header %q element %d is %s; want %s", key, i, clip(string(e)), kind)
		}
		out = append(out, v)
	}
	return out, nil
}

// parseScalar classifies an already-validated JSON value by its first byte.
func parseScalar(raw json.RawMessage) (any, bool) {
	if len(raw) == 0 {
		return nil, false
	}
	switch c := raw[0]; {
	case c == '"':
		s, ok := unquote(raw)
		return s, ok
	case c == 't':
		return true, true
	case c == 'f':
		return false, true
	case c == 'n':
		return nil, true
	case c == '-' || (c >= '0' && c <= '9'):
		return json.Number(raw), true
	}
	return nil, false
}

// unquote decodes a JSON string, without encoding/json's reflection for
// the common case of plain text.
func unquote(raw json.RawMessage) (string, bool) {
	if len(raw) >= 2 && bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

func parseHosts(raw json.RawMessage, quirks bool) ([]Host, error) {
	if quirks && len(raw) > 0 && raw[0] == '"' {
		raw = append(append([]byte{'['}, raw...), ']')
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil || raw[0] != '[' {
		return nil, Errorf(ErrBadDispatch, "header \"host\" must be an array of hosts")
	}
	out := make([]Host, 0, len(elems))
	for i, e := range elems {
		h, err := parseHost(e)
		if err != nil {
			return out, Errorf(ErrBadDispatch, "header \"host\" element %d: %s", i, err)
		}
		out = append(out, h)
	}
	return out, nil
}

type hostError string

func (e hostError) Error() string { return string(e) }

func parseHost(raw json.RawMessage) (Host, error) {
	if raw[0] == '"' {
		s, _ := unquote(raw)
		if s == "" {
			return Host{}, hostError("empty host name")
		}
		return Host{Name: s}, nil
	}
	var parts []json.RawMessage
	if raw[0] != '[' || json.Unmarshal(raw, &parts) != nil || len(parts) == 0 || len(parts) > 3 {
		return Host{}, hostError("want a string or [hostname, port, transport]")
	}
	var h Host
	if parts[0][0] != '"' {
		return Host{}, hostError("hostname must be a string")
	}
	h.Name, _ = unquote(parts[0])
	if h.Name == "" {
		return Host{}, hostError("empty host name")
	}
	if len(parts) > 1 && !isNull(parts[1]) {
		p, err := strconv.Atoi(string(parts[1]))
		if err != nil || p < 1 || p > 65535 {
			return Host{}, hostError("port must be an integer from 1 to 65535")
		}
		h.Port = p
	}
	if len(parts) > 2 && !isNull(parts[2]) {
		if parts[2][0] != '"' {
			return Host{}, hostError("transport must be a string")
		}
		t, _ := unquote(parts[2])
		h.Transport = strings.ToLower(t)
	}
	return h, nil
}

func parseEndpoint(raw json.RawMessage) (*Endpoint, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil, Errorf(ErrBadDispatch, "header \"endpoint\" must be an object {method, resource}")
	}
	ep := &Endpoint{}
	for name, v := range fields {
		switch lower(name) {
		case "method":
			if err := unmarshalHeader("endpoint.method", v, &ep.Method, "a string"); err != nil {
				return ep, err
			}
			ep.Method = strings.ToUpper(ep.Method)
		case "resource":
			if err := unmarshalHeader("endpoint.resource", v, &ep.Resource, "an array of strings"); err != nil {
				return ep, err
			}
		}
	}
	return ep, nil
}

func parseException(raw json.RawMessage) (*ExceptionInfo, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil, Errorf(ErrBadDispatch, "header \"exception\" must be an object {code, message}")
	}
	x := &ExceptionInfo{}
	for name, v := range fields {
		switch lower(name) {
		case "code":
			if err := unmarshalHeader("exception.code", v, &x.Code, "an integer"); err != nil {
				return x, err
			}
		case "message":
			if err := unmarshalHeader("exception.message", v, &x.Message, "a string"); err != nil {
				return x, err
			}
		}
	}
	return x, nil
}

// checkDepth rejects documents nested deeper than max, in one pass that
// allocates nothing, before the JSON parser recurses into them.
func checkDepth(data []byte, max int) error {
	depth := 0
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > max {
				return Errorf(ErrBadDispatch, "JSON nested deeper than %d levels", max)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// lower avoids an allocation for names that are already lowercase, which
// is every name a conforming engine sends.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' || c >= utf8.RuneSelf {
			return strings.ToLower(s)
		}
	}
	return s
}

func jsonErrText(err error) string {
	var se *json.SyntaxError
	if e, ok := err.(*json.SyntaxError); ok {
		se = e
		return se.Error() + " at offset " + strconv.FormatInt(se.Offset, 10)
	}
	if _, ok := err.(*json.UnmarshalTypeError); ok {
		return "the document is a JSON " + strings.TrimPrefix(err.(*json.UnmarshalTypeError).Value, "")
	}
	return err.Error()
}

// clip shortens echoed input so an exception never carries a megabyte.
func clip(s string) string {
	if len(s) > 64 {
		return s[:61] + "..."
	}
	return s
}
