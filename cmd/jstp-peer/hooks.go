package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"sync"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
)

// hookTimeout bounds one run of an --on-critical command: a hook that
// hangs must not hold back the next event for ever.
const hookTimeout = time.Minute

// hook runs the --on-critical command, one run at a time whoever asks:
// a critical event, or the web view's "Add a replica".
type hook struct {
	command string
	stderr  io.Writer
	log     *slog.Logger
	mu      sync.Mutex
}

// run runs the command (sh -c) with report, a peer's saturation report,
// on its standard input; what it prints goes to standard error.
func (h *hook) run(ctx context.Context, report json.RawMessage) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, hookTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", h.command)
	cmd.Stdin = bytes.NewReader(append(report, '\n'))
	cmd.Stdout, cmd.Stderr = h.stderr, h.stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("--on-critical command: %w", err)
	}
	return nil
}

// onCritical runs the hook each time a peer reports itself critical,
// with the event's body (the peer's saturation report).
func (h *hook) onCritical(p *node.Peer) error {
	ep := dispatch.Endpoint{Method: dispatch.POST, Resource: []string{"saturation", ":peer", "critical"}}
	_, err := p.Node.Bind(ep, func(ctx context.Context, in *node.Incoming) {
		if err := h.run(ctx, in.Dispatch.Body); err != nil {
			h.log.Warn("--on-critical command failed", "peer", in.Params["peer"], "err", err, "event", in.Dispatch)
			return
		}
		h.log.Info("--on-critical command ran", "peer", in.Params["peer"])
	})
	if err != nil {
		return fmt.Errorf("--on-critical: %w", err)
	}
	return nil
}
