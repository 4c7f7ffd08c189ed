package dispatch

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// notationDecoder stamps with a fixed clock: 1365647440759 is the timestamp
// of PROTOCOL.md's example.
var notationDecoder = Decoder{Now: func() time.Time { return time.UnixMilli(1365647440759) }}

const exampleTS = `"timestamp":1365647440759`

// Peer ids as libp2p prints them (Ed25519 keys).
const (
	testPeerID  = "12D3KooWD38BfNt3v9Mu62cntcC9FSoaKsmy2VvTk2Tab9ZzaCB9"
	testPeerID2 = "12D3KooWLGbwSDTiPGUsuV8apcF9u24Z4DQvtJorY9AoZWx6LLZ7"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in, json string
		norm     string // normal form, when it differs from in
	}{
		{"jstp://pizza.com.ar/foods/pizza",
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["foods","pizza"],` + exampleTS + `,"host":["pizza.com.ar"]}`, ""},
		{"GET jstp://pizza.com.ar/foods/pizza",
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["foods","pizza"],` + exampleTS + `,"host":["pizza.com.ar"]}`,
			"jstp://pizza.com.ar/foods/pizza"},
		{"jstp:///foods/pizza",
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["foods","pizza"],` + exampleTS + `}`, ""},
		{"post JSTP://a,b,c/foods/pizza",
			`{"protocol":["JSTP","0.4"],"method":"POST","resource":["foods","pizza"],` + exampleTS + `,"host":["a","b","c"]}`,
			"POST jstp://a,b,c/foods/pizza"},
		{"jstp://h/users/97/-1.5e3/true/false/null",
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["users",97,-1.5e3,true,false,"null"],` + exampleTS + `,"host":["h"]}`, ""},
		{"jstp://h/users/'97/'true/097/+1/1./'it's",
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["users","97","true","097","+1","1.","it's"],` + exampleTS + `,"host":["h"]}`,
			"jstp://h/users/'97/'true/097/+1/1./it's"},
		{"jstp://h/%27q/a%2Fb/caf%c3%a9/%E2%82%AC/sp%20ace/%3F%23/a:b@c;d=e,f",
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["'q","a/b","café","€","sp ace","?#","a:b@c;d=e,f"],` + exampleTS + `,"host":["h"]}`,
			"jstp://h/%27q/a%2Fb/caf%C3%A9/%E2%82%AC/sp%20ace/%3F%23/a:b@c;d=e,f"},
		{"jstp://localhost:33333,[::1]:80;ws,edge;quic,b:8;/x",
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["x"],` + exampleTS + `,"host":[["localhost",33333,"tcp"],["::1",80,"ws"],["edge",null,"quic"],["b",8]]}`, ""},
		{"jstp://%2Fip4%2F10.0.0.1%2Ftcp%2F4001,12D3KooWAbc/x",
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["x"],` + exampleTS + `,"host":["/ip4/10.0.0.1/tcp/4001","12D3KooWAbc"]}`, ""},
		// A peer's multiaddr pasted whole, as `jstp-peer up` prints it.
		{"jstp:///ip4/127.0.0.1/tcp/4033/p2p/" + testPeerID + "/peer",
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["peer"],` + exampleTS + `,"host":["/ip4/127.0.0.1/tcp/4033/p2p/` + testPeerID + `"]}`,
			"jstp://%2Fip4%2F127.0.0.1%2Ftcp%2F4033%2Fp2p%2F" + testPeerID + "/peer"},
		{"POST jstp:///dns4/relay.example/udp/4001/quic-v1/p2p/" + testPeerID + "/p2p-circuit/p2p/" + testPeerID2 + "/news/97",
			`{"protocol":["JSTP","0.4"],"method":"POST","resource":["news",97],` + exampleTS + `,"host":["/dns4/relay.example/udp/4001/quic-v1/p2p/` + testPeerID + `/p2p-circuit/p2p/` + testPeerID2 + `"]}`,
			"POST jstp://%2Fdns4%2Frelay.example%2Fudp%2F4001%2Fquic-v1%2Fp2p%2F" + testPeerID + "%2Fp2p-circuit%2Fp2p%2F" + testPeerID2 + "/news/97"},
		{"jstp:///p2p/" + testPeerID + "/echo/x",
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["echo","x"],` + exampleTS + `,"host":["/p2p/` + testPeerID + `"]}`,
			"jstp://%2Fp2p%2F" + testPeerID + "/echo/x"},
		{"BIND POST jstp:///ip6/::1/tcp/4033/p2p/" + testPeerID + "/news/*",
			`{"protocol":["JSTP","0.4"],"method":"BIND","endpoint":{"method":"POST","resource":["news","*"]},` + exampleTS + `,"host":["/ip6/::1/tcp/4033/p2p/` + testPeerID + `"]}`,
			"BIND POST jstp://[%2Fip6%2F::1%2Ftcp%2F4033%2Fp2p%2F" + testPeerID + "]/news/*"},
		// Resources that only start like a multiaddr stay resources, and
		// the normal form escapes one that would not.
		{"jstp:///ip4/tcp/p2p/short/x",
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["ip4","tcp","p2p","short","x"],` + exampleTS + `}`, ""},
		{"jstp:///IP4/1.2.3.4/p2p/" + testPeerID + "/x",
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["IP4","1.2.3.4","p2p","` + testPeerID + `","x"],` + exampleTS + `}`, ""},
		{"jstp:///%69p4/1.2.3.4/p2p/" + testPeerID + "/x",
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["ip4","1.2.3.4","p2p","` + testPeerID + `","x"],` + exampleTS + `}`, ""},
		{"jstp://localhost/p2p/" + testPeerID,
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["p2p","` + testPeerID + `"],` + exampleTS + `,"host":["localhost"]}`, ""},
		{"BIND * jstp:///%70" + "2p/" + testPeerID + "/x",
			`{"protocol":["JSTP","0.4"],"method":"BIND","endpoint":{"method":"*","resource":["p2p","` + testPeerID + `","x"]},` + exampleTS + `}`, ""},
		{"BIND POST jstp://host/foods/*",
			`{"protocol":["JSTP","0.4"],"method":"BIND","endpoint":{"method":"POST","resource":["foods","*"]},` + exampleTS + `,"host":["host"]}`, ""},
		{"bind jstp:///path/.../text/.../:ext",
			`{"protocol":["JSTP","0.4"],"method":"BIND","endpoint":{"method":"GET","resource":["path","...","text","...",":ext"]},` + exampleTS + `}`,
			"BIND GET jstp:///path/.../text/.../:ext"},
		{"RELEASE * jstp:///users/97/%5C*",
			`{"protocol":["JSTP","0.4"],"method":"RELEASE","endpoint":{"method":"*","resource":["users","97","\\*"]},` + exampleTS + `}`, ""},
		{"ANSWER jstp:///200/6f1c/trig",
			`{"protocol":["JSTP","0.4"],"method":"ANSWER","resource":[200,"6f1c","trig"],` + exampleTS + `}`, ""},
		{"  DELETE\tjstp://h/x  \n",
			`{"protocol":["JSTP","0.4"],"method":"DELETE","resource":["x"],` + exampleTS + `,"host":["h"]}`,
			"DELETE jstp://h/x"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			d, err := notationDecoder.ParseURL(tc.in)
			if err != nil {
				t.Fatalf("ParseURL: %v", err)
			}
			if got := d.String(); got != tc.json {
				t.Fatalf("ParseURL\n got  %s\n want %s", got, tc.json)
			}
			norm := tc.norm
			if norm == "" {
				norm = tc.in
			}
			u, err := FormatURL(d)
			if err != nil {
				t.Fatalf("FormatURL: %v", err)
			}
			if u != norm {
				t.Fatalf("FormatURL = %q, want %q", u, norm)
			}
			crossCheck(t, d)
		})
	}
}

