package simulations

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	kadrouting "github.com/libp2p/go-libp2p/core/routing"

	"github.com/jstp-peer/jstp-peer/routing"
)

var resolution = Scenario{
	Name:  "resolution",
	Title: "service-name lookups through the DHT as the mesh grows",
	Summary: "Service names are resolved through the DHT in meshes of growing size, across three regions: " +
		"latency of a first lookup, DHT peers queried per lookup, providers found, and how often the name cache answers.",
	PeersFlag:    "the largest mesh; the sweep runs 50, 100, 200, 500, 1000 up to it",
	DefaultPeers: 200,
	run:          runResolution,
}

// resolutionRun is one mesh size.
type resolutionRun struct {
	Peers int `json:"peers"`
	// Cold lookups: a peer's first resolution of a name.
	Lookups      int       `json:"lookups"`
	NotFound     int       `json:"notFound"`
	AllFound     float64   `json:"allProvidersFound"` // share of lookups that found every provider
	Latency      Latencies `json:"latency"`
	PeersQueried struct {
		P50 float64 `json:"p50"`
		P99 float64 `json:"p99"`
	} `json:"peersQueried"`
	// Second resolutions, right after each first one.
	CacheHitRate float64 `json:"cacheHitRate"`
	WarmP99Ms    float64 `json:"warmP99Ms"`
}

func runResolution(ctx context.Context, r *run) error {
	sizes := []int{50, 100, 200, 500, 1000}
	names, providers, lookups := 8, 2, 60
	if r.o.Short {
		sizes = []int{8, 16}
		names, lookups = 3, 10
	}
	var use []int
	for _, n := range sizes {
		if n <= r.o.Peers {
			use = append(use, n)
		}
	}
	if len(use) == 0 || use[len(use)-1] != r.o.Peers {
		use = append(use, r.o.Peers)
	}
	r.res.Topology = ThreeRegions.Name
	r.res.Params = map[string]any{"sizes": use, "names": names, "providersPerName": providers, "lookupsPerSize": lookups, "dhtServers": "all peers", "connLow": DefaultConnLow, "connHigh": DefaultConnHigh}
	var runs []resolutionRun
	for k, n := range use {
		res, err := resolveOnce(ctx, r, n, names, providers, lookups, r.o.Seed+uint64(k))
		if err != nil {
			return err
		}
		runs = append(runs, res)
	}
	r.progress("done", 1, 1)
	resolutionReport(r, runs)
	return nil
}

func resolveOnce(ctx context.Context, r *run, n, names, providers, lookups int, seed uint64) (resolutionRun, error) {
	res := resolutionRun{Peers: n}
	c, err := NewCluster(r.o.Network, ThreeRegions, seed, r.log)
	if err != nil {
		return res, err
	}
	defer c.Close()
	specs := make([]Spec, n)
	for i := range specs {
		specs[i] = Spec{Region: -1, DHTServer: true, Interval: time.Hour}
	}
	phase := fmt.Sprintf("%d peers: starting", n)
	peers, err := c.StartMany(ctx, specs, 16, func(done int) { r.progress(phase, done, n) })
	if err != nil {
		return res, err
	}
	if err := AwaitDHT(ctx, peers, time.Minute); err != nil {
		return res, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x7e5))
	// Providers announce once the whole mesh is up, as a long-running
	// mesh's announcements would have spread.
	provided := map[string][]int{}
	for k := range names {
		name := fmt.Sprintf("name-%d.sim", k)
		for _, i := range pickDistinct(rng, n, providers) {
			if err := peers[i].Names.Provide(ctx, name); err != nil {
				return res, fmt.Errorf("simulations: peer %d provides %s: %w", i, name, err)
			}
			provided[name] = append(provided[name], i)
		}
		r.progress(fmt.Sprintf("%d peers: announcing", n), k+1, names)
	}
	type ask struct {
		peer int
		name string
	}
	asks := make([]ask, lookups)
	for i := range asks {
		asks[i] = ask{peer: rng.IntN(n), name: fmt.Sprintf("name-%d.sim", rng.IntN(names))}
	}
	// Cold: each (peer, name) once; then at once the same again, which
	// the name cache should answer. The DHT walk of a lookup is observed
	// on a twin query with the same key from the same peer.
	var recs []Record
	var queried, warmMs []float64
	seen := map[ask]bool{}
	var warm, hits uint64
	for i, a := range asks {
		r.progress(fmt.Sprintf("%d peers: lookups", n), i, len(asks))
		if seen[a] {
			continue
		}
		seen[a] = true
		p := peers[a.peer]
		start := time.Now()
		found, err := p.Names.Resolve(ctx, a.name)
		rec := Record{Sent: start, Latency: time.Since(start), Code: 200}
		if err != nil {
			rec.Code = 404
			res.NotFound++
		}
		recs = append(recs, rec)
		res.Lookups++
		if countProviders(found, provided[a.name], peers) == len(provided[a.name]) {
			res.AllFound++
		}
		before := p.Names.Stats().CacheHits
		start = time.Now()
		_, _ = p.Names.Resolve(ctx, a.name)
		warmMs = append(warmMs, ms(time.Since(start)))
		warm++
		hits += p.Names.Stats().CacheHits - before
		queried = append(queried, float64(queriedPeers(ctx, p, a.name)))
	}
	if res.Lookups > 0 {
		res.AllFound /= float64(res.Lookups)
	}
	res.Latency = Summarise(recs)
	slices.Sort(queried)
	res.PeersQueried.P50, res.PeersQueried.P99 = Quantile(queried, 0.5), Quantile(queried, 0.99)
	if warm > 0 {
		res.CacheHitRate = float64(hits) / float64(warm)
	}
	slices.Sort(warmMs)
	res.WarmP99Ms = Quantile(warmMs, 0.99)
	return res, nil
}

