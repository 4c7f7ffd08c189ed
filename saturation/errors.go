package saturation

import (
	"errors"
	"fmt"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// Decoding errors. Each wraps dispatch.ErrBadDispatch, so a rejected report
// maps to exception code 400 wherever Go errors meet JSTP codes, and callers
// can still tell the reasons apart with errors.Is.
var (
	// ErrReportTooLarge: the encoded report exceeds the decoder's size
	// limit. It is checked before any byte is parsed.
	ErrReportTooLarge = fmt.Errorf("%w: saturation report too large", dispatch.ErrBadDispatch)
	// ErrReportSyntax: the input is not one JSON object of the report's
	// shape (bad JSON, unknown field, wrong type, trailing data).
	ErrReportSyntax = fmt.Errorf("%w: malformed saturation report", dispatch.ErrBadDispatch)
	// ErrReportVersion: the report's format version is not one this
	// package reads.
	ErrReportVersion = fmt.Errorf("%w: unsupported saturation report version", dispatch.ErrBadDispatch)
	// ErrReportMissing: a required field is absent.
	ErrReportMissing = fmt.Errorf("%w: saturation report field missing", dispatch.ErrBadDispatch)
	// ErrReportInvalid: a field is present but out of range or malformed
	// (a saturation outside [0,1], a negative value, a bad name, a
	// duplicate, an unknown dimension, too many entries).
	ErrReportInvalid = fmt.Errorf("%w: invalid saturation report", dispatch.ErrBadDispatch)
	// ErrReportTooOld: the report's timestamp is further in the past than
	// the decoder's maximum age.
	ErrReportTooOld = fmt.Errorf("%w: saturation report too old", dispatch.ErrBadDispatch)
	// ErrReportFuture: the report's timestamp is further in the future
	// than the decoder's allowed clock skew.
	ErrReportFuture = fmt.Errorf("%w: saturation report from the future", dispatch.ErrBadDispatch)
)

// Errors from the Go API (Meter, Table, Thresholds). They do not wrap
// dispatch errors: they describe a caller's mistake, not a peer's.
var (
	// ErrInvalidMetric: an application metric's name, value or capacity
	// is not acceptable (see ValidateMetric).
	ErrInvalidMetric = errors.New("saturation: invalid metric")
	// ErrTooManyMetrics: setting one more application metric would exceed
	// MaxMetrics, and so make reports that peers reject.
	ErrTooManyMetrics = errors.New("saturation: too many metrics")
	// ErrInvalidName: a provided service name is empty, too long, not
	// UTF-8, contains control characters, or there are too many.
	ErrInvalidName = errors.New("saturation: invalid service name")
	// ErrInvalidPeer: a peer id is empty, too long or has characters
	// outside [A-Za-z0-9._:-].
	ErrInvalidPeer = errors.New("saturation: invalid peer id")
	// ErrInvalidConfig: an option or configuration value is out of range.
	ErrInvalidConfig = errors.New("saturation: invalid configuration")
)

// Reasons a Table refuses a report. Update returns them; Stats counts them.
var (
	// ErrReplayed: the table already holds a report from the same peer
	// with a higher sequence number (a replay or a reordering).
	ErrReplayed = errors.New("saturation: report older than the one held")
	// ErrDuplicate: the table already holds a report from the same peer
	// with the same sequence number.
	ErrDuplicate = errors.New("saturation: duplicate report")
	// ErrExpired: the report was received longer ago than the table's TTL,
	// so it would be stale the moment it was stored.
	ErrExpired = errors.New("saturation: report already expired")
)
