package node

import (
	"sync"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// transaction collects the answers to one Request.
type transaction struct {
	id     string
	notify chan struct{}

	mu       sync.Mutex
	known    bool            // the triggering ids to expect are known
	expected map[string]bool // triggering id → answered
	pending  []*dispatch.Dispatch
	finished bool // a final answer for the whole transaction arrived
}

func newTransaction(id string) *transaction {
	return &transaction{id: id, notify: make(chan struct{}, 1), expected: map[string]bool{}}
}

func (t *transaction) wake() {
	select {
	case t.notify <- struct{}{}:
	default:
	}
}

// expect records the triggering ids the processing engine announced.
func (t *transaction) expect(trigs []string) {
	t.mu.Lock()
	t.known = true
	for _, id := range trigs {
		if _, ok := t.expected[id]; !ok {
			t.expected[id] = false
		}
	}
	t.mu.Unlock()
	t.wake()
}

// add queues an answer for the Request's stream.
func (t *transaction) add(a *dispatch.Dispatch) {
	_, _, trig, _ := a.AnswerInfo()
	t.mu.Lock()
	if trig == "" {
		t.finished = true
	} else {
		t.expected[trig] = true
	}
	t.pending = append(t.pending, a)
	t.mu.Unlock()
	t.wake()
}

// take returns the answers queued so far and whether the transaction is
// complete: a whole-transaction answer came, or every expected one did.
func (t *transaction) take() ([]*dispatch.Dispatch, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := t.pending
	t.pending = nil
	done := t.finished
	if !done && t.known {
		done = true
		for _, answered := range t.expected {
			if !answered {
				done = false
				break
			}
		}
	}
	return out, done
}

// missing returns the triggering ids still unanswered.
func (t *transaction) missing() (ids []string, known bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, answered := range t.expected {
		if !answered {
			ids = append(ids, id)
		}
	}
	return ids, t.known
}
