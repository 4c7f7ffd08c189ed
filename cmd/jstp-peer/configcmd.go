package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

const configExamples = `  jstp-peer config init                         write ~/.config/jstp-peer/config.json
  jstp-peer config init --data-dir /tmp/b --listen /ip4/0.0.0.0/tcp/4034
  jstp-peer config init --force                 start over from the defaults
  jstp-peer config show                         effective settings and their sources
  JSTP_PEER_DHT=server jstp-peer config show --json
`

// configHeader is the first comment of a config file.
const configHeader = "jstp-peer configuration (docs/cli.md). Keys are the flags of `jstp-peer up`; keys starting with \"_\" are comments. A flag or a JSTP_PEER_* environment variable overrides a key; a missing key takes the built-in default. `jstp-peer config show` prints the effective settings."

// allSettingKeys are the keys config init and show take as flags.
var allSettingKeys = []string{keyDataDir, keyConfig, keyListen, keyAnnounce, keyBootstrap, keyProvide, keyGatewayTCP,
	keyGatewayWS, keyNoMDNS, keyNoForward, keyOnCritical, keyLogLevel, keyLogFormat, keyDHT, keyBalance, keyMetrics,
	keyUI, keyOrigin, keyAccess, keyLinkRate, keyVia}

func runConfig(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	usage := func(w io.Writer) {
		fmt.Fprint(w, `Usage: jstp-peer config init|show [flags]

Write or inspect the config file, DATA-DIR/config.json unless --config
names another. It is a JSON object whose keys are the flags of
"jstp-peer up" (listen, bootstrap, gateway-tcp, ...); keys that start with
"_" are comments, which "config init" writes next to every key. Values
come from flags, then JSTP_PEER_<FLAG> environment variables, then the
file, then the defaults.

  init  write a commented config file with the effective settings of the
        flags and environment (defaults for the rest); --force overwrites
  show  print the effective settings and where each comes from; --json
        prints them as a config file (without comments)

Exit status: 0 done; 1 the file cannot be written (or exists, without
--force); 2 a usage or configuration error.

Examples:
`+configExamples)
	}
	if len(args) == 0 {
		fmt.Fprintln(stderr, "jstp-peer config: want a subcommand, init or show (see `jstp-peer config --help`)")
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return exitOK
	case "init":
		return configInit(args[1:], stdout, stderr)
	case "show":
		return configShow(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "jstp-peer config: unknown subcommand %q: want init or show (see `jstp-peer config --help`)\n", args[0])
	return exitUsage
}

func configInit(args []string, stdout, stderr io.Writer) int {
	fset := newFlagSet("config init", "jstp-peer config init [flags]",
		`Write a commented config file: DATA-DIR/config.json, or --config FILE.
The values are those of the flags and JSTP_PEER_* environment variables
given, defaults for the rest; an existing file is not read. The file is not
overwritten unless --force.`, configExamples)
	s := newSettings()
	s.skipFile = true
	s.register(fset, allSettingKeys...)
	force := fset.Bool("force", false, "overwrite an existing file")
	pos, code, ok := parseArgs(fset, s, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(fset, stderr, "want no arguments, got %q", pos)
	}
	var path, dataDir string // dataDir "": found where the file is, no need to say
	if s.Explicit(keyConfig) && s.String(keyConfig) != "" {
		path = s.String(keyConfig)
		if abs, err := filepath.Abs(s.String(keyDataDir)); err == nil && s.Explicit(keyDataDir) && s.String(keyDataDir) != "" {
			dataDir = abs
		}
	} else {
		dir, err := s.DataDir()
		if err != nil {
			return fail(stderr, "config init", exitUsage, "%v", err)
		}
		path = filepath.Join(dir, configFileName)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fail(stderr, "config init", exitFail, "%v", err)
	}
	mode := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if !*force {
		mode |= os.O_EXCL
	}
	f, err := os.OpenFile(path, mode, 0o644)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fail(stderr, "config init", exitFail, "%s exists; pass --force to overwrite it", path)
		}
		return fail(stderr, "config init", exitFail, "%v", err)
	}
	_, werr := f.Write(renderConfig(s, true, dataDir))
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fail(stderr, "config init", exitFail, "writing %s: %v", path, werr)
	}
	fmt.Fprintf(stdout, "wrote %s\n", path)
	return exitOK
}

func configShow(args []string, stdout, stderr io.Writer) int {
	fset := newFlagSet("config show", "jstp-peer config show [flags]",
		`Print the effective settings after flags, JSTP_PEER_* environment
variables, the config file and the defaults, each with its source.`, configExamples)
	s := newSettings()
	s.register(fset, allSettingKeys...)
	asJSON := fset.Bool("json", false, "print the settings as a config file (JSON, no comments)")
	pos, code, ok := parseArgs(fset, s, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(fset, stderr, "want no arguments, got %q", pos)
	}
	if *asJSON {
		_, _ = stdout.Write(renderConfig(s, false, s.String(keyDataDir)))
		return exitOK
	}
	switch {
	case s.configFile != "":
		fmt.Fprintf(stdout, "config file: %s\n", s.configFile)
	case s.configLooked != "":
		fmt.Fprintf(stdout, "config file: none (%s does not exist)\n", s.configLooked)
	default:
		fmt.Fprintln(stdout, "config file: none")
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	for _, def := range settingDefs {
		if def.key == keyConfig {
			continue
		}
		var lines []string
		switch def.kind {
		case kindString:
			v := s.String(def.key)
			if v == "" {
				v = "(empty)"
			}
			lines = []string{v}
		case kindList:
			lines = s.List(def.key)
			if len(lines) == 0 {
				lines = []string{"(none)"}
			}
		case kindBool:
			lines = []string{fmt.Sprint(s.Bool(def.key))}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", def.key, lines[0], s.Source(def.key))
		for _, l := range lines[1:] {
			fmt.Fprintf(tw, "\t%s\t\n", l)
		}
	}
	_ = tw.Flush()
	return exitOK
}

// renderConfig writes the settings as a config file, keys in the order of
// settingDefs, each after its "_key" comment when comments is set. The
// data-dir key gets dataDir ("" leaves it to the default).
func renderConfig(s *settings, comments bool, dataDir string) []byte {
	var b bytes.Buffer
	b.WriteString("{\n")
	first := true
	entry := func(key string, value []byte) {
		if !first {
			b.WriteString(",\n")
		}
		first = false
		k, _ := json.Marshal(key)
		fmt.Fprintf(&b, "  %s: %s", k, value)
	}
	str := func(v string) []byte {
		out, _ := json.Marshal(v)
		return out
	}
	if comments {
		entry("_comment", str(configHeader))
	}
	for _, def := range settingDefs {
		if def.key == keyConfig {
			continue
		}
		if comments {
			entry("_"+def.key, str(def.comment))
		}
		switch def.kind {
		case kindString:
			v := s.String(def.key)
			if def.key == keyDataDir {
				v = dataDir
			}
			entry(def.key, str(v))
		case kindList:
			list := s.List(def.key)
			if len(list) == 0 {
				entry(def.key, []byte("[]"))
				continue
			}
			elems := make([]string, len(list))
			for i, e := range list {
				elems[i] = "    " + string(str(e))
			}
			entry(def.key, []byte("[\n"+strings.Join(elems, ",\n")+"\n  ]"))
		case kindBool:
			entry(def.key, []byte(fmt.Sprint(s.Bool(def.key))))
		}
	}
	b.WriteString("\n}\n")
	return b.Bytes()
}
