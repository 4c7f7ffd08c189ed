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
)

var partition = Scenario{
	Name:  "partition",
	Title: "the mesh splits and heals: when events and requests flow again",
	Summary: "The mesh splits between Europe and the other regions, once briefly and once for longer than QUIC's idle timeout, then heals; " +
		"a peer in Europe publishes events to subscribers everywhere and clients everywhere call replicas in Europe and America: time until events and requests flow again.",
	PeersFlag:    "peers in all: a publisher, four replicas, the rest subscribers that are also clients",
	DefaultPeers: 30,
	run:          runPartition,
}

// splitResult is what one partition showed.
type splitResult struct {
	Split time.Duration `json:"splitMs"`
	// EventsRecovered is how long after the heal the first event reached
	// every subscriber (-1: none did before the end).
	EventsRecovered time.Duration `json:"eventsRecoveredMs"`
	// Subscribers still receiving events at the end, of all.
	Receiving   int `json:"receiving"`
	Subscribers int `json:"subscribers"`
	// RequestsRecovered is how long after the heal requests kept
	// failing: to the last failed request sent after the heal.
	RequestsRecovered time.Duration `json:"requestsRecoveredMs"`
	During            Latencies     `json:"during"`
	After             Latencies     `json:"after"`
}

func runPartition(ctx context.Context, r *run) error {
	if r.o.Network != ModeSimnet {
		return fmt.Errorf("simulations: partition needs the simulated network (--network %s)", ModeSimnet)
	}
	clients := max(r.o.Peers-5, 3)
	splits := []time.Duration{5 * time.Second, 45 * time.Second}
	settleTime, observe := 5*time.Second, 40*time.Second
	gap := 250 * time.Millisecond
	service := 50 * time.Millisecond
	deadline := 2 * time.Second
	load := 0.3
	if r.o.Short {
		// The brief split only: the invariant is about it, and the long
		// one costs minutes of events and requests.
		splits = splits[:1]
		settleTime, observe = 3*time.Second, 5*time.Second
		gap, load = 500*time.Millisecond, 0.1
	}
	r.res.Topology = ThreeRegions.Name
	r.res.Peers = clients + 5
	r.res.Params = map[string]any{
		"subscribersAndClients": clients, "replicas": "2 in eu, 2 in us", "splitsSec": secs(splits),
		"observeSec": observe.Seconds(), "eventGapMs": ms(gap), "load": load, "deadlineSec": deadline.Seconds(),
		"sides": "eu | us + asia", "policy": routing.DefaultPolicy,
	}
	s, err := newService(ctx, r, serviceConfig{
		Capacities: []int{2, 2, 2, 2}, Clients: clients, Service: service, Deadline: deadline,
		CacheTTL: time.Hour, Topology: ThreeRegions, Seed: r.o.Seed,
		ReplicaRegion: func(i int) int { return i % 2 }, // eu, us
		ClientRegion:  func(i int) int { return i % 3 }, // all three
	})
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.begin(ctx, routing.DefaultPolicy); err != nil {
		return err
	}
	pub, err := s.cluster.Start(ctx, Spec{Region: 0, DHTServer: true, ConnLow: clients + 16, ConnHigh: 2*clients + 32})
	if err != nil {
		return err
	}
	// Every client subscribes to the publisher's events.
	got := newDeliveries()
	ep := dispatch.Endpoint{Method: dispatch.POST, Resource: []string{"news", ":id"}}
	for i, c := range s.clients {
		r.progress("binding", i, len(s.clients))
		if _, err := c.Node.BindAt(ctx, []dispatch.Host{{Name: pub.ID().String()}}, ep, func(_ context.Context, in *node.Incoming) {
			var ev fanEvent
			if json.Unmarshal(in.Dispatch.Body, &ev) == nil {
				got.add(ev.ID, i, time.Duration(time.Now().UnixNano()-ev.Sent))
			}
		}); err != nil {
			return fmt.Errorf("simulations: client %d binds: %w", c.Index, err)
		}
	}

	// Events and load run for the whole scenario.
	start := time.Now()
	var total time.Duration
	for _, sp := range splits {
		total += settleTime + sp + observe
	}
	evCtx, stopEvents := context.WithCancel(ctx)
	defer stopEvents()
	var wg sync.WaitGroup
	sentAt := map[int]time.Time{}
	var sentMu sync.Mutex
	wg.Go(func() {
		for id := 0; ; id++ {
			d := dispatch.New(dispatch.POST, "news", fmt.Sprint(id))
			now := time.Now()
			d.Body, _ = json.Marshal(fanEvent{ID: id, Sent: now.UnixNano()})
			sentMu.Lock()
			sentAt[id] = now
			sentMu.Unlock()
			_ = pub.Node.Send(evCtx, d)
			if !sleepCtx(evCtx, gap) {
				return
			}
		}
	})
	wg.Go(func() { s.gen.Run(ctx, load*s.capacity(), total) })

	side := func(p *SimPeer) int {
		if p.Region == 0 {
			return 0
		}
		return 1
	}
	var marks []splitMark
	for k, sp := range splits {
		r.progress(fmt.Sprintf("split %d of %d: stable", k+1, len(splits)), 3*k, 3*len(splits))
		if !sleepCtx(ctx, settleTime) {
			return ctx.Err()
		}
		r.progress(fmt.Sprintf("split %d of %d: split for %v", k+1, len(splits), sp), 3*k+1, 3*len(splits))
		m := splitMark{split: time.Now()}
		if err := s.cluster.Partition(side); err != nil {
			return err
		}
		if !sleepCtx(ctx, sp) {
			return ctx.Err()
		}
		s.cluster.Heal()
		m.heal = time.Now()
		marks = append(marks, m)
		r.progress(fmt.Sprintf("split %d of %d: healed", k+1, len(splits)), 3*k+2, 3*len(splits))
		if !sleepCtx(ctx, observe) {
			return ctx.Err()
		}
	}
	stopEvents()
	wg.Wait()
	s.gen.Wait()
	r.progress("done", 1, 1)

	recs := s.gen.Rec.Records(start, start.Add(total+time.Hour))
	subs := len(s.clients)
	var results []splitResult
	for k, m := range marks {
		end := start.Add(total)
		if k+1 < len(marks) {
			end = marks[k+1].split.Add(-settleTime)
		}
		res := splitResult{Split: splits[k], Subscribers: subs, EventsRecovered: -1}
		// Events: the first published after the heal that reached all.
		sentMu.Lock()
		var ids []int
		for id, at := range sentAt {
			if !at.Before(m.heal) && at.Before(end) {
				ids = append(ids, id)
			}
		}
		sentMu.Unlock()
		got.mu.Lock()
		first := time.Duration(-1)
		lastID := -1
		for _, id := range ids {
			if len(got.got[id]) == subs {
				sentMu.Lock()
				at := sentAt[id].Sub(m.heal)
				sentMu.Unlock()
				if first < 0 || at < first {
					first = at
				}
			}
			if id > lastID {
				lastID = id
			}
		}
		// Receiving at the end: subscribers that got one of the last
		// few events of this period.
		receiving := map[int]bool{}
		for id := lastID - 8; id <= lastID; id++ {
			for sub := range got.got[id] {
				receiving[sub] = true
			}
		}
		got.mu.Unlock()
		res.EventsRecovered = first
		res.Receiving = len(receiving)
		var during, after []Record
		for _, rec := range recs {
			switch {
			case !rec.Sent.Before(m.split) && rec.Sent.Before(m.heal):
				during = append(during, rec)
			case !rec.Sent.Before(m.heal) && rec.Sent.Before(end):
				after = append(after, rec)
				if rec.Code != 200 && rec.Sent.Sub(m.heal) > res.RequestsRecovered {
					res.RequestsRecovered = rec.Sent.Sub(m.heal)
				}
			}
		}
		res.During, res.After = Summarise(during), Summarise(after)
		results = append(results, res)
	}
	partitionReport(r, results, recs, start, marks)
	return nil
}

