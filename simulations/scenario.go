package simulations

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure a scenario run. Zero values take the defaults.
type Options struct {
	// Peers is the scenario's main size (what it means depends on the
	// scenario: all peers, subscribers, ...); 0 takes its default.
	Peers int
	// Seed makes the run reproducible: keys, placement, topology,
	// arrivals and work are drawn from it.
	Seed uint64
	// Out is the directory result.json, the plots and report.html are
	// written to; empty writes nothing.
	Out string
	// Short runs the scenario small and brief, as the tests do.
	Short bool
	// Network is ModeSimnet (default) or ModeLoopback.
	Network string
	// VirtualTime tells the scenario that it runs under testing/synctest,
	// for the report (the scenario code is the same).
	VirtualTime bool
	// Progress, if set, is told how far the run is. Called from the
	// scenario's goroutines, one call at a time.
	Progress func(Progress)
	// Log receives the peers' warnings and errors (default: discarded).
	Log io.Writer
}

// Progress is how far a run is: Done of Total steps of the current
// Phase.
type Progress struct {
	Phase string
	Done  int
	Total int
}

// Scenario is one simulation.
type Scenario struct {
	Name string
	// Title says in a few words what the scenario shows; Summary says
	// how.
	Title   string
	Summary string
	// PeersFlag says what --peers counts for this scenario, and its
	// default.
	PeersFlag    string
	DefaultPeers int
	run          func(ctx context.Context, r *run) error
}

var scenarios []Scenario

func init() {
	scenarios = []Scenario{
		loadSpreading,
		churn,
		fanOut,
		resolution,
		autoscale,
		partition,
		security,
	}
}

// Scenarios lists the scenarios, in the order `jstp-peer sim list`
// shows them.
func Scenarios() []Scenario { return append([]Scenario(nil), scenarios...) }

// Lookup finds a scenario by name.
func Lookup(name string) (Scenario, bool) {
	for _, s := range scenarios {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

// ErrInvariant is wrapped by Run's error when the run completed but an
// invariant failed (a lost dispatch, an undelivered event).
var ErrInvariant = errors.New("invariant failed")

// Run runs the named scenario and, when o.Out is set, writes its files.
// The result is returned even when an invariant failed (the error then
// wraps ErrInvariant).
func Run(ctx context.Context, name string, o Options) (*Result, error) {
	s, ok := Lookup(name)
	if !ok {
		return nil, fmt.Errorf("simulations: unknown scenario %q (see Scenarios)", name)
	}
	if o.Peers < 0 {
		return nil, fmt.Errorf("simulations: --peers must be positive")
	}
	if o.Peers == 0 {
		o.Peers = s.DefaultPeers
		if o.Short {
			o.Peers = min(o.Peers, shortPeers(s.Name))
		}
	}
	if o.Network == "" {
		o.Network = ModeSimnet
	}
	if o.Network != ModeSimnet && o.Network != ModeLoopback {
		return nil, fmt.Errorf("simulations: unknown network %q (want %s or %s)", o.Network, ModeSimnet, ModeLoopback)
	}
	r := &run{
		o: o,
		res: &Result{
			Scenario: s.Name,
			Summary:  s.Summary,
			Seed:     o.Seed,
			Peers:    o.Peers,
			Network:  o.Network,
			Clock:    "real",
			Short:    o.Short,
			Started:  time.Now(),
			Params:   map[string]any{},
		},
	}
	if o.VirtualTime {
		r.res.Clock = "virtual"
	}
	w := o.Log
	if w == nil {
		w = io.Discard
	}
	r.log = slog.New(slog.NewTextHandler(&lockedWriter{w: w}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cpu := cpuSeconds()
	start := time.Now()
	err := s.run(ctx, r)
	if o.Network == ModeLoopback {
		r.res.Topology = "loopback"
	}
	r.res.Simulated = time.Since(start).Seconds()
	r.res.CPU = cpuSeconds() - cpu
	if err != nil {
		return r.res, err
	}
	if o.Out != "" {
		if err := r.res.write(o.Out); err != nil {
			return r.res, err
		}
	}
	if failed := r.res.Failed(); len(failed) > 0 {
		var names []string
		for _, c := range failed {
			names = append(names, fmt.Sprintf("%s = %s (want %s)", c.Name, label(c.Value), c.Want))
		}
		return r.res, fmt.Errorf("%w: %s", ErrInvariant, strings.Join(names, "; "))
	}
	return r.res, nil
}

// shortPeers is each scenario's size in short runs.
func shortPeers(name string) int {
	switch name {
	case "fan-out":
		return 20
	case "resolution":
		return 16
	case "churn":
		return 18
	case "load-spreading":
		return 22
	case "partition":
		return 15
	case "autoscale":
		return 4
	case "security":
		return 12
	}
	return 30
}

// run is one scenario run in progress: its options, logger and result.
type run struct {
	o   Options
	log *slog.Logger
	res *Result

	pmu sync.Mutex
}

func (r *run) progress(phase string, done, total int) {
	if r.o.Progress == nil {
		return
	}
	r.pmu.Lock()
	defer r.pmu.Unlock()
	r.o.Progress(Progress{Phase: phase, Done: done, Total: total})
}

func (r *run) check(name string, value float64, want string, ok bool) {
	r.res.Invariants = append(r.res.Invariants, Check{Name: name, Value: value, Want: want, OK: ok})
}

func (r *run) goal(name, target string, value float64, unit string, met bool) {
	r.res.Goals = append(r.res.Goals, Goal{Name: name, Target: target, Value: value, Unit: unit, Met: met})
}

func (r *run) note(format string, args ...any) {
	r.res.Notes = append(r.res.Notes, fmt.Sprintf(format, args...))
}

// lockedWriter serialises the peers' log lines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// measureMemory reads the process's resident set and the Go heap after
// a collection, with peers running.
func measureMemory(peers int) *Memory {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := &Memory{
		Peers:      peers,
		HeapMiB:    float64(ms.HeapInuse) / (1 << 20),
		Goroutines: runtime.NumGoroutine(),
		RSSMiB:     float64(rssBytes()) / (1 << 20),
	}
	if peers > 0 {
		m.RSSPerPeerMiB = m.RSSMiB / float64(peers)
		m.HeapPerPeerMiB = m.HeapMiB / float64(peers)
		m.GoroutinesPerPeer = float64(m.Goroutines) / float64(peers)
	}
	return m
}

// rssBytes reads VmRSS from /proc/self/status (Linux); 0 elsewhere.
func rssBytes() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fields := strings.Fields(rest)
			if len(fields) > 0 {
				kb, _ := strconv.ParseUint(fields[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}
