package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jstp-peer/jstp-peer/internal/gctune"
)

// The parent and its children talk in JSON lines. A child writes one
// "READY {...}" line once it serves, then answers each command read from
// its stdin with one reply line on its stdout; its logs go to stderr. A
// child exits when its stdin closes, so the parent ending, however it
// ends, ends its children.

const readyPrefix = "READY "

// ready is what a child announces once it serves.
type ready struct {
	PID     int        `json:"pid"`
	ID      string     `json:"id,omitempty"`      // libp2p peer id
	Addr    string     `json:"addr,omitempty"`    // libp2p multiaddr ending in /p2p/ID
	TCP     string     `json:"tcp,omitempty"`     // raw TCP echo address
	Gateway string     `json:"gateway,omitempty"` // classic TCP gateway address
	URL     string     `json:"url,omitempty"`     // NATS client URL
	Conns   []connInfo `json:"conns,omitempty"`
}

// connInfo is what libp2p negotiated on one connection.
type connInfo struct {
	Peer      string `json:"peer"`
	Transport string `json:"transport"`
	Security  string `json:"security"`
	Muxer     string `json:"muxer"`
	Early     bool   `json:"earlyMuxer"` // muxer chosen inside the security handshake
}

func (c connInfo) String() string {
	s := fmt.Sprintf("%s + %s over %s", c.Security, c.Muxer, c.Transport)
	if c.Early {
		s += " (muxer negotiated in the handshake)"
	}
	return s
}

// command is one thing the parent asks of a child.
type command struct {
	Op    string `json:"op"`
	N     int    `json:"n,omitempty"`
	Depth int    `json:"depth,omitempty"`
	Line  []byte `json:"line,omitempty"` // the bytes a baseline echoes
}

// reply is a child's answer to a command.
type reply struct {
	Err   string      `json:"err,omitempty"`
	Round roundResult `json:"round"`
	Conns []connInfo  `json:"conns,omitempty"`
}

// roundResult is one measured round.
type roundResult struct {
	N       int            `json:"n"`
	Elapsed time.Duration  `json:"elapsedNs"`
	Median  time.Duration  `json:"medianNs,omitempty"` // per-request latency, round trips only
	P99     time.Duration  `json:"p99Ns,omitempty"`
	Codes   map[string]int `json:"codes,omitempty"` // answer codes seen; "error" for failed requests
}

// perSecond is the round's throughput.
func (r roundResult) perSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.N) / r.Elapsed.Seconds()
}

// roleFlags are the flags of a child process.
type roleFlags struct {
	name  string // peer-a, peer-b, raw-a, raw-b, raw-relay, nats-server, nats-responder
	boot  string // peer-a: peer B's multiaddr
	peer  string // raw-a: raw-b's multiaddr
	tcp   string // raw-a, raw-relay: raw-b's TCP echo address
	relay string // raw-a: raw-relay's address
	url   string // nats-responder: the server's URL
	prof  string // write a CPU profile of this process here
	trace string // write an execution trace of this process here
	cpu   int    // pin this process to this CPU; -1: not pinned
}

func (r *roleFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.name, "role", "", "internal: run as one side of a benchmark")
	fs.StringVar(&r.boot, "boot", "", "internal: bootstrap multiaddr (peer-a)")
	fs.StringVar(&r.peer, "peer", "", "internal: echo host multiaddr (raw-a)")
	fs.StringVar(&r.tcp, "tcp", "", "internal: TCP echo address (raw-a, raw-relay)")
	fs.StringVar(&r.relay, "relay", "", "internal: TCP relay address (raw-a)")
	fs.StringVar(&r.url, "url", "", "internal: NATS URL (nats-responder)")
	fs.StringVar(&r.prof, "role-cpuprofile", "", "internal: CPU profile file of this process")
	fs.StringVar(&r.trace, "role-trace", "", "internal: execution trace file of this process")
	fs.IntVar(&r.cpu, "role-cpu", -1, "internal: the CPU this process is pinned to (-pin)")
}

// handler serves one command in a child.
type handler func(ctx context.Context, c command) (reply, error)

// serveCommands announces r and then answers commands from stdin until it
// closes. Commands run one at a time, in order.
func serveCommands(ctx context.Context, r ready, ops map[string]handler) error {
	r.PID = os.Getpid()
	out := bufio.NewWriter(os.Stdout)
	if err := writeLine(out, readyPrefix, r); err != nil {
		return err
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64<<10), 1<<20)
	for in.Scan() {
		var c command
		var rep reply
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			rep.Err = "bad command: " + err.Error()
		} else if h, ok := ops[c.Op]; !ok {
			rep.Err = "unknown command " + c.Op
		} else if rep, err = h(ctx, c); err != nil {
			rep.Err = err.Error()
		}
		if err := writeLine(out, "", rep); err != nil {
			return err
		}
	}
	if err := in.Err(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

func writeLine(w *bufio.Writer, prefix string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.WriteString(prefix)
	w.Write(b)
	w.WriteByte('\n')
	return w.Flush()
}

// runRole runs this process as one side of a benchmark.
func runRole(ctx context.Context, r roleFlags) error {
	if r.cpu >= 0 {
		if err := pinTo(r.cpu); err != nil {
			return err
		}
	}
	// Every process, baselines included, runs with the collector pace of
	// jstp-peer up.
	gctune.Apply()
	if r.prof != "" {
		stop, err := startCPUProfile(r.prof)
		if err != nil {
			return err
		}
		defer stop()
	}
	if r.trace != "" {
		stop, err := startTrace(r.trace)
		if err != nil {
			return err
		}
		defer stop()
	}
	switch r.name {
	case "peer-a":
		return runPeerA(ctx, r)
	case "peer-b":
		return runPeerB(ctx)
	case "raw-a":
		return runRawA(ctx, r)
	case "raw-b":
		return runRawB(ctx)
	case "raw-relay":
		return runRawRelay(ctx, r)
	case "nats-server":
		return runNATSServer(ctx)
	case "nats-responder":
		return runNATSResponder(ctx, r)
	}
	return fmt.Errorf("unknown role %q", r.name)
}
