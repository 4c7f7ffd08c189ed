// Package routing turns the first element of a dispatch's host chain into
// where to send it: this peer itself (loopback), a peer id, a multiaddr, a
// service name provided through the DHT, or a classic JSTP engine address;
// and, when several peers provide a name, in which order to try the
// replicas (Router, with a Chooser: random by default; the saturation
// reports narrow the candidates and fresh per-request signals pick).
//
// Names (names.go) is the DHT side of service names: a peer Provides a
// name, any peer Resolves it to the peers providing it. A name maps to a
// CID (NameCID) whose provider records live in the mesh's DHT; resolutions
// are cached briefly, both found and not found, because a dispatch to a
// name would otherwise cost a DHT walk every time.
//
// routing decides; it measures nothing itself (package saturation does) and
// moves no bytes (package mesh does).
package routing
