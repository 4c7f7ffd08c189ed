package saturation

import (
	"fmt"
	"testing"
	"time"
)

func BenchmarkEncodeReport(b *testing.B) {
	r := validReport("12D3KooWGzh6Y7MoZ1Qz5hBzqVdVEsrxY5jiEaA8G6ZEiSbq3wfF", 1, t0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeReport(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeReport(b *testing.B) {
	data, err := EncodeReport(validReport("12D3KooWGzh6Y7MoZ1Qz5hBzqVdVEsrxY5jiEaA8G6ZEiSbq3wfF", 1, t0))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeReport(data, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTableUpdate stores reports from 1000 peers in turn, each newer
// than the last from its peer: the steady state of a mesh's gossip.
func BenchmarkTableUpdate(b *testing.B) {
	const n = 1000
	clock := newFakeClock()
	tab := NewTable(WithTableClock(clock.Now), WithTTL(time.Hour))
	reports := make([]Report, n)
	for i := range reports {
		reports[i] = validReport(fmt.Sprintf("peer-%04d", i), 1, t0)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := &reports[i%n]
		r.Seq++
		if err := tab.Update(*r, t0); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
