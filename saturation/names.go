package saturation

import (
	"fmt"
	"math"
	"unicode"
	"unicode/utf8"
)

// System dimensions: the keys of Report.Saturation that the Meter
// measures itself. Application metrics share the same key space and so
// may not take these names.
const (
	DimDisk  = "disk"    // filesystem of the data dir
	DimRAM   = "ram"     // available memory
	DimCPU   = "cpu"     // CPU utilisation, all cores
	DimNet   = "net"     // network rate against a capacity
	DimQueue = "backlog" // the peer's own queue against its capacity; "queue" is left to applications
)

// systemDims lists the system dimensions, for validation.
var systemDims = map[string]bool{DimDisk: true, DimRAM: true, DimCPU: true, DimNet: true, DimQueue: true}

// IsSystemDimension reports whether name is one of the Dim* constants.
func IsSystemDimension(name string) bool { return systemDims[name] }

// Limits on the content of a report. They are chosen together so that
// the largest valid report still encodes within DefaultMaxSize (a test
// builds that report and checks).
const (
	// MaxMetrics bounds the application metrics of one report.
	MaxMetrics = 16
	// MaxNames bounds the service names one report announces.
	MaxNames = 16
	// MaxCapacity bounds a declared capacity (Report.Capacity).
	MaxCapacity = 1 << 20
	// MaxMetricNameLen bounds a metric name, in bytes.
	MaxMetricNameLen = 64
	// MaxServiceNameLen bounds one provided service name, in bytes.
	MaxServiceNameLen = 96
	// MaxPeerLen bounds a peer id, in bytes. libp2p ids in their usual
	// text forms are about 52 characters.
	MaxPeerLen = 128
	// maxSafeInt is the largest integer a JSON reader with IEEE doubles
	// (a browser dashboard, a Node.js engine) holds exactly; integers on
	// the wire stay below it.
	maxSafeInt = 1<<53 - 1
)

// Metric is one application-defined dimension: a value against a
// capacity, both in the application's own unit (requests per second,
// connections, jobs queued). Its saturation is Value/Capacity clamped to
// [0,1]; a value above capacity is allowed and means "over capacity".
type Metric struct {
	Name     string  `json:"name"`
	Value    float64 `json:"value"`
	Capacity float64 `json:"capacity"`
}

// ValidateMetric checks an application metric: name 1..64 bytes of
// [a-z0-9._-] and not a system dimension, value finite and >= 0, capacity
// finite and > 0. Errors wrap ErrInvalidMetric.
func ValidateMetric(name string, value, capacity float64) error {
	if err := validMetricName(name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidMetric, err)
	}
	if math.IsNaN(value) || math.IsInf(value, 0) || value < 0 {
		return fmt.Errorf("%w: %q: value %v must be finite and >= 0", ErrInvalidMetric, name, value)
	}
	if math.IsNaN(capacity) || math.IsInf(capacity, 0) || capacity <= 0 {
		return fmt.Errorf("%w: %q: capacity %v must be finite and > 0", ErrInvalidMetric, name, capacity)
	}
	return nil
}

// validMetricName checks the metric name rule. The character set keeps
// names safe in JSON, logs, config files and endpoint resources without
// any escaping.
func validMetricName(name string) error {
	if len(name) == 0 || len(name) > MaxMetricNameLen {
		return fmt.Errorf("name %q must be 1..%d bytes", name, MaxMetricNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("name %q: byte %q is not in [a-z0-9._-]", name, c)
		}
	}
	if systemDims[name] {
		return fmt.Errorf("name %q is a system dimension", name)
	}
	return nil
}

// ValidatePeer checks a peer id: 1..128 bytes of [A-Za-z0-9._:-], which
// covers libp2p ids in base58 and base32 and readable simulation names.
// Errors wrap ErrInvalidPeer.
func ValidatePeer(id string) error {
	if len(id) == 0 || len(id) > MaxPeerLen {
		return fmt.Errorf("%w: %q must be 1..%d bytes", ErrInvalidPeer, id, MaxPeerLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '_' || c == ':' || c == '-') {
			return fmt.Errorf("%w: %q: byte %q is not in [A-Za-z0-9._:-]", ErrInvalidPeer, id, c)
		}
	}
	return nil
}

// ValidateNames checks the service names a peer announces: at most
// MaxNames, each 1..96 bytes of UTF-8 without control characters, no
// duplicates. Routing treats names as opaque strings; these limits only
// keep reports small and printable. Errors wrap ErrInvalidName.
func ValidateNames(names []string) error {
	if len(names) > MaxNames {
		return fmt.Errorf("%w: %d names, at most %d", ErrInvalidName, len(names), MaxNames)
	}
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if len(n) == 0 || len(n) > MaxServiceNameLen {
			return fmt.Errorf("%w: %q must be 1..%d bytes", ErrInvalidName, n, MaxServiceNameLen)
		}
		if !utf8.ValidString(n) {
			return fmt.Errorf("%w: %q is not UTF-8", ErrInvalidName, n)
		}
		for _, r := range n {
			if unicode.IsControl(r) {
				return fmt.Errorf("%w: %q contains a control character", ErrInvalidName, n)
			}
		}
		if seen[n] {
			return fmt.Errorf("%w: %q given twice", ErrInvalidName, n)
		}
		seen[n] = true
	}
	return nil
}
