package saturation

import (
	"fmt"
	"math"
)

// DefaultNetCapacity is the link capacity network rates are measured
// against when none is configured: 1 Gbit/s, in bytes per second. Set the
// real figure (WithNetCapacity) on slower uplinks, where it matters most.
const DefaultNetCapacity = 125e6

// Scoring turns raw samples into saturations in [0,1], one per dimension:
//
//	disk  = 1 - (free - reserve) / (total - reserve)   (1 once free <= reserve)
//	ram   = 1 - available / total
//	cpu   = utilisation
//	net   = max(in, out) / NetCapacity
//	queue = depth / capacity                            (only when capacity > 0)
//
// each clamped to [0,1]. Network takes the larger direction because links
// are full-duplex: a peer saturated in sending is saturated whatever it
// receives. The zero value uses the defaults.
type Scoring struct {
	// NetCapacity is the link capacity in bytes per second (0:
	// DefaultNetCapacity).
	NetCapacity float64
	// DiskReserve is space, in bytes, that the peer must keep free: the
	// disk counts as full when only the reserve is left (0: none).
	DiskReserve uint64
}

func (c Scoring) validate() error {
	if math.IsNaN(c.NetCapacity) || math.IsInf(c.NetCapacity, 0) || c.NetCapacity < 0 {
		return fmt.Errorf("%w: network capacity %v must be finite and >= 0 (0: the default)", ErrInvalidConfig, c.NetCapacity)
	}
	return nil
}

// Saturations scores a sample and the peer's load. Dimensions the sample
// did not measure are absent from the result, not zero: an unmeasured
// disk is not an empty one.
func (c Scoring) Saturations(s Sample, l Load) map[string]float64 {
	out := make(map[string]float64, len(systemDims))
	if s.Disk.Total > 0 {
		out[DimDisk] = diskSaturation(s.Disk, c.DiskReserve)
	}
	if s.Memory.Total > 0 {
		out[DimRAM] = 1 - ratio(float64(s.Memory.Free), float64(s.Memory.Total))
	}
	if s.HasCPU && isFinite(s.CPU) {
		out[DimCPU] = clamp01(s.CPU)
	}
	if s.HasNet && isFinite(s.NetIn) && isFinite(s.NetOut) {
		capacity := c.NetCapacity
		if capacity <= 0 {
			capacity = DefaultNetCapacity
		}
		out[DimNet] = ratio(max(s.NetIn, s.NetOut), capacity)
	}
	if l.QueueCapacity > 0 {
		out[DimQueue] = ratio(float64(l.QueueDepth), float64(l.QueueCapacity))
	}
	return out
}

func diskSaturation(sp Space, reserve uint64) float64 {
	if reserve >= sp.Total || sp.Free <= reserve {
		return 1
	}
	return 1 - ratio(float64(sp.Free-reserve), float64(sp.Total-reserve))
}

// Headroom is the share of capacity left on the most saturated dimension:
//
//	headroom = 1 - max(saturations)
//
// (1 when there is none). The bottleneck decides, not an average: a peer
// whose disk is full cannot take writes however idle its CPU is, and a
// weighted mean would hide exactly the dimension that is about to fail.
// The maximum also needs no weights to tune per application, and it keeps
// headroom consistent with the levels, which are per dimension too.
// Non-finite saturations are ignored.
func Headroom(saturations map[string]float64) float64 {
	m := 0.0
	for _, s := range saturations {
		if isFinite(s) {
			m = max(m, clamp01(s))
		}
	}
	return 1 - m
}

// ratio is value/capacity clamped to [0,1]; 1 for a capacity <= 0, which
// leaves no room at all.
func ratio(value, capacity float64) float64 {
	if capacity <= 0 {
		return 1
	}
	return clamp01(value / capacity)
}

// clamp01 bounds x to [0,1]; NaN becomes 0 (callers filter it first).
func clamp01(x float64) float64 {
	switch {
	case x > 1:
		return 1
	case x > 0:
		return x
	default:
		return 0
	}
}

func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
