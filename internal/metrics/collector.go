package metrics

import (
	"log/slog"
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jstp-peer/jstp-peer/node"
	"github.com/jstp-peer/jstp-peer/saturation"
)

// Defaults of the bounds on labelled series.
const (
	// DefaultMaxPeers bounds the peers that per-peer series are reported
	// for: the peers whose saturation reports this peer holds, lowest
	// ids first. A mesh of more peers is still counted in
	// jstp_saturation_peers; the ones left out in jstp_metrics_omitted.
	DefaultMaxPeers = 1000
	// DefaultMaxNames bounds the names listed in jstp_name_provided.
	DefaultMaxNames = 256
)

// Option configures a Collector, a Handler or a Server.
type Option func(*config)

type config struct {
	maxPeers int
	maxNames int
	libp2p   prometheus.Gatherer
	log      *slog.Logger
}

func newConfig(opts []Option) config {
	c := config{maxPeers: DefaultMaxPeers, maxNames: DefaultMaxNames, libp2p: prometheus.DefaultGatherer, log: slog.Default()}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithMaxPeers sets how many peers per-peer series are reported for
// (default DefaultMaxPeers); values below zero keep the default, zero
// reports none.
func WithMaxPeers(n int) Option {
	return func(c *config) {
		if n >= 0 {
			c.maxPeers = n
		}
	}
}

// WithMaxNames sets how many provided names jstp_name_provided lists
// (default DefaultMaxNames); values below zero keep the default.
func WithMaxNames(n int) Option {
	return func(c *config) {
		if n >= 0 {
			c.maxNames = n
		}
	}
}

// WithLibP2P sets where libp2p's metrics are gathered from: by default
// prometheus.DefaultGatherer, where go-libp2p registers them unless the
// host was given libp2p.PrometheusRegisterer or libp2p.DisableMetrics
// (through mesh.Config.Options). nil leaves them out. It does not apply
// to NewCollector, which collects only the peer's own series.
func WithLibP2P(g prometheus.Gatherer) Option {
	return func(c *config) { c.libp2p = g }
}

// WithLogger sets where scrape errors are logged (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.log = l
		}
	}
}

// Collector is a prometheus.Collector of a peer's own series. It reads
// the peer when it is collected: registering it costs the peer nothing
// between scrapes.
type Collector struct {
	p   *node.Peer
	cfg config

	info, startTime                                    *prometheus.Desc
	received, forwarded, answered, returned            *prometheus.Desc
	handlerLatency, forwardLatency                     *prometheus.Desc
	inFlight, transactions, routes, held, timedOut     *prometheus.Desc
	dropped                                            *prometheus.Desc
	subscriptions, queued, queueLongest, queueCap      *prometheus.Desc
	links, linkInFlight, linkLimit, linkOutstanding    *prometheus.Desc
	namesProvided, nameProvided, namesCached           *prometheus.Desc
	nameLookups, nameRefreshes, nameHits, nameAnnounc  *prometheus.Desc
	sat, headroom, level                               *prometheus.Desc
	peerSat, peerHeadroom, peerLevel, peerRIF, peerAge *prometheus.Desc
	satPeers, reports                                  *prometheus.Desc
	gossipTopics, gossipSatPeers, gossipMessages       *prometheus.Desc
	omitted                                            *prometheus.Desc
}

