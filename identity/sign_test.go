package identity

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

func TestSignVerify(t *testing.T) {
	key, id := newIdentity(t)
	d := sample(t)
	if err := Sign(key, d); err != nil {
		t.Fatal(err)
	}
	got, err := Verify(roundTrip(t, d))
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if got != id {
		t.Fatalf("author = %s, want %s", got, id)
	}
	var h SignatureHeaderValue
	if err := json.Unmarshal(d.Extra.Value(SignatureHeader), &h); err != nil {
		t.Fatal(err)
	}
	if h.Alg != "ed25519" || h.Author != id.String() || len(h.Sig) != 86 {
		t.Errorf("header = %+v", h)
	}
}

// reorder rewrites a JSON object with its members in reverse order, the
// header names in upper case, indentation and spaces around colons: what
// another JSON library might send for the same dispatch.
func reorder(t *testing.T, raw []byte) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	slices.Reverse(names)
	var b bytes.Buffer
	b.WriteString("{\n")
	for i, k := range names {
		var v bytes.Buffer
		if err := json.Indent(&v, m[k], "    ", "\t"); err != nil {
			t.Fatal(err)
		}
		b.WriteString("  \"" + strings.ToUpper(k) + "\" :  ")
		b.Write(v.Bytes())
		if i < len(names)-1 {
			b.WriteString(" ,")
		}
		b.WriteString("\n")
	}
	b.WriteString("}\n")
	return b.Bytes()
}

func TestVerifyAfterReserialisation(t *testing.T) {
	key, id := newIdentity(t)
	d := sample(t)
	if err := Sign(key, d); err != nil {
		t.Fatal(err)
	}
	raw, _ := d.MarshalJSON()
	// A body with its keys reordered and 12.50 written 12.5 is the same
	// body to RFC 8785.
	re := reorder(t, raw)
	re = bytes.Replace(re, []byte("12.50"), []byte("1.25e1"), 1)
	d2, err := dispatch.Decode(re)
	if err != nil {
		t.Fatalf("decode %s: %v", re, err)
	}
	if bytes.Equal(re, raw) || d2.String() == d.String() {
		t.Fatal("the re-serialisation did not change anything")
	}
	// Gateways rewrite the routing headers.
	d2.Host = []dispatch.Host{{Name: "other.example"}, {Name: "localhost", Port: 33333, Transport: "tcp"}}
	d2.Extra.Set(HopsHeader, json.RawMessage("3"))
	d2.Extra.Set(ViaHeader, json.RawMessage(`"gw-1"`))
	got, err := Verify(d2)
	if err != nil {
		t.Fatalf("verify after re-serialisation: %v\n%s", err, re)
	}
	if got != id {
		t.Fatalf("author = %s, want %s", got, id)
	}
}

