package node

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/mesh"

	"github.com/jstp-peer/jstp-peer/internal/poll"
)

func linkedPair(t *testing.T) (a, b *Node) {
	var ab, ba *memLink
	route := func(other **Node, link **memLink) Forwarder {
		return forwarderFunc(func(ctx context.Context, to dispatch.Host) (mesh.Link, error) {
			if to.Name != (*other).ID() {
				return nil, dispatch.Errorf(dispatch.ErrNotFound, "no host %s", to)
			}
			return *link, nil
		})
	}
	a = newNode(t, WithID("A"), WithForwarder(route(&b, &ab)))
	b = newNode(t, WithID("B"), WithForwarder(route(&a, &ba)))
	ab, ba = pipeLinks(t, a, b)
	return a, b
}

func TestRequestAcrossEngines(t *testing.T) {
	a, b := linkedPair(t)
	b.Handle(ep("GET", "svc"), func(context.Context, *Incoming) (any, error) { return "from B", nil })
	b.Handle(ep("GET", "svc"), func(context.Context, *Incoming) (any, error) { return "also B", nil })
	d := dispatch.New("GET", "svc")
	d.Host = []dispatch.Host{{Name: "B"}}
	as := collectAll(t, must(a.Request(context.Background(), d)))
	if len(as) != 2 || answerCode(t, as[0]) != 200 || answerCode(t, as[1]) != 200 {
		t.Fatalf("answers = %v", as)
	}
	d.Host = []dispatch.Host{{Name: "nowhere"}}
	as = collectAll(t, must(a.Request(context.Background(), d)))
	if len(as) != 1 || answerCode(t, as[0]) != 404 {
		t.Fatalf("answers = %v", as)
	}
}

func TestBindAtAcrossEngines(t *testing.T) {
	a, b := linkedPair(t)
	got := make(chan *Incoming, 8)
	rb, err := a.BindAt(context.Background(), []dispatch.Host{{Name: "B"}}, ep("POST", "news", ":topic"), func(ctx context.Context, in *Incoming) {
		got <- in
	})
	if err != nil {
		t.Fatal(err)
	}
	b.Send(context.Background(), dispatch.New("POST", "news", "go"))
	select {
	case in := <-got:
		if in.Params["topic"] != "go" {
			t.Fatalf("params = %v", in.Params)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("event not delivered to the remote binding")
	}
	if err := rb.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "binding released on B", func() bool {
		for _, s := range b.Subscriptions() {
			if s.Owner == "A" {
				return false
			}
		}
		return true
	})
	if _, err := a.BindAt(context.Background(), []dispatch.Host{{Name: "nowhere"}}, ep("POST", "x"), func(context.Context, *Incoming) {}); dispatch.Code(err) != 404 {
		t.Fatalf("bind to unknown host: %v", err)
	}
}

// fanOrigin stands for peers whose subscriptions share one sink.
type fanOrigin struct {
	*chanOrigin
	sink *chanOrigin
}

func (f fanOrigin) Sink(dispatch.Endpoint) Origin { return f.sink }

func TestFanoutDeliversOncePerSink(t *testing.T) {
	n := newNode(t)
	sink := newChanOrigin("topic")
	var peers []fanOrigin
	for _, id := range []string{"p1", "p2", "p3"} {
		p := fanOrigin{newChanOrigin(id), sink}
		peers = append(peers, p)
		n.Receive(context.Background(), p, dispatch.NewSubscription("BIND", ep("POST", "feed")))
	}
	req := dispatch.New("POST", "feed")
	req.Token = []any{"tx"}
	emitter := newChanOrigin("emitter")
	n.Receive(context.Background(), emitter, req)
	if got := sink.next(t); got.Method != "POST" {
		t.Fatalf("sink got %s", got)
	}
	// Notified, not asked: the emitter learns nobody will answer.
	if a := emitter.next(t); answerCode(t, a) != 202 || !strings.Contains(string(a.Body), `{"peers":3,"topics":1}`) {
		t.Fatalf("emitter got %s", a)
	}
	var extra atomic.Int32
	select {
	case d := <-sink.got:
		extra.Add(1)
		t.Fatalf("sink got a second copy: %s", d)
	default:
	}
	for _, p := range peers {
		select {
		case d := <-p.got:
			t.Fatalf("%s got its own copy: %s", p.id, d)
		default:
		}
	}
}

func TestChainThroughTheSameEngineTwice(t *testing.T) {
	a, _ := linkedPair(t)
	ctx := context.Background()
	// A subscriber on A that answers by itself, like a classic client.
	server := newChanOrigin("server")
	a.Receive(ctx, server, dispatch.NewSubscription("BIND", ep("GET", "x")))
	client := newChanOrigin("client")
	req := dispatch.New("GET", "x")
	req.Token = []any{"tx-aba"}
	req.Host = []dispatch.Host{{Name: "B"}, {Name: "A"}}
	a.Receive(ctx, client, req)
	got := server.next(t)
	a.Receive(ctx, server, dispatch.NewAnswer(200, "tx-aba", got.Token[1].(string), json.RawMessage(`"served"`)))
	// A keeps the client as the emitter even though the dispatch came
	// back to it from B: the answer reaches the client instead of
	// bouncing between A and B.
	if a := client.next(t); answerCode(t, a) != 200 || string(a.Body) != `"served"` {
		t.Fatalf("client got %s", a)
	}
}
