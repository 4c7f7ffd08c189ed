package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
	"github.com/jstp-peer/jstp-peer/routing"
	"github.com/jstp-peer/jstp-peer/saturation"
)

const resolveExamples = `  jstp-peer resolve menu.example
  PEER                                                  LEVEL  HEADROOM  RIF  AGE   ADDRESSES
  12D3KooWGRUVh8Mrz8kDBQt5X2bAqxeT1pHjuvkB4W2ZXBnAfXQM  ok     0.62      0    self  /ip4/127.0.0.1/tcp/4033
  12D3KooWQ7QYHSHks8Zv8senjLtTYM2cop1jaSrbFv9Am88Ja1PL  busy   0.18      7    1.2s  /ip4/192.0.2.7/tcp/4033

  jstp-peer resolve menu.example --json
`

// providerRow is one provider of a name as resolve prints it: where it
// is, and its latest saturation report when the local peer has one.
type providerRow struct {
	ID         string             `json:"id"`
	Addrs      []string           `json:"addrs"`
	Self       bool               `json:"self,omitempty"`
	Saturation *saturation.Report `json:"saturation"`
	AgeMS      *int64             `json:"ageMs,omitempty"`
}

func runResolve(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("resolve", "jstp-peer resolve NAME [flags]",
		`List the peers that provide a service name, as ipfs routing findprovs
does, with each one's saturation as the local peer last heard it: level,
headroom, requests in flight (RIF) and the report's age ("-" when no
report came yet; docs/saturation.md). The local peer looks the name up in
the DHT (GET ["names", NAME]) and answers GET ["saturation"]; both go
through its TCP gateway (--via). A provider may have stopped since it
announced the name: provider records live up to 48 hours.

Exit status: 0 providers found; 1 none, or no peer at --via; 2 a usage
error. Every flag can also be set with JSTP_PEER_<FLAG>.`,
		resolveExamples)
	s := newSettings()
	s.register(fs, keyVia, keyConfig)
	asJSON := fs.Bool("json", false, `print JSON: {"name", "providers": [{"id","addrs","self","saturation","ageMs"}]}`)
	timeout := fs.Duration("timeout", defaultTimeout, "how long to wait for the answer")
	pos, code, ok := parseArgs(fs, s, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(fs, stderr, "want one NAME, got %d arguments", len(pos))
	}
	if *timeout <= 0 {
		return usageError(fs, stderr, "--timeout must be positive")
	}
	name := pos[0]
	if err := routing.ValidName(name); err != nil {
		return usageError(fs, stderr, "%q is not a service name (1 to %d characters without white space, \"/\" or \":\")", name, routing.MaxNameLen)
	}
	l, code, ok := dialLocal(ctx, "resolve", s, *timeout, stderr)
	if !ok {
		return code
	}
	defer l.Close()
	a, answer, code, ok := l.ask(ctx, dispatch.New(dispatch.GET, "names", name))
	if !ok {
		return code
	}
	if answer != 200 {
		return fail(stderr, "resolve", exitFail, "%s", bodyText(a.Body))
	}
	var info node.NameInfo
	if err := json.Unmarshal(a.Body, &info); err != nil {
		return fail(stderr, "resolve", exitFail, "GET /names/%s answered something else than providers: %s", name, bodyText(a.Body))
	}
	// Saturation is a courtesy: without it the providers are still the
	// answer.
	var view node.SaturationView
	if a, answer, _, ok := l.ask(ctx, dispatch.New(dispatch.GET, "saturation")); ok && answer == 200 {
		_ = json.Unmarshal(a.Body, &view)
	} else if ctx.Err() != nil {
		return exitInterrupted
	}
	rows := joinSaturation(info, view)
	if *asJSON {
		b, err := json.Marshal(struct {
			Name      string        `json:"name"`
			Providers []providerRow `json:"providers"`
		}{info.Name, rows})
		if err != nil {
			return fail(stderr, "resolve", exitFail, "%v", err)
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return exitOK
	}
	printProviders(stdout, rows)
	return exitOK
}

// joinSaturation pairs each provider with its latest report.
func joinSaturation(info node.NameInfo, view node.SaturationView) []providerRow {
	rows := make([]providerRow, 0, len(info.Providers))
	for _, p := range info.Providers {
		r := providerRow{ID: p.ID, Addrs: p.Addrs, Self: p.Self}
		if r.Addrs == nil {
			r.Addrs = []string{}
		}
		if p.Self || (p.ID != "" && p.ID == view.Self.Peer) {
			rep := view.Self
			r.Saturation = &rep
		} else {
			for _, ps := range view.Peers {
				if ps.Peer == p.ID {
					rep, age := ps.Report, ps.AgeMS
					r.Saturation, r.AgeMS = &rep, &age
					break
				}
			}
		}
		rows = append(rows, r)
	}
	return rows
}

func printProviders(w io.Writer, rows []providerRow) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tLEVEL\tHEADROOM\tRIF\tAGE\tADDRESSES")
	for _, r := range rows {
		level, headroom, rif, age := "-", "-", "-", "-"
		if rep := r.Saturation; rep != nil {
			level, headroom, rif = rep.Level.String(), fmt.Sprintf("%.2f", rep.Headroom), itoa(int(rep.InFlight))
			switch {
			case r.Self:
				age = "self"
			case r.AgeMS != nil:
				age = (time.Duration(*r.AgeMS) * time.Millisecond).String()
			}
		}
		addrs := r.Addrs
		if len(addrs) == 0 {
			addrs = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, level, headroom, rif, age, addrs[0])
		for _, a := range addrs[1:] {
			fmt.Fprintf(tw, "\t\t\t\t\t%s\n", a)
		}
	}
	_ = tw.Flush()
}
