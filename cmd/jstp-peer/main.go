package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
)

// Exit statuses shared by all commands.
const (
	exitOK          = 0   // success: valid, matched, done
	exitFail        = 1   // a negative answer: invalid dispatch, no match
	exitUsage       = 2   // bad flags or arguments, unreadable input
	exitInterrupted = 130 // Ctrl-C, as shells report SIGINT
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version from the build info is shown.
var version = ""

// runFunc runs one command. args are the arguments after the command
// name; the function returns the exit status. Commands must not touch
// os.Stdin/os.Stdout/os.Stderr or call os.Exit, so tests can run them
// in-process, and must return when ctx is cancelled (Ctrl-C).
type runFunc func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int

// command is one entry of the subcommand table.
type command struct {
	name    string
	summary string // one line for "jstp-peer help"
	run     runFunc
}

// commands is the subcommand table, listed by "jstp-peer help" in this
// order. A new command is one more entry here and one more file. It is
// filled in init because "help" reads the table itself.
var commands []command

func init() {
	commands = []command{
		{"up", "run a peer of the mesh until Ctrl-C", runUp},
		{"send", "send a dispatch through the local peer and print its answers", runSend},
		{"bind", "subscribe to an endpoint and print what triggers it", runBind},
		{"peers", "list the peers the local peer is connected to", runPeers},
		{"saturation", "show the saturation of the local peer and of the peers it hears from", runSaturation},
		{"sim", "run a simulation of many peers in this process (sim list shows them)", runSim},
		{"connect", "make the local peer connect to another peer", runConnect},
		{"ping", "measure round trips from the local peer to another", runPing},
		{"resolve", "list the peers that provide a service name, with their saturation", runResolve},
		{"provide", "make the local peer provide service names from now on", runProvide},
		{"unprovide", "make the local peer stop providing service names", runUnprovide},
		{"id", "print this machine's peer id and listen addresses", runID},
		{"config", "write (init) or print (show) the config file", runConfig},
		{"check", "validate one dispatch and print it as normalised JSON", runCheck},
		{"match", "tell whether an endpoint pattern matches a dispatch", runMatch},
		{"fmt", "convert a dispatch between JSON, URL and HTTP-like notations", runFmt},
		{"completion", "print a shell completion script (bash, zsh, fish)", runCompletion},
		{"version", "print the version", runVersion},
		{"help", "show help for jstp-peer or one command", runHelp},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first Ctrl-C the default handling comes back, so a
		// second one ends a shutdown that takes too long.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches to the command named by args[0].
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	case "-version", "--version":
		name = "version"
	}
	c := lookup(name)
	if c == nil {
		fmt.Fprintf(stderr, "jstp-peer: unknown command %q%s (see `jstp-peer --help`)\n", name, suggest(name))
		return exitUsage
	}
	return c.run(ctx, args[1:], stdin, stdout, stderr)
}

// suggest names the command a mistyped one was probably meant to be:
// `; did you mean "send"?`, or nothing.
func suggest(name string) string {
	best, bestDist := "", 3 // more than two edits away is another word
	for _, c := range commands {
		if d := editDistance(strings.ToLower(name), c.name); d < bestDist {
			best, bestDist = c.name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func lookup(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

func usage(w io.Writer) {
	fmt.Fprint(w, `jstp-peer is a peer of a JSTP mesh: every peer is both client and server,
and JSTP dispatches (small JSON messages: method, resource, host chain, body)
travel between peers.

Usage:
  jstp-peer COMMAND [flags] [arguments]

Commands:
`)
	width := 0
	for _, c := range commands {
		width = max(width, len(c.name))
	}
	for _, c := range commands {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.summary)
	}
	fmt.Fprint(w, `
Run "jstp-peer help COMMAND" (or "jstp-peer COMMAND -h") for a command's
flags and examples. Flags may be written -flag or --flag.

Every flag of the network commands can also be set with the environment
variable JSTP_PEER_<FLAG> (JSTP_PEER_DATA_DIR, JSTP_PEER_LISTEN=a,b), and the
peer settings in the config file; see "jstp-peer config -h" and docs/cli.md.

Exit status: 0 success; 1 a negative outcome (a failed answer, no peer, an
invalid dispatch, no match); 2 a usage or configuration error; 130
interrupted.

Examples:
  jstp-peer up                                  terminal 1: run a peer
  jstp-peer send 'jstp:///peer'                 terminal 2: ask it who it is
  jstp-peer send 'jstp://12D3KooW.../echo/hi'   ask another peer, by peer id
  jstp-peer send 'jstp:///ip4/127.0.0.1/tcp/4033/p2p/12D3KooW.../peer'
                                                ... or by its multiaddr, pasted
  jstp-peer send 'jstp:///peer' --format body   only the answer's body
  jstp-peer bind 'POST jstp:///news/*'          watch POSTs to /news/*
  jstp-peer connect /ip4/192.0.2.7/tcp/4033/p2p/12D3KooW...
  jstp-peer provide menu.example                serve a name from now on
  jstp-peer resolve menu.example                who serves it, how loaded
  jstp-peer check dispatch.json
  echo 'jstp://pizza.com.ar/foods/pizza' | jstp-peer check
  jstp-peer fmt --to http dispatch.json
  source <(jstp-peer completion bash)           complete commands and flags
`)
}

func runHelp(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stdout)
		return exitOK
	}
	c := lookup(args[0])
	if c == nil || c.name == "help" {
		if c == nil {
			fmt.Fprintf(stderr, "jstp-peer help: unknown command %q%s (see `jstp-peer --help`)\n", args[0], suggest(args[0]))
			return exitUsage
		}
		usage(stdout)
		return exitOK
	}
	return c.run(ctx, []string{"-h"}, stdin, stdout, stderr)
}

func runVersion(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "jstp-peer version", "Print the version of this binary and of the Go toolchain that built it.", "")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	fmt.Fprintf(stdout, "jstp-peer %s\n", versionText())
	return exitOK
}

// versionText is what `version` prints after "jstp-peer ": the version
// written as GET ["peer"] reports it (0.1.0, no "v"), then the protocol,
// the toolchain and the platform. A build from a checkout has no module
// version ("(devel)"), so the engine's version stands for it; a release
// whose module version differs from the engine's names both.
func versionText() string {
	v := strings.TrimPrefix(version, "v")
	if v == "" {
		v = node.Version
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = strings.TrimPrefix(bi.Main.Version, "v")
		}
	}
	extra := ""
	if v != node.Version {
		extra = "engine " + node.Version + ", "
	}
	return fmt.Sprintf("%s (%sJSTP/%s, %s, %s/%s)", v, extra, dispatch.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// newFlagSet returns a flag set whose -h output is the usage line, the
// description, the flags and the examples, in that order.
func newFlagSet(name, usageLine, description, examples string) *flag.FlagSet {
	fs := flag.NewFlagSet("jstp-peer "+name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: %s\n\n%s\n", usageLine, description)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprint(w, "\nFlags:\n")
			printFlags(w, fs)
		}
		if examples != "" {
			fmt.Fprintf(w, "\nExamples:\n%s", examples)
		}
	}
	return fs
}

// printFlags is flag.PrintDefaults with the "--name" spelling the
// examples and docs use (the flag package accepts both).
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, help := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		help = strings.ReplaceAll(help, "\n", "\n      ")
		fmt.Fprintf(w, "%s\n      %s", line, help)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// parseFlags parses args with fs. Help goes to stdout (so it can be paged)
// and exits 0; a flag error goes to stderr with the usage and exits 2.
// When ok is false the caller returns code.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	switch {
	case err == nil:
		return exitOK, true
	case errors.Is(err, flag.ErrHelp):
		_, _ = stdout.Write(out.Bytes())
		return exitOK, false
	default:
		return usageError(fs, stderr, "%s", flagErrorText(fs, err)), false
	}
}

