package identity

import (
	"crypto/rand"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

func TestMain(m *testing.M) {
	// Passphrase tests derive many keys; the costs are stored in each file,
	// so lowering them here changes speed, not the format.
	argonDefault = argonParams{time: 1, memory: 64, threads: 1}
	m.Run()
}

// A ~300-byte dispatch, typical of an application request.
const sampleJSON = `{"protocol":["JSTP","0.4"],"method":"POST","resource":["users",97,"orders"],"timestamp":1365647440759,"token":["6f1c1e36-8a4e-4f0e-9d55-1a0c7c7d1a2b","3434h5098asr34h3"],"host":["pizza.com.ar"],"body":{"item":"pizza","size":"large","toppings":["cheese","basil"],"note":"Let the cheese melt!","price":12.50}}`

func sample(tb testing.TB) *dispatch.Dispatch {
	tb.Helper()
	d, err := dispatch.Decode([]byte(sampleJSON))
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func newIdentity(tb testing.TB) (crypto.PrivKey, peer.ID) {
	tb.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	return k, id
}

// roundTrip encodes and decodes d, as crossing a wire does.
func roundTrip(tb testing.TB, d *dispatch.Dispatch) *dispatch.Dispatch {
	tb.Helper()
	raw, err := d.MarshalJSON()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := dispatch.Decode(raw)
	if err != nil {
		tb.Fatalf("decode %s: %v", raw, err)
	}
	return out
}
