package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

const peersExamples = `  jstp-peer peers
  PEER                                                  LATENCY  DIR  ADDRESSES
  12D3KooWGRUVh8Mrz8kDBQt5X2bAqxeT1pHjuvkB4W2ZXBnAfXQM  0.4ms    in   /ip4/127.0.0.1/tcp/51234

  jstp-peer peers --json --via 127.0.0.1:40001
`

// peerRow is one connected peer, as GET ["peers"] answers it and as the
// command prints it.
type peerRow struct {
	ID        string   `json:"id"`
	Addrs     []string `json:"addrs"`
	LatencyMS float64  `json:"latencyMs"`
	Inbound   bool     `json:"inbound"`
	Agent     string   `json:"agent,omitempty"`
}

func runPeers(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("peers", "jstp-peer peers [flags]",
		`List the peers the local peer is connected to: peer id, measured latency,
direction of the first connection, remote addresses. It asks GET ["peers"]
through the TCP gateway of the local peer (--via).

Exit status: 0 listed (even none); 1 no peer at --via or no usable answer;
2 a usage error. Every flag can also be set with JSTP_PEER_<FLAG>.`,
		peersExamples)
	s := newSettings()
	s.register(fs, keyVia, keyConfig)
	asJSON := fs.Bool("json", false, `print JSON: [{"id","addrs","latencyMs","inbound","agent"}, ...]`)
	timeout := fs.Duration("timeout", defaultTimeout, "how long to wait for the answer")
	pos, code, ok := parseArgs(fs, s, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(fs, stderr, "want no arguments, got %d", len(pos))
	}
	if *timeout <= 0 {
		return usageError(fs, stderr, "--timeout must be positive")
	}
	l, code, ok := dialLocal(ctx, "peers", s, *timeout, stderr)
	if !ok {
		return code
	}
	defer l.Close()
	first, answer, code, ok := l.ask(ctx, dispatch.New(dispatch.GET, "peers"))
	if !ok {
		return code
	}
	if answer < 200 || answer > 299 {
		return fail(stderr, "peers", exitFail, "GET /peers: %s", answerText(first, answer))
	}
	rows, err := parsePeers(first.Body)
	if err != nil {
		return fail(stderr, "peers", exitFail, "GET /peers answered something else than a list of peers: %v", err)
	}
	if *asJSON {
		b, err := json.Marshal(rows)
		if err != nil {
			return fail(stderr, "peers", exitFail, "%v", err)
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return exitOK
	}
	printPeers(stdout, rows)
	return exitOK
}

// parsePeers reads the body of GET ["peers"]:
// [{"id","addrs","latencyMs","inbound","agent"}, ...].
func parsePeers(body json.RawMessage) ([]peerRow, error) {
	var rows []peerRow
	if err := json.Unmarshal(body, &rows); err != nil {
		return nil, err
	}
	for i, p := range rows {
		if p.ID == "" {
			return nil, fmt.Errorf("a peer without an id")
		}
		if p.Addrs == nil {
			rows[i].Addrs = []string{}
		}
	}
	return rows, nil
}

func printPeers(w io.Writer, rows []peerRow) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "no connected peers")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tLATENCY\tDIR\tADDRESSES")
	for _, r := range rows {
		lat := "-"
		if r.LatencyMS > 0 {
			lat = (time.Duration(r.LatencyMS * float64(time.Millisecond))).Round(10 * time.Microsecond).String()
		}
		dir := "out"
		if r.Inbound {
			dir = "in"
		}
		addrs := r.Addrs
		if len(addrs) == 0 {
			addrs = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, lat, dir, addrs[0])
		for _, a := range addrs[1:] {
			fmt.Fprintf(tw, "\t\t\t%s\n", a)
		}
	}
	_ = tw.Flush()
}
