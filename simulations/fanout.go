package simulations

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
)

var fanOut = Scenario{
	Name:  "fan-out",
	Title: "one publisher, many subscribers: delivery ratio and latency against raw gossipsub",
	Summary: "Subscribers in three regions bind to one endpoint of one peer, which then processes events: " +
		"publish-to-delivery latency, delivery ratio and CPU per delivery, against raw gossipsub messages on the same hosts and links.",
	PeersFlag:    "subscribers (the publishing peer comes on top)",
	DefaultPeers: 100,
	run:          runFanOut,
}

// rawTopic is the gossipsub topic of the baseline: the same hosts, the
// same flood publish, no JSTP.
const rawTopic = "/jstp-sim/raw-fanout"

// deliveries records when each subscriber got each event.
type deliveries struct {
	mu  sync.Mutex
	got map[int]map[int]time.Duration // event → subscriber → latency
	dup int
}

func newDeliveries() *deliveries { return &deliveries{got: map[int]map[int]time.Duration{}} }

func (d *deliveries) add(event, sub int, lat time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.got[event]
	if m == nil {
		m = map[int]time.Duration{}
		d.got[event] = m
	}
	if _, ok := m[sub]; ok {
		d.dup++
		return
	}
	m[sub] = lat
}

func (d *deliveries) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, m := range d.got {
		n += len(m)
	}
	return n
}

func (d *deliveries) latencies() []float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []float64
	for _, m := range d.got {
		for _, l := range m {
			out = append(out, ms(l))
		}
	}
	slices.Sort(out)
	return out
}

type fanEvent struct {
	ID   int   `json:"id"`
	Sent int64 `json:"sent"` // UnixNano at the publisher
}

// fanOutResult is what the fan-out scenario measured.
type fanOutResult struct {
	Subscribers int       `json:"subscribers"`
	Events      int       `json:"events"`
	JSTP        fanSeries `json:"jstp"`
	Raw         fanSeries `json:"rawGossipsub"`
	BindSec     float64   `json:"bindSec"`
	// Bound is how many subscribers' BINDs the publisher accepted;
	// FirstBindError says why the first refused one was.
	Bound          int    `json:"bound"`
	FirstBindError string `json:"firstBindError,omitempty"`
	RawTopicPeers  int    `json:"rawTopicPeers"`
	// The publisher's connections, and its resource manager's count of
	// inbound ones, once the subscribers had bound.
	PublisherConns        int `json:"publisherConns"`
	PublisherConnsInbound int `json:"publisherConnsInbound"`
}

type fanSeries struct {
	Delivered  int     `json:"delivered"`
	Expected   int     `json:"expected"`
	Ratio      float64 `json:"ratio"`
	Duplicates int     `json:"duplicates"`
	P50        float64 `json:"p50Ms"`
	P99        float64 `json:"p99Ms"`
	Max        float64 `json:"maxMs"`
	// CPUPerDelivery is the process's CPU time while the events were
	// delivered, per delivery, in microseconds (the whole process: every
	// peer's share of the work).
	CPUPerDelivery float64 `json:"cpuPerDeliveryUs"`
}