func TestVerifyRejectsTampering(t *testing.T) {
	key, _ := newIdentity(t)
	otherKey, otherID := newIdentity(t)
	tamper := map[string]func(d *dispatch.Dispatch){
		"body":      func(d *dispatch.Dispatch) { d.Body = json.RawMessage(`{"item":"poison"}`) },
		"resource":  func(d *dispatch.Dispatch) { d.Resource[1] = json.Number("98") },
		"method":    func(d *dispatch.Dispatch) { d.Method = dispatch.DELETE },
		"timestamp": func(d *dispatch.Dispatch) { d.Timestamp++ },
		"protocol":  func(d *dispatch.Dispatch) { d.Protocol = []string{"JSTP", "0.5"} },
		"signed header removed": func(d *dispatch.Dispatch) {
			ensureExtra(d)
			d.Extra.Set("note", json.RawMessage(`"x"`))
			if err := Sign(key, d); err != nil {
				t.Fatal(err)
			}
			d.Extra.Delete("note")
		},
		"signed header changed": func(d *dispatch.Dispatch) {
			ensureExtra(d)
			d.Extra.Set("note", json.RawMessage(`"x"`))
			if err := Sign(key, d); err != nil {
				t.Fatal(err)
			}
			d.Extra.Set("note", json.RawMessage(`"y"`))
		},
		"hdrs shortened": func(d *dispatch.Dispatch) {
			ensureExtra(d)
			d.Extra.Set("note", json.RawMessage(`"x"`))
			if err := Sign(key, d); err != nil {
				t.Fatal(err)
			}
			var h SignatureHeaderValue
			_ = json.Unmarshal(d.Extra.Value(SignatureHeader), &h)
			h.Headers = nil
			raw, _ := json.Marshal(h)
			d.Extra.Set(SignatureHeader, raw)
		},
		"author swapped": func(d *dispatch.Dispatch) {
			setSigField(t, d, "author", otherID.String())
		},
		"sig flipped": func(d *dispatch.Dispatch) {
			var h SignatureHeaderValue
			_ = json.Unmarshal(d.Extra.Value(SignatureHeader), &h)
			sig, _ := base64.RawURLEncoding.DecodeString(h.Sig)
			sig[10] ^= 1
			setSigField(t, d, "sig", base64.RawURLEncoding.EncodeToString(sig))
		},
		"forged by another key": func(d *dispatch.Dispatch) {
			// Signed by someone else, claiming the original author.
			var h SignatureHeaderValue
			_ = json.Unmarshal(d.Extra.Value(SignatureHeader), &h)
			if err := Sign(otherKey, d); err != nil {
				t.Fatal(err)
			}
			setSigField(t, d, "author", h.Author)
		},
		"alg": func(d *dispatch.Dispatch) { setSigField(t, d, "alg", "rsa") },
		"unknown member": func(d *dispatch.Dispatch) {
			d.Extra.Set(SignatureHeader, append(d.Extra.Value(SignatureHeader)[:len(d.Extra.Value(SignatureHeader))-1:len(d.Extra.Value(SignatureHeader))-1], `,"x":1}`...))
		},
		"not an object": func(d *dispatch.Dispatch) { d.Extra.Set(SignatureHeader, json.RawMessage(`"sig"`)) },
		"padded sig": func(d *dispatch.Dispatch) {
			var h SignatureHeaderValue
			_ = json.Unmarshal(d.Extra.Value(SignatureHeader), &h)
			setSigField(t, d, "sig", h.Sig+"==")
		},
	}
	for name, f := range tamper {
		t.Run(name, func(t *testing.T) {
			d := sample(t)
			if err := Sign(key, d); err != nil {
				t.Fatal(err)
			}
			d = roundTrip(t, d)
			f(d)
			_, err := Verify(roundTrip(t, d))
			if !errors.Is(err, ErrBadSignature) {
				t.Fatalf("err = %v, want ErrBadSignature", err)
			}
			if c := dispatch.Code(err); c != 401 {
				t.Fatalf("code = %d, want 401", c)
			}
		})
	}
}

func setSigField(t *testing.T, d *dispatch.Dispatch, name, value string) {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(d.Extra.Value(SignatureHeader), &m); err != nil {
		t.Fatal(err)
	}
	m[name] = value
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	d.Extra.Set(SignatureHeader, raw)
}

func TestVerifyUnsigned(t *testing.T) {
	_, err := Verify(sample(t))
	if !errors.Is(err, ErrUnsigned) || errors.Is(err, ErrBadSignature) {
		t.Fatalf("err = %v, want ErrUnsigned only", err)
	}
	if c := dispatch.Code(err); c != 401 {
		t.Fatalf("code = %d, want 401", c)
	}
}

func TestVerifyRefusesAuthorsWithoutEmbeddedKey(t *testing.T) {
	ecdsaKey, _, err := crypto.GenerateECDSAKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secpKey, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]crypto.PrivKey{"ecdsa (hashed id)": ecdsaKey, "secp256k1 (not ed25519)": secpKey} {
		t.Run(name, func(t *testing.T) {
			id, err := peer.IDFromPrivateKey(k)
			if err != nil {
				t.Fatal(err)
			}
			d := sample(t)
			d.Extra = dispatch.Headers{{Name: SignatureHeader, Value: json.RawMessage(
				`{"alg":"ed25519","author":"` + id.String() + `","sig":"` + base64.RawURLEncoding.EncodeToString(make([]byte, 64)) + `"}`)}}
			if _, err := Verify(d); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("err = %v, want ErrBadSignature", err)
			}
			if err := Sign(k, d); err == nil {
				t.Fatal("Sign accepted a non-Ed25519 key")
			}
		})
	}
}

