package dispatch

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
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
			if _, dup := d.Extra[key]; dup {
				if err == nil {
					err = dupError(key, p.firstName(obj, key), p.name(name))
				}
				continue
			}
			if d.Extra == nil {
				d.Extra = make(map[string]json.RawMessage)
			}
			d.Extra[key] = p.rawValue(vstart, s.pos)
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

// skip validates a value the header does not accept and returns the
// error for it, "header %q must be %s", or "is null" when it is null.
func (p *parser) skip(key, want string) error {
	null := p.s.peek() == 'n'
	if !p.s.value() {
		return nil
	}
	if null {
		return Errorf(ErrBadDispatch, "header %q is null; want %s", key, want)
	}
	return Errorf(ErrBadDispatch, "header %q must be %s", key, want)
}

// text reads a header that must be a string.
func (p *parser) text(key string) (string, error) {
	if p.s.peek() != '"' {
		return "", p.skip(key, "a string")
	}
	s, _ := p.stringValue()
	return s, nil
}

// method reads a method name, in uppercase.
func (p *parser) method(key string) (string, error) {
	s := &p.s
	if s.peek() != '"' {
		return "", p.skip(key, "a string")
	}
	start := s.pos
	flags, ok := s.scanString()
	if !ok {
		return "", nil
	}
	if flags == 0 {
		b := s.data[start+1 : s.pos-1]
		for i, m := range lowerMethods {
			if equalFoldASCII(b, m) {
				return upperMethods[i], nil
			}
		}
	}
	return strings.ToUpper(p.str(span{start, s.pos, flags})), nil
}

// The methods, so that decoding one allocates nothing.
var (
	lowerMethods = [...]string{"get", "post", "put", "patch", "delete", "bind", "release", "answer"}
	upperMethods = [...]string{GET, POST, PUT, PATCH, DELETE, BIND, RELEASE, ANSWER}
)

// stringList reads an array of strings, as json.Unmarshal into a []string
// did: a null element reads as "", and an element of another type as ""
// too, with an error once the array is read.
func (p *parser) stringList(key, want string) ([]string, error) {
	s := &p.s
	if s.peek() != '[' {
		return nil, p.skip(key, want)
	}
	if !s.enter() {
		return nil, nil
	}
	out := make([]string, 0, 2)
	wrongType := false
	for more := s.firstElem(); more; more = s.nextElem() {
		c := s.peek()
		if c == '"' {
			v, ok := p.stringValue()
			if !ok {
				return nil, nil
			}
			out = append(out, v)
			continue
		}
		if !s.value() {
			return nil, nil
		}
		wrongType = wrongType || c != 'n'
		out = append(out, "")
	}
	if s.failed {
		return nil, nil
	}
	if wrongType {
		return out, Errorf(ErrBadDispatch, "header %q must be %s", key, want)
	}
	return out, nil
}

// scalars reads an array of strings, numbers and bools (and nulls when
// allowNull). Numbers are kept as their literal text. On a bad element it
// returns the elements before it.
func (p *parser) scalars(key string, allowNull bool) ([]any, error) {
	s := &p.s
	if s.peek() != '[' {
		if !s.value() {
			return nil, nil
		}
		return nil, Errorf(ErrBadDispatch, "header %q must be an array", key)
	}
	if !s.enter() {
		return nil, nil
	}
	var buf [8]any
	out := buf[:0]
	var err error
	for i, more := 0, s.firstElem(); more; i, more = i+1, s.nextElem() {
		start := s.pos
		var v any
		ok := true
		switch c := s.peek(); {
		case c == '"':
			if v, ok = p.stringValue(); !ok {
				return nil, nil
			}
		case c == '-' || isDigit(c):
			if !s.number() {
				return nil, nil
			}
			v = json.Number(p.keep(s.data[start:s.pos]))
		default:
			if !s.value() {
				return nil, nil
			}
			switch c {
			case 't':
				v = true
			case 'f':
				v = false
			case 'n':
				ok = allowNull
			default:
				ok = false
			}
		}
		if err != nil {
			continue
		}
		if !ok {
			kind := "strings, numbers or booleans"
			if allowNull {
				kind = "strings, numbers, booleans or nulls"
			}
			err = Errorf(ErrBadDispatch, "header %q element %d is %s; want %s", key, i, clip(string(s.data[start:s.pos])), kind)
			continue
		}
		out = append(out, v)
	}
	if s.failed {
		return nil, nil
	}
	return append(make([]any, 0, len(out)), out...), err
}

