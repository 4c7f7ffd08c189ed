package node

import (
	"context"
	"testing"

	"github.com/jstp-peer/jstp-peer/identity"
	"github.com/jstp-peer/jstp-peer/mesh"
)

// FuzzReceiveFrame feeds any frame to an engine as a classic gateway
// client's line (or WebSocket message) and as a peer's stream frame:
// the whole receiving path — decoding, the classic dialect, signatures,
// sealed dispatches, access and routing — must answer or drop it without
// a panic, and the engine must go on serving.
func FuzzReceiveFrame(f *testing.F) {
	for _, s := range []string{
		`{"protocol":["JSTP","0.4"],"method":"GET","resource":["peer"],"token":["t"]}`,
		`{"method":"BIND","endpoint":{"method":"POST","resource":["a","*"]},"token":["b"]}`,
		`{"method":"RELEASE","resource":["ANSWER","*","x","*"],"body":{}}`,
		`{"method":"ANSWER","resource":[200,"t","x"],"body":1,"via":"L.1","rif":3}`,
		`{"method":"POST","resource":["jstp-peer","sealed"],"token":["t"],"sealed-session":{"sid":"AAAAAAAAAAAAAAAAAAAAAA","n":"AAAA","ct":"AAAA"}}`,
		`{"method":"POST","resource":["jstp-peer","sealed"],"token":["t"],"sealed":{"kem":32,"enc":"AAAA","ct":"AAAA"}}`,
		`{"method":"GET","resource":["x"],"token":["t"],"signature":{"alg":"ed25519","author":"12D3KooWGRUVh8Mrz8kDBQt5X2bAqxeT1pHjuvkB4W2ZXBnAfXQM","sig":"AAAA","hdrs":["a"]}}`,
		`{"method":"GET","resource":["x"],"token":["t"],"host":["127.0.0.1:1",["a",1,"ws"]],"seal":true}`,
		`{"method":"GET","resource":["echo"],"token":["t"],"hops":15,"retry":true}`,
		`not json`,
	} {
		f.Add([]byte(s))
	}
	key := testKey(f)
	sk, err := identity.GenerateSealingKey()
	if err != nil {
		f.Fatal(err)
	}
	record, err := identity.NewKeyRecord(key, sk)
	if err != nil {
		f.Fatal(err)
	}
	n, err := New(WithIdentity(key), WithSealing(sk, record))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { n.Close() })
	n.SetAccessRules(mustAccess(f, `{"rules":[{"action":"deny","peers":["*"],"method":"DELETE","resource":["..."]}]}`))
	classic := newMemLink("client", mesh.ClassicIn)
	peerLink := newMemLink("12D3KooWGRUVh8Mrz8kDBQt5X2bAqxeT1pHjuvkB4W2ZXBnAfXQM", mesh.PeerLink)
	feeds := []mesh.FrameFunc{n.Attach(classic), n.Attach(peerLink)}
	drain := func(l *memLink) {
		for {
			select {
			case <-l.out:
			case <-l.sent:
			default:
				return
			}
		}
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		for _, feed := range feeds {
			feed(context.Background(), frame, nil)
		}
		drain(classic)
		drain(peerLink)
		if n.closed() {
			t.Fatal("the engine stopped")
		}
	})
}

func mustAccess(tb testing.TB, src string) *AccessRules {
	tb.Helper()
	a, err := ParseAccessRules([]byte(src))
	if err != nil {
		tb.Fatal(err)
	}
	return a
}
