package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/jstp-peer/jstp-peer/identity"
	"github.com/jstp-peer/jstp-peer/mesh"
	"github.com/jstp-peer/jstp-peer/routing"
)

// The peer settings: what `up` needs to start a peer, plus where the
// network commands (send, bind, peers) find one. Each setting is a flag,
// an environment variable JSTP_PEER_<KEY> and a key of the config file,
// and its value comes from the first of those that sets it, then the
// built-in default:
//
//	flag > environment > config file > default
//
// The config file is JSON whose keys are the flag names; keys that start
// with "_" are comments (JSON has none of its own), so a file written by
// `config init` documents itself and is still read by any JSON tool.

// envPrefix starts every environment variable the commands read.
const envPrefix = "JSTP_PEER_"

// configFileName is the config file looked for in the data directory.
const configFileName = "config.json"

// envName returns the environment variable of a flag or setting:
// "gateway-tcp" is JSTP_PEER_GATEWAY_TCP.
func envName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
}

type settingKind int

const (
	kindString settingKind = iota
	kindList               // repeatable flag, comma-separated in the environment
	kindBool
)

// settingDef describes one setting.
type settingDef struct {
	key     string
	kind    settingKind
	usage   string // flag help, the value's name in backquotes
	comment string // the config file's "_key" comment
}

// Setting keys.
const (
	keyDataDir    = "data-dir"
	keyConfig     = "config"
	keyListen     = "listen"
	keyAnnounce   = "announce"
	keyBootstrap  = "bootstrap"
	keyProvide    = "provide"
	keyGatewayTCP = "gateway-tcp"
	keyGatewayWS  = "gateway-ws"
	keyNoMDNS     = "no-mdns"
	keyNoForward  = "no-forward"
	keyOnCritical = "on-critical"
	keyLogLevel   = "log-level"
	keyLogFormat  = "log-format"
	keyDHT        = "dht"
	keyVia        = "via"
	keyBalance    = "balance"
	keyMetrics    = "metrics"
	keyUI         = "ui"
	keyOrigin     = "gateway-origin"
	keyAccess     = "access"
	keyLinkRate   = "link-rate"
)

