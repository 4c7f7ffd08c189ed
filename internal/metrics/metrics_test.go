package metrics_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/internal/metrics"
	"github.com/jstp-peer/jstp-peer/internal/poll"
	"github.com/jstp-peer/jstp-peer/mesh"
	"github.com/jstp-peer/jstp-peer/node"
	"github.com/jstp-peer/jstp-peer/routing"
	"github.com/jstp-peer/jstp-peer/saturation"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startPeer starts a loopback peer that bootstraps from boot (if any). It
// measures a fixed load (disk 20 %, RAM 50 %) and reports it often, so
// that reports travel within the test; names are cached briefly, so that
// a name is resolved soon after it is announced.
func startPeer(t *testing.T, boot *node.Peer, mod ...func(*node.PeerConfig)) *node.Peer {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg := node.PeerConfig{
		Mesh: mesh.Config{
			Key:         key,
			ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
			DHTMode:     mesh.DHTServer,
			Loopback:    true,
			Logger:      testLogger(t),
		},
		Logger: testLogger(t),
		Names:  routing.NamesConfig{CacheTTL: 100 * time.Millisecond, NegativeTTL: 100 * time.Millisecond},
		Saturation: node.SaturationConfig{
			Source: saturation.NewStaticSource(saturation.Sample{
				Disk:   saturation.Space{Free: 80, Total: 100},
				Memory: saturation.Space{Free: 50, Total: 100},
			}),
			Interval: 50 * time.Millisecond,
		},
	}
	if boot != nil {
		for _, a := range boot.Host.Addrs() {
			cfg.Mesh.Bootstrap = append(cfg.Mesh.Bootstrap, a.String())
		}
	}
	for _, m := range mod {
		m(&cfg)
	}
	p, err := node.Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// handle registers a handler when the peer is set up.
func handle(method, res string, h node.Handler) func(*node.PeerConfig) {
	return func(c *node.PeerConfig) {
		prev := c.Setup
		c.Setup = func(p *node.Peer) error {
			if prev != nil {
				if err := prev(p); err != nil {
					return err
				}
			}
			_, err := p.Node.Handle(dispatch.Endpoint{Method: method, Resource: []string{res}}, h)
			return err
		}
	}
}

func at(p *node.Peer) []dispatch.Host { return []dispatch.Host{{Name: p.Host.ID().String()}} }

// request sends d from p and returns the codes of its answers.
func request(t *testing.T, p *node.Peer, d *dispatch.Dispatch) []int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ch, err := p.Node.Request(ctx, d)
	if err != nil {
		t.Fatalf("Request %s: %v", d, err)
	}
	var codes []int
	for a := range ch {
		c, _, _, _ := a.AnswerInfo()
		codes = append(codes, c)
	}
	return codes
}

func get(res string, host []dispatch.Host) *dispatch.Dispatch {
	d := dispatch.New(dispatch.GET, res)
	d.Host = host
	return d
}

type families map[string]*dto.MetricFamily

// scrape asks h for its metrics as Prometheus does and parses the text.
func scrape(t *testing.T, h http.Handler) families {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("scrape: content type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("scrape: the text format does not parse: %v", err)
	}
	return fams
}

