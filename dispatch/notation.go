package dispatch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
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

// ParseNotation reads one dispatch written in any of the three notations
// and returns it validated. The notation is told by the text itself:
//
//   - JSON when the first byte that is not white space is "{" or "["
//     (decoded by dec.Decode, with its limits and quirks, so a JSON value
//     that is not an object fails with ErrBadDispatch);
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
	// No valid start line or URL line begins with "[" (no method, path or
	// version does), so such text is JSON of the wrong shape, which Decode
	// names; the HTTP-like notation would only blame the method.
	if len(text) > 0 && (text[0] == '{' || text[0] == '[') {
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
