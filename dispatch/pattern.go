package dispatch

import (
	"strings"
)

// MaxPatternElements bounds a resource pattern; BIND dispatches come from
// untrusted peers and matching costs grow with pattern length.
const MaxPatternElements = 128

type elemKind uint8

const (
	litElem  elemKind = iota // matches itself, case-sensitively
	anyElem                  // "*": exactly one element
	restElem                 // "...": zero or more elements, non-greedy
	nameElem                 // ":name": one element, captured
)

type patElem struct {
	kind elemKind
	text string // the literal, or the capture name
}

// Pattern is a compiled resource pattern. Elements:
//
//	literal   matches the same element, case-sensitively
//	*         exactly one element
//	...       zero or more elements, anywhere in the pattern; matching is
//	          non-greedy (it stops at the first place the rest matches)
//	:name     one element, captured as params[name]
//	\x        the literal x: \* \... \:name, and \\* for the literal \*
//
// A Pattern is immutable and safe for concurrent use.
type Pattern struct {
	src      []string
	elems    []patElem
	prefix   int // leading literal elements
	rests    int // number of "..." elements
	captures bool
}

// CompilePattern compiles a resource pattern. Errors map to 400.
func CompilePattern(src []string) (*Pattern, error) {
	if len(src) == 0 {
		return nil, Errorf(ErrBadDispatch, "resource pattern is empty")
	}
	if len(src) > MaxPatternElements {
		return nil, Errorf(ErrBadDispatch, "resource pattern has %d elements; the limit is %d", len(src), MaxPatternElements)
	}
	p := &Pattern{src: append([]string(nil), src...), elems: make([]patElem, 0, len(src))}
	names := map[string]bool{}
	literalRun := true
	for i, s := range src {
		var e patElem
		switch {
		case s == "":
			return nil, Errorf(ErrBadDispatch, "resource pattern element %d is empty", i)
		case s == "*":
			e = patElem{kind: anyElem}
		case s == "...":
			e = patElem{kind: restElem}
			p.rests++
		case s[0] == ':':
			name := s[1:]
			if name == "" {
				return nil, Errorf(ErrBadDispatch, "resource pattern element %d: \":\" needs a name, as in \":id\"", i)
			}
			if names[name] {
				return nil, Errorf(ErrBadDispatch, "resource pattern captures %q twice", name)
			}
			names[name] = true
			e = patElem{kind: nameElem, text: name}
			p.captures = true
		case s[0] == '\\':
			if len(s) == 1 {
				return nil, Errorf(ErrBadDispatch, "resource pattern element %d: \"\\\" escapes nothing", i)
			}
			e = patElem{kind: litElem, text: s[1:]}
		default:
			e = patElem{kind: litElem, text: s}
		}
		if e.kind != litElem {
			literalRun = false
		} else if literalRun {
			p.prefix++
		}
		p.elems = append(p.elems, e)
	}
	return p, nil
}

// Source returns the pattern as it was written.
func (p *Pattern) Source() []string { return p.src }

// LiteralPrefix returns the leading literal elements (unescaped), which
// every matching resource starts with; subscription tables index on it.
func (p *Pattern) LiteralPrefix() []string {
	out := make([]string, p.prefix)
	for i := range out {
		out[i] = p.elems[i].text
	}
	return out
}

// Match reports whether resource matches and returns the captures (nil
// when the pattern has none).
func (p *Pattern) Match(resource []string) (map[string]string, bool) {
	fixed := len(p.elems) - p.rests
	if len(resource) < fixed || (p.rests == 0 && len(resource) != fixed) {
		return nil, false
	}
	m := matcher{p: p, res: resource}
	if p.rests > 1 {
		// Two or more "..." can backtrack exponentially; remembering the
		// (pattern, resource) positions that failed keeps it O(P·R).
		m.failed = make([]uint64, ((len(p.elems)+1)*(len(resource)+1)+63)/64)
	}
	if p.captures {
		m.params = make(map[string]string)
	}
	if !m.match(0, 0) {
		return nil, false
	}
	return m.params, true
}

type matcher struct {
	p      *Pattern
	res    []string
	params map[string]string
	failed []uint64
}

func (m *matcher) match(pi, ri int) bool {
	for {
		if pi == len(m.p.elems) {
			return ri == len(m.res)
		}
		e := m.p.elems[pi]
		if e.kind == restElem {
			break
		}
		if ri == len(m.res) {
			return false
		}
		switch e.kind {
		case litElem:
			if m.res[ri] != e.text {
				return false
			}
		case nameElem:
			if m.params != nil {
				m.params[e.text] = m.res[ri]
			}
		}
		pi++
		ri++
	}
	// "...": try to resume the pattern after it at each position, the
	// nearest first (non-greedy).
	if m.failed != nil {
		bit := pi*(len(m.res)+1) + ri
		if m.failed[bit/64]&(1<<(bit%64)) != 0 {
			return false
		}
	}
	for k := ri; k <= len(m.res); k++ {
		if m.match(pi+1, k) {
			return true
		}
	}
	if m.failed != nil {
		bit := pi*(len(m.res)+1) + ri
		m.failed[bit/64] |= 1 << (bit % 64)
	}
	return false
}

// CompiledEndpoint is an endpoint ready for matching dispatches.
type CompiledEndpoint struct {
	Endpoint Endpoint
	Pattern  *Pattern
}

// CompileEndpoint validates and compiles ep (method uppercased).
func CompileEndpoint(ep Endpoint) (*CompiledEndpoint, error) {
	ep.Method = strings.ToUpper(ep.Method)
	if err := ep.Validate(); err != nil {
		return nil, err
	}
	p, err := CompilePattern(ep.Resource)
	if err != nil {
		return nil, err
	}
	ep.Resource = p.Source()
	return &CompiledEndpoint{Endpoint: ep, Pattern: p}, nil
}

// MethodMatches reports whether the endpoint's method pattern admits a
// dispatch with method m: "*" admits any, otherwise the names must agree.
// An endpoint bound to BIND matches BIND dispatches whatever method their
// own endpoint names ("bind to binds"), since it is the BIND that matches.
func (c *CompiledEndpoint) MethodMatches(m string) bool {
	return c.Endpoint.Method == "*" || c.Endpoint.Method == m
}

// Match reports whether d triggers the endpoint, with the captures. The
// resource matched is d.ResourceText(): for BIND and RELEASE dispatches,
// their endpoint's resource pattern taken as text.
func (c *CompiledEndpoint) Match(d *Dispatch) (map[string]string, bool) {
	if !c.MethodMatches(d.Method) {
		return nil, false
	}
	return c.Pattern.Match(d.ResourceText())
}
