package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

const matchExamples = `  jstp-peer match '{"method":"GET","resource":["path","...","text","...",":ext"]}' \
                   '{"method":"GET","resource":["path","folder","internal","text","value","txt"]}'
  {"match":true,"params":{"ext":"txt"}}

  jstp-peer match '{"method":"*","resource":["foods","*"]}' '{"method":"POST","resource":["foods"]}'
  {"match":false,"params":{}}

  A BIND dispatch is matched by its endpoint's resource pattern ("bind to binds"):
  jstp-peer match '{"method":"BIND","resource":["foods","..."]}' \
                   '{"method":"BIND","endpoint":{"method":"POST","resource":["foods","*"]}}'
`

func runMatch(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("match", "jstp-peer match ENDPOINT DISPATCH",
		`Tell whether the endpoint ENDPOINT would be triggered by DISPATCH, as a
subscription (BIND) is. Both arguments are JSON (quote them for the shell):

  ENDPOINT  {"method": M, "resource": PATTERN}  M is a method or "*" (any);
            PATTERN elements: a literal, "*" (one element), "..." (zero or
            more), ":name" (one element, captured), and "\\*" (JSON
            for \*) for a literal "*".
  DISPATCH  {"method": M, "resource": [...]}, or {"method": "BIND"|"RELEASE",
            "endpoint": {...}}; other headers (protocol, timestamp) are not
            needed.

Prints exactly one line, {"match":true|false,"params":{...}}, with the
":name" captures in params. Exit status: 0 match, 1 no match, 2 invalid
input (the reason on standard error).`,
		matchExamples)
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() != 2 {
		return usageError(fs, stderr, "want two arguments, ENDPOINT and DISPATCH; got %d", fs.NArg())
	}
	ep, err := parseEndpointArg(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "jstp-peer match: ENDPOINT: %v\n", err)
		return exitUsage
	}
	ce, err := dispatch.CompileEndpoint(ep)
	if err != nil {
		fmt.Fprintf(stderr, "jstp-peer match: ENDPOINT: %v\n", err)
		return exitUsage
	}
	d, err := parseMatchDispatch(fs.Arg(1))
	if err != nil {
		fmt.Fprintf(stderr, "jstp-peer match: DISPATCH: %v\n", err)
		return exitUsage
	}
	params, ok := ce.Match(d)
	if params == nil {
		params = map[string]string{}
	}
	out, err := json.Marshal(struct {
		Match  bool              `json:"match"`
		Params map[string]string `json:"params"`
	}{ok, params})
	if err != nil {
		fmt.Fprintf(stderr, "jstp-peer match: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "%s\n", out)
	if !ok {
		return exitFail
	}
	return exitOK
}

// parseEndpointArg reads {"method", "resource"} strictly: a typo in a
// field name would otherwise silently match everything or nothing.
func parseEndpointArg(s string) (dispatch.Endpoint, error) {
	var ep dispatch.Endpoint
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &fields); err != nil || fields == nil {
		return ep, errors.New(`not a JSON object; want {"method":"GET","resource":["foods","*"]}`)
	}
	var haveMethod, haveResource bool
	for k, v := range fields {
		switch strings.ToLower(k) {
		case "method":
			if err := json.Unmarshal(v, &ep.Method); err != nil || string(v) == "null" {
				return ep, errors.New(`"method" must be a string: a method or "*"`)
			}
			haveMethod = true
		case "resource":
			if err := json.Unmarshal(v, &ep.Resource); err != nil || string(v) == "null" {
				return ep, errors.New(`"resource" must be an array of strings (the pattern)`)
			}
			haveResource = true
		default:
			return ep, fmt.Errorf("unknown field %q; an endpoint has only \"method\" and \"resource\"", k)
		}
	}
	if !haveMethod {
		return ep, errors.New(`missing "method" (a method such as "GET", or "*" for any)`)
	}
	if !haveResource {
		return ep, errors.New(`missing "resource" (the pattern, such as ["foods","*"])`)
	}
	return ep, nil
}

// parseMatchDispatch decodes only what matching needs, so a dispatch
// written by hand needs no protocol or timestamp.
func parseMatchDispatch(s string) (*dispatch.Dispatch, error) {
	d := &dispatch.Dispatch{}
	if err := d.UnmarshalJSON([]byte(s)); err != nil {
		return nil, err
	}
	if d.Method == "" {
		return nil, errors.New(`missing "method"`)
	}
	if !dispatch.KnownMethod(d.Method) {
		return nil, fmt.Errorf("method %q is not a JSTP method (GET, POST, PUT, PATCH, DELETE, BIND, RELEASE, ANSWER)", d.Method)
	}
	if d.Method == dispatch.BIND || d.Method == dispatch.RELEASE {
		if d.Endpoint == nil {
			return nil, fmt.Errorf(`a %s dispatch needs "endpoint" ({"method":...,"resource":[...]}); it is what is matched`, d.Method)
		}
		if len(d.Endpoint.Resource) == 0 {
			return nil, errors.New(`"endpoint" needs a non-empty "resource"`)
		}
		return d, nil
	}
	if d.Resource == nil {
		return nil, errors.New(`missing "resource" (an array such as ["foods","pizza"])`)
	}
	if len(d.Resource) == 0 {
		return nil, errors.New(`"resource" is empty`)
	}
	return d, nil
}
