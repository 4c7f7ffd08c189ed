package node

import (
	"crypto/rand"
	"log/slog"
	"net"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/multiformats/go-multiaddr"

	"github.com/jstp-peer/jstp-peer/mesh"
)

func testKey(t testing.TB) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testConfig is a loopback peer in DHT server mode: the shape of every
// in-process test mesh.
func testConfig(t testing.TB) mesh.Config {
	return mesh.Config{
		Key:         testKey(t),
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		DHTMode:     mesh.DHTServer,
		Loopback:    true,
		Logger:      testLogger(t),
	}
}

func addrStrings(addrs []multiaddr.Multiaddr) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}

// freePort returns a loopback TCP port nobody listens on, for a Node.js
// engine that must be told its port.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
