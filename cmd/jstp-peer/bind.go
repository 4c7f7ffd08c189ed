package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

const bindExamples = `  jstp-peer bind 'POST jstp:///news/*'               POSTs to /news/<anything> on the local peer
  jstp-peer bind 'POST jstp://pizza.com.ar/foods/*'  ... on the peers that provide pizza.com.ar
  jstp-peer bind '* jstp://12D3KooW.../orders/...'   any method, any depth, on one peer
  jstp-peer bind '{"method":"GET","resource":["a",":id"]}' --host 12D3KooW...
  jstp-peer bind 'ANSWER jstp:///*/...' --format http

  Standard error says what was bound, standard output shows what arrives:
    bound: POST /news/* at this peer (127.0.0.1:33333)
    {"protocol":["JSTP","0.4"],"method":"POST","resource":["news","today"],...}
`

// releaseTimeout bounds the wait for the RELEASE's answer after Ctrl-C:
// the user asked to stop, and the gateway releases the binding when the
// connection closes anyway.
const releaseTimeout = 3 * time.Second

func runBind(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("bind", "jstp-peer bind ENDPOINT [flags]",
		`Subscribe to an endpoint and print every dispatch that triggers it, until
Ctrl-C, which releases the subscription.

ENDPOINT is an endpoint URL, [METHOD] jstp://HOSTS/PATTERN, where METHOD is
the method to match (default GET, * for any) and PATTERN a resource
pattern: * is one element, ... zero or more, :name one element (captured).
Or a JSON endpoint {"method":"POST","resource":["foods","*"]}, with the host
chain in --host. An empty host binds on the local peer itself.

The BIND goes through the TCP gateway of the local peer (--via); its answer
is reported on standard error ("bound: ..."), and a failure ends the
command. Then every dispatch that arrives prints on standard output
(--format json: one per line; http: the HTTP-like notation). Dispatches
that want an answer are answered 200, as a subscriber that processed them
(--no-answer leaves that to the sender's timeout: 504).

Exit status: 0 stopped by Ctrl-C (after the RELEASE); 1 the BIND failed,
no peer at --via, or the peer closed the connection; 2 a usage error.
Every flag can also be set with JSTP_PEER_<FLAG>.`,
		bindExamples)
	s := newSettings()
	s.register(fs, keyVia, keyConfig)
	host := fs.String("host", "", "host chain of a JSON ENDPOINT, comma-separated as in a URL (`HOSTS`)")
	format := newFormatFlag()
	fs.Var(format, "format", "output: `json` (one dispatch per line) or http (HTTP-like notation)")
	timeout := fs.Duration("timeout", defaultTimeout, "how long to wait for the BIND's answer")
	noAnswer := fs.Bool("no-answer", false, "do not answer the dispatches that arrive")
	pos, code, ok := parseArgs(fs, s, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(fs, stderr, "want one ENDPOINT, got %d arguments", len(pos))
	}
	if *timeout <= 0 {
		return usageError(fs, stderr, "--timeout must be positive")
	}
	hosts, ep, err := parseBindEndpoint(pos[0], *host)
	if err != nil {
		return fail(stderr, "bind", exitUsage, "ENDPOINT: %v", err)
	}
	where := "this peer"
	if len(hosts) > 0 {
		where = hostsText(hosts)
	}

	via := viaAddr(s)
	g, err := dialGateway(ctx, via)
	if err != nil {
		if ctx.Err() != nil {
			return fail(stderr, "bind", exitInterrupted, "%v", ctx.Err())
		}
		return fail(stderr, "bind", exitFail, "%s", noPeerMessage(via, err, false))
	}
	defer g.Close()
	if len(hosts) == 0 {
		where += " (" + via + ")"
	}

	out := &printer{w: stdout, format: format.v}
	// deliver prints a dispatch that arrived and answers it when its
	// sender waits for an answer (token [transaction id, triggering id]).
	deliver := func(r received) {
		if r.err != nil {
			fmt.Fprintf(stderr, "jstp-peer bind: ignored a line from the peer: %v\n", r.err)
			return
		}
		out.print(r.d)
		if *noAnswer || r.d.Kind() != dispatch.Regular || len(r.d.Token) < 2 {
			return
		}
		txid := r.d.TransactionID()
		trig, _ := r.d.Token[1].(string)
		if txid == "" || trig == "" {
			return
		}
		if err := g.Send(dispatch.NewAnswer(200, txid, trig, nil)); err != nil {
			fmt.Fprintf(stderr, "jstp-peer bind: could not answer: %v\n", err)
		}
	}

	bind := dispatch.NewSubscription(dispatch.BIND, ep)
	bind.Host = hosts
	bind.Token = []any{uuid.NewString()}
	if err := g.Send(bind); err != nil {
		return fail(stderr, "bind", exitFail, "%v", err)
	}
	var answer string
	var answerCode int
	res, err := waitAnswers(ctx, g, answerWait{
		// The BIND is answered once, for the whole transaction; no
		// settling needed, so the settle period is the timeout.
		txid: bind.TransactionID(), timeout: *timeout, settle: *timeout,
		onAnswer: func(a *dispatch.Dispatch, code int) { answer, answerCode = answerText(a, code), code },
		onOther:  deliver,
	})
	switch {
	case err != nil:
		return fail(stderr, "bind", exitInterrupted, "interrupted while binding")
	case len(res.codes) == 0 && res.closed:
		return fail(stderr, "bind", exitFail, "%s before answering the BIND", closedReason(g))
	case len(res.codes) == 0:
		return fail(stderr, "bind", exitFail, "no answer to the BIND within %v", *timeout)
	case answerCode < 200 || answerCode > 299:
		return fail(stderr, "bind", exitFail, "BIND %s at %s failed: %s", ep, where, answer)
	}
	fmt.Fprintf(stderr, "bound: %s at %s\n", ep, where)

	for {
		select {
		case r, open := <-g.In():
			if !open {
				return fail(stderr, "bind", exitFail, "%s", closedReason(g))
			}
			if _, _, mine := classify(r, bind.TransactionID()); mine {
				continue // a late duplicate of the BIND's answer
			}
			deliver(r)
		case <-ctx.Done():
			return release(g, bind, deliver, stderr)
		}
	}
}

