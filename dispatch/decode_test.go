package dispatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const pizza = `{"protocol":["JSTP","0.4"],"method":"GET","resource":["foods","pizza"],"timestamp":1365647440759,"token":["3434h5098asr34h3"],"host":["pizza.com.ar"],"body":{"message":"Let the cheese melt!"}}`

func TestDecodeValid(t *testing.T) {
	cases := []struct {
		name string
		in   string
		kind Kind
		want string // re-encoding, when it differs from in
	}{
		{"pizza", pizza, Regular, ""},
		{"header names are case-insensitive", `{"Protocol":["jstp","0.4"],"METHOD":"get","Resource":["a"],"TimeStamp":1}`, Regular,
			`{"protocol":["jstp","0.4"],"method":"GET","resource":["a"],"timestamp":1}`},
		{"numbers kept exactly", `{"protocol":["JSTP","0.4"],"method":"GET","resource":["users",97,1.50,1e400,-0,true],"timestamp":1,"token":[null,3]}`, Regular, ""},
		{"unknown headers kept", `{"protocol":["JSTP","0.4"],"method":"POST","resource":["a"],"timestamp":1,"X-Trace":{"id":[1,2]},"referer":"r"}`, Regular,
			`{"protocol":["JSTP","0.4"],"method":"POST","resource":["a"],"timestamp":1,"referer":"r","x-trace":{"id":[1,2]}}`},
		{"host tuple form", `{"protocol":["JSTP","0.4"],"method":"GET","resource":["a"],"timestamp":1,"host":[["localhost",33333,"tcp"],"peer",["ws.example",8080,"WS"]]}`, Regular,
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["a"],"timestamp":1,"host":[["localhost",33333,"tcp"],"peer",["ws.example",8080,"ws"]]}`},
		{"bind", `{"protocol":["JSTP","0.4"],"method":"BIND","endpoint":{"method":"post","resource":["chat","*",":room","..."]},"timestamp":1}`, Subscription,
			`{"protocol":["JSTP","0.4"],"method":"BIND","endpoint":{"method":"POST","resource":["chat","*",":room","..."]},"timestamp":1}`},
		{"release any method", `{"protocol":["JSTP","0.6"],"method":"RELEASE","endpoint":{"method":"*","resource":["a"]},"timestamp":1}`, Subscription, ""},
		{"answer", `{"protocol":["JSTP","0.5"],"method":"ANSWER","resource":[200,"tx","trig"],"timestamp":1,"body":"ok"}`, Answer, ""},
		{"whole-transaction answer", `{"protocol":["JSTP","0.5"],"method":"ANSWER","resource":[404,"tx"],"timestamp":1}`, Answer, ""},
		{"exception", `{"protocol":["JSTP","0.4"],"timestamp":1,"exception":{"code":400,"message":"bad"}}`, Exception, ""},
		{"body of any kind", `{"protocol":["JSTP","0.4"],"method":"PUT","resource":["a"],"timestamp":1,"body":[1,{"x":null},"\u2028"]}`, Regular,
			`{"protocol":["JSTP","0.4"],"method":"PUT","resource":["a"],"timestamp":1,"body":[1,{"x":null},"\u2028"]}`},
		{"multi-line body compacted", "{\"protocol\":[\"JSTP\",\"0.4\"],\"method\":\"PUT\",\"resource\":[\"a\"],\"timestamp\":1,\"body\":{\n  \"a\": 1\n}}", Regular,
			`{"protocol":["JSTP","0.4"],"method":"PUT","resource":["a"],"timestamp":1,"body":{"a":1}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := Decode([]byte(c.in))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if d.Kind() != c.kind {
				t.Fatalf("kind = %v, want %v", d.Kind(), c.kind)
			}
			want := c.want
			if want == "" {
				want = c.in
			}
			got, _ := d.MarshalJSON()
			if string(got) != want {
				t.Fatalf("encoded\n got %s\nwant %s", got, want)
			}
			// Round trip: decode → encode → decode → encode is stable.
			d2, err := Decode(got)
			if err != nil {
				t.Fatalf("re-decode: %v", err)
			}
			if got2, _ := d2.MarshalJSON(); !bytes.Equal(got, got2) {
				t.Fatalf("round trip changed\n%s\n%s", got, got2)
			}
		})
	}
}