// wantNotationErr checks that err maps to code and says what is wrong.
func wantNotationErr(t *testing.T, err error, code int, says string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %d %q", code, says)
	}
	if Code(err) != code {
		t.Fatalf("error %q maps to %d, want %d", err, Code(err), code)
	}
	if !strings.Contains(err.Error(), says) {
		t.Fatalf("error %q does not say %q", err, says)
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		code int
		says string
	}{
		{"", 400, "empty"},
		{"http://h/x", 400, "jstp://"},
		{"jstp://h", 400, "no path"},
		{"jstp://h/", 400, `"resource" is empty`},
		{"jstp://h//x", 400, "element 0 is empty"},
		{"jstp://h/x/", 400, "element 1 is empty"},
		{"jstp://h/x?q=1", 400, "queries and fragments"},
		{"jstp://h/x#top", 400, "queries and fragments"},
		{"jstp://h/%zz", 400, "not a %XX escape"},
		{"jstp://h/%4", 400, "not a %XX escape"},
		{"jstp://h/%C3", 400, "not UTF-8"},
		{"jstp://h/%00", 200, ""}, // an escaped NUL is a fine string
		{"jstp://a,,b/x", 400, "host element 1"},
		{"jstp://h:0/x", 400, "port"},
		{"jstp://h:65536/x", 400, "port"},
		{"jstp://h:80x/x", 400, "port"},
		{"jstp://[::1/x", 400, "without"},
		{"jstp://[::1]x/x", 400, "unexpected"},
		{"jstp://user@h/x", 400, `'@'`},
		{"jstp://h/x\njstp://h/y", 400, "one line"},
		{"FOO jstp://h/x", 405, "unknown method"},
		{"GET POST jstp://h/x", 400, "only BIND and RELEASE"},
		{"BIND POST GET jstp://h/x", 400, "too many words"},
		{"BIND FOO jstp://h/x", 405, "endpoint method"},
		{"BIND jstp://h/x/:", 400, "needs a name"},
		{"ANSWER jstp://h/x/tx", 400, "ANSWER resource"},
		{"jstp:///ip4/127.0.0.1/tcp/4033/p2p/" + testPeerID, 400, "must be followed by a resource"},
		{"jstp:///ip4/127.0.0.1/tcp/4033/p2p/" + testPeerID + "/", 400, `"resource" is empty`},
		{"jstp:///ip4/127.0.0.1/tcp/4033%zz/p2p/" + testPeerID + "/x", 400, "not a %XX escape"},
		{strings.Repeat("a", DefaultMaxSize+1), 413, "exceeds"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := notationDecoder.ParseURL(tc.in)
			if tc.code == 200 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantNotationErr(t, err, tc.code, tc.says)
		})
	}
}

