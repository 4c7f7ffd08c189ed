package simulations

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jstp-peer/jstp-peer/routing"
)

var loadSpreading = Scenario{
	Name:  "load-spreading",
	Title: "replica policies against an oracle, at 90% and 95% load and as reports grow stale",
	Summary: "Replicas with capacities spread 4x serve open-loop Poisson load at 90% and 95% of their total capacity; " +
		"every replica policy and a full-information oracle are compared on latency, utilisation and time overloaded, " +
		"and the policies that read gossiped reports again as the reports grow stale.",
	PeersFlag:    "peers in all: a third are replicas (at least 10), the rest clients (at least 20)",
	DefaultPeers: 30,
	run:          runLoadSpreading,
}

// lsConfig sizes a load-spreading run.
type lsConfig struct {
	Capacities []int
	Clients    int
	Service    time.Duration
	Loads      []float64
	Policies   []string
	Warmup     time.Duration
	Phase      time.Duration
	Deadline   time.Duration
	// Staleness are the replicas' report intervals swept, in service
	// times, and the policies swept.
	Staleness         []float64
	StalenessPolicies []string
	// MainInterval is the replicas' sampling interval in the main
	// comparison (0: the peers' default); when set, the staleness sweep
	// reuses the main comparison instead of starting other meshes.
	MainInterval time.Duration
}

func lsSizes(o Options) lsConfig {
	replicas := max(10, o.Peers/3)
	clients := max(20, o.Peers-replicas)
	if o.Short {
		// Enough clients to keep the policies' per-client view partial,
		// few enough to start quickly.
		clients = 12
	}
	cfg := lsConfig{
		Capacities: spreadCapacities(replicas, 4),
		Clients:    clients,
		Service:    50 * time.Millisecond,
		Loads:      []float64{0.90, 0.95},
		Policies:   append(append([]string(nil), routing.PolicyNames...), PolicyOracle),
		Warmup:     2 * time.Second,
		Phase:      10 * time.Second,
		Deadline:   5 * time.Second,
		Staleness:  []float64{1, 10, 100},
		StalenessPolicies: []string{
			routing.PolicyHotCold, routing.PolicyWeightedRandom, routing.PolicyLeastSaturated,
		},
	}
	if o.Short {
		// A shorter service time: the same number of requests in less
		// simulated time.
		cfg.Service = 20 * time.Millisecond
		cfg.Warmup = 300 * time.Millisecond
		cfg.Phase = time.Second
		cfg.Loads = []float64{0.90}
		cfg.Policies = []string{routing.PolicyHotCold, routing.PolicyRandom, routing.PolicyWeightedRandom, PolicyOracle}
		cfg.MainInterval = 10 * cfg.Service
		cfg.StalenessPolicies = []string{routing.PolicyHotCold, routing.PolicyWeightedRandom}
	}
	return cfg
}

// spreadCapacities gives n replicas capacities from 1 to spread, evenly
// spread: 1,1,1,2,2,3,3,3,4,4 for ten.
func spreadCapacities(n, spread int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = 1 + i*spread/n
	}
	return out
}

