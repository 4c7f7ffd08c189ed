package main

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// request sends request i and waits for its outcome: the code of the
// answer ("200"; a baseline that only echoes says "ok"). An error means
// the connection failed and ends the round; an unexpected answer does not,
// it is counted under its code and reported.
type request func(i int) (code string, err error)

// roundTrips sends n requests one after the other and times each.
func roundTrips(n int, one request) (roundResult, error) {
	lat := make([]time.Duration, n)
	codes := map[string]int{}
	start := time.Now()
	for i := range n {
		t0 := time.Now()
		code, err := one(i)
		if err != nil {
			return roundResult{}, err
		}
		lat[i] = time.Since(t0)
		codes[code]++
	}
	r := roundResult{N: n, Elapsed: time.Since(start), Codes: codes}
	r.Median, r.P99 = quantile(lat, 0.5), quantile(lat, 0.99)
	return r, nil
}

// pipelined sends n requests with depth of them in flight: depth workers
// each send one, wait for its answer, and send the next.
func pipelined(n, depth int, one request) (roundResult, error) {
	var (
		next     atomic.Int64
		mu       sync.Mutex
		codes    = map[string]int{}
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range depth {
		wg.Go(func() {
			mine := map[string]int{}
			var err error
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					break
				}
				var code string
				if code, err = one(i); err != nil {
					break
				}
				mine[code]++
			}
			mu.Lock()
			defer mu.Unlock()
			for c, k := range mine {
				codes[c] += k
			}
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return roundResult{}, firstErr
	}
	return roundResult{N: n, Elapsed: time.Since(start), Codes: codes}, nil
}

// quantile returns the q-quantile of ds (nearest rank); ds is sorted.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(q*float64(len(ds)) + 0.5)
	return ds[min(max(i, 1), len(ds))-1]
}

// medianOf returns the median of xs (the mean of the middle two when even).
func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// creditPipeline keeps depth requests in flight on one connection, with
// one writer and one reader. Each answer read returns a credit; the
// writer sends as many requests as it holds credits for in one write
// (write(k) sends k), as the mesh's frame queue coalesces what queued up
// during a write. read returns the code of the next answer.
func creditPipeline(n, depth int, write func(k int) error, read func() (string, error)) (roundResult, error) {
	credit := make(chan struct{}, depth)
	for range depth {
		credit <- struct{}{}
	}
	codes := map[string]int{}
	readDone := make(chan error, 1)
	start := time.Now()
	go func() {
		for range n {
			code, err := read()
			if err != nil {
				readDone <- err
				return
			}
			codes[code]++
			credit <- struct{}{} // never blocks: at most depth are out
		}
		readDone <- nil
	}()
	for sent := 0; sent < n; {
		select {
		case <-credit:
		case err := <-readDone:
			return roundResult{}, fmt.Errorf("reading stopped after %d sent: %v", sent, err)
		}
		k := 1
	more:
		for k < n-sent {
			select {
			case <-credit:
				k++
			default:
				break more
			}
		}
		if err := write(k); err != nil {
			return roundResult{}, err
		}
		sent += k
	}
	if err := <-readDone; err != nil {
		return roundResult{}, fmt.Errorf("reading answers: %w", err)
	}
	return roundResult{N: n, Elapsed: time.Since(start), Codes: codes}, nil
}
