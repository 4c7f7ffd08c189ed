// Reading header values and the body of the HTTP-like notation.

package dispatch

import (
	"encoding/json"
	"fmt"
	"strings"
)

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
