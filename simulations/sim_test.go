package simulations

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jstp-peer/jstp-peer/routing"
)

// The scenario tests run every scenario small (Options.Short) under
// virtual time (testing/synctest): the production peers on a simulated
// network, where a second of simulated time costs only the CPU the peers
// spend in it. They assert invariants — nothing lost, every event
// delivered, orderings between policies with a wide margin — never
// timings, which belong to the reports.

// runShort runs a scenario small, under virtual time, and fails the test
// on an error or a failed invariant (Run returns ErrInvariant then). It
// also checks that the run wrote its files.
func runShort(t *testing.T, name string) *Result {
	t.Helper()
	t.Parallel()
	dir := t.TempDir()
	o := Options{Short: true, VirtualTime: true, Seed: 1, Out: dir}
	if testing.Verbose() {
		o.Log = t.Output()
	}
	var res *Result
	synctest.Test(t, func(t *testing.T) {
		base := runtime.NumGoroutine()
		defer settle(base)
		var err error
		res, err = Run(t.Context(), name, o)
		if res != nil {
			var b strings.Builder
			res.WriteText(&b)
			t.Logf("%s, %.1f s simulated, %.0f s of CPU:\n%s", name, res.Simulated, res.CPU, b.String())
		}
		switch {
		case errors.Is(err, ErrInvariant):
			t.Errorf("%s: %v", name, err)
		case err != nil:
			t.Fatalf("%s: %v", name, err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	checkFiles(t, dir, res)
	return res
}

// checkFiles checks that result.json decodes to the result, and that the
// report and every plot are there.
func checkFiles(t *testing.T, dir string, res *Result) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Scenario   string  `json:"scenario"`
		Invariants []Check `json:"invariants"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("result.json: %v", err)
	}
	if back.Scenario != res.Scenario || len(back.Invariants) != len(res.Invariants) {
		t.Fatalf("result.json says %q with %d invariants, want %q with %d", back.Scenario, len(back.Invariants), res.Scenario, len(res.Invariants))
	}
	html, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Figures {
		if _, err := os.Stat(filepath.Join(dir, f.File)); err != nil {
			t.Errorf("plot %s: %v", f.File, err)
		}
		if !strings.Contains(string(html), `src="`+f.File+`"`) {
			t.Errorf("report.html does not show %s", f.File)
		}
	}
}

// settle lets the libraries' own timers run out after the peers closed:
// synctest fails a test whose goroutines outlive it, and a few of
// gossipsub's (announcement retries) sleep up to a second without
// watching for the end of the router. Virtual time passes in steps until
// only the test's goroutines are left: inside the synctest bubble the
// Sleep below waits for nothing real, it moves the fake clock to the next
// timer, and the loop gives up after 60 s of fake time.
func settle(base int) {
	for range 600 {
		synctest.Wait()
		if runtime.NumGoroutine() <= base {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func p99(t *testing.T, res *Result, policy string) float64 {
	t.Helper()
	runs := res.Data.(map[string]any)["runs"].([]phaseResult)
	x, ok := findRun(runs, policy, 0.9, 0)
	if !ok {
		t.Fatalf("no run of %s at 90%%", policy)
	}
	if x.Latency.Count < 500 {
		t.Fatalf("%s: only %d requests measured", policy, x.Latency.Count)
	}
	return x.Latency.P99
}

func TestLoadSpreading(t *testing.T) {
	res := runShort(t, "load-spreading")
	hotCold, random := p99(t, res, routing.PolicyHotCold), p99(t, res, routing.PolicyRandom)
	weighted, oracle := p99(t, res, routing.PolicyWeightedRandom), p99(t, res, PolicyOracle)
	// Random sends a capacity-1 replica as much as a capacity-4 one, so
	// at 90% of the total the small ones are overloaded and their queues
	// grow for the whole phase: the default policy must do far better.
	if hotCold > random/2 {
		t.Errorf("hot-cold p99 %.0f ms, random %.0f ms: want hot-cold at most half of random", hotCold, random)
	}
	// The oracle sees every queue: if a policy beats it, the simulation
	// (not the policy) is wrong.
	for pol, v := range map[string]float64{routing.PolicyHotCold: hotCold, routing.PolicyRandom: random, routing.PolicyWeightedRandom: weighted} {
		if v < oracle {
			t.Errorf("%s p99 %.0f ms beats the oracle's %.0f ms", pol, v, oracle)
		}
	}
	t.Logf("p99 hot-cold / weighted-random = %.2f (goal ≤ 0.5)", hotCold/weighted)
}

func TestChurn(t *testing.T)      { runShort(t, "churn") }
func TestFanOut(t *testing.T)     { runShort(t, "fan-out") }
func TestResolution(t *testing.T) { runShort(t, "resolution") }
func TestAutoscale(t *testing.T)  { runShort(t, "autoscale") }
func TestPartition(t *testing.T)  { runShort(t, "partition") }
func TestSecurity(t *testing.T)   { runShort(t, "security") }

func TestScenariosListed(t *testing.T) {
	for _, name := range []string{"load-spreading", "churn", "fan-out", "resolution", "autoscale", "partition", "security"} {
		s, ok := Lookup(name)
		if !ok || s.Title == "" || s.Summary == "" || s.DefaultPeers <= 0 || s.PeersFlag == "" {
			t.Errorf("scenario %q: %+v", name, s)
		}
	}
	if _, err := Run(t.Context(), "no-such", Options{}); err == nil {
		t.Error("an unknown scenario ran")
	}
	if _, err := Run(t.Context(), "churn", Options{Peers: -1}); err == nil {
		t.Error("negative peers accepted")
	}
	if _, err := Run(t.Context(), "churn", Options{Network: "carrier-pigeon"}); err == nil {
		t.Error("unknown network accepted")
	}
}
