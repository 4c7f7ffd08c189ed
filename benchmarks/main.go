// Command benchmarks measures a jstp-peer mesh across processes on
// loopback and compares it with baselines measured in the same run: a raw
// libp2p stream echo between hosts with the same transport, security and
// muxer, a raw TCP echo, and NATS request-reply.
//
// Run it from this directory with no arguments:
//
//	go run .
//
// Every side runs in its own process: the program starts itself again
// with -role for each peer, echo host, NATS server and responder, and
// drives them over their stdin and stdout. See docs/performance.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// options are the parent's flags.
type options struct {
	n      int
	rounds int
	depth  int
	burst  int
	only   string
	json   bool
	prof   string
	trace  string
	gossip int
	procs  int
	pin    bool
}

// groups are the benchmarks -only accepts, in the order they run.
var groups = []string{"roundtrip", "pipelined", "gateway", "memory"}

func main() {
	var (
		o    options
		role roleFlags
	)
	flag.IntVar(&o.n, "n", 2000, "requests per round of round trips (pipelined rounds send 10×n)")
	flag.IntVar(&o.rounds, "rounds", 5, "measured rounds per benchmark (the median is reported)")
	flag.IntVar(&o.depth, "depth", 64, "requests in flight in the pipelined benchmarks")
	flag.IntVar(&o.burst, "burst", 10000, "requests issued at once in the memory benchmark")
	flag.StringVar(&o.only, "only", "", "run one benchmark: "+strings.Join(groups, ", "))
	flag.BoolVar(&o.json, "json", false, "print the results as JSON instead of a table")
	flag.StringVar(&o.prof, "cpuprofile", "", "write CPU profiles of every process to this directory (ROLE.pprof; this program's, the gateway and NATS client, main.pprof)")
	flag.StringVar(&o.trace, "trace", "", "write execution traces of every child process to this directory (ROLE.trace); go tool trace -pprof=sched shows where hand-overs between goroutines wait")
	flag.IntVar(&o.procs, "procs", 0, "run every process, this one included, with GOMAXPROCS=`N` (0: Go's default, or the GOMAXPROCS environment variable)")
	flag.BoolVar(&o.pin, "pin", false, "pin each side to a CPU of its own, as two machines would be: peer A, the raw client, the relay, the NATS server and this program (the gateway and NATS client) on CPU 0, peer B, the raw echo and the NATS responder on CPU 1; each process then runs with GOMAXPROCS=1 unless -procs says otherwise (Linux)")
	flag.IntVar(&o.gossip, "gossip", 0, "instead of the suite, measure what saturation gossip costs a peer in a mesh of `N` peers (in this process)")
	role.register(flag.CommandLine)
	flag.Parse()

	// A child is killed with its process group; Ctrl-C in the parent
	// cancels ctx, which stops every child it started.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if role.name != "" {
		if err := runRole(ctx, role); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", role.name, err)
			os.Exit(1)
		}
		return
	}
	if o.gossip > 0 {
		if err := runGossip(ctx, o.gossip, os.Stdout); err != nil {
			exit(err, 1)
		}
		return
	}
	if err := o.check(); err != nil {
		exit(err, 2)
	}
	if o.procs > 0 {
		// The children inherit the environment.
		os.Setenv("GOMAXPROCS", strconv.Itoa(o.procs))
		runtime.GOMAXPROCS(o.procs)
	}
	if o.pin {
		if err := pinTo(cpuOf("")); err != nil {
			exit(err, 1)
		}
	}
	for _, dir := range []string{o.prof, o.trace} {
		if dir == "" {
			continue
		}
		// Each child creates its own file there; a directory that does
		// not exist yet would fail every child at start.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			exit(err, 1)
		}
	}
	stopProfile := func() {}
	if o.prof != "" {
		// The program is the gateway's and NATS's client, on the same
		// cores as the peers: its share is part of those paths.
		var err error
		if stopProfile, err = startCPUProfile(filepath.Join(o.prof, "main.pprof")); err != nil {
			exit(err, 1)
		}
	}
	err := run(ctx, o)
	stopProfile()
	if err != nil {
		exit(err, 1)
	}
}

func (o options) check() error {
	if o.n < o.depth || o.depth < 1 {
		return fmt.Errorf("-n (%d) must be at least -depth (%d), and -depth at least 1", o.n, o.depth)
	}
	if o.rounds < 1 || o.burst < 1 {
		return fmt.Errorf("-rounds and -burst must be positive")
	}
	if o.only != "" && !slices.Contains(groups, o.only) {
		return fmt.Errorf("-only %q: want one of %s", o.only, strings.Join(groups, ", "))
	}
	if o.procs < 0 {
		return fmt.Errorf("-procs must not be negative")
	}
	if o.pin && runtime.NumCPU() < 2 {
		return fmt.Errorf("-pin needs two CPUs, this machine has %d", runtime.NumCPU())
	}
	return nil
}

// selected reports whether group g runs.
func (o options) selected(g string) bool { return o.only == "" || o.only == g }

// exit reports err and ends the program with status code.
func exit(err error, code int) {
	fmt.Fprintln(os.Stderr, "benchmarks:", err)
	os.Exit(code)
}
