package webui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
)

// TestDashboard loads the web view of one of two peers in Chromium: the
// page shows the peer and the other one, sends a dispatch to the other
// peer and shows its answer, binds and receives an event (which it
// answers), runs the replica action and releases the binding.
func TestDashboard(t *testing.T) {
	requireChromium(t)
	ui := newUIServer(t)
	replicas := make(chan json.RawMessage, 4)
	ui.cfg.AddReplica = func(_ context.Context, report json.RawMessage) error {
		replicas <- report
		return nil
	}
	cfgA := testPeerConfig(t)
	cfgA.GatewayOrigins = ui.origins(t)
	cfgA.Recent = 50
	a := startPeer(t, cfgA)
	cfgB := testPeerConfig(t)
	cfgB.Mesh.Bootstrap = addrStrings(a.Host.Addrs())
	cfgB.Provide = []string{"pizza.test"}
	cfgB.Setup = func(p *node.Peer) error {
		_, err := p.Node.Handle(dispatch.Endpoint{Method: "GET", Resource: []string{"menu"}}, func(context.Context, *node.Incoming) (any, error) {
			return map[string]string{"from": p.Host.ID().String()}, nil
		})
		return err
	}
	b := startPeer(t, cfgB)
	connected(t, a, b)
	aID, bID := a.Host.ID().String(), b.Host.ID().String()
	page := ui.serve(t, a)
	br := newBrowser(t)

	br.run("loading the dashboard", chromedp.Navigate(page))
	br.waitFor("the page to connect to the gateway", `document.getElementById("status").dataset.state === "connected"`)
	// The version comes from GET ["peer"] over JSTP, not from the page's
	// configuration.
	br.waitFor("the peer's id and version", fmt.Sprintf(
		`document.getElementById("peer-id").textContent === %q && document.getElementById("peer-version").textContent.includes("JSTP/0.4")`, aID))
	br.waitFor("the second peer among the connected ones", fmt.Sprintf(`document.querySelector('#peers tr[data-peer=%q]') !== null`, bID))
	br.waitFor("the second peer's saturation and its sparkline", fmt.Sprintf(
		`document.querySelector('#saturation tr[data-peer=%q] svg.spark polyline') !== null && document.querySelector('#saturation tr[data-peer=%q]') !== null`, bID, aID))
	br.waitFor("the second peer as a replica of its service", fmt.Sprintf(
		`document.querySelector('#services tr[data-service="pizza.test"] .replica-of[title=%q]') !== null`, bID))

	// A dispatch in the URL notation, to the other peer by its id.
	br.run("sending a dispatch",
		chromedp.SetValue(chromedp.CSS("#send-text"), "GET jstp://"+bID+"/menu"),
		chromedp.Click(chromedp.CSS("#send-button")))
	br.waitFor("the transaction to complete", `document.getElementById("send-state").dataset.state === "complete"`)
	type shown struct {
		Code string `json:"code"`
		Body string `json:"body"`
	}
	answers := eval[[]shown](br, `[...document.querySelectorAll("#answers li.answer")].map(li => ({code: li.dataset.code, body: li.querySelector("pre")?.textContent ?? ""}))`)
	if len(answers) != 1 || answers[0].Code != "200" || !strings.Contains(answers[0].Body, bID) {
		t.Fatalf("answers shown = %+v, want one 200 from %s", answers, bID)
	}

	// A binding on the peer: a dispatch processed there reaches the page,
	// which answers it.
	br.run("binding",
		chromedp.SetValue(chromedp.CSS("#bind-endpoint"), "POST jstp:///news/*"),
		chromedp.Click(chromedp.CSS("#bind-button")))
	br.waitFor("the binding", `document.querySelector('#bindings li.binding[data-active="true"]') !== null`)
	got := goRequestBody(t, a, []byte(`{"headline":"cheese melts"}`), "POST", "news", "today")
	if len(got) != 1 || got[0].code != 200 {
		t.Fatalf("answers to the event = %+v, want the page's 200", got)
	}
	br.waitFor("the event in the log", `[...document.querySelectorAll("#events li.event")].some(li => li.dataset.resource === "/news/today" && li.textContent.includes("cheese melts"))`)
	// The peer keeps what it received: the event is among its recent
	// dispatches.
	br.waitFor("the event among the recent dispatches", `!document.getElementById("recent-card").hidden && [...document.querySelectorAll("#recent td")].some(td => td.textContent === "POST /news/today")`)

	// The replica action, for the second peer, with its report.
	br.run("adding a replica", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#saturation tr[data-peer=%q] button.replica`, bID))))
	select {
	case raw := <-replicas:
		var r map[string]any
		if err := json.Unmarshal(raw, &r); err != nil || r["peer"] != bID || r["sat"] == nil {
			t.Fatalf("the action got %s (%v), want the report of %s", raw, err, bID)
		}
		if _, ok := r["ageMs"]; ok {
			t.Fatalf("the action got the table's entry, not the report: %s", raw)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the replica action did not run")
	}
	br.waitFor("the action's result", `document.getElementById("replica-result").textContent.includes("ran for")`)

	// Released, the binding is gone from the peer: nothing answers.
	br.run("releasing", chromedp.Click(chromedp.CSS("#bindings li.binding button.release")))
	br.waitFor("the binding to go", `document.querySelectorAll("#bindings li").length === 0`)
	if got := goRequest(t, a, "POST", "news", "later"); len(got) != 1 || got[0].code != 404 {
		t.Fatalf("answers after the release = %+v, want 404", got)
	}
}

// TestDashboardWithoutReplicaAction: with no AddReplica, the page has no
// button for it.
func TestDashboardWithoutReplicaAction(t *testing.T) {
	requireChromium(t)
	ui := newUIServer(t)
	cfg := testPeerConfig(t)
	cfg.GatewayOrigins = ui.origins(t)
	a := startPeer(t, cfg)
	page := ui.serve(t, a)
	br := newBrowser(t)
	br.run("loading the dashboard", chromedp.Navigate(page))
	br.waitFor("the peer's own saturation row", fmt.Sprintf(`document.querySelector('#saturation tr[data-peer=%q]') !== null`, a.Host.ID()))
	if n := eval[int](br, `document.querySelectorAll("button.replica").length`); n != 0 {
		t.Fatalf("%d replica buttons without an action", n)
	}
}

// clientResult is what tests.request in testdata/client.html returns.
type clientResult struct {
	ID       string `json:"id"`
	Complete bool   `json:"complete"`
	Answers  []struct {
		Code int             `json:"code"`
		Trig string          `json:"trig"`
		Body json.RawMessage `json:"body"`
	} `json:"answers"`
}

func (r clientResult) codes() []int {
	var out []int
	for _, a := range r.Answers {
		out = append(out, a.Code)
	}
	return out
}

// TestClientModule drives jstp.js from a page of another origin, as an
// application's page would use it: imported from the peer's WebSocket
// gateway, talking to the peer through it.
func TestClientModule(t *testing.T) {
	requireChromium(t)
	pages := httptest.NewUnstartedServer(http.FileServer(http.Dir("testdata")))
	t.Cleanup(pages.Close)
	origin := "http://" + pages.Listener.Addr().String()

	cfgA := testPeerConfig(t)
	cfgA.GatewayOrigins = []string{origin}
	slow := make(chan struct{})
	t.Cleanup(func() { close(slow) })
	cfgA.Setup = func(p *node.Peer) error {
		// Two handlers of one resource: two answers per request.
		for _, who := range []string{"one", "two"} {
			if _, err := p.Node.Handle(dispatch.Endpoint{Method: "GET", Resource: []string{"multi"}}, func(context.Context, *node.Incoming) (any, error) {
				return who, nil
			}); err != nil {
				return err
			}
		}
		_, err := p.Node.Handle(dispatch.Endpoint{Method: "GET", Resource: []string{"slow"}}, func(ctx context.Context, _ *node.Incoming) (any, error) {
			select {
			case <-slow:
			case <-ctx.Done():
			}
			return "late", nil
		})
		return err
	}
	a := startPeer(t, cfgA)
	cfgB := testPeerConfig(t)
	cfgB.Mesh.Bootstrap = addrStrings(a.Host.Addrs())
	cfgB.Setup = func(p *node.Peer) error {
		_, err := p.Node.Handle(dispatch.Endpoint{Method: "GET", Resource: []string{"menu"}}, func(context.Context, *node.Incoming) (any, error) {
			return p.Host.ID().String(), nil
		})
		return err
	}
	b := startPeer(t, cfgB)
	connected(t, a, b)
	aID, bID := a.Host.ID().String(), b.Host.ID().String()
	pages.Start()
	br := newBrowser(t)

	br.run("loading the page", chromedp.Navigate(pages.URL+"/client.html?gw="+url.QueryEscape(wsGateway(a))))
	br.waitFor("jstp.js imported from the gateway", `document.getElementById("state").textContent === "ready"`)
	if !eval[bool](br, `tests.connect()`) {
		t.Fatal("connect: the client is not open")
	}
	request := func(d string, timeoutMS int) clientResult {
		t.Helper()
		return eval[clientResult](br, fmt.Sprintf(`tests.request(%s, %d)`, d, timeoutMS))
	}

	// The transactions below must end when their answers are in, long
	// before their 60 s deadline: waiting for it would time the test out.
	r := request(`{method: "GET", resource: ["peer"]}`, 60000)
	var info node.PeerInfo
	if !r.Complete || len(r.Answers) != 1 || r.Answers[0].Code != 200 || json.Unmarshal(r.Answers[0].Body, &info) != nil || info.ID != aID {
		t.Fatalf(`GET ["peer"]: %+v`, r)
	}

	r = request(`{method: "GET", resource: ["multi"]}`, 60000)
	bodies := []string{}
	for _, x := range r.Answers {
		bodies = append(bodies, string(x.Body))
	}
	slices.Sort(bodies)
	if !r.Complete || !slices.Equal(r.codes(), []int{200, 200}) || !slices.Equal(bodies, []string{`"one"`, `"two"`}) ||
		r.Answers[0].Trig == "" || r.Answers[0].Trig == r.Answers[1].Trig {
		t.Fatalf(`GET ["multi"] (two handlers): %+v`, r)
	}

	r = request(fmt.Sprintf(`{method: "GET", resource: ["menu"], host: [%q]}`, bID), 60000)
	if !r.Complete || len(r.Answers) != 1 || r.Answers[0].Code != 200 || string(r.Answers[0].Body) != fmt.Sprintf("%q", bID) {
		t.Fatalf(`GET ["menu"] on the other peer: %+v`, r)
	}

	r = request(`{method: "GET", resource: ["nobody"]}`, 60000)
	if !r.Complete || !slices.Equal(r.codes(), []int{404}) || r.Answers[0].Trig != "" {
		t.Fatalf(`GET ["nobody"]: %+v`, r)
	}

	// A handler that does not answer in time: the client's own 504.
	r = request(`{method: "GET", resource: ["slow"]}`, 300)
	if !r.Complete || !slices.Equal(r.codes(), []int{504}) {
		t.Fatalf(`GET ["slow"] with a 300 ms deadline: %+v`, r)
	}

	// Too large to send: refused before it is written.
	r = request(`{method: "POST", resource: ["x"], body: "x".repeat(1 << 20)}`, 60000)
	if !slices.Equal(r.codes(), []int{413}) {
		t.Fatalf("a dispatch over 1 MiB: %+v", r)
	}

	// Leaving the loop early abandons the transaction.
	ab := eval[struct {
		N        int  `json:"n"`
		Complete bool `json:"complete"`
	}](br, `tests.abandon({method: "GET", resource: ["multi"]})`)
	if ab.N != 1 || ab.Complete {
		t.Fatalf("abandoned transaction: %+v", ab)
	}

	// A binding receives what the peer processes and answers for it.
	type bound struct {
		Active   bool              `json:"active"`
		Endpoint dispatch.Endpoint `json:"endpoint"`
	}
	if got := eval[bound](br, `tests.bind("news", {method: "post", resource: ["news", ":what"]})`); !got.Active || got.Endpoint.Method != "POST" {
		t.Fatalf("bind: %+v", got)
	}
	if got := goRequestBody(t, a, []byte(`{"n":1}`), "POST", "news", "today"); len(got) != 1 || got[0].code != 200 || got[0].body != `{"seen":"news"}` {
		t.Fatalf("answers to the event = %+v, want the page's", got)
	}
	type event struct {
		Name     string            `json:"name"`
		Method   string            `json:"method"`
		Resource []any             `json:"resource"`
		Params   map[string]string `json:"params"`
		Body     json.RawMessage   `json:"body"`
		Token    []any             `json:"token"`
	}
	events := eval[[]event](br, `tests.events()`)
	if len(events) != 1 || events[0].Method != "POST" || events[0].Params["what"] != "today" || string(events[0].Body) != `{"n":1}` || len(events[0].Token) < 2 {
		t.Fatalf("events = %+v", events)
	}

	// Overlapping bindings each get their own copy, once.
	if got := eval[bound](br, `tests.bind("all", {method: "POST", resource: ["news", "..."]})`); !got.Active {
		t.Fatalf("bind: %+v", got)
	}
	got := goRequest(t, a, "POST", "news", "both")
	seen := []string{}
	for _, x := range got {
		seen = append(seen, fmt.Sprintf("%d %s", x.code, x.body))
	}
	slices.Sort(seen)
	if !slices.Equal(seen, []string{`200 {"seen":"all"}`, `200 {"seen":"news"}`}) {
		t.Fatalf("answers with two bindings = %v", seen)
	}

	// Released, a binding gets nothing more; the other still does.
	type released struct {
		Active bool   `json:"active"`
		Error  string `json:"error"`
		Code   int    `json:"code"`
	}
	if rel := eval[released](br, `tests.release("news")`); rel.Active || rel.Error != "" {
		t.Fatalf("release: %+v", rel)
	}
	if got := goRequest(t, a, "POST", "news", "after"); len(got) != 1 || got[0].body != `{"seen":"all"}` {
		t.Fatalf("answers after one release = %+v", got)
	}
	if rel := eval[released](br, `tests.release("all")`); rel.Active || rel.Error != "" {
		t.Fatalf("release: %+v", rel)
	}
	if got := goRequest(t, a, "POST", "news", "gone"); len(got) != 1 || got[0].code != 404 {
		t.Fatalf("answers after both releases = %+v, want 404", got)
	}
	r = request(`{method: "RELEASE", endpoint: {method: "POST", resource: ["never", "bound"]}}`, 60000)
	if !slices.Equal(r.codes(), []int{406}) {
		t.Fatalf("RELEASE of nothing: %+v", r)
	}

	// A binding on the other peer, through this one: its events travel
	// by gossip.
	if got := eval[bound](br, fmt.Sprintf(`tests.bind("remote", {method: "POST", resource: ["alerts", "*"]}, [%q])`, bID)); !got.Active {
		t.Fatalf("remote bind: %+v", got)
	}
	if err := b.Node.Send(t.Context(), dispatch.New("POST", "alerts", "fire")); err != nil {
		t.Fatal(err)
	}
	br.waitFor("the other peer's event", `tests.events().some(e => e.name === "remote" && e.resource.join("/") === "alerts/fire")`)

	// Patterns match as the peer matches them.
	for _, c := range []struct {
		pattern, resource, want string
	}{
		{`["path","...","text","...",":ext"]`, `["path","folder","internal","text","value","txt"]`, `{"ext":"txt"}`},
		{`["path","...","text","...",":ext"]`, `["path","text","md"]`, `{"ext":"md"}`},
		{`["users",":id"]`, `["users",97]`, `{"id":"97"}`},
		{`["a","\\*"]`, `["a","*"]`, `{}`},
		{`["a","\\*"]`, `["a","b"]`, `null`},
		{`["a","*"]`, `["a"]`, `null`},
		{`["a","..."]`, `["a"]`, `{}`},
	} {
		got := eval[string](br, fmt.Sprintf(`JSON.stringify(tests.match(%s, %s))`, c.pattern, c.resource))
		if got != c.want {
			t.Errorf("match(%s, %s) = %s, want %s", c.pattern, c.resource, got, c.want)
		}
	}

	// A gateway that does not accept this page's origin refuses it.
	if msg := eval[string](br, fmt.Sprintf(`tests.connectTo(%q)`, wsGateway(b))); !strings.Contains(msg, "cannot connect") {
		t.Fatalf("connecting to a gateway that refuses the origin: %q", msg)
	}

	// A connection that closes ends its pending transactions with an error.
	if name := eval[string](br, `tests.closeAndRequest()`); name != "ClosedError" {
		t.Fatalf("pending request on a closed connection: %s", name)
	}
}
