package simulations

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// HTML renders the one-page report: what ran, the goals beside what was
// measured, the invariants, the tables and the plots.
func (r *Result) HTML() string {
	var b strings.Builder
	b.WriteString(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>jstp-peer simulation: ` + esc(r.Scenario) + `</title>
<style>
body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}
.ok{color:#1a7f37;font-weight:bold}.no{color:#c62828;font-weight:bold}
.params{color:#555}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
</style></head><body>
`)
	fmt.Fprintf(&b, "<h1>%s</h1>\n<p>%s</p>\n", esc(r.Scenario), esc(r.Summary))
	fmt.Fprintf(&b, `<p class="params">seed %d · %d peers · %s network (%s) · %s time · %.1f s, %.0f s of CPU`, r.Seed, r.Peers, esc(r.Network), esc(r.Topology), esc(r.Clock), r.Simulated, r.CPU)
	if r.Short {
		b.WriteString(" · short run")
	}
	fmt.Fprintf(&b, " · %s</p>\n", esc(r.Started.UTC().Format("2006-01-02 15:04 MST")))
	if len(r.Params) > 0 {
		b.WriteString(`<p class="params">`)
		for i, k := range slices.Sorted(maps.Keys(r.Params)) {
			if i > 0 {
				b.WriteString(" · ")
			}
			v, _ := json.Marshal(r.Params[k])
			fmt.Fprintf(&b, "%s = %s", esc(k), esc(string(v)))
		}
		b.WriteString("</p>\n")
	}
	if len(r.Goals) > 0 {
		b.WriteString("<h2>Goals</h2>\n<table><tr><th>goal</th><th>target</th><th>measured</th><th></th></tr>\n")
		for _, g := range r.Goals {
			fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n", esc(g.Name), esc(g.Target), esc(g.valueText()), metText(g.Met))
		}
		b.WriteString("</table>\n")
	}
	if len(r.Invariants) > 0 {
		b.WriteString("<h2>Invariants</h2>\n<table><tr><th>invariant</th><th>want</th><th>measured</th><th></th></tr>\n")
		for _, c := range r.Invariants {
			fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n", esc(c.Name), esc(c.Want), label(c.Value), okHTML(c.OK))
		}
		b.WriteString("</table>\n")
	}
	for _, t := range append([]Table{r.Table}, r.Tables...) {
		if len(t.Columns) == 0 {
			continue
		}
		if t.Title != "" {
			fmt.Fprintf(&b, "<h2>%s</h2>\n", esc(t.Title))
		}
		b.WriteString("<table><tr>")
		for _, c := range t.Columns {
			fmt.Fprintf(&b, "<th>%s</th>", esc(c))
		}
		b.WriteString("</tr>\n")
		for _, row := range t.Rows {
			b.WriteString("<tr>")
			for _, c := range row {
				fmt.Fprintf(&b, "<td>%s</td>", esc(c))
			}
			b.WriteString("</tr>\n")
		}
		b.WriteString("</table>\n")
	}
	if r.Memory != nil {
		m := r.Memory
		fmt.Fprintf(&b, "<h2>Memory</h2>\n<p>%d peers: RSS %.0f MiB (%.2f MiB per peer), Go heap %.0f MiB (%.2f MiB per peer), %d goroutines (%.0f per peer).</p>\n",
			m.Peers, m.RSSMiB, m.RSSPerPeerMiB, m.HeapMiB, m.HeapPerPeerMiB, m.Goroutines, m.GoroutinesPerPeer)
	}
	if len(r.Figures) > 0 {
		b.WriteString("<h2>Plots</h2>\n")
		for _, f := range r.Figures {
			fmt.Fprintf(&b, `<p><img src="%s" alt="%s"></p>`+"\n", esc(f.File), esc(f.Title))
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("<h2>Notes</h2>\n<ul>\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "<li>%s</li>\n", esc(n))
		}
		b.WriteString("</ul>\n")
	}
	b.WriteString("<p class=\"params\">Raw data: <a href=\"result.json\">result.json</a>.</p>\n</body></html>\n")
	return b.String()
}

func okHTML(ok bool) string {
	if ok {
		return `<span class="ok">ok</span>`
	}
	return `<span class="no">FAILED</span>`
}

func metText(ok bool) string {
	if ok {
		return `<span class="ok">met</span>`
	}
	return `<span class="no">not met</span>`
}

func (g Goal) valueText() string {
	s := fmtFloat(g.Value)
	if g.Unit != "" {
		s += " " + g.Unit
	}
	return s
}

// fmtFloat prints a measurement with three significant digits at most.
func fmtFloat(v float64) string {
	if !finite(v) {
		return "-"
	}
	switch a := abs(v); {
	case a == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// WriteText prints the result for a terminal: the main table, the goals
// beside what was measured, the invariants.
func (r *Result) WriteText(w io.Writer) {
	writeTable(w, r.Table)
	for _, t := range r.Tables {
		fmt.Fprintln(w)
		writeTable(w, t)
	}
	if len(r.Goals) > 0 {
		fmt.Fprintln(w)
		writeTable(w, Table{Columns: []string{"GOAL", "TARGET", "MEASURED", ""}, Rows: goalRows(r.Goals)})
	}
	if len(r.Invariants) > 0 {
		fmt.Fprintln(w)
		var rows [][]string
		for _, c := range r.Invariants {
			rows = append(rows, []string{c.Name, c.Want, label(c.Value), okText(c.OK)})
		}
		writeTable(w, Table{Columns: []string{"INVARIANT", "WANT", "MEASURED", ""}, Rows: rows})
	}
	if r.Memory != nil {
		m := r.Memory
		fmt.Fprintf(w, "\nmemory: %d peers, RSS %.0f MiB (%.2f MiB/peer), heap %.0f MiB (%.2f MiB/peer), %d goroutines (%.0f/peer)\n",
			m.Peers, m.RSSMiB, m.RSSPerPeerMiB, m.HeapMiB, m.HeapPerPeerMiB, m.Goroutines, m.GoroutinesPerPeer)
	}
}

func goalRows(goals []Goal) [][]string {
	var rows [][]string
	for _, g := range goals {
		m := "met"
		if !g.Met {
			m = "NOT MET"
		}
		rows = append(rows, []string{g.Name, g.Target, g.valueText(), m})
	}
	return rows
}

func okText(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAILED"
}

func writeTable(w io.Writer, t Table) {
	if len(t.Columns) == 0 {
		return
	}
	if t.Title != "" {
		fmt.Fprintln(w, t.Title)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.Columns, "\t"))
	for _, row := range t.Rows {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	_ = tw.Flush()
}
