// Package simulations runs many jstp-peer peers in one process and
// measures what the mesh does: the scenarios behind `jstp-peer sim` and
// docs/simulations.md.
//
// The peers are the production code: a Cluster starts each with
// node.Start, as `jstp-peer up` does, on a simulated Network (QUIC over
// github.com/marcopolo/simnet, with a delay per packet between regions,
// a bandwidth per link, and a filter that drops what crashes and
// partitions cut) or on loopback sockets. Everything random about a run
// comes from its seed.
//
// On top of the cluster: a load model (Replica: workers and a service
// time, whose queueing produces latency and whose busy share drives the
// peer's saturation reports), an open-loop Poisson Generator of requests,
// an Oracle policy with full knowledge of the replicas' queues, and the
// scenarios (Scenarios, Run), each of which fills a Result: tables,
// goals beside what was measured, invariants, SVG figures and a one-page
// HTML report.
//
// The scenario code reads the clock through package time only, so it
// runs the same in real time (the command) and under virtual time inside
// a testing/synctest bubble (the tests), where a simulated second costs
// only the CPU the peers spend in it.
package simulations
