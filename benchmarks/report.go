package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

func (r *results) printJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *results) printTable(w io.Writer) {
	fmt.Fprintf(w, "jstp-peer benchmarks, %s\n", r.Date)
	fmt.Fprintf(w, "%s %s, GOMAXPROCS=%d, %d CPUs\n", r.Go, r.Platform, r.GOMAXPROCS, r.CPUs)
	fmt.Fprintf(w, "%d requests per round (pipelined: %d, %d in flight), %d rounds (median reported), burst of %d\n",
		r.N, r.N*pipeFactor, r.Depth, r.Rounds, r.Burst)
	if r.LineBytes > 0 {
		fmt.Fprintf(w, "dispatch line %d bytes (the raw and NATS baselines carry the same bytes)\n", r.LineBytes)
	}
	if len(r.Connections) > 0 {
		fmt.Fprintln(w, "\nnegotiated")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, c := range r.Connections {
			extra := ""
			if c.Count != 1 {
				extra = fmt.Sprintf(" (%d connections)", c.Count)
			}
			fmt.Fprintf(tw, "  %s\t%s%s\n", c.Name, c.Conn, extra)
		}
		tw.Flush()
	}

	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "benchmark\t\tvalue\tunit\tp99\trounds min–max\twrites/req\tswitches/req\tCPU µs/req\tanswers\t")
	for _, m := range r.Metrics {
		p99, spread, writes, switches, cpu := "", "", "", "", ""
		if m.P99 > 0 {
			p99 = fmt.Sprintf("%.1f", m.P99)
		}
		if m.Writes > 0 {
			writes = fmt.Sprintf("%.2f", m.Writes)
			switches = fmt.Sprintf("%.2f", m.Switches)
			cpu = fmt.Sprintf("%.1f", m.CPU)
		}
		if len(m.Rounds) > 0 {
			spread = fmt.Sprintf("%s–%s", num(slices.Min(m.Rounds), m.Unit), num(slices.Max(m.Rounds), m.Unit))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", kindOf(m.Key), m.Label, num(m.Value, m.Unit), m.Unit, p99, spread, writes, switches, cpu, codes(m.Codes))
	}
	tw.Flush()

	if len(r.Ratios) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ratio\tvalue\ttarget\t")
		for _, ra := range r.Ratios {
			target := ra.Target
			if ra.Met != nil {
				target += map[bool]string{true: "  met", false: "  NOT met"}[*ra.Met]
			}
			fmt.Fprintf(tw, "%s\t%.2f\t%s\t\n", ra.Label, ra.Value, target)
		}
		tw.Flush()
	}
	for _, list := range []struct {
		title string
		items []string
	}{{"notes", r.Notes}, {"problems", r.Problems}} {
		if len(list.items) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s\n", list.title)
		for _, it := range list.items {
			fmt.Fprintf(w, "  - %s\n", it)
		}
	}
}

// kindOf names a metric's benchmark for the first column.
func kindOf(key string) string {
	switch {
	case strings.HasPrefix(key, "rtt/"):
		return "round trip"
	case strings.HasPrefix(key, "pipe/"):
		return "pipelined"
	case strings.HasPrefix(key, "mem/"):
		return "memory"
	}
	return "burst"
}

func num(v float64, unit string) string {
	switch unit {
	case "req/s":
		return fmt.Sprintf("%.0f", v)
	case "s":
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// codes renders answer counts as "200×10500".
func codes(m map[string]int) string {
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s×%d", c, m[c]))
	}
	return strings.Join(parts, " ")
}
