package mesh

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
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
