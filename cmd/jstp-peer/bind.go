package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
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
  jstp-peer bind 'POST jstp:///orders/*' --count 1 --format body   wait for one order, print its body

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
command, but a 503 with a retry-after hint: that BIND is sent again after
the hint, up to four BINDs in all. Then every dispatch that arrives prints
on standard output (--format json: one per line; http: the HTTP-like
notation; body: its body only, one line of JSON). Dispatches that want an
answer are answered 200, as a subscriber that processed them (--no-answer
leaves that to the sender's timeout: 504). --count N stops after N
dispatches.

When the local peer goes away (restarted, say), bind reconnects, waiting
longer between attempts (up to 10 s), and binds again ("bound again: ...");
what was sent in between is lost. --no-reconnect ends the command instead.

Exit status: 0 stopped by Ctrl-C or after --count dispatches (after the
RELEASE); 1 the BIND failed, no peer at --via, or (--no-reconnect) the peer
closed the connection; 2 a usage error; 130 interrupted before the BIND
was answered. Every flag can also be set with JSTP_PEER_<FLAG>.`,
		bindExamples)
	s := newSettings()
	s.register(fs, keyVia, keyConfig)
	host := fs.String("host", "", "host chain of a JSON ENDPOINT, comma-separated as in a URL (`HOSTS`)")
	format := newFormatFlag()
	fs.Var(format, "format", "output: `json` (one dispatch per line), http (HTTP-like notation)\nor body (each dispatch's body, one JSON value per line)")
	timeout := fs.Duration("timeout", defaultTimeout, "how long to wait for the BIND's answer")
	noAnswer := fs.Bool("no-answer", false, "do not answer the dispatches that arrive")
	count := fs.Int("count", 0, "stop after `N` dispatches (0: until Ctrl-C)")
	noReconnect := fs.Bool("no-reconnect", false, "end (status 1) when the connection to the peer ends, instead of\nreconnecting")
	pos, code, ok := parseArgs(fs, s, args, stdout, stderr)
	if !ok {
		return code
	}
	switch {
	case len(pos) != 1:
		return usageError(fs, stderr, "want one ENDPOINT, got %d arguments", len(pos))
	case *timeout <= 0:
		return usageError(fs, stderr, "--timeout must be positive")
	case *count < 0:
		return usageError(fs, stderr, "--count must not be negative")
	}
	hosts, ep, err := parseBindEndpoint(pos[0], *host)
	if err != nil {
		msg := err.Error()
		if s := dispatch.ErrorForCode(dispatch.Code(err)); s != nil {
			msg = strings.TrimPrefix(msg, s.Error()+": ")
		}
		return fail(stderr, "bind", exitUsage, "ENDPOINT: %s", msg)
	}
	b := &binder{
		via:      viaAddr(s),
		bind:     dispatch.NewSubscription(dispatch.BIND, ep),
		out:      &printer{w: stdout, format: format.v},
		stderr:   stderr,
		timeout:  *timeout,
		count:    *count,
		noAnswer: *noAnswer,
		where:    "this peer",
	}
	b.bind.Host = hosts
	if len(hosts) > 0 {
		b.where = hostsText(hosts)
	} else {
		b.where += " (" + b.via + ")"
	}
	c, err := dial(ctx, b.via, stderr)
	if err != nil {
		if ctx.Err() != nil {
			return fail(stderr, "bind", exitInterrupted, "%v", ctx.Err())
		}
		return fail(stderr, "bind", exitFail, "%s", noPeerMessage(b.via, err, false))
	}
	// The first BIND's failure is the user's to fix: report it and end.
	if code, ok := b.bindOn(ctx, c, false); !ok {
		c.Close()
		return code
	}
	for {
		code, lost := b.follow(ctx, c)
		c.Close()
		if !lost {
			return code
		}
		if *noReconnect {
			return fail(stderr, "bind", exitFail, "%s", c.Closed())
		}
		fmt.Fprintf(stderr, "jstp-peer bind: %s; reconnecting\n", c.Closed())
		if c = b.reconnect(ctx); c == nil {
			return exitOK // Ctrl-C while reconnecting: nothing is bound
		}
	}
}

// Reconnection backoff: the first attempt soon (a restarting peer is back
// in a moment), then doubling up to the cap, with jitter so that many
// binds do not reconnect in step.
const (
	reconnectFirst = 250 * time.Millisecond
	reconnectMax   = 10 * time.Second
)

// binder is one bind command: its BIND, where it prints, how many
// dispatches it has printed.
type binder struct {
	via      string
	bind     *dispatch.Dispatch
	where    string
	out      *printer
	stderr   io.Writer
	timeout  time.Duration
	count    int // 0: no limit
	noAnswer bool
	received int
}

// done reports that --count dispatches have been printed.
func (b *binder) done() bool { return b.count > 0 && b.received >= b.count }

// deliver prints a dispatch that arrived and answers it when its sender
// waits for an answer (token [transaction id, triggering id]). Past
// --count it drops what still arrives before the RELEASE.
func (b *binder) deliver(c *node.Client, d *dispatch.Dispatch) {
	if b.done() {
		return
	}
	b.out.print(d)
	b.received++
	if b.noAnswer || d.Kind() != dispatch.Regular || len(d.Token) < 2 {
		return
	}
	txid := d.TransactionID()
	trig, _ := d.Token[1].(string)
	if txid == "" || trig == "" {
		return
	}
	if err := c.Send(dispatch.NewAnswer(200, txid, trig, nil)); err != nil {
		fmt.Fprintf(b.stderr, "jstp-peer bind: could not answer: %v\n", err)
	}
}

// bindOn sends the BIND on c. On failure, ok is false and code is the
// exit status; again says this is a rebind after a reconnection, whose
// failure is reported as a warning (the caller retries).
func (b *binder) bindOn(ctx context.Context, c *node.Client, again bool) (code int, ok bool) {
	ep := b.bind.Endpoint
	var res answerResult
	var err error
	for attempt := 1; ; attempt++ {
		res, err = request(ctx, c, b.bind, b.timeout, nil, func(d *dispatch.Dispatch) { b.deliver(c, d) })
		// A 503 with retry-after is the mesh's to clear (a peer that has
		// not seen this one on the endpoint's topic yet, a full queue),
		// not the user's: the BIND goes again after the hint, as
		// Node.BindAt sends it.
		var wait time.Duration
		if err == nil && len(res.codes) == 1 && res.first != nil && attempt < node.BindAttempts {
			wait = node.RetryAfter(res.first)
		}
		if wait == 0 {
			break
		}
		fmt.Fprintf(b.stderr, "jstp-peer bind: BIND %s at %s answered %s; trying again in %v\n", ep, b.where, answerText(res.first, res.codes[0]), wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			if again {
				return exitOK, false
			}
			return fail(b.stderr, "bind", exitInterrupted, "interrupted while binding"), false
		}
	}
	var msg string
	switch {
	case err != nil && ctx.Err() != nil:
		if again {
			return exitOK, false
		}
		return fail(b.stderr, "bind", exitInterrupted, "interrupted while binding"), false
	case err != nil:
		msg = err.Error()
	case len(res.codes) == 0 && res.closed:
		msg = c.Closed() + " before answering the BIND"
	case len(res.codes) == 0:
		msg = fmt.Sprintf("no answer to the BIND within %v", b.timeout)
	case !res.ok():
		msg = fmt.Sprintf("BIND %s at %s failed: %s", ep, b.where, answerText(res.first, res.codes[0]))
	}
	if msg != "" {
		if again {
			fmt.Fprintf(b.stderr, "jstp-peer bind: %s; trying again\n", strings.ReplaceAll(msg, "\n", "; "))
			return exitFail, false
		}
		return fail(b.stderr, "bind", exitFail, "%s", msg), false
	}
	if again {
		fmt.Fprintf(b.stderr, "bound again: %s at %s\n", ep, b.where)
	} else {
		fmt.Fprintf(b.stderr, "bound: %s at %s\n", ep, b.where)
	}
	return exitOK, true
}

// follow prints what arrives on c until Ctrl-C or --count (then it
// releases the binding and returns the exit status) or until the
// connection ends (lost).
func (b *binder) follow(ctx context.Context, c *node.Client) (code int, lost bool) {
	if b.done() {
		return b.release(c), false
	}
	for {
		select {
		case d, open := <-c.Events():
			if !open {
				return exitFail, true
			}
			b.deliver(c, d)
			if b.done() {
				return b.release(c), false
			}
		case <-ctx.Done():
			return b.release(c), false
		}
	}
}

// reconnect dials the peer and binds again until it succeeds, waiting
// longer after each failure; it returns nil when ctx ends first.
func (b *binder) reconnect(ctx context.Context) *node.Client {
	delay := reconnectFirst
	for {
		// Up to a fifth less than the delay, so binds that lost the same
		// peer spread out.
		wait := delay - time.Duration(rand.Int64N(int64(delay)/5+1))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		delay = min(2*delay, reconnectMax)
		c, err := dial(ctx, b.via, b.stderr)
		if err != nil {
			continue
		}
		if _, ok := b.bindOn(ctx, c, true); ok {
			return c
		}
		c.Close()
		if ctx.Err() != nil {
			return nil
		}
	}
}

// release sends the RELEASE for the binding and waits briefly for its
// answer, still delivering what arrives meanwhile (up to --count). Ctrl-C
// is a normal end, so the status is 0 even when the RELEASE fails:
// closing the connection releases the binding anyway.
func (b *binder) release(c *node.Client) int {
	rel := dispatch.NewSubscription(dispatch.RELEASE, *b.bind.Endpoint)
	rel.Host = b.bind.Host
	// A fresh context: the command's own is what Ctrl-C cancelled.
	res, err := request(context.Background(), c, rel, releaseTimeout, nil, func(d *dispatch.Dispatch) { b.deliver(c, d) })
	switch {
	case err != nil:
		fmt.Fprintf(b.stderr, "jstp-peer bind: RELEASE not sent (%v); the binding ends with the connection\n", err)
	case len(res.codes) == 0:
		fmt.Fprintf(b.stderr, "jstp-peer bind: no answer to the RELEASE; the binding ends with the connection\n")
	case !res.ok():
		fmt.Fprintf(b.stderr, "jstp-peer bind: RELEASE failed: %s\n", answerText(res.first, res.codes[0]))
	default:
		fmt.Fprintf(b.stderr, "released: %s\n", b.bind.Endpoint)
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
