package mesh

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// DefaultPort is the documented default port of a jstp-peer, for both TCP
// and QUIC.
const DefaultPort = 4033

// DefaultListenAddrs are the addresses a Host listens on when
// Config.ListenAddrs is empty: TCP and QUIC on every IPv4 and IPv6
// interface, port 4033.
var DefaultListenAddrs = []string{
	"/ip4/0.0.0.0/tcp/4033",
	"/ip4/0.0.0.0/udp/4033/quic-v1",
	"/ip6/::/tcp/4033",
	"/ip6/::/udp/4033/quic-v1",
}

// DHTProtocolPrefix is the prefix of the mesh's Kademlia protocol
// (/jstp/kad/1.0.0). It keeps jstp peers out of the IPFS DHT and IPFS peers
// out of ours.
const DHTProtocolPrefix = "/jstp"

// MDNSServiceName is the DNS-SD service type under which peers announce
// themselves on the LAN. It follows the _service._proto form of RFC 6763
// so that ordinary mDNS browsers (avahi-browse, dns-sd) list jstp peers.
const MDNSServiceName = "_jstp-peer._udp"

// UserAgent is the agent version a Host announces through identify; other
// peers see it in their peerstore (and in Peers).
const UserAgent = "jstp-peer"

// Defaults of the Config fields that leave zero values.
const (
	// DefaultBootstrapTimeout bounds the dial to each bootstrap peer.
	DefaultBootstrapTimeout = 15 * time.Second
	// DefaultConnLow, DefaultConnHigh and DefaultConnGrace configure the
	// connection manager: above High connections it trims down to Low,
	// sparing connections younger than Grace.
	DefaultConnLow   = 100
	DefaultConnHigh  = 400
	DefaultConnGrace = time.Minute
	// mdnsDialTimeout bounds the dial to a peer found on the LAN; LAN
	// peers answer quickly or not at all.
	mdnsDialTimeout = 10 * time.Second
	// mdnsQueue and mdnsDialers bound the work mDNS can cause: found peers
	// beyond the queue are dropped (mDNS announces them again).
	mdnsQueue   = 64
	mdnsDialers = 4
)

// DHTMode selects whether the peer serves DHT queries.
type DHTMode int

const (
	// DHTAuto (the default) serves DHT queries unless AutoNAT reports the
	// peer unreachable from outside, then acts as a client. A mesh on a
	// LAN or one machine, where AutoNAT reaches no verdict, keeps its
	// servers and so its service names; a peer behind a NAT on the
	// Internet steps back to client, so it does not fill others' routing
	// tables with addresses they cannot dial.
	DHTAuto DHTMode = iota
	// DHTServer always serves DHT queries, whatever AutoNAT says. Use it
	// for bootstrap peers.
	DHTServer
	// DHTClient never serves DHT queries.
	DHTClient
)

// String returns "auto", "server" or "client".
func (m DHTMode) String() string {
	switch m {
	case DHTAuto:
		return "auto"
	case DHTServer:
		return "server"
	case DHTClient:
		return "client"
	}
	return fmt.Sprintf("DHTMode(%d)", int(m))
}

// ParseDHTMode parses "auto", "server" or "client" (as written by String),
// for flags and config files. The empty string is "auto".
func ParseDHTMode(s string) (DHTMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return DHTAuto, nil
	case "server":
		return DHTServer, nil
	case "client":
		return DHTClient, nil
	}
	return DHTAuto, fmt.Errorf("mesh: unknown DHT mode %q (want auto, server or client)", s)
}

func (m DHTMode) dhtOption() (dht.ModeOpt, error) {
	switch m {
	case DHTAuto:
		return dht.ModeAutoServer, nil
	case DHTServer:
		return dht.ModeServer, nil
	case DHTClient:
		return dht.ModeClient, nil
	}
	return 0, fmt.Errorf("mesh: invalid DHT mode %d", int(m))
}

// Config configures New. Zero values take the documented defaults; only
// Key is required.
type Config struct {
	// Key is the peer's private key (see identity.LoadOrCreate); the peer
	// id derives from it. Required.
	Key crypto.PrivKey

	// ListenAddrs are multiaddrs to listen on. Default: DefaultListenAddrs
	// (TCP and QUIC on port 4033, IPv4 and IPv6). Port 0 picks a free port;
	// tests use /ip4/127.0.0.1/tcp/0.
	ListenAddrs []string

	// AnnounceAddrs, when set, replace the addresses the peer announces to
	// others (for example a public address forwarded to this machine by
	// hand). Default: the listen addresses plus what NAT traversal and
	// identify discover.
	AnnounceAddrs []string

	// Bootstrap are multiaddrs of peers to join the mesh through, each
	// ending in /p2p/<peer id>; several addresses of one peer are merged.
	// New dials them all concurrently and then bootstraps the DHT; the DHT
	// dials them again whenever its routing table empties. Default: none
	// (the peer waits for others to find it, or for mDNS).
	Bootstrap []string

	// BootstrapTimeout bounds each bootstrap dial in New. Default:
	// DefaultBootstrapTimeout (15 s).
	BootstrapTimeout time.Duration

	// MDNS enables discovery of peers on the local network by multicast
	// DNS (service MDNSServiceName); found peers are dialled. Default off
	// here; the CLI turns it on.
	MDNS bool

	// DHTMode selects whether this peer serves the DHT. Default: DHTAuto.
	DHTMode DHTMode

	// Loopback switches off everything that only matters across NATs and
	// the Internet: UPnP/NAT-PMP port mapping, the AutoNAT service for
	// others, hole punching, and relays (as client, as service and
	// auto-relay). Meant for tests and single-machine simulations, where
	// these only cost time and log noise. Default false.
	Loopback bool

	// ConnLow, ConnHigh and ConnGrace configure the connection manager
	// (see DefaultConnLow, DefaultConnHigh, DefaultConnGrace: 100, 400,
	// one minute).
	ConnLow, ConnHigh int
	ConnGrace         time.Duration

	// Logger receives the mesh's logs, tagged component=mesh. Default:
	// slog.Default().
	Logger *slog.Logger

	// Options are extra libp2p options, applied after the peer's own: a
	// simulated network's transport, a resource manager of one's own, a
	// listen address of another kind. Later options win where libp2p
	// allows only one (resource manager, connection manager).
	Options []libp2p.Option
	// NoDefaultTransports leaves out TCP, QUIC and WebSocket, for Options
	// that bring their own transport.
	NoDefaultTransports bool
}

func parseAddrs(ss []string) ([]multiaddr.Multiaddr, error) {
	addrs := make([]multiaddr.Multiaddr, 0, len(ss))
	for _, s := range ss {
		a, err := multiaddr.NewMultiaddr(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

func parseBootstrap(ss []string) ([]peer.AddrInfo, error) {
	addrs, err := parseAddrs(ss)
	if err != nil {
		return nil, fmt.Errorf("mesh: bootstrap address: %w", err)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil {
		return nil, fmt.Errorf("mesh: bootstrap address must end in /p2p/<peer id>: %w", err)
	}
	return infos, nil
}