// settingDefs lists every setting in the order config files and
// `config show` present them.
var settingDefs = []settingDef{
	{keyDataDir, kindString,
		"data directory `DIR`: the identity key (created on first run) and\nconfig.json (default: the user config directory + /jstp-peer)",
		"Directory of the identity key (identity.key, created on first run). Empty: the default, the user config directory + /jstp-peer (~/.config/jstp-peer on Linux). A config file is found in the data directory, so this key only matters in a file given with --config."},
	{keyConfig, kindString,
		"config `FILE` (default: DATA-DIR/config.json when it exists)",
		""}, // not a file key: a config file does not name another
	{keyListen, kindList,
		"`MULTIADDR` to listen on, repeatable (default: TCP and QUIC on port 4033,\nIPv4 and IPv6; when 4033 is taken and no --listen is given, a free port)",
		"Multiaddrs the peer listens on. Empty: TCP and QUIC on port 4033 on every IPv4 and IPv6 interface, falling back to free ports when 4033 is taken. Port 0 picks a free port."},
	{keyAnnounce, kindList,
		"`MULTIADDR` to announce to other peers instead of the listen addresses\n(a port forwarded by hand); repeatable",
		"Multiaddrs announced to other peers instead of the listen addresses and what NAT traversal discovers, for a port forwarded by hand. Empty: automatic."},
	{keyBootstrap, kindList,
		"`MULTIADDR` of a peer to join the mesh through, ending in /p2p/<peer id>;\nrepeatable",
		"Multiaddrs of peers to join the mesh through, each ending in /p2p/<peer id> (as `jstp-peer id` and `jstp-peer up` print them)."},
	{keyProvide, kindList,
		"service `NAME` this peer announces in the DHT; dispatches to it are\nprocessed here; repeatable",
		"Service names this peer announces through the DHT; a dispatch whose host is one of them is processed here. Several peers may provide one name (replicas)."},
	{keyGatewayTCP, kindString,
		"classic TCP gateway `ADDR` (newline-delimited JSON); empty disables it;\nwhen the default port is taken, a free port on 127.0.0.1",
		"Address of the classic TCP gateway (one JSON dispatch per line), where `jstp-peer send`, `bind` and `peers` and classic JSTP engines connect. Empty string: no TCP gateway."},
	{keyGatewayWS, kindString,
		"classic WebSocket gateway `ADDR`; empty disables it; when the default\nport is taken, a free port on 127.0.0.1",
		"Address of the classic WebSocket gateway (one dispatch per text message), for browsers and classic engines. Empty string: no WebSocket gateway."},
	{keyNoMDNS, kindBool,
		"do not discover peers on the local network with mDNS",
		"true: do not discover peers on the local network with multicast DNS."},
	{keyNoForward, kindBool,
		"refuse to be a gateway: dispatches for other hosts are answered 502",
		"true: refuse to forward dispatches for other hosts (they are answered 502 Not Gateway)."},
	{keyOnCritical, kindString,
		"shell `COMMAND` run when a peer turns critical, with the event as JSON\non standard input (for example to start another replica)",
		"Shell command run (sh -c) each time a peer of the mesh, this one included, reports itself critical; the event (the peer's saturation report) is its standard input. At most one runs at a time, for at most a minute."},
	{keyLogLevel, kindString,
		"log `LEVEL`: debug, info, warn or error (logs go to standard error)",
		"Log level on standard error: debug, info, warn or error."},
	{keyLogFormat, kindString,
		"log `FORMAT`: text (key=value lines) or json (one JSON object per line);\ndispatches in logs are written in the HTTP-like notation",
		"Log format on standard error: text (key=value lines) or json (one JSON object per line). Dispatches in logs are written in the HTTP-like notation."},
	{keyDHT, kindString,
		"DHT `MODE`: auto (serve the DHT only when publicly reachable), server\nor client",
		"Kademlia DHT mode: auto (serve only while publicly reachable), server (always; for bootstrap peers and LAN or loopback meshes) or client."},
	{keyBalance, kindString,
		"replica `POLICY` for service names: hot-cold (default), random,\nround-robin, weighted-random or least-saturated (docs/saturation.md)",
		"How a dispatch to a service name picks one of its replicas: hot-cold (the default: requests in flight and latency), random, round-robin, weighted-random (by declared capacity) or least-saturated."},
	{keyMetrics, kindString,
		"serve Prometheus metrics at http://`ADDR`/metrics (a port alone:\non 127.0.0.1); empty: off",
		"Address of the Prometheus metrics endpoint (/metrics). Empty: off. A port alone (\":9464\") listens on 127.0.0.1."},
	{keyUI, kindString,
		"serve the web view at http://`ADDR`/ (a port alone: on 127.0.0.1);\nempty: off; needs the WebSocket gateway",
		"Address of the web view (docs/operations.md). Empty: off. A port alone (\":8080\") listens on 127.0.0.1. It needs the WebSocket gateway."},
	{keyOrigin, kindList,
		"web origin `PATTERN` whose pages may use the WebSocket gateway\n(app.example.com, *.example.com); repeatable",
		"Web origins (host patterns such as app.example.com or *.example.com) whose pages may use the WebSocket gateway. Empty: pages of the gateway's own host, and the web view, only."},
	{keyAccess, kindString,
		"access rules `FILE` (default: DATA-DIR/access.json when it exists);\nreloaded when it changes and on SIGHUP",
		"File of access rules (docs/security.md): who may send what to this peer. Empty: DATA-DIR/access.json when it exists, else every dispatch is allowed. Reloaded when it changes and on SIGHUP."},
	{keyLinkRate, kindString,
		"read at most `N` dispatches per second from one peer or gateway client\n(0: no bound); a faster sender is slowed down, not dropped",
		"Dispatches per second read at most from one peer or gateway client; a faster sender is slowed down by flow control, nothing is dropped. 0 or empty: no bound (the in-flight limit still applies)."},
	{keyVia, kindString,
		"TCP gateway `ADDR` of the local peer (default: the gateway-tcp setting,\nelse 127.0.0.1:33333)",
		"Where send, bind and peers reach the local peer: the TCP gateway address of a running `jstp-peer up`. Empty: the gateway-tcp setting."},
}

