package dispatch

import (
	"errors"
	"fmt"
)

// Sentinel errors, one per exception code. Wrap them with %w (or use
// Errorf) and Code maps any error chain back to its code; that mapping is
// the only place where Go errors meet JSTP exception codes.
var (
	// ErrBadDispatch (400): a required header is missing or malformed, the
	// JSON does not parse, or the document is not an object.
	ErrBadDispatch = errors.New("bad dispatch")
	// ErrUnauthorized (401): a signature is missing or does not verify.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden (403): the author is known but not allowed.
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound (404): nothing is bound to the resource, or a host
	// cannot be resolved.
	ErrNotFound = errors.New("not found")
	// ErrMethodNotAllowed (405): the method is not a JSTP method.
	ErrMethodNotAllowed = errors.New("method not allowed")
	// ErrUnbound (406): a RELEASE matched no subscription.
	ErrUnbound = errors.New("unbound endpoint")
	// ErrTooLarge (413): the dispatch exceeds the size limit.
	ErrTooLarge = errors.New("dispatch too large")
	// ErrInternal (500): the engine failed while processing.
	ErrInternal = errors.New("internal error")
	// ErrNotGateway (502): the dispatch must be forwarded and this engine
	// does not (or cannot) forward it.
	ErrNotGateway = errors.New("not gateway")
	// ErrUnavailable (503): a subscriber's queue is full; the dispatch
	// was dropped for it rather than stall the engine.
	ErrUnavailable = errors.New("unavailable")
	// ErrTimeout (504): an answer did not arrive in time.
	ErrTimeout = errors.New("timeout")
	// ErrVersion (505): the protocol version is not supported.
	ErrVersion = errors.New("version not supported")
	// ErrLoop (508): the dispatch crossed more gateways than the hop limit.
	ErrLoop = errors.New("loop detected")
)

var codes = []struct {
	err  error
	code int
}{
	{ErrBadDispatch, 400},
	{ErrUnauthorized, 401},
	{ErrForbidden, 403},
	{ErrNotFound, 404},
	{ErrMethodNotAllowed, 405},
	{ErrUnbound, 406},
	{ErrTooLarge, 413},
	{ErrInternal, 500},
	{ErrNotGateway, 502},
	{ErrUnavailable, 503},
	{ErrTimeout, 504},
	{ErrVersion, 505},
	{ErrLoop, 508},
}

// CodeError carries an explicit status code, for errors that come back
// from another engine as exceptions or answers.
type CodeError struct {
	Code    int
	Message string
}

func (e *CodeError) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Message) }

// Is lets errors.Is(err, ErrNotFound) hold for a remote 404.
func (e *CodeError) Is(target error) bool {
	for _, c := range codes {
		if c.err == target {
			return c.code == e.Code
		}
	}
	return false
}

// Code returns the JSTP status code for err: 200 for nil, the code of the
// first sentinel found in the chain, and 500 for anything else.
func Code(err error) int {
	if err == nil {
		return 200
	}
	var ce *CodeError
	if errors.As(err, &ce) {
		return ce.Code
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return 500
}

// ErrorForCode returns the sentinel for a status code, or nil when the code
// has none (2xx and codes this project does not name).
func ErrorForCode(code int) error {
	for _, c := range codes {
		if c.code == code {
			return c.err
		}
	}
	return nil
}

// Errorf wraps sentinel with a formatted detail: Errorf(ErrBadDispatch,
// "missing header %q", "timestamp") reads "bad dispatch: missing header
// "timestamp"" and maps to 400. The format may wrap a cause with %w, so
// that errors.Is and errors.As find both the sentinel and the cause.
func Errorf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)
}