// NewCollector returns a Collector of p's series. Of the options, the
// bounds on labelled series apply.
func NewCollector(p *node.Peer, opts ...Option) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("jstp_"+name, help, labels, nil)
	}
	return &Collector{
		p:   p,
		cfg: newConfig(opts),

		info:      d("info", "The peer: its id, engine version and protocol (always 1).", "peer", "version", "protocol"),
		startTime: d("start_time_seconds", "When the peer's engine started, in Unix seconds."),

		received:       d("dispatches_received_total", "Dispatches that reached this peer from its links (peers, gateway clients, classic engines), by method.", "method"),
		forwarded:      d("dispatches_forwarded_total", "Dispatches this peer passed on to another engine, by method.", "method"),
		answered:       d("dispatches_answered_total", "Answers this peer made (handlers' answers, 404 nothing bound, 503 subscriber overloaded, errors such as 502 and 508), by method and code.", "method", "code"),
		returned:       d("forwarded_answers_total", "Final answers that came back for dispatches this peer passed on, by method and code.", "method", "code"),
		handlerLatency: d("handler_duration_seconds", "Time from a handler's start to its answer, by method.", "method"),
		forwardLatency: d("forward_duration_seconds", "Time from passing a dispatch on to another peer to each of its final answers, by method.", "method"),

		inFlight:     d("requests_in_flight", "Deliveries to subscriptions queued or running."),
		transactions: d("transactions", "Requests of this peer's application waiting for answers."),
		routes:       d("answer_routes", "Routes kept for answers to come back through this peer."),
		held:         d("links_held_total", "Times a link was not read because it had its limit of dispatches in flight."),
		timedOut:     d("timeouts_total", "504 answers this peer made for answers that did not arrive in time."),
		dropped:      d("dropped_total", "Dispatches and answers not passed on, by reason (docs/architecture.md, Queues).", "reason"),

		subscriptions: d("subscriptions", "Subscriptions by owner: local (this peer's application), remote (other peers and gateway clients), relayed (clients' bindings passed on to another engine).", "owner"),
		queued:        d("subscription_queued", "Dispatches waiting in subscription queues."),
		queueLongest:  d("subscription_queue_longest", "Dispatches waiting in the longest subscription queue."),
		queueCap:      d("subscription_queue_capacity", "Bound of each subscription queue."),

		links:           d("links", "Links attached to the engine, by kind (peer, classic-in, classic-out).", "kind"),
		linkInFlight:    d("link_dispatches_in_flight", "Deliveries caused by the links' dispatches, queued or running, by link kind.", "kind"),
		linkLimit:       d("link_in_flight_limit", "Deliveries in flight at which a link is no longer read."),
		linkOutstanding: d("link_outstanding", "Transactions passed on to links whose answers are awaited, by link kind.", "kind"),

		namesProvided: d("names_provided", "Service names this peer provides."),
		nameProvided:  d("name_provided", "A service name this peer provides (always 1).", "name"),
		namesCached:   d("names_cached", "Name resolutions held in the cache."),
		nameLookups:   d("name_lookups_total", "DHT lookups of service names (background refreshes included)."),
		nameRefreshes: d("name_lookup_refreshes_total", "DHT lookups made in the background to refresh a cached name."),
		nameHits:      d("name_cache_hits_total", "Name resolutions answered from the cache, by result (found, not_found).", "result"),
		nameAnnounc:   d("name_announcements_total", "Provider announcements made for provided names (failed ones included)."),

		sat:          d("saturation", "This peer's saturation in [0,1], by dimension (disk, ram, cpu, net, backlog and application metrics).", "dimension"),
		headroom:     d("saturation_headroom", "This peer's headroom: 1 - its highest saturation."),
		level:        d("saturation_level", "This peer's saturation level: 0 ok, 1 warning, 2 critical."),
		peerSat:      d("peer_saturation", "Saturation in [0,1] reported by another peer, by dimension.", "peer", "dimension"),
		peerHeadroom: d("peer_saturation_headroom", "Headroom reported by another peer.", "peer"),
		peerLevel:    d("peer_saturation_level", "Saturation level reported by another peer: 0 ok, 1 warning, 2 critical.", "peer"),
		peerRIF:      d("peer_requests_in_flight", "Requests in flight reported by another peer.", "peer"),
		peerAge:      d("peer_report_age_seconds", "Age of another peer's latest saturation report.", "peer"),
		satPeers:     d("saturation_peers", "Peers whose saturation reports this peer holds."),
		reports:      d("saturation_reports_total", "Saturation reports received on the gossip topic, by outcome (accepted, refused).", "outcome"),

		gossipTopics:   d("gossip_topics", "Gossipsub topics this peer subscribes to: the saturation topic, and one per endpoint of another peer bound from here."),
		gossipSatPeers: d("gossip_saturation_topic_peers", "Peers gossipsub knows on the saturation topic."),
		gossipMessages: d("gossip_messages_total", "Gossipsub messages this peer published and received, by outcome (published, publish_failed, received, refused: from an author a subscription does not expect).", "outcome"),

		omitted: d("metrics_omitted", "Label values left out of this scrape by the bounds on labelled series, by series (peers, names).", "series"),
	}
}

