package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// setProcessGroup puts the child in a process group of its own, so that
// killing it kills anything it started, and asks the kernel to kill it if
// the parent dies first: no peer outlives a benchmark run.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return killGroup(cmd) }
}

func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// memStat is a process's resident memory, in bytes: now, and the peak
// since it started.
type memStat struct {
	RSS, HWM uint64
}

// readMem reads VmRSS and VmHWM from /proc/PID/status.
func readMem(pid int) (memStat, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStat{}, err
	}
	defer f.Close()
	var m memStat
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return memStat{}, fmt.Errorf("/proc/%d/status %s: %w", pid, name, err)
		}
		if name == "VmRSS" {
			m.RSS = kb << 10
		} else {
			m.HWM = kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return memStat{}, err
	}
	if m.RSS == 0 {
		return memStat{}, errNoProc
	}
	return m, nil
}

// writeCalls sums the write system calls the processes made so far
// (syscw in /proc/PID/io): per request, it shows how well each side
// batches its writes. It is 0 when a process cannot be read.
func writeCalls(pids []int) uint64 {
	var sum uint64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
		if err != nil {
			return 0
		}
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "syscw:"); ok {
				n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
				if err != nil {
					return 0
				}
				sum += n
			}
		}
	}
	return sum
}

// threadStats sums, over every thread of the processes so far, the
// context switches (voluntary and not, /proc/PID/task/TID/status) and
// the CPU time (/proc/PID/task/TID/schedstat). Per request, the first
// counts the wake-ups a path costs, which its time on a loaded machine
// depends on as much as on CPU; the second is the CPU it costs, steadier
// than its time. Both are 0 when a process cannot be read.
func threadStats(pids []int) (switches uint64, cpu time.Duration) {
	for _, pid := range pids {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return 0, 0
		}
		for _, t := range tasks {
			dir := fmt.Sprintf("/proc/%d/task/%s/", pid, t.Name())
			if b, err := os.ReadFile(dir + "schedstat"); err == nil {
				if f := strings.Fields(string(b)); len(f) > 0 {
					if ns, err := strconv.ParseUint(f[0], 10, 64); err == nil {
						cpu += time.Duration(ns)
					}
				}
			}
			b, err := os.ReadFile(dir + "status")
			if err != nil {
				continue // the thread has gone
			}
			for line := range strings.Lines(string(b)) {
				k, v, ok := strings.Cut(line, ":")
				if !ok || (k != "voluntary_ctxt_switches" && k != "nonvoluntary_ctxt_switches") {
					continue
				}
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
					switches += n
				}
			}
		}
	}
	return switches, cpu
}

// cpuOf is the CPU -pin puts a role on: the requesting side (role "" is
// this program, the gateway's and NATS's client) and whatever relays its
// requests on CPU 0, the answering side on CPU 1, as if each side had a
// machine of its own.
func cpuOf(role string) int {
	switch role {
	case "peer-b", "raw-b", "nats-responder":
		return 1
	}
	return 0
}

// pinTo binds this process to one CPU and gives the runtime one P, unless
// GOMAXPROCS says otherwise. Affinity is per thread on Linux, and a new
// thread inherits its creator's: every thread that exists is bound, twice
// over in case one was started from an unbound thread during the first
// pass, and every later one inherits it.
func pinTo(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	for range 2 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("pin to CPU %d: %w", cpu, err)
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil {
				return fmt.Errorf("pin thread %d to CPU %d: %w", tid, cpu, err)
			}
		}
	}
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	return nil
}
