package node

import (
	"context"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// routeAnswer takes an answer that arrived here: it goes back along the
// route it came for, or, when it came for no transaction this engine
// passed on, it triggers the ANSWER endpoints bound here, like any
// dispatch processed here.
func (n *Node) routeAnswer(ctx context.Context, a *dispatch.Dispatch, rt replyTo) {
	code, _, trig, _ := a.AnswerInfo()
	key := rt.via
	if key == "" {
		// A remote subscriber's answer names its copy by the
		// triggering id this engine gave it.
		key = trig
	}
	if r := n.routes.get(key, rt.o); r != nil {
		n.relay(ctx, r.l, a, code, trig)
		return
	}
	if code >= 100 && code < 200 {
		return
	}
	n.stats.unrouted.Add(1)
	n.trigger(ctx, a, replyTo{o: n.local}, false)
}

// relay passes an answer back to the emitter the ledger serves, with the
// emitter's own transaction id and label, unless the ledger refuses it (a
// second answer for one triggering id, or one after the 504).
func (n *Node) relay(ctx context.Context, l *ledger, a *dispatch.Dispatch, code int, trig string) {
	if code == 503 && l.retry != nil && n.retryRefused(ctx, l) {
		return
	}
	l.mu.Lock()
	var ok bool
	if code >= 100 && code < 200 {
		ok = l.t.provisional(a) && provisional(l.back.o)
	} else {
		ok = l.t.final(trig)
		if !ok {
			n.stats.duplicate.Add(1)
		}
	}
	done := l.t.done
	l.mu.Unlock()
	if ok && code >= 200 {
		l.ended(code)
	}
	if ok {
		if l.sealedTo != "" {
			a = n.openAnswer(l, a)
		}
		n.observeReturned(l, code)
		n.reply(ctx, l.back, withTransaction(a, l.txid))
	}
	if done {
		n.finishLedger(l)
	}
}

// withTransaction returns answer a with transaction id txid, sharing the
// rest with a.
func withTransaction(a *dispatch.Dispatch, txid string) *dispatch.Dispatch {
	if len(a.Resource) < 2 || a.Resource[1] == txid {
		return a
	}
	c := *a
	c.Resource = append([]any(nil), a.Resource...)
	c.Resource[1] = txid
	if len(c.Token) > 0 {
		c.Token = append([]any{txid}, a.Token[1:]...)
	}
	return &c
}

// routeException takes an exception that arrived here. One about a
// dispatch this engine passed on (or a copy it handed a subscriber) is the
// outcome of that transaction, and goes back as an answer with its code;
// any other is logged.
func (n *Node) routeException(ctx context.Context, x *dispatch.Dispatch, rt replyTo) {
	key, trig := rt.via, ""
	if key == "" && len(x.Token) > 1 {
		trig, _ = x.Token[1].(string)
		key = trig
	}
	if r := n.routes.get(key, rt.o); r != nil {
		n.relay(ctx, r.l, dispatch.NewAnswer(x.Exception.Code, r.l.txid, trig, jsonString(x.Exception.Message)), x.Exception.Code, trig)
		return
	}
	n.stats.exceptions.Add(1)
	n.warn.Info("exception received", "from", rt.o.ID(), "code", x.Exception.Code, "message", x.Exception.Message)
}

// answerErr answers a failed dispatch: an ANSWER when one was wanted,
// otherwise an exception dispatch. Answers and exceptions are never
// answered, so a failure cannot echo between engines for ever.
func (n *Node) answerErr(ctx context.Context, rt replyTo, d *dispatch.Dispatch, err error) {
	if d != nil && wantsAnswer(d) {
		code := dispatch.Code(err)
		n.observeAnswered(d.Method, code)
		n.reply(ctx, rt, newAnswer(code, d.TransactionID(), "", jsonString(err.Error())))
		return
	}
	if d != nil && (d.Kind() == dispatch.Answer || d.Kind() == dispatch.Exception) && d.Validate() == nil {
		n.warn.Info("dropped answer or exception that could not be routed", "from", rt.o.ID(), "err", err)
		return
	}
	x := dispatch.NewException(err, d)
	if d != nil {
		x.Extra = nil
	}
	n.reply(ctx, rt, x)
}

// deliverLocal receives what reaches the Go API's origin: answers and
// exceptions for its transactions.
func (n *Node) deliverLocal(d *dispatch.Dispatch) {
	txid := d.TransactionID()
	if d.Kind() == dispatch.Answer {
		_, txid, _, _ = d.AnswerInfo()
	}
	tx := n.txs.get(txid)
	if tx == nil {
		if d.Kind() == dispatch.Answer {
			n.stats.late.Add(1)
		}
		return
	}
	switch d.Kind() {
	case dispatch.Answer:
		tx.add(d)
	case dispatch.Exception:
		tx.add(dispatch.NewAnswer(d.Exception.Code, txid, "", jsonString(d.Exception.Message)))
	}
}

// owe makes this engine answer 504 to the ledger's emitter for whatever is
// missing at the deadline: classic engines time out only answers to
// callbacks they ran themselves.
func (n *Node) owe(l *ledger) {
	l.mu.Lock()
	l.timer = time.AfterFunc(n.cfg.answerTimeout, func() { n.expireLedger(l) })
	l.mu.Unlock()
}

func (n *Node) expireLedger(l *ledger) {
	l.mu.Lock()
	missing, late := l.t.missing()
	already := l.t.done
	l.t.done = true
	l.mu.Unlock()
	n.routes.drop(l)
	l.untrack(true)
	if already || !late || n.closed() {
		return
	}
	l.ended(504)
	body := jsonString("no answer before the deadline")
	if len(missing) == 0 {
		n.reply(n.ctx, l.back, dispatch.NewAnswer(504, l.txid, "", body))
	}
	for _, trig := range missing {
		n.reply(n.ctx, l.back, dispatch.NewAnswer(504, l.txid, trig, body))
	}
	n.stats.timedOut.Add(uint64(max(1, len(missing))))
}

// finishLedger drops a complete ledger's routes and timer.
func (n *Node) finishLedger(l *ledger) {
	l.mu.Lock()
	if l.timer != nil {
		l.timer.Stop()
	}
	l.mu.Unlock()
	n.routes.drop(l)
	l.untrack(true)
}

// abandonLedger drops the ledger of a dispatch that could not be passed
// on: its failure is answered instead.
func (n *Node) abandonLedger(l *ledger) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.t.done = true
	l.mu.Unlock()
	l.untrack(false)
	n.finishLedger(l)
}

// failRoutesTo answers the transactions still waiting for answers from an
// origin that went away: 503 at once for each answer it owed, rather than
// a 504 at the deadline. A label route owes the whole transaction; a
// subscriber's copy, its own triggering id.
func (n *Node) failRoutesTo(o Origin) {
	waiting := n.routes.dropOrigin(o)
	body := jsonString(o.ID() + " went away before answering")
	for key, r := range waiting {
		l := r.l
		l.mu.Lock()
		var trigs []string
		if _, isTrig := l.t.answered[key]; isTrig {
			trigs = []string{key}
		} else {
			var late bool
			trigs, late = l.t.missing()
			if len(trigs) == 0 && late {
				trigs = []string{""}
			}
		}
		l.mu.Unlock()
		l.ended(503)
		for _, trig := range trigs {
			n.stats.linkGone.Add(1)
			n.settle(n.ctx, l.back, l, trig, newAnswer(503, l.txid, trig, body))
		}
	}
}
