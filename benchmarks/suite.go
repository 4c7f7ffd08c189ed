package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// suite runs the selected benchmarks and holds the processes they need,
// started on first use.
type suite struct {
	ctx      context.Context
	o        options
	children []*child
	a, b     *child // mesh peers
	rawA     *child
	rawB     *child
	rawRelay *child
	natsProc []*child // server, responder
	nats     *natsClient
	gw       *gatewayClient
	line     []byte // the encoded dispatch A sends B, newline-terminated
	res      *results
	series   map[string]*series
}

// series is one measurement's rounds.
type series struct {
	key, label string
	pipelined  bool
	run        func(n int) (roundResult, error)
	rounds     []roundResult
	warm       roundResult
	procs      []int         // the processes on the path, for counting writes
	writes     uint64        // their write system calls during the rounds
	switches   uint64        // their threads' context switches during the rounds
	cpu        time.Duration // their threads' CPU time during the rounds
}

func run(ctx context.Context, o options) error {
	s := &suite{ctx: ctx, o: o, res: newResults(o), series: map[string]*series{}}
	defer s.close()
	if err := s.runAll(); err != nil {
		return err
	}
	s.collectProblems()
	if o.json {
		return s.res.printJSON(os.Stdout)
	}
	s.res.printTable(os.Stdout)
	return nil
}

// measurements of each group, in the order they run; the gateway group
// measures its own baselines so that -only gateway still has them.
var groupKeys = map[string][]string{
	"roundtrip": {"rtt/mesh", "rtt/raw-stream", "rtt/raw-tcp"},
	"pipelined": {"pipe/mesh", "pipe/raw-stream", "pipe/raw-each"},
	"gateway":   {"rtt/gateway", "rtt/mesh", "rtt/nats", "rtt/raw-tcp", "rtt/raw-relay", "pipe/gateway", "pipe/mesh", "pipe/nats"},
}

