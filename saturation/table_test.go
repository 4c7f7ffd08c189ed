package saturation

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func newTestTable(clock *fakeClock, opts ...TableOption) *Table {
	return NewTable(append([]TableOption{WithTableClock(clock.Now)}, opts...)...)
}

func peers(entries []Entry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Report.Peer
	}
	return out
}

func TestTableListSorted(t *testing.T) {
	clock := newFakeClock()
	tab := newTestTable(clock)
	for _, p := range []string{"peer-c", "peer-a", "peer-d", "peer-b"} {
		if err := tab.Update(validReport(p, 1, clock.Now()), clock.Now()); err != nil {
			t.Fatalf("Update(%s): %v", p, err)
		}
	}
	if got, want := fmt.Sprint(peers(tab.List())), "[peer-a peer-b peer-c peer-d]"; got != want {
		t.Fatalf("List order %s, want %s", got, want)
	}
	if n := tab.Len(); n != 4 {
		t.Fatalf("Len = %d, want 4", n)
	}
}

func TestTableReplayAndReorder(t *testing.T) {
	clock := newFakeClock()
	tab := newTestTable(clock)
	upd := func(seq uint64) error { return tab.Update(validReport("peer-a", seq, clock.Now()), clock.Now()) }

	if err := upd(5); err != nil {
		t.Fatalf("seq 5: %v", err)
	}
	if err := upd(3); !errors.Is(err, ErrReplayed) {
		t.Fatalf("seq 3 after 5: %v, want ErrReplayed", err)
	}
	if err := upd(5); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("seq 5 again: %v, want ErrDuplicate", err)
	}
	if err := upd(6); err != nil {
		t.Fatalf("seq 6: %v", err)
	}
	if err := upd(4); !errors.Is(err, ErrReplayed) {
		t.Fatalf("seq 4 after 6: %v, want ErrReplayed", err)
	}
	e, ok := tab.Get("peer-a")
	if !ok || e.Report.Seq != 6 {
		t.Fatalf("Get = %+v, %v; want seq 6", e, ok)
	}
	want := TableStats{Accepted: 2, Replayed: 2, Duplicates: 1}
	if got := tab.Stats(); got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
}

func TestTableExpiry(t *testing.T) {
	clock := newFakeClock()
	tab := newTestTable(clock, WithTTL(6*time.Second))
	if err := tab.Update(validReport("peer-a", 10, clock.Now()), clock.Now()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Second)
	if err := tab.Update(validReport("peer-b", 1, clock.Now()), clock.Now()); err != nil {
		t.Fatal(err)
	}

	clock.Advance(3 * time.Second) // a is 5 s old, b 3 s
	e, ok := tab.Get("peer-a")
	if !ok || e.Age != 5*time.Second || !e.ReceivedAt.Equal(t0) {
		t.Fatalf("Get(peer-a) = age %v received %v, %v; want 5s, %v", e.Age, e.ReceivedAt, ok, t0)
	}

	clock.Advance(time.Second) // a is 6 s old: expired
	if _, ok := tab.Get("peer-a"); ok {
		t.Fatal("peer-a still there at its TTL")
	}
	if got := fmt.Sprint(peers(tab.List())); got != "[peer-b]" {
		t.Fatalf("List = %s, want [peer-b]", got)
	}
	// An expired entry is absent: a lower seq is accepted again (the
	// decoder's maximum age bounds how old such a report can be).
	if err := tab.Update(validReport("peer-a", 3, clock.Now()), clock.Now()); err != nil {
		t.Fatalf("report after expiry: %v", err)
	}

	clock.Advance(10 * time.Second)
	if n := tab.Len(); n != 0 {
		t.Fatalf("Len = %d after every TTL passed", n)
	}
	if got := tab.Stats().Expired; got != 3 {
		t.Fatalf("Stats.Expired = %d, want 3", got)
	}
}

func TestTableRefusesLateReport(t *testing.T) {
	clock := newFakeClock()
	tab := newTestTable(clock, WithTTL(6*time.Second))
	received := clock.Now()
	clock.Advance(6 * time.Second)
	if err := tab.Update(validReport("peer-a", 1, received), received); !errors.Is(err, ErrExpired) {
		t.Fatalf("Update of a report received a TTL ago: %v, want ErrExpired", err)
	}
	if s := tab.Stats(); s.Late != 1 || s.Accepted != 0 {
		t.Fatalf("Stats = %+v", s)
	}
}

func TestTableRefusesInvalid(t *testing.T) {
	clock := newFakeClock()
	tab := newTestTable(clock)
	r := validReport("peer-a", 1, clock.Now())
	r.Saturation[DimCPU] = 2
	if err := tab.Update(r, clock.Now()); !errors.Is(err, ErrReportInvalid) {
		t.Fatalf("Update of an invalid report: %v", err)
	}
	r = validReport("", 1, clock.Now())
	if err := tab.Update(r, clock.Now()); !errors.Is(err, ErrReportInvalid) {
		t.Fatalf("Update of a report without peer: %v", err)
	}
	if s := tab.Stats(); s.Invalid != 2 || tab.Len() != 0 {
		t.Fatalf("Stats = %+v, Len %d", s, tab.Len())
	}
}

