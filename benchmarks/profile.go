package main

import (
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
)

// startCPUProfile profiles this process until the returned function is
// called, which the roles do when their stdin closes: the profile then
// covers the whole run, warm-ups included.
func startCPUProfile(path string) (stop func(), err error) {
	return record(path, pprof.StartCPUProfile, pprof.StopCPUProfile)
}

// startTrace records an execution trace of this process until the
// returned function is called, as startCPUProfile does. The trace holds
// every goroutine hand-over: go tool trace -pprof=sched FILE sums, by
// where a goroutine was made ready, how long it waited to run.
func startTrace(path string) (stop func(), err error) {
	return record(path, trace.Start, trace.Stop)
}

// record runs start on a new file at path; the returned stop ends it and
// closes the file.
func record(path string, start func(io.Writer) error, end func()) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		end()
		f.Close()
	}, nil
}
