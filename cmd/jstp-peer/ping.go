package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
)

const pingExamples = `  jstp-peer ping 12D3KooWLGbwSDTiPGUsuV8apcF9u24Z4DQvtJorY9AoZWx6LLZ7
  PING 12D3KooWLGbwSDTiPGUsuV8apcF9u24Z4DQvtJorY9AoZWx6LLZ7 (libp2p ping through 127.0.0.1:33333)
  pong from 12D3KooWLGbwSDTiPGUsuV8apcF9u24Z4DQvtJorY9AoZWx6LLZ7: time=412µs
  pong from 12D3KooWLGbwSDTiPGUsuV8apcF9u24Z4DQvtJorY9AoZWx6LLZ7: time=380µs
  pong from 12D3KooWLGbwSDTiPGUsuV8apcF9u24Z4DQvtJorY9AoZWx6LLZ7: time=395µs
  3 pings, 3 pongs, 0 lost; average 396µs

  jstp-peer ping /ip4/192.0.2.10/tcp/4033/p2p/12D3KooW... --count 10 --interval 200ms
`

func runPing(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("ping", "jstp-peer ping PEER [flags]",
		`Measure round trips from the local peer to another with libp2p's ping
protocol (/ipfs/ping/1.0.0), as ipfs ping does. PEER is a peer id, or a
multiaddr ending in /p2p/<peer id> (then tried even if the local peer did
not know it). Each ping is one GET ["ping", PEER] to the local peer through
its TCP gateway (--via); only clients on its own machine may ask.

Exit status: 0 at least one pong; 1 none (every ping lost), the peer refused,
or no peer at --via; 2 a usage error; 130 interrupted before any pong.
Every flag can also be set with JSTP_PEER_<FLAG>.`,
		pingExamples)
	s := newSettings()
	s.register(fs, keyVia, keyConfig)
	count := fs.Int("count", 3, "how many pings (`N`)")
	interval := fs.Duration("interval", time.Second, "wait between pings")
	timeout := fs.Duration("timeout", defaultTimeout, "how long to wait for each pong")
	pos, code, ok := parseArgs(fs, s, args, stdout, stderr)
	if !ok {
		return code
	}
	switch {
	case len(pos) != 1:
		return usageError(fs, stderr, "want one PEER, got %d arguments", len(pos))
	case *count < 1:
		return usageError(fs, stderr, "--count must be at least 1")
	case *interval < 0:
		return usageError(fs, stderr, "--interval must not be negative")
	case *timeout <= 0:
		return usageError(fs, stderr, "--timeout must be positive")
	}
	target := strings.TrimSpace(pos[0])
	if err := checkPeerArg(target); err != nil {
		return usageError(fs, stderr, "%v", err)
	}
	l, code, ok := dialLocal(ctx, "ping", s, *timeout, stderr)
	if !ok {
		return code
	}
	defer l.Close()
	fmt.Fprintf(stdout, "PING %s (libp2p ping through %s)\n", target, l.via)
	var pongs int
	var total time.Duration
	sent := 0
	for i := 0; i < *count; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(*interval):
			}
		}
		if ctx.Err() != nil {
			break
		}
		sent++
		a, answer, code, ok := l.ask(ctx, dispatch.New(dispatch.GET, "ping", target))
		if !ok {
			if code == exitInterrupted {
				sent--
				break
			}
			return code
		}
		switch {
		case answer == 200:
			var p node.PingInfo
			if err := json.Unmarshal(a.Body, &p); err != nil {
				return fail(stderr, "ping", exitFail, "GET /ping answered something else than a pong: %s", bodyText(a.Body))
			}
			rtt := time.Duration(p.RTTMS * float64(time.Millisecond))
			pongs++
			total += rtt
			fmt.Fprintf(stdout, "pong from %s: time=%s\n", p.ID, roundRTT(rtt))
		case answer >= 500:
			// Lost ("no pong from ..."): the next ping may fare better.
			fmt.Fprintf(stdout, "%s\n", bodyText(a.Body))
		default:
			// Refused (a bad PEER, this peer itself): asking again
			// would only be refused again.
			return fail(stderr, "ping", exitFail, "%s", bodyText(a.Body))
		}
	}
	summary := fmt.Sprintf("%d pings, %d pongs, %d lost", sent, pongs, sent-pongs)
	if pongs > 0 {
		summary += "; average " + roundRTT(total/time.Duration(pongs))
	}
	fmt.Fprintln(stdout, summary)
	switch {
	case pongs > 0:
		return exitOK
	case ctx.Err() != nil:
		return exitInterrupted
	}
	return exitFail
}

// roundRTT writes a round trip to the microsecond: "412µs", "1.253ms".
func roundRTT(d time.Duration) string {
	return d.Round(time.Microsecond).String()
}
