package mesh

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
)

// The resource manager admits every connection the connection manager
// would keep, twice over: libp2p's scaled defaults alone admit a few
// hundred inbound connections, and a publisher with a thousand
// subscribers refused most of them.
func TestResourceLimitsAdmitConnHigh(t *testing.T) {
	cfg := testConfig(t)
	cfg.ConnLow, cfg.ConnHigh = 100, 1500
	h := newTestHost(t, cfg)
	for _, view := range []struct {
		name string
		of   func(func(network.ResourceScope) error) error
	}{
		{"system", h.LibP2P().Network().ResourceManager().ViewSystem},
		{"transient", h.LibP2P().Network().ResourceManager().ViewTransient},
	} {
		err := view.of(func(s network.ResourceScope) error {
			l := s.(rcmgr.ResourceScopeLimiter).Limit()
			for _, dir := range []network.Direction{network.DirInbound, network.DirOutbound} {
				if got := l.GetConnLimit(dir); got < 3000 {
					t.Errorf("%s scope admits %d connections %v, want at least 3000", view.name, got, dir)
				}
			}
			if got := l.GetConnTotalLimit(); got < 3000 {
				t.Errorf("%s scope admits %d connections in all, want at least 3000", view.name, got)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Limits higher than needed are kept.
	big := rcmgr.DefaultLimits.Scale(64<<30, 1<<16)
	got := admitConns(big, 10).ToPartialLimitConfig().System.ConnsInbound
	if want := big.ToPartialLimitConfig().System.ConnsInbound; got != want {
		t.Errorf("admitConns lowered the inbound limit from %d to %d", want, got)
	}
}

// Identification gets the same room: a peer whose identify stream is
// refused is never identified on that connection.
func TestResourceLimitsAdmitIdentify(t *testing.T) {
	cfg := testConfig(t)
	cfg.ConnLow, cfg.ConnHigh = 100, 1500
	h := newTestHost(t, cfg)
	rm := h.LibP2P().Network().ResourceManager()
	check := func(name string, s network.ResourceScope) {
		l := s.(rcmgr.ResourceScopeLimiter).Limit()
		for _, dir := range []network.Direction{network.DirInbound, network.DirOutbound} {
			if got := l.GetStreamLimit(dir); got < 3000 {
				t.Errorf("%s admits %d streams %v, want at least 3000", name, got, dir)
			}
		}
	}
	if err := rm.ViewService(identify.ServiceName, func(s network.ServiceScope) error { check("identify service", s); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, id := range []protocol.ID{identify.ID, identify.IDPush} {
		if err := rm.ViewProtocol(id, func(s network.ProtocolScope) error { check(string(id), s); return nil }); err != nil {
			t.Fatal(err)
		}
	}
}
