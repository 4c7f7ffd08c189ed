package main

import (
	"os"
	"runtime/pprof"
	"runtime/trace"
)

// startCPUProfile profiles this process until the returned function is
// called, which the roles do when their stdin closes: the profile then
// covers the whole run, warm-ups included.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// startTrace records an execution trace of this process until the
// returned function is called, as startCPUProfile does. The trace holds
// every goroutine hand-over: go tool trace -pprof=sched FILE sums, by
// where a goroutine was made ready, how long it waited to run.
func startTrace(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		trace.Stop()
		f.Close()
	}, nil
}
