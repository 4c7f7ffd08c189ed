package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
	"github.com/jstp-peer/jstp-peer/saturation"
)

const saturationExamples = `  jstp-peer saturation            refreshes every 2 s, like top, until Ctrl-C
  jstp-peer saturation --once     one table
  jstp-peer saturation --json     GET ["saturation"] as JSON, once, for scripts

  PEER                                                  LEVEL     HEADROOM  RIF  AGE    TOP                  NAMES
  12D3KooWGRUVh8Mrz8kDBQt5X2bAqxeT1pHjuvkB4W2ZXBnAfXQM  critical  0.01      3    self   queue 0.99           menu.example
`

// saturationRefresh is how often the live view asks again: the peers
// sample every 2 s.
const saturationRefresh = 2 * time.Second

func runSaturation(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("saturation", "jstp-peer saturation [flags]",
		`Show how saturated the local peer and every peer it hears from are: level,
headroom (1 - the most saturated dimension), requests in flight, the age of
the report, the most saturated dimensions and the names provided. It asks
GET ["saturation"] through the TCP gateway of the local peer (--via) and
refreshes every 2 s until Ctrl-C; --once prints one table, --json the
answer's body once (docs/saturation.md).

Exit status: 0 shown; 1 no peer at --via or no usable answer; 2 a usage
error. Every flag can also be set with JSTP_PEER_<FLAG>.`,
		saturationExamples)
	s := newSettings()
	s.register(fs, keyVia, keyConfig)
	asJSON := fs.Bool("json", false, "print the body of GET [\"saturation\"] once, as JSON")
	once := fs.Bool("once", false, "print one table and exit")
	timeout := fs.Duration("timeout", defaultTimeout, "how long to wait for each answer")
	pos, code, ok := parseArgs(fs, s, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(fs, stderr, "want no arguments, got %d", len(pos))
	}
	l, code, ok := dialLocal(ctx, "saturation", s, *timeout, stderr)
	if !ok {
		return code
	}
	defer l.Close()
	for {
		view, code := askSaturation(ctx, l)
		if code != exitOK {
			return code
		}
		switch {
		case *asJSON:
			b, _ := json.Marshal(view)
			fmt.Fprintf(stdout, "%s\n", b)
			return exitOK
		case *once:
			printSaturation(stdout, view)
			return exitOK
		}
		// Clear the screen and home the cursor, as top does.
		fmt.Fprint(stdout, "\x1b[H\x1b[2J")
		fmt.Fprintf(stdout, "jstp-peer saturation via %s, %s\n\n", l.via, time.Now().Format(time.TimeOnly))
		printSaturation(stdout, view)
		select {
		case <-ctx.Done():
			return exitOK
		case <-time.After(saturationRefresh):
		}
	}
}

func askSaturation(ctx context.Context, l *local) (node.SaturationView, int) {
	var view node.SaturationView
	a, answer, code, ok := l.ask(ctx, dispatch.New(dispatch.GET, "saturation"))
	if !ok {
		return view, code
	}
	if answer != 200 {
		return view, fail(l.stderr, "saturation", exitFail, "GET /saturation: %s", answerText(a, answer))
	}
	if err := json.Unmarshal(a.Body, &view); err != nil {
		return view, fail(l.stderr, "saturation", exitFail, "GET /saturation answered something else than a saturation view: %v", err)
	}
	return view, exitOK
}

func printSaturation(w io.Writer, v node.SaturationView) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tLEVEL\tHEADROOM\tRIF\tAGE\tTOP\tNAMES")
	row := func(r saturation.Report, age string) {
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%d\t%s\t%s\t%s\n", r.Peer, r.Level, r.Headroom, r.InFlight, age, topDimensions(r, 2), strings.Join(r.Names, ","))
	}
	row(v.Self, "self")
	for _, p := range v.Peers {
		row(p.Report, (time.Duration(p.AgeMS) * time.Millisecond).String())
	}
	_ = tw.Flush()
	if v.Rejected > 0 {
		fmt.Fprintf(w, "\n%d reports rejected (forged, malformed or stale)\n", v.Rejected)
	}
}

// topDimensions names the n most saturated dimensions: "queue 0.99, cpu 0.40".
func topDimensions(r saturation.Report, n int) string {
	dims := slices.SortedFunc(maps.Keys(r.Saturation), func(a, b string) int {
		if c := -cmpFloat(r.Saturation[a], r.Saturation[b]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, d := range dims[:min(n, len(dims))] {
		parts = append(parts, fmt.Sprintf("%s %.2f", d, r.Saturation[d]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