func TestTableBoundEvictsStalest(t *testing.T) {
	clock := newFakeClock()
	tab := newTestTable(clock, WithMaxEntries(3), WithTTL(time.Minute))
	for _, p := range []string{"peer-a", "peer-b", "peer-c"} {
		if err := tab.Update(validReport(p, 1, clock.Now()), clock.Now()); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
	}
	// peer-a refreshes: peer-b becomes the stalest.
	if err := tab.Update(validReport("peer-a", 2, clock.Now()), clock.Now()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if err := tab.Update(validReport("peer-d", 1, clock.Now()), clock.Now()); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(peers(tab.List())); got != "[peer-a peer-c peer-d]" {
		t.Fatalf("after eviction List = %s, want [peer-a peer-c peer-d]", got)
	}
	if s := tab.Stats(); s.Evicted != 1 {
		t.Fatalf("Stats.Evicted = %d, want 1", s.Evicted)
	}
}

func TestTableBoundPrefersExpired(t *testing.T) {
	clock := newFakeClock()
	tab := newTestTable(clock, WithMaxEntries(2), WithTTL(5*time.Second))
	tab.Update(validReport("peer-a", 1, clock.Now()), clock.Now())
	clock.Advance(3 * time.Second)
	tab.Update(validReport("peer-b", 1, clock.Now()), clock.Now())
	clock.Advance(3 * time.Second) // peer-a expired, peer-b live
	if err := tab.Update(validReport("peer-c", 1, clock.Now()), clock.Now()); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(peers(tab.List())); got != "[peer-b peer-c]" {
		t.Fatalf("List = %s, want [peer-b peer-c]", got)
	}
	if s := tab.Stats(); s.Evicted != 0 || s.Expired != 1 {
		t.Fatalf("Stats = %+v, want 0 evicted, 1 expired", s)
	}
}

func TestTableProvidersAndRemove(t *testing.T) {
	clock := newFakeClock()
	tab := newTestTable(clock)
	for i, names := range [][]string{{"db"}, {"web", "db"}, nil, {"web"}} {
		r := validReport(fmt.Sprintf("peer-%d", i), 1, clock.Now())
		r.Names = names
		if err := tab.Update(r, clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if got := fmt.Sprint(peers(tab.Providers("db"))); got != "[peer-0 peer-1]" {
		t.Fatalf("Providers(db) = %s", got)
	}
	if got := fmt.Sprint(peers(tab.Providers("web"))); got != "[peer-1 peer-3]" {
		t.Fatalf("Providers(web) = %s", got)
	}
	if got := tab.Providers("none"); len(got) != 0 {
		t.Fatalf("Providers(none) = %v", got)
	}
	if !tab.Remove("peer-1") || tab.Remove("peer-1") {
		t.Fatal("Remove did not report presence")
	}
	if got := fmt.Sprint(peers(tab.Providers("db"))); got != "[peer-0]" {
		t.Fatalf("Providers(db) after Remove = %s", got)
	}
}

// The table keeps and hands out copies: neither the caller's report nor
// a returned entry shares memory with what it holds.
func TestTableCopies(t *testing.T) {
	clock := newFakeClock()
	tab := newTestTable(clock)
	r := validReport("peer-a", 1, clock.Now())
	tab.Update(r, clock.Now())
	r.Saturation[DimCPU] = 0.99
	r.Names[0] = "changed"

	e, _ := tab.Get("peer-a")
	if e.Report.Saturation[DimCPU] != 0.42 || e.Report.Names[0] != "thumbnails" {
		t.Fatalf("the table shares the caller's report: %+v", e.Report)
	}
	e.Report.Saturation[DimCPU] = 0.01
	e.Report.Metrics[0].Value = 1000
	again, _ := tab.Get("peer-a")
	if again.Report.Saturation[DimCPU] != 0.42 || again.Report.Metrics[0].Value != 5 {
		t.Fatalf("Get handed out the table's own report: %+v", again.Report)
	}
}

func TestTableConcurrent(t *testing.T) {
	clock := newFakeClock()
	tab := newTestTable(clock, WithMaxEntries(8))
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				p := fmt.Sprintf("peer-%d", (w*7+i)%12)
				tab.Update(validReport(p, uint64(i), clock.Now()), clock.Now())
				tab.Get(p)
				if i%20 == 0 {
					tab.List()
					tab.Prune()
					clock.Advance(time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	if n := tab.Len(); n > 8 {
		t.Fatalf("Len = %d, above the bound of 8", n)
	}
	s := tab.Stats()
	if total := s.Accepted + s.Replayed + s.Duplicates + s.Late + s.Invalid; total != 800 {
		t.Fatalf("Stats account for %d updates, want 800: %+v", total, s)
	}
}
