package simulations

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// Figure is a plot of a result: lines (X numeric) or grouped bars (one
// group per category). It renders itself as a standalone SVG.
type Figure struct {
	File   string `json:"file"`
	Title  string `json:"title"`
	Kind   string `json:"kind"` // "line" or "bar"
	XLabel string `json:"xLabel"`
	YLabel string `json:"yLabel"`
	LogX   bool   `json:"logX,omitempty"`
	LogY   bool   `json:"logY,omitempty"`
	// Categories name the bar groups (bar figures).
	Categories []string `json:"categories,omitempty"`
	Series     []Series `json:"series"`
	// HLines are horizontal reference lines (a goal, a capacity); VLines
	// mark moments on a line figure's x axis (events).
	HLines []HLine `json:"hlines,omitempty"`
	VLines []VLine `json:"vlines,omitempty"`
}

// VLine is a labelled vertical line.
type VLine struct {
	Label string  `json:"label"`
	X     float64 `json:"x"`
}

// Series is one line, or one bar per category.
type Series struct {
	Name string    `json:"name"`
	X    []float64 `json:"x,omitempty"`
	Y    []float64 `json:"y"`
}

// HLine is a labelled horizontal line.
type HLine struct {
	Label string  `json:"label"`
	Y     float64 `json:"y"`
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf", "#bcbd22"}

// Colour gives series a stable colour by name, so a policy has the same
// colour in every plot of a report.
func seriesColour(name string, i int) string {
	switch name {
	case "hot-cold":
		return "#1f77b4"
	case PolicyOracle:
		return "#2ca02c"
	case "random":
		return "#d62728"
	case "weighted-random":
		return "#ff7f0e"
	case "round-robin":
		return "#9467bd"
	case "least-saturated":
		return "#8c564b"
	}
	return palette[i%len(palette)]
}

const (
	svgW, svgH                     = 720, 400
	padL, padR, padT, padB float64 = 70, 170, 40, 50
)

// SVG renders the figure.
func (f *Figure) SVG() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", svgW, svgH, svgW, svgH)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" text-anchor="middle" font-size="15" font-weight="bold">%s</text>`+"\n", svgW/2-int(padR-padL)/2, esc(f.Title))
	if f.Kind == "bar" {
		f.bars(&b)
	} else {
		f.lines(&b)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func esc(s string) string { return html.EscapeString(s) }

// axis maps data values to pixels, linear or logarithmic.
type axis struct {
	lo, hi   float64
	log      bool
	from, to float64 // pixels
}

func (a axis) px(v float64) float64 {
	lo, hi := a.lo, a.hi
	if a.log {
		v, lo, hi = math.Log10(math.Max(v, 1e-12)), math.Log10(lo), math.Log10(hi)
	}
	if hi == lo {
		return (a.from + a.to) / 2
	}
	return a.from + (v-lo)/(hi-lo)*(a.to-a.from)
}

// ticks returns round values to mark on the axis.
func (a axis) ticks() []float64 {
	var out []float64
	if a.log {
		for e := math.Floor(math.Log10(a.lo)); e <= math.Ceil(math.Log10(a.hi)); e++ {
			for _, m := range []float64{1, 2, 5} {
				v := m * math.Pow(10, e)
				if v >= a.lo*0.999 && v <= a.hi*1.001 {
					out = append(out, v)
				}
			}
		}
		return out
	}
	step := niceStep((a.hi - a.lo) / 5)
	for v := math.Ceil(a.lo/step) * step; v <= a.hi+step*1e-9; v += step {
		out = append(out, v)
	}
	return out
}

func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

func label(v float64) string {
	if v != 0 && (math.Abs(v) >= 1e5 || math.Abs(v) < 1e-3) {
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// yRange spans every finite value and reference line, from zero for
// linear axes.
func (f *Figure) yRange() (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, s := range f.Series {
		for _, y := range s.Y {
			if finite(y) && (!f.LogY || y > 0) {
				lo, hi = math.Min(lo, y), math.Max(hi, y)
			}
		}
	}
	for _, h := range f.HLines {
		lo, hi = math.Min(lo, h.Y), math.Max(hi, h.Y)
	}
	if math.IsInf(lo, 0) {
		return 0, 1
	}
	if f.LogY {
		lo = math.Pow(10, math.Floor(math.Log10(lo)))
		hi = math.Pow(10, math.Ceil(math.Log10(hi)))
		if lo == hi {
			hi = lo * 10
		}
		return lo, hi
	}
	lo = math.Min(lo, 0)
	if hi <= lo {
		hi = lo + 1
	}
	return lo, lo + niceStep((hi-lo)/5)*5*1.0001
}

func (f *Figure) frame(b *strings.Builder, y axis) {
	x0, x1 := padL, float64(svgW)-padR
	for _, t := range y.ticks() {
		py := y.px(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x0, py, x1, py)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-6, py+4, label(t))
	}
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", x0, float64(svgH)-padB, x1, float64(svgH)-padB)
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", x0, padT, x0, float64(svgH)-padB)
	fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", (x0+x1)/2, svgH-10, esc(f.XLabel))
	fmt.Fprintf(b, `<text transform="translate(16,%.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", (padT+float64(svgH)-padB)/2, esc(f.YLabel))
	for _, h := range f.HLines {
		py := y.px(h.Y)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#555" stroke-dasharray="6,4"/>`+"\n", x0, py, x1, py)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="#555">%s</text>`+"\n", x1+4, py+4, esc(h.Label))
	}
}

