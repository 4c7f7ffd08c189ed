// Package gctune sets the garbage collector's pace for a peer process.
//
// A peer keeps little live heap (tens of MiB) and allocates per dispatch
// (decoding, transactions, answers): with Go's default GOGC=100 it
// collects every few MiB allocated, and under load the collector takes
// a third of its CPU. Letting the heap grow to five times the live heap
// before collecting costs a peer tens of MiB and gives a loaded one about
// 40% more throughput (docs/performance.md).
package gctune
