package identity

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// recipient is a peer that can be sealed to.
type recipient struct {
	id  peer.ID
	sk  *SealingKey
	rec *KeyRecord
}

func newRecipient(tb testing.TB, kem uint16) recipient {
	tb.Helper()
	idKey, id := newIdentity(tb)
	sk, err := GenerateSealingKey(WithKEM(kem))
	if err != nil {
		tb.Fatal(err)
	}
	env, err := NewKeyRecord(idKey, sk)
	if err != nil {
		tb.Fatal(err)
	}
	rec, err := OpenKeyRecord(env, id)
	if err != nil {
		tb.Fatal(err)
	}
	return recipient{id, sk, rec}
}

func sealed(t *testing.T, to recipient, d *dispatch.Dispatch) *dispatch.Dispatch {
	t.Helper()
	if err := Seal(to.rec, to.id, d); err != nil {
		t.Fatal(err)
	}
	return roundTrip(t, d)
}

func TestSealOpenRoundTrip(t *testing.T) {
	for _, k := range kems {
		t.Run(k.name, func(t *testing.T) {
			bob := newRecipient(t, k.id)
			aliceKey, alice := newIdentity(t)
			orig := sample(t)
			orig.Extra = dispatch.Headers{{Name: HopsHeader, Value: json.RawMessage("1")}, {Name: "x-app", Value: json.RawMessage(`[1,2]`)}}
			if err := Sign(aliceKey, orig); err != nil {
				t.Fatal(err)
			}
			want := roundTrip(t, orig)

			d := sealed(t, bob, orig.Clone())
			raw, _ := d.MarshalJSON()
			for _, secret := range []string{"cheese", "toppings", "6f1c1e36", "users", "x-app", alice.String(), SignatureHeader} {
				if bytes.Contains(raw, []byte(secret)) {
					t.Errorf("sealed dispatch shows %q: %s", secret, raw)
				}
			}
			if d.Method != SealedMethod || d.ResourceText()[1] != "sealed" || d.Timestamp != orig.Timestamp || d.Host[0].Name != "pizza.com.ar" {
				t.Errorf("readable part = %s", raw)
			}
			// Gateways route it: the host chain shrinks, hops grows, a via
			// label appears.
			d.Host = nil
			d.Extra.Set(HopsHeader, json.RawMessage("2"))
			d.Extra.Set(ViaHeader, json.RawMessage(`"gw"`))
			d = roundTrip(t, d)

			if err := Open(bob.sk, bob.id, d); err != nil {
				t.Fatalf("open: %v", err)
			}
			if got, err := Verify(d); err != nil || got != alice {
				t.Fatalf("signature after open: %s, %v", got, err)
			}
			if d.Method != want.Method || !slices.Equal(d.ResourceText(), want.ResourceText()) ||
				!slices.Equal(d.Token, want.Token) || !bytes.Equal(d.Body, want.Body) ||
				string(d.Extra.Value("x-app")) != "[1,2]" || string(d.Extra.Value(HopsHeader)) != "2" || string(d.Extra.Value(ViaHeader)) != `"gw"` ||
				d.Host != nil || IsSealed(d) {
				t.Fatalf("opened = %s\nwant    %s", d, want)
			}
		})
	}
}

func TestSealSubscription(t *testing.T) {
	bob := newRecipient(t, KEMX25519)
	orig := dispatch.NewSubscription(dispatch.BIND, dispatch.Endpoint{Method: "*", Resource: []string{"orders", ":id"}})
	d := sealed(t, bob, orig.Clone())
	if d.Endpoint != nil {
		t.Fatal("endpoint left readable")
	}
	if err := Open(bob.sk, bob.id, d); err != nil {
		t.Fatal(err)
	}
	if d.Method != dispatch.BIND || d.Endpoint == nil || !d.Endpoint.Equal(*orig.Endpoint) || d.Resource != nil {
		t.Fatalf("opened = %s", d)
	}
}

func TestOpenWrongRecipient(t *testing.T) {
	bob := newRecipient(t, KEMX25519)
	carol := newRecipient(t, KEMX25519)
	d := sealed(t, bob, sample(t))
	cases := map[string]func() error{
		"carol's key and id":      func() error { return Open(carol.sk, carol.id, d.Clone()) },
		"bob's key, carol's id":   func() error { return Open(bob.sk, carol.id, d.Clone()) },
		"carol's key, bob's id":   func() error { return Open(carol.sk, bob.id, d.Clone()) },
		"hybrid key, x25519 seal": func() error { return Open(newRecipient(t, KEMMLKEM768X25519).sk, bob.id, d.Clone()) },
	}
	for name, open := range cases {
		t.Run(name, func(t *testing.T) {
			err := open()
			if !errors.Is(err, ErrBadSeal) {
				t.Fatalf("err = %v, want ErrBadSeal", err)
			}
			if c := dispatch.Code(err); c != 400 {
				t.Fatalf("code = %d, want 400", c)
			}
		})
	}
}

func TestOpenRewrapped(t *testing.T) {
	bob := newRecipient(t, KEMX25519)
	d := sealed(t, bob, sample(t))
	cases := map[string]func(*dispatch.Dispatch){
		"another timestamp": func(o *dispatch.Dispatch) { o.Timestamp++ },
		"another protocol":  func(o *dispatch.Dispatch) { o.Protocol = []string{"JSTP", "0.5"} },
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			// The sealed payload moved into another dispatch.
			other := dispatch.New(dispatch.POST, "jstp-peer", "sealed")
			other.Protocol, other.Timestamp = d.Protocol, d.Timestamp
			other.Extra = dispatch.Headers{{Name: SealedHeader, Value: d.Extra.Value(SealedHeader)}}
			change(other)
			before := other.String()
			if err := Open(bob.sk, bob.id, other); !errors.Is(err, ErrBadSeal) {
				t.Fatalf("err = %v, want ErrBadSeal", err)
			}
			if other.String() != before {
				t.Fatal("a failed Open changed the dispatch")
			}
		})
	}
}

