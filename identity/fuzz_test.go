package identity

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// Fixed keys, so that fuzz inputs mean the same thing on every run.
var (
	fuzzIdentity = func() crypto.PrivKey {
		k, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
		if err != nil {
			panic(err)
		}
		return k
	}()
	fuzzPeer, _ = peer.IDFromPrivateKey(fuzzIdentity)
	fuzzSealing = func() *SealingKey {
		priv, err := hpke.DHKEM(ecdh.X25519()).DeriveKeyPair([]byte("jstp-peer fuzz sealing key"))
		if err != nil {
			panic(err)
		}
		return &SealingKey{priv: priv}
	}()
)

// FuzzSignatureHeader feeds any "signature" header to the parser and to
// Verify: no panic, and every failure is ErrBadSignature, 401.
func FuzzSignatureHeader(f *testing.F) {
	d := sample(f)
	if err := Sign(fuzzIdentity, d); err != nil {
		f.Fatal(err)
	}
	if _, err := Verify(d); err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(d.Extra.Value(SignatureHeader)))
	f.Add([]byte(`{"alg":"ed25519","author":"12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA","sig":"AAAA"}`))
	f.Add([]byte(`{"alg":"ed25519","author":"12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA","sig":"AAAA","n":"AAAAAAAAAAAAAAAA","to":"menu.test"}`))
	f.Add([]byte(`{"alg":"ed25519","author":"QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N","sig":""}`))
	f.Add([]byte(`{"ALG":"ed25519","alg":"ed25519"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if _, err := ParseSignatureHeader(raw); err != nil && !errors.Is(err, ErrBadSignature) {
			t.Fatalf("parse: %v is not ErrBadSignature", err)
		}
		if !json.Valid(raw) {
			return // the dispatch decoder never hands over invalid JSON
		}
		dd := d.Clone()
		dd.Extra.Set(SignatureHeader, raw)
		author, err := Verify(dd)
		if err == nil {
			if author != fuzzPeer {
				t.Fatalf("verified as %s", author)
			}
			return
		}
		if !errors.Is(err, ErrBadSignature) || dispatch.Code(err) != 401 {
			t.Fatalf("verify: %v (code %d)", err, dispatch.Code(err))
		}
	})
}

// FuzzSealedHeader feeds any "sealed" header to the parser and to Open:
// no panic, every failure is ErrBadSeal (400) and leaves the dispatch as
// it was, and whatever opens is a valid dispatch.
func FuzzSealedHeader(f *testing.F) {
	rec := &KeyRecord{KEM: fuzzSealing.KEM(), PublicKey: fuzzSealing.PublicKey(), Peer: fuzzPeer}
	d := sample(f)
	if err := Seal(rec, fuzzPeer, d); err != nil {
		f.Fatal(err)
	}
	if err := Open(fuzzSealing, fuzzPeer, roundTrip(f, d)); err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(d.Extra.Value(SealedHeader)))
	f.Add([]byte(`{"kem":32,"enc":"AAAA","ct":"AAAA"}`))
	f.Add([]byte(`{"kem":25722,"enc":"","ct":"AAAA"}`))
	f.Add([]byte(`{"kem":32,"enc":"AAAA","ct":"AAAA","kem":32}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if _, err := ParseSealedHeader(raw); err != nil && !errors.Is(err, ErrBadSeal) {
			t.Fatalf("parse: %v is not ErrBadSeal", err)
		}
		if !json.Valid(raw) {
			return
		}
		dd := d.Clone()
		dd.Extra.Set(SealedHeader, raw)
		before := dd.String()
		if err := Open(fuzzSealing, fuzzPeer, dd); err != nil {
			if !errors.Is(err, ErrBadSeal) || dispatch.Code(err) != 400 {
				t.Fatalf("open: %v (code %d)", err, dispatch.Code(err))
			}
			if dd.String() != before {
				t.Fatal("a failed Open changed the dispatch")
			}
			return
		}
		if err := dd.Validate(); err != nil {
			t.Fatalf("opened an invalid dispatch: %v", err)
		}
	})
}

