package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/saturation"
)

// SaturationTopic is the gossipsub topic every peer publishes its
// saturation reports on (docs/saturation.md).
const SaturationTopic = "/jstp/0.4/saturation"

// NameTopic is the gossipsub topic of the replicas of one service name:
// each publishes its reports there as well, and a peer that sends to the
// name follows it, so it hears of the replicas it can use even when it
// does not follow the overview (SaturationConfig.NoOverview).
func NameTopic(name string) string { return SaturationTopic + "/" + name }

// maxFollowed bounds the name topics one peer follows.
const maxFollowed = 256

// SaturationConfig configures a peer's saturation reports; zero values
// take the defaults.
type SaturationConfig struct {
	// Source is what the peer measures. Default: the machine's disk (the
	// filesystem of PeerConfig.DataDir), RAM, CPU and network, read with
	// gopsutil; simulations and tests give their own.
	Source saturation.Source
	// Interval is how often the peer samples its load. Default:
	// saturation.DefaultInterval (2 s). It publishes its report at once on
	// a significant change, and otherwise every HeartbeatEvery intervals.
	Interval time.Duration
	// Capacity is the capacity the peer declares to the others: how much
	// work it can do relative to the other replicas of its names, which
	// weighted replica policies share requests by. Default: the number
	// of CPUs this process may use.
	Capacity float64
	// NoOverview leaves the overview topic (SaturationTopic), which every
	// report reaches: the peer then hears only of the replicas of the
	// names it sends to. For large meshes, where every peer hearing of
	// every other costs more than the overview is worth.
	NoOverview bool
}

// HeartbeatEvery is how many sampling intervals pass between two reports
// of a peer whose load did not change significantly: choosing a replica
// relies on fresh per-request signals, and gossip only has to keep the
// table's view alive (reports expire after three heartbeats), so a mesh
// of hundreds of peers does not spend its CPU verifying reports.
const HeartbeatEvery = 5

// peerSaturation is a peer's side of saturation: its own meter, the table
// of the reports others publish, and the goroutine that publishes its
// own at the interval.
type peerSaturation struct {
	p        *Peer
	meter    *saturation.Meter
	table    *saturation.Table
	interval time.Duration
	log      *slog.Logger
	rejected atomic.Uint64

	cancel   context.CancelFunc
	unsub    func()
	overview bool

	followMu sync.Mutex
	followed map[string]func() // name → unsubscribe
	wg       sync.WaitGroup
	closeOne sync.Once
}

// newPeerSaturation builds the meter and the table; start lets them run.
func newPeerSaturation(ctx context.Context, p *Peer, cfg SaturationConfig, dataDir string, names []string, log *slog.Logger) (*peerSaturation, error) {
	src := cfg.Source
	if src == nil {
		if dataDir == "" {
			dataDir = os.TempDir()
		}
		sys, err := saturation.NewSystemSource(ctx, dataDir)
		if err != nil {
			return nil, fmt.Errorf("node: saturation: %w", err)
		}
		src = sys
	}
	if cfg.Interval <= 0 {
		cfg.Interval = saturation.DefaultInterval
	}
	capacity := cfg.Capacity
	if capacity == 0 {
		capacity = float64(runtime.GOMAXPROCS(0))
	}
	s := &peerSaturation{p: p, overview: !cfg.NoOverview, followed: map[string]func(){}, interval: HeartbeatEvery * cfg.Interval, log: log.With("component", "saturation")}
	m, err := saturation.NewMeter(p.Host.ID().String(), src,
		saturation.WithInterval(cfg.Interval),
		saturation.WithLoad(func() saturation.Load { return saturation.Load{InFlight: p.Node.InFlight()} }),
		saturation.WithOnChange(func(c saturation.Change) {
			s.publish(c.Report)
			if c.Event != nil {
				s.raise(c.Event.From, c.Event.To, c.Report)
			}
		}),
		saturation.WithLogger(log),
		saturation.WithCapacity(capacity),
	)
	if err != nil {
		return nil, fmt.Errorf("node: saturation: %w", err)
	}
	if err := m.SetNames(names...); err != nil {
		return nil, fmt.Errorf("node: saturation: %w", err)
	}
	s.meter = m
	s.table = saturation.NewTable(saturation.WithTTL(3 * s.interval))
	return s, nil
}

// start subscribes to the others' reports and starts measuring and
// publishing.
func (s *peerSaturation) start() error {
	if s.overview {
		unsub, err := s.subscribe(SaturationTopic)
		if err != nil {
			return err
		}
		s.unsub = unsub
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.meter.Start(ctx)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(s.interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				s.publish(s.meter.Report())
			case <-ctx.Done():
				return
			}
		}
	}()
	return nil
}

func (s *peerSaturation) close() {
	s.closeOne.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		s.meter.Close()
		s.wg.Wait()
		if s.unsub != nil {
			s.unsub()
		}
		s.followMu.Lock()
		for _, unsub := range s.followed {
			unsub()
		}
		clear(s.followed)
		s.followMu.Unlock()
	})
}

func (s *peerSaturation) publish(r saturation.Report) {
	data, err := saturation.EncodeReport(r)
	if err != nil {
		s.log.Warn("report does not encode", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.interval)
	defer cancel()
	for _, topic := range append([]string{SaturationTopic}, namesTopics(r.Names)...) {
		if err := s.p.topics.Publish(ctx, topic, data); err != nil {
			s.log.Debug("report not published", "topic", topic, "err", err)
		}
	}
}

func namesTopics(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = NameTopic(n)
	}
	return out
}

