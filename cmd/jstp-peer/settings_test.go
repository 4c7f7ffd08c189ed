package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jstp-peer/jstp-peer/mesh"
)

// TestMain keeps the tests hermetic: no JSTP_PEER_* variable of the
// developer's shell and no config file of theirs (found in the default
// data directory) may change what the commands do, so the data directory
// defaults to an empty one. Child processes inherit the environment. (HOME
// stays: the go tool finds its caches through it.)
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, envPrefix) {
			os.Unsetenv(name)
		}
	}
	dir, err := os.MkdirTemp("", "jstp-peer-test-data-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv(envName(keyDataDir), dir)
	testBinDir = filepath.Join(dir, "bin")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testBinDir is where testBinary builds the command.
var testBinDir string

func TestParseConfig(t *testing.T) {
	good := `{
  "_comment": "anything",
  "_listen": "comments are keys with a leading underscore",
  "listen": ["/ip4/127.0.0.1/tcp/0"],
  "gateway-ws": "",
  "no-mdns": true
}`
	values, err := parseConfig([]byte(good))
	if err != nil {
		t.Fatalf("good config: %v", err)
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if strings.Join(keys, " ") != "gateway-ws listen no-mdns" {
		t.Fatalf("keys = %v", keys)
	}
	for _, tc := range []struct{ name, text, says string }{
		{"not JSON", `listen = x`, "not JSON"},
		{"array", `[]`, "want a JSON object"},
		{"unknown key", `{"listn": []}`, `unknown key "listn"`},
		{"config is not a file key", `{"config": "x"}`, `unknown key "config"`},
		{"duplicate", `{"dht": "auto", "dht": "server"}`, `key "dht" given twice`},
		{"trailing text", `{} {}`, "text after the JSON object"},
		{"truncated", `{"dht": "auto"`, "not JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %v, want one saying %q", err, tc.says)
			}
		})
	}
}