func TestSignReplacesSignature(t *testing.T) {
	k1, _ := newIdentity(t)
	k2, id2 := newIdentity(t)
	d := sample(t)
	if err := Sign(k1, d); err != nil {
		t.Fatal(err)
	}
	if err := Sign(k2, d); err != nil {
		t.Fatal(err)
	}
	if got, err := Verify(d); err != nil || got != id2 {
		t.Fatalf("Verify = %s, %v; want %s", got, err, id2)
	}
}

func TestSignCoversUnknownHeadersAndExceptions(t *testing.T) {
	key, id := newIdentity(t)
	d := dispatch.NewException(dispatch.Errorf(dispatch.ErrNotFound, "nothing here"), sample(t))
	d.Extra = dispatch.Headers{{Name: "x-app", Value: json.RawMessage(`{"b":1,"a":2}`)}}
	if err := Sign(key, d); err != nil {
		t.Fatal(err)
	}
	if got, err := Verify(roundTrip(t, d)); err != nil || got != id {
		t.Fatalf("Verify = %s, %v", got, err)
	}
	d.Extra.Set("x-app", json.RawMessage(`{"b":1,"a":3}`))
	if _, err := Verify(d); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("changed unknown header: err = %v", err)
	}
}

// What gateways and other engines rewrite does not void a signature: the
// token (classic engines give each hop its own transaction id), and
// headers they add, which VerifyAndTrim then drops.
func TestSignatureSurvivesRewrites(t *testing.T) {
	key, id := newIdentity(t)
	d := sample(t)
	d.Extra.Set("note", json.RawMessage(`"signed"`))
	if err := Sign(key, d); err != nil {
		t.Fatal(err)
	}
	d.Token = []any{"hop-label.1", "trig"}
	d.Extra.Set("referer", json.RawMessage(`[]`))
	got, _, err := VerifyAndTrim(d)
	if err != nil || got != id {
		t.Fatalf("after rewrites: %s, %v", got, err)
	}
	if d.Extra.Has("referer") {
		t.Fatal("an added header was kept")
	}
	if string(d.Extra.Value("note")) != `"signed"` {
		t.Fatal("a signed header was dropped")
	}
}

func ensureExtra(d *dispatch.Dispatch) {
}

// Two dispatches alike in every signed part — the same request sent
// twice in one millisecond — get different signatures, so the replay
// guard does not take the second for a replay of the first.
func TestAlikeDispatchesAreNotReplays(t *testing.T) {
	key, id := newIdentity(t)
	g := NewReplayGuard()
	for i := range 2 {
		d := sample(t)
		d.Timestamp = time.Now().UnixMilli()
		if err := Sign(key, d); err != nil {
			t.Fatal(err)
		}
		if err := g.Check(id, d); err != nil {
			t.Fatalf("dispatch %d: %v", i, err)
		}
	}
}

// The recipient is signed: it defaults to the last host element, and
// changing it voids the signature.
func TestSignNamesRecipient(t *testing.T) {
	key, _ := newIdentity(t)
	d := sample(t)
	d.Host = []dispatch.Host{{Name: "gateway"}, {Name: "menu.test"}}
	if err := Sign(key, d); err != nil {
		t.Fatal(err)
	}
	if got := Recipient(d); got != "menu.test" {
		t.Fatalf("Recipient = %q, want the last host element", got)
	}
	d.Host = nil // gateways rewrite the chain: still valid
	if _, err := Verify(d); err != nil {
		t.Fatalf("Verify without the host chain: %v", err)
	}
	var h SignatureHeaderValue
	if err := json.Unmarshal(d.Extra.Value(SignatureHeader), &h); err != nil {
		t.Fatal(err)
	}
	h.To = "other.test"
	raw, _ := json.Marshal(h)
	d.Extra.Set(SignatureHeader, raw)
	if _, err := Verify(d); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Verify with another recipient: %v, want ErrBadSignature", err)
	}
	// A classic [host, port] target is not named.
	c := sample(t)
	c.Host = []dispatch.Host{{Name: "127.0.0.1", Port: 8080}}
	if err := Sign(key, c); err != nil {
		t.Fatal(err)
	}
	if got := Recipient(c); got != "" {
		t.Fatalf("Recipient of a classic target = %q, want none", got)
	}
}
