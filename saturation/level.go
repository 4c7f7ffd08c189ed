package saturation

import "fmt"

// Level is how loaded a peer is, from the thresholds of its most loaded
// dimension. Levels are ordered: LevelOK < LevelWarning < LevelCritical.
type Level uint8

const (
	// LevelOK: every dimension is below its warning threshold.
	LevelOK Level = iota
	// LevelWarning: some dimension reached its warning threshold and none
	// its critical one.
	LevelWarning
	// LevelCritical: some dimension reached its critical threshold. Routing
	// is expected to stop choosing such a peer while others can serve.
	LevelCritical
)

var levelNames = [...]string{"ok", "warning", "critical"}

// String returns "ok", "warning" or "critical".
func (l Level) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return fmt.Sprintf("Level(%d)", uint8(l))
}

// ParseLevel is the inverse of String. It is strict (lowercase only), as
// the wire format is.
func ParseLevel(s string) (Level, error) {
	for i, n := range levelNames {
		if s == n {
			return Level(i), nil
		}
	}
	return 0, fmt.Errorf("%w: unknown level %q", ErrReportInvalid, s)
}

// MarshalText encodes the level by name, so reports read well in logs.
func (l Level) MarshalText() ([]byte, error) {
	if int(l) >= len(levelNames) {
		return nil, fmt.Errorf("saturation: cannot encode %v", l)
	}
	return []byte(levelNames[l]), nil
}

// UnmarshalText decodes a level name, rejecting anything else.
func (l *Level) UnmarshalText(b []byte) error {
	v, err := ParseLevel(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}