func TestParseEndpointURL(t *testing.T) {
	for _, tc := range []struct {
		in, hosts, ep, norm string
	}{
		{"POST jstp://host/foods/*", "host", "POST /foods/*", ""},
		{"jstp:///foods/*", "", "GET /foods/*", "GET jstp:///foods/*"},
		{"* jstp://a,b:1/path/.../:ext", "a,b:1/tcp", "* /path/.../:ext", ""},
		{"bind jstp:///users", "", "BIND /users", "BIND jstp:///users"},
	} {
		hosts, ep, err := ParseEndpointURL(tc.in)
		if err != nil {
			t.Errorf("ParseEndpointURL(%q): %v", tc.in, err)
			continue
		}
		var hs []string
		for _, h := range hosts {
			hs = append(hs, h.String())
		}
		if got := strings.Join(hs, ","); got != tc.hosts || ep.String() != tc.ep {
			t.Errorf("ParseEndpointURL(%q) = %q, %q; want %q, %q", tc.in, got, ep, tc.hosts, tc.ep)
		}
		norm := tc.norm
		if norm == "" {
			norm = tc.in
		}
		if got := FormatEndpointURL(hosts, ep); got != norm {
			t.Errorf("FormatEndpointURL = %q, want %q", got, norm)
		}
	}
	for _, tc := range []struct {
		in   string
		code int
		says string
	}{
		{"GET POST jstp://h/x", 400, "one method"},
		{"FOO jstp://h/x", 405, "not a JSTP method"},
		{"GET jstp://h/", 400, "pattern is empty"},
		{"GET jstp://h/a//b", 400, "empty"},
	} {
		_, _, err := ParseEndpointURL(tc.in)
		wantNotationErr(t, err, tc.code, tc.says)
	}
}

