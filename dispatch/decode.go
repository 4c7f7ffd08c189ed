package dispatch

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// Default limits. The size is checked before a byte of the document is
// read, the depth as the nesting grows, so neither costs a full parse.
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
	// JSON is UTF-8 (RFC 8259 §8.1), and the body is kept as raw bytes:
	// without this check bytes other parsers reject would be relayed.
	if !utf8.Valid(data) {
		return nil, Errorf(ErrBadDispatch, "not valid UTF-8")
	}
	maxDepth := dec.MaxDepth
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	return decodeDispatch(data, maxDepth, dec.Quirks)
}

// UnmarshalJSON decodes the headers without semantic validation (use
// Decode for untrusted input: it also applies the limits and Validate).
func (d *Dispatch) UnmarshalJSON(data []byte) error {
	// No depth limit of our own: encoding/json, which calls this, has
	// applied its own.
	nd, err := decodeDispatch(data, math.MaxInt, false)
	switch {
	case err == errNullDocument:
		// json.Unmarshal hands null to Unmarshalers, and null has always
		// meant the zero dispatch here.
		*d = Dispatch{}
		return nil
	case nd == nil:
		return err
	}
	*d = *nd
	return err
}

var errNullDocument = Errorf(ErrBadDispatch, "not a JSON object: null")

// decodeDispatch reads a dispatch in one pass over data. Syntax errors
// anywhere win over header errors (as when json.Unmarshal checked the
// whole text first) and leave no dispatch; a header error leaves the
// headers that could be read, and is the first bad header in document
// order.
func decodeDispatch(data []byte, maxDepth int, quirks bool) (*Dispatch, error) {
	p := parser{s: scanner{data: data, maxDepth: maxDepth}, quirks: quirks}
	s := &p.s
	s.ws()
	if s.peek() == '{' {
		d := &Dispatch{}
		err := p.dispatch(d)
		if !s.end() {
			return nil, s.syntaxError()
		}
		return d, err
	}
	start := s.pos
	if !s.value() || !s.end() {
		return nil, s.syntaxError()
	}
	var kind string
	switch data[start] {
	case 'n':
		return nil, errNullDocument
	case '[':
		kind = "array"
	case '"':
		kind = "string"
	case 't', 'f':
		kind = "bool"
	default:
		kind = "number"
	}
	return nil, Errorf(ErrBadDispatch, "not a JSON object: the document is a JSON %s", kind)
}

// parser interprets the values the scanner validates. Every method that
// reads a value leaves the cursor after it, or returns with s.failed set;
// its own error is a header error, meaningful only when the scan goes on
// to succeed.
type parser struct {
	s      scanner
	quirks bool

	// strs holds the text of every string the dispatch keeps, so that a
	// dispatch's dozen short strings cost one allocation, and none of them
	// keeps the (possibly large) input or body alive. A strings.Builder
	// never changes bytes once written, so substrings of it stay valid
	// when it grows.
	strs strings.Builder

	// raw is the one copy of the input that Body and Extra values are
	// cut from (with their capacity capped, so an append cannot run into
	// a neighbour), made at the first raw value: rawFrom is where it
	// starts in the input.
	raw     []byte
	rawFrom int
}

// A span locates a validated value, or a member name, in the input.
type span struct {
	start, end int
	flags      uint8 // for strings, as scanString returns them
}

// The headers decoded into fields, by index into headerNames.
const (
	hProtocol = iota
	hMethod
	hResource
	hTimestamp
	hToken
	hHost
	hBody
	hEndpoint
	hException
	numHeaders
)

var headerNames = [numHeaders]string{"protocol", "method", "resource", "timestamp", "token", "host", "body", "endpoint", "exception"}

func (p *parser) dispatch(d *Dispatch) error {
	s := &p.s
	obj := s.pos
	var seen [numHeaders]span
	var err error
	if !s.enter() {
		return nil
	}
	for more := s.firstMember(); more; more = s.nextMember() {
		name, ok := p.key()
		if !ok {
			return nil
		}
		id, key := p.header(name)
		vstart := s.pos
		if id < 0 {
			if !s.value() {
				return nil
			}
			if d.Extra.Has(key) {
				if err == nil {
					err = dupError(key, p.firstName(obj, key), p.name(name))
				}
				continue
			}
			d.Extra.add(key, p.rawValue(vstart, s.pos))
			continue
		}
		if seen[id].start != 0 {
			if !s.value() {
				return nil
			}
			if err == nil {
				err = dupError(headerNames[id], p.name(seen[id]), p.name(name))
			}
			continue
		}
		seen[id] = name
		if p.quirks && s.peek() == 'n' && (id == hToken || id == hHost || id == hResource || id == hBody) {
			if !s.value() {
				return nil
			}
			continue
		}
		var e error
		switch id {
		case hProtocol:
			d.Protocol, e = p.stringList("protocol", "an array of strings")
		case hMethod:
			var m string
			if m, e = p.method("method"); e == nil {
				d.Method = m
			}
		case hResource:
			d.Resource, e = p.scalars("resource", false)
		case hTimestamp:
			d.Timestamp, e = p.timestamp()
		case hToken:
			if p.quirks && s.peek() == '"' {
				// The Node engine's single token, as a one-element token.
				if t, ok := p.stringValue(); ok {
					d.Token = []any{t}
				}
			} else {
				d.Token, e = p.scalars("token", true)
			}
		case hHost:
			d.Host, e = p.hosts(p.quirks)
		case hBody:
			if s.value() {
				d.Body = p.rawValue(vstart, s.pos)
			}
		case hEndpoint:
			d.Endpoint, e = p.endpoint()
		case hException:
			d.Exception, e = p.exception()
		}
		if s.failed {
			return nil
		}
		if err == nil {
			err = e
		}
	}
	return err
}

