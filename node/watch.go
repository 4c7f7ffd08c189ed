package node

import (
	"slices"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// answerWatch stands in for the emitter's 504 bookkeeping when the emitter
// is a classic engine: those only time out answers to callbacks they ran
// themselves, so for the triggering ids this engine issued (or learned of
// from a provisional answer it could not pass on) the 504s come from here.
type answerWatch struct {
	to      Origin
	whole   bool            // nothing known yet: one 504 for the transaction
	missing map[string]bool // triggering ids not yet answered
	timer   *time.Timer
}

// watchAnswers starts or extends the watch on txid for origin to. With no
// trigs it only covers the transaction as a whole.
func (n *Node) watchAnswers(to Origin, txid string, trigs []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed() {
		return
	}
	w := n.watches[txid]
	if w == nil {
		w = &answerWatch{to: to, whole: true, missing: map[string]bool{}}
		n.watches[txid] = w
		w.timer = time.AfterFunc(n.cfg.answerTimeout, func() { n.expireWatch(txid) })
	}
	if len(trigs) > 0 {
		w.whole = false
		for _, t := range trigs {
			w.missing[t] = true
		}
	}
}

// answered records an answer on its way to a watched origin.
func (n *Node) answered(a *dispatch.Dispatch) {
	code, txid, trig, ok := a.AnswerInfo()
	if !ok || code < 200 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	w := n.watches[txid]
	if w == nil {
		return
	}
	if trig == "" {
		// A whole-transaction answer ends it.
		w.timer.Stop()
		delete(n.watches, txid)
		return
	}
	delete(w.missing, trig)
	if len(w.missing) == 0 && !w.whole {
		w.timer.Stop()
		delete(n.watches, txid)
	}
}

func (n *Node) expireWatch(txid string) {
	n.mu.Lock()
	w := n.watches[txid]
	delete(n.watches, txid)
	if r, ok := n.routes[txid]; ok && w != nil && r.to == w.to {
		// The emitter has its 504s; a late answer must not follow them.
		delete(n.routes, txid)
	}
	n.mu.Unlock()
	if w == nil || n.closed() {
		return
	}
	body := jsonString("no answer before the deadline")
	if w.whole {
		n.deliver(n.ctx, w.to, dispatch.NewAnswer(504, txid, "", body))
		return
	}
	missing := make([]string, 0, len(w.missing))
	for t := range w.missing {
		missing = append(missing, t)
	}
	slices.Sort(missing)
	for _, t := range missing {
		n.deliver(n.ctx, w.to, dispatch.NewAnswer(504, txid, t, body))
	}
}

// stopWatches cancels every pending watch (on Close).
func (n *Node) stopWatches() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, w := range n.watches {
		w.timer.Stop()
		delete(n.watches, id)
	}
}
