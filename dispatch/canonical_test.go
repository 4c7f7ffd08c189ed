package dispatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestCanonicalJSONVectors(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "jcs", "input", "*.json"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no test vectors in testdata/jcs/input: %v", err)
	}
	for _, in := range inputs {
		name := filepath.Base(in)
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join("testdata", "jcs", "output", name))
			if err != nil {
				t.Fatal(err)
			}
			got, err := CanonicalJSON(raw)
			if err != nil {
				t.Fatalf("CanonicalJSON: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// TestCanonicalJSONNumbers runs the number samples of RFC 8785 Appendix B:
// each IEEE-754 double, written in Go's shortest form, must come out in
// the ECMAScript form the RFC gives.
func TestCanonicalJSONNumbers(t *testing.T) {
	for _, tc := range []struct{ bits, want string }{
		{"0000000000000000", "0"},
		{"8000000000000000", "0"}, // minus zero
		{"0000000000000001", "5e-324"},
		{"8000000000000001", "-5e-324"},
		{"7fefffffffffffff", "1.7976931348623157e+308"},
		{"ffefffffffffffff", "-1.7976931348623157e+308"},
		{"4340000000000000", "9007199254740992"},
		{"c340000000000000", "-9007199254740992"},
		{"4430000000000000", "295147905179352830000"},
		{"44b52d02c7e14af5", "9.999999999999997e+22"},
		{"44b52d02c7e14af6", "1e+23"},
		{"44b52d02c7e14af7", "1.0000000000000001e+23"},
		{"444b1ae4d6e2ef4e", "999999999999999700000"},
		{"444b1ae4d6e2ef4f", "999999999999999900000"},
		{"444b1ae4d6e2ef50", "1e+21"},
		{"3eb0c6f7a0b5ed8c", "9.999999999999997e-7"},
		{"3eb0c6f7a0b5ed8d", "0.000001"},
		{"41b3de4355555553", "333333333.3333332"},
		{"41b3de4355555554", "333333333.33333325"},
		{"41b3de4355555555", "333333333.3333333"},
		{"41b3de4355555556", "333333333.3333334"},
		{"41b3de4355555557", "333333333.33333343"},
		{"becbf647612f3696", "-0.0000033333333333333333"},
		{"43143ff3c1cb0959", "1424953923781206.2"},
	} {
		bits, err := strconv.ParseUint(tc.bits, 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		in := strconv.FormatFloat(math.Float64frombits(bits), 'g', -1, 64)
		got, err := CanonicalJSON([]byte("[" + in + "]"))
		if err != nil {
			t.Errorf("%s (%s): %v", tc.bits, in, err)
			continue
		}
		if string(got) != "["+tc.want+"]" {
			t.Errorf("%s (%s): got %s, want [%s]", tc.bits, in, got, tc.want)
		}
	}
}

func TestCanonicalJSONExamples(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`[1e30, 4.50, 0.002, 1e-7, 2e-3, 1E+2, -0.0, 100]`, `[1e+30,4.5,0.002,1e-7,0.002,100,0,100]`},
		{`{"b": 2, "a": 1, "A": 0}`, `{"A":0,"a":1,"b":2}`},
		{`"\u00e9\u0041\u20ac\/\u001f\b\f\n\r\t\"\\"`, `"éA€/\u001f\b\f\n\r\t\"\\"`},
		{`"\u2028 \ud83d\ude00"`, "\"\u2028 \U0001F600\""},
		// UTF-16 order, not UTF-8 or code point order: U+FB33 (0xFB33)
		// sorts before U+1F600 (0xD83D 0xDE00) in UTF-8, after it in UTF-16.
		{`{"\ufb33": 1, "\ud83d\ude00": 2}`, "{\"\U0001F600\":2,\"\uFB33\":1}"},
		{" \t\r\n{ \"a\" : [ ] , \"b\" : { } }\n", `{"a":[],"b":{}}`},
	} {
		got, err := CanonicalJSON([]byte(tc.in))
		if err != nil {
			t.Errorf("CanonicalJSON(%s): %v", tc.in, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("CanonicalJSON(%s)\n got  %s\n want %s", tc.in, got, tc.want)
		}
	}
}

func TestCanonicalJSONErrors(t *testing.T) {
	for _, in := range []string{
		``,
		`{"a":1,"a":2}`, // duplicate names are not I-JSON
		`[1e400]`,       // outside the double range
		`"\ud800"`,      // lone surrogate
		"\"\xff\"",      // not UTF-8
		`{"a":1`,        // truncated
		`[1] [2]`,       // two values
		strings.Repeat("[", 65) + strings.Repeat("]", 65), // deeper than DefaultMaxDepth
	} {
		_, err := CanonicalJSON([]byte(in))
		if err == nil {
			t.Errorf("CanonicalJSON(%.40q) succeeded; want an error", in)
			continue
		}
		if !errors.Is(err, ErrBadDispatch) || Code(err) != 400 {
			t.Errorf("CanonicalJSON(%.40q): %v does not map to 400", in, err)
		}
	}
}

// TestCanonicalSameDispatch is the property signatures rely on: equal
// dispatches written differently have the same canonical bytes.
func TestCanonicalSameDispatch(t *testing.T) {
	a := `{"protocol":["JSTP","0.4"],"method":"POST","resource":["foods","pizza",97],"timestamp":1365647440759,` +
		`"token":["tx"],"host":["pizza.com.ar"],"body":{"size":4.50,"name":"caf\u00e9","tags":["a","b"]},"x-trace":{"b":1,"a":2}}`
	b := "{\n  \"X-Trace\": {\"a\": 2, \"b\": 1.0},\n  \"BODY\": {\"tags\": [\"a\", \"b\"], \"name\": \"café\", \"size\": 4.5},\n" +
		"  \"Host\": [\"pizza.com.ar\"], \"Token\": [\"tx\"], \"TimeStamp\": 1365647440759,\n" +
		"  \"Resource\": [\"foods\", \"pizza\", 97], \"Method\": \"post\", \"Protocol\": [\"JSTP\", \"0.4\"]\n}"
	da, err := Decode([]byte(a))
	if err != nil {
		t.Fatal(err)
	}
	db, err := Decode([]byte(b))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := da.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	cb, err := db.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca, cb) {
		t.Fatalf("equal dispatches, different canonical forms:\n%s\n%s", ca, cb)
	}
	want := `{"body":{"name":"café","size":4.5,"tags":["a","b"]},"host":["pizza.com.ar"],"method":"POST",` +
		`"protocol":["JSTP","0.4"],"resource":["foods","pizza",97],"timestamp":1365647440759,"token":["tx"],"x-trace":{"a":2,"b":1}}`
	if string(ca) != want {
		t.Fatalf("canonical form\n got  %s\n want %s", ca, want)
	}

	// The notations are other writings of the same dispatch.
	dh, err := ParseHTTP([]byte(FormatHTTP(da)))
	if err != nil {
		t.Fatal(err)
	}
	if ch, _ := dh.Canonical(); !bytes.Equal(ch, ca) {
		t.Fatalf("the HTTP-like notation changed the canonical form:\n%s\n%s", ch, ca)
	}

	// A change that matters changes the canonical form.
	dc := da.Clone()
	dc.Resource[2] = json.Number("98")
	if cc, _ := dc.Canonical(); bytes.Equal(cc, ca) {
		t.Fatal("a different resource has the same canonical form")
	}
}

func TestCanonicalRejectsNonIJSONBody(t *testing.T) {
	d := New(POST, "x")
	d.Body = json.RawMessage(`{"a":1,"a":2}`)
	if _, err := d.Canonical(); err == nil || Code(err) != 400 {
		t.Fatalf("Canonical with a duplicate body member: err = %v, want a 400", err)
	}
}

// FuzzCanonical checks CanonicalJSON on any input: no panic; output that
// is valid JSON, canonical already (idempotence), and the same value as
// the input; and, for inputs that are dispatches, a canonical form that
// survives re-encoding.
func FuzzCanonical(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := CanonicalJSON(data)
		if err == nil {
			if !json.Valid(out) {
				t.Fatalf("output is not JSON: %q", out)
			}
			again, err := CanonicalJSON(out)
			if err != nil || !bytes.Equal(again, out) {
				t.Fatalf("not idempotent: %q → %q (%v)", out, again, err)
			}
			var vin, vout any
			if json.Unmarshal(data, &vin) == nil {
				if err := json.Unmarshal(out, &vout); err != nil || !reflect.DeepEqual(vin, vout) {
					t.Fatalf("value changed: %q → %q", data, out)
				}
			}
		} else {
			checkErrCode(t, err)
		}
		d, err := Decode(data)
		if err != nil {
			return
		}
		c1, err := d.Canonical()
		if err != nil {
			checkErrCode(t, err)
			return
		}
		enc, _ := d.MarshalJSON()
		d2, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(MarshalJSON): %v", err)
		}
		c2, err := d2.Canonical()
		if err != nil || !bytes.Equal(c1, c2) {
			t.Fatalf("re-encoding changed the canonical form: %q → %q (%v)", c1, c2, err)
		}
	})
}
