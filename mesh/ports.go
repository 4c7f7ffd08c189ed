package mesh

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"

	"github.com/multiformats/go-multiaddr"
)

// Probing listen addresses before a peer starts. Why probe: libp2p's TCP
// transport listens with SO_REUSEPORT, so a second peer on port 4033 would not fail, it would
// share the port with the first, and the kernel would hand each incoming
// connection to either of them at random. A plain bind (without
// SO_REUSEPORT) still fails on a port that anyone holds, so the probe
// sees what libp2p would not.

// listenTarget is the socket a multiaddr listens on.
type listenTarget struct {
	network string // tcp4, tcp6, udp4, udp6
	addr    string // host:port
}

// targetOf returns the socket of a listen multiaddr; ok is false for
// forms that are not probed (port 0, DNS names, other transports).
func targetOf(s string) (t listenTarget, ok bool) {
	m, err := multiaddr.NewMultiaddr(strings.TrimSpace(s))
	if err != nil {
		return t, false
	}
	family, ip := "4", ""
	if v, err := m.ValueForProtocol(multiaddr.P_IP4); err == nil {
		ip = v
	} else if v, err := m.ValueForProtocol(multiaddr.P_IP6); err == nil {
		family, ip = "6", v
	} else {
		return t, false
	}
	proto, port := "tcp", ""
	if v, err := m.ValueForProtocol(multiaddr.P_TCP); err == nil {
		port = v
	} else if v, err := m.ValueForProtocol(multiaddr.P_UDP); err == nil {
		proto, port = "udp", v
	} else {
		return t, false
	}
	if port == "0" {
		return t, false
	}
	return listenTarget{proto + family, net.JoinHostPort(ip, port)}, true
}

// inUse reports whether something holds the socket. Other failures (no
// IPv6 on this machine) are not "in use": libp2p reports them itself.
func (t listenTarget) inUse() bool {
	var err error
	if strings.HasPrefix(t.network, "tcp") {
		var ln net.Listener
		if ln, err = net.Listen(t.network, t.addr); err == nil {
			_ = ln.Close()
		}
	} else {
		var pc net.PacketConn
		if pc, err = net.ListenPacket(t.network, t.addr); err == nil {
			_ = pc.Close()
		}
	}
	return err != nil && IsAddrInUse(err)
}

func IsAddrInUse(err error) bool {
	if errors.Is(err, syscall.EADDRINUSE) {
		return true
	}
	// Windows reports WSAEADDRINUSE, which syscall does not map.
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "address already in use") || strings.Contains(msg, "only one usage of each socket address")
}

// BusyListenAddr returns the first listen multiaddr whose socket is taken.
func BusyListenAddr(addrs []string) (string, bool) {
	for _, a := range addrs {
		if t, ok := targetOf(a); ok && t.inUse() {
			return a, true
		}
	}
	return "", false
}

// EphemeralListenAddrs are the default listen addresses with port 0: the
// same interfaces and transports, on ports the system picks.
func EphemeralListenAddrs() []string {
	port := strconv.Itoa(DefaultPort)
	out := make([]string, len(DefaultListenAddrs))
	for i, a := range DefaultListenAddrs {
		a = strings.Replace(a, "/tcp/"+port, "/tcp/0", 1)
		out[i] = strings.Replace(a, "/udp/"+port+"/", "/udp/0/", 1)
	}
	return out
}

// TCPInUse reports whether a TCP host:port is taken.
func TCPInUse(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	network := "tcp4"
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		network = "tcp6"
	}
	return listenTarget{network, addr}.inUse()
}

// EphemeralLike returns addr with port 0, on the same host.
func EphemeralLike(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "127.0.0.1:0"
	}
	return net.JoinHostPort(host, "0")
}

// AllLoopback reports whether every multiaddr is on a loopback interface
// (127.0.0.0/8, ::1, localhost). A peer that only listens or dials there
// needs none of the NAT traversal machinery (mesh.Config.Loopback).
func AllLoopback(addrs []string) bool {
	if len(addrs) == 0 {
		return false
	}
	for _, s := range addrs {
		m, err := multiaddr.NewMultiaddr(strings.TrimSpace(s))
		if err != nil {
			return false
		}
		var ip string
		if v, err := m.ValueForProtocol(multiaddr.P_IP4); err == nil {
			ip = v
		} else if v, err := m.ValueForProtocol(multiaddr.P_IP6); err == nil {
			ip = v
		} else if v, err := m.ValueForProtocol(multiaddr.P_DNS); err == nil && v == "localhost" {
			continue
		} else {
			return false
		}
		if parsed := net.ParseIP(ip); parsed == nil || !parsed.IsLoopback() {
			return false
		}
	}
	return true
}

// ListenBusyError explains a listen address someone else holds.
func ListenBusyError(addr string) error {
	return fmt.Errorf("listen address %s is in use (another peer on this machine?): pass --listen /ip4/0.0.0.0/tcp/0 for a free port, or other ports and another --data-dir", addr)
}
