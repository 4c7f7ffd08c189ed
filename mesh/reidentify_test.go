package mesh

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"

	"github.com/jstp-peer/jstp-peer/internal/poll"
)

// A peer whose identification failed is asked again while it stays
// connected: its protocols, which gossipsub needs to count it in topics,
// become known, and gossipsub is told.
func TestFailedIdentificationIsRetried(t *testing.T) {
	m := newTestHost(t, testConfig(t))
	// Pushes would tell m r's protocols without m asking: only asking
	// again may.
	m.LibP2P().RemoveStreamHandler(identify.IDPush)
	bus := m.LibP2P().EventBus()
	failed, err := bus.Subscribe(new(event.EvtPeerIdentificationFailed))
	if err != nil {
		t.Fatal(err)
	}
	defer failed.Close()
	updated, err := bus.Subscribe(new(event.EvtPeerProtocolsUpdated))
	if err != nil {
		t.Fatal(err)
	}
	defer updated.Close()

	r, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	// r answers no identify request at first: m's identification of the
	// connection fails.
	r.RemoveStreamHandler(identify.ID)
	if err := r.Connect(t.Context(), peer.AddrInfo{ID: m.ID(), Addrs: m.Addrs()}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-failed.Out():
	case <-time.After(30 * time.Second):
		t.Fatal("m's identification of r did not fail")
	}
	if protos, _ := m.LibP2P().Peerstore().GetProtocols(r.ID()); len(protos) > 0 {
		t.Fatalf("m knows r's protocols %v before it identified r", protos)
	}
	// Now r answers.
	ids, err := identify.NewIDService(r)
	if err != nil {
		t.Fatal(err)
	}
	ids.Start()
	t.Cleanup(func() { ids.Close() })
	poll.Until(t, 30*time.Second, "m to learn r's protocols", func() bool {
		protos, _ := m.LibP2P().Peerstore().GetProtocols(r.ID())
		return len(protos) > 0
	})
	select {
	case e := <-updated.Out():
		if u := e.(event.EvtPeerProtocolsUpdated); u.Peer != r.ID() || len(u.Added) == 0 {
			t.Fatalf("protocols update %+v, want r's", u)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("nobody was told of r's protocols")
	}
}
