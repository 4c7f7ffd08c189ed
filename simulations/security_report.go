package simulations

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jstp-peer/jstp-peer/identity"
	"github.com/jstp-peer/jstp-peer/mesh"
)

// secKindResult is what one kind of injection came to.
type secKindResult struct {
	Kind     string         `json:"kind"`
	Injected int            `json:"injected"`
	Direct   int            `json:"direct"`
	Gateway  int            `json:"throughGateway"`
	Accepted int            `json:"accepted"`
	Refused  int            `json:"refused401"`
	Codes    map[string]int `json:"codes"`
	Reasons  map[string]int `json:"reasons"`
	Variants map[string]int `json:"variants"`
	// AcceptedAs lists the authors the handler was told for accepted
	// injections (empty when none was).
	AcceptedAs []string `json:"acceptedAs,omitempty"`
}

// secHonestResult sums the honest dispatches of one phase.
type secHonestResult struct {
	Phase       string  `json:"phase"`
	Sent        int     `json:"sent"`
	Answered    int     `json:"answered200"`
	OtherCodes  int     `json:"otherCodes"`
	NoAnswer    int     `json:"noAnswer"`
	WrongAuthor int     `json:"wrongAuthor"`
	NotRun      int     `json:"notRun"`
	P50         float64 `json:"p50Ms"`
	P99         float64 `json:"p99Ms"`
}

