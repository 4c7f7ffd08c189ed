package routing

import (
	"hash/maphash"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// Kind says how a host element is reached.
type Kind int

const (
	// Peer is a libp2p peer, named by id or by a multiaddr with /p2p/.
	Peer Kind = iota + 1
	// Name is a service name that peers provide through the DHT.
	Name
	// Classic is a JSTP engine reached over TCP or WebSocket.
	Classic
)

func (k Kind) String() string {
	switch k {
	case Peer:
		return "peer"
	case Name:
		return "name"
	case Classic:
		return "classic"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Target is a classified host element.
type Target struct {
	Kind Kind
	// Peer is set for Peer targets: the id, and any addresses the
	// element carried.
	Peer peer.AddrInfo
	// Name is set for Name targets.
	Name string
	// Addr ("host:port" or a ws:// URL) and Transport ("tcp" or "ws")
	// are set for Classic targets.
	Addr      string
	Transport string
}

func (t Target) String() string {
	switch t.Kind {
	case Peer:
		return "peer " + t.Peer.ID.String()
	case Name:
		return "name " + strconv.Quote(t.Name)
	case Classic:
		return t.Transport + " " + t.Addr
	}
	return "?"
}

// Classify tells from the text alone what a host element names:
//
//	["host", 33333, "tcp"], ["host", 8080, "ws"]   classic engine
//	"host:port", "tcp://host:port"                 classic engine over TCP
//	"ws://host:port/path", "wss://…"               classic engine over WebSocket
//	"/ip4/…/tcp/…/p2p/ID", "/dns/…/p2p/ID"         peer, with its address
//	"/ip4/1.2.3.4/tcp/33333" (no /p2p/)            classic engine over TCP
//	"/ip4/…/tcp/…/ws" (no /p2p/)                   classic engine over WebSocket
//	"12D3KooW…", "Qm…"                             peer id
//	anything else                                  service name, via the DHT
//
// Loopback names are the engine's business, not routing's. A malformed
// address fails with dispatch.ErrBadDispatch (400).
func Classify(h dispatch.Host) (Target, error) {
	if h.IsTuple() {
		tr := h.Transport
		if tr == "" {
			tr = "tcp"
		}
		if h.Port == 0 {
			return Target{}, dispatch.Errorf(dispatch.ErrBadDispatch, "host %s has no port", h)
		}
		addr := net.JoinHostPort(h.Name, strconv.Itoa(h.Port))
		switch tr {
		case "tcp":
			return Target{Kind: Classic, Addr: addr, Transport: "tcp"}, nil
		case "ws":
			return Target{Kind: Classic, Addr: "ws://" + addr + "/", Transport: "ws"}, nil
		}
		return Target{}, dispatch.Errorf(dispatch.ErrBadDispatch, "host %s: transport %q is not tcp or ws", h, tr)
	}
	s := h.Name
	slot := &classified[maphash.String(classifySeed, s)%uint64(len(classified))]
	if e := slot.Load(); e != nil && e.name == s {
		return e.t, nil
	}
	t, err := classifyName(s)
	// Multiaddrs carry addresses, a slice callers may keep: not cached.
	if err == nil && (t.Kind == Peer || t.Kind == Name) && len(t.Peer.Addrs) == 0 {
		slot.Store(&classifiedEntry{name: s, t: t})
	}
	return t, err
}

// classified remembers how recent host names were classified: decoding a
// peer id (base58, multihash) costs a microsecond and four allocations,
// and every dispatch to a peer or a name asks again. Direct-mapped and
// fixed in size, so a flood of distinct names only replaces entries.
var (
	classified   [1024]atomic.Pointer[classifiedEntry]
	classifySeed = maphash.MakeSeed()
)

type classifiedEntry struct {
	name string
	t    Target
}

func classifyName(s string) (Target, error) {
	switch {
	case strings.HasPrefix(s, "/"):
		return classifyMultiaddr(s)
	case strings.HasPrefix(s, "ws://"), strings.HasPrefix(s, "wss://"):
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return Target{}, dispatch.Errorf(dispatch.ErrBadDispatch, "host %q is not a WebSocket URL", s)
		}
		return Target{Kind: Classic, Addr: s, Transport: "ws"}, nil
	case strings.HasPrefix(s, "tcp://"):
		return classifyHostPort(strings.TrimPrefix(s, "tcp://"), s)
	}
	if id, err := peer.Decode(s); err == nil {
		return Target{Kind: Peer, Peer: peer.AddrInfo{ID: id}}, nil
	}
	if strings.Contains(s, ":") {
		// Names have no colon, so this can only be host:port.
		return classifyHostPort(s, s)
	}
	if err := ValidName(s); err != nil {
		return Target{}, err
	}
	return Target{Kind: Name, Name: s}, nil
}

func classifyHostPort(hp, orig string) (Target, error) {
	host, port, err := net.SplitHostPort(hp)
	if err != nil || host == "" {
		return Target{}, dispatch.Errorf(dispatch.ErrBadDispatch, "host %q is not host:port", orig)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return Target{}, dispatch.Errorf(dispatch.ErrBadDispatch, "host %q: bad port", orig)
	}
	return Target{Kind: Classic, Addr: net.JoinHostPort(host, port), Transport: "tcp"}, nil
}

func classifyMultiaddr(s string) (Target, error) {
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return Target{}, dispatch.Errorf(dispatch.ErrBadDispatch, "host %q is not a multiaddr: %v", s, err)
	}
	if _, err := m.ValueForProtocol(ma.P_P2P); err == nil {
		ai, err := peer.AddrInfoFromP2pAddr(m)
		if err != nil {
			return Target{}, dispatch.Errorf(dispatch.ErrBadDispatch, "host %q: %v", s, err)
		}
		return Target{Kind: Peer, Peer: *ai}, nil
	}
	// Without a peer id it can only be a classic engine's address.
	var host, port string
	ws := false
	ma.ForEach(m, func(c ma.Component) bool {
		switch c.Protocol().Code {
		case ma.P_IP4, ma.P_IP6, ma.P_DNS, ma.P_DNS4, ma.P_DNS6:
			host = c.Value()
		case ma.P_TCP:
			port = c.Value()
		case ma.P_WS:
			ws = true
		}
		return true
	})
	if host == "" || port == "" {
		return Target{}, dispatch.Errorf(dispatch.ErrBadDispatch, "host %q: a multiaddr needs /p2p/<peer id>, or a TCP address of a classic engine", s)
	}
	addr := net.JoinHostPort(host, port)
	if ws {
		return Target{Kind: Classic, Addr: "ws://" + addr + "/", Transport: "ws"}, nil
	}
	return Target{Kind: Classic, Addr: addr, Transport: "tcp"}, nil
}

// MaxNameLen bounds service names.
const MaxNameLen = 253

// ValidName checks a service name: 1 to 253 characters, no spaces,
// slashes, colons or control characters (DNS-like names such as pizza.com.ar
// are the expected form).
func ValidName(s string) error {
	if s == "" || len(s) > MaxNameLen {
		return dispatch.Errorf(dispatch.ErrBadDispatch, "service name must be 1 to %d characters", MaxNameLen)
	}
	for _, r := range s {
		if r <= ' ' || r == '/' || r == ':' || r == 0x7f {
			return dispatch.Errorf(dispatch.ErrBadDispatch, "service name %q has a character names cannot have (%q)", s, r)
		}
	}
	return nil
}