func runFanOut(ctx context.Context, r *run) error {
	subs := r.o.Peers
	events := 20
	gap := 200 * time.Millisecond
	if r.o.Short {
		events = 5
	}
	topo := ThreeRegions
	r.res.Topology = topo.Name
	r.res.Peers = subs + 1
	r.res.Params = map[string]any{"subscribers": subs, "events": events, "gapMs": ms(gap), "subscriberConnHigh": DefaultConnHigh}
	c, err := NewCluster(r.o.Network, topo, r.o.Seed, r.log)
	if err != nil {
		return err
	}
	defer c.Close()
	// Subscribers do not report load here: saturation gossip is global,
	// and at a thousand peers its first round alone would cost every
	// peer a thousand signature checks (see the notes).
	quiet := time.Hour
	target, err := c.Start(ctx, Spec{
		Region: 0, DHTServer: true, Interval: quiet,
		// Every subscriber keeps a connection to the target: that is how
		// a flood publish reaches it.
		ConnLow: subs + 16, ConnHigh: 2*subs + 32,
	})
	if err != nil {
		return err
	}
	specs := make([]Spec, subs)
	for i := range specs {
		specs[i] = Spec{Region: -1, Interval: quiet, Bootstrap: 1}
	}
	peers, err := c.StartMany(ctx, specs, 16, func(done int) { r.progress("starting peers", done, subs) })
	if err != nil {
		return err
	}

	jstp, raw := newDeliveries(), newDeliveries()
	ep := dispatch.Endpoint{Method: dispatch.POST, Resource: []string{"news", ":id"}}
	host := []dispatch.Host{{Name: target.ID().String()}}
	bindStart := time.Now()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		bindErr error
		bound   int
		failed  int
		sem     = make(chan struct{}, 32)
		rawSubs []*pubsub.Subscription
	)
	rawCtx, stopRaw := context.WithCancel(ctx)
	defer stopRaw()
	var rawWG sync.WaitGroup
	defer rawWG.Wait()
	defer stopRaw()
	for i, p := range peers {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := p.Node.BindAt(ctx, host, ep, func(_ context.Context, in *node.Incoming) {
				var ev fanEvent
				if json.Unmarshal(in.Dispatch.Body, &ev) == nil {
					jstp.add(ev.ID, i, time.Duration(time.Now().UnixNano()-ev.Sent))
				}
			})
			if err == nil {
				var t *pubsub.Topic
				t, err = p.Host.PubSub().Join(rawTopic)
				if err == nil {
					var sub *pubsub.Subscription
					sub, err = t.Subscribe()
					if err == nil {
						mu.Lock()
						rawSubs = append(rawSubs, sub)
						mu.Unlock()
						rawWG.Go(func() {
							for {
								m, err := sub.Next(rawCtx)
								if err != nil {
									return
								}
								if len(m.Data) == 16 {
									id := int(binary.BigEndian.Uint64(m.Data[:8]))
									sent := int64(binary.BigEndian.Uint64(m.Data[8:]))
									raw.add(id, i, time.Duration(time.Now().UnixNano()-sent))
								}
							}
						})
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if bindErr == nil {
					bindErr = fmt.Errorf("subscriber %d: %w", p.Index, err)
				}
				failed++
			}
			bound++
			r.progress("binding", bound, subs)
		})
	}
	wg.Wait()
	defer func() {
		for _, s := range rawSubs {
			s.Cancel()
		}
	}()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	bindTime := time.Since(bindStart)
	rawT, err := target.Host.PubSub().Join(rawTopic)
	if err != nil {
		return err
	}
	defer rawT.Close()
	// The raw baseline starts once the target knows every subscriber in
	// its topic, as a BIND does before it is accepted, or after half a
	// minute with those it knows (the others count as undelivered).
	deadline := time.Now().Add(30 * time.Second)
	for len(rawT.ListPeers()) < subs-failed && time.Now().Before(deadline) {
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	r.res.Memory = measureMemory(subs + 1)

	publish := func(name string, d *deliveries, send func(id int) error) (fanSeries, error) {
		cpu0 := cpuSeconds()
		for id := 0; id < events; id++ {
			r.progress(name, id, events)
			if err := send(id); err != nil {
				return fanSeries{}, err
			}
			if !sleepCtx(ctx, gap) {
				return fanSeries{}, ctx.Err()
			}
		}
		want := events * subs
		end := time.Now().Add(30 * time.Second)
		for d.count() < want && time.Now().Before(end) {
			if !sleepCtx(ctx, 50*time.Millisecond) {
				return fanSeries{}, ctx.Err()
			}
		}
		cpu := cpuSeconds() - cpu0
		lat := d.latencies()
		s := fanSeries{Delivered: len(lat), Expected: want, Duplicates: d.dup}
		if want > 0 {
			s.Ratio = float64(s.Delivered) / float64(want)
		}
		if len(lat) > 0 {
			s.P50, s.P99, s.Max = Quantile(lat, 0.5), Quantile(lat, 0.99), lat[len(lat)-1]
			s.CPUPerDelivery = cpu / float64(len(lat)) * 1e6
		}
		return s, nil
	}
	res := fanOutResult{Subscribers: subs, Events: events, BindSec: bindTime.Seconds(), Bound: subs - failed, RawTopicPeers: len(rawT.ListPeers())}
	if bindErr != nil {
		res.FirstBindError = bindErr.Error()
	}
	res.PublisherConns = len(target.Host.LibP2P().Network().Conns())
	_ = target.Host.LibP2P().Network().ResourceManager().ViewSystem(func(s network.ResourceScope) error {
		st := s.Stat()
		res.PublisherConnsInbound = st.NumConnsInbound
		return nil
	})
	res.Raw, err = publish("raw gossipsub", raw, func(id int) error {
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], uint64(id))
		binary.BigEndian.PutUint64(b[8:], uint64(time.Now().UnixNano()))
		return rawT.Publish(ctx, b[:])
	})
	if err != nil {
		return err
	}
	res.JSTP, err = publish("JSTP events", jstp, func(id int) error {
		d := dispatch.New(dispatch.POST, "news", fmt.Sprint(id))
		d.Body, _ = json.Marshal(fanEvent{ID: id, Sent: time.Now().UnixNano()})
		return target.Node.Send(ctx, d)
	})
	if err != nil {
		return err
	}
	r.progress("done", events, events)
	fanOutReport(r, res)
	return nil
}