func (p *parser) timestamp() (int64, error) {
	s := &p.s
	start := s.pos
	if !s.value() {
		return 0, nil
	}
	raw := s.data[start:s.pos]
	// Plain positive integers, the only timestamps engines send, skip
	// strconv and its copy of the text.
	if len(raw) <= 18 && raw[0] != '0' {
		var ts int64
		for _, c := range raw {
			if !isDigit(c) {
				return parseTimestamp(raw)
			}
			ts = ts*10 + int64(c-'0')
		}
		return ts, nil
	}
	return parseTimestamp(raw)
}

func (p *parser) hosts(quirks bool) ([]Host, error) {
	s := &p.s
	if quirks && s.peek() == '"' {
		// The Node engine's single host, as a one-element chain.
		h, err := p.host()
		if err != nil {
			return []Host{}, Errorf(ErrBadDispatch, "header \"host\" element 0: %s", err)
		}
		return []Host{h}, nil
	}
	if s.peek() != '[' {
		if !s.value() {
			return nil, nil
		}
		return nil, Errorf(ErrBadDispatch, "header \"host\" must be an array of hosts")
	}
	if !s.enter() {
		return nil, nil
	}
	var buf [4]Host
	out := buf[:0]
	var err error
	for i, more := 0, s.firstElem(); more; i, more = i+1, s.nextElem() {
		h, e := p.host()
		switch {
		case s.failed:
			return nil, nil
		case err != nil:
		case e != nil:
			err = Errorf(ErrBadDispatch, "header \"host\" element %d: %s", i, e)
		default:
			out = append(out, h)
		}
	}
	if s.failed {
		return nil, nil
	}
	return append(make([]Host, 0, len(out)), out...), err
}

type hostError string

func (e hostError) Error() string { return string(e) }

// host reads a host element: a name, or [name, port, transport].
func (p *parser) host() (Host, error) {
	s := &p.s
	switch s.peek() {
	case '"':
		name, ok := p.stringValue()
		if ok && name == "" {
			return Host{}, hostError("empty host name")
		}
		return Host{Name: name}, nil
	case '[':
	default:
		s.value()
		return Host{}, hostError("want a string or [hostname, port, transport]")
	}
	if !s.enter() {
		return Host{}, nil
	}
	// The tuple is judged as a whole, once read: a fourth part is the
	// error even when the first is not a string.
	var parts [3]span
	n := 0
	for more := s.firstElem(); more; more = s.nextElem() {
		v := span{start: s.pos}
		ok := false
		if s.peek() == '"' {
			v.flags, ok = s.scanString()
		} else {
			ok = s.value()
		}
		if !ok {
			return Host{}, nil
		}
		v.end = s.pos
		if n < len(parts) {
			parts[n] = v
		}
		n++
	}
	if s.failed {
		return Host{}, nil
	}
	if n == 0 || n > len(parts) {
		return Host{}, hostError("want a string or [hostname, port, transport]")
	}
	isNull := func(v span) bool { return s.data[v.start] == 'n' }
	isString := func(v span) bool { return s.data[v.start] == '"' }
	var h Host
	if !isString(parts[0]) {
		return Host{}, hostError("hostname must be a string")
	}
	if h.Name = p.str(parts[0]); h.Name == "" {
		return Host{}, hostError("empty host name")
	}
	if n > 1 && !isNull(parts[1]) {
		port, ok := parsePort(s.data[parts[1].start:parts[1].end])
		if !ok {
			return Host{}, hostError("port must be an integer from 1 to 65535")
		}
		h.Port = port
	}
	if n > 2 && !isNull(parts[2]) {
		t := parts[2]
		if !isString(t) {
			return Host{}, hostError("transport must be a string")
		}
		if t.flags == 0 {
			h.Transport = p.keepLower(s.data[t.start+1 : t.end-1])
		} else {
			h.Transport = strings.ToLower(p.str(t))
		}
	}
	return h, nil
}

// parsePort reads a port written as a JSON integer.
func parsePort(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 5 {
		return 0, false
	}
	port := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		port = port*10 + int(c-'0')
	}
	return port, port >= 1 && port <= 65535
}

