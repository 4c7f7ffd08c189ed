package simulations

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
	"github.com/jstp-peer/jstp-peer/routing"
	"github.com/jstp-peer/jstp-peer/saturation"
)

var autoscale = Scenario{
	Name:  "autoscale",
	Title: "critical events start replicas; latency before and after",
	Summary: "Load rises past what three replicas can serve; an operator bound to the replicas' critical events starts a new replica for each, " +
		"as `up --on-critical` would, and requests spread onto the new replicas by themselves: latency before and after.",
	PeersFlag:    "client peers (the replicas and the operator come on top)",
	DefaultPeers: 10,
	run:          runAutoscale,
}

type scaleEvent struct {
	At      time.Duration `json:"atMs"`
	Peer    string        `json:"peer"`
	Started int           `json:"startedReplica"` // -1: none (cool-down or cap)
}

func runAutoscale(ctx context.Context, r *run) error {
	clients := max(r.o.Peers, 2)
	const (
		initial  = 3
		capacity = 2
		maxNew   = 4
	)
	// A slow service keeps the request count low while the load holds
	// for as long as the replicas' smoothed load needs to reach the
	// critical threshold (reports smooth with a 10 s half-life).
	service := 200 * time.Millisecond
	if r.o.Short {
		service = time.Second
	}
	const peak = 1.5
	ramp, hold := 40*time.Second, 80*time.Second
	if r.o.Short {
		// Saturate sooner and stop once the first new replica has had
		// time to take load: the invariant is that one starts.
		ramp, hold = 10*time.Second, 60*time.Second
	}
	r.res.Topology = Flat.Name
	r.res.Peers = clients + initial + 1
	r.res.Params = map[string]any{
		"clients": clients, "initialReplicas": initial, "capacity": capacity, "serviceMs": ms(service),
		"loadFrom": 0.5, "loadTo": peak, "rampSec": ramp.Seconds(), "holdSec": hold.Seconds(),
		"maxNewReplicas": maxNew, "policy": routing.DefaultPolicy,
	}
	caps := make([]int, initial)
	for i := range caps {
		caps[i] = capacity
	}
	s, err := newService(ctx, r, serviceConfig{
		Capacities: caps, Clients: clients, Service: service, Interval: time.Second,
		Deadline: 10 * time.Second, CacheTTL: 4 * time.Second, Topology: Flat, Seed: r.o.Seed,
	})
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.begin(ctx, routing.DefaultPolicy); err != nil {
		return err
	}
	base := s.capacity()

	// The operator: a peer of the mesh that binds to every peer's
	// critical events, as `jstp-peer up --on-critical` does, and starts
	// a replica for each, up to a cap.
	op, err := s.cluster.Start(ctx, Spec{Region: 0})
	if err != nil {
		return err
	}
	start := time.Now()
	var (
		mu       sync.Mutex
		events   []scaleEvent
		started  int
		wg       sync.WaitGroup
		scaleErr error
	)
	scaleCtx, stopScaling := context.WithCancel(ctx)
	defer stopScaling()
	ep := dispatch.Endpoint{Method: dispatch.POST, Resource: []string{"saturation", "*", saturation.LevelCritical.String()}}
	if _, err := op.Node.Bind(ep, func(_ context.Context, in *node.Incoming) {
		var rep saturation.Report
		_ = json.Unmarshal(in.Dispatch.Body, &rep)
		mu.Lock()
		ev := scaleEvent{At: time.Since(start), Peer: rep.Peer, Started: -1}
		ok := started < maxNew
		if ok {
			started++
		}
		mu.Unlock()
		if ok {
			// Starting a peer takes a while; the binding's queue must
			// not wait for it.
			wg.Go(func() {
				added, err := s.addReplicas(scaleCtx, []int{capacity}, nil)
				mu.Lock()
				defer mu.Unlock()
				if err != nil && scaleCtx.Err() == nil && scaleErr == nil {
					scaleErr = err
				}
				if len(added) > 0 {
					ev.Started = added[0].model.Index
				}
				events = append(events, ev)
			})
			return
		}
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}); err != nil {
		return err
	}

	// Load rises linearly, step by step, then holds.
	steps := 20
	for i := 0; i < steps; i++ {
		load := 0.5 + (peak-0.5)*float64(i)/float64(steps-1)
		r.progress(fmt.Sprintf("load %.0f%% of the first replicas' capacity", load*100), i, steps+1)
		s.gen.Run(ctx, load*base, ramp/time.Duration(steps))
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	r.progress("holding the load", steps, steps+1)
	for held := time.Duration(0); held < hold; held += 5 * time.Second {
		s.gen.Run(ctx, peak*base, 5*time.Second)
		mu.Lock()
		n, lastAt := started, time.Duration(0)
		for _, e := range events {
			if e.Started >= 0 {
				lastAt = e.At
			}
		}
		mu.Unlock()
		if r.o.Short && n > 0 && lastAt > 0 && time.Since(start)-lastAt >= 15*time.Second {
			break
		}
	}
	end := time.Now()
	stopScaling()
	wg.Wait()
	s.gen.Wait()
	if scaleErr != nil {
		return scaleErr
	}
	r.progress("done", steps+1, steps+1)
	mu.Lock()
	defer mu.Unlock()
	autoscaleReport(r, start, end, base, events, s.gen.Rec.Records(start, end))
	return nil
}

func autoscaleReport(r *run, start, end time.Time, base float64, events []scaleEvent, recs []Record) {
	res := r.res
	sum := Summarise(recs)
	lost := sum.Outcomes[OutcomeLost]
	r.check("requests without any answer", float64(lost), "0", lost == 0)
	var first, lastStart time.Duration
	startedN := 0
	for _, ev := range events {
		if ev.Started >= 0 {
			if startedN == 0 {
				first = ev.At
			}
			lastStart = ev.At
			startedN++
		}
	}
	r.check("replicas started on critical events", float64(startedN), "≥ 1", startedN >= 1)

	// Latency before the first new replica and after the last one had
	// ten seconds to take load.
	window := func(from, to time.Duration) Latencies {
		var in []Record
		for _, rec := range recs {
			t := rec.Sent.Sub(start)
			if t >= from && t < to {
				in = append(in, rec)
			}
		}
		return Summarise(in)
	}
	total := end.Sub(start)
	before := window(first-10*time.Second, first)
	after := window(lastStart+10*time.Second, total)
	res.Table = Table{Title: "Latency around scaling", Columns: []string{"WINDOW", "REQUESTS", "ANSWERED %", "P50 MS", "P99 MS"}}
	row := func(name string, l Latencies) {
		res.Table.Rows = append(res.Table.Rows, []string{name, fmt.Sprint(l.Count), fmtFloat(l.Answered * 100), fmtFloat(l.P50), fmtFloat(l.P99)})
	}
	if startedN > 0 {
		row(fmt.Sprintf("10 s before the first new replica (%.0f s)", first.Seconds()), before)
		row(fmt.Sprintf("from 10 s after the last new replica (%.0f s) to the end", lastStart.Seconds()), after)
	}
	row("whole run", sum)
	ev := Table{Title: "Critical events", Columns: []string{"AT", "PEER", "STARTED REPLICA"}}
	for _, e := range events {
		started := "- (cap reached)"
		if e.Started >= 0 {
			started = fmt.Sprint(e.Started)
		}
		ev.Rows = append(ev.Rows, []string{fmt.Sprintf("%.1f s", e.At.Seconds()), shortID(e.Peer), started})
	}
	res.Tables = append(res.Tables, ev)

	// Timeline: p99 per bin and offered load.
	tl := binRecords(recs, start, total, total/60)
	rate := make([]float64, len(tl.xs))
	for i := range rate {
		// Offered load counts every request sent, answered or not.
		rate[i] = (tl.ok[i] + tl.bad[i]) / base
	}
	latFig := Figure{File: "latency.svg", Title: "p99 latency as load rises (dashed: replicas started)", Kind: "line", XLabel: "time (s)", YLabel: "p99 (ms)", LogY: true, Series: []Series{{Name: "p99", X: tl.xs, Y: tl.p99}}}
	loadFig := Figure{File: "load.svg", Title: "Offered load, in units of the first replicas' capacity", Kind: "line", XLabel: "time (s)", YLabel: "load", Series: []Series{{Name: "offered load", X: tl.xs, Y: rate}}, HLines: []HLine{{Label: "first replicas' capacity", Y: 1}}}
	for _, e := range events {
		if e.Started >= 0 {
			latFig.VLines = append(latFig.VLines, VLine{Label: "+1", X: e.At.Seconds()})
			loadFig.VLines = append(loadFig.VLines, VLine{Label: "+1", X: e.At.Seconds()})
		}
	}
	res.Figures = append(res.Figures, latFig, loadFig)
	res.Data = map[string]any{"events": events, "before": before, "after": after, "whole": sum}
	r.note("Replicas report their CPU as the share of worker time busy; the critical level is crossed when the smoothed value (10 s half-life) reaches 0.95, so it lags a surge by tens of seconds.")
	r.note("The operator binds POST [\"saturation\", \"*\", \"critical\"] on its own peer, which processes the event when it receives a replica's critical report, and starts a replica per event, %d at most.", 4)
	r.note("Clients' name cache lives 4 s here, so they resolve the name again and find the new replicas within seconds.")
}

func shortID(id string) string {
	if len(id) > 12 {
		return "…" + id[len(id)-8:]
	}
	return id
}
