package routing

import (
	"fmt"
	"testing"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

func TestClassify(t *testing.T) {
	const id = "12D3KooWGzBXWp9uZV2fPprgSXzVqsAL2TeavZ1PVmGfwF7hT5Jd"
	cases := []struct {
		in        dispatch.Host
		kind      Kind
		addr, tr  string
		name, pid string
	}{
		{dispatch.Host{Name: "localhost", Port: 33333, Transport: "tcp"}, Classic, "localhost:33333", "tcp", "", ""},
		{dispatch.Host{Name: "example.org", Port: 8080, Transport: "ws"}, Classic, "ws://example.org:8080/", "ws", "", ""},
		{dispatch.Host{Name: "::1", Port: 33333}, Classic, "[::1]:33333", "tcp", "", ""},
		{dispatch.Host{Name: "127.0.0.1:33333"}, Classic, "127.0.0.1:33333", "tcp", "", ""},
		{dispatch.Host{Name: "tcp://engine.lan:4444"}, Classic, "engine.lan:4444", "tcp", "", ""},
		{dispatch.Host{Name: "ws://engine.lan:8080/jstp"}, Classic, "ws://engine.lan:8080/jstp", "ws", "", ""},
		{dispatch.Host{Name: "/ip4/10.0.0.1/tcp/33333"}, Classic, "10.0.0.1:33333", "tcp", "", ""},
		{dispatch.Host{Name: "/dns/engine.lan/tcp/80/ws"}, Classic, "ws://engine.lan:80/", "ws", "", ""},
		{dispatch.Host{Name: id}, Peer, "", "", "", id},
		{dispatch.Host{Name: "/ip4/127.0.0.1/tcp/4033/p2p/" + id}, Peer, "", "", "", id},
		{dispatch.Host{Name: "pizza.com.ar"}, Name, "", "", "pizza.com.ar", ""},
		{dispatch.Host{Name: "inventory"}, Name, "", "", "inventory", ""},
	}
	for _, c := range cases {
		t.Run(c.in.String(), func(t *testing.T) {
			got, err := Classify(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if got.Kind != c.kind || got.Addr != c.addr || got.Transport != c.tr || got.Name != c.name {
				t.Fatalf("got %+v", got)
			}
			if c.pid != "" && got.Peer.ID.String() != c.pid {
				t.Fatalf("peer = %s", got.Peer.ID)
			}
		})
	}
	if got, _ := Classify(dispatch.Host{Name: "/ip4/127.0.0.1/tcp/4033/p2p/" + id}); len(got.Peer.Addrs) != 1 {
		t.Fatalf("multiaddr peer lost its address: %+v", got.Peer)
	}
}

func TestClassifyErrors(t *testing.T) {
	for _, h := range []dispatch.Host{
		{Name: "/not/a/multiaddr"},
		{Name: "/ip4/1.2.3.4"},
		{Name: "h", Port: 1, Transport: "udp"},
		{Name: "has space"},
		{Name: "a/b"},
		{Name: "host:99999"},
	} {
		if _, err := Classify(h); dispatch.Code(err) != 400 {
			t.Errorf("%s: err = %v, want 400", h, err)
		}
	}
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"pizza.com.ar", "127.0.0.1:33333", "/ip4/1.2.3.4/tcp/1", "ws://x:1/", "12D3KooWGzBXWp9uZV2fPprgSXzVqsAL2TeavZ1PVmGfwF7hT5Jd"} {
		f.Add(s, 0, "")
	}
	f.Fuzz(func(t *testing.T, name string, port int, tr string) {
		h := dispatch.Host{Name: name, Port: port, Transport: tr}
		got, err := Classify(h)
		if err != nil {
			if dispatch.Code(err) != 400 {
				t.Fatalf("error without 400: %v", err)
			}
			return
		}
		if got.Kind < Peer || got.Kind > Classic {
			t.Fatalf("no kind: %+v", got)
		}
	})
}

// Remembered classifications never answer for another name, however
// many names share the cache's slots.
func TestClassifyRemembersOnlyItsOwn(t *testing.T) {
	id := "12D3KooWQQhc1NmMpjv1C58FpoU2kXYF1KDNUJfaxQqeQL3W1y4T"
	for round := range 2 {
		for i := range 5000 {
			name := fmt.Sprintf("svc%d.test", i)
			got, err := Classify(dispatch.Host{Name: name})
			if err != nil || got.Kind != Name || got.Name != name {
				t.Fatalf("round %d: Classify(%s) = %+v, %v", round, name, got, err)
			}
			got, err = Classify(dispatch.Host{Name: id})
			if err != nil || got.Kind != Peer || got.Peer.ID.String() != id {
				t.Fatalf("round %d: Classify(peer id) = %+v, %v", round, got, err)
			}
		}
	}
}
