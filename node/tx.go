package node

import (
	"context"
	cryptorand "crypto/rand"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jstp-peer/jstp-peer/dispatch"
)

// answerBuffer is how many answers a Request's channel holds before the
// transaction needs a goroutine to hand over the rest: a request with a
// few subscribers never starts one, and the many requests with one answer
// do not each carry room for sixteen.
const answerBuffer = 4

// transaction is one Request: its answers, counted by a tally, go out on a
// channel that closes when the transaction is complete, at its deadline
// (after a 504 for each missing answer) or when the caller gives up. It
// runs on timers and the goroutines that deliver answers; a goroutine of
// its own starts only when the caller reads more slowly than answers come.
type transaction struct {
	tab *txTable
	id  string
	out chan *dispatch.Dispatch

	mu      sync.Mutex
	t       tally
	pending []*dispatch.Dispatch // answers waiting for room in out
	pumping bool
	ended   bool          // nothing more is added; out closes once drained
	left    bool          // the caller no longer reads
	gone    chan struct{} // made for the pump; closed when the caller leaves
	timer   *time.Timer
	stopCtx func() bool // nil when the caller's ctx cannot end
}

// txTable holds the transactions of an emitter (a Node's Requests, a
// Client's), by transaction id.
type txTable struct {
	wg    *sync.WaitGroup // the owner's: pumps are waited for on Close
	done  <-chan struct{} // closed when the owner closes
	stats *counters

	mu sync.Mutex
	m  map[string]*transaction
}

func newTxTable(wg *sync.WaitGroup, done <-chan struct{}, stats *counters) *txTable {
	return &txTable{wg: wg, done: done, stats: stats, m: map[string]*transaction{}}
}

func (tt *txTable) get(txid string) *transaction {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return tt.m[txid]
}

func (tt *txTable) len() int {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return len(tt.m)
}

// start registers a transaction and arms its deadline and ctx.
func (tt *txTable) start(ctx context.Context, txid string, deadline time.Time) (*transaction, error) {
	tx := &transaction{tab: tt, id: txid, out: make(chan *dispatch.Dispatch, answerBuffer)}
	tt.mu.Lock()
	if _, dup := tt.m[txid]; dup {
		tt.mu.Unlock()
		return nil, dispatch.Errorf(dispatch.ErrBadDispatch, "transaction %q is already pending", txid)
	}
	tt.m[txid] = tx
	tt.mu.Unlock()
	tx.mu.Lock()
	tx.timer = time.AfterFunc(time.Until(deadline), tx.expire)
	if ctx.Done() != nil {
		// A ctx that can never end (context.Background, as most
		// callers pass) needs no watch.
		tx.stopCtx = context.AfterFunc(ctx, func() {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				tx.expire()
				return
			}
			tx.abandon()
		})
	}
	tx.mu.Unlock()
	return tx, nil
}

// add takes an answer or announcement for the transaction.
func (tx *transaction) add(a *dispatch.Dispatch) {
	code, _, trig, _ := a.AnswerInfo()
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.ended {
		tx.tab.stats.late.Add(1)
		return
	}
	if code >= 100 && code < 200 {
		tx.t.provisional(a)
	} else if tx.t.final(trig) {
		tx.pushLocked(a)
	} else {
		tx.tab.stats.duplicate.Add(1)
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
		tx.tab.stats.timedOut.Add(uint64(max(1, len(missing))))
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
	if !tx.left {
		tx.left = true
		if tx.gone != nil {
			close(tx.gone)
		}
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
		if tx.gone == nil {
			// The pump waits on it; a transaction that never needs
			// a pump does without.
			tx.gone = make(chan struct{})
			if tx.left {
				close(tx.gone)
			}
		}
		tx.tab.wg.Add(1)
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
	if tx.stopCtx != nil {
		tx.stopCtx()
	}
	tx.tab.mu.Lock()
	if tx.tab.m[tx.id] == tx {
		delete(tx.tab.m, tx.id)
	}
	tx.tab.mu.Unlock()
	if !tx.pumping {
		close(tx.out)
	}
}

// pump hands pending answers over as the caller reads them.
func (tx *transaction) pump() {
	defer tx.tab.wg.Done()
	for {
		tx.mu.Lock()
		batch, gone := tx.pending, tx.gone
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
			case <-gone:
			case <-tx.tab.done:
			}
		}
	}
}

// closeAll ends every pending transaction (the owner is closing).
func (tt *txTable) closeAll() {
	tt.mu.Lock()
	txs := make([]*transaction, 0, len(tt.m))
	for _, tx := range tt.m {
		txs = append(txs, tx)
	}
	tt.mu.Unlock()
	for _, tx := range txs {
		tx.abandon()
	}
}

// stampTransaction gives d a transaction id (a UUID in token[0]) unless
// token[0] is a string already, and returns the id.
func stampTransaction(d *dispatch.Dispatch) string {
	if txid := d.TransactionID(); txid != "" {
		return txid
	}
	txid := newUUID()
	if len(d.Token) == 0 {
		d.Token = []any{txid}
	} else {
		d.Token[0] = txid
	}
	return txid
}

// uuids generates the transaction ids of UUID version 4 that the protocol
// asks for from a ChaCha8 stream seeded by crypto/rand: as unpredictable,
// without a system call for each id (uuid.New reads crypto/rand every
// time, about as long as the rest of a local request).
var uuids struct {
	mu  sync.Mutex
	src *rand.ChaCha8
}

func init() {
	var seed [32]byte
	cryptorand.Read(seed[:]) // never fails (it crashes the program instead)
	uuids.src = rand.NewChaCha8(seed)
}

// newUUID returns a random UUID (version 4) in its canonical text form.
// It sets the version bits itself: uuid.NewRandomFromReader would do it,
// but reading through an io.Reader moves the UUID to the heap, an
// allocation more on every request.
func newUUID() string {
	var u uuid.UUID
	uuids.mu.Lock()
	uuids.src.Read(u[:])
	uuids.mu.Unlock()
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return u.String()
}
