package dispatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The two notations for people, next to JSON for the wire. Their full
// grammar, with examples, is docs/notation.md; the doc comments here state
// the rules a caller needs.
//
// URL notation, one line:
//
//	[METHOD [ENDPOINT-METHOD]] jstp://HOSTS/PATH
//
//	jstp://pizza.com.ar/foods/pizza           GET ["foods","pizza"] on ["pizza.com.ar"]
//	POST jstp:///foods/pizza                  POST, no host: process here
//	jstp://a,b:33333/users/97                 host ["a",["b",33333,"tcp"]], resource ["users",97]
//	BIND POST jstp://h/foods/*                BIND, endpoint {POST, ["foods","*"]}
//
// HTTP-like notation, a start line, header lines, a blank line and a body:
//
//	GET /foods/pizza JSTP/0.4
//	host: pizza.com.ar
//	timestamp: 1365647440759
//	token: 3434h5098asr34h3
//
//	message: Let the cheese melt!

// ErrURLCannotCarry is returned by FormatURL for a dispatch with a part the
// URL notation has no place for (a body, a token, an unknown header, an
// exception, protocol extensions). It is not a protocol error (the
// dispatch is fine, the notation is too small), so it wraps no sentinel and
// Code gives 500 for it: report it to the user, do not answer with it.
var ErrURLCannotCarry = errors.New("the URL notation cannot carry this dispatch")

// ParseNotation reads one dispatch written in any of the three notations
// and returns it validated. The notation is told by the text itself:
//
//   - JSON when the first byte that is not white space is "{" (decoded by
//     dec.Decode, with its limits and quirks);
//   - the URL notation when the first line contains "jstp://";
//   - the HTTP-like notation otherwise.
//
// dec's MaxSize (default 1 MiB) bounds the input in every notation and its
// MaxDepth bounds JSON values inside the notations. A notation that omits
// the timestamp is stamped with dec.Now (default time.Now), because people
// type notations and cannot be asked for Unix milliseconds.
//
// Errors wrap the sentinels (ErrBadDispatch, ErrMethodNotAllowed,
// ErrVersion, ErrTooLarge, ...) so Code gives the exception code. As with
// Decode, the returned dispatch holds what could be read even when err is
// not nil, and is nil only when nothing could.
func ParseNotation(data []byte, dec Decoder) (*Dispatch, error) {
	if err := dec.checkSize(len(data)); err != nil {
		return nil, err
	}
	text := bytes.TrimLeft(data, " \t\r\n")
	if len(text) > 0 && text[0] == '{' {
		return dec.Decode(data)
	}
	first := text
	if i := bytes.IndexByte(first, '\n'); i >= 0 {
		first = first[:i]
	}
	if indexFold(string(first), urlScheme) >= 0 {
		return dec.ParseURL(string(data))
	}
	return dec.ParseHTTP(data)
}

func (dec Decoder) checkSize(n int) error {
	maxSize := dec.MaxSize
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if n > maxSize {
		return Errorf(ErrTooLarge, "%d bytes exceeds the limit of %d", n, maxSize)
	}
	return nil
}

func (dec Decoder) now() int64 {
	if dec.Now != nil {
		return dec.Now().UnixMilli()
	}
	return time.Now().UnixMilli()
}

func (dec Decoder) maxDepth() int {
	if dec.MaxDepth > 0 {
		return dec.MaxDepth
	}
	return DefaultMaxDepth
}

// ---------------------------------------------------------------------
// Elements: the escaped, typed words both notations are made of.

// segKind says how an element of a path, a token or a protocol is typed.
type segKind uint8

const (
	// segResource elements that read as a JSON number or true/false are
	// that number or boolean: jstp://h/users/97 names ["users", 97].
	segResource segKind = iota
	// segToken elements are typed like resources, "null" is null, and
	// "," separates them so it is escaped inside one.
	segToken
	// segString elements are always strings: endpoint patterns (matched
	// as text) and protocol elements.
	segString
)

