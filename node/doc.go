// Package node is the JSTP engine: the dispatch cycle (validate, forward or
// process, trigger subscriptions, answer), the subscription table, the
// transaction bookkeeping that turns missing answers into 504s, and the
// public Go API.
//
// A Node made with New is an in-process engine with no network: the
// application's Go API, and origins of its own through Receive. Start
// composes a running peer around one: the libp2p host, name resolution,
// the dispatch streams, gossipsub and the classic gateways (packages mesh
// and routing), wired before anything is let in, and stopped by Close.
//
// Every link of the mesh enters the engine through one path (Attach, the
// mesh.Ingress): admission (a link at its limit of dispatches in flight
// is not read until one completes), decoding, the classic dialect for
// classic links (classic.go), then the dispatch cycle. Dispatches for
// other hosts leave through a Forwarder, which says which link reaches
// the host; the engine keeps, per transaction it passes on, a ledger of
// where the answers go back (routes.go), so emitters that chose the same
// transaction id never see each other's answers.
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