func TestOpenTampered(t *testing.T) {
	bob := newRecipient(t, KEMX25519)
	d := sealed(t, bob, sample(t))
	var h SealedHeaderValue
	if err := json.Unmarshal(d.Extra.Value(SealedHeader), &h); err != nil {
		t.Fatal(err)
	}
	flip := func(s string, i int) string {
		b, _ := base64.RawURLEncoding.DecodeString(s)
		b[i%len(b)] ^= 0x40
		return base64.RawURLEncoding.EncodeToString(b)
	}
	set := func(v any) json.RawMessage { raw, _ := json.Marshal(v); return raw }
	cases := map[string]json.RawMessage{
		"ct byte":       set(SealedHeaderValue{h.KEM, h.Enc, flip(h.CT, 7)}),
		"ct tag":        set(SealedHeaderValue{h.KEM, h.Enc, flip(h.CT, -1+len(h.CT)*3/4)}),
		"enc byte":      set(SealedHeaderValue{h.KEM, flip(h.Enc, 3), h.CT}),
		"ct truncated":  set(SealedHeaderValue{h.KEM, h.Enc, h.CT[:10]}),
		"kem":           set(SealedHeaderValue{KEMMLKEM768X25519, h.Enc, h.CT}),
		"unknown kem":   set(SealedHeaderValue{0x10, h.Enc, h.CT}),
		"no enc":        set(map[string]any{"kem": 32, "ct": h.CT}),
		"extra member":  set(map[string]any{"kem": 32, "enc": h.Enc, "ct": h.CT, "aead": 3}),
		"not base64url": set(SealedHeaderValue{h.KEM, h.Enc, "+/" + h.CT}),
		"not an object": json.RawMessage(`"x"`),
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			o := d.Clone()
			o.Extra.Set(SealedHeader, raw)
			before := o.String()
			err := Open(bob.sk, bob.id, o)
			if !errors.Is(err, ErrBadSeal) || dispatch.Code(err) != 400 {
				t.Fatalf("err = %v (code %d), want ErrBadSeal, 400", err, dispatch.Code(err))
			}
			if o.String() != before {
				t.Fatal("a failed Open changed the dispatch")
			}
		})
	}
	if err := Open(bob.sk, bob.id, sample(t)); !errors.Is(err, ErrBadSeal) {
		t.Fatalf("unsealed dispatch: err = %v, want ErrBadSeal", err)
	}
}

func TestOpenDropsInjectedHeaders(t *testing.T) {
	bob := newRecipient(t, KEMX25519)
	key, _ := newIdentity(t)
	orig := sample(t)
	if err := Sign(key, orig); err != nil {
		t.Fatal(err)
	}
	d := sealed(t, bob, orig.Clone())
	// A gateway adds a header of its own and a signature of its own
	// outside the seal.
	mallory, _ := newIdentity(t)
	decoy := sample(t)
	if err := Sign(mallory, decoy); err != nil {
		t.Fatal(err)
	}
	d.Extra.Set("x-injected", json.RawMessage(`true`))
	d.Extra.Set(SignatureHeader, decoy.Extra.Value(SignatureHeader))
	if err := Open(bob.sk, bob.id, d); err != nil {
		t.Fatal(err)
	}
	if d.Extra.Has("x-injected") {
		t.Fatal("Open kept a header added outside the seal")
	}
	if !bytes.Equal(d.Extra.Value(SignatureHeader), orig.Extra.Value(SignatureHeader)) {
		t.Fatal("signature header is not the sealed one")
	}
}

func TestSealRefuses(t *testing.T) {
	bob := newRecipient(t, KEMX25519)
	carol := newRecipient(t, KEMX25519)
	if err := Seal(bob.rec, carol.id, sample(t)); err == nil {
		t.Error("sealed to carol with bob's record")
	}
	if err := Seal(&KeyRecord{KEM: bob.rec.KEM, PublicKey: bob.rec.PublicKey}, bob.id, sample(t)); err == nil {
		t.Error("sealed with a record that was never opened")
	}
	exc := dispatch.NewException(dispatch.ErrNotFound, nil)
	if err := Seal(bob.rec, bob.id, exc); err == nil {
		t.Error("sealed an exception")
	}
	d := sealed(t, bob, sample(t))
	if err := Seal(bob.rec, bob.id, d); err == nil {
		t.Error("sealed twice")
	}
}

// A sealed dispatch is valid: gateways decode and validate what they
// forward, and the readable part passes.
func TestSealedDispatchDecodes(t *testing.T) {
	bob := newRecipient(t, KEMMLKEM768X25519)
	d := sample(t)
	if err := Seal(bob.rec, bob.id, d); err != nil {
		t.Fatal(err)
	}
	raw, _ := d.MarshalJSON()
	if _, err := dispatch.Decode(raw); err != nil {
		t.Fatalf("sealed dispatch does not decode: %v\n%s", err, raw)
	}
	t.Logf("sealed X-Wing dispatch: %d bytes (plaintext %d)", len(raw), len(sampleJSON))
}
