// Reading the HTTP-like notation: the start line and the header lines.

package dispatch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ParseHTTP parses the HTTP-like notation with the default Decoder; see
// Decoder.ParseHTTP.
func ParseHTTP(data []byte) (*Dispatch, error) { return Decoder{}.ParseHTTP(data) }

// ParseHTTP parses one dispatch in the HTTP-like notation and validates
// it. The text is UTF-8 lines (LF or CRLF): a start line, header lines,
// and optionally a blank line and the body. Blank lines before the start
// line are skipped.
//
// Start lines:
//
//	GET /foods/pizza JSTP/0.4          a regular dispatch (PUT, ANSWER, ...)
//	ANSWER /200/txid/trigid JSTP/0.4   an answer is a regular start line
//	BIND POST /foods/* JSTP/0.4        BIND/RELEASE, then the endpoint
//	BIND /foods/*                      the endpoint method defaults to GET
//	JSTP/0.4 404 Not Found             an exception: version first, code, message
//
// Paths use the element rules of the URL notation (percent escapes,
// numbers and booleans typed in resources, ' to force a string). The
// version token is JSTP/0.4, or JSTP/0.4/ext/... for extensions; it may
// be left out of a request line and defaults to JSTP/Version. An
// exception message starting with a double quote is a JSON string, for
// messages with line breaks or edge spaces.
//
// Header lines are "name: value", names case-insensitive (a name that is
// not an RFC 9110 token is written as a JSON string, "odd name": value):
//
//	host: a, b:33333, [::1]:33333;ws   the host chain; repeated lines append; a JSON array also works
//	timestamp: 1365647440759           optional: missing means dec.Now
//	token: 3434h5098asr34h3, 7         elements as in paths, null is null; repeated lines append
//	method: GET                        only when the start line has none (exceptions)
//	resource: /foods/pizza             likewise; a JSON array also works
//	endpoint: POST /foods/*            likewise; a JSON object also works
//	x-anything: value                  other headers: JSON when the value parses as JSON, else a string
//
// The body is everything after the first blank line, trimmed of white
// space at both ends: JSON when it parses as JSON; otherwise, when every
// line is "key: value" (key of letters, digits, "-", "_", "."; a space
// or nothing after the colon), an object of those strings in line order;
// otherwise the text as one JSON string. Nothing after the blank line
// means no body.
//
// Errors name the line they are on.
func (dec Decoder) ParseHTTP(data []byte) (*Dispatch, error) {
	if err := dec.checkSize(len(data)); err != nil {
		return nil, err
	}
	if !utf8.Valid(data) {
		bad := 0
		for bad < len(data) {
			r, size := utf8.DecodeRune(data[bad:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			bad += size
		}
		return nil, Errorf(ErrBadDispatch, "line %d: not valid UTF-8", 1+bytes.Count(data[:bad], []byte{'\n'}))
	}
	p := &httpParser{dec: dec, rest: string(data), seen: make(map[string]int)}
	return p.parse()
}

type httpParser struct {
	dec  Decoder
	rest string // input not yet read
	line int    // number of the line last read
	d    *Dispatch
	seen map[string]int // header name → line it was given on
}

func (p *httpParser) next() (string, bool) {
	if p.rest == "" {
		return "", false
	}
	line := p.rest
	p.rest = ""
	if i := strings.IndexByte(line, '\n'); i >= 0 {
		line, p.rest = line[:i], line[i+1:]
	}
	p.line++
	return strings.TrimSuffix(line, "\r"), true
}

func (p *httpParser) errorf(format string, args ...any) error {
	return Errorf(ErrBadDispatch, "line %d: %s", p.line, fmt.Sprintf(format, args...))
}

func (p *httpParser) parse() (*Dispatch, error) {
	var start string
	for {
		l, ok := p.next()
		if !ok {
			return nil, Errorf(ErrBadDispatch, "empty input: want a start line such as GET /foods/pizza JSTP/%s", Version)
		}
		if !isBlank(l) {
			start = l
			break
		}
	}
	p.d = &Dispatch{}
	if err := checkLine(start); err != nil {
		return nil, p.errorf("%v", err)
	}
	if err := p.startLine(start); err != nil {
		return p.d, err
	}
	for {
		l, ok := p.next()
		if !ok || isBlank(l) {
			break
		}
		if err := checkLine(l); err != nil {
			return p.d, p.errorf("%v", err)
		}
		if err := p.header(l); err != nil {
			return p.d, err
		}
	}
	if p.rest != "" {
		body, err := parseBody(p.rest, p.line+1, p.dec.maxDepth())
		if err != nil {
			return p.d, err
		}
		p.d.Body = body
	}
	if p.d.Timestamp == 0 {
		p.d.Timestamp = p.dec.now()
	}
	return p.d, p.d.Validate()
}

// isBlank uses Unicode white space, as strings.Fields does when it splits
// the start line: a line of U+00A0 alone has no words either.
func isBlank(l string) bool { return strings.TrimSpace(l) == "" }

// checkLine refuses control characters other than tab outside the body:
// they are invisible in a terminal and a log, and the formatter never
// writes them there.
func checkLine(l string) error {
	for i := 0; i < len(l); i++ {
		if c := l[i]; c < ' ' && c != '\t' {
			return notationError(fmt.Sprintf("control character %q at column %d", c, i+1))
		}
	}
	return nil
}

// cutField returns the first word of s and what follows it. Words are
// separated by Unicode white space, like strings.Fields.
func cutField(s string) (field, rest string) {
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	i := strings.IndexFunc(s, unicode.IsSpace)
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

func isVersionToken(t string) bool {
	return strings.EqualFold(t, "JSTP") || len(t) > 4 && strings.EqualFold(t[:5], "JSTP/")
}

func (p *httpParser) startLine(l string) error {
	first, rest := cutField(l)
	if isVersionToken(first) {
		return p.exceptionLine(first, rest)
	}
	toks := strings.Fields(l)
	if len(toks) == 0 {
		return p.errorf("want a start line such as GET /foods/pizza JSTP/%s", Version)
	}
	p.d.Protocol = []string{"JSTP", Version}
	if last := toks[len(toks)-1]; isVersionToken(last) {
		proto, err := parseProtocolToken(last)
		if err != nil {
			return p.errorf("%v", err)
		}
		p.d.Protocol = proto
		toks = toks[:len(toks)-1]
	}
	if strings.HasPrefix(toks[0], "/") {
		// No method: only a formatter writing a method-less dispatch
		// does this, and Validate then says what is missing.
		if len(toks) > 1 {
			return p.errorf("unexpected %q after the path", clip(toks[1]))
		}
		return p.resourcePath(toks[0])
	}
	p.d.Method = strings.ToUpper(toks[0])
	args := toks[1:]
	if p.d.Method == BIND || p.d.Method == RELEASE {
		switch {
		case len(args) == 0:
			return nil
		case len(args) > 2:
			return p.errorf("unexpected %q: want %s METHOD /pattern JSTP/%s", clip(args[2]), p.d.Method, Version)
		case strings.HasPrefix(args[0], "/"):
			if len(args) == 2 {
				return p.errorf("unexpected %q after the path", clip(args[1]))
			}
			args = []string{GET, args[0]}
		}
		ep := &Endpoint{Method: strings.ToUpper(args[0])}
		p.d.Endpoint = ep
		if len(args) == 2 {
			res, err := parsePatternPath(args[1])
			if err != nil {
				return p.errorf("%v", err)
			}
			ep.Resource = res
		}
		return nil
	}
	switch {
	case len(args) == 0:
		return nil
	case len(args) == 2 && strings.HasPrefix(args[1], "/"):
		return p.errorf("%q: only BIND and RELEASE take a second method (the endpoint's)", clip(toks[0]+" "+args[0]))
	case len(args) > 1:
		return p.errorf("unexpected %q after the path", clip(args[1]))
	}
	return p.resourcePath(args[0])
}

func (p *httpParser) resourcePath(path string) error {
	res, err := parsePath(path, segResource, "path")
	p.d.Resource = res
	if err != nil {
		return p.errorf("%v", err)
	}
	return nil
}

func (p *httpParser) exceptionLine(version, rest string) error {
	proto, err := parseProtocolToken(version)
	if err != nil {
		return p.errorf("%v", err)
	}
	p.d.Protocol = proto
	code, rest := cutField(rest)
	if code == "" {
		return p.errorf("an exception's start line is JSTP/%s CODE MESSAGE, as in JSTP/%s 404 Not Found", Version, Version)
	}
	c, err := strconv.Atoi(code)
	if err != nil || code[0] < '0' || code[0] > '9' {
		return p.errorf("exception code %q is not a number", clip(code))
	}
	msg, err := parseLineString(rest)
	if err != nil {
		return p.errorf("exception message: %v", err)
	}
	p.d.Exception = &ExceptionInfo{Code: c, Message: msg}
	return nil
}

func parseProtocolToken(t string) ([]string, error) {
	parts := strings.Split(t, "/")
	out := make([]string, len(parts))
	for i, s := range parts {
		v, err := parseSegment(s, segString)
		if err != nil {
			return nil, notationError(fmt.Sprintf("protocol element %d %q: %v", i, clip(s), err))
		}
		out[i] = v.(string)
	}
	return out, nil
}

func appendProtocolToken(buf []byte, proto []string) []byte {
	if len(proto) == 0 {
		return append(buf, "JSTP/"+Version...)
	}
	for i, s := range proto {
		if i > 0 {
			buf = append(buf, '/')
		}
		buf = appendSegment(buf, s, segString)
	}
	return buf
}

// parseLineString reads a string written on a line: as it is, trimmed,
// or as a JSON string when it starts with a double quote.
func parseLineString(s string) (string, error) {
	s = strings.Trim(s, " \t")
	if !strings.HasPrefix(s, `"`) {
		return s, nil
	}
	var out string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return "", notationError("starts with \" but is not a JSON string")
	}
	return out, nil
}

func appendLineString(buf []byte, s string) []byte {
	if back, err := parseLineString(s); err == nil && back == s && checkLine(s) == nil && utf8.ValidString(s) {
		return append(buf, s...)
	}
	return appendString(buf, s)
}

// isToken reports whether s is an RFC 9110 token, the names written bare.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func (p *httpParser) once(name string) error {
	if prev, dup := p.seen[name]; dup {
		return p.errorf("header %q given twice (first on line %d)", clip(name), prev)
	}
	p.seen[name] = p.line
	return nil
}

func (p *httpParser) header(l string) error {
	if l[0] == ' ' || l[0] == '\t' {
		return p.errorf("a line starting with white space: continuation lines are not supported, write the value on one line")
	}
	var name, value string
	if l[0] == '"' {
		end := jsonStringEnd(l)
		if end < 0 {
			return p.errorf("unterminated quoted header name")
		}
		if err := json.Unmarshal([]byte(l[:end]), &name); err != nil {
			return p.errorf("quoted header name %s is not a JSON string", clip(l[:end]))
		}
		rest := strings.TrimLeft(l[end:], " \t")
		if !strings.HasPrefix(rest, ":") {
			return p.errorf("want \"name\": value after a quoted header name")
		}
		value = rest[1:]
	} else {
		i := strings.IndexByte(l, ':')
		if i < 0 {
			return p.errorf("want a header line \"name: value\" (or a blank line before the body), got %q", clip(l))
		}
		name, value = l[:i], l[i+1:]
		if !isToken(name) {
			return p.errorf("header name %q: use letters, digits and !#$%%&'*+-.^_`|~, or write it as a JSON string", clip(name))
		}
	}
	name = lower(name)
	value = strings.Trim(value, " \t")
	switch name {
	case "host":
		hosts, err := parseHostHeader(value, p.dec.maxDepth())
		if err != nil {
			return p.errorf("host: %s", detail(err))
		}
		if p.d.Host == nil {
			p.d.Host = []Host{}
		}
		p.d.Host = append(p.d.Host, hosts...)
	case "token":
		tok, err := parseTokenHeader(value, p.dec.maxDepth())
		if err != nil {
			return p.errorf("token: %s", detail(err))
		}
		if p.d.Token == nil {
			p.d.Token = []any{}
		}
		p.d.Token = append(p.d.Token, tok...)
	case "timestamp":
		if err := p.once(name); err != nil {
			return err
		}
		ts, err := parseTimestamp(json.RawMessage(value))
		if err != nil {
			return p.errorf("%s", detail(err))
		}
		p.d.Timestamp = ts
	case "method":
		if p.d.Method != "" {
			return p.errorf("the method is given twice (in the start line or an earlier header)")
		}
		m, err := parseLineString(value)
		if err != nil {
			return p.errorf("method: %v", err)
		}
		if m == "" {
			return p.errorf("method: empty")
		}
		p.d.Method = strings.ToUpper(m)
	case "resource":
		if p.d.Resource != nil {
			return p.errorf("the resource is given twice (in the start line or an earlier header)")
		}
		res, err := parseResourceHeader(value, p.dec.maxDepth())
		p.d.Resource = res
		if err != nil {
			return p.errorf("resource: %s", detail(err))
		}
	case "endpoint":
		if p.d.Endpoint != nil {
			return p.errorf("the endpoint is given twice (in the start line or an earlier header)")
		}
		ep, err := parseEndpointHeader(value, p.dec.maxDepth())
		p.d.Endpoint = ep
		if err != nil {
			return p.errorf("endpoint: %s", detail(err))
		}
	case "protocol":
		return p.errorf("the protocol goes at the end of the start line, as in GET /foods JSTP/%s", Version)
	case "exception":
		return p.errorf("an exception is written as its start line, as in JSTP/%s 404 Not Found", Version)
	case "body":
		return p.errorf("the body goes after a blank line, not in a header")
	default:
		if err := p.once(name); err != nil {
			return err
		}
		raw, err := parseHeaderValue(value, p.dec.maxDepth())
		if err != nil {
			return p.errorf("%s: %s", clip(name), detail(err))
		}
		p.d.Extra.add(name, raw) // once checked that name is new
	}
	return nil
}

// detail drops the "bad dispatch: " prefix of a wrapped sentinel, so the
// outer error that adds the line number does not say it twice.
func detail(err error) string {
	return strings.TrimPrefix(err.Error(), ErrBadDispatch.Error()+": ")
}