func fanOutReport(r *run, res fanOutResult) {
	out := r.res
	j, raw := res.JSTP, res.Raw
	r.check("subscribers whose BIND was accepted", float64(res.Bound), fmt.Sprint(res.Subscribers), res.Bound == res.Subscribers)
	r.check("delivery ratio of JSTP events", j.Ratio, "1", j.Ratio == 1)
	r.check("duplicate deliveries", float64(j.Duplicates), "0", j.Duplicates == 0)
	if res.Subscribers >= 1000 {
		r.goal("delivery ratio at 1000 subscribers", "≥ 0.999", j.Ratio, "", j.Ratio >= 0.999)
	}
	v := ratio(j.P99, raw.P99)
	r.goal("JSTP p99 / raw gossipsub p99", "≤ 1.2", v, "×", v <= 1.2)
	if m := out.Memory; m != nil && res.Subscribers >= 1000 {
		r.goal("RSS per peer at 1000 peers", "≤ 1.5 MiB", m.RSSPerPeerMiB, "MiB", m.RSSPerPeerMiB <= 1.5)
	}
	out.Table = Table{
		Title:   fmt.Sprintf("%d subscribers, %d events", res.Subscribers, res.Events),
		Columns: []string{"PATH", "DELIVERED", "RATIO", "P50 MS", "P99 MS", "MAX MS", "CPU/DELIVERY µS"},
	}
	for _, x := range []struct {
		name string
		s    fanSeries
	}{{"JSTP BIND", j}, {"raw gossipsub", raw}} {
		out.Table.Rows = append(out.Table.Rows, []string{
			x.name, fmt.Sprintf("%d/%d", x.s.Delivered, x.s.Expected), fmt.Sprintf("%.4f", x.s.Ratio),
			fmtFloat(x.s.P50), fmtFloat(x.s.P99), fmtFloat(x.s.Max), fmtFloat(x.s.CPUPerDelivery),
		})
	}
	out.Figures = append(out.Figures, Figure{
		File: "latency.svg", Title: "Publish-to-delivery latency", Kind: "bar", XLabel: "percentile", YLabel: "latency (ms)",
		Categories: []string{"p50", "p99", "max"},
		Series: []Series{
			{Name: "JSTP BIND", Y: []float64{j.P50, j.P99, j.Max}},
			{Name: "raw gossipsub", Y: []float64{raw.P50, raw.P99, raw.Max}},
		},
	})
	out.Data = res
	out.Tables = append(out.Tables, Table{Title: "The publisher", Columns: []string{"BOUND", "ON THE RAW TOPIC", "CONNECTIONS", "INBOUND (RESOURCE MANAGER)", "FIRST REFUSAL"},
		Rows: [][]string{{fmt.Sprintf("%d/%d", res.Bound, res.Subscribers), fmt.Sprint(res.RawTopicPeers), fmt.Sprint(res.PublisherConns), fmt.Sprint(res.PublisherConnsInbound), orDash(res.FirstBindError)}}})
	r.note("Regions: a third of the peers each in eu, us and asia (1 ms inside a region, 40-90 ms between); the publisher is in eu, so latencies are dominated by the distance to the subscribers' regions.")
	r.note("Raw gossipsub: the publisher floods 16-byte messages on a topic every subscriber joined, on the same hosts and connections; JSTP: the publisher processes POST [\"news\", id] and every remote binding gets it through the mesh's topic for the endpoint.")
	r.note("Peers sample their load once an hour here: saturation reports go on one global topic, so each report costs every peer a signature check (N² checks per round of reports).")
	if res.Bound < res.Subscribers {
		r.note("The publisher accepted %d of %d subscribers; it had %d inbound connections when the binding ended (its resource manager admits twice the connections its connection manager keeps, %d).", res.Bound, res.Subscribers, res.PublisherConnsInbound, 2*(2*res.Subscribers+32))
	}
	r.note("CPU per delivery is the whole process's CPU time during a series divided by the deliveries: publisher, subscribers and the simulated network together.")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