func TestFormatURLCannotCarry(t *testing.T) {
	base := func() *Dispatch {
		d := New(GET, "foods", "pizza")
		d.Host = []Host{{Name: "pizza.com.ar"}}
		return d
	}
	for _, tc := range []struct {
		name string
		edit func(d *Dispatch)
		says string
	}{
		{"body", func(d *Dispatch) { d.Body = []byte(`{"a":1}`) }, "a body"},
		{"token", func(d *Dispatch) { d.Token = []any{"tx"} }, "a token"},
		{"extra", func(d *Dispatch) { d.Extra = Headers{{Name: "referer", Value: json.RawMessage(`"x"`)}} }, `"referer"`},
		{"extensions", func(d *Dispatch) { d.Protocol = append(d.Protocol, "sig") }, "protocol extensions"},
		{"exception", func(d *Dispatch) { d.Exception = &ExceptionInfo{Code: 404, Message: "x"} }, "an exception"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := base()
			tc.edit(d)
			_, err := FormatURL(d)
			if !errors.Is(err, ErrURLCannotCarry) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("FormatURL: %v; want ErrURLCannotCarry naming %s", err, tc.says)
			}
		})
	}
	d := base()
	d.Resource = nil
	if _, err := FormatURL(d); Code(err) != 400 {
		t.Fatalf("FormatURL of an invalid dispatch: %v; want the validation error", err)
	}
}

// The example of PROTOCOL.md §1, byte for byte in both directions.
const protocolExample = `GET /foods/pizza JSTP/0.4
host: pizza.com.ar
timestamp: 1365647440759
token: 3434h5098asr34h3

message: Let the cheese melt!
`

