package node

import (
	"encoding/json"
	"slices"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// tally counts the answers of one transaction, for whoever waits for them:
// a Request's stream, or an engine that relays or times out answers for
// an emitter elsewhere. It enforces the answer rules of the mesh
// (docs/mesh.md, "Answers across the mesh"):
//
//   - an answer for the whole transaction (no triggering id) is the only
//     one and ends it;
//   - an engine that triggers more than one answering subscriber, or a
//     subscriber elsewhere (whose answer comes later), first announces the
//     triggering ids (ANSWER 102, body {"triggered": [...]}); the
//     transaction ends when each has one final answer;
//   - a final answer that arrives with no announcement before it is the
//     only one, and ends the transaction: a lone local handler's answer
//     needs no announcement, so the common request costs one frame back;
//   - an announcement {"open": true} says the count is unknown (a classic
//     engine answers further on): the transaction ends at its deadline.
//
// A second answer for one triggering id, and anything after the end, is
// refused: every expected answer has exactly one outcome.
//
// tally is not safe for concurrent use; its owner locks.
type tally struct {
	known    bool            // the triggering ids were announced
	open     bool            // answers are open-ended until the deadline
	answered map[string]bool // triggering id → final answer seen
	done     bool
	count    int // final answers accepted
}

// provisional reads an announcement (a 1xx answer): the triggering ids it
// lists, or that the count is open. It reports whether the announcement
// was taken.
func (t *tally) provisional(a *dispatch.Dispatch) bool {
	if t.done {
		return false
	}
	ids, open := announced(a)
	if open {
		t.open = true
		return true
	}
	t.expect(ids)
	return true
}

// expect records triggering ids learned directly (the engine processed
// the dispatch itself).
func (t *tally) expect(ids []string) {
	if t.answered == nil {
		t.answered = make(map[string]bool, len(ids))
	}
	t.known = true
	for _, id := range ids {
		if _, ok := t.answered[id]; !ok {
			t.answered[id] = false
		}
	}
	t.check()
}

// final records a final answer for trig ("" for the whole transaction)
// and reports whether it is one to pass on.
func (t *tally) final(trig string) bool {
	if t.done {
		return false
	}
	if trig == "" || (!t.known && !t.open) {
		// The whole transaction's answer, or the first final answer
		// when nothing was announced: it ends the transaction, and
		// nothing needs remembering (most requests end here).
		t.done = true
		t.count++
		return true
	}
	if t.answered == nil {
		t.answered = map[string]bool{}
	}
	if t.answered[trig] {
		return false
	}
	if t.known {
		if _, expected := t.answered[trig]; !expected {
			// Not one of the announced: a stray answer, or a forged one.
			return false
		}
	}
	t.answered[trig] = true
	t.count++
	t.check()
	return true
}

func (t *tally) check() {
	if !t.known || t.open {
		return
	}
	for _, ok := range t.answered {
		if !ok {
			return
		}
	}
	if len(t.answered) > 0 {
		t.done = true
	}
}

// missing returns the announced triggering ids without an answer, sorted,
// and whether there is anything to answer 504 for at the deadline: the
// missing ones, or the whole transaction when nothing was announced and
// nothing came (an open transaction that got answers is not late).
func (t *tally) missing() (ids []string, late bool) {
	if t.done {
		return nil, false
	}
	for id, ok := range t.answered {
		if !ok && t.known {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if len(ids) > 0 {
		return ids, true
	}
	return nil, t.count == 0
}

// announced reads the body of a provisional answer.
func announced(a *dispatch.Dispatch) (ids []string, open bool) {
	var p struct {
		Triggered []string `json:"triggered"`
		Open      bool     `json:"open"`
	}
	if json.Unmarshal(a.Body, &p) != nil {
		return nil, false
	}
	return p.Triggered, p.Open
}

// announcement builds the provisional answer that lists trigs.
func announcement(txid string, trigs []string) *dispatch.Dispatch {
	body, _ := json.Marshal(map[string]any{"triggered": trigs})
	return dispatch.NewAnswer(codeProvisional, txid, "", body)
}

// openAnnouncement says answers will come from an engine that cannot tell
// how many.
func openAnnouncement(txid string) *dispatch.Dispatch {
	return dispatch.NewAnswer(codeProvisional, txid, "", json.RawMessage(`{"open":true}`))
}

// codeProvisional is the code of announcements: 102 Processing, as HTTP
// names a provisional response that says more is to come.
const codeProvisional = 102
