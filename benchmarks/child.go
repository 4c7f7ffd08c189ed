package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// readyTimeout bounds a child's start (a peer bootstraps within it);
// stopTimeout bounds its exit once its stdin is closed.
const (
	readyTimeout = 60 * time.Second
	stopTimeout  = 10 * time.Second
)

// child is one side of a benchmark running in its own process.
type child struct {
	role  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan []byte   // stdout lines; closed at EOF
	done  chan struct{} // closed once the process was waited for
	info  ready
	logs  *logTail

	waitErr error
}

// spawn starts this program again as role and waits for its READY line.
// The child runs in its own process group, which ctx's end kills whole.
func spawn(ctx context.Context, role string, args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, append([]string{"-role", role}, args...)...)
	setProcessGroup(cmd)
	cmd.WaitDelay = stopTimeout
	c := &child{role: role, cmd: cmd, lines: make(chan []byte), done: make(chan struct{}), logs: &logTail{role: role}}
	cmd.Stderr = c.logs
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", role, err)
	}
	go c.read(stdout)

	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case line, ok := <-c.lines:
		if !ok {
			<-c.done
			return nil, fmt.Errorf("%s exited before it was ready (%v)%s", role, c.waitErr, c.logs.tail())
		}
		rest, found := bytes.CutPrefix(line, []byte(readyPrefix))
		if !found {
			c.stop()
			return nil, fmt.Errorf("%s: expected %q, got %q", role, readyPrefix, line)
		}
		if err := json.Unmarshal(rest, &c.info); err != nil {
			c.stop()
			return nil, fmt.Errorf("%s: ready line: %w", role, err)
		}
		return c, nil
	case <-timer.C:
		c.stop()
		return nil, fmt.Errorf("%s not ready after %v%s", role, readyTimeout, c.logs.tail())
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	}
}

// read passes stdout lines on, then reaps the process: Wait must follow
// the last read from the pipe.
func (c *child) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		c.lines <- bytes.Clone(sc.Bytes())
	}
	close(c.lines)
	c.waitErr = c.cmd.Wait()
	close(c.done)
}

// do sends one command and returns the child's reply.
func (c *child) do(ctx context.Context, cmd command) (reply, error) {
	b, err := json.Marshal(cmd)
	if err != nil {
		return reply{}, err
	}
	if _, err := c.stdin.Write(append(b, '\n')); err != nil {
		return reply{}, fmt.Errorf("%s %s: %w", c.role, cmd.Op, err)
	}
	select {
	case line, ok := <-c.lines:
		if !ok {
			<-c.done
			return reply{}, fmt.Errorf("%s exited during %s (%v)%s", c.role, cmd.Op, c.waitErr, c.logs.tail())
		}
		var r reply
		if err := json.Unmarshal(line, &r); err != nil {
			return reply{}, fmt.Errorf("%s %s: reply: %w", c.role, cmd.Op, err)
		}
		if r.Err != "" {
			return r, fmt.Errorf("%s %s: %s", c.role, cmd.Op, r.Err)
		}
		return r, nil
	case <-ctx.Done():
		return reply{}, ctx.Err()
	}
}

// stop closes the child's stdin, on which it closes its peer or host and
// exits, and kills its process group if it does not exit in time.
func (c *child) stop() {
	c.stdin.Close()
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-c.done:
		return
	case <-timer.C:
	}
	killGroup(c.cmd)
	// Unblock the reader if the parent stopped reading replies.
	go func() {
		for range c.lines {
		}
	}()
	<-c.done
}

// exited reports, without waiting, whether the child has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// pid is the child's process id, for reading its memory.
func (c *child) pid() int { return c.cmd.Process.Pid }

// logTail copies a child's stderr to ours, each line prefixed with its
// role, and keeps count and the last lines for the report: the peers log
// at warn level, so every line is worth a look.
type logTail struct {
	role  string
	mu    sync.Mutex
	part  []byte
	count int
	last  []string
}

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.part = append(l.part, p...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			break
		}
		line := string(l.part[:i])
		l.part = l.part[i+1:]
		fmt.Fprintf(os.Stderr, "[%s] %s\n", l.role, line)
		l.count++
		l.last = append(l.last, line)
		if len(l.last) > 5 {
			l.last = l.last[1:]
		}
	}
	return len(p), nil
}

// lines returns how many lines the child logged and the last of them.
func (l *logTail) lines() (int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count, append([]string(nil), l.last...)
}

// tail formats the last lines for an error message.
func (l *logTail) tail() string {
	_, last := l.lines()
	if len(last) == 0 {
		return ""
	}
	return ":\n\t" + strings.Join(last, "\n\t")
}

// stopAll stops children concurrently, so a slow one does not hold up
// the others.
func stopAll(cs []*child) {
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(c.stop)
	}
	wg.Wait()
}

var errNoProc = errors.New("memory figures need /proc (Linux)")