func (c *Collector) descs() []*prometheus.Desc {
	return []*prometheus.Desc{
		c.info, c.startTime,
		c.received, c.forwarded, c.answered, c.returned,
		c.handlerLatency, c.forwardLatency,
		c.inFlight, c.transactions, c.routes, c.held, c.timedOut,
		c.dropped,
		c.subscriptions, c.queued, c.queueLongest, c.queueCap,
		c.links, c.linkInFlight, c.linkLimit, c.linkOutstanding,
		c.namesProvided, c.nameProvided, c.namesCached,
		c.nameLookups, c.nameRefreshes, c.nameHits, c.nameAnnounc,
		c.sat, c.headroom, c.level,
		c.peerSat, c.peerHeadroom, c.peerLevel, c.peerRIF, c.peerAge,
		c.satPeers, c.reports,
		c.gossipTopics, c.gossipSatPeers, c.gossipMessages,
		c.omitted,
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs() {
		ch <- d
	}
}

// emitter sends const metrics, dropping (and counting) the ones that
// cannot be made: a label value that is not valid UTF-8, say, in a
// report another peer sent.
type emitter struct {
	ch      chan<- prometheus.Metric
	invalid int
}

func (e *emitter) add(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		e.invalid++
		return
	}
	e.ch <- m
}

func (e *emitter) counter(d *prometheus.Desc, v uint64, labels ...string) {
	e.add(d, prometheus.CounterValue, float64(v), labels...)
}

func (e *emitter) gauge(d *prometheus.Desc, v float64, labels ...string) {
	e.add(d, prometheus.GaugeValue, v, labels...)
}

func (e *emitter) histogram(d *prometheus.Desc, h node.LatencyHistogram, bounds []float64) {
	buckets := make(map[float64]uint64, len(bounds))
	for i, b := range bounds {
		buckets[b] = h.Buckets[i]
	}
	m, err := prometheus.NewConstHistogram(d, h.Count, h.Sum.Seconds(), buckets, h.Method)
	if err != nil {
		e.invalid++
		return
	}
	e.ch <- m
}

// Collect implements prometheus.Collector: it reads the peer once.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	pm := c.p.Metrics()
	e := &emitter{ch: ch}
	c.collectEngine(e, c.p.Node.Info(), pm.Engine)
	c.collectNames(e, pm)
	c.collectSaturation(e, pm)
	c.collectGossip(e, pm)
	if e.invalid > 0 {
		c.cfg.log.Debug("metrics: series left out", "count", e.invalid)
	}
}

func (c *Collector) collectEngine(e *emitter, info node.PeerInfo, m node.MetricsSnapshot) {
	e.gauge(c.info, 1, info.ID, info.Version, info.Protocol)
	e.gauge(c.startTime, float64(info.Started)/1000)
	for _, r := range m.Received {
		e.counter(c.received, r.Count, r.Method)
	}
	for _, r := range m.Forwarded {
		e.counter(c.forwarded, r.Count, r.Method)
	}
	for _, o := range m.Answered {
		e.counter(c.answered, o.Count, o.Method, o.Code)
	}
	for _, o := range m.Returned {
		e.counter(c.returned, o.Count, o.Method, o.Code)
	}
	bounds := node.LatencyBounds()
	for _, h := range m.HandlerLatency {
		e.histogram(c.handlerLatency, h, bounds)
	}
	for _, h := range m.ForwardLatency {
		e.histogram(c.forwardLatency, h, bounds)
	}
	e.gauge(c.inFlight, float64(m.InFlight))
	e.gauge(c.transactions, float64(m.Stats.Transactions))
	e.gauge(c.routes, float64(m.Stats.Routes))
	e.counter(c.held, m.Stats.Held)
	e.counter(c.timedOut, m.Stats.TimedOut)
	for _, reason := range slices.Sorted(maps.Keys(m.Stats.Dropped)) {
		e.counter(c.dropped, m.Stats.Dropped[reason], reason)
	}
	s := m.Subscriptions
	e.gauge(c.subscriptions, float64(s.Local), "local")
	e.gauge(c.subscriptions, float64(s.Remote), "remote")
	e.gauge(c.subscriptions, float64(s.Relayed), "relayed")
	e.gauge(c.queued, float64(s.Queued))
	e.gauge(c.queueLongest, float64(s.MaxQueued))
	e.gauge(c.queueCap, float64(s.QueueCapacity))
	for i, l := range m.Links {
		if i == 0 {
			e.gauge(c.linkLimit, float64(l.LinkLimit))
		}
		e.gauge(c.links, float64(l.Count), l.Kind)
		e.gauge(c.linkInFlight, float64(l.InFlight), l.Kind)
		e.gauge(c.linkOutstanding, float64(l.Outstanding), l.Kind)
	}
}

