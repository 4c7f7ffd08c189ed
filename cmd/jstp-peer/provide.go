package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
	"github.com/jstp-peer/jstp-peer/routing"
)

const provideExamples = `  jstp-peer provide menu.example                   from now on, until the peer stops
  providing: menu.example
  jstp-peer unprovide menu.example
  no longer providing: menu.example (records already in the DHT expire within 48 h)
`

func runProvide(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	return provideCmd(ctx, "provide", args, stdout, stderr)
}

func runUnprovide(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	return provideCmd(ctx, "unprovide", args, stdout, stderr)
}

// provideCmd is provide and unprovide: PUT or DELETE ["names", NAME] for
// each NAME, on the local peer.
func provideCmd(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) int {
	description := `Make the local peer provide service names from now on, as --provide does
when it starts: it announces each NAME in the DHT, so that dispatches to
the name reach it, and lists it in its saturation reports. The names last
until the peer stops; put them in --provide (or the config file) to keep
them. When the DHT cannot be reached yet, the peer provides the name at
once and keeps announcing it in the background.`
	method := dispatch.PUT
	if cmd == "unprovide" {
		method = dispatch.DELETE
		description = `Make the local peer stop providing service names: it stops announcing
them and processing dispatches to them. Records already in the DHT cannot be
withdrawn; they expire within 48 hours, and until then other peers may
still send to this one, which answers 404.`
	}
	fs := newFlagSet(cmd, "jstp-peer "+cmd+" NAME... [flags]", description+`

The local peer is asked with `+method+` ["names", NAME] through its TCP
gateway (--via); only clients on its own machine may ask.

Exit status: 0 done for every NAME; 1 refused for one (the reason on
standard error), or no peer at --via; 2 a usage error. Every flag can
also be set with JSTP_PEER_<FLAG>.`, provideExamples)
	s := newSettings()
	s.register(fs, keyVia, keyConfig)
	timeout := fs.Duration("timeout", defaultTimeout, "how long to wait for each answer")
	pos, code, ok := parseArgs(fs, s, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return usageError(fs, stderr, "want at least one NAME")
	}
	if *timeout <= 0 {
		return usageError(fs, stderr, "--timeout must be positive")
	}
	for _, name := range pos {
		if err := routing.ValidName(name); err != nil {
			return usageError(fs, stderr, "%q is not a service name (1 to %d characters without white space, \"/\" or \":\")", name, routing.MaxNameLen)
		}
	}
	l, code, ok := dialLocal(ctx, cmd, s, *timeout, stderr)
	if !ok {
		return code
	}
	defer l.Close()
	status := exitOK
	for _, name := range pos {
		a, answer, code, ok := l.ask(ctx, dispatch.New(method, "names", name))
		if !ok {
			return code
		}
		if answer != 200 {
			status = fail(stderr, cmd, exitFail, "%s", bodyText(a.Body))
			continue
		}
		if cmd == "unprovide" {
			fmt.Fprintf(stdout, "no longer providing: %s (records already in the DHT expire within 48 h)\n", name)
			continue
		}
		var info node.ProvideInfo
		if err := json.Unmarshal(a.Body, &info); err != nil {
			return fail(stderr, cmd, exitFail, "PUT /names/%s answered something unexpected: %s", name, bodyText(a.Body))
		}
		if info.Announced {
			fmt.Fprintf(stdout, "providing: %s\n", name)
		} else {
			fmt.Fprintf(stdout, "providing: %s (not announced yet: %s)\n", name, info.Error)
		}
	}
	return status
}
