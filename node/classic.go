package node

import (
	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/mesh"
)

// The classic dialect: what the Node.js engine (npm jstp 1.1.5) and other
// classic clients read and write, and how this engine meets it
// (docs/classic-wire.md §7). Every classic link, in either direction, goes
// through these two functions and nothing else of the engine knows the
// dialect.

// WholePrefix starts the triggering id a classic link's whole-transaction
// answers get: the Node engine drops answers without a triggering id, so
// the gateway supplies one, and a client can tell by the prefix that the
// answer is the transaction's only one.
const WholePrefix = "whole-"

// ProvisionalExtension is the protocol extension ("protocol":
// ["JSTP","0.4","provisional"]) by which a classic client says it reads
// this project's answers as peers do: provisional announcements (ANSWER
// 102) and whole-transaction answers with two-element resources. A link
// that sends one such dispatch is answered that way from then on, so the
// client knows when a transaction is complete instead of guessing.
const ProvisionalExtension = "provisional"

// classicOut makes d readable by a classic engine or client, or returns nil
// when d is not for it. d itself is not changed.
func (o *linkOrigin) classicOut(d *dispatch.Dispatch) *dispatch.Dispatch {
	code, txid, trig, isAnswer := d.AnswerInfo()
	if d.Kind() == dispatch.Exception && o.kind == mesh.ClassicOut {
		// The Node engine cannot read exceptions (it fails on the missing
		// method and drops the rest of its read), and the one it would get
		// most is a 406 for its own completion notice, which must not be
		// answered. Failures of dispatches that wanted answers travel as
		// ANSWERs, which are sent.
		o.n.log.Debug("not sending an exception to a classic engine", "link", o.ID(), "code", d.Exception.Code, "message", d.Exception.Message)
		return nil
	}
	if isAnswer && code < 200 && !o.WantsProvisional() {
		return nil
	}
	if o.prov.Load() {
		return withVia(d, "")
	}
	label, hasVia := "", false
	if raw, ok := d.Extra.Get(ViaHeader); ok {
		hasVia = true
		label = string(raw[1 : len(raw)-1])
	}
	if !isAnswer && d.Token != nil && !(hasVia && o.kind == mesh.ClassicOut) {
		return withVia(d, "")
	}
	c := withVia(d, "")
	if c == d {
		cc := *d
		c = &cc
	}
	switch {
	case isAnswer:
		// Answers carry token [] (the engine echoes an answer with a
		// transaction in its token back as "[object Object]") and a
		// triggering id (the engine's answer binding ["*", txid, "*"] drops
		// two-element answers).
		c.Token = []any{}
		if trig == "" {
			c.Resource = []any{d.Resource[0], txid, WholePrefix + o.n.routes.newKey()}
		}
	case hasVia && o.kind == mesh.ClassicOut:
		// A transaction passed on to a classic engine: the label travels
		// as its transaction id, since the engine answers with the id it
		// was given and echoes no header. Two emitters that chose the same
		// id so never meet on the engine's connection.
		c.Token = append([]any{label}, d.Token[min(1, len(d.Token)):]...)
	default:
		c.Token = []any{}
	}
	return c
}

// classicIn reads what a classic link sent: a client declaring the
// provisional extension, and the label of a transaction passed on to a
// classic engine, which comes back as the answer's transaction id.
func (o *linkOrigin) classicIn(d *dispatch.Dispatch, rt *replyTo) {
	if o.kind == mesh.ClassicIn {
		if !o.prov.Load() && hasExtension(d.Protocol, ProvisionalExtension) {
			o.prov.Store(true)
		}
		return
	}
	switch d.Kind() {
	case dispatch.Answer:
		_, txid, _, _ := d.AnswerInfo()
		rt.via = txid
	case dispatch.Exception:
		rt.via = d.TransactionID()
	}
}
