package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/identity"
	"github.com/jstp-peer/jstp-peer/mesh"
	"github.com/jstp-peer/jstp-peer/node"
)

const sendExamples = `  jstp-peer send 'jstp:///peer'                      GET ["peer"] of the local peer
  jstp-peer send 'jstp://12D3KooW.../echo/hello'     to another peer, by peer id
  jstp-peer send 'POST jstp://pizza.com.ar/orders' --body '{"size":"L"}'
  jstp-peer send @request.txt --format http          HTTP-like notation from a file
  echo '{"method":"GET","resource":["peers"]}' | jstp-peer send -
  jstp-peer send 'jstp:///ip4/127.0.0.1/tcp/4033/p2p/12D3KooW.../peer'   a multiaddr, pasted
  jstp-peer send 'jstp://<peer id>/peer' --bootstrap /ip4/203.0.113.7/tcp/4033/p2p/12D3KooW...
  jstp-peer send 'jstp:///peer' --format body | jq .version
  jstp-peer send 'jstp:///health' --quiet && echo healthy
  jstp-peer send 'POST jstp://<gateway id>,<peer id>/vault' --body '"secret"' --seal

  Each answer prints as it arrives, here one line of JSON:
    {"protocol":["JSTP","0.4"],"method":"ANSWER","resource":[200,"<txid>","<trigger>"],...,"body":{...}}
`

func runSend(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("send", "jstp-peer send DISPATCH [flags]",
		`Send one dispatch through the local peer and print its answers.

DISPATCH is written in the URL, HTTP-like or JSON notation (docs/notation.md);
@FILE reads it from a file and "-" from standard input. JSON may leave out
protocol and timestamp. A transaction id (a UUID) is put in token[0] unless
token[0] is already a string, so that answers come back.

The dispatch goes to the TCP gateway of the peer that "jstp-peer up" runs
(--via). When nothing listens there and --bootstrap is given, a short-lived
peer is started in this process instead: it joins the mesh through the
bootstrap peers, sends, collects the answers and stops.

Answers print as they arrive (--format json: one dispatch per line; http:
the HTTP-like notation, a blank line between answers; body: only the body
of each 2xx answer, one line of JSON each, and the others as errors on
standard error). --quiet prints no answer: the exit status says it all.
The command stops when every answer is in: the peer says how many
subscribers will answer (docs/cli.md), and answers 504 for those that do
not within --timeout.

A peer can be named by its id (jstp://12D3KooW.../echo/hi) or by its whole
multiaddr, pasted as "jstp-peer up" prints it:
jstp:///ip4/127.0.0.1/tcp/4033/p2p/12D3KooW.../echo/hi.

Exit status: 0 at least one answer arrived and all were 2xx; 1 a non-2xx
answer, no answer, or no peer to send through; 2 a usage error or an
invalid DISPATCH; 130 interrupted. Every flag can also be set with the
environment variable JSTP_PEER_<FLAG> (JSTP_PEER_VIA, JSTP_PEER_TIMEOUT).`,
		sendExamples)
	s := newSettings()
	s.register(fs, keyVia, keyBootstrap, keyConfig)
	var body optString
	fs.Var(&body, "body", "the dispatch's body: `JSON`, or text sent as a JSON string; @FILE reads a file")
	timeout := fs.Duration("timeout", defaultTimeout, "how long to wait for answers")
	format := newFormatFlag()
	fs.Var(format, "format", "output: `json` (one dispatch per line), http (HTTP-like notation)\nor body (the bodies of 2xx answers, one JSON value per line)")
	seal := fs.Bool("seal", false, "seal the dispatch to its recipient (the last host: a peer id or a service\nname) so that no gateway reads it; its answers come back sealed")
	quiet := fs.Bool("quiet", false, "print no answers; the exit status tells success (all 2xx) from failure")
	pos, code, ok := parseArgs(fs, s, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(fs, stderr, "want one DISPATCH, got %d arguments", len(pos))
	}
	if *timeout <= 0 {
		return usageError(fs, stderr, "--timeout must be positive")
	}
	d, err := readDispatchArg(ctx, pos[0], stdin)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fail(stderr, "send", exitInterrupted, "%v", err)
		}
		return fail(stderr, "send", exitUsage, "%v", err)
	}
	if body.set {
		raw, err := bodyArg(body.v)
		if err != nil {
			return fail(stderr, "send", exitUsage, "--body: %v", err)
		}
		d.Body = raw
	}
	switch d.Kind() {
	case dispatch.Regular:
	case dispatch.Subscription:
		// A subscription made on send's connection would end with it.
		return fail(stderr, "send", exitUsage, "send takes a regular dispatch (GET, POST, PUT, PATCH, DELETE), not %s; use `jstp-peer bind` to subscribe", d.Method)
	default:
		// Answers and exceptions get no answers, so send could only
		// wait for its timeout.
		return fail(stderr, "send", exitUsage, "send takes a regular dispatch (GET, POST, PUT, PATCH, DELETE), not an %s", d.Kind())
	}
	if *seal {
		if len(d.Host) == 0 {
			return fail(stderr, "send", exitUsage, "--seal: the dispatch names no recipient (a peer id or a service name as its host)")
		}
		d.Extra.Set(node.SealHeader, json.RawMessage(`true`))
	}
	// The transaction id is stamped where the dispatch is sent (the
	// client, or the engine's own Request).
	if err := d.Validate(); err != nil {
		return fail(stderr, "send", exitUsage, "%s", invalidText(err))
	}

	out := &printer{w: stdout, format: format.v}
	show := func(a *dispatch.Dispatch, code int) {
		switch {
		case *quiet:
		case format.v == formatBody && (code < 200 || code > 299):
			// Standard output holds the bodies of successes only, so a
			// script can read it as data.
			fmt.Fprintf(stderr, "jstp-peer send: %s\n", strings.ReplaceAll(answerText(a, code), "\n", "; "))
		default:
			out.print(a)
		}
	}
	via := viaAddr(s)
	c, err := dial(ctx, via, stderr)
	if err != nil {
		if ctx.Err() != nil {
			return fail(stderr, "send", exitInterrupted, "%v", ctx.Err())
		}
		if boot := s.List(keyBootstrap); len(boot) > 0 {
			return sendThroughOwnPeer(ctx, d, boot, *timeout, show, stderr)
		}
		return fail(stderr, "send", exitFail, "%s", noPeerMessage(via, err, true))
	}
	defer c.Close()
	res, err := request(ctx, c, d, *timeout, show, nil)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fail(stderr, "send", exitInterrupted, "interrupted while waiting for answers")
		}
		return fail(stderr, "send", exitUsage, "%s", invalidText(err))
	}
	return sendStatus(res, via, *timeout, stderr)
}