// The flag package's errors, which name flags the Go way (-name) and say
// "parse error" about a value.
var (
	flagInvalid = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for (?:flag )?-(\S+): (.*)$`)
	flagNoValue = regexp.MustCompile(`^flag needs an argument: -(\S+)$`)
)

// flagErrorText rewrites a flag error as the rest of the CLI speaks:
// "--timeout "soon": want a duration such as 500ms, 10s or 1m".
func flagErrorText(fs *flag.FlagSet, err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return "unknown flag --" + strings.TrimLeft(name, "-")
	}
	if m := flagNoValue.FindStringSubmatch(msg); m != nil {
		return "--" + m[1] + " needs a value"
	}
	m := flagInvalid.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	value, name, why := m[1], m[2], m[3]
	if f := fs.Lookup(name); f != nil {
		if g, ok := f.Value.(flag.Getter); ok {
			switch g.Get().(type) {
			case time.Duration:
				why = "want a duration such as 500ms, 10s or 1m"
			case int, int64, uint, uint64:
				why = "want a whole number"
			case bool:
				why = "want true or false"
			}
		}
	}
	return fmt.Sprintf("--%s %q: %s", name, value, why)
}

// usageError reports a wrong use of a command in one line, with a pointer
// to the command's help: the mistake, not sixty lines of usage above it.
func usageError(fs *flag.FlagSet, stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "%s: %s (see `%s --help`)\n", fs.Name(), fmt.Sprintf(format, args...), fs.Name())
	return exitUsage
}

// readInput reads the file named by arg, or stdin for "" and "-". It reads
// at most limit+1 bytes, so an endless stream costs no more than the limit
// and the parser still sees that the input was too large.
//
// main turns Ctrl-C into ctx's cancellation, which a read from a terminal
// would not notice, so the read runs in a goroutine and readInput returns
// ctx.Err() on cancellation. That goroutine may stay blocked on stdin; the
// process exits right after, and no read can be interrupted anyway.
func readInput(ctx context.Context, arg string, stdin io.Reader, limit int) ([]byte, error) {
	r := stdin
	if arg != "" && arg != "-" {
		f, err := os.Open(arg)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
		done <- result{data, err}
	}()
	select {
	case res := <-done:
		if res.err != nil {
			return nil, fmt.Errorf("reading %s: %w", inputName(arg), res.err)
		}
		return res.data, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("reading %s: %w", inputName(arg), ctx.Err())
	}
}

// inputFailure reports an input that could not be read and returns the
// exit status: 130 when the user interrupted, 2 otherwise.
func inputFailure(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "jstp-peer %s: %v\n", cmd, err)
	if errors.Is(err, context.Canceled) {
		return exitInterrupted
	}
	return exitUsage
}

func inputName(arg string) string {
	if arg == "" || arg == "-" {
		return "standard input"
	}
	return arg
}