// object reads an object-valued header, calling member for each member
// until one fails; member must consume the member's value. Members are
// read in order, the first bad one is the error, and a member given twice
// takes the last value. ok is false when the value is not an object (err
// says so) or the scanner failed (err is nil: the scanner's error is
// reported instead).
func (p *parser) object(header, want string, member func(name span) error) (ok bool, err error) {
	s := &p.s
	if s.peek() != '{' {
		if !s.value() {
			return false, nil
		}
		return false, Errorf(ErrBadDispatch, "header %q must be %s", header, want)
	}
	if !s.enter() {
		return false, nil
	}
	for more := s.firstMember(); more; more = s.nextMember() {
		name, ok := p.key()
		if !ok {
			return false, nil
		}
		if err != nil {
			s.value()
		} else {
			err = member(name)
		}
		if s.failed {
			return false, nil
		}
	}
	if s.failed {
		return false, nil
	}
	return true, err
}

// endpoint reads the endpoint header.
func (p *parser) endpoint() (*Endpoint, error) {
	ep := &Endpoint{}
	ok, err := p.object("endpoint", "an object {method, resource}", func(name span) error {
		switch {
		case p.memberIs(name, "method"):
			m, err := p.method("endpoint.method")
			if err == nil {
				ep.Method = m
			}
			return err
		case p.memberIs(name, "resource"):
			// As json.Unmarshal: a value that is not an array leaves the
			// field alone, an array with wrong elements does not.
			r, err := p.stringList("endpoint.resource", "an array of strings")
			if r != nil {
				ep.Resource = r
			}
			return err
		}
		p.s.value()
		return nil
	})
	if !ok {
		return nil, err
	}
	return ep, err
}

// exception reads the exception header.
func (p *parser) exception() (*ExceptionInfo, error) {
	x := &ExceptionInfo{}
	ok, err := p.object("exception", "an object {code, message}", func(name span) error {
		switch {
		case p.memberIs(name, "code"):
			c, err := p.integer("exception.code")
			if err == nil {
				x.Code = c
			}
			return err
		case p.memberIs(name, "message"):
			m, err := p.text("exception.message")
			if err == nil {
				x.Message = m
			}
			return err
		}
		p.s.value()
		return nil
	})
	if !ok {
		return nil, err
	}
	return x, err
}

// integer reads a header that must be an integer that fits an int.
func (p *parser) integer(key string) (int, error) {
	s := &p.s
	start := s.pos
	if c := s.peek(); c != '-' && !isDigit(c) {
		return 0, p.skip(key, "an integer")
	}
	if !s.number() {
		return 0, nil
	}
	n, err := strconv.ParseInt(string(s.data[start:s.pos]), 10, strconv.IntSize)
	if err != nil {
		return 0, Errorf(ErrBadDispatch, "header %q must be an integer", key)
	}
	return int(n), nil
}

// newParser reads a value that the caller has validated already and kept
// within its depth limit.
func newParser(raw []byte) parser {
	return parser{s: scanner{data: raw, maxDepth: math.MaxInt}}
}

// parseScalars reads an array of strings, numbers and bools (and nulls
// when allowNull). Numbers are kept as their literal text.
func parseScalars(key string, raw json.RawMessage, allowNull bool) ([]any, error) {
	if len(raw) > 0 && raw[0] == '[' {
		p := newParser(raw)
		if out, err := p.scalars(key, allowNull); p.s.end() {
			return out, err
		}
	}
	return nil, Errorf(ErrBadDispatch, "header %q must be an array", key)
}

func parseHosts(raw json.RawMessage, quirks bool) ([]Host, error) {
	if len(raw) > 0 && (raw[0] == '[' || quirks && raw[0] == '"') {
		p := newParser(raw)
		if out, err := p.hosts(quirks); p.s.end() {
			return out, err
		}
	}
	return nil, Errorf(ErrBadDispatch, "header \"host\" must be an array of hosts")
}

func parseEndpoint(raw json.RawMessage) (*Endpoint, error) {
	p := newParser(raw)
	p.s.ws()
	ep, err := p.endpoint()
	if !p.s.end() {
		return nil, Errorf(ErrBadDispatch, "header \"endpoint\" must be an object {method, resource}")
	}
	return ep, err
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
