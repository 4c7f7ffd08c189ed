package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
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
	c, err := dial(ctx, via, stderr)
	if err != nil {
		if ctx.Err() != nil {
			return fail(stderr, "bind", exitInterrupted, "%v", ctx.Err())
		}
		return fail(stderr, "bind", exitFail, "%s", noPeerMessage(via, err, false))
	}
	defer c.Close()
	if len(hosts) == 0 {
		where += " (" + via + ")"
	}

	out := &printer{w: stdout, format: format.v}
	// deliver prints a dispatch that arrived and answers it when its
	// sender waits for an answer (token [transaction id, triggering id]).
	deliver := func(d *dispatch.Dispatch) {
		out.print(d)
		if *noAnswer || d.Kind() != dispatch.Regular || len(d.Token) < 2 {
			return
		}
		txid := d.TransactionID()
		trig, _ := d.Token[1].(string)
		if txid == "" || trig == "" {
			return
		}
		if err := c.Send(dispatch.NewAnswer(200, txid, trig, nil)); err != nil {
			fmt.Fprintf(stderr, "jstp-peer bind: could not answer: %v\n", err)
		}
	}

	bind := dispatch.NewSubscription(dispatch.BIND, ep)
	bind.Host = hosts
	res, err := request(ctx, c, bind, *timeout, nil, deliver)
	switch {
	case err != nil && ctx.Err() != nil:
		return fail(stderr, "bind", exitInterrupted, "interrupted while binding")
	case err != nil:
		return fail(stderr, "bind", exitFail, "%v", err)
	case len(res.codes) == 0 && res.closed:
		return fail(stderr, "bind", exitFail, "%s before answering the BIND", c.Closed())
	case len(res.codes) == 0:
		return fail(stderr, "bind", exitFail, "no answer to the BIND within %v", *timeout)
	case !res.ok():
		return fail(stderr, "bind", exitFail, "BIND %s at %s failed: %s", ep, where, answerText(res.first, res.codes[0]))
	}
	fmt.Fprintf(stderr, "bound: %s at %s\n", ep, where)

	for {
		select {
		case d, open := <-c.Events():
			if !open {
				return fail(stderr, "bind", exitFail, "%s", c.Closed())
			}
			deliver(d)
		case <-ctx.Done():
			return release(c, bind, deliver, stderr)
		}
	}
}

// release sends the RELEASE for bind and waits briefly for its answer,
// still delivering what arrives meanwhile. Ctrl-C is a normal end, so the
// status is 0 even when the RELEASE fails: closing the connection
// releases the binding anyway.
func release(c *node.Client, bind *dispatch.Dispatch, deliver func(*dispatch.Dispatch), stderr io.Writer) int {
	rel := dispatch.NewSubscription(dispatch.RELEASE, *bind.Endpoint)
	rel.Host = bind.Host
	// A fresh context: the command's own is what Ctrl-C cancelled.
	res, err := request(context.Background(), c, rel, releaseTimeout, nil, deliver)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "jstp-peer bind: RELEASE not sent (%v); the binding ends with the connection\n", err)
	case len(res.codes) == 0:
		fmt.Fprintf(stderr, "jstp-peer bind: no answer to the RELEASE; the binding ends with the connection\n")
	case !res.ok():
		fmt.Fprintf(stderr, "jstp-peer bind: RELEASE failed: %s\n", answerText(res.first, res.codes[0]))
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