// parseSegment reads one element. A leading apostrophe forces a string
// (it is how the string "97" is told from the number 97); otherwise the
// raw text decides the type before percent-decoding, so an escaped
// character also makes a string.
func parseSegment(raw string, k segKind) (any, error) {
	if strings.HasPrefix(raw, "'") {
		return unescape(raw[1:], "")
	}
	if k != segString {
		if isJSONNumber(raw) {
			return json.Number(raw), nil
		}
		switch raw {
		case "true":
			return true, nil
		case "false":
			return false, nil
		case "null":
			if k == segToken {
				return nil, nil
			}
		}
	}
	return unescape(raw, "")
}

// appendSegment writes v as an element that parseSegment reads back as v.
func appendSegment(buf []byte, v any, k segKind) []byte {
	var s string
	switch x := normScalar(v).(type) {
	case json.Number:
		if k != segString && isJSONNumber(string(x)) {
			return append(buf, x...)
		}
		s = string(x)
	case bool:
		if k != segString {
			return strconv.AppendBool(buf, x)
		}
		s = strconv.FormatBool(x)
	case nil:
		if k == segToken {
			return append(buf, "null"...)
		}
		s = "null"
	case string:
		s = x
	default:
		s = ScalarText(x)
	}
	if s == "" {
		return append(buf, '\'')
	}
	if k != segString && (isJSONNumber(s) || s == "true" || s == "false" || (k == segToken && s == "null")) {
		// Such text has nothing to escape.
		return append(append(buf, '\''), s...)
	}
	keep := keepPath
	if k == segToken {
		keep = keepToken
	}
	return appendEscaped(buf, s, keep)
}

// Characters written as they are; every other byte becomes %XX. The path
// set is RFC 3986's pchar; hosts keep fewer because "," ";" ":" "@" "["
// "]" structure the host chain.
func keepHost(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("-._~!$&'()*+=", c) >= 0
}

func keepHostBracket(c byte) bool { return c == ':' || keepHost(c) }

func keepPath(c byte) bool { return keepHost(c) || strings.IndexByte(",;:@", c) >= 0 }

func keepToken(c byte) bool { return c != ',' && keepPath(c) }

const upperHex = "0123456789ABCDEF"

// appendEscaped percent-escapes s. A leading apostrophe is always escaped
// because, unescaped, it marks a forced string.
func appendEscaped(buf []byte, s string, keep func(byte) bool) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keep(c) && (i > 0 || c != '\'') {
			buf = append(buf, c)
			continue
		}
		buf = append(buf, '%', upperHex[c>>4], upperHex[c&0xf])
	}
	return buf
}

type notationError string

func (e notationError) Error() string { return string(e) }

// unescape percent-decodes s. Raw white space and control characters are
// refused (they end or corrupt a line), and so are "?" and "#", which a
// URL reader would take for a query or a fragment, and any byte in
// special, which structures the text around s. The result must be UTF-8
// because JSON strings are.
func unescape(s, special string) (string, error) {
	plain := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			plain = false
		case c <= ' ' || c == 0x7f:
			return "", notationError(fmt.Sprintf("raw %q: write it as %%%02X", c, c))
		case c == '?' || c == '#':
			return "", notationError(fmt.Sprintf("raw %q: queries and fragments are not part of the notation; write %%%02X", c, c))
		case strings.IndexByte(special, c) >= 0:
			return "", notationError(fmt.Sprintf("unexpected %q: write it as %%%02X", c, c))
		}
	}
	if plain {
		if !utf8.ValidString(s) {
			return "", notationError("not valid UTF-8")
		}
		return s, nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			out = append(out, c)
			continue
		}
		if i+2 >= len(s) {
			return "", notationError(fmt.Sprintf("%q is not a %%XX escape", s[i:]))
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", notationError(fmt.Sprintf("%q is not a %%XX escape", s[i:i+3]))
		}
		out = append(out, hi<<4|lo)
		i += 2
	}
	if !utf8.Valid(out) {
		return "", notationError("escapes decode to bytes that are not UTF-8")
	}
	return string(out), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// isJSONNumber reports whether s is a number by RFC 8259's grammar, which
