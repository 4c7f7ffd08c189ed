package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jstp-peer/jstp-peer/simulations"
)

const simExamples = `  jstp-peer sim list                            the scenarios and what --peers means for each
  jstp-peer sim load-spreading                  policies compared at 90% and 95% load, report in sim-load-spreading/
  jstp-peer sim fan-out --peers 1000            a thousand subscribers to one endpoint
  jstp-peer sim churn --seed 7 --out /tmp/churn another seed, another directory
  jstp-peer sim partition --short               small and brief, as the tests run it
`

func runSim(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("sim", "jstp-peer sim SCENARIO [flags]\n       jstp-peer sim list",
		`Run a simulation: many peers of this program, composed exactly as "up" composes
one, in this process, on a simulated network (QUIC over simnet, with latency
and bandwidth per link) or on loopback. Everything random about a run comes
from --seed. A progress bar shows on stderr; at the end a summary table, the
goals beside what was measured and the invariants go to stdout, and
result.json, SVG plots and report.html to --out.

The simulation runs in real time here (the tests run the same scenarios under
virtual time). Peers share this machine's CPUs, so latencies include the
simulator's own work; a busy machine makes them longer.

Exit status: 0 done and every invariant held; 1 an invariant failed (a lost
dispatch, an undelivered event) or the run failed; 2 a usage error; 130
interrupted. See docs/simulations.md.`,
		simExamples)
	peers := fs.Int("peers", 0, "run the scenario at size `N` (what N counts: sim list; default: the scenario's)")
	seed := fs.Uint64("seed", 1, "draw everything random in the run from seed `S`")
	out := fs.String("out", "", "write result.json, the plots and report.html to `DIR` (default sim-SCENARIO)")
	network := &choiceFlag{v: simulations.ModeSimnet, choices: []string{simulations.ModeSimnet, simulations.ModeLoopback}}
	fs.Var(network, "network", "`simnet` (simulated links with latency) or loopback (real QUIC on\n127.0.0.1)")
	short := fs.Bool("short", false, "a small, brief run, as the tests run it")
	logFile := fs.String("log", "", "write the peers' warnings and errors to `FILE` (default: SCENARIO.log in --out)")
	pos, code, ok := parseArgs(fs, nil, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(fs, stderr, "want one scenario (or list), got %d arguments", len(pos))
	}
	name := pos[0]
	if name == "list" {
		listScenarios(stdout)
		return exitOK
	}
	if _, ok := simulations.Lookup(name); !ok {
		return usageError(fs, stderr, "unknown scenario %q (see `jstp-peer sim list`)", name)
	}
	if *peers < 0 {
		return usageError(fs, stderr, "--peers must be positive")
	}
	dir := *out
	if dir == "" {
		dir = "sim-" + name
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(stderr, "sim", exitFail, "%v", err)
	}
	logPath := *logFile
	if logPath == "" {
		logPath = filepath.Join(dir, name+".log")
	}
	lf, err := os.Create(logPath)
	if err != nil {
		return fail(stderr, "sim", exitFail, "%v", err)
	}
	defer lf.Close()

	bar := newProgressBar(stderr)
	res, err := simulations.Run(ctx, name, simulations.Options{
		Peers:    *peers,
		Seed:     *seed,
		Out:      dir,
		Short:    *short,
		Network:  network.v,
		Progress: bar.update,
		Log:      lf,
	})
	bar.done()
	switch {
	case ctx.Err() != nil:
		return fail(stderr, "sim", exitInterrupted, "interrupted")
	case err != nil && !errors.Is(err, simulations.ErrInvariant):
		return fail(stderr, "sim", exitFail, "%s: %v (peers' log: %s)", name, err, logPath)
	}
	fmt.Fprintf(stdout, "%s: seed %d, %d peers, %s network (%s), %.1f s, %.0f s of CPU\n\n", res.Scenario, res.Seed, res.Peers, res.Network, res.Topology, res.Simulated, res.CPU)
	res.WriteText(stdout)
	fmt.Fprintf(stdout, "\nreport: %s\n", filepath.Join(dir, "report.html"))
	if err != nil {
		return fail(stderr, "sim", exitFail, "%v", err)
	}
	return exitOK
}

func listScenarios(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tPEERS\tWHAT IT SHOWS")
	for _, s := range simulations.Scenarios() {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", s.Name, s.DefaultPeers, s.Title)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\n--peers sets the size; what it counts:")
	for _, s := range simulations.Scenarios() {
		fmt.Fprintf(w, "  %-15s %s\n", s.Name, s.PeersFlag)
	}
}

// progressBar draws the run's progress on one line of a terminal, or
// prints a line per phase elsewhere (a log, a pipe).
type progressBar struct {
	w        io.Writer
	terminal bool
	start    time.Time

	mu    sync.Mutex
	phase string
	drawn bool
}

func newProgressBar(w io.Writer) *progressBar {
	return &progressBar{w: w, terminal: isTerminal(w), start: time.Now()}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

const barWidth = 30

func (b *progressBar) update(p simulations.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.terminal {
		if p.Phase != b.phase {
			fmt.Fprintf(b.w, "[%6.1fs] %s\n", time.Since(b.start).Seconds(), p.Phase)
			b.phase = p.Phase
		}
		return
	}
	frac := 0.0
	if p.Total > 0 {
		frac = min(float64(p.Done)/float64(p.Total), 1)
	}
	n := int(frac * barWidth)
	fmt.Fprintf(b.w, "\r\x1b[K[%s%s] %3.0f%% %s (%d/%d) %.0fs", strings.Repeat("#", n), strings.Repeat(".", barWidth-n), frac*100, p.Phase, p.Done, p.Total, time.Since(b.start).Seconds())
	b.drawn = true
}

func (b *progressBar) done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.terminal && b.drawn {
		fmt.Fprint(b.w, "\r\x1b[K")
	}
}