// sendStatus turns the answers into the exit status, explaining a
// failure that printed no answer.
func sendStatus(res answerResult, via string, timeout time.Duration, stderr io.Writer) int {
	if len(res.codes) == 0 {
		if res.closed {
			return fail(stderr, "send", exitFail, "the peer at %s closed the connection before answering", via)
		}
		return fail(stderr, "send", exitFail, "no answer within %v", timeout)
	}
	if !res.ok() {
		return exitFail
	}
	return exitOK
}

// noPeerMessage explains that nothing listens at the gateway address.
func noPeerMessage(via string, err error, withBootstrap bool) string {
	cause := ""
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		cause = " (" + op.Err.Error() + ")"
	}
	alt := "or pass --via ADDR"
	if withBootstrap {
		alt = "or pass --via ADDR or --bootstrap MULTIADDR"
	}
	return fmt.Sprintf("no peer at %s%s: start one with `jstp-peer up`, %s", via, cause, alt)
}

// viaAddr is where send, bind and peers reach the local peer: the via
// setting, else a gateway-tcp the user configured (so a peer moved to
// another port is still found), else the default gateway.
func viaAddr(s *settings) string {
	if v := strings.TrimSpace(s.String(keyVia)); v != "" {
		return v
	}
	if s.Explicit(keyGatewayTCP) {
		gw := strings.TrimSpace(s.String(keyGatewayTCP))
		if _, port, err := net.SplitHostPort(gw); err == nil && port != "0" {
			return gw
		}
	}
	return mesh.DefaultGatewayTCP
}

