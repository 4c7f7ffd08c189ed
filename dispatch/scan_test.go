package dispatch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The tests here hold the single-pass decoder to the one it replaced,
// which took encoding/json's word for what JSON is: referenceDecode below
// is that decoder, kept verbatim but for the names and one change. The
// old code ranged over Go maps, so when several headers (or endpoint or
// exception members) were bad, which error won was random; the reference
// visits them in document order, the one order the new decoder promises,
// so that the two can be compared exactly.

var (
	scanSeeds = []string{
		pizza,
		string(benchDispatch),
		`{"Protocol":["jstp","0.4"],"METHOD":"get","Resource":["a"],"TimeStamp":1}`,
		`{"protocol":["JSTP","0.4"],"method":"GET","resource":["users",97,1.50,1e400,-0,true],"timestamp":1,"token":[null,3]}`,
		`{"protocol":["JSTP","0.4"],"method":"POST","resource":["a"],"timestamp":1,"X-Trace":{"id":[1,2]},"referer":"r"}`,
		`{"protocol":["JSTP","0.4"],"method":"GET","resource":["a"],"timestamp":1,"host":[["localhost",33333,"tcp"],"peer",["ws.example",8080,"WS"]]}`,
		`{"protocol":["JSTP","0.4"],"method":"BIND","endpoint":{"method":"post","resource":["chat","*",":room","..."]},"timestamp":1}`,
		`{"protocol":["JSTP","0.5"],"method":"ANSWER","resource":[200,"tx","trig"],"timestamp":1,"body":"ok"}`,
		`{"protocol":["JSTP","0.4"],"timestamp":1,"exception":{"code":400,"message":"bad"}}`,
		"{\"protocol\":[\"JSTP\",\"0.4\"],\"method\":\"PUT\",\"resource\":[\"a\"],\"timestamp\":1,\"body\":{\n  \"a\": 1\n}}",
		`{"protocol":["JSTP","0.4"],"method":"get","resource":["Anyway"],"token":"abc","host":[["localhost",33333,"tcp"]],"referer":[["localhost",4444,"tcp"]],"body":null}`,
		`{"protocol":["JSTP","0.4"],"method":"GET","Method":"POST","resource":["a"],"timestamp":1}`,
		`{"protocol":["JSTP","0.4"],"method":"GET","resource":["\ud83c\udf55","\udc00x","\u00e9\/\b\f\n\r\t\"\\"],"timestamp":1365647440759}`,
		"{\"protocol\":[\"JSTP\",\"0.4\"],\"method\":\"GET\",\"resource\":[\"bad\xffutf8\",\"\xed\xa0\x80\"],\"timestamp\":1}",
		`{"protocol":["JSTP",null],"method":7,"resource":[{}],"timestamp":"1","token":"t","host":"h","endpoint":[],"exception":{"code":1.5}}`,
		`{"protocol":["JSTP","0.4"],"method":"GET","resource":["a"],"timestamp":1,"host":[[1,2,3,4],["h",0],["h",80,5],[""],[],7]}`,
		`{"protocol":["JSTP","0.4"],"timestamp":1.3656e12,"exception":{"Code":404,"MESSAGE":"gone","code":405}}`,
		`{"protocol":`, `["JSTP"]`, `null`, `"x"`, `12`, `true`, ``, ` `, `{}`, `{"a":1}x`, `{"a" 1}`, `{"a":1,}`, `[1,]`,
		`{"a":tru}`, `{"a":-}`, `{"a":1.}`, `{"a":1e+}`, `{"a":01}`, `{"a":"\x"}`, `{"a":"\u12g4"}`, "{\"a\":\"\x01\"}",
		`{"a":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`,
		`{"a":` + strings.Repeat("[", 70),
		`{"\u0074oken":[1],"to\u212Aen":[2]}`,
		`{"a":tr`, `{"a":-`, `{"a":1.`, `{"a":1e`, `{"a":"\`, `{"a":"\u12`, `{"a":"abc`, `{"a"`, `{`, `[`, `{"a":1`, `{"a":[1`, "{\"\xff\":1}",
	}
	fuzzClock = func() time.Time { return time.UnixMilli(1365647440759) }
)

func TestDecodeExactDuplicateHeader(t *testing.T) {
	cases := map[string]string{
		`{"protocol":["JSTP","0.4"],"method":"GET","method":"POST","resource":["a"],"timestamp":1}`:  `header "method" given twice (as "method" and "method")`,
		`{"protocol":["JSTP","0.4"],"method":"GET","resource":["a"],"timestamp":1,"x":1,"X":2}`:      `header "x" given twice (as "x" and "X")`,
		`{"protocol":["JSTP","0.4"],"method":"GET","resource":["a"],"timestamp":1,"x":1,"\u0078":2}`: `header "x" given twice (as "x" and "x")`,
		`{"protocol":["JSTP","0.4"],"method":"GET","resource":["a"],"timestamp":1,"":1,"":2}`:        `header "" given twice (as "" and "")`,
	}
	for in, msg := range cases {
		if _, err := Decode([]byte(in)); Code(err) != 400 || !strings.Contains(fmt.Sprint(err), msg) {
			t.Errorf("Decode(%s) = %v, want 400 %s", in, err, msg)
		}
	}
}

// Beyond encoding/json's own nesting limit, a generous MaxDepth still
// meets the error json.Unmarshal gave.
func TestDecodeBeyondJSONNestingLimit(t *testing.T) {
	dec := Decoder{MaxDepth: 2 * maxNestingDepth}
	in := []byte(`{"body":` + strings.Repeat("[", maxNestingDepth) + strings.Repeat("]", maxNestingDepth) + `}`)
	_, err := dec.Decode(in)
	_, want := referenceDecode(dec, in)
	if err == nil || err.Error() != want.Error() {
		t.Fatalf("err = %v, want %v", err, want)
	}
	if !strings.Contains(err.Error(), "exceeded max depth") {
		t.Fatalf("err = %v", err)
	}
}

// A dispatch shares no memory with the input, and its raw values none
// with each other, however they are appended to.
func TestDecodeCopiesInput(t *testing.T) {
	in := []byte(`{"protocol":["JSTP","0.4"],"method":"get","resource":["a\u00e9",97],"timestamp":1,"token":["tx"],"host":["h"],"x-a":[1],"x-b":{"k":"v"},"body":{"a":1}}`)
	d, err := Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	before := d.String()
	for i := range in {
		in[i] = 'X'
	}
	d.Extra.Set("x-a", append(d.Extra.Value("x-a"), "garbage"...))
	d.Extra.Set("x-a", d.Extra.Value("x-a")[:3])
	if got := d.String(); got != before {
		t.Fatalf("the dispatch changed with its input:\n%s\n%s", before, got)
	}
}

func TestDecodeAllocs(t *testing.T) {
	// One for the dispatch, the strings, the raw values, and each slice,
	// plus one per string or number boxed in Resource and Token: a dozen
	// where json.Unmarshal into a map takes seventy.
	n := testing.AllocsPerRun(100, func() {
		if _, err := Decode(benchDispatch); err != nil {
			t.Fatal(err)
		}
	})
	if n > 12 {
		t.Fatalf("Decode allocates %v times per dispatch, want at most 12", n)
	}
}

func TestUnquoteToMatchesJSON(t *testing.T) {
	for _, s := range []string{
		`""`, `"plain"`, `"\u00e9\n\t\"\\\/\b\f\r"`, `"\ud83c\udf55"`, `"\ud83c"`, `"\ud83cx"`, `"\ud83c\u0041"`,
		`"\udf55\ud83c"`, `"\ud83c\ud83c\udf55"`, `"\u0000"`, "\"\xff\xfe\"", "\"\xed\xa0\x80\"", "\"\xf0\x9f\x8d\"",
		"\"\xef\xbf\xbd\"", `"\uFFFD\uDBFF\uDFFF"`,
	} {
		var want string
		if err := json.Unmarshal([]byte(s), &want); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		sc := scanner{data: []byte(s), maxDepth: 1}
		if _, ok := sc.scanString(); !ok || sc.pos != len(s) {
			t.Fatalf("scanString(%q) failed", s)
		}
		if got := string(unquoteTo(nil, []byte(s[1:len(s)-1]))); got != want || !utf8.ValidString(got) {
			t.Errorf("unquoteTo(%q) = %q, want %q", s, got, want)
		}
	}
}

// FuzzDecodeDifferential checks the single-pass decoder against the
// json.Unmarshal-based one it replaced: the same inputs are syntax
// errors, with the same messages, and every other input gives the same
// dispatch and the same error. The one intended difference: a header
// name given twice in exactly the same spelling, which json.Unmarshal
// into a map silently collapsed, is now the error for any repeated name.
func FuzzDecodeDifferential(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(differential)
}

func differential(t *testing.T, data []byte, quirks bool) {
	t.Helper()
	dec := Decoder{Quirks: quirks, Now: fuzzClock}
	got, gotErr := dec.Decode(data)
	want, wantErr := referenceDecode(dec, data)
	checkUnmarshalJSON(t, data)
	checkHelpers(t, data, quirks)

	valid := json.Valid(data)
	deep := refCheckDepth(data, DefaultMaxDepth) != nil
	if !valid || deep {
		if got != nil || gotErr == nil {
			t.Fatalf("accepted what json.Valid and the depth limit reject (valid %v, too deep %v): %q", valid, deep, data)
		}
		// The old decoder checked the depth before the syntax; the scanner
		// checks both as it goes, so on input that has both faults either
		// error is right.
		if valid || !deep {
			sameError(t, data, gotErr, wantErr)
		}
		return
	}
	if !utf8.Valid(data) {
		if got != nil || Code(gotErr) != 400 {
			t.Fatalf("accepted input that is not UTF-8: %q", data)
		}
		return
	}
	if exactDuplicates(data) {
		if got == nil || gotErr == nil {
			t.Fatalf("accepted a header given twice: %q", data)
		}
		return
	}
	if nestedDuplicates(data) {
		return
	}
	sameError(t, data, gotErr, wantErr)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoders disagree on %q:\n got %#v\nwant %#v", data, got, want)
	}
}

// TestDecodeDifferentialGenerated runs the differential check over
// dispatches built from the values that stress the header readers, which
// random mutation of bytes rarely reaches all at once: odd cases and
// escapes in names, every JSON type in every header, host tuples of every
// shape, bad UTF-8 and surrogates.
func TestDecodeDifferentialGenerated(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range n {
		differential(t, genDispatch(rng), rng.IntN(2) == 0)
	}
}

func genDispatch(rng *rand.Rand) []byte {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	names := []string{
		"protocol", "Protocol", "method", "METHOD", "resource", "timestamp", "token", `\u0074oken`, "to\u212Aen",
		"host", "body", "endpoint", "exception", "x-a", "X-A", "", "\xff",
	}
	scalar := func() string {
		return pick(`"a"`, `""`, `"JSTP"`, `"0.4"`, `"get"`, `"POST"`, `"\u00e9\n"`, `"\ud83c"`, "\"\xff\"", `"tcp"`, `"WS"`,
			`0`, `-0`, `97`, `1.5`, `1e400`, `65535`, `70000`, `-1`, `1365647440759`, `1.3656e12`, `true`, `false`, `null`)
	}
	var value func(depth int) string
	value = func(depth int) string {
		switch k := rng.IntN(10); {
		case k < 5 || depth > 3:
			return scalar()
		case k < 8:
			elems := make([]string, rng.IntN(5))
			for i := range elems {
				elems[i] = value(depth + 1)
			}
			return "[" + strings.Join(elems, pick(",", " , ")) + "]"
		default:
			members := make([]string, rng.IntN(4))
			for i := range members {
				members[i] = `"` + pick("method", "Method", "resource", "code", "message", "MESSAGE", "x") + `":` + value(depth+1)
			}
			return "{" + strings.Join(members, ",") + "}"
		}
	}
	typical := map[string]func() string{
		"protocol": func() string {
			return pick(`["JSTP","0.4"]`, `["jstp","0.6"]`, `["JSTP"]`, `["JSTP",null]`, `["JSTP",0.4]`, `[]`)
		},
		"method":    func() string { return pick(`"GET"`, `"post"`, `"bind"`, `"ANSWER"`, `"FETCH"`) },
		"timestamp": func() string { return pick(`1`, `1365647440759`, `1.3656e12`, `0`, `"1"`) },
		"resource": func() string {
			return pick(`["a"]`, `["users",97,true]`, `[200,"tx"]`, `[404,"tx","trig"]`, `[]`, `["a",""]`)
		},
		"token": func() string { return pick(`["tx"]`, `"tx"`, `[null,3]`, `[]`) },
		"host": func() string {
			return pick(`["h"]`, `"h"`, `[["h",80,"TCP"]]`, `[["h",null,"ws"],"p"]`, `[["h"]]`, `[["",1]]`, `[["h",0]]`, `[["h",1,2]]`, `[[1]]`, `[[]]`, `[["a",1,"b",2]]`)
		},
		"endpoint": func() string {
			return pick(`{"method":"post","resource":["a","*"]}`, `{"Method":"*","RESOURCE":[":x"]}`, `{"method":null}`, `{"resource":["a",1]}`, `{"method":"GET","resource":[]}`)
		},
		"exception": func() string {
			return pick(`{"code":404,"message":"gone"}`, `{"Code":500}`, `{"code":"1"}`, `{"code":1e2}`, `{"code":99999999999999999999}`, `{"message":null}`)
		},
	}
	// Half the documents are mostly well-formed dispatches, so that
	// acceptance is compared too, not only the first error.
	var chosen []string
	if rng.IntN(2) == 0 {
		for i, n := range []string{"protocol", "method", "resource", "timestamp", "token", "host", "body", "x-a", "endpoint", "exception"} {
			if rng.IntN(10) < 9-i/4*4 {
				chosen = append(chosen, n)
			}
		}
		rng.Shuffle(len(chosen), func(i, j int) { chosen[i], chosen[j] = chosen[j], chosen[i] })
	} else {
		for range rng.IntN(9) {
			chosen = append(chosen, pick(names...))
		}
	}
	var b strings.Builder
	b.WriteString("{")
	for i, name := range chosen {
		if i > 0 {
			b.WriteString(pick(",", " ,\n"))
		}
		b.WriteString(`"` + name + `":`)
		if f, ok := typical[strings.ToLower(name)]; ok && rng.IntN(5) > 0 {
			b.WriteString(f())
		} else if name == "timestamp" && rng.IntN(2) == 0 {
			b.WriteString("1")
		} else {
			b.WriteString(value(0))
		}
	}
	b.WriteString(pick("}", "}", "}", "}", " }\n", "}", "}x", ""))
	return []byte(b.String())
}

func sameError(t *testing.T, data []byte, got, want error) {
	t.Helper()
	if (got == nil) != (want == nil) || got != nil && (got.Error() != want.Error() || Code(got) != Code(want)) {
		t.Fatalf("decoders disagree on %q:\n got error %v\nwant error %v", data, got, want)
	}
}

// checkUnmarshalJSON compares Dispatch.UnmarshalJSON, which has no limits
// of its own, with the old one.
func checkUnmarshalJSON(t *testing.T, data []byte) {
	t.Helper()
	var got, want Dispatch
	gotErr := got.UnmarshalJSON(data)
	wantErr := refUnmarshalJSON(&want, data)
	if json.Valid(data) && (exactDuplicates(data) || nestedDuplicates(data)) {
		return
	}
	sameError(t, data, gotErr, wantErr)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("UnmarshalJSON disagrees on %q:\n got %#v\nwant %#v", data, got, want)
	}
}

// checkHelpers compares the header readers that the notations call with
// JSON they have validated.
func checkHelpers(t *testing.T, data []byte, quirks bool) {
	t.Helper()
	if !json.Valid(data) {
		return
	}
	for _, allowNull := range []bool{false, true} {
		got, gotErr := parseScalars("token", data, allowNull)
		want, wantErr := refParseScalars("token", data, allowNull)
		sameError(t, data, gotErr, wantErr)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("parseScalars disagrees on %q: got %#v, want %#v", data, got, want)
		}
	}
	gotHosts, gotErr := parseHosts(data, quirks)
	wantHosts, wantErr := refParseHosts(data, quirks)
	sameError(t, data, gotErr, wantErr)
	if !reflect.DeepEqual(gotHosts, wantHosts) {
		t.Fatalf("parseHosts disagrees on %q: got %#v, want %#v", data, gotHosts, wantHosts)
	}
	if !exactDuplicates(data) {
		gotEp, gotErr := parseEndpoint(data)
		wantEp, wantErr := refParseEndpoint(data)
		sameError(t, data, gotErr, wantErr)
		if !reflect.DeepEqual(gotEp, wantEp) {
			t.Fatalf("parseEndpoint disagrees on %q: got %#v, want %#v", data, gotEp, wantEp)
		}
	}
}

// members returns the names of a JSON object's members in document
// order, as encoding/json decodes them, and their values.
func members(raw []byte) (names []string, values []json.RawMessage) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return names, values
		}
		var v json.RawMessage
		if dec.Decode(&v) != nil {
			return names, values
		}
		names = append(names, tok.(string))
		values = append(values, v)
	}
	return names, values
}

// refKeyOrder lists an object's member names in document order, once
// each: the order in which the reference visits its map.
func refKeyOrder(raw []byte) []string {
	names, _ := members(raw)
	seen := make(map[string]bool)
	var order []string
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			order = append(order, n)
		}
	}
	return order
}

// exactDuplicates reports whether the object raw names a member twice
// in the same spelling, which a Go map keeps once.
func exactDuplicates(raw []byte) bool {
	names, _ := members(raw)
	return len(refKeyOrder(raw)) != len(names)
}

// nestedDuplicates is exactDuplicates for the endpoint and exception
// headers' objects.
func nestedDuplicates(raw []byte) bool {
	names, values := members(raw)
	for i, n := range names {
		if k := strings.ToLower(n); (k == "endpoint" || k == "exception") && exactDuplicates(values[i]) {
			return true
		}
	}
	return false
}

// referenceDecode is Decoder.Decode as it was before the single-pass
// scanner.
func referenceDecode(dec Decoder, data []byte) (*Dispatch, error) {
	d, err := refDecodeHeaders(dec, data)
	if err != nil {
		return d, err
	}
	if dec.Quirks {
		refComplete(dec, d)
	}
	return d, d.Validate()
}

func refDecodeHeaders(dec Decoder, data []byte) (*Dispatch, error) {
	maxSize := dec.MaxSize
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if len(data) > maxSize {
		return nil, Errorf(ErrTooLarge, "%d bytes exceeds the limit of %d", len(data), maxSize)
	}
	// Invalid UTF-8 is refused as a whole, before anything else is read.
	if !utf8.Valid(data) {
		return nil, Errorf(ErrBadDispatch, "not valid UTF-8")
	}
	maxDepth := dec.MaxDepth
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	if err := refCheckDepth(data, maxDepth); err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, Errorf(ErrBadDispatch, "not a JSON object: %s", refJsonErrText(err))
	}
	if fields == nil {
		return nil, Errorf(ErrBadDispatch, "not a JSON object: null")
	}
	d := &Dispatch{}
	err := d.refFromFields(fields, refKeyOrder(data), dec.Quirks)
	return d, err
}

// refUnmarshalJSON was Dispatch.UnmarshalJSON: it decodes the headers without semantic validation (use
// Decode for untrusted input: it also applies the limits and Validate).
func refUnmarshalJSON(d *Dispatch, data []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return Errorf(ErrBadDispatch, "not a JSON object: %s", refJsonErrText(err))
	}
	*d = Dispatch{}
	return d.refFromFields(fields, refKeyOrder(data), false)
}

func (d *Dispatch) refFromFields(fields map[string]json.RawMessage, order []string, quirks bool) error {
	var firstErr error
	fail := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	seen := make(map[string]string, len(fields))
	for _, name := range order {
		raw := fields[name]
		key := refLower(name)
		if prev, dup := seen[key]; dup {
			fail(Errorf(ErrBadDispatch, "header %q given twice (as %q and %q)", key, prev, name))
			continue
		}
		seen[key] = name
		if quirks && refIsNull(raw) && (key == "token" || key == "host" || key == "resource" || key == "body") {
			continue
		}
		var err error
		switch key {
		case "protocol":
			err = refUnmarshalHeader(key, raw, &d.Protocol, "an array of strings")
		case "method":
			var m string
			if err = refUnmarshalHeader(key, raw, &m, "a string"); err == nil {
				d.Method = strings.ToUpper(m)
			}
		case "resource":
			d.Resource, err = refParseScalars(key, raw, false)
			if d.Resource == nil && err == nil {
				d.Resource = []any{}
			}
		case "timestamp":
			d.Timestamp, err = refParseTimestamp(raw)
		case "token":
			if quirks && len(raw) > 0 && raw[0] == '"' {
				raw = append(append([]byte{'['}, raw...), ']')
			}
			d.Token, err = refParseScalars(key, raw, true)
			if d.Token == nil && err == nil {
				d.Token = []any{}
			}
		case "host":
			d.Host, err = refParseHosts(raw, quirks)
		case "body":
			d.Body = append(json.RawMessage(nil), raw...)
		case "endpoint":
			d.Endpoint, err = refParseEndpoint(raw)
		case "exception":
			d.Exception, err = refParseException(raw)
		default:
			d.Extra.Set(key, append(json.RawMessage(nil), raw...))
		}
		if err != nil {
			fail(err)
		}
	}
	return firstErr
}

// complete fills in what the Node engine leaves out.
func refComplete(dec Decoder, d *Dispatch) {
	if d.Timestamp == 0 {
		now := time.Now
		if dec.Now != nil {
			now = dec.Now
		}
		d.Timestamp = now().UnixMilli()
	}
	if d.Protocol == nil {
		d.Protocol = []string{"JSTP", Version}
	}
}

func refUnmarshalHeader(key string, raw json.RawMessage, v any, want string) error {
	if refIsNull(raw) {
		return Errorf(ErrBadDispatch, "header %q is null; want %s", key, want)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return Errorf(ErrBadDispatch, "header %q must be %s", key, want)
	}
	return nil
}

func refParseTimestamp(raw json.RawMessage) (int64, error) {
	s := string(raw)
	ts, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// 1.3656e12 is an integer written as a float; accept it exactly.
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != float64(int64(f)) {
			return 0, Errorf(ErrBadDispatch, "header \"timestamp\" must be an integer (Unix milliseconds), got %s", refClip(s))
		}
		ts = int64(f)
	}
	if ts <= 0 {
		return 0, Errorf(ErrBadDispatch, "header \"timestamp\" must be positive Unix milliseconds, got %s", refClip(s))
	}
	return ts, nil
}

// refParseScalars reads an array of strings, numbers and bools (and nulls
// when allowNull). Numbers are kept as their literal text.
func refParseScalars(key string, raw json.RawMessage, allowNull bool) ([]any, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil || (len(raw) > 0 && raw[0] != '[') {
		return nil, Errorf(ErrBadDispatch, "header %q must be an array", key)
	}
	out := make([]any, 0, len(elems))
	for i, e := range elems {
		v, ok := refParseScalar(e)
		if !ok || (v == nil && !allowNull) {
			kind := "strings, numbers or booleans"
			if allowNull {
				kind = "strings, numbers, booleans or nulls"
			}
			return out, Errorf(ErrBadDispatch, "header %q element %d is %s; want %s", key, i, refClip(string(e)), kind)
		}
		out = append(out, v)
	}
	return out, nil
}

// refParseScalar classifies an already-validated JSON value by its first byte.
func refParseScalar(raw json.RawMessage) (any, bool) {
	if len(raw) == 0 {
		return nil, false
	}
	switch c := raw[0]; {
	case c == '"':
		s, ok := refUnquote(raw)
		return s, ok
	case c == 't':
		return true, true
	case c == 'f':
		return false, true
	case c == 'n':
		return nil, true
	case c == '-' || (c >= '0' && c <= '9'):
		return json.Number(raw), true
	}
	return nil, false
}

// refUnquote decodes a JSON string, without encoding/json's reflection for
// the common case of plain text.
func refUnquote(raw json.RawMessage) (string, bool) {
	if len(raw) >= 2 && bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

func refParseHosts(raw json.RawMessage, quirks bool) ([]Host, error) {
	if quirks && len(raw) > 0 && raw[0] == '"' {
		raw = append(append([]byte{'['}, raw...), ']')
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil || raw[0] != '[' {
		return nil, Errorf(ErrBadDispatch, "header \"host\" must be an array of hosts")
	}
	out := make([]Host, 0, len(elems))
	for i, e := range elems {
		h, err := refParseHost(e)
		if err != nil {
			return out, Errorf(ErrBadDispatch, "header \"host\" element %d: %s", i, err)
		}
		out = append(out, h)
	}
	return out, nil
}

type refHostError string

func (e refHostError) Error() string { return string(e) }

func refParseHost(raw json.RawMessage) (Host, error) {
	if raw[0] == '"' {
		s, _ := refUnquote(raw)
		if s == "" {
			return Host{}, refHostError("empty host name")
		}
		return Host{Name: s}, nil
	}
	var parts []json.RawMessage
	if raw[0] != '[' || json.Unmarshal(raw, &parts) != nil || len(parts) == 0 || len(parts) > 3 {
		return Host{}, refHostError("want a string or [hostname, port, transport]")
	}
	var h Host
	if parts[0][0] != '"' {
		return Host{}, refHostError("hostname must be a string")
	}
	h.Name, _ = refUnquote(parts[0])
	if h.Name == "" {
		return Host{}, refHostError("empty host name")
	}
	if len(parts) > 1 && !refIsNull(parts[1]) {
		p, err := strconv.Atoi(string(parts[1]))
		if err != nil || p < 1 || p > 65535 {
			return Host{}, refHostError("port must be an integer from 1 to 65535")
		}
		h.Port = p
	}
	if len(parts) > 2 && !refIsNull(parts[2]) {
		if parts[2][0] != '"' {
			return Host{}, refHostError("transport must be a string")
		}
		t, _ := refUnquote(parts[2])
		h.Transport = strings.ToLower(t)
	}
	return h, nil
}

func refParseEndpoint(raw json.RawMessage) (*Endpoint, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil, Errorf(ErrBadDispatch, "header \"endpoint\" must be an object {method, resource}")
	}
	ep := &Endpoint{}
	for _, name := range refKeyOrder(raw) {
		v := fields[name]
		switch refLower(name) {
		case "method":
			if err := refUnmarshalHeader("endpoint.method", v, &ep.Method, "a string"); err != nil {
				return ep, err
			}
			ep.Method = strings.ToUpper(ep.Method)
		case "resource":
			if err := refUnmarshalHeader("endpoint.resource", v, &ep.Resource, "an array of strings"); err != nil {
				return ep, err
			}
		}
	}
	return ep, nil
}

func refParseException(raw json.RawMessage) (*ExceptionInfo, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil, Errorf(ErrBadDispatch, "header \"exception\" must be an object {code, message}")
	}
	x := &ExceptionInfo{}
	for _, name := range refKeyOrder(raw) {
		v := fields[name]
		switch refLower(name) {
		case "code":
			if err := refUnmarshalHeader("exception.code", v, &x.Code, "an integer"); err != nil {
				return x, err
			}
		case "message":
			if err := refUnmarshalHeader("exception.message", v, &x.Message, "a string"); err != nil {
				return x, err
			}
		}
	}
	return x, nil
}

// refCheckDepth rejects documents nested deeper than max, in one pass that
// allocates nothing, before the JSON parser recurses into them.
func refCheckDepth(data []byte, max int) error {
	depth := 0
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > max {
				return Errorf(ErrBadDispatch, "JSON nested deeper than %d levels", max)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

func refIsNull(raw json.RawMessage) bool { return string(raw) == "null" }

// refLower avoids an allocation for names that are already lowercase, which
// is every name a conforming engine sends.
func refLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' || c >= utf8.RuneSelf {
			return strings.ToLower(s)
		}
	}
	return s
}

func refJsonErrText(err error) string {
	var se *json.SyntaxError
	if e, ok := err.(*json.SyntaxError); ok {
		se = e
		return se.Error() + " at offset " + strconv.FormatInt(se.Offset, 10)
	}
	if _, ok := err.(*json.UnmarshalTypeError); ok {
		return "the document is a JSON " + strings.TrimPrefix(err.(*json.UnmarshalTypeError).Value, "")
	}
	return err.Error()
}

// refClip shortens echoed input so an exception never carries a megabyte.
func refClip(s string) string {
	if len(s) > 64 {
		return s[:61] + "..."
	}
	return s
}
