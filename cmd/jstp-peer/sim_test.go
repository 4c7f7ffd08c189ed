package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSimList(t *testing.T) {
	code, out, errOut := cli(t, "", "sim", "list")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, name := range []string{"load-spreading", "churn", "fan-out", "resolution", "autoscale", "partition", "security"} {
		if !strings.Contains(out, "\n"+name+" ") {
			t.Errorf("sim list does not show %s:\n%s", name, out)
		}
	}
}

func TestSimUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sim"}, "want one scenario"},
		{[]string{"sim", "no-such-scenario"}, `unknown scenario "no-such-scenario"`},
		{[]string{"sim", "churn", "--peers", "-3"}, "--peers must be positive"},
		{[]string{"sim", "churn", "--network", "carrier-pigeon"}, "want simnet or loopback"},
		{[]string{"sim", "churn", "fan-out"}, "want one scenario"},
	} {
		code, _, errOut := cli(t, "", tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, exitUsage, tc.want)
		}
	}
}

// TestSimFanOut runs a real (wall-clock) simulation end to end: five
// subscribers on the simulated network, the summary on stdout, progress
// on stderr, the files in --out.
func TestSimFanOut(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	code, out, errOut := cli(t, "", "sim", "fan-out", "--short", "--peers", "5", "--seed", "3", "--out", dir)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{"fan-out: seed 3, 6 peers", "JSTP BIND", "delivery ratio of JSTP events", "report: " + filepath.Join(dir, "report.html")} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "JSTP events") {
		t.Errorf("no progress on stderr:\n%s", errOut)
	}
	b, err := os.ReadFile(filepath.Join(dir, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Scenario string `json:"scenario"`
		Seed     uint64 `json:"seed"`
		Files    []string
	}
	if err := json.Unmarshal(b, &res); err != nil || res.Scenario != "fan-out" || res.Seed != 3 {
		t.Fatalf("result.json: %+v, %v", res, err)
	}
	for _, f := range append(res.Files, "fan-out.log") {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
}
