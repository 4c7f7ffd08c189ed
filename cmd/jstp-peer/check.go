package main

import (
	"context"
	"io"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

const checkExamples = `  jstp-peer check dispatch.json
  echo 'jstp://pizza.com.ar/foods/pizza' | jstp-peer check
  printf 'GET /foods/pizza JSTP/0.4\nhost: pizza.com.ar\n' | jstp-peer check -
  jstp-peer check --quirks node-capture.json

  A valid dispatch prints as one line of JSON (exit 0):
    {"protocol":["JSTP","0.4"],"method":"GET","resource":["foods","pizza"],...}
  An invalid one prints the exception a peer would answer (exit 1):
    {"protocol":["JSTP","0.4"],"timestamp":...,"exception":{"code":400,"message":"bad dispatch: missing header \"resource\""}}
`

func runCheck(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("check", "jstp-peer check [flags] [FILE|-]",
		`Read one dispatch from FILE (standard input when FILE is absent or "-")
and validate it strictly, as a peer does on arrival. The dispatch may be
JSON, the URL notation (jstp://host/path) or the HTTP-like notation; see
docs/notation.md. Notations without a timestamp are stamped now.

Valid: the dispatch is printed on standard output as normalised JSON (one
line, lowercase header names, unknown headers kept) and the exit status is 0.
Invalid: the exception dispatch a peer would send back is printed instead,
with the JSTP status code (400 bad dispatch, 405 unknown method, 413 too
large, 505 unsupported version) and a message saying what is wrong, and the
exit status is 1. An unreadable FILE is reported on standard error (exit 2).`,
		checkExamples)
	quirks := fs.Bool("quirks", false, "accept what the Node.js engine (npm jstp 1.1.5) sends: a missing timestamp\nor protocol, a string token or host, null token/host/resource/body")
	maxSize := fs.Int("max-size", dispatch.DefaultMaxSize, "largest input accepted, in `bytes`; larger input is a 413 exception")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 1 {
		return usageError(fs, stderr, "want at most one FILE, got %d arguments", fs.NArg())
	}
	if *maxSize <= 0 {
		return usageError(fs, stderr, "--max-size must be positive")
	}
	data, err := readInput(ctx, fs.Arg(0), stdin, *maxSize)
	if err != nil {
		return inputFailure(stderr, "check", err)
	}
	d, err := dispatch.ParseNotation(data, dispatch.Decoder{MaxSize: *maxSize, Quirks: *quirks})
	if err != nil {
		// A 400 exception carries no method or resource (PROTOCOL.md §1):
		// what could be read of a malformed dispatch is not trusted.
		var offending *dispatch.Dispatch
		if dispatch.Code(err) != 400 {
			offending = d
		}
		writeJSONLine(stdout, dispatch.NewException(err, offending))
		return exitFail
	}
	writeJSONLine(stdout, d)
	return exitOK
}

func writeJSONLine(w io.Writer, d *dispatch.Dispatch) {
	_, _ = w.Write(append(d.AppendJSON(nil), '\n'))
}
