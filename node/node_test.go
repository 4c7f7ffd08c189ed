package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/mesh"

	"github.com/jstp-peer/jstp-peer/internal/poll"
)

func TestHandleAndRequest(t *testing.T) {
	n := newNode(t)
	if _, err := n.Handle(ep("GET", "users", ":id"), func(ctx context.Context, in *Incoming) (any, error) {
		return map[string]string{"id": in.Params["id"]}, nil
	}); err != nil {
		t.Fatal(err)
	}
	ch, err := n.Request(context.Background(), dispatch.New("GET", "users", 97))
	if err != nil {
		t.Fatal(err)
	}
	as := collectAll(t, ch)
	if len(as) != 1 || answerCode(t, as[0]) != 200 {
		t.Fatalf("answers = %v", as)
	}
	if got := string(as[0].Body); got != `{"id":"97"}` {
		t.Fatalf("body = %s", got)
	}
	_, txid, trig, _ := as[0].AnswerInfo()
	if txid == "" || trig == "" {
		t.Fatalf("answer lacks ids: %s", as[0])
	}
}

func TestRequestKeepsGivenTransactionID(t *testing.T) {
	n := newNode(t)
	var gotToken []any
	n.Handle(ep("POST", "x"), func(ctx context.Context, in *Incoming) (any, error) {
		gotToken = in.Dispatch.Token
		return nil, nil
	})
	d := dispatch.New("POST", "x")
	d.Token = []any{"tx-1", "ignored", "app-data"}
	as := collectAll(t, must(n.Request(context.Background(), d)))
	_, txid, trig, _ := as[0].AnswerInfo()
	if txid != "tx-1" {
		t.Fatalf("txid = %q", txid)
	}
	// The subscriber's copy carries [txid, trigid] and the rest of the
	// application's token; the emitter's dispatch is not modified.
	if len(gotToken) != 3 || gotToken[0] != "tx-1" || gotToken[1] != trig || gotToken[2] != "app-data" {
		t.Fatalf("subscriber token = %v", gotToken)
	}
	if d.Token[1] != "ignored" {
		t.Fatal("Request modified the caller's dispatch")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestNothingBoundAnswers404(t *testing.T) {
	// A 404 must come without waiting for the (here, hour-long) deadline.
	n := newNode(t, WithAnswerTimeout(time.Hour))
	as := collectAll(t, must(n.Request(context.Background(), dispatch.New("GET", "nothing", "here"))))
	if len(as) != 1 || answerCode(t, as[0]) != 404 {
		t.Fatalf("answers = %v", as)
	}
	if !strings.Contains(string(as[0].Body), "GET /nothing/here") {
		t.Fatalf("404 body should say what was not found: %s", as[0].Body)
	}
}

func TestOneAnswerPerSubscriber(t *testing.T) {
	n := newNode(t)
	for i := 0; i < 3; i++ {
		n.Handle(ep("GET", "multi"), func(ctx context.Context, in *Incoming) (any, error) { return i, nil })
	}
	as := collectAll(t, must(n.Request(context.Background(), dispatch.New("GET", "multi"))))
	if len(as) != 3 {
		t.Fatalf("got %d answers, want 3", len(as))
	}
	trigs := map[string]bool{}
	bodies := map[string]bool{}
	for _, a := range as {
		_, _, trig, _ := a.AnswerInfo()
		trigs[trig] = true
		bodies[string(a.Body)] = true
	}
	if len(trigs) != 3 || len(bodies) != 3 {
		t.Fatalf("triggering ids %v, bodies %v: want 3 distinct each", trigs, bodies)
	}
}

func TestMissingAnswersBecome504(t *testing.T) {
	n := newNode(t, WithAnswerTimeout(50*time.Millisecond))
	release := make(chan struct{})
	defer close(release)
	n.Handle(ep("GET", "slow"), func(ctx context.Context, in *Incoming) (any, error) {
		<-release
		return "late", nil
	})
	n.Handle(ep("GET", "slow"), func(ctx context.Context, in *Incoming) (any, error) { return "fast", nil })
	as := collectAll(t, must(n.Request(context.Background(), dispatch.New("GET", "slow"))))
	codes := map[int]int{}
	for _, a := range as {
		codes[answerCode(t, a)]++
	}
	if codes[200] != 1 || codes[504] != 1 || len(as) != 2 {
		t.Fatalf("codes = %v, want one 200 and one 504", codes)
	}
	// The 504 names the subscriber that did not answer.
	for _, a := range as {
		if answerCode(t, a) == 504 {
			if _, _, trig, _ := a.AnswerInfo(); trig == "" {
				t.Fatal("504 without triggering id")
			}
		}
	}
}

func TestContextDeadlineBoundsTheWait(t *testing.T) {
	n := newNode(t, WithAnswerTimeout(time.Hour))
	block := make(chan struct{})
	defer close(block)
	n.Handle(ep("GET", "never"), func(ctx context.Context, in *Incoming) (any, error) { <-block; return nil, nil })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	as := collectAll(t, must(n.Request(ctx, dispatch.New("GET", "never"))))
	if len(as) != 1 || answerCode(t, as[0]) != 504 {
		t.Fatalf("answers = %v, want one 504", as)
	}
}

func TestCancelEndsStreamWithout504(t *testing.T) {
	n := newNode(t, WithAnswerTimeout(time.Hour))
	block := make(chan struct{})
	defer close(block)
	n.Handle(ep("GET", "never"), func(ctx context.Context, in *Incoming) (any, error) { <-block; return nil, nil })
	ctx, cancel := context.WithCancel(context.Background())
	ch := must(n.Request(ctx, dispatch.New("GET", "never")))
	cancel()
	if as := collectAll(t, ch); len(as) != 0 {
		t.Fatalf("answers after cancel = %v", as)
	}
}

func TestHandlerErrorsBecomeCodes(t *testing.T) {
	n := newNode(t)
	n.Handle(ep("DELETE", "locked"), func(ctx context.Context, in *Incoming) (any, error) {
		return nil, fmt.Errorf("deleting: %w", dispatch.ErrForbidden)
	})
	n.Handle(ep("PUT", "made"), func(ctx context.Context, in *Incoming) (any, error) {
		return Reply{Code: 201, Body: "ok"}, nil
	})
	a := collectAll(t, must(n.Request(context.Background(), dispatch.New("DELETE", "locked"))))[0]
	if answerCode(t, a) != 403 || !strings.Contains(string(a.Body), "deleting: forbidden") {
		t.Fatalf("answer = %s", a)
	}
	a = collectAll(t, must(n.Request(context.Background(), dispatch.New("PUT", "made"))))[0]
	if answerCode(t, a) != 201 {
		t.Fatalf("answer = %s", a)
	}
}

func TestInvalidRequestIsAnError(t *testing.T) {
	n := newNode(t)
	d := dispatch.New("FETCH", "x")
	if _, err := n.Request(context.Background(), d); dispatch.Code(err) != 405 {
		t.Fatalf("err = %v, want 405", err)
	}
	if err := n.Send(context.Background(), dispatch.New("GET")); dispatch.Code(err) != 400 {
		t.Fatalf("err = %v, want 400", err)
	}
}

func TestForwardWithoutMeshIs502(t *testing.T) {
	n := newNode(t)
	d := dispatch.New("GET", "pizza")
	d.Host = []dispatch.Host{{Name: "pizza.com.ar"}}
	as := collectAll(t, must(n.Request(context.Background(), d)))
	if len(as) != 1 || answerCode(t, as[0]) != 502 {
		t.Fatalf("answers = %v", as)
	}
	if err := n.Send(context.Background(), d); !errors.Is(err, dispatch.ErrNotGateway) {
		t.Fatalf("Send err = %v", err)
	}
	// Local names are popped off the chain: this one is processed here.
	n.Handle(ep("GET", "pizza"), func(context.Context, *Incoming) (any, error) { return "slice", nil })
	d.Host = []dispatch.Host{{Name: "localhost"}, {Name: n.ID()}}
	as = collectAll(t, must(n.Request(context.Background(), d)))
	if answerCode(t, as[0]) != 200 {
		t.Fatalf("local chain answered %s", as[0])
	}
}

func TestHostChainStep(t *testing.T) {
	var gotTo dispatch.Host
	var gotRest []dispatch.Host
	var out *memLink
	n := newNode(t, WithForwarder(forwarderFunc(func(ctx context.Context, to dispatch.Host) (mesh.Link, error) {
		gotTo = to
		return out, nil
	})))
	out = recordLink(n, "a")
	d := dispatch.New("GET", "x")
	d.Host = []dispatch.Host{{Name: "localhost"}, {Name: "a"}, {Name: "b", Port: 33333, Transport: "tcp"}}
	if err := n.Send(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	gotRest = (<-out.sent).Host
	if gotTo.Name != "a" || len(gotRest) != 1 || gotRest[0].Port != 33333 {
		t.Fatalf("forwarded to %v with rest %v", gotTo, gotRest)
	}
	// A gateway that refuses to forward answers 502 to what arrives.
	n2 := newNode(t, WithoutForwarding(), WithForwarder(forwarderFunc(func(context.Context, dispatch.Host) (mesh.Link, error) {
		t.Error("forwarded despite WithoutForwarding")
		return nil, ErrLocalHop
	})))
	o := newChanOrigin("peer")
	d.Token = []any{"tx"}
	n2.Receive(context.Background(), o, d)
	if a := o.next(t); answerCode(t, a) != 502 {
		t.Fatalf("got %s", a)
	}
}

func TestRemoteSubscriberLifecycle(t *testing.T) {
	n := newNode(t)
	o := newChanOrigin("remote")
	ctx := context.Background()
	bind := dispatch.NewSubscription("BIND", ep("POST", "chat", "..."))
	bind.Token = []any{"b1"}
	n.Receive(ctx, o, bind)
	if a := o.next(t); answerCode(t, a) != 200 {
		t.Fatalf("BIND answered %s", a)
	}
	if err := n.Send(ctx, dispatch.New("POST", "chat", "room1")); err != nil {
		t.Fatal(err)
	}
	if got := o.next(t); got.Method != "POST" || got.ResourceText()[1] != "room1" {
		t.Fatalf("delivered %s", got)
	}
	// RELEASE of something never bound: 406.
	rel := dispatch.NewSubscription("RELEASE", ep("POST", "other"))
	n.Receive(ctx, o, rel)
	if x := o.next(t); x.Exception == nil || x.Exception.Code != 406 {
		t.Fatalf("got %s", x)
	}
	// Departure releases: the binding goes away with its origin.
	o.leave()
	poll.Until(t, 10*time.Second, "departed origin's subscription released", func() bool {
		for _, s := range n.Subscriptions() {
			if s.Owner == "remote" {
				return false
			}
		}
		return true
	})
}

func TestRemoteSubscriberAnswers(t *testing.T) {
	n := newNode(t)
	server := newChanOrigin("server")
	ctx := context.Background()
	n.Receive(ctx, server, dispatch.NewSubscription("BIND", ep("GET", "svc")))
	ch := must(n.Request(ctx, dispatch.New("GET", "svc")))
	got := server.next(t)
	if len(got.Token) != 2 {
		t.Fatalf("subscriber copy token = %v", got.Token)
	}
	txid, trig := got.Token[0].(string), got.Token[1].(string)
	n.Receive(ctx, server, dispatch.NewAnswer(200, txid, trig, json.RawMessage(`"served"`)))
	as := collectAll(t, ch)
	if len(as) != 1 || string(as[0].Body) != `"served"` {
		t.Fatalf("answers = %v", as)
	}
	// And an emitter elsewhere gets it routed back through this engine.
	client := provOrigin{newChanOrigin("client")}
	req := dispatch.New("GET", "svc")
	req.Token = []any{"tx-remote"}
	n.Receive(ctx, client, req)
	got = server.next(t)
	n.Receive(ctx, server, dispatch.NewAnswer(200, "tx-remote", got.Token[1].(string), nil))
	if a := client.next(t); answerCode(t, a) != 102 || !strings.Contains(string(a.Body), got.Token[1].(string)) {
		t.Fatalf("client first got %s, want the provisional answer naming the triggering id", a)
	}
	if a := client.next(t); answerCode(t, a) != 200 {
		t.Fatalf("client got %s", a)
	}
}

func TestBindHooksAndLoopGuard(t *testing.T) {
	n := newNode(t)
	o := newChanOrigin("remote")
	var hooks atomic.Int32
	n.Bind(ep("BIND", "room", "..."), func(ctx context.Context, in *Incoming) {
		k := hooks.Add(1)
		// A hook that binds again: without the guard this would recurse.
		n.Receive(ctx, o, dispatch.NewSubscription("BIND", ep("GET", "room", fmt.Sprint("inner", k))))
	})
	n.Receive(context.Background(), o, dispatch.NewSubscription("BIND", ep("GET", "room", "1")))
	poll.Until(t, 10*time.Second, "inner BIND registered", func() bool { return len(n.subs.find(o, ep("GET", "room", "inner1"))) == 1 })
	poll.Until(t, 10*time.Second, "loop guard counted", func() bool { return n.hooks.Load() == 1 })
	if got := hooks.Load(); got != 1 {
		t.Fatalf("hook ran %d times, want 1", got)
	}
	// RELEASE hooks see releases, including departures.
	released := make(chan string, 4)
	n.Bind(ep("RELEASE", "room", "..."), func(ctx context.Context, in *Incoming) {
		released <- in.Dispatch.Endpoint.String()
	})
	o.leave()
	select {
	case <-released:
	case <-time.After(10 * time.Second):
		t.Fatal("RELEASE hook not run on departure")
	}
}

func TestBadFramesGetExceptions(t *testing.T) {
	n := newNode(t, WithDecoder(dispatch.Decoder{MaxSize: 256}))
	o := newChanOrigin("conn")
	cases := []struct {
		frame string
		code  int
	}{
		{`not json`, 400},
		{`[1,2]`, 400},
		{`{"protocol":["JSTP","0.4"],"method":"GET","timestamp":1}`, 400},
		{`{"protocol":["JSTP","0.4"],"method":"FETCH","resource":["a"],"timestamp":1}`, 405},
		{`{"protocol":["JSTP","9.9"],"method":"GET","resource":["a"],"timestamp":1}`, 505},
		{`{"protocol":["JSTP","0.4"],"method":"GET","resource":["` + strings.Repeat("a", 300) + `"],"timestamp":1}`, 413},
	}
	for _, c := range cases {
		n.ReceiveFrame(context.Background(), o, []byte(c.frame))
		x := o.next(t)
		if x.Exception == nil || x.Exception.Code != c.code {
			t.Errorf("%.40s: got %s, want exception %d", c.frame, x, c.code)
		}
	}
	// The engine keeps serving.
	n.ReceiveFrame(context.Background(), o, []byte(`{"protocol":["JSTP","0.4"],"method":"GET","resource":["peer"],"timestamp":1,"token":["t"]}`))
	if a := o.next(t); answerCode(t, a) != 200 {
		t.Fatalf("got %s", a)
	}
}

func TestQueueOverflowAnswers503(t *testing.T) {
	n := newNode(t, WithQueueLen(1))
	block := make(chan struct{})
	started := make(chan struct{}, 8)
	sub, _ := n.Bind(ep("POST", "busy"), func(ctx context.Context, in *Incoming) {
		started <- struct{}{}
		<-block
	})
	ctx := context.Background()
	n.Send(ctx, dispatch.New("POST", "busy")) // taken by the worker
	<-started
	n.Send(ctx, dispatch.New("POST", "busy")) // fills the queue
	as := collectAll(t, must(n.Request(ctx, dispatch.New("POST", "busy"))))
	close(block)
	if len(as) != 1 || answerCode(t, as[0]) != 503 {
		t.Fatalf("answers = %v", as)
	}
	if sub.Dropped() != 1 {
		t.Fatalf("dropped = %d", sub.Dropped())
	}
}

func TestBuiltins(t *testing.T) {
	n := newNode(t, WithID("peer-1"))
	a := collectAll(t, must(n.Request(context.Background(), dispatch.New("GET", "peer"))))[0]
	var info PeerInfo
	if err := json.Unmarshal(a.Body, &info); err != nil || info.ID != "peer-1" || info.Version != Version {
		t.Fatalf("peer = %s (%v)", a.Body, err)
	}
	n.Bind(ep("POST", "x", "*"), func(context.Context, *Incoming) {})
	a = collectAll(t, must(n.Request(context.Background(), dispatch.New("GET", "subscriptions"))))[0]
	if !strings.Contains(string(a.Body), `"resource":["x","*"]`) {
		t.Fatalf("subscriptions = %s", a.Body)
	}
}

func TestReleaseTwiceIs406(t *testing.T) {
	n := newNode(t)
	s, _ := n.Bind(ep("GET", "a"), func(context.Context, *Incoming) {})
	if err := n.Release(s); err != nil {
		t.Fatal(err)
	}
	if err := n.Release(s); dispatch.Code(err) != 406 {
		t.Fatalf("err = %v", err)
	}
	as := collectAll(t, must(n.Request(context.Background(), dispatch.New("GET", "a"))))
	if answerCode(t, as[0]) != 404 {
		t.Fatalf("released binding still answers: %s", as[0])
	}
}

func TestConcurrentRequestBindRelease(t *testing.T) {
	n := newNode(t)
	n.Handle(ep("GET", "stable"), func(context.Context, *Incoming) (any, error) { return "ok", nil })
	var wg sync.WaitGroup
	ctx := context.Background()
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				s, err := n.Bind(ep("GET", "churn", fmt.Sprint(w, i)), func(context.Context, *Incoming) {})
				if err != nil {
					t.Error(err)
					return
				}
				for a := range must(n.Request(ctx, dispatch.New("GET", "stable"))) {
					if c, _, _, _ := a.AnswerInfo(); c != 200 {
						t.Errorf("answer %d", c)
					}
				}
				if err := n.Release(s); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if got := n.subs.len(); got != 3 {
		t.Fatalf("%d subscriptions left, want the 3 permanent ones", got)
	}
}

func TestCloseStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	n, _ := New()
	block := make(chan struct{})
	n.Handle(ep("GET", "hang"), func(ctx context.Context, in *Incoming) (any, error) {
		select {
		case <-ctx.Done():
		case <-block:
		}
		return nil, nil
	})
	ch, _ := n.Request(context.Background(), dispatch.New("GET", "hang"))
	n.Close()
	for range ch {
	}
	close(block)
	poll.Until(t, 10*time.Second, "goroutines stopped", func() bool { return runtime.NumGoroutine() <= before })
	if _, err := n.Request(context.Background(), dispatch.New("GET", "x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestHopLimit(t *testing.T) {
	var forwarded *dispatch.Dispatch
	var out *memLink
	n := newNode(t, WithMaxHops(2), WithForwarder(forwarderFunc(func(ctx context.Context, to dispatch.Host) (mesh.Link, error) {
		return out, nil
	})))
	out = recordLink(n, "elsewhere")
	o := newChanOrigin("peer")
	d := dispatch.New("GET", "x")
	d.Host = []dispatch.Host{{Name: "elsewhere"}}
	d.Token = []any{"tx"}
	n.Receive(context.Background(), o, d)
	forwarded = <-out.sent
	if forwarded == nil || string(forwarded.Extra.Value(HopsHeader)) != "1" {
		t.Fatalf("forwarded = %v", forwarded)
	}
	d2 := forwarded.Clone()
	d2.Host = []dispatch.Host{{Name: "elsewhere"}}
	d2.Extra.Set(HopsHeader, json.RawMessage("2"))
	n.Receive(context.Background(), o, d2)
	if a := o.next(t); answerCode(t, a) != 508 {
		t.Fatalf("got %s, want 508", a)
	}
}

func TestLocalSubscriptionDispatchesAreRefused(t *testing.T) {
	n := newNode(t)
	sub, _ := n.Bind(ep("POST", "kept"), func(context.Context, *Incoming) {})
	ctx := context.Background()
	for _, m := range []string{"BIND", "RELEASE"} {
		d := dispatch.NewSubscription(m, ep("POST", "kept"))
		if err := n.Send(ctx, d); dispatch.Code(err) != 400 || !strings.Contains(err.Error(), "use Node.Bind") {
			t.Errorf("Send(%s) = %v, want 400 pointing at the Go API", m, err)
		}
		as := collectAll(t, must(n.Request(ctx, d)))
		if len(as) != 1 || answerCode(t, as[0]) != 400 {
			t.Errorf("Request(%s) answers = %v, want one 400", m, as)
		}
	}
	// The refused RELEASE left the Go binding alone.
	if err := n.Release(sub); err != nil {
		t.Fatalf("binding was released by a local RELEASE dispatch: %v", err)
	}
}
