package node

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// chanOrigin is an Origin that records what the engine delivers to it, the
// way a connection would write it to the wire.
type chanOrigin struct {
	id   string
	got  chan *dispatch.Dispatch
	done chan struct{}
	once sync.Once
}

func newChanOrigin(id string) *chanOrigin {
	return &chanOrigin{id: id, got: make(chan *dispatch.Dispatch, 1024), done: make(chan struct{})}
}

// provOrigin is a chanOrigin that speaks provisional answers, as a peer
// of this project does.
type provOrigin struct{ *chanOrigin }

func (provOrigin) WantsProvisional() bool { return true }

func (o *chanOrigin) ID() string            { return o.id }
func (o *chanOrigin) Done() <-chan struct{} { return o.done }
func (o *chanOrigin) leave()                { o.once.Do(func() { close(o.done) }) }
func (o *chanOrigin) Deliver(ctx context.Context, d *dispatch.Dispatch) error {
	select {
	case o.got <- d:
		return nil
	default:
		return dispatch.Errorf(dispatch.ErrUnavailable, "test origin full")
	}
}

// next waits for the next delivery, failing the test after a generous
// deadline (a hang, not a timing assertion).
func (o *chanOrigin) next(t *testing.T) *dispatch.Dispatch {
	t.Helper()
	select {
	case d := <-o.got:
		return d
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: nothing delivered", o.id)
		return nil
	}
}

func newNode(t *testing.T, opts ...Option) *Node {
	t.Helper()
	n, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func collectAll(t *testing.T, ch <-chan *dispatch.Dispatch) []*dispatch.Dispatch {
	t.Helper()
	var out []*dispatch.Dispatch
	timeout := time.After(30 * time.Second)
	for {
		select {
		case a, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, a)
		case <-timeout:
			t.Fatalf("answer stream did not end; got %d answers", len(out))
		}
	}
}

func answerCode(t *testing.T, a *dispatch.Dispatch) int {
	t.Helper()
	code, _, _, ok := a.AnswerInfo()
	if !ok {
		t.Fatalf("not an answer: %s", a)
	}
	return code
}

func ep(method string, resource ...string) dispatch.Endpoint {
	return dispatch.Endpoint{Method: method, Resource: resource}
}
