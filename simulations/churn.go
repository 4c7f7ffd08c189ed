package simulations

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/jstp-peer/jstp-peer/routing"
)

var churn = Scenario{
	Name:  "churn",
	Title: "replicas crash, leave and join under load: nothing lost, time to recover",
	Summary: "Replicas crash (cut off the network, no goodbye), leave gracefully and join while clients keep sending at 60% of capacity; " +
		"every request must end answered or with an explicit 503/504, and the scenario measures how long failures last after each event.",
	PeersFlag:    "peers in all: a third are replicas (at least 6), the rest clients",
	DefaultPeers: 30,
	run:          runChurn,
}

// churnEvent is one change of the replica set.
type churnEvent struct {
	At       time.Duration `json:"atMs"`
	Kind     string        `json:"kind"` // crash, leave, join
	Replicas []int         `json:"replicas"`
	// RecoveredAfter is how long after the event requests kept failing:
	// the time from the event to the last request sent before the next
	// event that did not get a 200.
	RecoveredAfter time.Duration `json:"recoveredAfterMs"`
}

type churnPlan struct {
	at    time.Duration
	kind  string
	count int
}

func runChurn(ctx context.Context, r *run) error {
	replicas := max(6, r.o.Peers/3)
	clients := max(6, r.o.Peers-replicas)
	service := 20 * time.Millisecond
	unit := 5 * time.Second // time between events
	deadline := 3 * time.Second
	if r.o.Short {
		// Fewer requests: the invariant needs every request to end
		// well, not many of them.
		service = 50 * time.Millisecond
		unit = time.Second
		deadline = 2 * time.Second
	}
	caps := make([]int, replicas)
	for i := range caps {
		caps[i] = 2
	}
	plan := []churnPlan{
		{1 * unit, "crash", 1},
		{2 * unit, "join", 1},
		{3 * unit, "crash", 2},
		{4 * unit, "leave", 1},
		{5 * unit, "join", 2},
	}
	total := 7 * unit
	// The name cache is refreshed during the run (after half its TTL),
	// so joined replicas are found; the default TTL (a minute) is longer
	// than the whole run. Short runs keep their first resolution: once an
	// entry has expired, requests wait for a DHT walk, which crashed DHT
	// servers stretch past a request's deadline (answered 500, see
	// docs/simulations.md), and short runs check the invariants.
	cacheTTL := 4 * unit
	if r.o.Short {
		cacheTTL = time.Hour
	}
	r.res.Topology = Flat.Name
	r.res.Peers = replicas + clients
	r.res.Params = map[string]any{
		"replicas": replicas, "clients": clients, "capacity": 2, "serviceMs": ms(service),
		"load": 0.6, "durationSec": total.Seconds(), "deadlineSec": deadline.Seconds(),
		"policy": routing.DefaultPolicy, "nameCacheTTLSec": cacheTTL.Seconds(),
	}
	s, err := newService(ctx, r, serviceConfig{
		Capacities: caps, Clients: clients, Service: service,
		Deadline: deadline, CacheTTL: cacheTTL, Topology: Flat, Seed: r.o.Seed,
	})
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.begin(ctx, routing.DefaultPolicy); err != nil {
		return err
	}
	rate := 0.6 * s.capacity()
	rng := rand.New(rand.NewPCG(r.o.Seed, 0xc4))

	start := time.Now()
	var (
		events []churnEvent
		evErr  error
		wg     sync.WaitGroup
	)
	wg.Go(func() {
		for i, p := range plan {
			if !sleepCtx(ctx, time.Until(start.Add(p.at))) {
				return
			}
			r.progress(fmt.Sprintf("%s %d replica(s)", p.kind, p.count), i, len(plan))
			ev := churnEvent{At: time.Since(start), Kind: p.kind}
			switch p.kind {
			case "crash", "leave":
				live := s.liveReplicas()
				for _, k := range pickDistinct(rng, len(live), min(p.count, len(live)-1)) {
					rp := live[k]
					ev.Replicas = append(ev.Replicas, rp.model.Index)
					var err error
					if p.kind == "crash" {
						err = s.cluster.Crash(rp.SimPeer)
					} else {
						err = s.cluster.Leave(rp.SimPeer)
					}
					if err != nil {
						r.log.Warn("replica closed with an error", "replica", rp.model.Index, "err", err)
					}
				}
			case "join":
				capsNew := make([]int, p.count)
				for i := range capsNew {
					capsNew[i] = 2
				}
				added, err := s.addReplicas(ctx, capsNew, nil)
				if err != nil {
					evErr = err
					return
				}
				for _, rp := range added {
					ev.Replicas = append(ev.Replicas, rp.model.Index)
				}
			}
			events = append(events, ev)
		}
	})
	s.gen.Run(ctx, rate, total)
	wg.Wait()
	s.gen.Wait()
	if evErr != nil {
		return evErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.progress("done", len(plan), len(plan))
	recs := s.gen.Rec.Records(start, start.Add(total+time.Hour))
	churnReport(r, start, total, events, recs)
	return nil
}

func churnReport(r *run, start time.Time, total time.Duration, events []churnEvent, recs []Record) {
	res := r.res
	sum := Summarise(recs)
	noAnswer := sum.Outcomes[OutcomeLost]
	other := sum.Outcomes[OutcomeFailed]
	// The definition: a dispatch is lost unless it was answered
	// or refused/timed out explicitly (503/504).
	r.check("dispatches lost (neither answered nor 503/504)", float64(noAnswer+other), "0", noAnswer+other == 0)

	// Recovery: failures after each event, until the next.
	for i := range events {
		from := start.Add(events[i].At)
		to := start.Add(total)
		if i+1 < len(events) {
			to = start.Add(events[i+1].At)
		}
		var last time.Time
		for _, rec := range recs {
			if rec.Code != 200 && !rec.Sent.Before(from) && rec.Sent.Before(to) && rec.Sent.After(last) {
				last = rec.Sent
			}
		}
		if !last.IsZero() {
			events[i].RecoveredAfter = last.Sub(from)
		}
	}

	res.Table = Table{Title: "Events", Columns: []string{"AT", "EVENT", "REPLICAS", "FAILED AFTER", "RECOVERED WITHIN"}}
	for i, ev := range events {
		from := start.Add(ev.At)
		to := start.Add(total)
		if i+1 < len(events) {
			to = start.Add(events[i+1].At)
		}
		failed := 0
		for _, rec := range recs {
			if rec.Code != 200 && !rec.Sent.Before(from) && rec.Sent.Before(to) {
				failed++
			}
		}
		res.Table.Rows = append(res.Table.Rows, []string{
			fmt.Sprintf("%.1f s", ev.At.Seconds()), ev.Kind, fmt.Sprint(ev.Replicas), fmt.Sprint(failed),
			fmtDur(ev.RecoveredAfter),
		})
	}
	res.Tables = append(res.Tables, Table{
		Title:   "Requests",
		Columns: []string{"SENT", "ANSWERED", "503", "504", "OTHER CODES", "NO ANSWER", "P50 MS", "P99 MS"},
		Rows: [][]string{{
			fmt.Sprint(sum.Count), fmt.Sprint(sum.Outcomes[OutcomeAnswered]), fmt.Sprint(sum.Outcomes[OutcomeRefused]),
			fmt.Sprint(sum.Outcomes[OutcomeTimedOut]), fmt.Sprint(other), fmt.Sprint(noAnswer),
			fmtFloat(sum.P50), fmtFloat(sum.P99),
		}},
	})
	codes := map[int]int{}
	detail := map[int]string{}
	for _, rec := range recs {
		if outcomeOf(rec.Code) == OutcomeFailed {
			codes[rec.Code]++
			if detail[rec.Code] == "" {
				detail[rec.Code] = rec.Detail
			}
		}
	}
	if len(codes) > 0 {
		t := Table{Title: "Other answer codes", Columns: []string{"CODE", "COUNT", "FIRST ANSWER'S BODY"}}
		keys := make([]int, 0, len(codes))
		for c := range codes {
			keys = append(keys, c)
		}
		slices.Sort(keys)
		for _, c := range keys {
			t.Rows = append(t.Rows, []string{fmt.Sprint(c), fmt.Sprint(codes[c]), detail[c]})
		}
		res.Tables = append(res.Tables, t)
	}

	tl := binRecords(recs, start, total, total/70)
	fig := Figure{File: "timeline.svg", Title: "Requests per second by outcome (dashed: events)", Kind: "line", XLabel: "time (s)", YLabel: "requests/s",
		Series: []Series{{Name: "answered", X: tl.xs, Y: tl.ok}, {Name: "not answered", X: tl.xs, Y: tl.bad}}}
	latFig := Figure{File: "latency.svg", Title: "p99 latency over time", Kind: "line", XLabel: "time (s)", YLabel: "p99 (ms)", LogY: true,
		Series: []Series{{Name: "p99", X: tl.xs, Y: tl.p99}}}
	for _, ev := range events {
		fig.VLines = append(fig.VLines, VLine{Label: ev.Kind, X: ev.At.Seconds()})
		latFig.VLines = append(latFig.VLines, VLine{Label: ev.Kind, X: ev.At.Seconds()})
	}
	res.Figures = append(res.Figures, fig, latFig)
	res.Data = map[string]any{"events": events, "latency": sum}
	r.note("Crash: the replica's address stops passing packets at once, then its process stops; the others learn only by timeouts. Leave: a graceful close.")
	r.note("Crashed replicas stay in the DHT's provider records (they expire after 48 h), so clients keep them among the candidates; the name cache is refreshed after half its TTL, which brings joined replicas in.")
	r.note("RECOVERED WITHIN: from the event to the last request, sent before the next event, that was not answered 200.")
}

func fmtDur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}