// subscribe receives the reports of a saturation topic.
func (s *peerSaturation) subscribe(topic string) (func(), error) {
	self := s.p.Host.ID()
	unsub, err := s.p.topics.SubscribeAll(topic, func(from peer.ID, data []byte, decoded any) {
		if from == self {
			return
		}
		s.receive(from, data, decoded)
	})
	if err != nil {
		return nil, fmt.Errorf("node: saturation topic %s: %w", topic, err)
	}
	return unsub, nil
}

// follow subscribes to a name's topic, once, when this peer does not
// hear every report on the overview already.
func (s *peerSaturation) follow(name string) {
	if s.overview {
		return
	}
	s.followMu.Lock()
	defer s.followMu.Unlock()
	if _, ok := s.followed[name]; ok || len(s.followed) >= maxFollowed {
		return
	}
	unsub, err := s.subscribe(NameTopic(name))
	if err != nil {
		s.log.Info("cannot follow a name's reports", "name", name, "err", err)
		return
	}
	s.followed[name] = unsub
}

// receive takes a report from the topic, decoded already when the topic
// validated it. Gossipsub checked the author's signature; a report must
// speak for its author, be well-formed and fresh, and newer than the last
// one kept: anything else is counted and dropped, so a peer can at worst
// misreport its own load.
func (s *peerSaturation) receive(from peer.ID, data []byte, decoded any) {
	r, ok := decoded.(*saturation.Report)
	var err error
	if !ok {
		r, err = saturation.DecodeReport(data, time.Now())
	}
	if err == nil && r.Peer != from.String() {
		err = dispatch.Errorf(dispatch.ErrBadDispatch, "report for %s published by %s", r.Peer, from)
	}
	from0 := saturation.LevelOK
	if err == nil {
		if e, ok := s.table.Get(r.Peer); ok {
			from0 = e.Report.Level
		}
		err = s.table.Update(*r, time.Now())
	}
	if errors.Is(err, saturation.ErrDuplicate) {
		// The same report on the overview and on a name's topic.
		return
	}
	if err != nil {
		s.rejected.Add(1)
		s.p.Node.warn.Info("saturation report dropped", "from", from, "err", err)
		return
	}
	// A replica is usable from its first report: its names join the
	// cached providers without waiting for the next DHT lookup.
	if s.p.Names != nil {
		for _, name := range r.Names {
			s.p.Names.Learn(name, from)
		}
	}
	// The sender applied its thresholds and their hysteresis: a change of
	// its reported level is the event.
	if r.Level != from0 {
		s.raise(from0, r.Level, *r)
	}
}

// raise makes a level change an event applications can BIND to: this
// peer processes POST ["saturation", PEER, LEVEL] with the report as
// body (docs/saturation.md).
func (s *peerSaturation) raise(from, to saturation.Level, r saturation.Report) {
	body, err := json.Marshal(r)
	if err != nil {
		return
	}
	d := dispatch.New(dispatch.POST, "saturation", r.Peer, to.String())
	d.Body = body
	if err := s.p.Node.Send(context.Background(), d); err != nil {
		s.log.Debug("saturation event not processed", "err", err)
	}
	s.log.Info("saturation level changed", "peer", r.Peer, "from", from.String(), "to", to.String())
}

// SaturationView is the body of GET ["saturation"]: this peer's own
// report, and the latest of every other peer it heard from.
type SaturationView struct {
	Self     saturation.Report `json:"self"`
	Peers    []PeerSaturation  `json:"peers"`
	Rejected uint64            `json:"rejected"`
}

// PeerSaturation is another peer's latest report and its age.
type PeerSaturation struct {
	saturation.Report
	AgeMS int64 `json:"ageMs"`
}

func (s *peerSaturation) view() SaturationView {
	v := SaturationView{Self: s.meter.Report(), Peers: []PeerSaturation{}, Rejected: s.rejected.Load()}
	for _, e := range s.table.List() {
		v.Peers = append(v.Peers, PeerSaturation{Report: e.Report, AgeMS: e.Age.Milliseconds()})
	}
	return v
}

// serve registers GET ["saturation"] and PUT ["saturation", "metrics",
// NAME], by which an application (or a classic client) reports a load of
// its own, such as a queue's length against its capacity.
func (s *peerSaturation) serve(n *Node) error {
	if err := n.Serve([]string{"saturation"}, func(context.Context) (any, error) { return s.view(), nil }); err != nil {
		return err
	}
	_, err := n.Handle(dispatch.Endpoint{Method: dispatch.PUT, Resource: []string{"saturation", "metrics", ":name"}}, func(_ context.Context, in *Incoming) (any, error) {
		var m struct {
			Value    *float64 `json:"value"`
			Capacity *float64 `json:"capacity"`
		}
		if err := json.Unmarshal(in.Dispatch.Body, &m); err != nil || m.Value == nil || m.Capacity == nil {
			return nil, dispatch.Errorf(dispatch.ErrBadDispatch, `the body must be {"value": V, "capacity": C}`)
		}
		if math.IsNaN(*m.Value) || math.IsInf(*m.Value, 0) {
			return nil, dispatch.Errorf(dispatch.ErrBadDispatch, "value must be a finite number")
		}
		if err := s.meter.SetMetric(in.Params["name"], *m.Value, *m.Capacity); err != nil {
			return nil, dispatch.Errorf(dispatch.ErrBadDispatch, "%v", err)
		}
		return s.meter.Report(), nil
	}, Inline(), LocalOnly(), QueueLen(BuiltinQueueLen))
	return err
}
