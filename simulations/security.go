package simulations

import (
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/identity"
	"github.com/jstp-peer/jstp-peer/node"
)

var security = Scenario{
	Name:  "security",
	Title: "forged, tampered and replayed dispatches from a third of the peers: none accepted",
	Summary: "A third of the peers inject dispatches with a forged author, tampered copies of signed ones, exact replays and signed dispatches outside the timestamp window " +
		"toward a peer that keeps a ledger, on a raw dispatch stream and through honest gateways, while honest peers send it signed dispatches through gateways; " +
		"no injected dispatch may run, every one must be refused with 401, and every honest one must be answered 200 with its true author.",
	PeersFlag:    "peers in all: one target, a third attackers (at least 2), a tenth gateways (at least 2), the rest honest clients",
	DefaultPeers: 30,
	run:          runSecurity,
}

// What the attackers inject. Every kind goes to the target both ways
// (pathDirect, pathGateway).
const (
	// kindForged names an honest client as author over a signature it
	// never made.
	kindForged = "forged author"
	// kindTampered is a dispatch an honest client signed, changed after.
	kindTampered = "tampered"
	// kindReplayed is an exact copy of a dispatch an honest client
	// signed and sent, which the target already ran, sent again within
	// the replay window.
	kindReplayed = "replayed"
	// kindStale is signed by an honest client with a timestamp outside
	// the skew the receiver allows (an old capture, or one stamped
	// ahead to outlive the replay memory).
	kindStale = "stale timestamp"
	// kindLate is an exact copy of a dispatch the target ran, sent again
	// once the replay window has passed and the receivers' replay memory
	// has forgotten it: only the timestamp check stands in the way.
	kindLate = "replayed after the window"
)

var secKinds = []string{kindForged, kindTampered, kindReplayed, kindStale, kindLate}

const (
	// pathDirect is the attacker's own libp2p stream to the target under
	// mesh.ProtocolID, written frame by frame: no engine of the
	// attacker's in the way, as a peer running other software would.
	pathDirect = "direct"
	// pathGateway is the attacker's engine (Node.Request) with a host
	// chain through an honest gateway: the dispatch crosses a peer that
	// verifies it before the target would.
	pathGateway = "gateway"
)

// secLedger is what the target's handler ran: for every body id, the
// author it was told, once per run.
type secLedger struct {
	mu   sync.Mutex
	runs map[string][]string
}

func (l *secLedger) add(id, author string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.runs[id] = append(l.runs[id], author)
}

func (l *secLedger) authors(id string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.runs[id])
}

func (l *secLedger) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.runs {
		n += len(a)
	}
	return n
}

// secBody is the ledger entry every dispatch to the target carries.
type secBody struct {
	ID     string `json:"id"`
	Amount int    `json:"amount"`
}

func bodyOf(id string, amount int) json.RawMessage {
	b, _ := json.Marshal(secBody{ID: id, Amount: amount})
	return b
}

// secHonestRec is one honest dispatch's fate.
type secHonestRec struct {
	id      string
	author  string // the client that signed it
	phase   string // "original" or "traffic"
	sent    time.Time
	latency time.Duration
	code    int
}

// secInjection is one injected dispatch's fate.
type secInjection struct {
	kind, path, variant string
	attacker            int
	id                  string // the body id the target's handler would record
	allowed             int    // runs of id that are not injections (the honest original)
	sent                time.Time
	code                int // 0: no answer
	reason              string
}

// secOriginal is a dispatch an honest client signed and sent through a
// gateway, as the bytes an attacker on its way would have copied.
type secOriginal struct {
	raw    []byte
	id     string
	author string
	ts     int64
}

// secAttacker is one attacking peer with what it was given.
type secAttacker struct {
	index int
	peer  *SimPeer
	raw   *rawLink
	// replay and late are honest originals to replay within the window,
	// and once it has passed.
	replay, late []secOriginal
}

// secJob is one injection an attacker plans: what, which way, when,
// and the seed's draws for it.
type secJob struct {
	at      time.Duration // after the phase starts
	kind    string
	path    string
	variant int
	orig    *secOriginal // what a replay copies
	gateway int          // the gateway it goes through, on pathGateway
	claim   int          // the client it claims as author, or has sign
	id      string       // the ledger entry a fresh dispatch makes (a replay makes its original's)
}

// secRun is the scenario in progress.
type secRun struct {
	r        *run
	target   *SimPeer
	gateways []*SimPeer
	clients  []*SimPeer
	keys     []crypto.PrivKey // the clients' identity keys, to sign what attackers are given
	attKeys  []crypto.PrivKey // the attackers' own
	ledger   *secLedger
	deadline time.Duration

	mu         sync.Mutex
	honest     []secHonestRec
	injections []secInjection
}

