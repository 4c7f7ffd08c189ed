package main

import (
	"context"
	"strings"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// A classic gateway connection never says how many answers a transaction
// will get: the engine sends one ANSWER per triggered subscriber, then
// 504s for the missing ones after its answer timeout (10 s), and tells a
// classic client nothing in between (provisional answers are for mesh
// peers). What it does mark is an answer for the whole transaction (404
// nothing bound, 202 published, a BIND's 200, errors before processing):
// its triggering id starts with "whole-". So a client waits:
//
//   - until a whole-transaction answer, which is the only one;
//   - otherwise until no further answer arrived for a settle period after
//     the last one (subscribers answer together, in practice within
//     milliseconds of each other; raise --settle for slow ones);
//   - and never longer than its timeout, nor after the connection ends.

// Defaults of the answer wait.
const (
	defaultTimeout = 11 * time.Second // the engine's 10 s answer timeout, and its 504s
	defaultSettle  = 200 * time.Millisecond
)

// wholePrefix starts the triggering id a gateway gives whole-transaction
// answers (mesh.adaptClassic).
const wholePrefix = "whole-"

// answerWait describes one wait for a transaction's answers.
type answerWait struct {
	txid    string
	timeout time.Duration
	settle  time.Duration
	// onAnswer gets every answer to the transaction, and every exception
	// dispatch for it (or for no transaction: the gateway could not read
	// what was sent), as they arrive.
	onAnswer func(d *dispatch.Dispatch, code int)
	// onOther gets everything else; nil drops it.
	onOther func(r received)
}

// answerResult is what a wait collected.
type answerResult struct {
	codes    []int // one per answer, in arrival order
	timedOut bool  // the timeout ended the wait
	closed   bool  // the connection ended the wait
}

// ok reports success: at least one answer, all of them 2xx.
func (r answerResult) ok() bool {
	if len(r.codes) == 0 {
		return false
	}
	for _, c := range r.codes {
		if c < 200 || c > 299 {
			return false
		}
	}
	return true
}

// waitAnswers reads g until the transaction's answers are in (see the
// rules above). It returns ctx.Err() when ctx ends first.
func waitAnswers(ctx context.Context, g *gatewayConn, w answerWait) (answerResult, error) {
	var res answerResult
	deadline := time.NewTimer(w.timeout)
	defer deadline.Stop()
	settle := time.NewTimer(w.settle)
	settle.Stop()
	defer settle.Stop()
	var settleC <-chan time.Time // nil, so never ready, until an answer came
	for {
		select {
		case r, open := <-g.In():
			if !open {
				res.closed = true
				return res, nil
			}
			code, final, mine := classify(r, w.txid)
			if !mine {
				if w.onOther != nil {
					w.onOther(r)
				}
				continue
			}
			res.codes = append(res.codes, code)
			if w.onAnswer != nil {
				w.onAnswer(r.d, code)
			}
			if final {
				return res, nil
			}
			settle.Reset(w.settle)
			settleC = settle.C
		case <-settleC:
			return res, nil
		case <-deadline.C:
			res.timedOut = true
			return res, nil
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
}

// classify tells whether r answers transaction txid, with which code, and
// whether it is the transaction's last word.
func classify(r received, txid string) (code int, final, mine bool) {
	d := r.d
	if d == nil {
		return 0, false, false
	}
	if d.Kind() == dispatch.Exception {
		// An exception carries the offending dispatch's token; one with
		// no token is about input the gateway could not read, which on a
		// connection of our own is ours.
		if t := d.TransactionID(); t == txid || t == "" {
			return d.Exception.Code, true, true
		}
		return 0, false, false
	}
	c, id, trig, isAnswer := d.AnswerInfo()
	if !isAnswer || id != txid {
		return 0, false, false
	}
	return c, trig == "" || strings.HasPrefix(trig, wholePrefix), true
}

// answerText is a short description of an answer or exception for
// messages on stderr: "404 nothing is bound to GET /x".
func answerText(d *dispatch.Dispatch, code int) string {
	var msg string
	if d.Exception != nil {
		msg = d.Exception.Message
	} else if len(d.Body) > 0 {
		msg = bodyText(d.Body)
	}
	if msg == "" {
		return itoa(code)
	}
	return itoa(code) + " " + msg
}