func lookupDef(key string) *settingDef {
	for i := range settingDefs {
		if settingDefs[i].key == key {
			return &settingDefs[i]
		}
	}
	return nil
}

// settingDefault returns a setting's built-in default.
func settingDefault(key string) (s string, list []string, b bool) {
	switch key {
	case keyListen:
		return "", slices.Clone(mesh.DefaultListenAddrs), false
	case keyGatewayTCP:
		return mesh.DefaultGatewayTCP, nil, false
	case keyGatewayWS:
		return mesh.DefaultGatewayWS, nil, false
	case keyLogLevel:
		return "info", nil, false
	case keyLogFormat:
		return logText, nil, false
	case keyDHT:
		return "auto", nil, false
	case keyBalance:
		return routing.DefaultPolicy, nil, false
	}
	return "", nil, false
}

// Sources of a setting's value, as `config show` reports them.
const (
	srcDefault = "default"
	srcFlag    = "flag"
)

func srcEnv(key string) string { return "env " + envName(key) }

// settings holds the resolved value of every setting and where it came
// from.
type settings struct {
	str      map[string]string
	list     map[string][]string
	switches map[string]bool
	src      map[string]string // key → srcFlag, "env NAME", "file PATH" or srcDefault

	// configFile is the config file read ("" when none was); configLooked
	// is where it was looked for when none was named.
	configFile, configLooked string
	// skipFile makes resolve ignore config files (config init writes
	// one; it does not read the one it replaces).
	skipFile bool
}

func newSettings() *settings {
	return &settings{str: map[string]string{}, list: map[string][]string{}, switches: map[string]bool{}, src: map[string]string{}}
}

// String, List and Bool return a resolved value.
func (s *settings) String(key string) string { return s.str[key] }
func (s *settings) List(key string) []string { return s.list[key] }
func (s *settings) Bool(key string) bool     { return s.switches[key] }

// Source says where a setting's value came from: "flag", "env NAME",
// "file PATH" or "default".
func (s *settings) Source(key string) string { return s.src[key] }

// Explicit reports that the user chose the value (flag, environment or
// config file), so `up` must not replace it when its port is taken.
func (s *settings) Explicit(key string) bool { return s.sourced(key) && s.src[key] != srcDefault }

func (s *settings) sourced(key string) bool { return s.src[key] != "" }
func (s *settings) mark(key, src string)    { s.src[key] = src }

// settingValue is the flag.Value of one setting: values given on the
// command line go straight into the settings, marked as flags.
type settingValue struct {
	s   *settings
	def *settingDef
}

func (v settingValue) String() string {
	if v.def == nil {
		return ""
	}
	switch v.def.key {
	case keyListen:
		return "" // the usage says it; the full list is too long for help
	}
	str, list, _ := settingDefault(v.def.key)
	if v.def.kind == kindList {
		return strings.Join(list, ",")
	}
	return str
}

func (v settingValue) Set(x string) error {
	key := v.def.key
	if v.s.src[key] != srcFlag {
		// The first occurrence on the command line replaces whatever a
		// lower source would give; later ones add to it.
		delete(v.s.list, key)
		v.s.src[key] = srcFlag
	}
	switch v.def.kind {
	case kindString:
		v.s.str[key] = x
	case kindList:
		v.s.list[key] = append(v.s.list[key], splitList(x)...)
	case kindBool:
		b, err := strconv.ParseBool(x)
		if err != nil {
			return errors.New("want true or false")
		}
		v.s.switches[key] = b
	}
	return nil
}

// IsBoolFlag lets switches be given without a value (--no-mdns).
func (v settingValue) IsBoolFlag() bool { return v.def != nil && v.def.kind == kindBool }

// splitList splits a comma-separated list, trimming blanks and dropping
// empty elements, so "a, b," is [a b]. Multiaddrs and service names never
// contain commas worth keeping: the URL notation separates hosts with
// them.
func splitList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// register adds flags for the given settings to fs.
func (s *settings) register(fs *flag.FlagSet, keys ...string) {
	for _, k := range keys {
		def := lookupDef(k)
		if def == nil {
			// Keys are the constants above; a typo shows as a missing
			// flag in the command's help, which the tests check.
			continue
		}
		// The usage names the value in backquotes, which
		// flag.UnquoteUsage turns into the name shown after the flag.
		fs.Var(settingValue{s, def}, k, def.usage)
	}
}

