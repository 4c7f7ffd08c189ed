package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

const fmtExamples = `  jstp-peer fmt --to http dispatch.json
  echo 'POST jstp://pizza.com.ar/foods/pizza' | jstp-peer fmt --to json
  jstp-peer fmt --to url request.txt

  From JSON to the HTTP-like notation:
    GET /foods/pizza JSTP/0.4
    host: pizza.com.ar
    timestamp: 1365647440759
    token: 3434h5098asr34h3

    message: Let the cheese melt!
`

func runFmt(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("fmt", "jstp-peer fmt [--to json|url|http] [FILE|-]",
		`Read one dispatch from FILE (standard input when FILE is absent or "-")
in any notation (JSON, URL or HTTP-like; told apart automatically), check
it, and write it in the notation --to names:

  json  one line of normalised JSON, as peers send it
  url   [METHOD] jstp://host/path; it has no room for a body, a token or
        other headers, so a dispatch with them is an error (use http)
  http  the HTTP-like notation, lossless, for reading and editing

The notations are described in docs/notation.md. A notation without a
timestamp is stamped now; the URL notation never shows one.

Exit status: 0 converted; 1 invalid input or a dispatch the target notation
cannot carry (the reason on standard error; "jstp-peer check" prints the
exception instead); 2 usage error or unreadable FILE.`,
		fmtExamples)
	to := fs.String("to", "json", "output notation: `json`, url or http")
	quirks := fs.Bool("quirks", false, "accept what the Node.js engine (npm jstp 1.1.5) sends (see check -h)")
	maxSize := fs.Int("max-size", dispatch.DefaultMaxSize, "largest input accepted, in `bytes`")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 1 {
		return usageError(fs, stderr, "want at most one FILE, got %d arguments", fs.NArg())
	}
	target := strings.ToLower(*to)
	if target != "json" && target != "url" && target != "http" {
		return usageError(fs, stderr, "--to %q: want json, url or http", *to)
	}
	if *maxSize <= 0 {
		return usageError(fs, stderr, "--max-size must be positive")
	}
	data, err := readInput(ctx, fs.Arg(0), stdin, *maxSize)
	if err != nil {
		return inputFailure(stderr, "fmt", err)
	}
	d, err := dispatch.ParseNotation(data, dispatch.Decoder{MaxSize: *maxSize, Quirks: *quirks})
	if err != nil {
		fmt.Fprintf(stderr, "jstp-peer fmt: %s\n", invalidText(err))
		return exitFail
	}
	switch target {
	case "json":
		writeJSONLine(stdout, d)
	case "url":
		u, err := dispatch.FormatURL(d)
		if err != nil {
			fmt.Fprintf(stderr, "jstp-peer fmt: %v\n", err)
			return exitFail
		}
		fmt.Fprintln(stdout, u)
	case "http":
		_, _ = io.WriteString(stdout, dispatch.FormatHTTP(d))
	}
	return exitOK
}
