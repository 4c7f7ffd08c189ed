//go:build !linux

package main

import (
	"errors"
	"os/exec"
	"time"
)

// Elsewhere a child is killed alone; the benchmarks are meant for Linux,
// where its process group goes with it.
func setProcessGroup(cmd *exec.Cmd) {}

func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return cmd.Process.Kill()
}

type memStat struct {
	RSS, HWM uint64
}

func readMem(int) (memStat, error) { return memStat{}, errNoProc }

func writeCalls([]int) uint64 { return 0 }

func threadStats([]int) (uint64, time.Duration) { return 0, 0 }

func cpuOf(string) int { return 0 }

func pinTo(int) error { return errors.New("-pin needs Linux") }
