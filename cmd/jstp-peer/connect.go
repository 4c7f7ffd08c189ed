package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/routing"
)

const connectExamples = `  jstp-peer connect /ip4/192.0.2.10/tcp/4033/p2p/12D3KooW...
  connected: 12D3KooWLGbwSDTiPGUsuV8apcF9u24Z4DQvtJorY9AoZWx6LLZ7 (out, /ip4/192.0.2.10/tcp/4033)

  jstp-peer connect 12D3KooW...                      by peer id: its addresses from the DHT
`

func runConnect(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("connect", "jstp-peer connect MULTIADDR [flags]",
		`Make the local peer connect to another peer now, as ipfs swarm connect
does: MULTIADDR is the other peer's address ending in /p2p/<peer id>, as
"jstp-peer up" and "jstp-peer id" print it, or a bare peer id (its
addresses are then looked up in the DHT). The local peer is asked with
POST ["peers"] through its TCP gateway (--via); only clients on its own
machine may ask.

Exit status: 0 connected; 1 the peer could not connect, or no peer at --via;
2 a usage error. Every flag can also be set with JSTP_PEER_<FLAG>.`,
		connectExamples)
	s := newSettings()
	s.register(fs, keyVia, keyConfig)
	asJSON := fs.Bool("json", false, `print the connected peer as JSON: {"id","addrs","latencyMs","inbound","agent"}`)
	timeout := fs.Duration("timeout", defaultTimeout, "how long to wait for the connection")
	pos, code, ok := parseArgs(fs, s, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(fs, stderr, "want one MULTIADDR, got %d arguments", len(pos))
	}
	if *timeout <= 0 {
		return usageError(fs, stderr, "--timeout must be positive")
	}
	addr := strings.TrimSpace(pos[0])
	if err := checkPeerArg(addr); err != nil {
		return usageError(fs, stderr, "%v", err)
	}
	l, code, ok := dialLocal(ctx, "connect", s, *timeout, stderr)
	if !ok {
		return code
	}
	defer l.Close()
	d := dispatch.New(dispatch.POST, "peers")
	d.Body, _ = json.Marshal(map[string]string{"addr": addr})
	a, answer, code, ok := l.ask(ctx, d)
	if !ok {
		return code
	}
	if answer != 200 {
		return fail(stderr, "connect", exitFail, "%s", bodyText(a.Body))
	}
	var row peerRow
	if err := json.Unmarshal(a.Body, &row); err != nil || row.ID == "" {
		return fail(stderr, "connect", exitFail, "POST /peers answered something else than a peer: %s", bodyText(a.Body))
	}
	if *asJSON {
		fmt.Fprintf(stdout, "%s\n", compactJSON(a.Body))
		return exitOK
	}
	dir := "out"
	if row.Inbound {
		dir = "in"
	}
	fmt.Fprintf(stdout, "connected: %s (%s, %s)\n", row.ID, dir, strings.Join(row.Addrs, ", "))
	return exitOK
}

// checkPeerArg checks a PEER argument: a peer id, or a multiaddr that
// names one (/p2p/<peer id> at its end).
func checkPeerArg(s string) error {
	t, err := routing.Classify(dispatch.Host{Name: s})
	if err != nil || t.Kind != routing.Peer {
		return fmt.Errorf("%q is not a peer id or a multiaddr ending in /p2p/<peer id>", s)
	}
	return nil
}

// compactJSON is raw on one line, as it is otherwise.
func compactJSON(raw json.RawMessage) string {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return string(raw)
	}
	return buf.String()
}
