package identity

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

func sessionPair(t testing.TB) (emitter, recipient *Session) {
	t.Helper()
	emitter, err := NewSession(fuzzPeer)
	if err != nil {
		t.Fatal(err)
	}
	recipient, err = ParseSession(fuzzPeer, emitter.Secret())
	if err != nil {
		t.Fatal(err)
	}
	return emitter, recipient
}

func openIn(s *Session, dir Direction, d *dispatch.Dispatch) error {
	h, err := ParseSessionHeader(d.Extra.Value(SessionHeader))
	if err != nil {
		return err
	}
	return OpenSession(s, dir, h, d)
}

// Both ends seal to each other; the readable dispatch shows only routing.
func TestSessionRoundTrip(t *testing.T) {
	em, rc := sessionPair(t)
	d := sample(t)
	want := d.Clone()
	want.Host = d.Host
	if err := SealSession(em, ToRecipient, d); err != nil {
		t.Fatal(err)
	}
	text := d.String()
	for _, secret := range []string{"secret", em.Secret()} {
		if strings.Contains(text, secret) {
			t.Fatalf("the readable dispatch shows %q: %s", secret, text)
		}
	}
	d = roundTrip(t, d)
	if err := openIn(rc, ToRecipient, d); err != nil {
		t.Fatal(err)
	}
	if d.String() != want.String() {
		t.Fatalf("opened %s, want %s", d, want)
	}

	a := dispatch.NewAnswer(200, "tx", "trig", json.RawMessage(`"the answer"`))
	if err := SealSession(rc, ToEmitter, a); err != nil {
		t.Fatal(err)
	}
	if err := openIn(em, ToEmitter, roundTrip(t, a)); err != nil {
		t.Fatal(err)
	}
}

// What must not open: a dispatch sent back to its sender as the other's,
// one altered, one moved to another timestamp, one opened in another
// session. All fail with ErrBadSeal (400) and leave the dispatch as it was.
func TestSessionRefusals(t *testing.T) {
	em, rc := sessionPair(t)
	other, _ := sessionPair(t)
	sealed := func() *dispatch.Dispatch {
		d := sample(t)
		if err := SealSession(em, ToRecipient, d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	cases := map[string]func() (*Session, Direction, *dispatch.Dispatch){
		"reflected": func() (*Session, Direction, *dispatch.Dispatch) { return em, ToEmitter, sealed() },
		"altered": func() (*Session, Direction, *dispatch.Dispatch) {
			d := sealed()
			var h SessionHeaderValue
			json.Unmarshal(d.Extra.Value(SessionHeader), &h)
			ct, _ := base64.RawURLEncoding.DecodeString(h.CT)
			ct[0] ^= 1
			h.CT = base64.RawURLEncoding.EncodeToString(ct)
			raw, _ := json.Marshal(h)
			d.Extra.Set(SessionHeader, raw)
			return rc, ToRecipient, d
		},
		"moved": func() (*Session, Direction, *dispatch.Dispatch) {
			d := sealed()
			d.Timestamp++
			return rc, ToRecipient, d
		},
		"another session": func() (*Session, Direction, *dispatch.Dispatch) { return other, ToRecipient, sealed() },
	}
	for name, c := range cases {
		s, dir, d := c()
		before := d.String()
		err := openIn(s, dir, d)
		if !errors.Is(err, ErrBadSeal) || dispatch.Code(err) != 400 {
			t.Fatalf("%s: %v, want ErrBadSeal (400)", name, err)
		}
		if d.String() != before {
			t.Fatalf("%s: a failed open changed the dispatch", name)
		}
	}
	for _, bad := range []string{"", "AAAA", strings.Repeat("A", 65), em.Secret() + "="} {
		if _, err := ParseSession(fuzzPeer, bad); !errors.Is(err, ErrBadSeal) {
			t.Fatalf("ParseSession(%q): %v", bad, err)
		}
	}
}

// FuzzSessionHeader feeds any "sealed-session" header to the parser and
// to OpenSession: no panic, every failure ErrBadSeal (400).
func FuzzSessionHeader(f *testing.F) {
	em, rc := sessionPair(f)
	d := sample(f)
	if err := SealSession(em, ToRecipient, d); err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(d.Extra.Value(SessionHeader)))
	f.Add([]byte(`{"sid":"AAAAAAAAAAAAAAAAAAAAAA","n":"AAAA","ct":"AAAA"}`))
	f.Add([]byte(`{"sid":"","n":"","ct":""}`))
	f.Add([]byte(`{"sid":1}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, err := ParseSessionHeader(raw)
		if err != nil {
			if !errors.Is(err, ErrBadSeal) {
				t.Fatalf("parse: %v is not ErrBadSeal", err)
			}
			return
		}
		dd := d.Clone()
		dd.Extra.Set(SessionHeader, raw)
		before := dd.String()
		if err := OpenSession(rc, ToRecipient, h, dd); err != nil {
			if !errors.Is(err, ErrBadSeal) || dispatch.Code(err) != 400 {
				t.Fatalf("open: %v (code %d)", err, dispatch.Code(err))
			}
			if dd.String() != before {
				t.Fatal("a failed open changed the dispatch")
			}
			return
		}
		if err := dd.Validate(); err != nil {
			t.Fatalf("opened an invalid dispatch: %v", err)
		}
	})
}

// The compact reader and the general parser agree on what SealSession
// writes, and the general one takes the header re-serialised.
func TestSessionHeaderForms(t *testing.T) {
	em, _ := sessionPair(t)
	d := sample(t)
	if err := SealSession(em, ToRecipient, d); err != nil {
		t.Fatal(err)
	}
	raw := d.Extra.Value(SessionHeader)
	fast, ok := parseSessionCompact(raw)
	if !ok {
		t.Fatalf("the compact reader refused %s", raw)
	}
	var general SessionHeaderValue
	if err := json.Unmarshal(raw, &general); err != nil || general != fast {
		t.Fatalf("compact %+v, general %+v (%v)", fast, general, err)
	}
	respaced := []byte(`{ "ct" : "` + fast.CT + `", "n":"` + fast.Nonce + `", "sid":"` + fast.SID + `" }`)
	h, err := ParseSessionHeader(respaced)
	if err != nil || *h != fast {
		t.Fatalf("re-serialised header: %+v, %v", h, err)
	}
	for _, bad := range []string{`{"sid":"a","n":"b","ct":"c"}x`, `{"sid":"a\"","n":"b","ct":"c"}`, `{"sid":"a","n":"b"}`} {
		if _, ok := parseSessionCompact([]byte(bad)); ok {
			t.Fatalf("the compact reader took %s", bad)
		}
	}
}
