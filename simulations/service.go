package simulations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
	"github.com/jstp-peer/jstp-peer/routing"
)

// ServiceName is the name the simulated replicas provide.
const ServiceName = "svc.sim"

// serviceResource is what clients ask the replicas for.
var serviceResource = []string{"work"}

// service is a mesh of replicas of one name and clients sending to it:
// the setting of load-spreading, churn and autoscale.
type service struct {
	r        *run
	cluster  *Cluster
	oracle   *Oracle
	service  time.Duration
	interval time.Duration
	deadline time.Duration
	degree   int // connections a replica needs: every client and replica, and some
	region   func(i int) int

	mu        sync.Mutex
	nextIndex int // of the next replica model
	replicas  []*replicaPeer
	clients   []*clientPeer
	gen       *Generator
}

type replicaPeer struct {
	*SimPeer
	model *Replica
}

type clientPeer struct {
	*SimPeer
	chooser *switchChooser
}

// serviceConfig sizes a service.
type serviceConfig struct {
	Capacities []int
	Clients    int
	Service    time.Duration // mean service time of one unit of work
	Interval   time.Duration // replicas' saturation sampling interval (0: default)
	Deadline   time.Duration // how long clients wait for an answer
	CacheTTL   time.Duration // clients' name cache
	Topology   Topology
	Seed       uint64
	// ReplicaRegion and ClientRegion place the peers (default: by the
	// topology's shares).
	ReplicaRegion, ClientRegion func(i int) int
}