// FuzzKeyRecord feeds any envelope to OpenKeyRecord and any payload to
// UnmarshalRecord: no panic, every failure is ErrBadKeyRecord (401), and
// an accepted record can be sealed to.
func FuzzKeyRecord(f *testing.F) {
	env, err := NewKeyRecord(fuzzIdentity, fuzzSealing)
	if err != nil {
		f.Fatal(err)
	}
	payload, _ := (&KeyRecord{KEM: fuzzSealing.KEM(), PublicKey: fuzzSealing.PublicKey()}).MarshalRecord()
	f.Add(env)
	f.Add(payload)
	f.Add([]byte{})
	f.Add([]byte(`{"kem":25722,"key":"","issued":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := OpenKeyRecord(data, fuzzPeer)
		if err != nil {
			if !errors.Is(err, ErrBadKeyRecord) || dispatch.Code(err) != 401 {
				t.Fatalf("open: %v", err)
			}
		} else if rec.Peer != fuzzPeer {
			t.Fatalf("record of %s", rec.Peer)
		} else if err := Seal(rec, fuzzPeer, sample(t)); err != nil {
			t.Logf("accepted record cannot be sealed to: %v", err)
		}
		var r KeyRecord
		if err := r.UnmarshalRecord(data); err != nil {
			if !errors.Is(err, ErrBadKeyRecord) {
				t.Fatalf("unmarshal: %v", err)
			}
			return
		}
		again, _ := r.MarshalRecord()
		var r2 KeyRecord
		if err := r2.UnmarshalRecord(again); err != nil || r2.KEM != r.KEM || string(r2.PublicKey) != string(r.PublicKey) || !r2.IssuedAt.Equal(r.IssuedAt) {
			t.Fatalf("payload does not round-trip: %v\n%s\n%s", err, data, again)
		}
	})
}

// FuzzSealedPlaintext seals any plaintext correctly, as a hostile sender
// could, and opens it: no panic, every failure is ErrBadSeal (400), and
// what opens is a valid dispatch with the readable protocol and timestamp
// and no routing headers of its own.
func FuzzSealedPlaintext(f *testing.F) {
	f.Add([]byte(sampleJSON))
	f.Add([]byte(`{"protocol":["JSTP","0.4"],"method":"GET","resource":["a"],"timestamp":1365647440759,"hops":9}`))
	f.Add([]byte(`{"protocol":["JSTP","0.5"],"method":"GET","resource":["a"],"timestamp":1365647440759}`))
	f.Add([]byte(`{"protocol":["JSTP","0.4"],"method":"GET","resource":["a"],"timestamp":1365647440759,"sealed":{}}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`))
	outer := dispatch.New(SealedMethod, "jstp-peer", "sealed")
	outer.Timestamp = 1365647440759
	outer.Host = []dispatch.Host{{Name: "next"}}
	f.Fuzz(func(t *testing.T, plain []byte) {
		enc, s, err := hpke.NewSender(fuzzSealing.priv.PublicKey(), sealKDF, sealAEAD, sealInfo(fuzzPeer))
		if err != nil {
			t.Fatal(err)
		}
		ct, err := s.Seal(sealAAD(outer), plain)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(SealedHeaderValue{KEM: fuzzSealing.KEM(), Enc: b64(enc), CT: b64(ct)})
		d := outer.Clone()
		d.Extra = dispatch.Headers{{Name: SealedHeader, Value: raw}}
		if err := Open(fuzzSealing, fuzzPeer, d); err != nil {
			if !errors.Is(err, ErrBadSeal) || dispatch.Code(err) != 400 {
				t.Fatalf("open: %v (code %d)", err, dispatch.Code(err))
			}
			return
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("opened an invalid dispatch: %v", err)
		}
		if d.Timestamp != outer.Timestamp || len(d.Host) != 1 || d.Extra.Has(HopsHeader) || IsSealed(d) {
			t.Fatalf("opened = %s", d)
		}
	})
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
