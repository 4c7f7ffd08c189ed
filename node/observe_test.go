package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/internal/poll"
)

func outcome(s MetricsSnapshot, method, code string) uint64 {
	for _, o := range s.Answered {
		if o.Method == method && o.Code == code {
			return o.Count
		}
	}
	return 0
}

func methodCount(cs []MethodCount, method string) uint64 {
	for _, c := range cs {
		if c.Method == method {
			return c.Count
		}
	}
	return 0
}

func handlerLatency(s MetricsSnapshot, method string) (LatencyHistogram, bool) {
	for _, h := range s.HandlerLatency {
		if h.Method == method {
			return h, true
		}
	}
	return LatencyHistogram{}, false
}

// Dispatches received from an origin are counted by method, and the
// answers the engine makes for them by method and code: a handler's, a
// handler's own code (counted in its class when the protocol names no
// such code), a handler's error, nothing bound, no way to forward.
func TestMetricsCountDispatchesByMethodAndCode(t *testing.T) {
	n := newNode(t)
	handle := func(method, res string, h Handler) {
		t.Helper()
		if _, err := n.Handle(ep(method, res), h); err != nil {
			t.Fatal(err)
		}
	}
	handle("GET", "ok", func(context.Context, *Incoming) (any, error) { return "fine", nil })
	handle("PUT", "teapot", func(context.Context, *Incoming) (any, error) { return Reply{Code: 418, Body: "short and stout"}, nil })
	handle("GET", "secret", func(context.Context, *Incoming) (any, error) {
		return nil, dispatch.Errorf(dispatch.ErrForbidden, "not for you")
	})
	o := newChanOrigin("client")
	sent := 0
	send := func(d *dispatch.Dispatch) int {
		t.Helper()
		sent++
		d.Token = []any{fmt.Sprintf("tx-%d", sent)}
		n.Receive(t.Context(), o, d)
		return answerCode(t, o.next(t))
	}
	elsewhere := dispatch.New("GET", "ok")
	elsewhere.Host = []dispatch.Host{{Name: "elsewhere.example"}}
	for _, c := range []struct {
		d    *dispatch.Dispatch
		code int
	}{
		{dispatch.New("GET", "ok"), 200},
		{dispatch.New("GET", "ok"), 200},
		{dispatch.New("PUT", "teapot"), 418},
		{dispatch.New("GET", "secret"), 403},
		{dispatch.New("DELETE", "nothing"), 404},
		{elsewhere, 502},
	} {
		if got := send(c.d); got != c.code {
			t.Fatalf("%s: answered %d, want %d", describe(c.d), got, c.code)
		}
	}

	// A handler's answer is recorded just after it has gone out.
	var s MetricsSnapshot
	poll.Until(t, 10*time.Second, "the handlers' answers to be recorded", func() bool {
		s = n.Metrics()
		get, _ := handlerLatency(s, "GET")
		put, _ := handlerLatency(s, "PUT")
		return get.Count == 3 && put.Count == 1
	})
	for method, want := range map[string]uint64{"GET": 4, "PUT": 1, "DELETE": 1, "POST": 0, "ANSWER": 0} {
		if got := methodCount(s.Received, method); got != want {
			t.Errorf("received %s = %d, want %d", method, got, want)
		}
	}
	if got := methodCount(s.Forwarded, "GET"); got != 0 {
		t.Errorf("forwarded GET = %d with no forwarder", got)
	}
	for _, c := range []struct {
		method, code string
		want         uint64
	}{
		{"GET", "200", 2}, {"PUT", "4xx", 1}, {"GET", "403", 1}, {"DELETE", "404", 1}, {"GET", "502", 1},
		{"PUT", "200", 0},
	} {
		if got := outcome(s, c.method, c.code); got != c.want {
			t.Errorf("answered %s %s = %d, want %d (all: %+v)", c.method, c.code, got, c.want, s.Answered)
		}
	}
	// Handlers ran for two GETs and a PUT; 404 and 502 are the engine's.
	for method, want := range map[string]uint64{"GET": 3, "PUT": 1} {
		h, ok := handlerLatency(s, method)
		if !ok || h.Count != want {
			t.Errorf("handler latency %s: %+v, want %d observations", method, h, want)
			continue
		}
		if last := h.Buckets[len(h.Buckets)-1]; last > h.Count || len(h.Buckets) != len(LatencyBounds()) {
			t.Errorf("handler latency %s: buckets %v for count %d", method, h.Buckets, h.Count)
		}
		for i := 1; i < len(h.Buckets); i++ {
			if h.Buckets[i] < h.Buckets[i-1] {
				t.Errorf("handler latency %s: buckets not cumulative: %v", method, h.Buckets)
			}
		}
		if h.Sum <= 0 {
			t.Errorf("handler latency %s: sum %v", method, h.Sum)
		}
	}
	if _, ok := handlerLatency(s, "DELETE"); ok {
		t.Error("a latency recorded for DELETE, which no handler answered")
	}
	if s.Subscriptions.Local != len(n.Subscriptions()) || s.Subscriptions.Remote != 0 || s.Subscriptions.QueueCapacity != DefaultQueueLen {
		t.Errorf("subscriptions: %+v, want %d local", s.Subscriptions, len(n.Subscriptions()))
	}
	if s.Stats.Received != 6 {
		t.Errorf("Stats.Received = %d, want 6", s.Stats.Received)
	}
}