// secRefusals are the 401s the peers counted (stats.dropped.unauthorized)
// during the attack, by role.
type secRefusals struct {
	Target    uint64 `json:"target"`
	Gateways  uint64 `json:"gateways"`
	Clients   uint64 `json:"clients"`
	Attackers uint64 `json:"attackers"`
}

func runSecurity(ctx context.Context, r *run) error {
	n := max(r.o.Peers, 7)
	attackers := max(2, n/3)
	gateways := max(2, n/10)
	clients := max(2, n-1-attackers-gateways)
	per := 5                   // injections of each kind on each path, per attacker
	attack := 20 * time.Second // the injections within the window are spread over it
	rate := 10.0               // honest dispatches per second, all clients together
	if r.o.Short {
		per = 2
		attack = 5 * time.Second
		rate = 4
	}
	skew := identity.DefaultReplaySkew
	// Past the skew by more than any delay on the way, so a late replay
	// is stale on arrival at every peer it reaches.
	lateMargin := 5 * time.Second
	total := 1 + gateways + clients + attackers
	r.res.Topology = Flat.Name
	r.res.Peers = total
	r.res.Params = map[string]any{
		"target": 1, "gateways": gateways, "clients": clients, "attackers": attackers,
		"injectionsPerKindPathAttacker": per, "attackSec": attack.Seconds(), "honestPerSec": rate,
		"replaySkewSec": skew.Seconds(), "lateReplayAfterSec": (skew + lateMargin).Seconds(),
	}

	c, err := NewCluster(r.o.Network, Flat, r.o.Seed, r.log)
	if err != nil {
		return err
	}
	defer c.Close()
	s := &secRun{r: r, ledger: &secLedger{runs: map[string][]string{}}, deadline: node.DefaultAnswerTimeout + 5*time.Second}
	// Nobody here measures load: reports would only add gossip (and
	// signature checks) to the run.
	quiet := time.Hour
	// The target and the gateways keep a connection to every peer that
	// sends through them.
	hub := func(setup func(*node.Peer) error) Spec {
		return Spec{Region: 0, DHTServer: true, Interval: quiet, ConnLow: total + 16, ConnHigh: 2*total + 32, Setup: setup}
	}
	ledgerEP := dispatch.Endpoint{Method: dispatch.POST, Resource: []string{"ledger"}}
	s.target, err = c.Start(ctx, hub(func(p *node.Peer) error {
		_, err := p.Node.Handle(ledgerEP, func(_ context.Context, in *node.Incoming) (any, error) {
			var b secBody
			if err := json.Unmarshal(in.Dispatch.Body, &b); err != nil || b.ID == "" {
				return nil, dispatch.Errorf(dispatch.ErrBadDispatch, "ledger: the body needs an id")
			}
			s.ledger.add(b.ID, in.Author)
			return map[string]string{"recorded": b.ID}, nil
		})
		return err
	}))
	if err != nil {
		return fmt.Errorf("security: target: %w", err)
	}
	var specs []Spec
	for range gateways {
		specs = append(specs, hub(nil))
	}
	for range clients + attackers {
		specs = append(specs, Spec{Region: 0, Interval: quiet})
	}
	peers, err := c.StartMany(ctx, specs, 16, func(done int) { r.progress("starting peers", done, len(specs)) })
	if err != nil {
		return fmt.Errorf("security: peers: %w", err)
	}
	s.gateways = peers[:gateways]
	s.clients = peers[gateways : gateways+clients]
	attackerPeers := peers[gateways+clients:]
	// Host chains name peers by id: every peer learns where the target
	// and the gateways are, as it would have from the DHT.
	known := append([]*SimPeer{s.target}, s.gateways...)
	for _, p := range append([]*SimPeer{s.target}, peers...) {
		for _, q := range known {
			if q != p {
				p.Host.LibP2P().Peerstore().AddAddrs(q.ID(), q.Host.Addrs(), peerstore.PermanentAddrTTL)
			}
		}
	}
	for _, cl := range s.clients {
		k := cl.Host.LibP2P().Peerstore().PrivKey(cl.ID())
		if k == nil {
			return fmt.Errorf("security: client %d: no identity key in its peerstore", cl.Index)
		}
		s.keys = append(s.keys, k)
	}
	for _, p := range attackerPeers {
		k := p.Host.LibP2P().Peerstore().PrivKey(p.ID())
		if k == nil {
			return fmt.Errorf("security: attacker %d: no identity key in its peerstore", p.Index)
		}
		s.attKeys = append(s.attKeys, k)
	}
	rng := mrand.New(mrand.NewPCG(r.o.Seed, 0x5ec))

	// Honest clients sign and send the originals the attackers will
	// replay: the bytes a gateway on their way would have copied.
	as := make([]*secAttacker, attackers)
	var wg sync.WaitGroup
	done := 0
	var dmu sync.Mutex
	originals := 2 * per * attackers
	for k, p := range attackerPeers {
		a := &secAttacker{index: k, peer: p, replay: make([]secOriginal, per), late: make([]secOriginal, per)}
		as[k] = a
		for j := range 2 * per {
			ci, gi := rng.IntN(clients), rng.IntN(gateways)
			slot := &a.replay[j%per]
			if j >= per {
				slot = &a.late[j%per]
			}
			wg.Go(func() {
				*slot = s.sendOriginal(ctx, ci, gi, fmt.Sprintf("orig-a%d-%d", k, j))
				dmu.Lock()
				done++
				r.progress("honest originals", done, originals)
				dmu.Unlock()
			})
		}
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	lateAt := time.Time{}
	for _, a := range as {
		for _, o := range a.late {
			if t := time.UnixMilli(o.ts).Add(skew + lateMargin); t.After(lateAt) {
				lateAt = t
			}
		}
	}

	for _, a := range as {
		a.raw, err = openRaw(ctx, a.peer, s.target.ID())
		if err != nil {
			return fmt.Errorf("security: attacker %d: %w", a.index, err)
		}
		defer a.raw.close()
	}
	before := s.refusals(attackerPeers)

	// Honest traffic runs from the first injection until the late
	// replays have their answers.
	start := time.Now()
	honestCtx, stopHonest := context.WithCancel(ctx)
	var honestWG sync.WaitGroup
	defer func() {
		stopHonest()
		honestWG.Wait()
	}()
	for ci := range s.clients {
		crng := mrand.New(mrand.NewPCG(r.o.Seed, 0x5ec0+uint64(ci)))
		honestWG.Go(func() { s.honestTraffic(honestCtx, ci, crng, rate/float64(clients)) })
	}

	var attackWG sync.WaitGroup
	var jmu sync.Mutex
	fired := 0
	schedule := func(a *secAttacker, list []secJob, from time.Time, phase string, count int) {
		for _, j := range list {
			attackWG.Go(func() {
				if !sleepCtx(ctx, time.Until(from.Add(j.at))) {
					return
				}
				s.inject(ctx, a, j)
				jmu.Lock()
				fired++
				r.progress(phase, fired, count)
				jmu.Unlock()
			})
		}
	}
	lists, lateLists := make([][]secJob, attackers), make([][]secJob, attackers)
	jobs, lateCount := 0, 0
	for k, a := range as {
		arng := mrand.New(mrand.NewPCG(r.o.Seed, 0xa77ac0+uint64(k)))
		job := func(kind, path string, i int, within time.Duration, orig *secOriginal) secJob {
			return secJob{
				at: time.Duration(arng.Float64() * float64(within)), kind: kind, path: path, variant: i, orig: orig,
				gateway: arng.IntN(gateways), claim: arng.IntN(clients),
				id: fmt.Sprintf("%s-a%d-%s-%d", strings.Fields(kind)[0], k, path, i),
			}
		}
		for p, path := range []string{pathDirect, pathGateway} {
			for i := range per {
				// Variants alternate across both paths, so each gets
				// half of a kind's injections in all.
				v := p*per + i
				lists[k] = append(lists[k],
					job(kindForged, path, v, attack, nil),
					job(kindTampered, path, v, attack, nil),
					job(kindStale, path, v, attack, nil),
					job(kindReplayed, path, v, attack, &a.replay[i]),
				)
				lateLists[k] = append(lateLists[k], job(kindLate, path, v, 2*time.Second, &a.late[i]))
			}
		}
		jobs += len(lists[k])
		lateCount += len(lateLists[k])
	}
	for k, a := range as {
		schedule(a, lists[k], start, "injecting", jobs)
	}
	attackWG.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}

	// The late replays wait for the window to pass: the receivers'
	// replay memory forgets a dispatch once its timestamp is out of it.
	wait := time.Until(lateAt)
	for w := time.Duration(0); w < wait; w += time.Second {
		r.progress("waiting for the replay window to pass", int(w/time.Second), int(wait/time.Second)+1)
		if !sleepCtx(ctx, min(time.Second, wait-w)) {
			return ctx.Err()
		}
	}
	lateStart := time.Now()
	fired = 0
	for k, a := range as {
		schedule(a, lateLists[k], lateStart, "late replays", lateCount)
	}
	attackWG.Wait()
	stopHonest()
	honestWG.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	after := s.refusals(attackerPeers)
	end := time.Now()
	r.progress("done", 1, 1)
	s.report(start, lateStart, end, before, after, jobs+lateCount)
	return nil
}