// resolve completes the settings after the flags were parsed: the
// environment (getenv), then the config file, then the defaults. The
// config file is the "config" setting, or DATA-DIR/config.json when that
// exists. Errors name the source of the bad value.
func (s *settings) resolve(getenv func(string) (string, bool)) error {
	for _, def := range settingDefs {
		if s.sourced(def.key) {
			continue
		}
		v, ok := getenv(envName(def.key))
		if !ok {
			continue
		}
		switch def.kind {
		case kindString:
			// Set but empty counts: JSTP_PEER_GATEWAY_WS= disables the
			// WebSocket gateway as --gateway-ws "" does.
			s.str[def.key] = v
		case kindList:
			s.list[def.key] = splitList(v)
		case kindBool:
			if strings.TrimSpace(v) == "" {
				continue // an empty switch is unset, not an error
			}
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("%s=%q: want true or false", envName(def.key), v)
			}
			s.switches[def.key] = b
		}
		s.mark(def.key, srcEnv(def.key))
	}

	// The config file. Its own location cannot come from it.
	path := s.str[keyConfig]
	named := s.sourced(keyConfig)
	if !named {
		// Without a data directory (no home directory, and none given)
		// there is no default config file; commands that need the
		// directory itself say so through DataDir.
		if dir := s.dataDirForConfig(); dir != "" {
			path = filepath.Join(dir, configFileName)
			s.configLooked = path
		}
	}
	if path != "" && !s.skipFile {
		values, err := readConfigFile(path)
		switch {
		case err == nil:
			s.configFile = path
			if err := s.applyFile(path, values); err != nil {
				return err
			}
		case !named && errors.Is(err, fs.ErrNotExist):
			// No config file in the data directory: defaults.
		default:
			return err
		}
	}

	for _, def := range settingDefs {
		if s.sourced(def.key) {
			continue
		}
		str, list, b := settingDefault(def.key)
		s.str[def.key], s.list[def.key], s.switches[def.key] = str, list, b
		s.mark(def.key, srcDefault)
	}
	if s.str[keyDataDir] == "" {
		// Empty from any source means the default; it stays empty when
		// there is none, for DataDir to report.
		s.str[keyDataDir], _ = identity.DefaultDataDir()
	}
	if len(s.list[keyListen]) == 0 {
		// An empty list anywhere means "the default addresses", not
		// "listen nowhere", which would make a peer nobody can reach.
		s.list[keyListen] = slices.Clone(mesh.DefaultListenAddrs)
	}
	return s.validate()
}

// dataDirForConfig is the data directory as known before the config file
// is read: from a flag, the environment, or the default ("" when there is
// no default).
func (s *settings) dataDirForConfig() string {
	if dir := s.str[keyDataDir]; s.sourced(keyDataDir) && dir != "" {
		return dir
	}
	dir, _ := identity.DefaultDataDir()
	return dir
}

// DataDir returns the data directory, or an error saying how to name one
// when there is no default (no home directory).
func (s *settings) DataDir() (string, error) {
	if dir := s.str[keyDataDir]; dir != "" {
		return dir, nil
	}
	_, err := identity.DefaultDataDir()
	if err == nil {
		err = errors.New("empty")
	}
	return "", fmt.Errorf("no default data directory: pass --data-dir DIR or set %s (%w)", envName(keyDataDir), err)
}

// applyEnv sets the flags of fs that the command line did not set from
// their environment variables (JSTP_PEER_<FLAG>), except the settings,
// which resolve reads with their own precedence. A set but empty variable
// is ignored for these per-invocation flags.
func applyEnv(fs *flag.FlagSet, getenv func(string) (string, bool)) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var firstErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || firstErr != nil {
			return
		}
		if _, isSetting := f.Value.(settingValue); isSetting {
			return
		}
		v, ok := getenv(envName(f.Name))
		if !ok || v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			firstErr = fmt.Errorf("%s=%q: %w", envName(f.Name), v, err)
		}
	})
	return firstErr
}