func runLoadSpreading(ctx context.Context, r *run) error {
	cfg := lsSizes(r.o)
	total := 0
	for _, c := range cfg.Capacities {
		total += c
	}
	r.res.Topology = Flat.Name
	r.res.Peers = len(cfg.Capacities) + cfg.Clients
	r.res.Params = map[string]any{
		"replicas":        len(cfg.Capacities),
		"capacities":      cfg.Capacities,
		"clients":         cfg.Clients,
		"serviceMs":       ms(cfg.Service),
		"loads":           cfg.Loads,
		"policies":        cfg.Policies,
		"warmupSec":       cfg.Warmup.Seconds(),
		"phaseSec":        cfg.Phase.Seconds(),
		"deadlineSec":     cfg.Deadline.Seconds(),
		"capacityPerSec":  float64(total) / cfg.Service.Seconds(),
		"stalenessTimesS": cfg.Staleness,
	}
	steps := len(cfg.Loads) * len(cfg.Policies)
	if cfg.MainInterval == 0 {
		steps += len(cfg.Staleness) * len(cfg.StalenessPolicies)
	}
	step := 0
	var runs []phaseResult

	// Main comparison: the peers' default report interval (in short
	// runs, the one staleness swept, so the sweep needs no other mesh).
	s, err := newService(ctx, r, serviceConfig{
		Capacities: cfg.Capacities, Clients: cfg.Clients, Service: cfg.Service,
		Interval: cfg.MainInterval,
		Deadline: cfg.Deadline, CacheTTL: time.Hour, Topology: Flat, Seed: r.o.Seed,
	})
	if err != nil {
		return err
	}
	for _, load := range cfg.Loads {
		for _, pol := range cfg.Policies {
			r.progress(fmt.Sprintf("%s at %.0f%%", pol, load*100), step, steps)
			res, err := s.phase(ctx, pol, load, cfg.Warmup, cfg.Phase)
			if err != nil {
				s.close()
				return err
			}
			runs = append(runs, res)
			step++
		}
	}
	s.close()

	// Staleness: the replicas report every k service times.
	var stale []phaseResult
	if cfg.MainInterval > 0 {
		// A short run measures one staleness, the main comparison's.
		k := float64(cfg.MainInterval) / float64(cfg.Service)
		for _, pol := range cfg.StalenessPolicies {
			if x, ok := findRun(runs, pol, cfg.Loads[0], 0); ok {
				x.Staleness = k
				stale = append(stale, x)
			}
		}
		cfg.Staleness = []float64{k}
	}
	for k, st := range cfg.Staleness {
		if cfg.MainInterval > 0 {
			break
		}
		s, err := newService(ctx, r, serviceConfig{
			Capacities: cfg.Capacities, Clients: cfg.Clients, Service: cfg.Service,
			Interval: time.Duration(st * float64(cfg.Service)),
			Deadline: cfg.Deadline, CacheTTL: time.Hour, Topology: Flat, Seed: r.o.Seed + uint64(k) + 1,
		})
		if err != nil {
			return err
		}
		for _, pol := range cfg.StalenessPolicies {
			r.progress(fmt.Sprintf("%s, reports every %gS", pol, st), step, steps)
			res, err := s.phase(ctx, pol, cfg.Loads[0], cfg.Warmup, cfg.Phase)
			if err != nil {
				s.close()
				return err
			}
			res.Staleness = st
			stale = append(stale, res)
			step++
		}
		s.close()
	}
	r.progress("done", steps, steps)
	lsReport(r, cfg, runs, stale)
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func findRun(runs []phaseResult, policy string, load, staleness float64) (phaseResult, bool) {
	for _, x := range runs {
		if x.Policy == policy && x.Load == load && x.Staleness == staleness {
			return x, true
		}
	}
	return phaseResult{}, false
}

func ratio(a, b float64) float64 {
	if b == 0 || !finite(a) || !finite(b) {
		return math.NaN()
	}
	return a / b
}

func lsReport(r *run, cfg lsConfig, runs, stale []phaseResult) {
	res := r.res
	lost := 0
	for _, x := range append(append([]phaseResult(nil), runs...), stale...) {
		lost += x.Latency.Outcomes[OutcomeLost]
	}
	r.check("dispatches lost (no answer, no 503/504)", float64(lost), "0", lost == 0)

	res.Table = Table{
		Title:   "Latency by policy and load",
		Columns: []string{"POLICY", "LOAD", "REQUESTS", "P50 MS", "P99 MS", "P99/ORACLE", "ANSWERED %", "MAX UTIL", "OVERLOADED %"},
	}
	for _, x := range runs {
		or, _ := findRun(runs, PolicyOracle, x.Load, 0)
		maxU, meanO := 0.0, 0.0
		for _, rs := range x.Replicas {
			maxU = math.Max(maxU, rs.Utilisation)
			meanO += rs.Overloaded / float64(len(x.Replicas))
		}
		res.Table.Rows = append(res.Table.Rows, []string{
			x.Policy, fmt.Sprintf("%.0f%%", x.Load*100), fmt.Sprint(x.Latency.Count),
			fmtFloat(x.Latency.P50), fmtFloat(x.Latency.P99), fmtFloat(ratio(x.Latency.P99, or.Latency.P99)),
			fmtFloat(x.Latency.Answered * 100), fmtFloat(maxU), fmtFloat(meanO * 100),
		})
	}

	// Per replica, at the first load.
	util := Table{Title: fmt.Sprintf("Utilisation per replica at %.0f%% load (time overloaded in brackets)", cfg.Loads[0]*100)}
	util.Columns = []string{"POLICY"}
	for i, c := range cfg.Capacities {
		util.Columns = append(util.Columns, fmt.Sprintf("R%d C=%d", i, c))
	}
	utilFig := Figure{File: "utilisation.svg", Title: fmt.Sprintf("Utilisation per replica at %.0f%% load", cfg.Loads[0]*100), Kind: "bar", XLabel: "replica (capacity)", YLabel: "utilisation"}
	for i, c := range cfg.Capacities {
		utilFig.Categories = append(utilFig.Categories, fmt.Sprintf("%d (%d)", i, c))
	}
	for _, pol := range cfg.Policies {
		x, ok := findRun(runs, pol, cfg.Loads[0], 0)
		if !ok {
			continue
		}
		row := []string{pol}
		ser := Series{Name: pol}
		for _, rs := range x.Replicas {
			row = append(row, fmt.Sprintf("%.2f (%.0f%%)", rs.Utilisation, rs.Overloaded*100))
			ser.Y = append(ser.Y, rs.Utilisation)
		}
		util.Rows = append(util.Rows, row)
		utilFig.Series = append(utilFig.Series, ser)
	}
	res.Tables = append(res.Tables, util)

	p99Fig := Figure{File: "p99.svg", Title: "p99 latency by policy (log scale)", Kind: "bar", XLabel: "load", YLabel: "p99 latency (ms)", LogY: true}
	for _, l := range cfg.Loads {
		p99Fig.Categories = append(p99Fig.Categories, fmt.Sprintf("%.0f%%", l*100))
	}
	for _, pol := range cfg.Policies {
		ser := Series{Name: pol}
		for _, l := range cfg.Loads {
			x, _ := findRun(runs, pol, l, 0)
			ser.Y = append(ser.Y, x.Latency.P99)
		}
		p99Fig.Series = append(p99Fig.Series, ser)
	}
	p99Fig.HLines = []HLine{{Label: fmt.Sprintf("service %v", cfg.Service), Y: ms(cfg.Service)}}

	res.Figures = append(res.Figures, p99Fig, utilFig)

	// Staleness.
	if len(stale) > 0 {
		st := Table{Title: fmt.Sprintf("p99 (ms) at %.0f%% load as reports grow stale", cfg.Loads[0]*100), Columns: []string{"REPORT EVERY", "MEAN REPORT AGE"}}
		st.Columns = append(st.Columns, cfg.StalenessPolicies...)
		fig := Figure{File: "staleness.svg", Title: "p99 latency against report staleness", Kind: "line", XLabel: "report interval (service times)", YLabel: "p99 latency (ms)", LogX: true, LogY: true}
		for _, pol := range cfg.StalenessPolicies {
			ser := Series{Name: pol}
			for _, k := range cfg.Staleness {
				x, _ := findRun(stale, pol, cfg.Loads[0], k)
				ser.X = append(ser.X, k)
				ser.Y = append(ser.Y, x.Latency.P99)
			}
			fig.Series = append(fig.Series, ser)
		}
		if or, ok := findRun(runs, PolicyOracle, cfg.Loads[0], 0); ok {
			fig.HLines = append(fig.HLines, HLine{Label: "oracle", Y: or.Latency.P99})
		}
		for _, k := range cfg.Staleness {
			row := []string{fmt.Sprintf("%gS (%v)", k, time.Duration(k*float64(cfg.Service))), "-"}
			var ages []float64
			for _, pol := range cfg.StalenessPolicies {
				x, _ := findRun(stale, pol, cfg.Loads[0], k)
				row = append(row, fmtFloat(x.Latency.P99))
				if x.ReportAgeMs > 0 {
					ages = append(ages, x.ReportAgeMs)
				}
			}
			if len(ages) > 0 {
				var sum float64
				for _, a := range ages {
					sum += a
				}
				row[1] = fmt.Sprintf("%s ms", fmtFloat(sum/float64(len(ages))))
			}
			st.Rows = append(st.Rows, row)
		}
		res.Tables = append(res.Tables, st)
		res.Figures = append(res.Figures, fig)
	}

	// Goals (issue: load-spreading at 90% and 95%).
	def := routing.DefaultPolicy
	at := func(pol string, load float64) float64 { x, _ := findRun(runs, pol, load, 0); return x.Latency.P99 }
	if len(cfg.Loads) > 0 {
		l := cfg.Loads[0]
		v := ratio(at(def, l), at(PolicyOracle, l))
		r.goal(fmt.Sprintf("%s p99 / oracle p99 at %.0f%%", def, l*100), "≤ 2.5", v, "×", v <= 2.5)
		v = ratio(at(def, l), at(routing.PolicyWeightedRandom, l))
		r.goal(fmt.Sprintf("%s p99 / weighted-random p99 at %.0f%%", def, l*100), "≤ 0.5", v, "×", v <= 0.5)
	}
	if len(cfg.Loads) > 1 {
		l := cfg.Loads[1]
		v := ratio(at(def, l), at(PolicyOracle, l))
		r.goal(fmt.Sprintf("%s p99 / oracle p99 at %.0f%%", def, l*100), "≤ 3", v, "×", v <= 3)
	}
	if len(stale) > 0 {
		worst := 0.0
		for _, k := range cfg.Staleness {
			a, _ := findRun(stale, def, cfg.Loads[0], k)
			b, _ := findRun(stale, routing.PolicyWeightedRandom, cfg.Loads[0], k)
			worst = math.Max(worst, ratio(a.Latency.P99, b.Latency.P99))
		}
		r.goal(fmt.Sprintf("%s p99 / weighted-random p99, worst staleness", def), "≤ 1", worst, "×", worst <= 1)
	}
	res.Data = map[string]any{"runs": runs, "staleness": stale}
	r.note("Latency is measured at the clients, from Request to the answer, for requests sent after the warm-up; answered requests only (the others are in the answered share).")
	r.note("Overloaded: a replica has at least as many requests waiting as it has workers; OVERLOADED %% is the mean over replicas of the share of time they were. MAX UTIL is the busiest replica's utilisation.")
	r.note("The main comparison uses the peers' default report interval; the staleness sweep restarts the mesh with replicas sampling every k service times (reports go out at each sample that changed significantly, and at least every five).")
}