// A latency falls in the first bucket whose bound it does not exceed.
func TestMetricsLatencyBuckets(t *testing.T) {
	var h latency
	h.observe(100 * time.Microsecond) // on the first bound
	h.observe(101 * time.Microsecond) // just above it
	h.observe(time.Minute)            // above every bound
	got, ok := h.snapshot("GET")
	if !ok || got.Count != 3 {
		t.Fatalf("snapshot: %+v", got)
	}
	if got.Buckets[0] != 1 || got.Buckets[1] != 2 || got.Buckets[len(got.Buckets)-1] != 2 {
		t.Fatalf("buckets %v: want 1 in the first, 2 up to the last bound", got.Buckets)
	}
	if want := time.Minute + 201*time.Microsecond; got.Sum != want {
		t.Fatalf("sum %v, want %v", got.Sum, want)
	}
}

// Codes the protocol names are counted one by one, any other in its
// class, and anything outside 100-599 as "other": a handler cannot
// create new series.
func TestMetricsCodeIndex(t *testing.T) {
	for code, want := range map[int]string{
		200: "200", 404: "404", 508: "508", 201: "2xx", 418: "4xx", 599: "5xx", 102: "1xx", 302: "3xx",
		0: "other", 99: "other", 600: "other", -1: "other",
	} {
		if got := codeNames[codeIndex(code)]; got != want {
			t.Errorf("code %d counted as %s, want %s", code, got, want)
		}
	}
	for _, m := range []string{dispatch.GET, dispatch.POST, dispatch.PUT, dispatch.PATCH, dispatch.DELETE, dispatch.BIND, dispatch.RELEASE, dispatch.ANSWER} {
		if got := methodNames[methodIndex(m)]; got != m {
			t.Errorf("method %s counted as %s", m, got)
		}
	}
	if got := methodNames[methodIndex("")]; got != "other" {
		t.Errorf("no method counted as %q", got)
	}
}

// Recording is on the path of every dispatch: it must not allocate.
func TestMetricsRecordingAllocatesNothing(t *testing.T) {
	n := newNode(t)
	d := dispatch.New("GET", "x")
	l := &ledger{method: methodIndex("POST"), sent: time.Now()}
	start := time.Now()
	body := any(Reply{Code: 201})
	allocs := testing.AllocsPerRun(1000, func() {
		n.observeReceived(d)
		n.observeForwarded(d)
		n.observeAnswered(d.Method, 404)
		n.observeHandled(d.Method, body, nil, start)
		n.observeReturned(l, 200)
	})
	if allocs != 0 {
		t.Fatalf("recording allocates %v times per dispatch", allocs)
	}
	s := n.Metrics()
	if got := outcome(s, "GET", "2xx"); got == 0 {
		t.Fatal("the recorded handler answer is missing")
	}
	if len(s.Returned) != 1 || s.Returned[0].Method != "POST" || s.Returned[0].Code != "200" {
		t.Fatalf("returned: %+v", s.Returned)
	}
	if len(s.ForwardLatency) != 1 || s.ForwardLatency[0].Method != "POST" {
		t.Fatalf("forward latency: %+v", s.ForwardLatency)
	}
}

// The engine's own resources take a short queue; handlers take the
// engine's bound unless told otherwise.
func TestQueueLengths(t *testing.T) {
	n := newNode(t)
	s, err := n.Handle(dispatch.Endpoint{Method: dispatch.GET, Resource: []string{"mine"}}, func(context.Context, *Incoming) (any, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	short, err := n.Handle(dispatch.Endpoint{Method: dispatch.GET, Resource: []string{"short"}}, func(context.Context, *Incoming) (any, error) { return nil, nil }, QueueLen(3))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.s.queue.limit; got != DefaultQueueLen {
		t.Errorf("a handler's queue holds %d, want %d", got, DefaultQueueLen)
	}
	if got := short.s.queue.limit; got != 3 {
		t.Errorf("QueueLen(3) queue holds %d", got)
	}
	n.subs.each(func(sub *subscription) {
		if len(sub.ep.Endpoint.Resource) == 1 && sub.ep.Endpoint.Resource[0] == "peer" && sub.queue.limit != BuiltinQueueLen {
			t.Errorf("GET [\"peer\"] queue holds %d, want %d", sub.queue.limit, BuiltinQueueLen)
		}
	})
}
