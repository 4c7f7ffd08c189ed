package dispatch

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner validates JSON text (RFC 8259) in one forward pass and lets the
// dispatch decoder interpret the values it cares about as it goes, so a
// document is read once instead of once per layer of json.Unmarshal.
//
// Syntax errors are worded, and placed, exactly as encoding/json words
// them: exceptions quote them, and peers written against the earlier
// json.Unmarshal-based decoder see the same text.
type scanner struct {
	data     []byte
	pos      int
	depth    int
	maxDepth int

	failed  bool
	tooDeep bool
	errPos  int    // the offending byte; len(data) when the input ended early
	errCtx  string // encoding/json's description of what it was reading
	errTok  bool   // the input ended inside a token, which json reports as a space
}

// maxNestingDepth is encoding/json's own limit, which applied on top of
// Decoder.MaxDepth before this scanner replaced json.Unmarshal.
const maxNestingDepth = 10000

// What the scanner was reading when it failed, in encoding/json's words.
const (
	ctxValue     = "looking for beginning of value"
	ctxKey       = "looking for beginning of object key string"
	ctxAfterKey  = "after object key"
	ctxAfterPair = "after object key:value pair"
	ctxAfterElem = "after array element"
	ctxTop       = "after top-level value"
	ctxString    = "in string literal"
	ctxEscape    = "in string escape code"
	ctxHex       = `in \u hexadecimal character escape`
	ctxNumber    = "in numeric literal"
	ctxDot       = "after decimal point in numeric literal"
	ctxExponent  = "in exponent of numeric literal"
	ctxDepth     = "exceeded max depth"
)

// Flags scanString returns, so that plain strings are used as they are.
const (
	strEscaped  = 1 << iota // contains a backslash escape
	strNonASCII             // contains bytes ≥ 0x80, maybe not UTF-8
)

// strPlain marks the ASCII bytes a string holds as they are.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// fail records a syntax error at byte i and returns false. At the end of
// the input it reads as "unexpected end of JSON input".
func (s *scanner) fail(i int, ctx string) bool {
	if !s.failed {
		s.failed, s.errPos, s.errCtx = true, i, ctx
	}
	return false
}

// failTok is fail inside a token (a number, a literal, an escape), where
// encoding/json, feeding a space at the end of the input, blames the
// space rather than the end.
func (s *scanner) failTok(i int, ctx string) bool {
	if !s.failed {
		s.failed, s.errPos, s.errCtx, s.errTok = true, i, ctx, true
	}
	return false
}

// syntaxError is the error for a failed scan: what Decoder.Decode has
// always said for JSON that does not parse or nests too deep.
func (s *scanner) syntaxError() error {
	if s.tooDeep {
		return Errorf(ErrBadDispatch, "JSON nested deeper than %d levels", s.maxDepth)
	}
	var msg string
	off := s.errPos + 1
	switch {
	case s.errPos < len(s.data):
		msg = "invalid character " + quoteChar(s.data[s.errPos]) + " " + s.errCtx
	case s.errTok:
		msg, off = "invalid character ' ' "+s.errCtx, len(s.data)
	default:
		msg, off = "unexpected end of JSON input", len(s.data)
	}
	return Errorf(ErrBadDispatch, "not a JSON object: %s at offset %d", msg, off)
}

// quoteChar formats c as encoding/json does in its syntax errors.
func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	q := strconv.Quote(string(rune(c)))
	return "'" + q[1:len(q)-1] + "'"
}

func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the byte at the cursor, 0 at the end of the input (which
// no value starts with, so callers fall through to value and its error).
func (s *scanner) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// end checks that only white space follows the top-level value.
func (s *scanner) end() bool {
	if s.failed {
		return false
	}
	s.ws()
	if s.pos < len(s.data) {
		return s.fail(s.pos, ctxTop)
	}
	return true
}

// value validates the value at the cursor (white space already skipped)
// and moves past it.
func (s *scanner) value() bool {
	if s.pos >= len(s.data) {
		return s.fail(s.pos, ctxValue)
	}
	switch c := s.data[s.pos]; c {
	case '"':
		_, ok := s.scanString()
		return ok
	case '{':
		return s.object()
	case '[':
		return s.array()
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		if c == '-' || isDigit(c) {
			return s.number()
		}
		return s.fail(s.pos, ctxValue)
	}
}

func (s *scanner) object() bool {
	if !s.enter() {
		return false
	}
	for more := s.firstMember(); more; more = s.nextMember() {
		if _, _, _, ok := s.key(); !ok || !s.value() {
			return false
		}
	}
	return !s.failed
}

func (s *scanner) array() bool {
	if !s.enter() {
		return false
	}
	for more := s.firstElem(); more; more = s.nextElem() {
		if !s.value() {
			return false
		}
	}
	return !s.failed
}

// enter steps into the object or array at the cursor, enforcing the depth
// limit as the nesting grows, so that no input makes the decoder recurse
// deeper than MaxDepth.
func (s *scanner) enter() bool {
	s.depth++
	if s.depth > s.maxDepth {
		s.tooDeep = true
		return s.fail(s.pos, ctxDepth)
	}
	if s.depth > maxNestingDepth {
		return s.fail(s.pos, ctxDepth)
	}
	s.pos++
	return true
}

// firstElem starts the loop over an array's elements, just after the
// '[': for more := s.firstElem(); more; more = s.nextElem() { … }. The
// body finds the cursor on an element and must move past it; the loop
// ends at the ']' or at a syntax error (s.failed).
func (s *scanner) firstElem() bool {
	s.ws()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		s.depth--
		return false
	}
	return true
}