func (c *Collector) collectNames(e *emitter, pm node.PeerMetrics) {
	e.gauge(c.namesProvided, float64(len(pm.Provided)))
	shown := pm.Provided[:min(len(pm.Provided), c.cfg.maxNames)]
	for _, name := range shown {
		e.gauge(c.nameProvided, 1, name)
	}
	e.gauge(c.omitted, float64(len(pm.Provided)-len(shown)), "names")
	n := pm.Names
	e.gauge(c.namesCached, float64(n.Cached))
	e.counter(c.nameLookups, n.Lookups)
	e.counter(c.nameRefreshes, n.Refreshes)
	e.counter(c.nameHits, n.CacheHits, "found")
	e.counter(c.nameHits, n.NegativeHits, "not_found")
	e.counter(c.nameAnnounc, n.Announcements)
}

func (c *Collector) collectSaturation(e *emitter, pm node.PeerMetrics) {
	v := pm.Saturation
	self := v.Self
	for _, dim := range slices.Sorted(maps.Keys(self.Saturation)) {
		e.gauge(c.sat, self.Saturation[dim], dim)
	}
	e.gauge(c.headroom, self.Headroom)
	e.gauge(c.level, levelValue(self.Level))
	// The table lists peers sorted by id, so the same peers are kept
	// from one scrape to the next.
	shown := v.Peers[:min(len(v.Peers), c.cfg.maxPeers)]
	for _, ps := range shown {
		r := ps.Report
		for _, dim := range slices.Sorted(maps.Keys(r.Saturation)) {
			e.gauge(c.peerSat, r.Saturation[dim], r.Peer, dim)
		}
		e.gauge(c.peerHeadroom, r.Headroom, r.Peer)
		e.gauge(c.peerLevel, levelValue(r.Level), r.Peer)
		e.gauge(c.peerRIF, float64(r.InFlight), r.Peer)
		e.gauge(c.peerAge, float64(ps.AgeMS)/1000, r.Peer)
	}
	e.gauge(c.omitted, float64(len(v.Peers)-len(shown)), "peers")
	e.gauge(c.satPeers, float64(len(v.Peers)))
	e.counter(c.reports, pm.Reports.Accepted, "accepted")
	e.counter(c.reports, v.Rejected, "refused")
}

func levelValue(l saturation.Level) float64 { return float64(l) }

func (c *Collector) collectGossip(e *emitter, pm node.PeerMetrics) {
	g := pm.Gossip
	e.counter(c.gossipMessages, g.Published, "published")
	e.counter(c.gossipMessages, g.PublishFailed, "publish_failed")
	e.counter(c.gossipMessages, g.Received, "received")
	e.counter(c.gossipMessages, g.Refused, "refused")
	ps := c.p.Host.PubSub()
	if ps == nil {
		return
	}
	e.gauge(c.gossipTopics, float64(len(ps.GetTopics())))
	e.gauge(c.gossipSatPeers, float64(len(ps.ListPeers(node.SaturationTopic))))
}