// readDispatchArg reads DISPATCH: the argument itself, @FILE, or "-" for
// standard input.
func readDispatchArg(ctx context.Context, arg string, stdin io.Reader) (*dispatch.Dispatch, error) {
	data := []byte(arg)
	switch {
	case arg == "-":
		b, err := readInput(ctx, "-", stdin, dispatch.DefaultMaxSize)
		if err != nil {
			return nil, err
		}
		data = b
	case strings.HasPrefix(arg, "@"):
		b, err := readInput(ctx, arg[1:], stdin, dispatch.DefaultMaxSize)
		if err != nil {
			return nil, err
		}
		data = b
	}
	// Quirks: JSON typed by hand may leave out protocol and timestamp,
	// which the notations leave out too.
	d, err := dispatch.ParseNotation(data, dispatch.Decoder{Quirks: true})
	if err != nil {
		return nil, invalidError{err}
	}
	return d, nil
}

// invalidText describes an invalid dispatch in one line: "invalid
// dispatch (405): unknown method ...", the code once, not the code and
// then the sentinel's words for it ("bad dispatch: ...").
func invalidText(err error) string {
	code := dispatch.Code(err)
	msg := err.Error()
	if s := dispatch.ErrorForCode(code); s != nil {
		msg = strings.TrimPrefix(msg, s.Error()+": ")
	}
	return fmt.Sprintf("invalid dispatch (%d): %s", code, msg)
}

// invalidError is a dispatch that does not parse, worded by invalidText.
type invalidError struct{ err error }

func (e invalidError) Error() string { return invalidText(e.err) }
func (e invalidError) Unwrap() error { return e.err }

// bodyArg reads --body: JSON as it is, anything else as a JSON string,
// @FILE from a file (by the same rule).
func bodyArg(v string) (json.RawMessage, error) {
	if strings.HasPrefix(v, "@") {
		b, err := readFileLimited(v[1:], dispatch.DefaultMaxSize)
		if err != nil {
			return nil, err
		}
		v = string(b)
	}
	if trimmed := strings.TrimSpace(v); trimmed != "" && json.Valid([]byte(trimmed)) {
		return json.RawMessage(trimmed), nil
	}
	return json.Marshal(v)
}

func readFileLimited(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// sendThroughOwnPeer is send without a local peer: a short-lived peer in
// this process joins the mesh through the bootstrap peers, sends d with
// the engine's own request and stops.
func sendThroughOwnPeer(ctx context.Context, d *dispatch.Dispatch, boot []string, timeout time.Duration, show func(*dispatch.Dispatch, int), stderr io.Writer) int {
	dir, err := os.MkdirTemp("", "jstp-peer-send-")
	if err != nil {
		return fail(stderr, "send", exitFail, "temporary peer: %v", err)
	}
	defer os.RemoveAll(dir)
	key, err := identity.LoadOrCreate(dir)
	if err != nil {
		return fail(stderr, "send", exitFail, "temporary peer: %v", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	startCtx, cancelStart := context.WithTimeout(ctx, timeout)
	p, err := node.Start(startCtx, node.PeerConfig{
		Mesh: mesh.Config{
			Key:         key,
			ListenAddrs: []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"},
			Bootstrap:   boot,
			DHTMode:     mesh.DHTClient,
			Loopback:    mesh.AllLoopback(boot),
		},
		Logger:  log,
		Options: []node.Option{node.WithAnswerTimeout(timeout)},
	})
	cancelStart()
	if err != nil {
		if ctx.Err() != nil {
			return fail(stderr, "send", exitInterrupted, "interrupted while joining the mesh")
		}
		return fail(stderr, "send", exitFail, "temporary peer: %v", err)
	}
	defer p.Close()
	if len(p.Host.Peers()) == 0 {
		return fail(stderr, "send", exitFail, "no bootstrap peer reachable (%s)", strings.Join(boot, ", "))
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	answers, err := p.Node.Request(rctx, d)
	if err != nil {
		return fail(stderr, "send", exitUsage, "%s", invalidText(err))
	}
	var res answerResult
	for a := range answers {
		code, _, _, _ := a.AnswerInfo()
		res.codes = append(res.codes, code)
		show(a, code)
	}
	if ctx.Err() != nil {
		return fail(stderr, "send", exitInterrupted, "interrupted while waiting for answers")
	}
	return sendStatus(res, "(own peer)", timeout, stderr)
}
