package simulations

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
	"github.com/jstp-peer/jstp-peer/saturation"
)

// Replica is the load model of one replica of a service: Capacity
// workers, each serving one request at a time for the request's work
// times the mean service time. Requests beyond the workers wait, so
// latency comes from queueing, as on a real server. It records what a
// report needs (utilisation, time overloaded, requests served) and is the
// saturation Source of its peer: CPU is the share of worker time busy
// since the previous sample. Safe for concurrent use.
type Replica struct {
	Index    int
	Capacity int
	Service  time.Duration // mean service time of one unit of work

	sem chan struct{}

	mu        sync.Mutex
	waiting   int
	busy      int
	last      time.Time     // when the counters below were last advanced
	busyTime  time.Duration // worker-time spent serving (sum over workers)
	overTime  time.Duration // time with at least Capacity requests waiting
	served    int
	sampledAt time.Time
	sampledBy time.Duration // busyTime at the previous Sample

	onDone func() // told when a request leaves (the oracle's bookkeeping)
}

// NewReplica returns a replica with capacity workers and a mean service
// time per unit of work.
func NewReplica(index, capacity int, service time.Duration) *Replica {
	now := time.Now()
	return &Replica{Index: index, Capacity: capacity, Service: service, sem: make(chan struct{}, capacity), last: now, sampledAt: now}
}

// advanceLocked brings the time integrals up to now.
func (r *Replica) advanceLocked(now time.Time) {
	dt := now.Sub(r.last)
	if dt <= 0 {
		return
	}
	r.busyTime += time.Duration(r.busy) * dt
	if r.waiting >= r.Capacity {
		r.overTime += dt
	}
	r.last = now
}

func (r *Replica) change(dWaiting, dBusy int) {
	r.mu.Lock()
	r.advanceLocked(time.Now())
	r.waiting += dWaiting
	r.busy += dBusy
	r.mu.Unlock()
}

// Work is the body of a simulated request: how many units of work it
// takes (exponential with mean 1, drawn by the client from its seed).
type Work struct {
	Units float64 `json:"w"`
}

// Answer is what a replica answers.
type Answer struct {
	Replica int `json:"replica"`
}

// Handle is the replica's handler: wait for a worker, work, answer.
func (r *Replica) Handle(ctx context.Context, in *node.Incoming) (any, error) {
	var w Work
	if err := json.Unmarshal(in.Dispatch.Body, &w); err != nil || w.Units < 0 {
		return nil, dispatch.Errorf(dispatch.ErrBadDispatch, "the body must be {\"w\": units of work}")
	}
	defer func() {
		if r.onDone != nil {
			r.onDone()
		}
	}()
	r.change(1, 0)
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		r.change(-1, 0)
		return nil, ctx.Err()
	}
	r.change(-1, 1)
	t := time.NewTimer(time.Duration(w.Units * float64(r.Service)))
	defer t.Stop()
	var err error
	select {
	case <-t.C:
	case <-ctx.Done():
		err = ctx.Err()
	}
	<-r.sem
	r.mu.Lock()
	r.advanceLocked(time.Now())
	r.busy--
	if err == nil {
		r.served++
	}
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return Answer{Replica: r.Index}, nil
}

// Serve binds the replica's handler on p for every method on resource.
func (r *Replica) Serve(p *node.Peer, resource ...string) error {
	_, err := p.Node.Handle(dispatch.Endpoint{Method: "*", Resource: resource}, r.Handle)
	return err
}

// Sample implements saturation.Source: CPU is the share of worker time
// busy since the previous sample, as a machine's CPU counters would say.
func (r *Replica) Sample(ctx context.Context) (saturation.Sample, error) {
	if err := ctx.Err(); err != nil {
		return saturation.Sample{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	r.advanceLocked(now)
	dt := now.Sub(r.sampledAt)
	u := 0.0
	if dt > 0 {
		u = float64(r.busyTime-r.sampledBy) / float64(dt) / float64(r.Capacity)
	}
	r.sampledAt, r.sampledBy = now, r.busyTime
	return saturation.Sample{CPU: min(max(u, 0), 1), HasCPU: true}, nil
}

// idle reports whether the replica has nothing to do.
func (r *Replica) idle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.waiting == 0 && r.busy == 0
}

// ReplicaStats is what a replica did over a window.
type ReplicaStats struct {
	Index       int     `json:"index"`
	Capacity    int     `json:"capacity"`
	Served      int     `json:"served"`
	Utilisation float64 `json:"utilisation"`
	Overloaded  float64 `json:"overloaded"` // share of the window with ≥ Capacity requests waiting
}

// window is a replica's counters at the start of a measurement.
type window struct {
	at         time.Time
	busy, over time.Duration
	served     int
}

func (r *Replica) mark() window {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.advanceLocked(time.Now())
	return window{at: r.last, busy: r.busyTime, over: r.overTime, served: r.served}
}

func (r *Replica) since(w window) ReplicaStats {
	now := r.mark()
	s := ReplicaStats{Index: r.Index, Capacity: r.Capacity, Served: now.served - w.served}
	if dt := now.at.Sub(w.at); dt > 0 {
		s.Utilisation = float64(now.busy-w.busy) / float64(dt) / float64(r.Capacity)
		s.Overloaded = float64(now.over-w.over) / float64(dt)
	}
	return s
}
