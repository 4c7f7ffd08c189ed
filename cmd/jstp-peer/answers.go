package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
)

// defaultTimeout bounds the wait for answers: the engine's 10 s answer
// timeout, after which its 504s come, and a second for them to arrive.
const defaultTimeout = node.DefaultAnswerTimeout + time.Second

// answerResult is what a request collected.
type answerResult struct {
	codes  []int // one per answer, in arrival order
	first  *dispatch.Dispatch
	closed bool // the connection ended before the transaction did
}

// ok reports success: at least one answer, all of them 2xx.
func (r answerResult) ok() bool {
	if len(r.codes) == 0 {
		return false
	}
	for _, c := range r.codes {
		if c < 200 || c > 299 {
			return false
		}
	}
	return true
}

// request sends d through the client and collects its answers, calling
// onAnswer for each as it arrives and onEvent for anything else the peer
// sends meanwhile (nil drops it). It returns ctx.Err() when ctx was
// cancelled rather than timed out.
func request(ctx context.Context, c *node.Client, d *dispatch.Dispatch, timeout time.Duration, onAnswer func(*dispatch.Dispatch, int), onEvent func(*dispatch.Dispatch)) (answerResult, error) {
	var res answerResult
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	answers, err := c.Request(rctx, d)
	if err != nil {
		return res, err
	}
	events := c.Events()
	for {
		select {
		case a, ok := <-answers:
			if !ok {
				select {
				case <-c.Ended():
					res.closed = true
				default:
				}
				if errors.Is(ctx.Err(), context.Canceled) {
					return res, ctx.Err()
				}
				return res, nil
			}
			code, _, _, _ := a.AnswerInfo()
			if res.first == nil {
				res.first = a
			}
			res.codes = append(res.codes, code)
			if onAnswer != nil {
				onAnswer(a, code)
			}
		case e, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if onEvent != nil {
				onEvent(e)
			}
		}
	}
}

// answerText is a short description of an answer for messages on
// stderr: "404 nothing is bound to GET /x".
func answerText(d *dispatch.Dispatch, code int) string {
	var msg string
	if d.Exception != nil {
		msg = d.Exception.Message
	} else if len(d.Body) > 0 {
		msg = bodyText(d.Body)
	}
	if msg == "" {
		return itoa(code)
	}
	return itoa(code) + " " + msg
}

// dial connects to the local peer's gateway; what the client cannot read
// is reported on stderr.
func dial(ctx context.Context, via string, stderr io.Writer) (*node.Client, error) {
	return node.Dial(ctx, via, node.ClientConfig{
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
}
