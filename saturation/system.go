package saturation

import (
	"context"
	"errors"
	"fmt"
	stdnet "net"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v3/cpu"
	"github.com/shirou/gopsutil/v3/disk"
	"github.com/shirou/gopsutil/v3/mem"
	psnet "github.com/shirou/gopsutil/v3/net"
)

// SystemSource reads the real machine through gopsutil: free space on the
// filesystem of the data dir, available memory, CPU utilisation and
// network rates. CPU and network are rates, computed from the machine's
// cumulative counters between two calls; the counters of the previous
// call are kept here, per source, rather than in gopsutil's package-wide
// state, so several sources in one process do not disturb each other.
// Safe for concurrent use, though the Meter calls it from one goroutine.
type SystemSource struct {
	dir string

	mu  sync.Mutex
	cpu cpuCounter
	net rateCounter
}

// NewSystemSource returns a source for the filesystem holding dataDir
// (disk is not measured when dataDir is ""). It reads the CPU and network
// counters once as the baseline for the first Sample's rates; it fails
// only when dataDir is given and its filesystem cannot be read, which is
// a configuration mistake worth reporting at start.
func NewSystemSource(ctx context.Context, dataDir string) (*SystemSource, error) {
	s := &SystemSource{dir: dataDir}
	if dataDir != "" {
		if _, err := disk.UsageWithContext(ctx, dataDir); err != nil {
			return nil, fmt.Errorf("saturation: disk usage of %q: %w", dataDir, err)
		}
	}
	// Baseline only: failures show up (and are reported) on Sample.
	_, _ = s.Sample(ctx)
	return s, nil
}

// Sample reads every collector. A failing collector leaves its dimension
// unmeasured and contributes to the joined error; the others still count.
func (s *SystemSource) Sample(ctx context.Context) (Sample, error) {
	var out Sample
	var errs []error

	if s.dir != "" {
		if u, err := disk.UsageWithContext(ctx, s.dir); err != nil {
			errs = append(errs, fmt.Errorf("disk usage of %q: %w", s.dir, err))
		} else {
			out.Disk = Space{Free: u.Free, Total: u.Used + u.Free}
		}
	}

	if v, err := mem.VirtualMemoryWithContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("memory: %w", err))
	} else {
		out.Memory = Space{Free: min(v.Available, v.Total), Total: v.Total}
	}

	times, cpuErr := cpu.TimesWithContext(ctx, false)
	if cpuErr == nil && len(times) == 0 {
		cpuErr = errors.New("no CPU times")
	}
	if cpuErr != nil {
		errs = append(errs, fmt.Errorf("cpu: %w", cpuErr))
	}
	counters, netErr := nicCounters(ctx)
	if netErr != nil {
		errs = append(errs, fmt.Errorf("network: %w", netErr))
	}
	now := time.Now()

	s.mu.Lock()
	if cpuErr == nil {
		out.CPU, out.HasCPU = s.cpu.update(times[0])
	}
	if netErr == nil {
		out.NetIn, out.NetOut, out.HasNet = s.net.update(now, counters)
	}
	s.mu.Unlock()

	if len(errs) > 0 {
		return out, fmt.Errorf("saturation: system sample: %w", errors.Join(errs...))
	}
	return out, nil
}

// nicCounters returns the byte counters (received, sent) of every
// interface except loopback: traffic a peer sends itself costs no link
// capacity.
func nicCounters(ctx context.Context) (map[string][2]uint64, error) {
	stats, err := psnet.IOCountersWithContext(ctx, true)
	if err != nil {
		return nil, err
	}
	loop := map[string]bool{"lo": true}
	if ifs, err := stdnet.Interfaces(); err == nil {
		for _, i := range ifs {
			if i.Flags&stdnet.FlagLoopback != 0 {
				loop[i.Name] = true
			}
		}
	}
	out := make(map[string][2]uint64, len(stats))
	for _, st := range stats {
		if !loop[st.Name] {
			out[st.Name] = [2]uint64{st.BytesRecv, st.BytesSent}
		}
	}
	return out, nil
}

// cpuCounter turns cumulative CPU times into utilisation between calls.
type cpuCounter struct {
	busy, total float64
	started     bool
}

// update returns the busy share of the CPU time elapsed since the
// previous call. Busy is everything but idle and iowait (waiting on I/O
// leaves the CPU free for other work); guest time is already counted in
// user time, so it is not added again.
func (c *cpuCounter) update(t cpu.TimesStat) (float64, bool) {
	idle := t.Idle + t.Iowait
	total := idle + t.User + t.System + t.Nice + t.Irq + t.Softirq + t.Steal
	busy := total - idle
	prevBusy, prevTotal, started := c.busy, c.total, c.started
	c.busy, c.total, c.started = busy, total, true
	dTotal := total - prevTotal
	if !started || dTotal <= 0 {
		// No baseline yet, or the counters did not advance (they tick
		// at 100 Hz on Linux), or went back: nothing to measure.
		return 0, false
	}
	return clamp01((busy - prevBusy) / dTotal), true
}

// rateCounter turns cumulative per-interface byte counters into rates.
type rateCounter struct {
	prev map[string][2]uint64
	at   time.Time
}

// update returns the bytes per second received and sent since the
// previous call. Only interfaces present both times count, and an
// interface whose counter went back (reset, wrap, replaced device)
// contributes nothing for this interval rather than a huge bogus rate.
func (r *rateCounter) update(now time.Time, cur map[string][2]uint64) (in, out float64, ok bool) {
	prev, at := r.prev, r.at
	r.prev, r.at = cur, now
	dt := now.Sub(at).Seconds()
	if prev == nil || dt <= 0 {
		return 0, 0, false
	}
	var dIn, dOut uint64
	for name, c := range cur {
		p, found := prev[name]
		if !found {
			continue
		}
		if c[0] >= p[0] {
			dIn += c[0] - p[0]
		}
		if c[1] >= p[1] {
			dOut += c[1] - p[1]
		}
	}
	return float64(dIn) / dt, float64(dOut) / dt, true
}
