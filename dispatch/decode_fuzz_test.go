package dispatch

import (
	"bytes"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzDecode checks the decoder on any input: it never panics, every
// error maps to an exception code, and a dispatch it accepts encodes on
// one line and decodes again to the same dispatch. With quirks on, it
// also checks what the Node engine's leniency produces.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, quirks bool) {
		dec := Decoder{Quirks: quirks, Now: func() time.Time { return time.UnixMilli(1365647440759) }}
		d, err := dec.Decode(data)
		if err != nil {
			checkErrCode(t, err)
			return
		}
		enc, err := d.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON: %v", err)
		}
		if bytes.ContainsAny(enc, "\n\r") {
			t.Fatalf("the encoding contains a raw line break: %q", enc)
		}
		d2, err := dec.Decode(enc)
		if err != nil {
			t.Fatalf("Decode(MarshalJSON(d)) failed: %v\ninput: %q\nencoding: %s", err, data, enc)
		}
		sameDispatch(t, "MarshalJSON then Decode", d, d2)
		// The notations promise exact round trips for UTF-8 dispatches;
		// the decoder is the widest source of odd but valid ones.
		if utf8.Valid(enc) {
			crossCheck(t, d)
		}
	})
}
