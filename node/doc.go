// Package node is the JSTP engine: the dispatch cycle (validate, forward or
// process, trigger subscriptions, answer), the subscription table, the
// transaction bookkeeping that turns missing answers into 504s, and the
// public Go API.
//
// A Node is in-process and transport-agnostic. Dispatches from elsewhere
// enter through Receive with an Origin (a classic connection, a mesh
// peer) that answers and subscription events are delivered back to;
// dispatches for other hosts leave through a Forwarder. The mesh plugs in
// through those two interfaces, so this package knows nothing of libp2p.
//
// # Answers
//
// A dispatch wants answers when it is regular or a subscription and its
// token[0] is a transaction id. Every subscription it triggers receives a
// copy whose token is [txid, triggeringID] and answers it: a Handler by
// returning, a remote subscriber by sending an ANSWER back. The engine
// that processes the dispatch tells the emitter which triggering ids to
// expect (locally, directly; across the mesh, with a provisional answer
// 102 whose body lists them), and the emitter's engine answers 504 for
// every one missing at the deadline. A dispatch that wants answers and
// triggers nothing is answered 404 at once.
//
// # Threading
//
// Every subscription has a bounded queue and its own workers (one by
// default, so a subscriber sees dispatches in the order they were
// processed). A slow subscriber backs up only its own queue; when that is
// full the dispatch is dropped for it, counted, and answered 503 if an
// answer was wanted.
package node
