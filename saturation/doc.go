// Package saturation measures how loaded a peer is, smooths and scores
// it, carries it between peers as a gossip report, and keeps the table of
// the reports heard. It offers scores; choosing a replica is routing's
// business, and wiring the parts into a running peer is node's. It
// imports nothing from the mesh, only dispatch for its error codes.
//
// # Dimensions
//
// Every dimension is a saturation in [0,1], where 1 means exhausted
// (Scoring):
//
//	disk   1 - (free - reserve) / (total - reserve)   filesystem of the data dir; reserve 0 by default
//	ram    1 - available / total
//	cpu    busy time / elapsed time, all cores, between two samples
//	net    max(in, out) / capacity                    bytes/s between two samples; capacity 125e6 (1 Gbit/s) by default
//	backlog depth / capacity                          the peer's own queue, when it gives a capacity ("queue" is left to applications)
//	<app>  value / capacity                           application metrics set with Meter.SetMetric
//
// each clamped to [0,1]. SystemSource reads disk, RAM, CPU and network
// through gopsutil; CPU and network are rates computed from cumulative
// counters between two samples. Requests in flight and queue depth come
// from the peer (WithLoad). Application metrics have names of 1..64 bytes
// of [a-z0-9._-], other than the system dimensions' names; values finite
// and >= 0, capacities finite and > 0. Sources sit behind the Source
// interface, so simulations drive a Meter with StaticSource or SourceFunc.
//
// # Smoothing and score
//
// Each dimension is smoothed by an EWMA whose weight follows the time
// between samples, alpha = 1 - 2^(-dt/halfLife), so irregular sampling
// weighs the past correctly (half-life 10 s by default, five samples at
// the default 2 s interval). Requests in flight are reported raw: replica
// choice wants them fresh.
//
// The score is one number, headroom = 1 - max(saturations): the
// bottleneck decides, because a peer with a full disk cannot take writes
// however idle its CPU is, and an average would hide the dimension about
// to fail. It needs no weights, and agrees with the per-dimension levels.
//
// # Levels and events
//
// Thresholds assigns each dimension a Level, ok, warning (>= 0.80) or
// critical (>= 0.95) by default, per dimension if configured, with
// hysteresis: a dimension leaves a level only once it is 0.05 below the
// threshold, so a value wobbling around a threshold changes the level
// once. A peer's level is its highest dimension's; a change is an Event.
//
// # Meter
//
// A Meter ties this together for one peer: Start samples its Source every
// interval (2 s) on a goroutine it owns until Close; Report returns the
// current Report; WithOnChange is told of significant changes (the first
// sample, a level change, a dimension appearing or leaving, new names,
// or any saturation moving by more than 0.1 since the last signal) so the
// peer can gossip at once.
//
// # Reports
//
// A Report is one JSON object (version 1): peer id, sequence number,
// timestamp in Unix ms, names provided, saturations, application
// metrics, requests in flight, headroom and level. DecodeReport is strict
// and bounded: at most 8 KiB, checked before parsing; no unknown field;
// every value in range; at most 16 metrics and 16 names; timestamp no
// older than 30 s and no more than 10 s ahead. Its errors wrap
// dispatch.ErrBadDispatch (code 400).
//
// # Table
//
// A Table holds each peer's latest report. Reports with a sequence number
// not above the one held are refused (replays, reorderings); entries
// expire 6 s (three report intervals) after they were received, by the
// receiver's clock; the table holds at most 4096 peers, evicting the
// stalest. Refusals and evictions are counted.
package saturation