// release sends the RELEASE for bind and waits briefly for its answer,
// still delivering what arrives meanwhile. Ctrl-C is a normal end, so the
// status is 0 even when the RELEASE fails: closing the connection
// releases the binding anyway.
func release(g *gatewayConn, bind *dispatch.Dispatch, deliver func(received), stderr io.Writer) int {
	rel := dispatch.NewSubscription(dispatch.RELEASE, *bind.Endpoint)
	rel.Host = bind.Host
	rel.Token = []any{uuid.NewString()}
	if err := g.Send(rel); err != nil {
		fmt.Fprintf(stderr, "jstp-peer bind: RELEASE not sent (%v); the binding ends with the connection\n", err)
		return exitOK
	}
	var text string
	var code int
	// A fresh context: the command's own is what Ctrl-C cancelled.
	res, _ := waitAnswers(context.Background(), g, answerWait{
		txid: rel.TransactionID(), timeout: releaseTimeout, settle: releaseTimeout,
		onAnswer: func(a *dispatch.Dispatch, c int) { text, code = answerText(a, c), c },
		onOther: func(r received) {
			if _, _, old := classify(r, bind.TransactionID()); !old {
				deliver(r)
			}
		},
	})
	switch {
	case len(res.codes) == 0:
		fmt.Fprintf(stderr, "jstp-peer bind: no answer to the RELEASE; the binding ends with the connection\n")
	case code < 200 || code > 299:
		fmt.Fprintf(stderr, "jstp-peer bind: RELEASE failed: %s\n", text)
	default:
		fmt.Fprintf(stderr, "released: %s\n", bind.Endpoint)
	}
	return exitOK
}

// parseBindEndpoint reads ENDPOINT (URL or JSON) and --host.
func parseBindEndpoint(arg, hostFlag string) ([]dispatch.Host, dispatch.Endpoint, error) {
	var hosts []dispatch.Host
	var ep dispatch.Endpoint
	var err error
	if strings.HasPrefix(strings.TrimSpace(arg), "{") {
		if ep, err = parseEndpointArg(arg); err != nil {
			return nil, ep, err
		}
		ep.Method = strings.ToUpper(ep.Method)
		if err := ep.Validate(); err != nil {
			return nil, ep, err
		}
		if _, err := dispatch.CompileEndpoint(ep); err != nil {
			return nil, ep, err
		}
	} else if hosts, ep, err = dispatch.ParseEndpointURL(arg); err != nil {
		return nil, ep, err
	}
	if h := strings.TrimSpace(hostFlag); h != "" {
		if len(hosts) > 0 {
			return nil, ep, fmt.Errorf("the URL names a host (%s) and so does --host; give one", hostsText(hosts))
		}
		// The host chain is written as in a URL: reuse that parser.
		parsed, _, err := dispatch.ParseEndpointURL("GET jstp://" + h + "/x")
		if err != nil {
			return nil, ep, fmt.Errorf("--host %q: %w", h, err)
		}
		hosts = parsed
	}
	return hosts, ep, nil
}

func hostsText(hosts []dispatch.Host) string {
	parts := make([]string, len(hosts))
	for i, h := range hosts {
		parts[i] = h.String()
	}
	return strings.Join(parts, ", ")
}
