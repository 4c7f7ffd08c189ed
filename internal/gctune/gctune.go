package gctune

import (
	"os"
	"runtime/debug"
)

// Percent is the GOGC a peer process runs with unless GOGC is set.
const Percent = 400

// Apply sets the collector to Percent unless the environment sets GOGC,
// and returns the percentage in effect (-1: collection off).
func Apply() int {
	if v, ok := os.LookupEnv("GOGC"); ok && v != "" {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p
	}
	debug.SetGCPercent(Percent)
	return Percent
}