func TestHTTPProtocolExample(t *testing.T) {
	d, err := ParseHTTP([]byte(protocolExample))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"protocol":["JSTP","0.4"],"method":"GET","resource":["foods","pizza"],"timestamp":1365647440759,` +
		`"token":["3434h5098asr34h3"],"host":["pizza.com.ar"],"body":{"message":"Let the cheese melt!"}}`
	if d.String() != want {
		t.Fatalf("ParseHTTP\n got  %s\n want %s", d, want)
	}
	if got := FormatHTTP(d); got != protocolExample {
		t.Fatalf("FormatHTTP\n%s\nwant\n%s", got, protocolExample)
	}
}

func TestParseHTTP(t *testing.T) {
	for _, tc := range []struct {
		name, in, json string
		norm           string // FormatHTTP's text, when it differs from in
	}{
		{"minimal, stamped now", "GET /foods/pizza\n",
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["foods","pizza"],` + exampleTS + `}`,
			"GET /foods/pizza JSTP/0.4\ntimestamp: 1365647440759\n"},
		{"crlf, case, repeated host and token lines", "\r\npost /users/97/'97 jstp/0.4\r\nHost: a, b:33333\r\nHOST: [::1]:1;ws, /ip4/1.2.3.4/tcp/1\r\nToken: tx, 7\r\ntoken: null, ', 'null\r\n",
			`{"protocol":["jstp","0.4"],"method":"POST","resource":["users",97,"97"],` + exampleTS + `,"token":["tx",7,null,"","null"],"host":["a",["b",33333,"tcp"],["::1",1,"ws"],"/ip4/1.2.3.4/tcp/1"]}`,
			"POST /users/97/'97 jstp/0.4\nhost: a, b:33333, [::1]:1;ws, /ip4/1.2.3.4/tcp/1\ntimestamp: 1365647440759\ntoken: tx, 7, null, ', 'null\n"},
		{"JSON arrays for host and token", "GET /x JSTP/0.4\nhost: [\"a\", [\"b\", 1, \"TCP\"]]\ntoken: [\"t\", null, 1]\n",
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["x"],` + exampleTS + `,"token":["t",null,1],"host":["a",["b",1,"tcp"]]}`,
			"GET /x JSTP/0.4\nhost: a, b:1\ntimestamp: 1365647440759\ntoken: t, null, 1\n"},
		{"unknown headers", "GET /x JSTP/0.4\ntimestamp: 5\nx-json: {\"a\": [1, 2]}\nx-num: 12\nx-str: \"12\"\nx-text: hello world\nx-empty:\n\"odd name\": yes\n",
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["x"],"timestamp":5,"odd name":"yes","x-empty":"","x-json":{"a": [1, 2]},"x-num":12,"x-str":"12","x-text":"hello world"}`,
			"GET /x JSTP/0.4\ntimestamp: 5\n\"odd name\": yes\nx-empty:\nx-json: {\"a\": [1, 2]}\nx-num: 12\nx-str: \"12\"\nx-text: hello world\n"},
		{"BIND", "BIND POST /foods/* JSTP/0.4\ntimestamp: 5\n",
			`{"protocol":["JSTP","0.4"],"method":"BIND","endpoint":{"method":"POST","resource":["foods","*"]},"timestamp":5}`, ""},
		{"RELEASE defaults to a GET endpoint", "RELEASE /a/:id JSTP/0.6\ntimestamp: 5\n",
			`{"protocol":["JSTP","0.6"],"method":"RELEASE","endpoint":{"method":"GET","resource":["a",":id"]},"timestamp":5}`,
			"RELEASE GET /a/:id JSTP/0.6\ntimestamp: 5\n"},
		{"ANSWER", "ANSWER /200/txid/trigid JSTP/0.4\ntimestamp: 5\ntoken: txid, trigid\n",
			`{"protocol":["JSTP","0.4"],"method":"ANSWER","resource":[200,"txid","trigid"],"timestamp":5,"token":["txid","trigid"]}`, ""},
		{"exception", "JSTP/0.4 404 not found: nothing bound\ntimestamp: 5\nmethod: GET\nresource: /foods/pizza\n",
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["foods","pizza"],"timestamp":5,"exception":{"code":404,"message":"not found: nothing bound"}}`, ""},
		{"exception with a quoted message and an endpoint", "JSTP/0.4 406 \"two\\nlines \"\ntimestamp: 5\nmethod: RELEASE\nendpoint: GET /a\n",
			`{"protocol":["JSTP","0.4"],"method":"RELEASE","endpoint":{"method":"GET","resource":["a"]},"timestamp":5,"exception":{"code":406,"message":"two\nlines "}}`, ""},
		{"protocol extensions", "PUT /x JSTP/0.4/sig/a%2Fb\ntimestamp: 5\n",
			`{"protocol":["JSTP","0.4","sig","a/b"],"method":"PUT","resource":["x"],"timestamp":5}`, ""},
		{"JSON body over lines", "PATCH /x JSTP/0.4\ntimestamp: 5\n\n{\"a\": 1,\n \"b\": [true]}\n",
			`{"protocol":["JSTP","0.4"],"method":"PATCH","resource":["x"],"timestamp":5,"body":{"a":1,"b":[true]}}`, ""},
		{"text body", "POST /x JSTP/0.4\ntimestamp: 5\n\n\nhello\nworld: not an object\n\n",
			`{"protocol":["JSTP","0.4"],"method":"POST","resource":["x"],"timestamp":5,"body":"hello\nworld: not an object"}`,
			"POST /x JSTP/0.4\ntimestamp: 5\n\nhello\nworld: not an object\n"},
		{"key-value body", "POST /x JSTP/0.4\ntimestamp: 5\n\nname: Margherita\nsize:\nprice: 8.50\n",
			`{"protocol":["JSTP","0.4"],"method":"POST","resource":["x"],"timestamp":5,"body":{"name":"Margherita","size":"","price":"8.50"}}`, ""},
		{"a URL is not a key", "POST /x JSTP/0.4\ntimestamp: 5\n\nhttp://example.com\n",
			`{"protocol":["JSTP","0.4"],"method":"POST","resource":["x"],"timestamp":5,"body":"http://example.com"}`, ""},
		{"string body that needs quotes", "POST /x JSTP/0.4\ntimestamp: 5\n\n\"a: b\"\n",
			`{"protocol":["JSTP","0.4"],"method":"POST","resource":["x"],"timestamp":5,"body":"a: b"}`, ""},
		{"number body", "POST /x JSTP/0.4\ntimestamp: 5\n\n42\n",
			`{"protocol":["JSTP","0.4"],"method":"POST","resource":["x"],"timestamp":5,"body":42}`, ""},
		{"blank line, no body", "GET /x JSTP/0.4\ntimestamp: 5\n\n  \n",
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["x"],"timestamp":5}`,
			"GET /x JSTP/0.4\ntimestamp: 5\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := notationDecoder.ParseHTTP([]byte(tc.in))
			if err != nil {
				t.Fatalf("ParseHTTP: %v", err)
			}
			if got := d.String(); got != tc.json {
				t.Fatalf("ParseHTTP\n got  %s\n want %s", got, tc.json)
			}
			norm := tc.norm
			if norm == "" {
				norm = tc.in
			}
			if got := FormatHTTP(d); got != norm {
				t.Fatalf("FormatHTTP\n got  %q\n want %q", got, norm)
			}
			crossCheck(t, d)
		})
	}
}

func TestParseHTTPErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		code     int
		says     string
	}{
		{"empty", "\n \n", 400, "empty input"},
		{"unknown method", "FOO /x JSTP/0.4\n", 405, "unknown method"},
		{"unsupported version", "GET /x JSTP/0.9\n", 505, `"0.9" is not supported`},
		{"no version number", "GET /x JSTP\n", 400, "must name a version"},
		{"no resource", "GET JSTP/0.4\n", 400, `missing header "resource"`},
		{"resource on BIND", "BIND GET /x JSTP/0.4\nresource: /y\n", 400, "illegal on BIND"},
		{"second method on GET", "GET POST /x JSTP/0.4\n", 400, "line 1: \"GET POST\": only BIND and RELEASE"},
		{"path without slash", "GET x JSTP/0.4\n", 400, "line 1: path must start"},
		{"bad escape", "GET /a%G0\n", 400, "line 1: path element 0"},
		{"empty element", "GET /a//b\n", 400, "line 1: path element 1 is empty"},
		{"exception without code", "JSTP/0.4\n", 400, "line 1: an exception's start line"},
		{"exception code", "JSTP/0.4 abc\n", 400, "line 1: exception code"},
		{"exception code range", "JSTP/0.4 42 x\n", 400, "not a status code"},
		{"no colon", "GET /x\nhost pizza\n", 400, "line 2: want a header line"},
		{"bad header name", "GET /x\nx y: 1\n", 400, "line 2: header name"},
		{"continuation", "GET /x\nx-a: 1\n  more\n", 400, "line 3: a line starting with white space"},
		{"duplicate", "GET /x\ntimestamp: 1\nx-a: 1\ntimestamp: 2\n", 400, `line 4: header "timestamp" given twice (first on line 2)`},
		{"duplicate unknown", "GET /x\nX-A: 1\nx-a: 2\n", 400, "line 3:"},
		{"timestamp", "GET /x\n\ntimestamp: soon\n", 200, ""}, // after the blank line: a body
		{"bad timestamp", "GET /x\ntimestamp: soon\n", 400, "line 2: header \"timestamp\" must be an integer"},
		{"zero timestamp", "GET /x\ntimestamp: 0\n", 400, "line 2:"},
		{"protocol header", "GET /x\nprotocol: JSTP/0.4\n", 400, "line 2: the protocol goes"},
		{"body header", "GET /x\nbody: hi\n", 400, "line 2: the body goes after a blank line"},
		{"exception header", "GET /x\nexception: 404\n", 400, "line 2:"},
		{"method twice", "GET /x\nmethod: POST\n", 400, "line 2: the method is given twice"},
		{"bad host", "GET /x\nhost: a, :1\n", 400, "line 2: host: host element 1"},
		{"bad token", "GET /x\ntoken: a,,b\n", 400, "line 2: token: element 1 is empty"},
		{"control character", "GET /x\nx-a: \x01\n", 400, "line 2: control character"},
		{"not UTF-8", "GET /x\n\nbody \xff\n", 400, "line 3: not valid UTF-8"},
		{"duplicate body key", "GET /x\n\n\na: 1\nb: 2\na: 3\n", 400, "line 6: body key \"a\" given twice (first on line 4)"},
		{"deep JSON", "GET /x\n\n" + strings.Repeat("[", 65) + strings.Repeat("]", 65), 400, "line 3: body: JSON nested deeper"},
		{"too large", "GET /x\n\n" + strings.Repeat("a", DefaultMaxSize), 413, "exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := notationDecoder.ParseHTTP([]byte(tc.in))
			if tc.code == 200 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantNotationErr(t, err, tc.code, tc.says)
		})
	}
}

