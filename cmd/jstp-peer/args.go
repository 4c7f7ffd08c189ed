package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// parseArgs parses the arguments of a network command: flags may come
// before, between or after the positional arguments ("send URL --via
// ADDR"), and "--" ends the flags. Then the environment fills the flags
// the command line did not set, and, when s is not nil, the settings are
// resolved (environment, config file, defaults).
//
// Help goes to stdout with status 0; a bad flag, environment variable or
// config file to stderr with status 2. When ok is false the caller
// returns code.
func parseArgs(fs *flag.FlagSet, s *settings, args []string, stdout, stderr io.Writer) (pos []string, code int, ok bool) {
	for {
		if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
			return nil, code, false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		// The flag package stops at the first non-flag argument, or
		// after "--"; in the latter case everything left is positional.
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return nil, exitUsage, false
	}
	if s != nil {
		if err := s.resolve(os.LookupEnv); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
			return nil, exitUsage, false
		}
	}
	return pos, exitOK, true
}

// fail prints one line "jstp-peer CMD: message" on stderr and returns
// code.
func fail(stderr io.Writer, cmd string, code int, format string, args ...any) int {
	msg := fmt.Sprintf(format, args...)
	// One line: multi-line causes (libp2p joins errors with newlines)
	// are folded so the message stays greppable.
	msg = strings.ReplaceAll(strings.TrimSpace(msg), "\n", "; ")
	fmt.Fprintf(stderr, "jstp-peer %s: %s\n", cmd, msg)
	return code
}

// optString is a string flag that remembers whether it was given, so an
// empty value can be told from an absent one (--body ”).
type optString struct {
	v   string
	set bool
}

func (o *optString) String() string { return o.v }
func (o *optString) Set(s string) error {
	o.v, o.set = s, true
	return nil
}

// choiceFlag is a string flag limited to a few values.
type choiceFlag struct {
	v       string
	choices []string
}

func (c *choiceFlag) String() string { return c.v }
func (c *choiceFlag) Set(s string) error {
	for _, ch := range c.choices {
		if strings.EqualFold(s, ch) {
			c.v = ch
			return nil
		}
	}
	return fmt.Errorf("want %s", orList(c.choices))
}

// orList writes "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}