type splitMark struct{ split, heal time.Time }

func partitionReport(r *run, results []splitResult, recs []Record, start time.Time, marks []splitMark) {
	out := r.res
	all := Summarise(recs)
	r.check("requests without any answer", float64(all.Outcomes[OutcomeLost]), "0", all.Outcomes[OutcomeLost] == 0)
	short := results[0]
	r.check("subscribers receiving events after a brief split", float64(short.Receiving), fmt.Sprintf("%d (all)", short.Subscribers), short.Receiving == short.Subscribers)
	out.Table = Table{Title: "Recovery after each split", Columns: []string{"SPLIT", "EVENTS TO ALL AGAIN AFTER", "SUBSCRIBERS RECEIVING AT THE END", "REQUESTS FAILING UNTIL", "ANSWERED DURING %", "ANSWERED AFTER %"}}
	for _, x := range results {
		ev := "never"
		if x.EventsRecovered >= 0 {
			ev = fmt.Sprintf("%.2f s", x.EventsRecovered.Seconds())
		}
		out.Table.Rows = append(out.Table.Rows, []string{
			fmt.Sprintf("%.0f s", x.Split.Seconds()), ev, fmt.Sprintf("%d/%d", x.Receiving, x.Subscribers),
			fmtDur(x.RequestsRecovered), fmtFloat(x.During.Answered * 100), fmtFloat(x.After.Answered * 100),
		})
	}
	var end time.Time
	for _, rec := range recs {
		if rec.Sent.After(end) {
			end = rec.Sent
		}
	}
	total := end.Sub(start)
	tl := binRecords(recs, start, total, max(total/100, time.Millisecond))
	fig := Figure{File: "timeline.svg", Title: "Requests per second by outcome", Kind: "line", XLabel: "time (s)", YLabel: "requests/s",
		Series: []Series{{Name: "answered", X: tl.xs, Y: tl.ok}, {Name: "not answered", X: tl.xs, Y: tl.bad}}}
	for _, m := range marks {
		fig.VLines = append(fig.VLines, VLine{Label: "split", X: m.split.Sub(start).Seconds()}, VLine{Label: "heal", X: m.heal.Sub(start).Seconds()})
	}
	out.Figures = append(out.Figures, fig)
	out.Data = results
	r.note("The split drops every packet between Europe and the other two regions; connections are not closed, so peers learn of it only by timeouts. QUIC gives up on a silent connection after its idle timeout, which the long split outlasts.")
	r.note("EVENTS TO ALL AGAIN AFTER: from the heal to the first event that reached every subscriber. SUBSCRIBERS RECEIVING: those that got one of the period's last events.")
}

func secs(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = d.Seconds()
	}
	return out
}
