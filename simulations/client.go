package simulations

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// Generator sends requests to a service name from client peers, each
// client an open-loop Poisson process: arrivals do not wait for answers,
// as independent users do not, so a slow replica builds a queue instead
// of slowing the load down. The arrival times and each request's work
// are drawn from the seed.
type Generator struct {
	Clients  []*SimPeer
	Name     string        // the service name requests go to
	Resource []string      // the resource they ask for
	Deadline time.Duration // how long a request waits for its answer
	Rec      *Recorder

	rngs   []*rand.Rand
	wg     sync.WaitGroup // requests waiting for answers
	mu     sync.Mutex
	sent   int
	active int
}

// NewGenerator returns a generator with one random stream per client,
// derived from seed.
func NewGenerator(clients []*SimPeer, name string, resource []string, deadline time.Duration, seed uint64) *Generator {
	g := &Generator{Clients: clients, Name: name, Resource: resource, Deadline: deadline, Rec: &Recorder{}}
	for i := range clients {
		g.rngs = append(g.rngs, rand.New(rand.NewPCG(seed, uint64(i)+1)))
	}
	return g
}

// Run sends requests at rate per second in total for d, and returns once
// the last one is sent; Wait waits for the answers. It returns early when
// ctx ends.
func (g *Generator) Run(ctx context.Context, rate float64, d time.Duration) {
	if rate <= 0 || len(g.Clients) == 0 {
		return
	}
	per := rate / float64(len(g.Clients))
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for i, c := range g.Clients {
		rng := g.rngs[i]
		wg.Go(func() {
			next := time.Now().Add(exp(rng, per))
			for next.Before(end) {
				if wait := time.Until(next); wait > 0 {
					t := time.NewTimer(wait)
					select {
					case <-t.C:
					case <-ctx.Done():
						t.Stop()
						return
					}
				}
				// The work is drawn here, in arrival order, so each
				// client's sequence is the seed's whatever the policy.
				units := rng.ExpFloat64()
				g.send(ctx, c, units)
				next = next.Add(exp(rng, per))
			}
		})
	}
	wg.Wait()
}

// exp is an exponential inter-arrival time at rate per second.
func exp(rng *rand.Rand, rate float64) time.Duration {
	return time.Duration(rng.ExpFloat64() / rate * float64(time.Second))
}

func (g *Generator) send(ctx context.Context, c *SimPeer, units float64) {
	g.wg.Add(1)
	g.mu.Lock()
	g.sent++
	g.active++
	g.mu.Unlock()
	go func() {
		defer g.wg.Done()
		rec := g.do(ctx, c, units)
		g.Rec.Add(rec)
		g.mu.Lock()
		g.active--
		g.mu.Unlock()
	}()
}

// do sends one request and waits for its final answer.
func (g *Generator) do(ctx context.Context, c *SimPeer, units float64) Record {
	d := dispatch.New(dispatch.GET, anySlice(g.Resource)...)
	d.Host = []dispatch.Host{{Name: g.Name}}
	d.Body = json.RawMessage(fmt.Sprintf(`{"w":%.6f}`, units))
	// A request sent is seen through to its answer or its deadline even
	// when the run stops sending: cancelling it would leave it with no
	// answer at all, which is what the scenarios count as lost.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.Deadline)
	defer cancel()
	start := time.Now()
	rec := Record{Sent: start, Replica: -1}
	ch, err := c.Node.Request(rctx, d)
	if err != nil {
		rec.Code = 400
		return rec
	}
	for a := range ch {
		code, _, _, ok := a.AnswerInfo()
		if !ok || code < 200 || rec.Code != 0 {
			continue
		}
		rec.Code = code
		rec.Latency = time.Since(start)
		var ans Answer
		if code == 200 && json.Unmarshal(a.Body, &ans) == nil {
			rec.Replica = ans.Replica
		}
		if outcomeOf(code) == OutcomeFailed {
			rec.Detail = string(a.Body[:min(len(a.Body), 200)])
		}
	}
	return rec
}

// Wait waits until every request sent has its answer (or its 504).
func (g *Generator) Wait() { g.wg.Wait() }

// Sent is how many requests were sent so far.
func (g *Generator) Sent() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sent
}

// Active is how many requests wait for their answers.
func (g *Generator) Active() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.active
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