func TestDecodeInvalid(t *testing.T) {
	const p = `"protocol":["JSTP","0.4"],`
	cases := []struct {
		name, in string
		code     int
		msg      string
	}{
		{"not JSON", `{"protocol":`, 400, "not a JSON object"},
		{"not an object", `["JSTP"]`, 400, "array"},
		{"null", `null`, 400, "null"},
		{"missing protocol", `{"method":"GET","resource":["a"],"timestamp":1}`, 400, `missing header "protocol"`},
		{"not JSTP", `{"protocol":["HTTP","0.4"],"method":"GET","resource":["a"],"timestamp":1}`, 400, "JSTP"},
		{"no version", `{"protocol":["JSTP"],"method":"GET","resource":["a"],"timestamp":1}`, 400, "version"},
		{"unsupported version", `{"protocol":["JSTP","1.0"],"method":"GET","resource":["a"],"timestamp":1}`, 505, `"1.0"`},
		{"missing method", `{` + p + `"resource":["a"],"timestamp":1}`, 400, `missing header "method"`},
		{"unknown method", `{` + p + `"method":"FETCH","resource":["a"],"timestamp":1}`, 405, `"FETCH"`},
		{"method not a string", `{` + p + `"method":7,"resource":["a"],"timestamp":1}`, 400, `"method" must be a string`},
		{"missing resource", `{` + p + `"method":"GET","timestamp":1}`, 400, `missing header "resource"`},
		{"empty resource", `{` + p + `"method":"GET","resource":[],"timestamp":1}`, 400, "empty"},
		{"empty resource element", `{` + p + `"method":"GET","resource":["a",""],"timestamp":1}`, 400, "element 1"},
		{"object in resource", `{` + p + `"method":"GET","resource":[{}],"timestamp":1}`, 400, "element 0"},
		{"null in resource", `{` + p + `"method":"GET","resource":[null],"timestamp":1}`, 400, "element 0"},
		{"missing timestamp", `{` + p + `"method":"GET","resource":["a"]}`, 400, `missing header "timestamp"`},
		{"fractional timestamp", `{` + p + `"method":"GET","resource":["a"],"timestamp":1.5}`, 400, "integer"},
		{"string timestamp", `{` + p + `"method":"GET","resource":["a"],"timestamp":"1"}`, 400, "integer"},
		{"token not array", `{` + p + `"method":"GET","resource":["a"],"timestamp":1,"token":"t"}`, 400, `"token" must be an array`},
		{"token with object", `{` + p + `"method":"GET","resource":["a"],"timestamp":1,"token":[{}]}`, 400, "token"},
		{"resource on BIND", `{` + p + `"method":"BIND","resource":["a"],"endpoint":{"method":"GET","resource":["a"]},"timestamp":1}`, 400, "illegal on BIND"},
		{"endpoint on GET", `{` + p + `"method":"GET","resource":["a"],"endpoint":{"method":"GET","resource":["a"]},"timestamp":1}`, 400, "illegal on GET"},
		{"BIND without endpoint", `{` + p + `"method":"BIND","timestamp":1}`, 400, `missing header "endpoint"`},
		{"endpoint bad method", `{` + p + `"method":"BIND","endpoint":{"method":"FETCH","resource":["a"]},"timestamp":1}`, 405, "FETCH"},
		{"endpoint empty pattern", `{` + p + `"method":"BIND","endpoint":{"method":"GET","resource":[]},"timestamp":1}`, 400, "empty"},
		{"endpoint bad capture", `{` + p + `"method":"BIND","endpoint":{"method":"GET","resource":[":"]},"timestamp":1}`, 400, "needs a name"},
		{"answer without tx", `{` + p + `"method":"ANSWER","resource":[200],"timestamp":1}`, 400, "ANSWER resource"},
		{"answer code not number", `{` + p + `"method":"ANSWER","resource":["200","tx"],"timestamp":1}`, 400, "ANSWER resource"},
		{"bad exception code", `{` + p + `"timestamp":1,"exception":{"code":42,"message":"x"}}`, 400, "status code"},
		{"host not array", `{` + p + `"method":"GET","resource":["a"],"timestamp":1,"host":"h"}`, 400, "host"},
		{"host bad port", `{` + p + `"method":"GET","resource":["a"],"timestamp":1,"host":[["h",70000,"tcp"]]}`, 400, "port"},
		{"duplicate header", `{` + p + `"method":"GET","Method":"POST","resource":["a"],"timestamp":1}`, 400, "twice"},
		{"too deep", `{` + p + `"method":"GET","resource":["a"],"timestamp":1,"body":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, 400, "deeper"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode([]byte(c.in))
			if err == nil {
				t.Fatal("accepted")
			}
			if Code(err) != c.code {
				t.Fatalf("code = %d (%v), want %d", Code(err), err, c.code)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("message %q does not mention %q", err, c.msg)
			}
		})
	}
}

func TestDecodeSizeLimit(t *testing.T) {
	big := `{"protocol":["JSTP","0.4"],"method":"POST","resource":["a"],"timestamp":1,"body":"` + strings.Repeat("x", 2000) + `"}`
	if _, err := (Decoder{MaxSize: 1000}).Decode([]byte(big)); Code(err) != 413 || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want 413", err)
	}
	if _, err := (Decoder{MaxSize: 4000}).Decode([]byte(big)); err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(make([]byte, DefaultMaxSize+1)); Code(err) != 413 {
		t.Fatalf("default limit not applied: %v", err)
	}
}

func TestDecodeKeepsPartialHeadersOnError(t *testing.T) {
	d, err := Decode([]byte(`{"protocol":["JSTP","0.4"],"method":"FETCH","resource":["a"],"timestamp":1,"token":["tx"]}`))
	if err == nil || d == nil || d.TransactionID() != "tx" {
		t.Fatalf("d = %v, err = %v: the token is needed to address the exception", d, err)
	}
	x := NewException(err, d)
	if x.Exception.Code != 405 || x.TransactionID() != "tx" || x.Validate() != nil {
		t.Fatalf("exception = %s", x)
	}
}

func TestQuirks(t *testing.T) {
	now := time.UnixMilli(1700000000000)
	dec := Decoder{Quirks: true, Now: func() time.Time { return now }}
	// What the Node engine sends: no timestamp, host tuples, token as a
	// string, referer, a null body.
	d, err := dec.Decode([]byte(`{"protocol":["JSTP","0.4"],"method":"get","resource":["Anyway"],"token":"abc","host":[["localhost",33333,"tcp"]],"referer":[["localhost",4444,"tcp"]],"body":null}`))
	if err != nil {
		t.Fatal(err)
	}
	if d.Timestamp != now.UnixMilli() || d.TransactionID() != "abc" || d.Method != "GET" || d.Body != nil {
		t.Fatalf("quirks decode = %s", d)
	}
	if _, err := Decode([]byte(`{"protocol":["JSTP","0.4"],"method":"get","resource":["Anyway"]}`)); err == nil {
		t.Fatal("strict mode accepted a missing timestamp")
	}
}

func TestUnmarshalJSONInterop(t *testing.T) {
	var d Dispatch
	if err := json.Unmarshal([]byte(pizza), &d); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(&d)
	if err != nil || string(out) != pizza {
		t.Fatalf("json.Marshal = %s, %v", out, err)
	}
}

func TestEncodeEscapes(t *testing.T) {
	d := New("POST", "line\nbreak", "quote\"", "tab\t", "bad\xffutf8", "\x01")
	out, _ := d.MarshalJSON()
	if bytes.ContainsAny(out, "\n\r") {
		t.Fatalf("raw newline in %s", out)
	}
	back, err := Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"line\nbreak", "quote\"", "tab\t", "bad\ufffdutf8", "\x01"}
	for i, w := range want {
		if back.Resource[i] != w {
			t.Errorf("element %d = %q, want %q", i, back.Resource[i], w)
		}
	}
}

func TestConstructors(t *testing.T) {
	a := NewAnswer(200, "tx", "trig", json.RawMessage(`{"ok":true}`))
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if c, tx, tr, ok := a.AnswerInfo(); !ok || c != 200 || tx != "tx" || tr != "trig" {
		t.Fatalf("AnswerInfo = %d %q %q %v", c, tx, tr, ok)
	}
	x := NewException(Errorf(ErrNotFound, "no such pizza"), nil)
	if x.Validate() != nil || x.Exception.Code != 404 || x.Method != "" || x.Resource != nil {
		t.Fatalf("exception = %s", x)
	}
	s := NewSubscription("bind", Endpoint{Method: "post", Resource: []string{"a", "*"}})
	if s.Validate() != nil || s.Kind() != Subscription || s.Endpoint.Method != "POST" {
		t.Fatalf("subscription = %s", s)
	}
}

func TestCodeMapping(t *testing.T) {
	for _, c := range codes {
		if got := Code(Errorf(c.err, "detail")); got != c.code {
			t.Errorf("%v → %d, want %d", c.err, got, c.code)
		}
		if ErrorForCode(c.code) != c.err {
			t.Errorf("ErrorForCode(%d) wrong", c.code)
		}
	}
	if Code(nil) != 200 || Code(errors.New("x")) != 500 {
		t.Fatal("nil or unknown errors mapped wrongly")
	}
	remote := &CodeError{Code: 404, Message: "gone"}
	if !errors.Is(remote, ErrNotFound) || Code(remote) != 404 {
		t.Fatal("CodeError does not map")
	}
}

func TestDecodeRefusesInvalidUTF8AndLongHostChains(t *testing.T) {
	for _, tc := range []struct {
		name, in string
	}{
		{"invalid UTF-8 in the body", "{\"protocol\":[\"JSTP\",\"0.4\"],\"method\":\"POST\",\"resource\":[\"x\"],\"timestamp\":1,\"body\":\"\xff\xfe\"}"},
		{"invalid UTF-8 in a resource", "{\"protocol\":[\"JSTP\",\"0.4\"],\"method\":\"GET\",\"resource\":[\"\xc3\x28\"],\"timestamp\":1}"},
		{"a host chain over the limit", `{"protocol":["JSTP","0.4"],"method":"GET","resource":["x"],"timestamp":1,"host":[` + strings.Repeat(`"a",`, MaxHostChain) + `"a"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode([]byte(tc.in)); Code(err) != 400 {
				t.Fatalf("err = %v, want 400", err)
			}
		})
	}
	ok := `{"protocol":["JSTP","0.4"],"method":"GET","resource":["é"],"timestamp":1,"host":[` + strings.Repeat(`"a",`, MaxHostChain-1) + `"a"]}`
	if _, err := Decode([]byte(ok)); err != nil {
		t.Fatalf("valid UTF-8 and a chain at the limit: %v", err)
	}
}
