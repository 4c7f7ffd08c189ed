// Package dispatch is the JSTP data model: the dispatch and its headers,
// validation by morphology (regular, subscription, answer, exception),
// endpoint patterns and matching, the URL and HTTP-like notations, the
// canonical encoding used for signatures, and the exception codes.
//
// It is pure: no I/O, no goroutines, nothing from the mesh. Every other
// package builds on it, the way go-libp2p's core/ is built on.
//
// Decoding is bounded before any work is done: a document over the size
// limit fails with ErrTooLarge (413) and one nested deeper than the depth
// limit with ErrBadDispatch (400), so untrusted input never costs more than
// the limits allow.
package dispatch
