// The URL notation, and the host elements it shares with the host header
// of the HTTP-like notation.

package dispatch

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ErrURLCannotCarry is returned by FormatURL for a dispatch with a part the
// URL notation has no place for (a body, a token, an unknown header, an
// exception, protocol extensions). It is not a protocol error (the
// dispatch is fine, the notation is too small), so it wraps no sentinel and
// Code gives 500 for it: report it to the user, do not answer with it.
var ErrURLCannotCarry = errors.New("the URL notation cannot carry this dispatch")

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
// %2Fip4%2F10.0.0.1%2Ftcp%2F4001 and a peer id as it is. (A peer's
// multiaddr may also be pasted unescaped as the only host of a URL; see
// splitURLLine.)
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
// documents; empty (jstp:///foods) means no host: process here. A peer's
// multiaddr may be pasted whole in place of HOSTS, ending in its peer id:
// jstp:///ip4/10.0.0.1/tcp/4033/p2p/12D3KooW.../foods is GET ["foods"] on
// the host ["/ip4/10.0.0.1/tcp/4033/p2p/12D3KooW..."] (see
// pastedMultiaddr).
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
	if authority == "" {
		if end := pastedMultiaddr(path); end > 0 {
			if end == len(path) {
				return nil, nil, "", Errorf(ErrBadDispatch, "jstp URL: the peer's multiaddr must be followed by a resource, as in jstp:///ip4/127.0.0.1/tcp/4033/p2p/12D3KooW…/peer")
			}
			name, err := unescape(path[:end], "")
			if err != nil {
				return nil, nil, "", Errorf(ErrBadDispatch, "jstp URL: multiaddr %q: %v", clip(path[:end]), err)
			}
			return methods, []Host{{Name: name}}, path[end:], nil
		}
	}
	if authority != "" {
		if hosts, err = parseHostList(authority, false); err != nil {
			return nil, nil, "", Errorf(ErrBadDispatch, "jstp URL: %v", err)
		}
	}
	return methods, hosts, path, nil
}

// multiaddrStarts are the protocols a peer's address begins with, as
// libp2p (and `jstp-peer up`) print them.
var multiaddrStarts = []string{"ip4", "ip6", "ip6zone", "dns", "dns4", "dns6", "dnsaddr", "p2p"}

// pastedMultiaddr finds a peer's multiaddr pasted whole after "jstp://",
// as in jstp:///ip4/127.0.0.1/tcp/4033/p2p/12D3KooW.../peer, and returns
// its length in path (0 when path does not start with one). A multiaddr
// has no end marker of its own, so the one that names a peer ends with its
// peer id: the first "p2p" element followed by something shaped like a
// peer id, unless "p2p-circuit" follows (a relayed address, which ends
// with the id of the peer behind the relay). The first element must be
// written exactly as a multiaddr protocol (lower case, unescaped), so a
// resource that starts like one stays a resource when written with an
// escape (/%69p4/...) or a loopback host (jstp://localhost/ip4/...).
func pastedMultiaddr(path string) int {
	if len(path) < 2 || path[0] != '/' {
		return 0
	}
	first, _, _ := strings.Cut(path[1:], "/")
	if !slices.Contains(multiaddrStarts, first) {
		return 0
	}
	// Walk the elements, keeping the offset where each one ends.
	pos := 0 // path[pos] is the "/" before the next element
	next := func() (string, int) {
		if pos >= len(path) {
			return "", -1
		}
		rest := path[pos+1:]
		elem, _, _ := strings.Cut(rest, "/")
		return elem, pos + 1 + len(elem)
	}
	for {
		elem, end := next()
		if end < 0 {
			return 0
		}
		pos = end
		if elem != "p2p" {
			continue
		}
		id, idEnd := next()
		if idEnd < 0 || !peerIDShaped(id) {
			continue
		}
		pos = idEnd
		if after, _ := next(); after == "p2p-circuit" {
			continue
		}
		return idEnd
	}
}

// peerIDShaped tells whether s looks like a libp2p peer id as text:
// base58btc (12D3KooW..., Qm...) or a base32 CID, 40 to 128 letters and
// digits. The mesh checks the id itself; this only tells an id from a
// resource element.
func peerIDShaped(s string) bool {
	if len(s) < 40 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// keepPathAPath escapes the first character of a path written after an
// empty authority when the parser would otherwise read the path's first
// elements as a pasted multiaddr: a local resource ["ip4", ...] is
// written /%69p4/..., which reads back as the same resource. pathStart is
// where the path starts in buf.
func keepPathAPath(buf []byte, pathStart int) []byte {
	if pastedMultiaddr(string(buf[pathStart:])) == 0 {
		return buf
	}
	c := buf[pathStart+1]
	const hex = "0123456789ABCDEF"
	out := make([]byte, 0, len(buf)+2)
	out = append(out, buf[:pathStart+1]...)
	out = append(out, '%', hex[c>>4], hex[c&0xF])
	return append(out, buf[pathStart+2:]...)
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
	pathStart := len(buf)
	buf = appendPatternPath(buf, ep.Resource)
	if len(host) == 0 {
		buf = keepPathAPath(buf, pathStart)
	}
	return string(buf)
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
		for _, h := range d.Extra {
			names = append(names, strconv.Quote(clip(h.Name)))
		}
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
	pathStart := len(buf)
	if d.Kind() == Subscription {
		buf = appendPatternPath(buf, d.Endpoint.Resource)
	} else {
		buf = appendPath(buf, d.Resource, segResource)
	}
	if len(d.Host) == 0 {
		buf = keepPathAPath(buf, pathStart)
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