// is what makes an element a number rather than a string: "97" and
// "-1.5e3" are numbers, "097", "+1" and "1." are strings.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i == len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i == len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	}
	return i == len(s)
}

// parsePath reads "/a/b/c". "/" alone is the empty resource; an empty
// element ("//", a trailing "/") is an error since no element may be
// empty (write ' for an empty string).
func parsePath(path string, k segKind, what string) ([]any, error) {
	if path == "" || path[0] != '/' {
		return nil, notationError(fmt.Sprintf("%s must start with \"/\", as in /foods/pizza", what))
	}
	if path == "/" {
		return []any{}, nil
	}
	parts := strings.Split(path[1:], "/")
	out := make([]any, 0, len(parts))
	for i, p := range parts {
		if p == "" {
			return out, notationError(fmt.Sprintf("%s element %d is empty (a doubled or trailing \"/\"?)", what, i))
		}
		v, err := parseSegment(p, k)
		if err != nil {
			return out, notationError(fmt.Sprintf("%s element %d %q: %v", what, i, clip(p), err))
		}
		out = append(out, v)
	}
	return out, nil
}

func parsePatternPath(path string) ([]string, error) {
	elems, err := parsePath(path, segString, "endpoint path")
	if err != nil {
		return nil, err
	}
	out := make([]string, len(elems))
	for i, e := range elems {
		out[i] = e.(string)
	}
	return out, nil
}

func appendPath(buf []byte, elems []any, k segKind) []byte {
	if len(elems) == 0 {
		return append(buf, '/')
	}
	for _, e := range elems {
		buf = append(buf, '/')
		buf = appendSegment(buf, e, k)
	}
	return buf
}

func appendPatternPath(buf []byte, elems []string) []byte {
	if len(elems) == 0 {
		return append(buf, '/')
	}
	for _, e := range elems {
		buf = append(buf, '/')
		buf = appendSegment(buf, e, segString)
	}
	return buf
}

// ---------------------------------------------------------------------
// Hosts.

// parseHostElem reads one host element:
//
//	name              Host{Name}
//	name:port         Host{Name, Port, "tcp"}: a classic JSTP engine
//	name:port;ws      Host{Name, Port, "ws"}
//	name:port;        Host{Name, Port, ""}
//	name;ws           Host{Name, 0, "ws"}
//	[::1]:33333       brackets hold a name with colons (IPv6)
//
// Names are percent-decoded, so a multiaddr is written
// %2Fip4%2F10.0.0.1%2Ftcp%2F4001 and a peer id as it is.
func parseHostElem(s string) (Host, error) {
	var h Host
	rest := s
	var err error
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return h, notationError("\"[\" without \"]\"")
		}
		if h.Name, err = unescape(rest[1:end], "[@/,;"); err != nil {
			return h, err
		}
		rest = rest[end+1:]
	} else {
		end := strings.IndexAny(rest, ":;")
		if end < 0 {
			end = len(rest)
		}
		if h.Name, err = unescape(rest[:end], "[]@/"); err != nil {
			return h, err
		}
		rest = rest[end:]
	}
	if h.Name == "" {
		return h, notationError("empty host name")
	}
	if strings.HasPrefix(rest, ":") {
		end := strings.IndexByte(rest, ';')
		if end < 0 {
			end = len(rest)
		}
		port := rest[1:end]
		p := 0
		for i := 0; i < len(port); i++ {
			if port[i] < '0' || port[i] > '9' || p > 65535 {
				p = -1
				break
			}
			p = p*10 + int(port[i]-'0')
		}
		if p < 1 || p > 65535 {
			return h, notationError(fmt.Sprintf("port %q is not a number from 1 to 65535", clip(port)))
		}
		h.Port, h.Transport = p, "tcp"
		rest = rest[end:]
	}
	if strings.HasPrefix(rest, ";") {
		t, err := unescape(rest[1:], "[]@/:;")
		if err != nil {
			return h, err
		}
		h.Transport = strings.ToLower(t)
		rest = ""
	}
	if rest != "" {
		return h, notationError(fmt.Sprintf("unexpected %q after the host name", clip(rest)))
	}
	return h, nil
}

