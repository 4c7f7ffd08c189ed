package node

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// subscription is one binding: an endpoint and where matching dispatches
// go, either a local handler or a remote owner.
type subscription struct {
	id      uint64
	ep      *dispatch.CompiledEndpoint
	owner   Origin  // who bound it; the node's local origin for Go callbacks
	handler Handler // nil when dispatches are delivered to owner
	// queueLen is the queue's bound (QueueLen, or the engine's).
	queueLen int
	max      int
	inline   bool // a fast handler may run on the receiving goroutine (Inline)
	mirror   bool // made here for a BIND forwarded elsewhere

	mu       sync.Mutex
	running  int
	queue    deliveryQueue // guarded by mu
	released atomic.Bool
	dropped  atomic.Uint64
	handled  atomic.Uint64
	avgNanos atomic.Int64 // moving average of the handler's duration
}

// queued is how many deliveries wait for a worker.
func (s *subscription) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queue.n
}

// deliveryQueue is a subscription's FIFO of deliveries waiting for a
// worker, bounded by limit. Its buffer grows as it fills and is let go
// when it empties after a burst: most subscriptions (the built-in
// resources, idle bindings) never hold more than a few deliveries, and
// a buffer of the full bound for each cost over a megabyte per peer —
// and let an outsider make a peer allocate 150 KiB per BIND.
type deliveryQueue struct {
	buf     []delivery
	head, n int
	limit   int
}

// keepBelow is the largest buffer a queue keeps when it empties.
const keepBelow = 64

func (q *deliveryQueue) push(d delivery) bool {
	if q.n >= q.limit {
		return false
	}
	if q.n == len(q.buf) {
		buf := make([]delivery, min(max(8, 2*len(q.buf)), q.limit))
		for i := range q.n {
			buf[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = buf, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = d
	q.n++
	return true
}

func (q *deliveryQueue) pop() (delivery, bool) {
	if q.n == 0 {
		return delivery{}, false
	}
	d := q.buf[q.head]
	q.buf[q.head] = delivery{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	if q.n == 0 {
		q.head = 0
		if len(q.buf) > keepBelow {
			q.buf = nil
		}
	}
	return d, true
}

// observe folds one handler duration into the moving average (weight
// 1/8: a few slow calls are enough to move it).
func (s *subscription) observe(d time.Duration) {
	old := s.avgNanos.Load()
	s.avgNanos.Store(old + (int64(d)-old)/8)
}

// table indexes subscriptions by method pattern, then by the literal
// prefix of their resource pattern, so a dispatch is tested only against
// patterns that can match it rather than against every binding.
type table struct {
	mu       sync.RWMutex
	byMethod map[string]*trieNode
	count    int
	owned    map[Origin]int // subscriptions per owner
}

type trieNode struct {
	children map[string]*trieNode
	subs     []*subscription
}

func newTable() *table {
	return &table{byMethod: make(map[string]*trieNode), owned: make(map[Origin]int)}
}

func (t *table) add(s *subscription) { t.addLimited(s, 0) }

// addLimited adds s unless its owner already has limit subscriptions (0:
// no limit), and reports whether it did.
func (t *table) addLimited(s *subscription, limit int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if limit > 0 && t.owned[s.owner] >= limit {
		return false
	}
	t.owned[s.owner]++
	n := t.byMethod[s.ep.Endpoint.Method]
	if n == nil {
		n = &trieNode{}
		t.byMethod[s.ep.Endpoint.Method] = n
	}
	for _, lit := range s.ep.Pattern.LiteralPrefix() {
		c := n.children[lit]
		if c == nil {
			if n.children == nil {
				n.children = make(map[string]*trieNode)
			}
			c = &trieNode{}
			n.children[lit] = c
		}
		n = c
	}
	n.subs = append(n.subs, s)
	t.count++
	return true
}

func (t *table) remove(s *subscription) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	root := t.byMethod[s.ep.Endpoint.Method]
	if root == nil {
		return false
	}
	path := []*trieNode{root}
	n := root
	prefix := s.ep.Pattern.LiteralPrefix()
	for _, lit := range prefix {
		n = n.children[lit]
		if n == nil {
			return false
		}
		path = append(path, n)
	}
	for i, x := range n.subs {
		if x == s {
			n.subs = append(n.subs[:i:i], n.subs[i+1:]...)
			t.count--
			if t.owned[s.owner]--; t.owned[s.owner] <= 0 {
				delete(t.owned, s.owner)
			}
			// Prune empty branches so a churn of bindings does not grow
			// the trie for ever.
			for j := len(path) - 1; j > 0; j-- {
				if len(path[j].subs) > 0 || len(path[j].children) > 0 {
					break
				}
				delete(path[j-1].children, prefix[j-1])
			}
			return true
		}
	}
	return false
}

type match struct {
	sub    *subscription
	params map[string]string
}

// match returns the subscriptions d triggers, in no particular order.
func (t *table) match(d *dispatch.Dispatch) []match {
	res := d.ResourceText()
	var out []match
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, m := range [2]string{d.Method, "*"} {
		n := t.byMethod[m]
		for i := 0; n != nil; i++ {
			for _, s := range n.subs {
				if params, ok := s.ep.Pattern.Match(res); ok {
					out = append(out, match{s, params})
				}
			}
			if i == len(res) {
				break
			}
			n = n.children[res[i]]
		}
	}
	return out
}

// find returns the subscriptions owned by o with exactly the endpoint ep.
func (t *table) find(o Origin, ep dispatch.Endpoint) []*subscription {
	var out []*subscription
	t.each(func(s *subscription) {
		if s.owner == o && s.ep.Endpoint.Equal(ep) {
			out = append(out, s)
		}
	})
	return out
}

func (t *table) each(f func(*subscription)) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var walk func(*trieNode)
	walk = func(n *trieNode) {
		for _, s := range n.subs {
			f(s)
		}
		for _, c := range n.children {
			walk(c)
		}
	}
	for _, n := range t.byMethod {
		walk(n)
	}
}

func (t *table) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.count
}