func (f *Figure) legend(b *strings.Builder) {
	x := float64(svgW) - padR + 14
	for i, s := range f.Series {
		y := padT + 10 + float64(i)*18
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="12" height="12" fill="%s"/>`+"\n", x, y-10, seriesColour(s.Name, i))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", x+18, y, esc(s.Name))
	}
}

func (f *Figure) lines(b *strings.Builder) {
	xlo, xhi := math.Inf(1), math.Inf(-1)
	for _, s := range f.Series {
		for _, x := range s.X {
			if finite(x) && (!f.LogX || x > 0) {
				xlo, xhi = math.Min(xlo, x), math.Max(xhi, x)
			}
		}
	}
	if math.IsInf(xlo, 0) {
		xlo, xhi = 0, 1
	}
	for _, v := range f.VLines {
		if finite(v.X) {
			xlo, xhi = math.Min(xlo, v.X), math.Max(xhi, v.X)
		}
	}
	if xhi == xlo {
		xhi = xlo + 1
	}
	ylo, yhi := f.yRange()
	xa := axis{lo: xlo, hi: xhi, log: f.LogX, from: padL + 10, to: float64(svgW) - padR - 10}
	ya := axis{lo: ylo, hi: yhi, log: f.LogY, from: float64(svgH) - padB, to: padT}
	f.frame(b, ya)
	for _, t := range xa.ticks() {
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", xa.px(t), float64(svgH)-padB+16, label(t))
	}
	for k, v := range f.VLines {
		px := xa.px(v.X)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888" stroke-dasharray="4,4"/>`+"\n", px, padT, px, float64(svgH)-padB)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="#555" font-size="10">%s</text>`+"\n", px+3, padT+10+float64(k%3)*11, esc(v.Label))
	}
	for i, s := range f.Series {
		c := seriesColour(s.Name, i)
		var pts []string
		for k := range s.Y {
			if k >= len(s.X) || !finite(s.Y[k]) || (f.LogY && s.Y[k] <= 0) {
				continue
			}
			px, py := xa.px(s.X[k]), ya.px(s.Y[k])
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px, py))
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", px, py, c)
		}
		if len(pts) > 1 {
			fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c, strings.Join(pts, " "))
		}
	}
	f.legend(b)
}

func (f *Figure) bars(b *strings.Builder) {
	ylo, yhi := f.yRange()
	ya := axis{lo: ylo, hi: yhi, log: f.LogY, from: float64(svgH) - padB, to: padT}
	f.frame(b, ya)
	n := len(f.Categories)
	if n == 0 || len(f.Series) == 0 {
		f.legend(b)
		return
	}
	x0, x1 := padL, float64(svgW)-padR
	group := (x1 - x0) / float64(n)
	bar := group * 0.8 / float64(len(f.Series))
	base := ya.px(math.Max(ylo, 0))
	if f.LogY {
		base = ya.px(ylo)
	}
	for k, cat := range f.Categories {
		gx := x0 + float64(k)*group + group*0.1
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x0+float64(k)*group+group/2, float64(svgH)-padB+16, esc(cat))
		for i, s := range f.Series {
			if k >= len(s.Y) || !finite(s.Y[k]) || (f.LogY && s.Y[k] <= 0) {
				continue
			}
			top := ya.px(s.Y[k])
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`+"\n",
				gx+float64(i)*bar, math.Min(top, base), bar*0.95, math.Abs(base-top), seriesColour(s.Name, i), esc(s.Name), esc(cat), label(s.Y[k]))
		}
	}
	f.legend(b)
}
