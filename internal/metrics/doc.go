// Package metrics serves a running peer's metrics in the Prometheus text
// format: the project's own series (prefix jstp_), read from the peer when
// they are scraped, next to what go-libp2p registers (its resource
// manager, swarm, identify, relay, ... series, prefix libp2p_) and the Go
// runtime's.
//
// The engine records dispatches by method and answer code, and answer
// latencies, on its hot path without locks or allocations (node.Node's
// Metrics); everything else — queues, subscriptions, links, names,
// saturation — is read at scrape time from the state the peer keeps
// anyway. docs/operations.md ("Metrics") lists the series.
//
// A scrape costs in proportion to what it returns, so what it returns is
// bounded: labels take their values from fixed sets (methods, code
// classes, drop reasons, link kinds), except the peers heard from (at
// most MaxPeers, the rest counted in jstp_metrics_omitted) and the names
// this peer provides (at most MaxNames); at most a few scrapes run at
// once, the rest are answered 503.
package metrics
