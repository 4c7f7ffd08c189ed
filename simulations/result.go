package simulations

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Result is what a scenario run produced: written as result.json, drawn
// as SVG plots and summed up in report.html.
type Result struct {
	Scenario string    `json:"scenario"`
	Summary  string    `json:"summary"`
	Seed     uint64    `json:"seed"`
	Peers    int       `json:"peers"`
	Network  string    `json:"network"`  // simnet or loopback
	Topology string    `json:"topology"` // flat, three-regions
	Clock    string    `json:"clock"`    // virtual (testing/synctest) or real
	Short    bool      `json:"short"`
	Started  time.Time `json:"started"`
	// Simulated is how much time passed in the run (wall time with the
	// real clock; virtual time under testing/synctest); CPU is the
	// process's CPU time it took.
	Simulated float64 `json:"simulatedSec"`
	CPU       float64 `json:"cpuSec"`

	Params     map[string]any `json:"params"`
	Goals      []Goal         `json:"goals,omitempty"`
	Invariants []Check        `json:"invariants,omitempty"`
	// Table is the main result, printed by the CLI; Tables are the rest.
	Table   Table    `json:"table"`
	Tables  []Table  `json:"tables,omitempty"`
	Figures []Figure `json:"figures,omitempty"`
	Memory  *Memory  `json:"memory,omitempty"`
	Notes   []string `json:"notes,omitempty"`
	Data    any      `json:"data,omitempty"`
	Files   []string `json:"files,omitempty"`
}

// Goal is a target the project set for a scenario, with the value this
// run measured.
type Goal struct {
	Name   string  `json:"name"`
	Target string  `json:"target"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit,omitempty"`
	Met    bool    `json:"met"`
}

// Check is an invariant: something that must hold whatever the timing
// (a lost dispatch, an undelivered event). A run whose checks fail is a
// bug, not a slow machine.
type Check struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Want  string  `json:"want"`
	OK    bool    `json:"ok"`
}

// Failed returns the invariants that do not hold.
func (r *Result) Failed() []Check {
	var out []Check
	for _, c := range r.Invariants {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// Table is rows of text under column titles.
type Table struct {
	Title   string     `json:"title,omitempty"`
	Columns []string   `json:"columns"`
	Rows    [][]string `json:"rows"`
}

// Memory is what the process used per peer, measured with every peer
// running.
type Memory struct {
	Peers             int     `json:"peers"`
	RSSMiB            float64 `json:"rssMiB"`
	HeapMiB           float64 `json:"heapMiB"`
	RSSPerPeerMiB     float64 `json:"rssPerPeerMiB"`
	HeapPerPeerMiB    float64 `json:"heapPerPeerMiB"`
	Goroutines        int     `json:"goroutines"`
	GoroutinesPerPeer float64 `json:"goroutinesPerPeer"`
	CPUSec            float64 `json:"cpuSec,omitempty"`
}

// write stores the result, its plots and its report in dir.
func (r *Result) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("simulations: output directory: %w", err)
	}
	r.Files = nil
	for i := range r.Figures {
		f := &r.Figures[i]
		if err := os.WriteFile(filepath.Join(dir, f.File), []byte(f.SVG()), 0o644); err != nil {
			return fmt.Errorf("simulations: plot: %w", err)
		}
		r.Files = append(r.Files, f.File)
	}
	r.Files = append(r.Files, "result.json", "report.html")
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("simulations: result: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "result.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("simulations: result: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.html"), []byte(r.HTML()), 0o644); err != nil {
		return fmt.Errorf("simulations: report: %w", err)
	}
	return nil
}

// jsonNum is a float that encodes as null when it is not finite (no
// measurement), which JSON cannot otherwise say.
type jsonNum float64

func (n jsonNum) MarshalJSON() ([]byte, error) {
	if !finite(float64(n)) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(n))
}

func nums(v []float64) []jsonNum {
	if v == nil {
		return nil
	}
	out := make([]jsonNum, len(v))
	for i, x := range v {
		out[i] = jsonNum(x)
	}
	return out
}

// MarshalJSON writes missing points as null.
func (s Series) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Name string    `json:"name"`
		X    []jsonNum `json:"x,omitempty"`
		Y    []jsonNum `json:"y"`
	}{s.Name, nums(s.X), nums(s.Y)})
}

// MarshalJSON writes an unmeasured value as null.
func (g Goal) MarshalJSON() ([]byte, error) {
	type plain Goal
	return json.Marshal(struct {
		plain
		Value jsonNum `json:"value"`
	}{plain(g), jsonNum(g.Value)})
}