func TestFormatHTTP(t *testing.T) {
	for _, tc := range []struct{ name, json, want string }{
		{"Node engine dispatch",
			`{"protocol":["JSTP","0.4"],"method":"POST","resource":["foods"],"timestamp":7,"token":[null],"host":[["localhost",33333,"tcp"]],"referer":[["10.0.0.2",50000,"tcp"]],"body":{"size":"L","n":2}}`,
			"POST /foods JSTP/0.4\nhost: localhost:33333\ntimestamp: 7\ntoken: null\nreferer: [[\"10.0.0.2\",50000,\"tcp\"]]\n\n{\"size\":\"L\",\"n\":2}\n"},
		{"body with spacing kept as JSON",
			`{"protocol":["JSTP","0.4"],"method":"POST","resource":["x"],"timestamp":7,"body":{"a": "b"}}`,
			"POST /x JSTP/0.4\ntimestamp: 7\n\n{\"a\": \"b\"}\n"},
		{"escaped string body kept as JSON",
			`{"protocol":["JSTP","0.4"],"method":"POST","resource":["x"],"timestamp":7,"body":"\u0041"}`,
			"POST /x JSTP/0.4\ntimestamp: 7\n\n\"\\u0041\"\n"},
		{"empty host chain and token",
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["x"],"timestamp":7,"host":[],"token":[]}`,
			"GET /x JSTP/0.4\nhost:\ntimestamp: 7\ntoken:\n"},
		{"endpoint without method",
			`{"protocol":["JSTP","0.4"],"timestamp":7,"method":"BIND","endpoint":{"method":"","resource":["a"]},"exception":{"code":400,"message":""}}`,
			"JSTP/0.4 400\ntimestamp: 7\nmethod: BIND\nendpoint: {\"method\":\"\",\"resource\":[\"a\"]}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d Dispatch
			if err := d.UnmarshalJSON([]byte(tc.json)); err != nil {
				t.Fatal(err)
			}
			if got := FormatHTTP(&d); got != tc.want {
				t.Fatalf("FormatHTTP\n got  %q\n want %q", got, tc.want)
			}
			back, err := notationDecoder.ParseHTTP([]byte(tc.want))
			if err != nil {
				t.Fatalf("ParseHTTP: %v", err)
			}
			sameDispatch(t, "FormatHTTP then ParseHTTP", &d, back)
		})
	}
}

func TestParseNotation(t *testing.T) {
	want := `{"protocol":["JSTP","0.4"],"method":"GET","resource":["foods","pizza"],` + exampleTS + `,"host":["pizza.com.ar"]}`
	for _, in := range []string{
		"  \n" + want + "\n",
		"jstp://pizza.com.ar/foods/pizza\n",
		"GET JSTP://pizza.com.ar/foods/pizza",
		"GET /foods/pizza JSTP/0.4\nhost: pizza.com.ar\n",
	} {
		d, err := ParseNotation([]byte(in), notationDecoder)
		if err != nil {
			t.Errorf("ParseNotation(%q): %v", in, err)
			continue
		}
		if d.String() != want {
			t.Errorf("ParseNotation(%q)\n got  %s\n want %s", in, d, want)
		}
	}

	// Unknown headers are kept whichever notation carries them.
	d, err := ParseNotation([]byte(`{"protocol":["JSTP","0.4"],"method":"GET","resource":["x"],"timestamp":1,"X-Trace":"abc"}`), notationDecoder)
	if err != nil || string(d.Extra.Value("x-trace")) != `"abc"` {
		t.Fatalf("JSON unknown header: %v, %s", err, d)
	}

	for _, tc := range []struct {
		in   string
		dec  Decoder
		code int
		says string
	}{
		{`{"method":"GET"`, notationDecoder, 400, "not a JSON object"},
		{`{"protocol":["JSTP","0.4"],"method":"GET","resource":["x"]}`, notationDecoder, 400, "timestamp"},
		{`{"protocol":["JSTP","0.4"],"method":"GET","resource":["x"]}`, Decoder{Quirks: true}, 200, ""},
		{"jstp://h/x", Decoder{MaxSize: 5}, 413, "limit of 5"},
		{"GET /x\n", Decoder{MaxSize: 5}, 413, "limit of 5"},
		{"{}", Decoder{MaxSize: 1}, 413, "limit of 1"},
		{"FOO jstp://h/x", notationDecoder, 405, "FOO"},
		{"GET /x JSTP/1.0", notationDecoder, 505, "1.0"},
	} {
		_, err := ParseNotation([]byte(tc.in), tc.dec)
		if tc.code == 200 {
			if err != nil {
				t.Errorf("ParseNotation(%q): %v", tc.in, err)
			}
			continue
		}
		wantNotationErr(t, err, tc.code, tc.says)
	}
}

// TestParseNotationJSONNotAnObject checks that text starting with "[" is
// read as JSON, so a JSON array is refused as JSON rather than as an
// unknown method of the HTTP-like notation.
func TestParseNotationJSONNotAnObject(t *testing.T) {
	obj := `{"protocol":["JSTP","0.4"],"method":"GET","resource":["x"],"timestamp":1}`
	for _, tc := range []struct {
		name string
		in   string
		code int
		says string
	}{
		{"array", `[1,2,3]`, 400, "not a JSON object: the document is a JSON array"},
		{"empty array", `[]`, 400, "JSON array"},
		{"array of strings", `["GET","/foods/pizza"]`, 400, "JSON array"},
		{"array after white space", " \r\n\t[1,2,3]\n", 400, "JSON array"},
		{"text starting with [", "[GET /foods/pizza JSTP/0.4\nhost: h\n", 400, "not a JSON object"},
		{"bracket alone", "[", 400, "not a JSON object"},
		{"object", obj, 200, ""},
		{"object after white space", " \r\n\t" + obj + "\n", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseNotation([]byte(tc.in), notationDecoder)
			if tc.code == 200 {
				if err != nil {
					t.Fatalf("ParseNotation(%q): %v", tc.in, err)
				}
				if got := d.String(); got != obj {
					t.Fatalf("ParseNotation(%q)\n got  %s\n want %s", tc.in, got, obj)
				}
				return
			}
			wantNotationErr(t, err, tc.code, tc.says)
			if !errors.Is(err, ErrBadDispatch) {
				t.Fatalf("error %q does not wrap ErrBadDispatch", err)
			}
			if d != nil {
				t.Fatalf("ParseNotation(%q) returned %s with its error; want nil", tc.in, d)
			}
		})
	}
}

// TestNotationsOfEveryMorphology writes one dispatch of each morphology
// in every notation it fits and reads it back.
func TestNotationsOfEveryMorphology(t *testing.T) {
	reg := New(PUT, "users", 97, "name")
	reg.Host = []Host{{Name: "a"}, {Name: "b", Port: 33333, Transport: "tcp"}}
	sub := NewSubscription(BIND, Endpoint{Method: "*", Resource: []string{"path", "...", ":ext"}})
	ans := NewAnswer(200, "tx", "trig", []byte(`{"ok":true}`))
	exc := NewException(Errorf(ErrNotFound, "nothing bound"), reg)
	for _, d := range []*Dispatch{reg, sub, ans, exc} {
		if err := d.Validate(); err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		crossCheck(t, d)
	}
	if _, err := FormatURL(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := FormatURL(sub); err != nil {
		t.Fatal(err)
	}
}