func (s *scanner) nextElem() bool {
	s.ws()
	if s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.ws()
			return true
		case ']':
			s.pos++
			s.depth--
			return false
		}
	}
	return s.fail(s.pos, ctxAfterElem)
}

// firstMember and nextMember loop over an object's members as firstElem
// and nextElem do over an array's; the body finds the cursor on the
// member's name, for key.
func (s *scanner) firstMember() bool {
	s.ws()
	if s.pos < len(s.data) {
		switch s.data[s.pos] {
		case '"':
			return true
		case '}':
			s.pos++
			s.depth--
			return false
		}
	}
	return s.fail(s.pos, ctxKey)
}

func (s *scanner) nextMember() bool {
	s.ws()
	if s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.ws()
			if s.pos < len(s.data) && s.data[s.pos] == '"' {
				return true
			}
			return s.fail(s.pos, ctxKey)
		case '}':
			s.pos++
			s.depth--
			return false
		}
	}
	return s.fail(s.pos, ctxAfterPair)
}

// key scans a member's name and the colon after it, leaving the cursor
// on the value. The name is data[start:end], quotes included.
func (s *scanner) key() (start, end int, flags uint8, ok bool) {
	start = s.pos
	if flags, ok = s.scanString(); !ok {
		return start, s.pos, flags, false
	}
	end = s.pos
	s.ws()
	if s.pos >= len(s.data) || s.data[s.pos] != ':' {
		return start, end, flags, s.fail(s.pos, ctxAfterKey)
	}
	s.pos++
	s.ws()
	return start, end, flags, true
}

// scanString validates the string at the cursor (on its opening quote)
// and moves past it. Bytes that are not UTF-8 are valid JSON text here,
// as in encoding/json; unquoteTo replaces them.
func (s *scanner) scanString() (flags uint8, ok bool) {
	data := s.data
	i := s.pos + 1
	for {
		for i < len(data) && strPlain[data[i]] {
			i++
		}
		if i >= len(data) {
			return flags, s.fail(i, ctxString)
		}
		switch c := data[i]; {
		case c == '"':
			s.pos = i + 1
			return flags, true
		case c == '\\':
			flags |= strEscaped
			i++
			if i >= len(data) {
				return flags, s.failTok(i, ctxEscape)
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				i++
				for range 4 {
					if i >= len(data) {
						return flags, s.failTok(i, ctxHex)
					}
					if !isHex(data[i]) {
						return flags, s.fail(i, ctxHex)
					}
					i++
				}
			default:
				return flags, s.fail(i, ctxEscape)
			}
		case c < 0x20:
			return flags, s.fail(i, ctxString)
		default:
			flags |= strNonASCII
			i++
		}
	}
}

// number validates the number at the cursor and moves past it.
func (s *scanner) number() bool {
	data := s.data
	i := s.pos
	if data[i] == '-' {
		i++
		if i >= len(data) {
			return s.failTok(i, ctxNumber)
		}
	}
	switch c := data[i]; {
	case c == '0':
		i++
	case '1' <= c && c <= '9':
		i++
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	default:
		return s.fail(i, ctxNumber)
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) {
			return s.failTok(i, ctxDot)
		}
		if !isDigit(data[i]) {
			return s.fail(i, ctxDot)
		}
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) {
			return s.failTok(i, ctxExponent)
		}
		if !isDigit(data[i]) {
			return s.fail(i, ctxExponent)
		}
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	}
	s.pos = i
	return true
}

// literal validates true, false or null at the cursor, whose first byte
// has been seen.
func (s *scanner) literal(word string) bool {
	for k := 1; k < len(word); k++ {
		i := s.pos + k
		if i >= len(s.data) {
			return s.failTok(i, "in literal "+word+" (expecting '"+word[k:k+1]+"')")
		}
		if s.data[i] != word[k] {
			return s.fail(i, "in literal "+word+" (expecting '"+word[k:k+1]+"')")
		}
	}
	s.pos += len(word)
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// unquoteTo appends the text of a validated JSON string's content (the
// bytes between the quotes) to dst, as encoding/json decodes it: invalid
// UTF-8 and unpaired surrogates become U+FFFD.
func unquoteTo(dst, src []byte) []byte {
	for i := 0; i < len(src); {
		c := src[i]
		if c == '\\' {
			switch e := src[i+1]; e {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := hex4(src[i+2:])
				i += 6
				if utf16.IsSurrogate(r) {
					if i+6 <= len(src) && src[i] == '\\' && src[i+1] == 'u' {
						if pair := utf16.DecodeRune(r, hex4(src[i+2:])); pair != utf8.RuneError {
							dst = utf8.AppendRune(dst, pair)
							i += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, e)
			}
			i += 2
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(src[i:])
		dst = utf8.AppendRune(dst, r)
		i += size
	}
	return dst
}

// hex4 decodes the four hex digits a validated \u escape starts with.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c <= 'F':
			c -= 'A' - 10
		default:
			c -= 'a' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}