// parseHostList reads comma-separated host elements. In a header value
// (header true) white space around elements is allowed, and an element
// that starts with "/" is a multiaddr taken whole, so people can paste
// one; in a URL authority "/" would start the path.
func parseHostList(s string, header bool) ([]Host, error) {
	parts := strings.Split(s, ",")
	out := make([]Host, 0, len(parts))
	for i, p := range parts {
		var h Host
		var err error
		if header {
			p = strings.Trim(p, " \t")
		}
		if header && strings.HasPrefix(p, "/") {
			h.Name, err = unescape(p, "")
		} else {
			h, err = parseHostElem(p)
		}
		if err != nil {
			return out, notationError(fmt.Sprintf("host element %d %q: %v", i, clip(p), err))
		}
		out = append(out, h)
	}
	return out, nil
}

func appendHostElem(buf []byte, h Host) []byte {
	if strings.IndexByte(h.Name, ':') >= 0 {
		buf = append(buf, '[')
		buf = appendEscaped(buf, h.Name, keepHostBracket)
		buf = append(buf, ']')
	} else {
		buf = appendEscaped(buf, h.Name, keepHost)
	}
	if h.Port != 0 {
		buf = append(buf, ':')
		buf = strconv.AppendInt(buf, int64(h.Port), 10)
		if h.Transport == "tcp" {
			return buf
		}
		buf = append(buf, ';')
	} else if h.Transport != "" {
		buf = append(buf, ';')
	}
	return appendEscaped(buf, h.Transport, keepHost)
}

func appendHostList(buf []byte, hosts []Host, header bool) []byte {
	for i, h := range hosts {
		if i > 0 {
			buf = append(buf, ',')
			if header {
				buf = append(buf, ' ')
			}
		}
		if header && strings.HasPrefix(h.Name, "/") && !h.IsTuple() {
			buf = appendEscaped(buf, h.Name, keepMultiaddr)
			continue
		}
		buf = appendHostElem(buf, h)
	}
	return buf
}

func keepMultiaddr(c byte) bool { return c == '/' || keepToken(c) }

// ---------------------------------------------------------------------
// URL notation.

const urlScheme = "jstp://"

// ParseURL parses the URL notation with the default Decoder; see
// Decoder.ParseURL.
func ParseURL(s string) (*Dispatch, error) { return Decoder{}.ParseURL(s) }

// ParseURL parses one dispatch in the URL notation and validates it:
//
//	[METHOD [ENDPOINT-METHOD]] jstp://HOSTS/PATH
//
// METHOD defaults to GET and is case-insensitive. For BIND and RELEASE the
// URL names the endpoint: ENDPOINT-METHOD (default GET, "*" for any) and
// PATH its resource pattern, e.g. BIND POST jstp://h/foods/*.
//
// HOSTS is the host chain, comma-separated, each element as parseHostElem
// documents; empty (jstp:///foods) means no host: process here.
//
// PATH elements are percent-decoded (RFC 3986, so "/" inside an element is
// %2F). In a resource, an element written as a JSON number is that number
// (97, -1.5, 1e3) and true/false are booleans; a leading apostrophe forces
// a string ('97 is "97", ' alone is ""). Pattern elements are always
// strings. "?" and "#" must be escaped: there is no query or fragment.
//
// The notation has no timestamp: the dispatch is stamped with dec.Now. Its
// protocol is ["JSTP", Version]. It carries no body, token or other
// header; use the HTTP-like notation or JSON for those.
func (dec Decoder) ParseURL(s string) (*Dispatch, error) {
	if err := dec.checkSize(len(s)); err != nil {
		return nil, err
	}
	methods, hosts, path, err := splitURLLine(s)
	if err != nil {
		return nil, err
	}
	d := &Dispatch{Protocol: []string{"JSTP", Version}, Timestamp: dec.now(), Host: hosts, Method: GET}
	if len(methods) > 0 {
		d.Method = strings.ToUpper(methods[0])
	}
	subscription := d.Method == BIND || d.Method == RELEASE
	if len(methods) == 2 && !subscription {
		return d, Errorf(ErrBadDispatch, "jstp URL: %q: only BIND and RELEASE take a second method (the endpoint's)", clip(methods[0]+" "+methods[1]))
	}
	if subscription {
		ep := &Endpoint{Method: GET}
		if len(methods) == 2 {
			ep.Method = strings.ToUpper(methods[1])
		}
		d.Endpoint = ep
		if ep.Resource, err = parsePatternPath(path); err != nil {
			return d, Errorf(ErrBadDispatch, "jstp URL: %v", err)
		}
	} else if d.Resource, err = parsePath(path, segResource, "path"); err != nil {
		return d, Errorf(ErrBadDispatch, "jstp URL: %v", err)
	}
	return d, d.Validate()
}

