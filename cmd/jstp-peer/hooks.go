package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
)

// hookTimeout bounds one run of an --on-critical command: a hook that
// hangs must not hold back the next event for ever.
const hookTimeout = time.Minute

// onCritical runs command (sh -c) each time a peer reports itself
// critical, with the event's body (the peer's saturation report) on its
// standard input. The binding takes events one at a time, so at most one
// command runs at once; what it prints goes to standard error.
func onCritical(p *node.Peer, command string, stderr io.Writer, log *slog.Logger) error {
	ep := dispatch.Endpoint{Method: dispatch.POST, Resource: []string{"saturation", ":peer", "critical"}}
	_, err := p.Node.Bind(ep, func(ctx context.Context, in *node.Incoming) {
		ctx, cancel := context.WithTimeout(ctx, hookTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", "-c", command)
		cmd.Stdin = bytes.NewReader(append(in.Dispatch.Body, '\n'))
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Run(); err != nil {
			log.Warn("--on-critical command failed", "peer", in.Params["peer"], "err", err)
			return
		}
		log.Info("--on-critical command ran", "peer", in.Params["peer"])
	})
	if err != nil {
		return fmt.Errorf("--on-critical: %w", err)
	}
	return nil
}
