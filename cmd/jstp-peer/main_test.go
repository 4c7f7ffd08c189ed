package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// cli runs jstp-peer in-process with args and stdin.
func cli(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// withoutTimestamp decodes one line of dispatch JSON and drops the
// timestamp, which notations stamp with the current time.
func withoutTimestamp(t *testing.T, line string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, line)
	}
	if _, ok := m["timestamp"].(float64); !ok {
		t.Fatalf("output has no numeric timestamp: %s", line)
	}
	delete(m, "timestamp")
	return m
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

const protocolExample = `GET /foods/pizza JSTP/0.4
host: pizza.com.ar
timestamp: 1365647440759
token: 3434h5098asr34h3

message: Let the cheese melt!
`

func TestCheck(t *testing.T) {
	file := filepath.Join(t.TempDir(), "d.json")
	if err := os.WriteFile(file, []byte(`{"protocol":["JSTP","0.4"],"method":"GET","resource":["x"],"timestamp":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		code  int
		want  string // the output without its timestamp, or exactly when exact
		exact bool
	}{
		{"pizza URL", []string{"check"}, "jstp://pizza.com.ar/foods/pizza\n", 0,
			`{"host":["pizza.com.ar"],"method":"GET","protocol":["JSTP","0.4"],"resource":["foods","pizza"]}`, false},
		{"HTTP-like example", []string{"check", "-"}, protocolExample, 0,
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["foods","pizza"],"timestamp":1365647440759,"token":["3434h5098asr34h3"],"host":["pizza.com.ar"],"body":{"message":"Let the cheese melt!"}}` + "\n", true},
		{"JSON normalised, unknown headers kept", []string{"check"},
			"{\n \"Method\": \"get\", \"RESOURCE\": [\"foods\", 97],\n \"protocol\": [\"JSTP\", \"0.4\"], \"timestamp\": 1365647440759,\n \"X-Trace\": {\"id\": 7}, \"referer\": \"me\"\n}\n", 0,
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["foods",97],"timestamp":1365647440759,"referer":"me","x-trace":{"id": 7}}` + "\n", true},
		{"unknown header in HTTP-like", []string{"check"}, "GET /x JSTP/0.4\ntimestamp: 1\nx-foo: {\"a\":1}\nx-bar: plain text\n", 0,
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["x"],"timestamp":1,"x-bar":"plain text","x-foo":{"a":1}}` + "\n", true},
		{"file argument", []string{"check", file}, "", 0,
			`{"protocol":["JSTP","0.4"],"method":"GET","resource":["x"],"timestamp":1}` + "\n", true},
		{"BIND in URL form", []string{"check"}, "BIND POST jstp://host/foods/*", 0,
			`{"endpoint":{"method":"POST","resource":["foods","*"]},"host":["host"],"method":"BIND","protocol":["JSTP","0.4"]}`, false},
		{"ANSWER", []string{"check"}, "ANSWER /200/txid/trigid JSTP/0.4\ntoken: txid, trigid\n", 0,
			`{"method":"ANSWER","protocol":["JSTP","0.4"],"resource":[200,"txid","trigid"],"token":["txid","trigid"]}`, false},

		{"400 missing resource", []string{"check"}, `{"protocol":["JSTP","0.4"],"method":"GET","timestamp":1}`, 1,
			`{"exception":{"code":400,"message":"bad dispatch: missing header \"resource\""},"protocol":["JSTP","0.4"]}`, false},
		{"400 unparsable JSON", []string{"check"}, `{"protocol":`, 1,
			`{"exception":{"code":400,"message":"bad dispatch: not a JSON object: unexpected end of JSON input at offset 12"},"protocol":["JSTP","0.4"]}`, false},
		{"400 names the line", []string{"check"}, "GET /x\nhost: a\nhost pizza\n", 1,
			`{"exception":{"code":400,"message":"bad dispatch: line 3: want a header line \"name: value\" (or a blank line before the body), got \"host pizza\""},"protocol":["JSTP","0.4"]}`, false},
		{"400 missing timestamp in JSON", []string{"check"}, `{"protocol":["JSTP","0.4"],"method":"GET","resource":["x"]}`, 1,
			`{"exception":{"code":400,"message":"bad dispatch: missing header \"timestamp\""},"protocol":["JSTP","0.4"]}`, false},
		{"quirks accept the Node engine", []string{"check", "--quirks"}, `{"protocol":["jstp","0.4"],"method":"get","resource":["x"],"token":"t","host":null}`, 0,
			`{"method":"GET","protocol":["jstp","0.4"],"resource":["x"],"token":["t"]}`, false},
		{"405 unknown method", []string{"check"}, "FOO jstp://h/x", 1,
			`{"exception":{"code":405,"message":"method not allowed: unknown method \"FOO\" (want GET, POST, PUT, PATCH, DELETE, BIND, RELEASE or ANSWER)"},"method":"FOO","protocol":["JSTP","0.4"],"resource":["x"]}`, false},
		{"505 version", []string{"check"}, `{"protocol":["JSTP","1.0"],"method":"GET","resource":["x"],"timestamp":1}`, 1,
			`{"exception":{"code":505,"message":"version not supported: JSTP version \"1.0\" is not supported (this engine speaks 0.4, 0.5, 0.6)"},"method":"GET","protocol":["JSTP","0.4"],"resource":["x"]}`, false},
		{"413 too large", []string{"check", "--max-size", "10"}, "jstp://pizza.com.ar/foods/pizza", 1,
			`{"exception":{"code":413,"message":"dispatch too large: 11 bytes exceeds the limit of 10"},"protocol":["JSTP","0.4"]}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(t, tc.stdin, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
				t.Fatalf("want exactly one line of output, got %q", out)
			}
			if tc.exact {
				if out != tc.want {
					t.Fatalf("stdout\n got  %s want %s", out, tc.want)
				}
				return
			}
			if got := asJSON(withoutTimestamp(t, out)); got != tc.want {
				t.Fatalf("stdout (timestamp removed)\n got  %s\n want %s", got, tc.want)
			}
		})
	}
}

func TestCheckUsage(t *testing.T) {
	for _, args := range [][]string{
		{"check", "a", "b"},
		{"check", "--max-size", "0"},
		{"check", "--nope"},
		{"check", filepath.Join(t.TempDir(), "missing.json")},
	} {
		code, out, errOut := cli(t, "", args...)
		if code != exitUsage || out != "" || errOut == "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2, nothing, a reason", args, code, out, errOut)
		}
	}
}

func TestMatch(t *testing.T) {
	const ext = `{"method":"GET","resource":["path","...","text","...",":ext"]}`
	for _, tc := range []struct {
		name, endpoint, dispatch string
		code                     int
		want                     string
	}{
		{"PROTOCOL.md example, deep", ext, `{"method":"GET","resource":["path","folder","internal","text","value","txt"]}`, 0,
			`{"match":true,"params":{"ext":"txt"}}`},
		{"PROTOCOL.md example, shallow", ext, `{"method":"GET","resource":["path","text","md"]}`, 0,
			`{"match":true,"params":{"ext":"md"}}`},
		{"no text element", ext, `{"method":"GET","resource":["path","md"]}`, 1,
			`{"match":false,"params":{}}`},
		{"method differs", ext, `{"method":"POST","resource":["path","text","md"]}`, 1,
			`{"match":false,"params":{}}`},
		{"any method, no captures", `{"method":"*","resource":["foods","*"]}`, `{"method":"delete","resource":["foods","pizza"]}`, 0,
			`{"match":true,"params":{}}`},
		{"star is one element", `{"method":"*","resource":["foods","*"]}`, `{"method":"POST","resource":["foods"]}`, 1,
			`{"match":false,"params":{}}`},
		{"numbers match as text", `{"method":"GET","resource":["users",":id"]}`, `{"method":"GET","resource":["users",97]}`, 0,
			`{"match":true,"params":{"id":"97"}}`},
		{"escaped star is literal", `{"method":"GET","resource":["a","\\*"]}`, `{"method":"GET","resource":["a","*"]}`, 0,
			`{"match":true,"params":{}}`},
		{"escaped star is not a wildcard", `{"method":"GET","resource":["a","\\*"]}`, `{"method":"GET","resource":["a","b"]}`, 1,
			`{"match":false,"params":{}}`},
		{"bind to binds", `{"method":"BIND","resource":["foods","..."]}`, `{"method":"BIND","endpoint":{"method":"POST","resource":["foods","*"]}}`, 0,
			`{"match":true,"params":{}}`},
		{"full dispatch accepted", `{"method":"GET","resource":["x"]}`, `{"protocol":["JSTP","0.4"],"method":"GET","resource":["x"],"timestamp":1,"x-a":1}`, 0,
			`{"match":true,"params":{}}`},
		{"answers", `{"method":"ANSWER","resource":[":code","..."]}`, `{"method":"ANSWER","resource":[200,"tx","trig"]}`, 0,
			`{"match":true,"params":{"code":"200"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(t, "", "match", tc.endpoint, tc.dispatch)
			if code != tc.code || out != tc.want+"\n" {
				t.Fatalf("exit %d, stdout %q (stderr %q); want %d, %q", code, out, errOut, tc.code, tc.want)
			}
		})
	}
}