func (s *suite) runAll() error {
	if s.o.selected("memory") {
		// Idle means before any request: measured as soon as the
		// peers are up, before anything else runs.
		if err := s.memoryIdle(); err != nil {
			return err
		}
	}
	var keys []string
	for _, g := range groups {
		if s.o.selected(g) {
			for _, k := range groupKeys[g] {
				if !slices.Contains(keys, k) {
					keys = append(keys, k)
				}
			}
		}
	}
	for _, k := range keys {
		if err := s.prepare(k); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	// A warm-up opens connections and streams and lets each process
	// reach its working size; it is not reported.
	for _, k := range keys {
		se := s.series[k]
		r, err := se.run(max(s.o.depth, s.count(se)/5))
		if err == nil {
			err = s.checkChildren()
		}
		if err != nil {
			return fmt.Errorf("%s warm-up: %w", k, err)
		}
		se.warm = r
	}
	// Rounds interleave the measurements, so a change in the machine's
	// load during the run affects every one of them alike.
	for round := range s.o.rounds {
		for _, k := range keys {
			se := s.series[k]
			w0 := writeCalls(se.procs)
			c0, cpu0 := threadStats(se.procs)
			r, err := se.run(s.count(se))
			se.writes += writeCalls(se.procs) - w0
			c1, cpu1 := threadStats(se.procs)
			se.switches += c1 - c0
			se.cpu += cpu1 - cpu0
			if err == nil {
				err = s.checkChildren()
			}
			if err != nil {
				return fmt.Errorf("%s round %d: %w", k, round+1, err)
			}
			se.rounds = append(se.rounds, r)
		}
	}
	for _, k := range keys {
		s.res.addSeries(s.series[k])
	}
	if s.o.selected("memory") {
		if err := s.memoryBurst(); err != nil {
			return err
		}
	}
	s.res.addRatios()
	return nil
}

// pipeFactor scales a pipelined round: it runs many times faster than
// one of round trips, and must last long enough to be measured.
const pipeFactor = 10

// count is the number of requests in one round of se.
func (s *suite) count(se *series) int {
	if se.pipelined {
		return s.o.n * pipeFactor
	}
	return s.o.n
}

// rawOps are the raw baselines: raw-a's command and the label of each.
var rawOps = map[string]struct{ op, label string }{
	"rtt/raw-stream":  {"rtt-stream", "raw libp2p stream echo"},
	"pipe/raw-stream": {"pipe-stream", "raw libp2p stream echo"},
	"pipe/raw-each":   {"pipe-each", "raw libp2p stream echo, write per line"},
	"rtt/raw-tcp":     {"rtt-tcp", "raw TCP echo"},
	"rtt/raw-relay":   {"rtt-relay", "raw TCP echo through a relay process"},
}

// prepare starts what measurement key needs and registers it.
func (s *suite) prepare(key string) error {
	if err := s.peers(); err != nil {
		return err
	}
	se := &series{key: key, pipelined: key[:4] == "pipe"}
	a := s.a
	child := func(c *child, op string, line bool) func(n int) (roundResult, error) {
		return func(n int) (roundResult, error) {
			cmd := command{Op: op, N: n, Depth: s.o.depth}
			if line {
				cmd.Line = s.line
			}
			r, err := c.do(s.ctx, cmd)
			return r.Round, err
		}
	}
	switch key {
	case "rtt/mesh":
		se.label, se.run = "mesh Request → answer", child(a, "rtt", false)
		se.procs = []int{a.pid(), s.b.pid()}
	case "pipe/mesh":
		se.label, se.run = "mesh Request → answer", child(a, "pipe", false)
		se.procs = []int{a.pid(), s.b.pid()}
	case "rtt/raw-stream", "pipe/raw-stream", "pipe/raw-each", "rtt/raw-tcp", "rtt/raw-relay":
		if err := s.raw(); err != nil {
			return err
		}
		op := rawOps[key]
		se.label, se.run = op.label, child(s.rawA, op.op, true)
		se.procs = []int{s.rawA.pid(), s.rawB.pid()}
		if key == "rtt/raw-relay" {
			se.procs = append(se.procs, s.rawRelay.pid())
		}
	case "rtt/gateway", "pipe/gateway":
		if err := s.gateway(); err != nil {
			return err
		}
		se.label = "classic TCP gateway → mesh"
		se.procs = []int{os.Getpid(), a.pid(), s.b.pid()}
		se.run = func(n int) (roundResult, error) { return s.gw.roundTrips(n) }
		if se.pipelined {
			se.run = func(n int) (roundResult, error) { return s.gw.pipeline(n, s.o.depth) }
		}
	case "rtt/nats", "pipe/nats":
		if err := s.natsPair(); err != nil {
			return err
		}
		se.label = "NATS request-reply"
		se.procs = []int{os.Getpid(), s.natsProc[0].pid(), s.natsProc[1].pid()}
		se.run = func(n int) (roundResult, error) { return roundTrips(n, s.nats.request) }
		if se.pipelined {
			se.run = func(n int) (roundResult, error) { return pipelined(n, s.o.depth, s.nats.request) }
		}
	default:
		return fmt.Errorf("unknown measurement %q", key)
	}
	s.series[key] = se
	return nil
}

// checkChildren fails the run when a process of it has ended: a peer
// gone would otherwise show as rounds of fast error answers.
func (s *suite) checkChildren() error {
	for _, c := range s.children {
		if c.exited() {
			return fmt.Errorf("%s exited (%v)%s", c.role, c.waitErr, c.logs.tail())
		}
	}
	return nil
}

func (s *suite) spawn(role string, args ...string) (*child, error) {
	if s.o.prof != "" {
		args = append(args, "-role-cpuprofile", filepath.Join(s.o.prof, role+".pprof"))
	}
	if s.o.trace != "" {
		args = append(args, "-role-trace", filepath.Join(s.o.trace, role+".trace"))
	}
	if s.o.pin {
		args = append(args, "-role-cpu", strconv.Itoa(cpuOf(role)))
	}
	c, err := spawn(s.ctx, role, args...)
	if err != nil {
		return nil, err
	}
	s.children = append(s.children, c)
	return c, nil
}

// peers starts peer B, then peer A bootstrapping to it.
func (s *suite) peers() error {
	if s.a != nil {
		return nil
	}
	b, err := s.spawn("peer-b")
	if err != nil {
		return err
	}
	a, err := s.spawn("peer-a", "-boot", b.info.Addr)
	if err != nil {
		return err
	}
	s.a, s.b = a, b
	d := dispatch.New("GET", "bench", "1")
	d.Host = []dispatch.Host{{Name: b.info.ID}}
	d.Token = []any{newUUID()}
	s.line = append(d.AppendJSON(nil), '\n')
	s.res.LineBytes = len(s.line)
	return s.connections("mesh", a, b)
}

// raw starts the raw echo host, then the host that dials it.
func (s *suite) raw() error {
	if s.rawA != nil {
		return nil
	}
	b, err := s.spawn("raw-b")
	if err != nil {
		return err
	}
	relay, err := s.spawn("raw-relay", "-tcp", b.info.TCP)
	if err != nil {
		return err
	}
	a, err := s.spawn("raw-a", "-peer", b.info.Addr, "-tcp", b.info.TCP, "-relay", relay.info.TCP)
	if err != nil {
		return err
	}
	s.rawA, s.rawB, s.rawRelay = a, b, relay
	return s.connections("raw stream", a, b)
}

// connections records what each side of a pair negotiated with the other.
func (s *suite) connections(name string, a, b *child) error {
	for _, side := range []struct {
		from, to *child
		label    string
	}{{a, b, name + " A→B"}, {b, a, name + " B→A"}} {
		r, err := side.from.do(s.ctx, command{Op: "conns"})
		if err != nil {
			return err
		}
		var found []connInfo
		for _, c := range r.Conns {
			if c.Peer == side.to.info.ID {
				found = append(found, c)
			}
		}
		if len(found) == 0 {
			return fmt.Errorf("%s: no connection", side.label)
		}
		s.res.Connections = append(s.res.Connections, namedConn{Name: side.label, Count: len(found), Conn: found[0]})
	}
	return nil
}

// gateway connects the parent to peer A's classic TCP gateway.
func (s *suite) gateway() error {
	if s.gw != nil {
		return nil
	}
	g, err := dialGateway(s.a.info.Gateway, s.b.info.ID)
	if err != nil {
		return err
	}
	s.gw = g
	return nil
}

// natsPair starts nats-server and the responder, and connects the
// parent as the requester.
func (s *suite) natsPair() error {
	if s.nats != nil {
		return nil
	}
	srv, err := s.spawn("nats-server")
	if err != nil {
		return err
	}
	resp, err := s.spawn("nats-responder", "-url", srv.info.URL)
	if err != nil {
		return err
	}
	s.natsProc = []*child{srv, resp}
	s.nats, err = dialNATS(srv.info.URL, s.line)
	return err
}

func (s *suite) close() {
	if s.gw != nil {
		s.gw.close()
	}
	if s.nats != nil {
		s.nats.close()
	}
	stopAll(s.children)
}

// newUUID returns a random version-4 UUID, the form of the transaction
// ids the engine generates, so the baselines' line is the mesh's size.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