// splitURLLine splits "[M [M]] jstp://hosts/path" into its parts.
func splitURLLine(s string) (methods []string, hosts []Host, path string, err error) {
	line := strings.Trim(s, " \t\r\n")
	if strings.ContainsAny(line, "\r\n") {
		return nil, nil, "", Errorf(ErrBadDispatch, "jstp URL: the URL notation is one line; use the HTTP-like notation for more")
	}
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return nil, nil, "", Errorf(ErrBadDispatch, "jstp URL: empty input")
	}
	u := fields[len(fields)-1]
	methods = fields[:len(fields)-1]
	if len(u) < len(urlScheme) || !strings.EqualFold(u[:len(urlScheme)], urlScheme) {
		return nil, nil, "", Errorf(ErrBadDispatch, "jstp URL: want [METHOD] jstp://host/path, got %q", clip(line))
	}
	if len(methods) > 2 {
		return nil, nil, "", Errorf(ErrBadDispatch, "jstp URL: too many words before the URL: %q (want METHOD, or BIND/RELEASE and the endpoint's method)", clip(strings.Join(methods, " ")))
	}
	rest := u[len(urlScheme):]
	authority := rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if path == "" {
		return nil, nil, "", Errorf(ErrBadDispatch, "jstp URL: %q has no path; write jstp://host/resource", clip(u))
	}
	if authority != "" {
		if hosts, err = parseHostList(authority, false); err != nil {
			return nil, nil, "", Errorf(ErrBadDispatch, "jstp URL: %v", err)
		}
	}
	return methods, hosts, path, nil
}

// ParseEndpointURL parses an endpoint written as a URL, the form the CLI's
// bind command takes:
//
//	[METHOD] jstp://HOSTS/PATTERN
//
// METHOD is the endpoint's method pattern (default GET, "*" for any) and
// PATTERN its resource pattern, elements always strings: POST
// jstp://h/foods/* is {POST, ["foods","*"]} on host ["h"]. The endpoint is
// validated; errors map to 400 or 405.
func ParseEndpointURL(s string) (host []Host, ep Endpoint, err error) {
	if err := (Decoder{}).checkSize(len(s)); err != nil {
		return nil, ep, err
	}
	methods, hosts, path, err := splitURLLine(s)
	if err != nil {
		return nil, ep, err
	}
	if len(methods) > 1 {
		return nil, ep, Errorf(ErrBadDispatch, "jstp URL: an endpoint takes one method before the URL, got %q", clip(strings.Join(methods, " ")))
	}
	ep.Method = GET
	if len(methods) == 1 {
		ep.Method = strings.ToUpper(methods[0])
	}
	if ep.Resource, err = parsePatternPath(path); err != nil {
		return nil, ep, Errorf(ErrBadDispatch, "jstp URL: %v", err)
	}
	return hosts, ep, ep.Validate()
}

// FormatEndpointURL writes an endpoint as ParseEndpointURL reads it. The
// method is always written, GET included, so the text says it is an
// endpoint.
func FormatEndpointURL(host []Host, ep Endpoint) string {
	buf := append([]byte(ep.Method), ' ')
	buf = append(buf, urlScheme...)
	buf = appendHostList(buf, host, false)
	return string(appendPatternPath(buf, ep.Resource))
}