// resolveWith parses args into a settings with every key registered and
// resolves it against env.
func resolveWith(t *testing.T, args []string, env map[string]string) (*settings, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	s := newSettings()
	s.register(fs, allSettingKeys...)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return s, s.resolve(func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
}

func TestSettingsPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, configFileName)
	if err := os.WriteFile(cfg, []byte(`{
  "listen": ["/ip4/127.0.0.1/tcp/1111"],
  "bootstrap": "/ip4/127.0.0.1/tcp/2222/p2p/12D3KooWGRUVh8Mrz8kDBQt5X2bAqxeT1pHjuvkB4W2ZXBnAfXQM",
  "gateway-tcp": "127.0.0.1:3333",
  "gateway-ws": "127.0.0.1:4444",
  "dht": "client",
  "no-forward": true
}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"JSTP_PEER_DATA_DIR":    dir, // the config file is found through it
		"JSTP_PEER_GATEWAY_TCP": "127.0.0.1:5555",
		"JSTP_PEER_GATEWAY_WS":  "", // set but empty: disables
		"JSTP_PEER_DHT":         "server",
		"JSTP_PEER_PROVIDE":     "a.example, b.example",
		"JSTP_PEER_NO_MDNS":     "true",
	}
	s, err := resolveWith(t, []string{"--dht", "auto", "--listen", "/ip4/127.0.0.1/tcp/7,/ip4/127.0.0.1/tcp/8", "--listen", "/ip4/127.0.0.1/tcp/9"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if s.configFile != cfg {
		t.Errorf("config file %q, want %q", s.configFile, cfg)
	}
	for _, tc := range []struct {
		key, want, src string
	}{
		{keyDHT, "auto", srcFlag},                                      // flag over env over file
		{keyGatewayTCP, "127.0.0.1:5555", "env JSTP_PEER_GATEWAY_TCP"}, // env over file
		{keyGatewayWS, "", "env JSTP_PEER_GATEWAY_WS"},
		{keyLogLevel, "info", srcDefault},
		{keyDataDir, dir, "env JSTP_PEER_DATA_DIR"},
	} {
		if got := s.String(tc.key); got != tc.want || s.Source(tc.key) != tc.src {
			t.Errorf("%s = %q from %q, want %q from %q", tc.key, got, s.Source(tc.key), tc.want, tc.src)
		}
	}
	if got := s.List(keyListen); strings.Join(got, " ") != "/ip4/127.0.0.1/tcp/7 /ip4/127.0.0.1/tcp/8 /ip4/127.0.0.1/tcp/9" {
		t.Errorf("listen = %q: repeated and comma-separated flags add up and replace the file's", got)
	}
	if got := s.List(keyProvide); strings.Join(got, " ") != "a.example b.example" || !s.Explicit(keyProvide) {
		t.Errorf("provide = %q", got)
	}
	if got := s.List(keyBootstrap); len(got) != 1 || s.Source(keyBootstrap) != "file "+cfg {
		t.Errorf("bootstrap = %q from %q: a single string is a one-element list", got, s.Source(keyBootstrap))
	}
	if !s.Bool(keyNoForward) || !s.Bool(keyNoMDNS) {
		t.Errorf("no-forward %v (file), no-mdns %v (env): want both true", s.Bool(keyNoForward), s.Bool(keyNoMDNS))
	}
	if via := viaAddr(s); via != "127.0.0.1:5555" {
		t.Errorf("via = %q: without a via setting, a configured gateway-tcp is where the peer is", via)
	}

	// Defaults alone.
	s, err = resolveWith(t, []string{"--data-dir", t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.List(keyListen), mesh.DefaultListenAddrs) || s.String(keyGatewayTCP) != mesh.DefaultGatewayTCP ||
		s.String(keyGatewayWS) != mesh.DefaultGatewayWS || s.Explicit(keyListen) || s.configFile != "" {
		t.Errorf("defaults: listen %q tcp %q ws %q", s.List(keyListen), s.String(keyGatewayTCP), s.String(keyGatewayWS))
	}
	if via := viaAddr(s); via != mesh.DefaultGatewayTCP {
		t.Errorf("via = %q, want the default gateway", via)
	}
}

func TestSettingsErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"listen": 5}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		says string
	}{
		{"bad dht flag", []string{"--data-dir", dir, "--dht", "both"}, nil, `--dht: dht "both"`},
		{"bad dht env", []string{"--data-dir", dir}, map[string]string{"JSTP_PEER_DHT": "x"}, "JSTP_PEER_DHT"},
		{"bad log level", []string{"--data-dir", dir, "--log-level", "loud"}, nil, `log level "loud"`},
		{"bad bool env", []string{"--data-dir", dir}, map[string]string{"JSTP_PEER_NO_MDNS": "maybe"}, "want true or false"},
		{"missing named config", []string{"--config", filepath.Join(dir, "none.json")}, nil, "no such file"},
		{"wrong type in file", []string{"--config", bad}, nil, `"listen" must be an array of strings`},
		{"bad log format", []string{"--data-dir", dir, "--log-format", "yaml"}, nil, `--log-format: log format "yaml": want text or json`},
		{"bad listen", []string{"--data-dir", dir, "--listen", "/ip4/1.2.3/tcp/1"}, nil, `--listen: listen "/ip4/1.2.3/tcp/1": not a multiaddr (invalid value "1.2.3" for protocol ip4)`},
		{"bad announce env", []string{"--data-dir", dir}, map[string]string{"JSTP_PEER_ANNOUNCE": "nope"}, `JSTP_PEER_ANNOUNCE: announce "nope": not a multiaddr (must begin with /)`},
		{"bootstrap without a peer", []string{"--data-dir", dir, "--bootstrap", "/ip4/127.0.0.1/tcp/4033"}, nil, "does not end in /p2p/<peer id>"},
		{"bad provide", []string{"--data-dir", dir, "--provide", "a/b"}, nil, `--provide: provide "a/b"`},
		{"bad via", []string{"--data-dir", dir, "--via", "localhost"}, nil, `--via: via "localhost": want HOST:PORT`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := resolveWith(t, tc.args, tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %v, want one saying %q", err, tc.says)
			}
		})
	}
}

func TestConfigInitAndShow(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := cli(t, "", "config", "init", "--data-dir", dir, "--listen", "/ip4/127.0.0.1/tcp/4555", "--no-mdns")
	path := filepath.Join(dir, configFileName)
	if code != 0 || !strings.Contains(out, path) {
		t.Fatalf("config init: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The file documents itself and is plain JSON.
	var m map[string]any
	if err := json.Unmarshal(text, &m); err != nil {
		t.Fatalf("config file is not JSON: %v\n%s", err, text)
	}
	for _, k := range []string{"_comment", "_listen", "listen", "gateway-tcp", "no-mdns", "dht", "via"} {
		if _, ok := m[k]; !ok {
			t.Errorf("config file has no %q:\n%s", k, text)
		}
	}
	if m["no-mdns"] != true || m["data-dir"] != "" {
		t.Errorf("no-mdns %v, data-dir %q:\n%s", m["no-mdns"], m["data-dir"], text)
	}

	// A second init does not overwrite; --force does.
	code, _, errOut = cli(t, "", "config", "init", "--data-dir", dir)
	if code != exitFail || !strings.Contains(errOut, "--force") {
		t.Fatalf("second init: exit %d, stderr %q", code, errOut)
	}

	// show reads the file back, with sources.
	code, out, errOut = cli(t, "", "config", "show", "--data-dir", dir, "--dht", "server")
	if code != 0 {
		t.Fatalf("show: exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"config file: " + path, "/ip4/127.0.0.1/tcp/4555", "file " + path, "server", "flag"} {
		if !strings.Contains(out, want) {
			t.Errorf("show output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = cli(t, "", "config", "show", "--json", "--data-dir", dir)
	values, err := parseConfig([]byte(out))
	if code != 0 || err != nil {
		t.Fatalf("show --json: exit %d, %v\n%s", code, err, out)
	}
	if string(values["no-mdns"]) != "true" {
		t.Errorf("show --json: no-mdns %s", values["no-mdns"])
	}

	code, out, _ = cli(t, "", "config", "init", "--data-dir", dir, "--force")
	text, _ = os.ReadFile(path)
	if code != 0 || strings.Contains(string(text), "4555") {
		t.Fatalf("init --force: exit %d %q; it starts from the defaults:\n%s", code, out, text)
	}

	for _, args := range [][]string{{"config"}, {"config", "frob"}, {"config", "show", "extra"}} {
		if code, _, errOut := cli(t, "", args...); code != exitUsage || errOut == "" {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a reason", args, code, errOut)
		}
	}
}

func TestParseArgsInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  string
		via  string
	}{
		{[]string{"jstp:///a", "--via", "x:1"}, "jstp:///a", "x:1"},
		{[]string{"--via", "x:1", "jstp:///a"}, "jstp:///a", "x:1"},
		{[]string{"a", "--via=x:1", "b"}, "a b", "x:1"},
		{[]string{"--", "--via", "x:1"}, "--via x:1", ""},
		{[]string{"a", "--", "-b"}, "a -b", ""},
		{[]string{"-"}, "-", ""},
	} {
		fs := newFlagSet("t", "t", "", "")
		via := fs.String("via", "", "")
		pos, code, ok := parseArgs(fs, nil, tc.args, io.Discard, io.Discard)
		if !ok || strings.Join(pos, " ") != tc.pos || *via != tc.via {
			t.Errorf("%q: positional %q, via %q (ok %v, code %d); want %q, %q", tc.args, pos, *via, ok, code, tc.pos, tc.via)
		}
	}
}

func TestID(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := cli(t, "", "id", "--data-dir", dir, "--json", "--listen", "/ip4/127.0.0.1/tcp/4033")
	if code != 0 {
		t.Fatalf("id: exit %d, stderr %q", code, errOut)
	}
	var got struct {
		ID    string   `json:"id"`
		Addrs []string `json:"addrs"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("id --json: %v\n%s", err, out)
	}
	if !strings.HasPrefix(got.ID, "12D3KooW") || len(got.Addrs) != 1 || got.Addrs[0] != "/ip4/127.0.0.1/tcp/4033/p2p/"+got.ID {
		t.Fatalf("id --json = %s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "identity.key")); err != nil {
		t.Fatalf("no key created: %v", err)
	}
	// The key is kept: the same id again, now in the human form with the
	// default addresses.
	// default addresses, 0.0.0.0 expanded (loopback is always there).
	code, out, _ = cli(t, "", "id", "--data-dir", dir)
	if code != 0 || !strings.HasPrefix(out, "peer id: "+got.ID+"\n") || !strings.Contains(out, "/ip4/127.0.0.1/udp/4033/quic-v1/p2p/"+got.ID) ||
		strings.Contains(out, "0.0.0.0") {
		t.Fatalf("id: exit %d\n%s", code, out)
	}
	// Announced addresses are what others should dial.
	code, out, _ = cli(t, "", "id", "--data-dir", dir, "--announce", "/dns4/peer.example/tcp/4033")
	if code != 0 || !strings.Contains(out, "  /dns4/peer.example/tcp/4033/p2p/"+got.ID+"\n") || strings.Contains(out, "127.0.0.1") {
		t.Fatalf("id --announce: exit %d\n%s", code, out)
	}
	code, _, errOut = cli(t, "", "id", "--data-dir", dir, "--listen", "not-a-multiaddr")
	if code != exitUsage || !strings.Contains(errOut, "--listen") {
		t.Fatalf("bad listen: exit %d, stderr %q", code, errOut)
	}
}

func TestBodyArg(t *testing.T) {
	file := filepath.Join(t.TempDir(), "b.json")
	if err := os.WriteFile(file, []byte(` {"a": 1}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		`{"size":"L"}`: `{"size":"L"}`,
		`42`:           `42`,
		`hello world`:  `"hello world"`,
		``:             `""`,
		`{broken`:      `"{broken"`,
		"@" + file:     `{"a": 1}`,
	} {
		got, err := bodyArg(in)
		if err != nil || string(got) != want {
			t.Errorf("bodyArg(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
}
