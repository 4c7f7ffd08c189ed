package simulations

import (
	"net"
	"sync/atomic"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/quic-go/quic-go"
	"go.uber.org/fx"
)

// sourceIP answers quic-go's question "which local address reaches
// this destination": the simulated machine has one.
type sourceIP struct{ ip net.IP }

func (s sourceIP) PreferredSourceIPForDestination(*net.UDPAddr) (net.IP, error) {
	return s.ip, nil
}

// firstEphemeralPort is where the ports of sockets bound to port 0 start,
// as Linux's default ephemeral range does.
const firstEphemeralPort = 32768

// simQUIC is the libp2p option that makes a host's QUIC transport send
// its packets through the simulated network instead of UDP sockets, as
// go-libp2p's x/simlibp2p.QUICSimnet does, for a machine whose address
// is ip. It differs in two ways: a socket bound to the unspecified
// address (quicreuse dials from one when a dial starts before the host
// listens, which the DHT's bootstrap does) gets the machine's address
// and a port of its own, as a kernel would, instead of an endpoint
// 0.0.0.0:0 that every machine would share; and endpoint makes the
// socket, so the Network can put a filter (partitions, crashes) between
// quic-go and the link.
func simQUIC(ip net.IP, endpoint func(*net.UDPAddr) net.PacketConn) libp2p.Option {
	var nextPort atomic.Int32
	nextPort.Store(firstEphemeralPort - 1)
	opts := []quicreuse.Option{
		quicreuse.OverrideSourceIPSelector(func() (quicreuse.SourceIPSelector, error) { return sourceIP{ip}, nil }),
		quicreuse.OverrideListenUDP(func(_ string, addr *net.UDPAddr) (net.PacketConn, error) {
			a := *addr
			if a.IP == nil || a.IP.IsUnspecified() {
				a.IP = ip
			}
			if a.Port == 0 {
				a.Port = int(nextPort.Add(1))
			}
			return endpoint(&a), nil
		}),
	}
	return libp2p.QUICReuse(func(l fx.Lifecycle, reset quic.StatelessResetKey, token quic.TokenGeneratorKey, opts ...quicreuse.Option) (*quicreuse.ConnManager, error) {
		cm, err := quicreuse.NewConnManager(reset, token, opts...)
		if err != nil {
			return nil, err
		}
		// A connection manager supplied this way is not closed by the
		// host; without this hook its goroutines outlive it.
		l.Append(fx.StopHook(cm.Close))
		return cm, nil
	}, opts...)
}