// sendOriginal has client ci sign a dispatch and send it through gateway
// gi to the target, and returns its bytes as they left the client.
func (s *secRun) sendOriginal(ctx context.Context, ci, gi int, id string) secOriginal {
	cl := s.clients[ci]
	d := dispatch.New(dispatch.POST, "ledger")
	d.Token = []any{uuid.NewString()}
	d.Body = bodyOf(id, 1+ci)
	o := secOriginal{id: id, author: cl.ID().String(), ts: d.Timestamp}
	if err := identity.Sign(s.keys[ci], d); err != nil {
		// Unsignable material is an error of the scenario: the honest
		// record below shows it as not answered.
		s.r.log.Error("cannot sign an original", "err", err)
		s.recordHonest(secHonestRec{id: id, author: o.author, phase: "original", sent: time.Now()})
		return o
	}
	d.Host = []dispatch.Host{{Name: s.gateways[gi].ID().String()}, {Name: s.target.ID().String()}}
	o.raw = d.AppendJSON(nil)
	s.honestRequest(ctx, cl, d, id, "original")
	return o
}

// honestTraffic has client ci send signed dispatches through a random
// gateway, as a Poisson process at rate per second, until ctx ends. The
// client's engine signs them: they cross more than one link.
func (s *secRun) honestTraffic(ctx context.Context, ci int, rng *mrand.Rand, rate float64) {
	cl := s.clients[ci]
	var wg sync.WaitGroup
	defer wg.Wait()
	for n := 0; ; n++ {
		if !sleepCtx(ctx, exp(rng, rate)) {
			return
		}
		id := fmt.Sprintf("h%d-%d", ci, n)
		d := dispatch.New(dispatch.POST, "ledger")
		d.Body = bodyOf(id, 1+rng.IntN(100))
		d.Host = []dispatch.Host{{Name: s.gateways[rng.IntN(len(s.gateways))].ID().String()}, {Name: s.target.ID().String()}}
		wg.Go(func() { s.honestRequest(ctx, cl, d, id, "traffic") })
	}
}

