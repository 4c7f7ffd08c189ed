package main

import (
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"time"
)

// results is everything a run reports; -json prints it as is.
type results struct {
	Date        string      `json:"date"`
	Go          string      `json:"go"`
	Platform    string      `json:"platform"`
	GOMAXPROCS  int         `json:"gomaxprocs"`
	CPUs        int         `json:"cpus"`
	N           int         `json:"requestsPerRound"`
	Rounds      int         `json:"rounds"`
	Depth       int         `json:"inFlight"`
	Burst       int         `json:"burst"`
	LineBytes   int         `json:"dispatchLineBytes"`
	Connections []namedConn `json:"connections"`
	Metrics     []metric    `json:"metrics"`
	Ratios      []ratio     `json:"ratios"`
	Notes       []string    `json:"notes,omitempty"`
	Problems    []string    `json:"problems,omitempty"`
}

// namedConn is what one side of a pair negotiated; Count is how many
// connections it has to the other side (one is expected).
type namedConn struct {
	Name  string   `json:"name"`
	Count int      `json:"count"`
	Conn  connInfo `json:"conn"`
}

// metric is one reported figure. For round trips Value is the median over
// rounds of each round's median latency; for pipelined runs, the median
// over rounds of requests per second.
type metric struct {
	Key    string  `json:"key"`
	Label  string  `json:"label"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	P99    float64 `json:"p99,omitempty"`              // round trips: median over rounds of the 99th percentile
	Writes float64 `json:"writesPerRequest,omitempty"` // write system calls per request, all processes on the path
	// Switches counts context switches per request, all threads of all
	// processes on the path: the wake-ups the path costs.
	Switches float64 `json:"switchesPerRequest,omitempty"`
	// CPU is the CPU time per request, in µs, all threads of all
	// processes on the path.
	CPU    float64        `json:"cpuMicrosPerRequest,omitempty"`
	Rounds []float64      `json:"rounds,omitempty"` // each round's value
	Codes  map[string]int `json:"codes,omitempty"`  // answers by code, warm-up included
}

// ratio compares two metrics measured in the same run.
type ratio struct {
	Label  string  `json:"label"`
	Value  float64 `json:"value"`
	Target string  `json:"target,omitempty"`
	Met    *bool   `json:"met,omitempty"`
}

func newResults(o options) *results {
	return &results{
		Date:       time.Now().UTC().Format("2006-01-02 15:04 MST"),
		Go:         runtime.Version(),
		Platform:   runtime.GOOS + "/" + runtime.GOARCH,
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		CPUs:       runtime.NumCPU(),
		N:          o.n,
		Rounds:     o.rounds,
		Depth:      o.depth,
		Burst:      o.burst,
	}
}

func (r *results) addSeries(se *series) {
	m := metric{Key: se.key, Label: se.label, Codes: map[string]int{}}
	var p99s []float64
	for _, rr := range append([]roundResult{se.warm}, se.rounds...) {
		for c, k := range rr.Codes {
			m.Codes[c] += k
		}
	}
	for _, rr := range se.rounds {
		if se.pipelined {
			m.Rounds = append(m.Rounds, rr.perSecond())
		} else {
			m.Rounds = append(m.Rounds, micros(rr.Median))
			p99s = append(p99s, micros(rr.P99))
		}
	}
	m.Value = medianOf(m.Rounds)
	if n := len(se.rounds) * se.rounds[0].N; se.writes > 0 && n > 0 {
		m.Writes = float64(se.writes) / float64(n)
		m.Switches = float64(se.switches) / float64(n)
		m.CPU = float64(se.cpu.Microseconds()) / float64(n)
	}
	m.Unit = "µs"
	if se.pipelined {
		m.Unit = "req/s"
	} else {
		m.P99 = medianOf(p99s)
	}
	r.Metrics = append(r.Metrics, m)
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func (r *results) addMemory(key, label string, bytes uint64) {
	r.Metrics = append(r.Metrics, metric{Key: key, Label: label, Value: float64(bytes) / (1 << 20), Unit: "MiB"})
}

func (r *results) addBurst(rr roundResult) {
	r.Metrics = append(r.Metrics, metric{
		Key:   "burst/time",
		Label: fmt.Sprintf("burst of %d requests, all answered", rr.N),
		Value: rr.Elapsed.Seconds(),
		Unit:  "s",
		Codes: rr.Codes,
	})
}

func (r *results) metric(key string) (metric, bool) {
	i := slices.IndexFunc(r.Metrics, func(m metric) bool { return m.Key == key })
	if i < 0 {
		return metric{}, false
	}
	return r.Metrics[i], true
}

// ratioSpecs are the comparisons reported. Latency ratios are ours over
// the baseline (lower is better); throughput ratios are ours over the
// baseline too (higher is better). Targets are the project's.
var ratioSpecs = []struct {
	label, num, den string
	atLeast         bool
	target          float64 // 0: none
}{
	{"round trip: mesh / raw libp2p stream", "rtt/mesh", "rtt/raw-stream", false, 1.2},
	{"round trip: mesh / raw TCP", "rtt/mesh", "rtt/raw-tcp", false, 0},
	{"pipelined req/s: mesh / raw libp2p stream", "pipe/mesh", "pipe/raw-stream", true, 0},
	{"pipelined req/s: mesh / raw stream, write per line", "pipe/mesh", "pipe/raw-each", true, 0.8},
	{"round trip: gateway / direct mesh", "rtt/gateway", "rtt/mesh", false, 1.3},
	{"pipelined req/s: gateway / direct mesh", "pipe/gateway", "pipe/mesh", true, 1 / 1.3},
	{"round trip: gateway / NATS", "rtt/gateway", "rtt/nats", false, 0},
	{"round trip: relay / raw TCP (a third process)", "rtt/raw-relay", "rtt/raw-tcp", false, 0},
	{"pipelined req/s: gateway / NATS", "pipe/gateway", "pipe/nats", true, 0},
	{"round trip: direct mesh / NATS", "rtt/mesh", "rtt/nats", false, 0},
	{"pipelined req/s: direct mesh / NATS", "pipe/mesh", "pipe/nats", true, 0},
}

func (r *results) addRatios() {
	for _, sp := range ratioSpecs {
		num, ok1 := r.metric(sp.num)
		den, ok2 := r.metric(sp.den)
		if !ok1 || !ok2 || den.Value == 0 {
			continue
		}
		ra := ratio{Label: sp.label, Value: num.Value / den.Value}
		if sp.target > 0 {
			met := ra.Value <= sp.target
			ra.Target = fmt.Sprintf("≤ %.2f", sp.target)
			if sp.atLeast {
				met = ra.Value >= sp.target
				ra.Target = fmt.Sprintf("≥ %.2f", sp.target)
			}
			ra.Met = &met
		}
		r.Ratios = append(r.Ratios, ra)
	}
	// What the gateway adds to a round trip, against what a process that
	// only copies bytes adds: the gateway's own cost, with the cost of
	// one more process on the path taken out.
	gw, ok1 := r.metric("rtt/gateway")
	direct, ok2 := r.metric("rtt/mesh")
	relay, ok3 := r.metric("rtt/raw-relay")
	tcp, ok4 := r.metric("rtt/raw-tcp")
	if ok1 && ok2 && ok3 && ok4 && relay.Value > tcp.Value {
		r.Ratios = append(r.Ratios, ratio{
			Label: "round trip added: (gateway − direct mesh) / (relay − raw TCP)",
			Value: (gw.Value - direct.Value) / (relay.Value - tcp.Value),
		})
	}
}

// expectedCode is the one answer each request of a measurement should
// get: 200 through the engine, "ok" from an echo.
func expectedCode(key string) string {
	if strings.HasSuffix(key, "/mesh") || strings.HasSuffix(key, "/gateway") || strings.HasPrefix(key, "burst/") {
		return "200"
	}
	return "ok"
}

// collectProblems lists what did not go as expected: requests without
// their one expected answer, stray lines from the gateway, and anything
// a child logged (the peers log warnings and errors only).
func (s *suite) collectProblems() {
	r := s.res
	for _, m := range r.Metrics {
		want := expectedCode(m.Key)
		for _, c := range slices.Sorted(maps.Keys(m.Codes)) {
			if c != want {
				r.Problems = append(r.Problems, fmt.Sprintf("%s: %d requests got %q instead of one %s", m.Key, m.Codes[c], c, want))
			}
		}
	}
	if g := s.gw; g != nil {
		r.Notes = append(r.Notes, fmt.Sprintf("gateway: %d dispatches sent, %d provisional (1xx) answers read besides the final ones", g.seq, g.provisional))
		if g.stray+g.unknown+g.dup > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("gateway: %d answers to no pending request, %d second final answers, %d lines that were no answer", g.stray, g.dup, g.unknown))
		}
	}
	for _, c := range s.children {
		if n, last := c.logs.lines(); n > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("%s wrote %d lines to stderr; the last: %s", c.role, n, strings.Join(last, " | ")))
		}
	}
}
