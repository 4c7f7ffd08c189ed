package node

import "testing"

// The queue keeps order across growth and wrap-around, refuses beyond
// its bound, and lets a large buffer go once it empties.
func TestDeliveryQueue(t *testing.T) {
	q := deliveryQueue{limit: 100}
	next, want := 0, 0
	push := func(k int) {
		t.Helper()
		for range k {
			if !q.push(delivery{depth: next}) {
				t.Fatalf("push %d refused with %d queued", next, q.n)
			}
			next++
		}
	}
	pop := func(k int) {
		t.Helper()
		for range k {
			d, ok := q.pop()
			if !ok || d.depth != want {
				t.Fatalf("pop = %d, %v; want %d", d.depth, ok, want)
			}
			want++
		}
	}
	if len(q.buf) != 0 {
		t.Fatal("a new queue holds a buffer")
	}
	push(5)
	pop(3)
	push(10) // grows while wrapped around
	pop(12)
	push(100)
	if q.push(delivery{}) {
		t.Fatal("push beyond the limit accepted")
	}
	if len(q.buf) != 100 {
		t.Fatalf("buffer of %d for a limit of 100", len(q.buf))
	}
	pop(100)
	if _, ok := q.pop(); ok {
		t.Fatal("pop from an empty queue")
	}
	if q.buf != nil {
		t.Fatalf("an empty queue keeps a buffer of %d", len(q.buf))
	}
	push(3)
	pop(3)
	if len(q.buf) == 0 || len(q.buf) > keepBelow {
		t.Fatalf("a small buffer (%d) is not kept", len(q.buf))
	}
}