func TestMatchInvalid(t *testing.T) {
	const ep = `{"method":"GET","resource":["x"]}`
	const d = `{"method":"GET","resource":["x"]}`
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"no arguments", []string{"match"}, "want two arguments"},
		{"one argument", []string{"match", ep}, "want two arguments"},
		{"endpoint not JSON", []string{"match", "GET /x", d}, "ENDPOINT: not a JSON object"},
		{"endpoint without method", []string{"match", `{"resource":["x"]}`, d}, `ENDPOINT: missing "method"`},
		{"endpoint without resource", []string{"match", `{"method":"GET"}`, d}, `ENDPOINT: missing "resource"`},
		{"endpoint field typo", []string{"match", `{"method":"GET","resources":["x"]}`, d}, `unknown field "resources"`},
		{"endpoint numbers", []string{"match", `{"method":"GET","resource":[1]}`, d}, "array of strings"},
		{"endpoint method", []string{"match", `{"method":"FETCH","resource":["x"]}`, d}, `"FETCH" is not a JSTP method`},
		{"endpoint pattern", []string{"match", `{"method":"GET","resource":[":"]}`, d}, "needs a name"},
		{"empty pattern", []string{"match", `{"method":"GET","resource":[]}`, d}, "pattern is empty"},
		{"dispatch not JSON", []string{"match", ep, "[1]"}, "DISPATCH: bad dispatch: not a JSON object"},
		{"dispatch without method", []string{"match", ep, `{"resource":["x"]}`}, `DISPATCH: missing "method"`},
		{"dispatch unknown method", []string{"match", ep, `{"method":"FETCH","resource":["x"]}`}, "not a JSTP method"},
		{"dispatch without resource", []string{"match", ep, `{"method":"GET"}`}, `DISPATCH: missing "resource"`},
		{"dispatch empty resource", []string{"match", ep, `{"method":"GET","resource":[]}`}, "is empty"},
		{"dispatch bad resource", []string{"match", ep, `{"method":"GET","resource":[{}]}`}, `"resource" element 0`},
		{"BIND without endpoint", []string{"match", ep, `{"method":"BIND"}`}, `needs "endpoint"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(t, "", tc.args...)
			if code != exitUsage || out != "" || !strings.Contains(errOut, tc.says) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 2, nothing, a reason with %q", code, out, errOut, tc.says)
			}
		})
	}
}

func TestFmt(t *testing.T) {
	const pizzaJSON = `{"protocol":["JSTP","0.4"],"method":"GET","resource":["foods","pizza"],"timestamp":1365647440759,"token":["3434h5098asr34h3"],"host":["pizza.com.ar"],"body":{"message":"Let the cheese melt!"}}`
	for _, tc := range []struct {
		name, stdin string
		args        []string
		code        int
		want        string
	}{
		{"json to http", pizzaJSON, []string{"fmt", "--to", "http"}, 0, protocolExample},
		{"http to json", protocolExample, []string{"fmt", "-to=json"}, 0, pizzaJSON + "\n"},
		{"default is json", protocolExample, []string{"fmt"}, 0, pizzaJSON + "\n"},
		{"http to url", "POST /users/97/'97 JSTP/0.4\nhost: a, b:33333\ntimestamp: 5\n", []string{"fmt", "--to", "URL"}, 0,
			"POST jstp://a,b:33333/users/97/'97\n"},
		{"url to url", "bind jstp:///a/.../:ext", []string{"fmt", "--to", "url"}, 0, "BIND GET jstp:///a/.../:ext\n"},
		{"url to http", "RELEASE * jstp://h/a", []string{"fmt", "--to", "http"}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(t, tc.stdin, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tc.code, errOut)
			}
			if tc.want != "" && out != tc.want {
				t.Fatalf("stdout\n got  %q\n want %q", out, tc.want)
			}
		})
	}
	// A URL-notation dispatch is stamped now; its HTTP-like form says so.
	_, out, _ := cli(t, "RELEASE * jstp://h/a", "fmt", "--to", "http")
	if !strings.HasPrefix(out, "RELEASE * /a JSTP/0.4\nhost: h\ntimestamp: ") {
		t.Fatalf("url to http: %q", out)
	}

	for _, tc := range []struct {
		name, stdin string
		args        []string
		code        int
		says        string
	}{
		{"body cannot be a URL", pizzaJSON, []string{"fmt", "--to", "url"}, 1, "cannot carry"},
		{"invalid input", "FOO /x\n", []string{"fmt"}, 1, "invalid dispatch (405)"},
		{"bad target", pizzaJSON, []string{"fmt", "--to", "yaml"}, 2, `--to "yaml"`},
		{"two files", pizzaJSON, []string{"fmt", "a", "b"}, 2, "at most one FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(t, tc.stdin, tc.args...)
			if code != tc.code || out != "" || !strings.Contains(errOut, tc.says) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d, nothing, %q", code, out, errOut, tc.code, tc.says)
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string // in stdout
		err  string // in stderr
	}{
		{nil, 2, "", "Usage:"},
		{[]string{"help"}, 0, "Commands:", ""},
		{[]string{"--help"}, 0, "check", ""},
		{[]string{"help", "check"}, 0, "Usage: jstp-peer check", ""},
		{[]string{"check", "-h"}, 0, "--max-size", ""},
		{[]string{"match", "--help"}, 0, "Examples:", ""},
		{[]string{"fmt", "-help"}, 0, "--to json", ""},
		{[]string{"help", "nope"}, 2, "", `unknown command "nope"`},
		{[]string{"nope"}, 2, "", `unknown command "nope"`},
		{[]string{"version"}, 0, "jstp-peer ", ""},
		{[]string{"--version"}, 0, "jstp-peer ", ""},
	} {
		code, out, errOut := cli(t, "", tc.args...)
		if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.err) {
			t.Errorf("%q: exit %d\nstdout %q\nstderr %q\nwant exit %d, stdout with %q, stderr with %q", tc.args, code, out, errOut, tc.code, tc.out, tc.err)
		}
	}
	// Every command in the table has help that says how to use it.
	for _, c := range commands {
		if c.name == "help" {
			continue
		}
		code, out, _ := cli(t, "", c.name, "-h")
		if code != 0 || !strings.Contains(out, "Usage: jstp-peer "+c.name) {
			t.Errorf("%s -h: exit %d, %q", c.name, code, out)
		}
	}
}

// TestBinary builds the command and runs it as a real process, to check
// what only a process shows: exit statuses and the standard streams.
func TestBinary(t *testing.T) {
	bin := testBinary(t)
	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		code  int
		out   string
	}{
		{"check valid", []string{"check"}, protocolExample, 0, `"body":{"message":"Let the cheese melt!"}`},
		{"check invalid", []string{"check", "-"}, `{"protocol":["JSTP","0.4"],"method":"GET"}`, 1, `"code":400`},
		{"match", []string{"match", `{"method":"GET","resource":["path","...","text","...",":ext"]}`, `{"method":"GET","resource":["path","text","md"]}`}, "", 0,
			`{"match":true,"params":{"ext":"md"}}`},
		{"no match", []string{"match", `{"method":"GET","resource":["a"]}`, `{"method":"GET","resource":["b"]}`}, "", 1,
			`{"match":false,"params":{}}`},
		{"match invalid", []string{"match", `{}`, `{}`}, "", 2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			cmd.Stdin = strings.NewReader(tc.stdin)
			var out, errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			err := cmd.Run()
			code := 0
			var exitErr *exec.ExitError
			if errors.As(err, &exitErr) {
				code = exitErr.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(out.String(), tc.out) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d and %q", code, out.String(), errOut.String(), tc.code, tc.out)
			}
		})
	}
}

// blockingReader is a standard input nobody ever types into.
type blockingReader struct{ unblock chan struct{} }

func (r blockingReader) Read([]byte) (int, error) {
	<-r.unblock
	return 0, io.EOF
}

func TestInterruptWhileReading(t *testing.T) {
	in := blockingReader{make(chan struct{})}
	defer close(in.unblock)
	for _, cmd := range []string{"check", "fmt"} {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var out, errOut bytes.Buffer
		code := run(ctx, []string{cmd}, in, &out, &errOut)
		if code != exitInterrupted || !strings.Contains(errOut.String(), "context canceled") {
			t.Errorf("%s interrupted: exit %d, stderr %q; want %d", cmd, code, errOut.String(), exitInterrupted)
		}
	}
}

// A usage error is one line that names the mistake and where help is, not
// the whole help text.
func TestUsageErrorsAreOneLine(t *testing.T) {
	for _, args := range [][]string{
		{"send"},
		{"send", "--nope", "jstp:///peer"},
		{"send", "jstp:///peer", "--timeout", "soon"},
		{"bind"},
		{"up", "extra"},
		{"peers", "--json=maybe"},
		{"check", "--unknown"},
	} {
		code, out, errOut := runCmd(context.Background(), args...)
		lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
		if code != exitUsage || out != "" || len(lines) != 1 || !strings.Contains(errOut, "jstp-peer "+args[0]+" --help") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and one line pointing at --help", args, code, out, errOut)
		}
	}
	if _, _, errOut := runCmd(context.Background(), "send", "--nope", "x"); !strings.Contains(errOut, "unknown flag --nope") {
		t.Errorf("stderr %q", errOut)
	}
}
