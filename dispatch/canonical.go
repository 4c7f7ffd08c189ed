package dispatch

import (
	"fmt"

	"github.com/gowebpki/jcs"
)

// Canonical returns the dispatch's JSON encoding (AppendJSON) in the JSON
// Canonicalization Scheme of RFC 8785: members sorted by their UTF-16 code
// units, no white space, strings in their shortest escaping, numbers in
// ECMAScript form. It is what signatures are computed over, so a dispatch
// verifies however it was re-serialised on the way: header names in any
// case or order, any white space, 4.50 for 4.5, "\u00e9" for "é".
//
// RFC 8785 reads every number as an IEEE-754 double (the I-JSON rule):
// numbers beyond ±2^53 or with more than 17 significant digits take the
// canonical form of the nearest double, and a number outside the double
// range is an error. Applications that sign such values should send them
// as strings. A body that is not I-JSON (a duplicate member name, a lone
// surrogate, bytes that are not UTF-8) is an error too. Errors wrap
// ErrBadDispatch.
func (d *Dispatch) Canonical() ([]byte, error) {
	return CanonicalJSON(d.AppendJSON(make([]byte, 0, 256)))
}

// CanonicalJSON returns raw in the RFC 8785 canonical form (see
// Dispatch.Canonical). raw is bounded like decoded dispatches are: at most
// DefaultMaxDepth levels of nesting. Errors wrap ErrBadDispatch.
func CanonicalJSON(raw []byte) ([]byte, error) {
	if len(raw) == 0 {
		return nil, Errorf(ErrBadDispatch, "canonical JSON: empty input")
	}
	if err := checkDepth(raw, DefaultMaxDepth); err != nil {
		return nil, err
	}
	out, err := jcs.Transform(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: canonical JSON: %w", ErrBadDispatch, err)
	}
	return out, nil
}
