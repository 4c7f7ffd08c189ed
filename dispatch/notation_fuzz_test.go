package dispatch

import (
	"bytes"
	"testing"
	"time"
)

// fuzzDecoder stamps with a fixed clock so that two parses of a notation
// without a timestamp give equal dispatches.
var fuzzDecoder = Decoder{Now: func() time.Time { return time.UnixMilli(1365647440759) }}

// sameDispatch fails the test unless a and b encode to the same JSON, the
// equality that matters on the wire.
func sameDispatch(t *testing.T, what string, a, b *Dispatch) {
	t.Helper()
	ja, _ := a.MarshalJSON()
	jb, _ := b.MarshalJSON()
	if !bytes.Equal(ja, jb) {
		t.Fatalf("%s changed the dispatch:\n before %s\n after  %s", what, ja, jb)
	}
}

// checkErrCode fails the test when a parse error does not wrap a sentinel:
// every input error must map to a 4xx/5xx exception other than 500.
func checkErrCode(t *testing.T, err error) {
	t.Helper()
	if c := Code(err); c == 500 || c == 200 {
		t.Fatalf("error %q maps to %d; it must wrap a dispatch sentinel", err, c)
	}
}

// crossCheck asserts the properties every valid dispatch has, whichever
// notation it came from: its HTTP-like form and its JSON read back to the
// same dispatch, and so does its URL form when it has one.
func crossCheck(t *testing.T, d *Dispatch) {
	t.Helper()
	h := FormatHTTP(d)
	dh, err := fuzzDecoder.ParseHTTP([]byte(h))
	if err != nil {
		t.Fatalf("ParseHTTP(FormatHTTP(d)) failed: %v\nd: %s\ntext:\n%s", err, d, h)
	}
	sameDispatch(t, "FormatHTTP then ParseHTTP", d, dh)
	if h2 := FormatHTTP(dh); h2 != h {
		t.Fatalf("FormatHTTP is not stable:\n%s\nthen\n%s", h, h2)
	}

	j, _ := d.MarshalJSON()
	dj, err := fuzzDecoder.Decode(j)
	if err != nil {
		t.Fatalf("Decode(MarshalJSON(d)) failed: %v\njson: %s", err, j)
	}
	sameDispatch(t, "MarshalJSON then Decode", d, dj)

	u, err := FormatURL(d)
	if err != nil {
		return
	}
	du, err := fuzzDecoder.ParseURL(u)
	if err != nil {
		t.Fatalf("ParseURL(FormatURL(d)) failed: %v\nd: %s\nurl: %s", err, d, u)
	}
	want := d.Clone()
	want.Timestamp = du.Timestamp
	want.Protocol = du.Protocol
	if len(want.Host) == 0 {
		want.Host = nil
	}
	sameDispatch(t, "FormatURL then ParseURL", want, du)
	if u2, _ := FormatURL(du); u2 != u {
		t.Fatalf("FormatURL is not stable: %q then %q", u, u2)
	}
}

func FuzzParseURL(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		d, err := fuzzDecoder.ParseURL(s)
		if err != nil {
			checkErrCode(t, err)
		} else {
			u, err := FormatURL(d)
			if err != nil {
				t.Fatalf("FormatURL of a parsed URL failed: %v\ninput: %q\nd: %s", err, s, d)
			}
			d2, err := fuzzDecoder.ParseURL(u)
			if err != nil {
				t.Fatalf("ParseURL(FormatURL(d)) failed: %v\ninput: %q\nurl: %q", err, s, u)
			}
			sameDispatch(t, "FormatURL then ParseURL", d, d2)
			crossCheck(t, d)
			dn, err := ParseNotation([]byte(s), fuzzDecoder)
			if err != nil {
				t.Fatalf("ParseNotation rejects what ParseURL accepts: %v\ninput: %q", err, s)
			}
			sameDispatch(t, "ParseNotation", d, dn)
		}

		host, ep, err := ParseEndpointURL(s)
		if err != nil {
			checkErrCode(t, err)
			return
		}
		u := FormatEndpointURL(host, ep)
		host2, ep2, err := ParseEndpointURL(u)
		if err != nil {
			t.Fatalf("ParseEndpointURL(FormatEndpointURL) failed: %v\ninput: %q\nurl: %q", err, s, u)
		}
		if u2 := FormatEndpointURL(host2, ep2); u2 != u || !ep.Equal(ep2) {
			t.Fatalf("endpoint URL round trip: %q → %q → %q", s, u, u2)
		}
	})
}

func FuzzParseHTTP(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := fuzzDecoder.ParseHTTP(data)
		if err != nil {
			checkErrCode(t, err)
			return
		}
		crossCheck(t, d)
	})
}