// FormatURL writes a valid dispatch in the URL notation, in its normal
// form: GET is left out, other methods come first, BIND and RELEASE are
// followed by the endpoint's method, elements are escaped only where they
// must be, with uppercase hex. ParseURL reads it back to the same dispatch
// except for the timestamp, which the notation does not carry, and the
// protocol version, which it takes as Version.
//
// It fails with an error wrapping the validation error for an invalid
// dispatch, and with one wrapping ErrURLCannotCarry for a dispatch that
// has a body, a token, unknown headers, an exception or protocol
// extensions: silently dropping them would send a different dispatch.
func FormatURL(d *Dispatch) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("cannot write an invalid dispatch as a URL: %w", err)
	}
	var extra []string
	if d.Body != nil {
		extra = append(extra, "a body")
	}
	if d.Token != nil {
		extra = append(extra, "a token")
	}
	if d.Exception != nil {
		extra = append(extra, "an exception")
	}
	if len(d.Protocol) > 2 {
		extra = append(extra, "protocol extensions")
	}
	if len(d.Extra) > 0 {
		names := make([]string, 0, len(d.Extra))
		for k := range d.Extra {
			names = append(names, strconv.Quote(clip(k)))
		}
		slices.Sort(names)
		extra = append(extra, "the header(s) "+strings.Join(names, ", "))
	}
	if len(extra) > 0 {
		return "", fmt.Errorf("%w: it has %s; use the HTTP-like notation or JSON", ErrURLCannotCarry, strings.Join(extra, ", "))
	}
	var buf []byte
	switch {
	case d.Kind() == Subscription:
		buf = append(buf, d.Method...)
		buf = append(buf, ' ')
		buf = append(buf, d.Endpoint.Method...)
		buf = append(buf, ' ')
	case d.Method != GET:
		buf = append(buf, d.Method...)
		buf = append(buf, ' ')
	}
	buf = append(buf, urlScheme...)
	buf = appendHostList(buf, d.Host, false)
	if d.Kind() == Subscription {
		buf = appendPatternPath(buf, d.Endpoint.Resource)
	} else {
		buf = appendPath(buf, d.Resource, segResource)
	}
	return string(buf), nil
}

// indexFold is strings.Index ignoring ASCII case.
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

// ---------------------------------------------------------------------
// HTTP-like notation.

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
		if p.d.Extra == nil {
			p.d.Extra = make(map[string]json.RawMessage)
		}
		p.d.Extra[name] = raw
	}
	return nil
}

// detail drops the "bad dispatch: " prefix of a wrapped sentinel, so the
// outer error that adds the line number does not say it twice.
func detail(err error) string {
	return strings.TrimPrefix(err.Error(), ErrBadDispatch.Error()+": ")
}

