package node

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// answerBuffer is how many answers a Request's channel holds before the
// transaction needs a goroutine to hand over the rest: one request with a
// handful of subscribers never starts one.
const answerBuffer = 16

// transaction is one Request: its answers, counted by a tally, go out on a
// channel that closes when the transaction is complete, at its deadline
// (after a 504 for each missing answer) or when the caller gives up. It
// runs on timers and the goroutines that deliver answers; a goroutine of
// its own starts only when the caller reads more slowly than answers come.
type transaction struct {
	n   *Node
	id  string
	out chan *dispatch.Dispatch

	mu      sync.Mutex
	t       tally
	pending []*dispatch.Dispatch // answers waiting for room in out
	pumping bool
	ended   bool          // nothing more is added; out closes once drained
	gone    chan struct{} // closed when the caller no longer reads
	timer   *time.Timer
	stopCtx func() bool
}

// start registers the transaction and arms its deadline and ctx.
func (n *Node) startTransaction(ctx context.Context, txid string, deadline time.Time) (*transaction, error) {
	tx := &transaction{n: n, id: txid, out: make(chan *dispatch.Dispatch, answerBuffer), gone: make(chan struct{})}
	n.txmu.Lock()
	if _, dup := n.txs[txid]; dup {
		n.txmu.Unlock()
		return nil, dispatch.Errorf(dispatch.ErrBadDispatch, "transaction %q is already pending", txid)
	}
	n.txs[txid] = tx
	n.txmu.Unlock()
	tx.mu.Lock()
	tx.timer = time.AfterFunc(time.Until(deadline), tx.expire)
	tx.stopCtx = context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			tx.expire()
			return
		}
		tx.abandon()
	})
	tx.mu.Unlock()
	return tx, nil
}

// add takes an answer or announcement for the transaction.
func (tx *transaction) add(a *dispatch.Dispatch) {
	code, _, trig, _ := a.AnswerInfo()
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.ended {
		tx.n.stats.late.Add(1)
		return
	}
	if code >= 100 && code < 200 {
		tx.t.provisional(a)
	} else if tx.t.final(trig) {
		tx.pushLocked(a)
	} else {
		tx.n.stats.duplicate.Add(1)
	}
	if tx.t.done {
		tx.endLocked()
	}
}

// expect takes the triggering ids of a dispatch processed by this engine.
func (tx *transaction) expect(trigs []string) {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.ended {
		return
	}
	tx.t.expect(trigs)
	if tx.t.done {
		tx.endLocked()
	}
}

// expire answers 504 for what is missing at the deadline.
func (tx *transaction) expire() {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.ended {
		return
	}
	missing, late := tx.t.missing()
	if late {
		body := jsonString("no answer before the deadline")
		if len(missing) == 0 {
			tx.pushLocked(dispatch.NewAnswer(504, tx.id, "", body))
		}
		for _, trig := range missing {
			tx.pushLocked(dispatch.NewAnswer(504, tx.id, trig, body))
		}
		tx.n.stats.timedOut.Add(uint64(max(1, len(missing))))
	}
	tx.endLocked()
	// The caller's ctx may have ended at the deadline too: the last
	// answers get a short grace to be read rather than be lost.
	time.AfterFunc(time.Second, tx.abandon)
}

// abandon ends the transaction without 504s: the caller went away.
func (tx *transaction) abandon() {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	select {
	case <-tx.gone:
	default:
		close(tx.gone)
	}
	tx.pending = nil
	tx.endLocked()
}

// pushLocked hands an answer to the caller without ever blocking.
func (tx *transaction) pushLocked(a *dispatch.Dispatch) {
	if !tx.pumping && len(tx.out) < cap(tx.out) {
		tx.out <- a // room was checked under the lock; only we send
		return
	}
	tx.pending = append(tx.pending, a)
	if !tx.pumping {
		tx.pumping = true
		tx.n.wg.Add(1)
		go tx.pump()
	}
}

// endLocked stops the timers and unregisters the transaction; out closes
// now, or when the pump has handed over the rest.
func (tx *transaction) endLocked() {
	if tx.ended {
		return
	}
	tx.ended = true
	tx.timer.Stop()
	tx.stopCtx()
	tx.n.txmu.Lock()
	if tx.n.txs[tx.id] == tx {
		delete(tx.n.txs, tx.id)
	}
	tx.n.txmu.Unlock()
	if !tx.pumping {
		close(tx.out)
	}
}

// pump hands pending answers over as the caller reads them.
func (tx *transaction) pump() {
	defer tx.n.wg.Done()
	for {
		tx.mu.Lock()
		batch := tx.pending
		tx.pending = nil
		if len(batch) == 0 {
			tx.pumping = false
			if tx.ended {
				close(tx.out)
			}
			tx.mu.Unlock()
			return
		}
		tx.mu.Unlock()
		for _, a := range batch {
			select {
			case tx.out <- a:
			case <-tx.gone:
			case <-tx.n.ctx.Done():
			}
		}
	}
}

// closeAll ends every pending transaction (the engine is closing).
func (n *Node) closeAllTransactions() {
	n.txmu.Lock()
	txs := make([]*transaction, 0, len(n.txs))
	for _, tx := range n.txs {
		txs = append(txs, tx)
	}
	n.txmu.Unlock()
	for _, tx := range txs {
		tx.abandon()
	}
}