// countProviders counts how many of the expected providers are in found.
func countProviders(found []peer.AddrInfo, want []int, peers []*SimPeer) int {
	n := 0
	for _, i := range want {
		for _, f := range found {
			if f.ID == peers[i].ID() {
				n++
				break
			}
		}
	}
	return n
}

// queriedPeers walks the DHT for name's providers from p, as a
// resolution does, and counts the peers it asked.
func queriedPeers(ctx context.Context, p *SimPeer, name string) int {
	key, err := routing.NameCID(name)
	if err != nil {
		return 0
	}
	qctx, cancel := context.WithTimeout(ctx, routing.DefaultLookupTimeout)
	defer cancel()
	qctx, events := kadrouting.RegisterForQueryEvents(qctx)
	asked := map[string]bool{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range events {
			if ev.Type == kadrouting.SendingQuery {
				asked[ev.ID.String()] = true
			}
		}
	}()
	for range p.Host.DHT().FindProvidersAsync(qctx, key, routing.DefaultMaxProviders) {
	}
	cancel()
	<-done
	return len(asked)
}

func resolutionReport(r *run, runs []resolutionRun) {
	res := r.res
	notFound := 0
	for _, x := range runs {
		notFound += x.NotFound
	}
	r.check("lookups that found no provider", float64(notFound), "0", notFound == 0)
	res.Table = Table{
		Title:   "First lookups of a name, by mesh size",
		Columns: []string{"PEERS", "LOOKUPS", "ALL PROVIDERS FOUND", "P50 MS", "P99 MS", "PEERS QUERIED P50", "P99", "CACHE HIT RATE", "CACHED P99 MS"},
	}
	lat := Figure{File: "latency.svg", Title: "Latency of a first lookup", Kind: "line", XLabel: "peers in the mesh", YLabel: "latency (ms)", LogX: true}
	q := Figure{File: "queried.svg", Title: "DHT peers queried per lookup", Kind: "line", XLabel: "peers in the mesh", YLabel: "peers queried", LogX: true}
	p50, p99, q50, q99 := Series{Name: "p50"}, Series{Name: "p99"}, Series{Name: "p50"}, Series{Name: "p99"}
	for _, x := range runs {
		res.Table.Rows = append(res.Table.Rows, []string{
			fmt.Sprint(x.Peers), fmt.Sprint(x.Lookups), fmt.Sprintf("%.0f%%", x.AllFound*100),
			fmtFloat(x.Latency.P50), fmtFloat(x.Latency.P99), fmtFloat(x.PeersQueried.P50), fmtFloat(x.PeersQueried.P99),
			fmt.Sprintf("%.0f%%", x.CacheHitRate*100), fmtFloat(x.WarmP99Ms),
		})
		n := float64(x.Peers)
		p50.X, p50.Y = append(p50.X, n), append(p50.Y, x.Latency.P50)
		p99.X, p99.Y = append(p99.X, n), append(p99.Y, x.Latency.P99)
		q50.X, q50.Y = append(q50.X, n), append(q50.Y, x.PeersQueried.P50)
		q99.X, q99.Y = append(q99.X, n), append(q99.Y, x.PeersQueried.P99)
	}
	lat.Series = []Series{p50, p99}
	q.Series = []Series{q50, q99}
	res.Figures = append(res.Figures, lat, q)
	res.Data = runs
	r.note("Every peer serves the DHT, with connection caps (low %d, high %d); peers are spread over three regions (1 ms inside, 40-90 ms between), so a lookup's latency is mostly round trips between regions.", DefaultConnLow, DefaultConnHigh)
	r.note("Peers queried are counted on a second walk for the same key from the same peer, with the DHT's query events (kad-dht does not report hops); the resolution itself goes through routing.Names as a dispatch's would.")
	r.note("Cache hit rate: right after each first lookup, the same peer resolves the same name again; the name cache (a minute by default) should answer.")
}
