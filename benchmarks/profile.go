package main

import (
	"os"
	"runtime/pprof"
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