// honestRequest sends d from cl and records its final answer. A request
// sent is seen through to its answer or its deadline even when the run
// stops sending: cancelling it would leave it with no answer at all.
func (s *secRun) honestRequest(ctx context.Context, cl *SimPeer, d *dispatch.Dispatch, id, phase string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.deadline)
	defer cancel()
	rec := secHonestRec{id: id, author: cl.ID().String(), phase: phase, sent: time.Now()}
	ch, err := cl.Node.Request(rctx, d)
	if err != nil {
		s.r.log.Warn("honest dispatch refused by its own peer", "id", id, "err", err)
	} else {
		rec.code, _ = finalAnswer(ch)
		rec.latency = time.Since(rec.sent)
	}
	s.recordHonest(rec)
}

func (s *secRun) recordHonest(rec secHonestRec) {
	s.mu.Lock()
	s.honest = append(s.honest, rec)
	s.mu.Unlock()
}

// finalAnswer reads a transaction's answers to the end and returns the
// first final one's code and message (an error's text, for refusals).
func finalAnswer(ch <-chan *dispatch.Dispatch) (int, string) {
	code, msg := 0, ""
	for a := range ch {
		c, _, _, ok := a.AnswerInfo()
		if !ok || c < 200 || code != 0 {
			continue
		}
		code, msg = c, answerText(a.Body)
	}
	return code, msg
}

// answerText is an answer body as text: refusals carry the error as a
// JSON string.
func answerText(body json.RawMessage) string {
	var s string
	if json.Unmarshal(body, &s) == nil {
		return s
	}
	return string(body[:min(len(body), 200)])
}

// refusalReason names why a refusal was made, from its message.
func refusalReason(code int, msg string) string {
	switch {
	case code == 0:
		return "no answer"
	case strings.Contains(msg, "seen before"):
		return "seen before"
	case strings.Contains(msg, "engine's clock"):
		return "outside the skew"
	case strings.Contains(msg, "bad signature"):
		return "bad signature"
	case code == 200:
		return "accepted"
	}
	return fmt.Sprintf("%d %s", code, msg[:min(len(msg), 60)])
}