func dupError(key, first, second string) error {
	return Errorf(ErrBadDispatch, "header %q given twice (as %q and %q)", key, first, second)
}

// key scans a member name and its colon.
func (p *parser) key() (span, bool) {
	start, end, flags, ok := p.s.key()
	return span{start, end, flags}, ok
}

// header identifies a member name: the index of a known header, or -1
// and the unknown header's lowercase name. Plain ASCII names, which are
// all that conforming engines send, are matched without allocating.
func (p *parser) header(name span) (int, string) {
	b := p.s.data[name.start+1 : name.end-1]
	if name.flags == 0 {
		for id, h := range headerNames {
			if equalFoldASCII(b, h) {
				return id, ""
			}
		}
		return -1, p.keepLower(b)
	}
	// Escapes and non-ASCII letters can still spell a known name: "\u0074oken",
	// or a Kelvin sign that lowercases to k.
	key := lower(p.str(name))
	for id, h := range headerNames {
		if key == h {
			return id, ""
		}
	}
	return -1, key
}

// firstName finds, for an error message, the name under which the
// header key first appeared in the object at obj, already scanned.
func (p *parser) firstName(obj int, key string) string {
	q := parser{s: scanner{data: p.s.data, pos: obj, maxDepth: math.MaxInt}}
	q.s.enter()
	for more := q.s.firstMember(); more; more = q.s.nextMember() {
		name, _ := q.key()
		if id, k := q.header(name); id < 0 && k == key {
			return q.name(name)
		}
		q.s.value()
	}
	return key
}

// name is a member name as sent, for error messages.
func (p *parser) name(n span) string {
	return string(unquoteTo(nil, p.s.data[n.start+1:n.end-1]))
}

// memberIs reports whether a member name is want (lowercase), ignoring
// case as header names do.
func (p *parser) memberIs(name span, want string) bool {
	if name.flags == 0 {
		return equalFoldASCII(p.s.data[name.start+1:name.end-1], want)
	}
	return lower(string(unquoteTo(nil, p.s.data[name.start+1:name.end-1]))) == want
}

func equalFoldASCII(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// str returns the text of a validated string. Only escapes and bytes
// that are not UTF-8 need decoding; anything else is copied as it is.
func (p *parser) str(v span) string {
	b := p.s.data[v.start+1 : v.end-1]
	if v.flags&strEscaped != 0 || v.flags&strNonASCII != 0 && !utf8.Valid(b) {
		var buf [64]byte
		return p.keep(unquoteTo(buf[:0], b))
	}
	return p.keep(b)
}

// keep returns b as a string in p.strs (see there).
func (p *parser) keep(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if p.strs.Cap()-p.strs.Len() < len(b) {
		p.strs.Grow(max(len(b), 128))
	}
	n := p.strs.Len()
	p.strs.Write(b)
	return p.strs.String()[n:]
}

// keepLower is keep for ASCII names that are stored in lowercase,
// without strings.ToLower's allocation when there is a capital.
func (p *parser) keepLower(b []byte) string {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			var buf [64]byte
			l := append(buf[:0], b...)
			for j := i; j < len(l); j++ {
				if 'A' <= l[j] && l[j] <= 'Z' {
					l[j] += 'a' - 'A'
				}
			}
			return p.keep(l)
		}
	}
	return p.keep(b)
}

// rawValue returns a copy of the validated value at input[start:end],
// cut from p.raw.
func (p *parser) rawValue(start, end int) json.RawMessage {
	if p.raw == nil {
		p.rawFrom = start
		p.raw = append([]byte(nil), p.s.data[start:]...)
	}
	start, end = start-p.rawFrom, end-p.rawFrom
	return p.raw[start:end:end]
}

// stringValue reads a string value (the cursor is on its quote).
func (p *parser) stringValue() (string, bool) {
	start := p.s.pos
	flags, ok := p.s.scanString()
	if !ok {
		return "", false
	}
	return p.str(span{start, p.s.pos, flags}), true
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

// checkDepth rejects documents nested deeper than max, in one pass that
// allocates nothing, before the JSON parser recurses into them. Decode's
// scanner enforces the limit itself; the notations and CanonicalJSON,
// which hand text to encoding/json, still need this.
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

// clip shortens echoed input so an exception never carries a megabyte.
func clip(s string) string {
	if len(s) > 64 {
		return s[:61] + "..."
	}
	return s
}
