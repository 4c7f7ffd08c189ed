package node

import (
	"context"
	"fmt"
	"testing"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// bindings builds 10,000 endpoints over a realistic spread: 100 services
// of 100 resources each, a tenth of them with a trailing wildcard.
func bindings() []dispatch.Endpoint {
	var out []dispatch.Endpoint
	for s := 0; s < 100; s++ {
		for r := 0; r < 100; r++ {
			res := []string{fmt.Sprint("svc", s), fmt.Sprint("res", r)}
			if r%10 == 0 {
				res = append(res, "...")
			} else {
				res = append(res, ":id")
			}
			out = append(out, dispatch.Endpoint{Method: "GET", Resource: res})
		}
	}
	return out
}

// BenchmarkMatch10000 matches through the index; compare with
// BenchmarkMatch10000LinearScan, every pattern tried in turn.
func BenchmarkMatch10000(b *testing.B) {
	t := newTable()
	for i, e := range bindings() {
		c, _ := dispatch.CompileEndpoint(e)
		t.add(&subscription{id: uint64(i), ep: c})
	}
	d := dispatch.New("GET", "svc57", "res42", 7)
	b.ReportAllocs()
	for b.Loop() {
		if len(t.match(d)) != 1 {
			b.Fatal("want one match")
		}
	}
}

func BenchmarkMatch10000LinearScan(b *testing.B) {
	var eps []*dispatch.CompiledEndpoint
	for _, e := range bindings() {
		c, _ := dispatch.CompileEndpoint(e)
		eps = append(eps, c)
	}
	d := dispatch.New("GET", "svc57", "res42", 7)
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for _, c := range eps {
			if _, ok := c.Match(d); ok {
				n++
			}
		}
		if n != 1 {
			b.Fatal("want one match")
		}
	}
}

// BenchmarkRequestLocal is a full local round trip: Request, trigger,
// handler, answer, stream end.
func BenchmarkRequestLocal(b *testing.B) {
	n, _ := New()
	defer n.Close()
	n.Handle(dispatch.Endpoint{Method: "GET", Resource: []string{"bench", ":id"}}, func(ctx context.Context, in *Incoming) (any, error) {
		return in.Params["id"], nil
	})
	ctx := context.Background()
	d := dispatch.New("GET", "bench", "1")
	b.ReportAllocs()
	for b.Loop() {
		ch, err := n.Request(ctx, d)
		if err != nil {
			b.Fatal(err)
		}
		for a := range ch {
			if c, _, _, _ := a.AnswerInfo(); c != 200 {
				b.Fatal(c)
			}
		}
	}
}