// value returns the value of the series of family name whose labels
// include labels: a counter's or gauge's value, a histogram's count.
func (f families) value(name string, labels ...string) (float64, bool) {
	fam := f[name]
	if fam == nil {
		return 0, false
	}
	for _, m := range fam.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// sum adds up every series of family name.
func (f families) sum(name string) float64 {
	var s float64
	for _, m := range f[name].GetMetric() {
		s += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return s
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// want is one expected series: the family, its labels, and a test of
// its value.
type want struct {
	name   string
	labels []string
	ok     func(float64) bool
	text   string
}

func eq(name string, v float64, labels ...string) want {
	return want{name, labels, func(x float64) bool { return x == v }, fmt.Sprint(v)}
}

func atLeast(name string, v float64, labels ...string) want {
	return want{name, labels, func(x float64) bool { return x >= v }, fmt.Sprint(">= ", v)}
}

func near(name string, v float64, labels ...string) want {
	return want{name, labels, func(x float64) bool { return math.Abs(x-v) < 0.01 }, fmt.Sprint("~", v)}
}

func (f families) mismatches(wants []want) []string {
	var out []string
	for _, w := range wants {
		got, ok := f.value(w.name, w.labels...)
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s%v missing, want %s", w.name, w.labels, w.text))
		case !w.ok(got):
			out = append(out, fmt.Sprintf("%s%v = %v, want %s", w.name, w.labels, got, w.text))
		}
	}
	return out
}

// expect scrapes h until every series is as wanted: some counts are
// recorded just after the answer they count has gone out.
func expect(t *testing.T, h http.Handler, who string, wants ...want) families {
	t.Helper()
	var last []string
	var fams families
	if !poll.Wait(20*time.Second, func() bool {
		fams = scrape(t, h)
		last = fams.mismatches(wants)
		return len(last) == 0
	}) {
		t.Fatalf("%s's metrics:\n  %s", who, strings.Join(last, "\n  "))
	}
	return fams
}

// Two peers exchange dispatches — a handler's answer, a 404, a code of a
// handler's own, a BIND, a request each way — a classic client sends a
// line that is not JSON, and one peer reports an application metric;
// each peer's scrape shows it all, with libp2p's series beside.
func TestMetricsOfTwoPeers(t *testing.T) {
	b := startPeer(t, nil,
		handle("GET", "hello", func(context.Context, *node.Incoming) (any, error) { return "hi", nil }),
		handle("GET", "teapot", func(context.Context, *node.Incoming) (any, error) { return node.Reply{Code: 418}, nil }),
		func(c *node.PeerConfig) { c.Provide = []string{"svc.test"} },
	)
	a := startPeer(t, b,
		handle("GET", "here", func(context.Context, *node.Incoming) (any, error) { return "a", nil }),
		func(c *node.PeerConfig) { c.GatewayTCP = "127.0.0.1:0" },
	)
	aID, bID := a.Host.ID().String(), b.Host.ID().String()

	put := dispatch.New(dispatch.PUT, "saturation", "metrics", "queue")
	put.Body = json.RawMessage(`{"value": 85, "capacity": 100}`)
	if got := request(t, b, put); len(got) != 1 || got[0] != 200 {
		t.Fatalf("PUT metric: %v", got)
	}
	for res, code := range map[string]int{"hello": 200, "nothing": 404, "teapot": 418} {
		if got := request(t, a, get(res, at(b))); len(got) != 1 || got[0] != code {
			t.Fatalf("a GET %s at b: %v, want %d", res, got, code)
		}
	}
	if got := request(t, b, get("here", at(a))); len(got) != 1 || got[0] != 200 {
		t.Fatalf("b GET here at a: %v", got)
	}
	rb, err := b.Node.BindAt(t.Context(), at(a), dispatch.Endpoint{Method: dispatch.POST, Resource: []string{"events"}}, func(context.Context, *node.Incoming) {})
	if err != nil {
		t.Fatalf("BindAt: %v", err)
	}
	defer rb.Release(context.Background())

	conn, err := net.Dial("tcp", a.Gateways[0].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("this is not json\n")); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(line, "400") {
		t.Fatalf("gateway's answer to a bad line: %q, %v", line, err)
	}

	ha, hb := metrics.Handler(a), metrics.Handler(b)
	fa := expect(t, ha, "a",
		eq("jstp_info", 1, "peer", aID, "version", node.Version),
		eq("jstp_dispatches_forwarded_total", 3, "method", "GET"),
		eq("jstp_forwarded_answers_total", 1, "method", "GET", "code", "200"),
		eq("jstp_forwarded_answers_total", 1, "method", "GET", "code", "404"),
		eq("jstp_forwarded_answers_total", 1, "method", "GET", "code", "4xx"),
		eq("jstp_forward_duration_seconds", 3, "method", "GET"),
		eq("jstp_dispatches_received_total", 1, "method", "GET"),
		eq("jstp_dispatches_received_total", 1, "method", "BIND"),
		eq("jstp_dispatches_received_total", 3, "method", "ANSWER"),
		eq("jstp_dispatches_received_total", 0, "method", "POST"),
		eq("jstp_dispatches_answered_total", 1, "method", "GET", "code", "200"),
		eq("jstp_handler_duration_seconds", 1, "method", "GET"),
		eq("jstp_dropped_total", 1, "reason", "rejected"),
		eq("jstp_dropped_total", 0, "reason", "slowSubscriber"),
		eq("jstp_subscriptions", 1, "owner", "remote"),
		eq("jstp_links", 1, "kind", "peer"),
		eq("jstp_links", 1, "kind", "classic-in"),
		eq("jstp_subscription_queue_capacity", node.DefaultQueueLen),
		eq("jstp_link_in_flight_limit", node.DefaultLinkInflight),
		eq("jstp_requests_in_flight", 0),
		eq("jstp_names_provided", 0),
		// b's report, with the metric it set, reached a.
		near("jstp_peer_saturation", 0.85, "peer", bID, "dimension", "queue"),
		near("jstp_peer_saturation", 0.5, "peer", bID, "dimension", "ram"),
		eq("jstp_peer_saturation_level", 1, "peer", bID),
		atLeast("jstp_peer_report_age_seconds", 0, "peer", bID),
		near("jstp_saturation", 0.2, "dimension", "disk"),
		near("jstp_saturation", 0.5, "dimension", "ram"),
		near("jstp_saturation_headroom", 0.5),
		eq("jstp_saturation_level", 0),
		eq("jstp_saturation_peers", 1),
		atLeast("jstp_saturation_reports_total", 1, "outcome", "accepted"),
		eq("jstp_metrics_omitted", 0, "series", "peers"),
		eq("jstp_gossip_topics", 1),
		eq("jstp_gossip_saturation_topic_peers", 1),
		// b's reports, at least the one with its metric.
		atLeast("jstp_gossip_messages_total", 1, "outcome", "received"),
		eq("jstp_gossip_messages_total", 0, "outcome", "refused"),
	)
	if got := fa.sum("jstp_dispatches_answered_total"); got != 1 {
		t.Errorf("a answered %v dispatches, want 1", got)
	}
	if got := fa.sum("jstp_subscriptions"); int(got) != len(a.Node.Subscriptions()) {
		t.Errorf("a has %v subscriptions by its metrics, %d by its table", got, len(a.Node.Subscriptions()))
	}
	// libp2p's own series and the Go runtime's are served beside.
	var libp2p []string
	for name := range fa {
		if strings.HasPrefix(name, "libp2p_") {
			libp2p = append(libp2p, name)
		}
	}
	sort.Strings(libp2p)
	if len(libp2p) == 0 || fa["go_goroutines"] == nil || fa["libp2p_rcmgr_limit"] == nil {
		t.Errorf("libp2p's series missing: %v (go_goroutines: %v)", libp2p, fa["go_goroutines"] != nil)
	}

	expect(t, hb, "b",
		eq("jstp_dispatches_received_total", 3, "method", "GET"),
		eq("jstp_dispatches_received_total", 2, "method", "ANSWER"),
		eq("jstp_dispatches_answered_total", 1, "method", "GET", "code", "200"),
		eq("jstp_dispatches_answered_total", 1, "method", "GET", "code", "404"),
		eq("jstp_dispatches_answered_total", 1, "method", "GET", "code", "4xx"),
		eq("jstp_dispatches_answered_total", 1, "method", "PUT", "code", "200"),
		eq("jstp_handler_duration_seconds", 2, "method", "GET"),
		eq("jstp_handler_duration_seconds", 1, "method", "PUT"),
		eq("jstp_dispatches_forwarded_total", 1, "method", "GET"),
		eq("jstp_dispatches_forwarded_total", 1, "method", "BIND"),
		eq("jstp_forwarded_answers_total", 1, "method", "GET", "code", "200"),
		eq("jstp_forwarded_answers_total", 1, "method", "BIND", "code", "200"),
		eq("jstp_forward_duration_seconds", 1, "method", "BIND"),
		eq("jstp_dropped_total", 0, "reason", "rejected"),
		eq("jstp_names_provided", 1),
		eq("jstp_name_provided", 1, "name", "svc.test"),
		near("jstp_saturation", 0.85, "dimension", "queue"),
		eq("jstp_saturation_level", 1),
		near("jstp_saturation_headroom", 0.15),
		near("jstp_peer_saturation", 0.2, "peer", aID, "dimension", "disk"),
		// The saturation topic, and a's topic for the endpoint b bound.
		eq("jstp_gossip_topics", 2),
	)

	// a resolves b's name through the DHT: the lookup is counted.
	poll.Until(t, 20*time.Second, "a to reach svc.test", func() bool {
		got := request(t, a, get("hello", []dispatch.Host{{Name: "svc.test"}}))
		return len(got) == 1 && got[0] == 200
	})
	expect(t, ha, "a", atLeast("jstp_name_lookups_total", 1))
}

// The peers heard from are labelled only up to the bound; the others are
// counted in jstp_metrics_omitted. Without libp2p's gatherer, only the
// peer's own series are served.
func TestMetricsPeersAreBounded(t *testing.T) {
	b := startPeer(t, nil)
	a := startPeer(t, b)
	bID := b.Host.ID().String()
	expect(t, metrics.Handler(a), "a", near("jstp_peer_saturation", 0.5, "peer", bID, "dimension", "ram"))

	fams := expect(t, metrics.Handler(a, metrics.WithMaxPeers(0), metrics.WithLibP2P(nil)), "a with no peers labelled",
		eq("jstp_metrics_omitted", 1, "series", "peers"),
		eq("jstp_saturation_peers", 1),
	)
	for name := range fams {
		if strings.HasPrefix(name, "jstp_peer_") {
			t.Errorf("%s served with no peer allowed", name)
		}
		if !strings.HasPrefix(name, "jstp_") && !strings.HasPrefix(name, "promhttp_") {
			t.Errorf("%s served without libp2p's gatherer", name)
		}
	}
}

// The collector describes every series it collects, with valid names and
// labels: a pedantic registry accepts what it gathers.
func TestMetricsCollectorIsConsistent(t *testing.T) {
	b := startPeer(t, nil, func(c *node.PeerConfig) { c.Provide = []string{"svc.test"} })
	a := startPeer(t, b)
	expect(t, metrics.Handler(a), "a", atLeast("jstp_saturation_peers", 1))
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(metrics.NewCollector(a)); err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	if len(fams) < 30 {
		t.Fatalf("only %d families gathered", len(fams))
	}
}

// Listen serves the metrics at /metrics and nothing else, to GET only,
// until Close.
func TestMetricsServer(t *testing.T) {
	a := startPeer(t, nil)
	s, err := metrics.Listen("127.0.0.1:0", a, metrics.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.HasSuffix(s.URL(), metrics.Path) {
		t.Fatalf("URL %s", s.URL())
	}
	status := func(method, url string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	res, err := http.Get(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	fams, err := func() (families, error) {
		defer res.Body.Close()
		p := expfmt.NewTextParser(model.UTF8Validation)
		return p.TextToMetricFamilies(res.Body)
	}()
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET %s: %d, %v", s.URL(), res.StatusCode, err)
	}
	if v, ok := fams.value("jstp_info", "peer", a.Host.ID().String()); !ok || v != 1 {
		t.Fatalf("jstp_info: %v %v", v, ok)
	}
	if got := status(http.MethodPost, s.URL()); got != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", got)
	}
	if got := status(http.MethodGet, "http://"+s.Addr().String()+"/debug/pprof/"); got != http.StatusNotFound {
		t.Errorf("another path: %d, want 404", got)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", s.Addr().String(), time.Second); err == nil {
		t.Error("still listening after Close")
	}
	if _, err := metrics.Listen(s.Addr().String()+"x", a); err == nil {
		t.Error("Listen accepted a bad address")
	}
}