// newService starts the replicas (DHT servers, the first one the
// bootstrap peer) and then the clients (DHT clients), and waits until
// every client resolves the name to every replica.
func newService(ctx context.Context, r *run, cfg serviceConfig) (*service, error) {
	c, err := NewCluster(r.o.Network, cfg.Topology, cfg.Seed, r.log)
	if err != nil {
		return nil, err
	}
	s := &service{r: r, cluster: c, oracle: NewOracle(), service: cfg.Service, interval: cfg.Interval, deadline: cfg.Deadline}
	s.degree = len(cfg.Capacities) + cfg.Clients + 16
	total := len(cfg.Capacities) + cfg.Clients
	s.region = cfg.ReplicaRegion
	if _, err := s.addReplicas(ctx, cfg.Capacities, func(done int) { r.progress("starting peers", done, total) }); err != nil {
		s.close()
		return nil, err
	}
	if err := s.announce(ctx); err != nil {
		s.close()
		return nil, err
	}
	specs := make([]Spec, cfg.Clients)
	choosers := make([]*switchChooser, cfg.Clients)
	for i := range specs {
		choosers[i] = newSwitchChooser()
		region := -1
		if cfg.ClientRegion != nil {
			region = cfg.ClientRegion(i)
		}
		specs[i] = Spec{
			Region:  region,
			Chooser: choosers[i],
			Names:   routing.NamesConfig{CacheTTL: cfg.CacheTTL, NegativeTTL: time.Second},
			Options: []node.Option{node.WithAnswerTimeout(cfg.Deadline)},
		}
	}
	ps, err := c.StartMany(ctx, specs, 8, func(done int) { r.progress("starting peers", len(cfg.Capacities)+done, total) })
	if err != nil {
		s.close()
		return nil, err
	}
	for i, p := range ps {
		s.clients = append(s.clients, &clientPeer{SimPeer: p, chooser: choosers[i]})
	}
	var peers []*SimPeer
	for _, cp := range s.clients {
		peers = append(peers, cp.SimPeer)
	}
	s.gen = NewGenerator(peers, ServiceName, serviceResource, cfg.Deadline, cfg.Seed)
	if err := s.awaitResolution(ctx, len(cfg.Capacities)); err != nil {
		s.close()
		return nil, err
	}
	// Every client opens its connections to every replica before any
	// policy is measured: the first policy must not pay for them.
	warm := time.Duration(float64(cfg.Clients*len(cfg.Capacities)) / (0.3 * s.capacity()) * float64(time.Second) * 1.5)
	if _, err := s.phase(ctx, routing.PolicyRoundRobin, 0.3, 0, warm); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// addReplicas starts replicas with the given capacities.
func (s *service) addReplicas(ctx context.Context, capacities []int, progress func(int)) ([]*replicaPeer, error) {
	s.mu.Lock()
	base := s.nextIndex
	s.nextIndex += len(capacities)
	s.mu.Unlock()
	models := make([]*Replica, len(capacities))
	specs := make([]Spec, len(capacities))
	for i, c := range capacities {
		m := NewReplica(base+i, c, s.service)
		models[i] = m
		region := -1
		if s.region != nil {
			region = s.region(base + i)
		}
		specs[i] = Spec{
			Region:    region,
			DHTServer: true,
			Provide:   []string{ServiceName},
			Source:    m,
			Capacity:  float64(c),
			Interval:  s.interval,
			// A replica serves every client and talks to every other
			// replica (DHT): its caps must not cut its clients off.
			ConnLow:  s.degree,
			ConnHigh: 2 * s.degree,
			// Work whose client gave up is dropped at the same deadline,
			// as a server honouring its callers' deadlines does.
			Options: []node.Option{node.WithAnswerTimeout(s.deadline)},
			Setup: func(p *node.Peer) error {
				m.onDone = s.oracle.Track(p.Host.ID(), m.Capacity)
				return m.Serve(p, serviceResource...)
			},
		}
	}
	ps, err := s.cluster.StartMany(ctx, specs, 4, progress)
	var out []*replicaPeer
	for i, p := range ps {
		if p == nil {
			continue
		}
		rp := &replicaPeer{SimPeer: p, model: models[i]}
		out = append(out, rp)
	}
	s.mu.Lock()
	s.replicas = append(s.replicas, out...)
	s.mu.Unlock()
	return out, err
}

// announce has every replica announce the name again, now that all
// of them are up: a replica's first announcement reaches only the DHT
// servers that were up when it started (the first replica's, none), and
// clients that resolve a name cache what they found.
func (s *service) announce(ctx context.Context) error {
	var peers []*SimPeer
	for _, rp := range s.liveReplicas() {
		peers = append(peers, rp.SimPeer)
	}
	if err := AwaitDHT(ctx, peers, time.Minute); err != nil {
		return err
	}
	for _, rp := range s.liveReplicas() {
		if err := rp.Names.Provide(ctx, ServiceName); err != nil {
			return fmt.Errorf("simulations: replica %d: %w", rp.Index, err)
		}
	}
	return nil
}

// awaitResolution waits until every client resolves the service name to
// want replicas: a measurement must not start while some clients still
// see only part of the replicas.
func (s *service) awaitResolution(ctx context.Context, want int) error {
	deadline := time.Now().Add(2 * time.Minute)
	for _, c := range s.clients {
		for {
			ps, err := c.Names.Resolve(ctx, ServiceName)
			if err == nil && len(ps) >= want {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("simulations: client %d resolves %s to %d replicas, want %d (err %v)", c.Index, ServiceName, len(ps), want, err)
			}
			if !sleepCtx(ctx, 500*time.Millisecond) {
				return ctx.Err()
			}
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// begin prepares a measurement: the replicas' queues drained, every
// client on policy, the recorder empty.
func (s *service) begin(ctx context.Context, policy string) error {
	if err := s.drain(ctx); err != nil {
		return err
	}
	if err := s.use(policy); err != nil {
		return err
	}
	s.gen.Rec.Reset()
	return nil
}

// use makes every client use the named policy.
func (s *service) use(policy string) error {
	for _, c := range s.clients {
		if policy == PolicyOracle {
			c.chooser.set(s.oracle)
			continue
		}
		ch, err := routing.Policy(policy, c.Peer)
		if err != nil {
			return err
		}
		c.chooser.set(ch)
	}
	s.oracle.Reset()
	return nil
}

// capacity is the live replicas' total capacity in requests per second.
func (s *service) capacity() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var workers int
	for _, rp := range s.replicas {
		if !rp.isClosed() {
			workers += rp.model.Capacity
		}
	}
	return float64(workers) / s.service.Seconds()
}

func (s *service) liveReplicas() []*replicaPeer {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*replicaPeer
	for _, rp := range s.replicas {
		if !rp.isClosed() {
			out = append(out, rp)
		}
	}
	return out
}

// drain waits until no replica has work left, so that a phase does not
// inherit the previous one's queues (requests whose clients gave up are
// still served until the replica's own deadline).
func (s *service) drain(ctx context.Context) error {
	s.gen.Wait()
	deadline := time.Now().Add(2*s.deadline + time.Minute)
	for {
		idle := true
		for _, rp := range s.liveReplicas() {
			if !rp.model.idle() || rp.Node.InFlight() > 0 {
				idle = false
				break
			}
		}
		if idle {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("simulations: replicas still busy long after the load stopped")
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// phaseResult is one measured phase.
type phaseResult struct {
	Policy    string         `json:"policy"`
	Load      float64        `json:"load"`
	Staleness float64        `json:"staleness,omitempty"` // report interval, in service times
	Latency   Latencies      `json:"latency"`
	Replicas  []ReplicaStats `json:"replicas"`
	// ReportAgeMs is the mean age of the replicas' reports in the
	// clients' tables, sampled during the phase.
	ReportAgeMs float64 `json:"reportAgeMs,omitempty"`
}

// phase runs load (a fraction of the total capacity) for warmup, then
// measures for d, then waits for the last answers.
func (s *service) phase(ctx context.Context, policy string, load float64, warmup, d time.Duration) (phaseResult, error) {
	if err := s.begin(ctx, policy); err != nil {
		return phaseResult{}, err
	}
	rate := load * s.capacity()
	start := time.Now()
	measureFrom := start.Add(warmup)
	var (
		marks  []window
		reps   = s.liveReplicas()
		wg     sync.WaitGroup
		ages   []float64
		agesMu sync.Mutex
		stop   = make(chan struct{})
	)
	wg.Go(func() {
		if !sleepCtx(ctx, warmup) {
			return
		}
		for _, rp := range reps {
			marks = append(marks, rp.model.mark())
		}
		// Sample how old the replicas' reports are in the clients'
		// tables: the staleness policies actually see.
		tick := time.NewTicker(max(d/20, time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				if a, ok := s.reportAge(ctx); ok {
					agesMu.Lock()
					ages = append(ages, a)
					agesMu.Unlock()
				}
			case <-stop:
				return
			case <-ctx.Done():
				return
			}
		}
	})
	s.gen.Run(ctx, rate, warmup+d)
	end := time.Now()
	close(stop)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return phaseResult{}, err
	}
	res := phaseResult{Policy: policy, Load: load}
	for i, rp := range reps {
		if i < len(marks) {
			res.Replicas = append(res.Replicas, rp.model.since(marks[i]))
		}
	}
	s.gen.Wait()
	res.Latency = Summarise(s.gen.Rec.Records(measureFrom, end))
	if len(ages) > 0 {
		var sum float64
		for _, a := range ages {
			sum += a
		}
		res.ReportAgeMs = sum / float64(len(ages))
	}
	return res, nil
}

// reportAge is the mean age, in milliseconds, of the replicas' reports
// a few clients hold (GET ["saturation"] on each).
func (s *service) reportAge(ctx context.Context) (float64, bool) {
	ids := map[string]bool{}
	for _, rp := range s.liveReplicas() {
		ids[rp.ID().String()] = true
	}
	var sum float64
	n := 0
	for _, c := range s.clients[:min(4, len(s.clients))] {
		v, err := saturationView(ctx, c.Peer)
		if err != nil {
			continue
		}
		for _, p := range v.Peers {
			if ids[p.Peer] {
				sum += float64(p.AgeMS)
				n++
			}
		}
	}
	if n == 0 {
		return 0, false
	}
	return sum / float64(n), true
}

// saturationView asks a peer for GET ["saturation"].
func saturationView(ctx context.Context, p *node.Peer) (node.SaturationView, error) {
	var v node.SaturationView
	ch, err := p.Node.Request(ctx, dispatch.New(dispatch.GET, "saturation"))
	if err != nil {
		return v, err
	}
	var body json.RawMessage
	for a := range ch {
		if code, _, _, ok := a.AnswerInfo(); ok && code == 200 && body == nil {
			body = a.Body
		}
	}
	if body == nil {
		return v, errors.New("no answer to GET [\"saturation\"]")
	}
	err = json.Unmarshal(body, &v)
	return v, err
}

func (s *service) close() {
	if err := s.cluster.Close(); err != nil && !errors.Is(err, context.Canceled) {
		s.r.log.Warn("closing the cluster", "err", err)
	}
}
