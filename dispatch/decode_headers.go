// Reading the value of each header into its Dispatch field.

package dispatch

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

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
