package main

import (
	"sync"
	"time"
)

// sampleEvery is how often the parent reads the peers' resident memory
// during the burst; the peak between two samples is missed, VmHWM is not.
const sampleEvery = 5 * time.Millisecond

// memoryIdle records both peers' resident memory right after they start.
func (s *suite) memoryIdle() error {
	if err := s.peers(); err != nil {
		return err
	}
	return s.recordRSS("mem/idle/", "idle RSS, peer ")
}

// recordRSS records both peers' resident memory now.
func (s *suite) recordRSS(key, label string) error {
	for _, p := range []struct {
		c    *child
		name string
	}{{s.a, "A"}, {s.b, "B"}} {
		m, err := readMem(p.c.pid())
		if err != nil {
			return err
		}
		s.res.addMemory(key+p.name, label+p.name, m.RSS)
	}
	return nil
}

// memoryBurst has peer A issue s.o.burst requests at once and records
// both peers' resident memory while they are in flight and after.
func (s *suite) memoryBurst() error {
	// The stream to B exists before the burst, so the burst measures
	// transactions, not connection setup.
	if _, err := s.a.do(s.ctx, command{Op: "rtt", N: 100}); err != nil {
		return err
	}
	if err := s.recordRSS("mem/before/", "RSS before burst, peer "); err != nil {
		return err
	}
	var (
		stop         = make(chan struct{})
		wg           sync.WaitGroup
		peakA, peakB uint64
		sampleErr    error
	)
	wg.Go(func() {
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			ma, errA := readMem(s.a.pid())
			mb, errB := readMem(s.b.pid())
			if errA != nil || errB != nil {
				sampleErr = firstErr(errA, errB)
				return
			}
			peakA, peakB = max(peakA, ma.RSS), max(peakB, mb.RSS)
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	r, err := s.a.do(s.ctx, command{Op: "burst", N: s.o.burst})
	close(stop)
	wg.Wait()
	if err != nil {
		return err
	}
	if sampleErr != nil {
		return sampleErr
	}
	afterA, err := readMem(s.a.pid())
	if err != nil {
		return err
	}
	afterB, err := readMem(s.b.pid())
	if err != nil {
		return err
	}
	s.res.addMemory("mem/burst/A", "peak RSS during burst, peer A", peakA)
	s.res.addMemory("mem/burst/B", "peak RSS during burst, peer B", peakB)
	s.res.addMemory("mem/after/A", "RSS after burst answered, peer A", afterA.RSS)
	s.res.addMemory("mem/after/B", "RSS after burst answered, peer B", afterB.RSS)
	// What the burst added to A's resident memory, per request: an upper
	// bound on a pending transaction's cost, as RSS also holds what the
	// garbage collector has not returned.
	before, _ := s.res.metric("mem/before/A")
	grown := float64(peakA)/(1<<20) - before.Value
	s.res.Metrics = append(s.res.Metrics, metric{
		Key:   "mem/per-request/A",
		Label: "peer A's growth per request in flight",
		Value: grown * 1024 / float64(s.o.burst),
		Unit:  "KiB",
	})
	s.res.addBurst(r.Round)
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