// jsonStringEnd returns the index just after the JSON string that starts
// s, or -1.
func jsonStringEnd(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// jsonValue returns v as raw JSON when it is a JSON value within the
// depth limit. ok is false when it is not JSON at all.
func jsonValue(v string, maxDepth int) (raw json.RawMessage, ok bool, err error) {
	if v == "" || !json.Valid([]byte(v)) {
		return nil, false, nil
	}
	if err := checkDepth([]byte(v), maxDepth); err != nil {
		return nil, true, err
	}
	return json.RawMessage(v), true, nil
}

func parseHeaderValue(v string, maxDepth int) (json.RawMessage, error) {
	raw, ok, err := jsonValue(v, maxDepth)
	if ok {
		return raw, err
	}
	return appendString(nil, v), nil
}

func parseHostHeader(v string, maxDepth int) ([]Host, error) {
	if v == "" {
		return nil, nil
	}
	if v[0] == '[' {
		if raw, ok, err := jsonValue(v, maxDepth); ok {
			if err != nil {
				return nil, err
			}
			return parseHosts(raw, false)
		}
	}
	return parseHostList(v, true)
}

func parseTokenHeader(v string, maxDepth int) ([]any, error) {
	if v == "" {
		return nil, nil
	}
	if v[0] == '[' {
		if raw, ok, err := jsonValue(v, maxDepth); ok {
			if err != nil {
				return nil, err
			}
			return parseScalars("token", raw, true)
		}
	}
	parts := strings.Split(v, ",")
	out := make([]any, 0, len(parts))
	for i, s := range parts {
		s = strings.Trim(s, " \t")
		if s == "" {
			return out, notationError(fmt.Sprintf("element %d is empty (write ' for an empty string)", i))
		}
		e, err := parseSegment(s, segToken)
		if err != nil {
			return out, notationError(fmt.Sprintf("element %d %q: %v", i, clip(s), err))
		}
		out = append(out, e)
	}
	return out, nil
}

func parseResourceHeader(v string, maxDepth int) ([]any, error) {
	if strings.HasPrefix(v, "[") {
		if raw, ok, err := jsonValue(v, maxDepth); ok {
			if err != nil {
				return nil, err
			}
			return parseScalars("resource", raw, false)
		}
	}
	return parsePath(v, segResource, "path")
}

func parseEndpointHeader(v string, maxDepth int) (*Endpoint, error) {
	if strings.HasPrefix(v, "{") {
		raw, ok, err := jsonValue(v, maxDepth)
		if !ok {
			return nil, notationError("starts with { but is not a JSON object")
		}
		if err != nil {
			return nil, err
		}
		return parseEndpoint(raw)
	}
	f := strings.Fields(v)
	if len(f) == 0 || len(f) > 2 {
		return nil, notationError("want METHOD /pattern, as in POST /foods/*")
	}
	ep := &Endpoint{Method: strings.ToUpper(f[0])}
	if len(f) == 2 {
		res, err := parsePatternPath(f[1])
		if err != nil {
			return ep, err
		}
		ep.Resource = res
	}
	return ep, nil
}

// parseBody reads the text after the blank line; firstLine is its line
// number, for errors.
func parseBody(text string, firstLine, maxDepth int) (json.RawMessage, error) {
	t := strings.TrimLeft(text, " \t\r\n")
	firstLine += strings.Count(text[:len(text)-len(t)], "\n")
	t = strings.TrimRight(t, " \t\r\n")
	if t == "" {
		return nil, nil
	}
	if raw, ok, err := jsonValue(t, maxDepth); ok {
		if err != nil {
			return nil, Errorf(ErrBadDispatch, "line %d: body: %s", firstLine, detail(err))
		}
		return append(json.RawMessage(nil), raw...), nil
	}
	if obj, ok, err := keyValueBody(t, firstLine); ok {
		return obj, err
	}
	return appendString(nil, t), nil
}

func isBodyKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// keyValueBody reads "key: value" lines as a JSON object of strings. ok is
// false when some line is not of that form (the body is then a string).
func keyValueBody(t string, firstLine int) (obj json.RawMessage, ok bool, err error) {
	lines := strings.Split(t, "\n")
	type member struct{ key, value string }
	members := make([]member, 0, len(lines))
	for _, l := range lines {
		l = strings.TrimSuffix(l, "\r")
		i := strings.IndexByte(l, ':')
		if i < 0 || !isBodyKey(l[:i]) {
			return nil, false, nil
		}
		after := l[i+1:]
		if after != "" && after[0] != ' ' && after[0] != '\t' {
			return nil, false, nil
		}
		members = append(members, member{l[:i], strings.Trim(after, " \t")})
	}
	seen := make(map[string]int, len(members))
	buf := []byte{'{'}
	for i, m := range members {
		if prev, dup := seen[m.key]; dup {
			return nil, true, Errorf(ErrBadDispatch, "line %d: body key %q given twice (first on line %d)", firstLine+i, clip(m.key), firstLine+prev)
		}
		seen[m.key] = i
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, m.key)
		buf = append(buf, ':')
		buf = appendString(buf, m.value)
	}
	return append(buf, '}'), true, nil
}

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
	if len(d.Extra) > 0 {
		names := make([]string, 0, len(d.Extra))
		for k := range d.Extra {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			if isToken(k) && lower(k) == k {
				buf = append(buf, k...)
			} else {
				buf = appendString(buf, k)
			}
			buf = append(buf, ':', ' ')
			buf = appendHeaderValue(buf, d.Extra[k])
			buf = endLine(buf)
		}
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