// report sums up the run: per kind, the honest dispatches, where the
// refusals were counted, and the timeline.
func (s *secRun) report(start, lateStart, end time.Time, before, after secRefusals, planned int) {
	r, res := s.r, s.r.res
	s.mu.Lock()
	injections := slices.Clone(s.injections)
	honest := slices.Clone(s.honest)
	s.mu.Unlock()

	kinds := map[string]*secKindResult{}
	for _, k := range secKinds {
		kinds[k] = &secKindResult{Kind: k, Codes: map[string]int{}, Reasons: map[string]int{}, Variants: map[string]int{}}
	}
	// An id used by several injections (a replay on both paths) counts
	// its runs once.
	type idUse struct {
		kind    string
		allowed int
	}
	ids := map[string]idUse{}
	notRefused := 0
	for _, inj := range injections {
		k := kinds[inj.kind]
		k.Injected++
		if inj.path == pathDirect {
			k.Direct++
		} else {
			k.Gateway++
		}
		code := "none"
		if inj.code != 0 {
			code = fmt.Sprint(inj.code)
		}
		k.Codes[code]++
		k.Reasons[inj.reason]++
		k.Variants[inj.variant]++
		if inj.code == 401 {
			k.Refused++
		} else {
			notRefused++
		}
		if inj.id != "" {
			ids[inj.id] = idUse{inj.kind, inj.allowed}
		}
	}
	for id, u := range ids {
		authors := s.ledger.authors(id)
		if extra := len(authors) - u.allowed; extra > 0 {
			k := kinds[u.kind]
			k.Accepted += extra
			for _, a := range authors[u.allowed:] {
				if !slices.Contains(k.AcceptedAs, a) {
					k.AcceptedAs = append(k.AcceptedAs, a)
				}
			}
		}
	}

	phases := map[string]*secHonestResult{"original": {Phase: "original"}, "traffic": {Phase: "traffic"}}
	lat := map[string][]float64{}
	lost := 0
	for _, h := range honest {
		p := phases[h.phase]
		p.Sent++
		switch h.code {
		case 200:
			p.Answered++
			lat[h.phase] = append(lat[h.phase], ms(h.latency))
		case 0:
			p.NoAnswer++
			lost++
		default:
			p.OtherCodes++
			lost++
		}
		authors := s.ledger.authors(h.id)
		if len(authors) == 0 {
			p.NotRun++
		}
		// The first run is the honest one; later runs of an original
		// are replays, counted above.
		if len(authors) > 0 && authors[0] != h.author {
			p.WrongAuthor++
		}
	}
	for name, p := range phases {
		l := lat[name]
		slices.Sort(l)
		p.P50, p.P99 = Quantile(l, 0.5), Quantile(l, 0.99)
	}
	wrongAuthor := phases["original"].WrongAuthor + phases["traffic"].WrongAuthor

	accepted := 0
	for _, k := range secKinds {
		x := kinds[k]
		accepted += x.Accepted
		r.check(k+" dispatches accepted", float64(x.Accepted), "0", x.Accepted == 0)
	}
	r.check("injected dispatches not refused with 401", float64(notRefused), "0", notRefused == 0)
	r.check("injected dispatches sent", float64(len(injections)), fmt.Sprint(planned), len(injections) == planned)
	r.check("honest dispatches lost (not answered 200)", float64(lost), "0", lost == 0)
	r.check("honest dispatches run with another author", float64(wrongAuthor), "0", wrongAuthor == 0)
	r.goal("forged and replayed dispatches accepted", "= 0", float64(accepted), "", accepted == 0)

	res.Table = Table{
		Title:   "Injected dispatches, by kind",
		Columns: []string{"KIND", "INJECTED", "DIRECT", "THROUGH A GATEWAY", "ACCEPTED", "ANSWERS", "REFUSED AS"},
	}
	for _, k := range secKinds {
		x := kinds[k]
		res.Table.Rows = append(res.Table.Rows, []string{
			k, fmt.Sprint(x.Injected), fmt.Sprint(x.Direct), fmt.Sprint(x.Gateway), fmt.Sprint(x.Accepted),
			countsText(x.Codes), countsText(x.Reasons),
		})
	}
	vt := Table{Title: "Variants", Columns: []string{"KIND", "VARIANT", "INJECTED"}}
	for _, k := range secKinds {
		for _, v := range sortedKeys(kinds[k].Variants) {
			vt.Rows = append(vt.Rows, []string{k, v, fmt.Sprint(kinds[k].Variants[v])})
		}
	}
	ht := Table{Title: "Honest dispatches (signed, through a gateway)",
		Columns: []string{"WHAT", "SENT", "ANSWERED 200", "OTHER CODES", "NO ANSWER", "NOT RUN", "WRONG AUTHOR", "P50 MS", "P99 MS"}}
	for _, p := range []*secHonestResult{phases["original"], phases["traffic"]} {
		what := "originals (later replayed)"
		if p.Phase == "traffic" {
			what = "traffic during the attack"
		}
		ht.Rows = append(ht.Rows, []string{what, fmt.Sprint(p.Sent), fmt.Sprint(p.Answered), fmt.Sprint(p.OtherCodes), fmt.Sprint(p.NoAnswer),
			fmt.Sprint(p.NotRun), fmt.Sprint(p.WrongAuthor), fmtFloat(p.P50), fmtFloat(p.P99)})
	}
	refused := secRefusals{
		Target: after.Target - before.Target, Gateways: after.Gateways - before.Gateways,
		Clients: after.Clients - before.Clients, Attackers: after.Attackers - before.Attackers,
	}
	rt := Table{Title: "Refusals counted by the peers during the attack (stats.dropped.unauthorized)",
		Columns: []string{"TARGET", "GATEWAYS", "HONEST CLIENTS", "ATTACKERS", "IN ALL", "INJECTIONS ANSWERED 401", "LEDGER ENTRIES"}}
	var all401 int
	for _, k := range secKinds {
		all401 += kinds[k].Refused
	}
	rt.Rows = append(rt.Rows, []string{fmt.Sprint(refused.Target), fmt.Sprint(refused.Gateways), fmt.Sprint(refused.Clients), fmt.Sprint(refused.Attackers),
		fmt.Sprint(refused.Target + refused.Gateways + refused.Clients + refused.Attackers), fmt.Sprint(all401), fmt.Sprint(s.ledger.total())})
	res.Tables = append(res.Tables, ht, rt, vt)

	var injected, refusedY, acceptedY []float64
	for _, k := range secKinds {
		injected = append(injected, float64(kinds[k].Injected))
		refusedY = append(refusedY, float64(kinds[k].Refused))
		acceptedY = append(acceptedY, float64(kinds[k].Accepted))
	}
	res.Figures = append(res.Figures, Figure{
		File: "refusals.svg", Title: "Injected dispatches by kind", Kind: "bar", XLabel: "kind", YLabel: "dispatches",
		Categories: []string{"forged", "tampered", "replayed", "stale", "late replay"},
		Series:     []Series{{Name: "injected", Y: injected}, {Name: "refused 401", Y: refusedY}, {Name: "accepted", Y: acceptedY}},
	})

	// Timeline: honest dispatches answered and injections refused per
	// second, by when they were sent.
	span := end.Sub(start)
	bin := max(span/70, time.Second)
	nb := int(span/bin) + 1
	xs := make([]float64, nb)
	ok, bad, inj := make([]float64, nb), make([]float64, nb), make([]float64, nb)
	for i := range xs {
		xs[i] = (time.Duration(i) * bin).Seconds()
	}
	slot := func(t time.Time) int {
		i := int(t.Sub(start) / bin)
		if i < 0 || i >= nb {
			return -1
		}
		return i
	}
	for _, h := range honest {
		if i := slot(h.sent); i >= 0 && h.phase == "traffic" {
			if h.code == 200 {
				ok[i]++
			} else {
				bad[i]++
			}
		}
	}
	for _, x := range injections {
		if i := slot(x.sent); i >= 0 {
			inj[i]++
		}
	}
	for i := range xs {
		ok[i] /= bin.Seconds()
		bad[i] /= bin.Seconds()
		inj[i] /= bin.Seconds()
	}
	res.Figures = append(res.Figures, Figure{
		File: "timeline.svg", Title: "Honest dispatches and injections per second", Kind: "line", XLabel: "time (s)", YLabel: "dispatches/s",
		Series: []Series{{Name: "honest, answered 200", X: xs, Y: ok}, {Name: "honest, not answered 200", X: xs, Y: bad}, {Name: "injected", X: xs, Y: inj}},
		VLines: []VLine{{Label: "late replays", X: lateStart.Sub(start).Seconds()}},
	})
	res.Data = map[string]any{"kinds": kinds, "honest": phases, "refusals": refused}

	r.note("Direct: the attacker's own libp2p stream to the target under %s, written frame by frame, no engine of the attacker's in the way. Through a gateway: the attacker's engine (Node.Request) with the host chain [an honest gateway, the target]; the gateway verifies what it relays.", mesh.ProtocolID)
	r.note("The attackers' material: dispatches the honest clients signed (identity.Sign with their identity keys) and sent to the target through a gateway, as bytes a peer on the way would have copied; and, for tampering and stale timestamps, dispatches an honest client signed and never sent.")
	r.note("Accepted: the target's handler ran an injected dispatch, or ran a replayed one more than once. Honest traffic is signed by the clients' own engines: its host chain has two peers.")
	r.note("Late replays are sent at least %.0f s after their originals' timestamps: the receivers' replay memory has forgotten them by then, and only the timestamp check (±%.0f s) refuses them.",
		(identity.DefaultReplaySkew + 5*time.Second).Seconds(), identity.DefaultReplaySkew.Seconds())
	r.note("Refusals are counted once, by the first peer that verifies the dispatch: the target for direct injections, the gateway for those through one, except replays through a gateway their original did not cross, which reach the target and are refused there.")
}

// countsText writes a count map as "k n, k n", largest first.
func countsText(m map[string]int) string {
	keys := sortedKeys(m)
	sort.SliceStable(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
