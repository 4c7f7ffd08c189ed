package main

import (
	"context"
	"io"
	"strings"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
)

// The operator commands (connect, ping, resolve, provide, unprovide) ask
// the local peer one thing at a time through its gateway; local says
// which peer, and ask sends one dispatch and reads its answer.

// local is a connection to the local peer, for one command.
type local struct {
	cmd     string // for messages: "jstp-peer CMD: ..."
	via     string
	c       *node.Client
	timeout time.Duration
	stderr  io.Writer
}

// dialLocal connects to the local peer's gateway (the via setting). When
// ok is false the failure is reported and code is the exit status.
func dialLocal(ctx context.Context, cmd string, s *settings, timeout time.Duration, stderr io.Writer) (l *local, code int, ok bool) {
	via := viaAddr(s)
	c, err := dial(ctx, via, stderr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fail(stderr, cmd, exitInterrupted, "interrupted"), false
		}
		return nil, fail(stderr, cmd, exitFail, "%s", noPeerMessage(via, err, false)), false
	}
	return &local{cmd: cmd, via: via, c: c, timeout: timeout, stderr: stderr}, exitOK, true
}

func (l *local) Close() { l.c.Close() }

// ask sends d to the local peer and returns its first answer and that
// answer's code. When ok is false nothing usable came back (no answer, a
// closed connection, Ctrl-C, a resource the peer does not serve) and the
// reason was reported; code is then the exit status. A non-2xx answer is
// returned with ok true: what it means depends on the command.
func (l *local) ask(ctx context.Context, d *dispatch.Dispatch) (a *dispatch.Dispatch, answer int, code int, ok bool) {
	res, err := request(ctx, l.c, d, l.timeout, nil, nil)
	what := d.Method + " " + resourcePath(d)
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, 0, fail(l.stderr, l.cmd, exitInterrupted, "interrupted"), false
	case err != nil:
		return nil, 0, fail(l.stderr, l.cmd, exitFail, "%s: %v", what, err), false
	case res.first == nil && res.closed:
		return nil, 0, fail(l.stderr, l.cmd, exitFail, "%s before answering", l.c.Closed()), false
	case res.first == nil:
		return nil, 0, fail(l.stderr, l.cmd, exitFail, "no answer from %s within %v", l.via, l.timeout), false
	}
	a, answer = res.first, res.codes[0]
	switch {
	case answer == 404 && strings.HasPrefix(bodyText(a.Body), "nothing is bound to"):
		// The engine's own 404: the peer predates the resource, or is a
		// classic engine.
		return nil, 0, fail(l.stderr, l.cmd, exitFail, "the peer at %s does not serve %s (an older jstp-peer, or a classic engine?)", l.via, what), false
	case answer == 403:
		return nil, 0, fail(l.stderr, l.cmd, exitFail, "the peer at %s refused: %s (reach a peer through a gateway on its own machine)", l.via, answerText(a, answer)), false
	}
	return a, answer, exitOK, true
}

// resourcePath writes a dispatch's resource as a path: /names/menu.
func resourcePath(d *dispatch.Dispatch) string {
	return "/" + strings.Join(d.ResourceText(), "/")
}
