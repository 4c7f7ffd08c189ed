package node

import (
	"context"
	"sync"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// RecentDispatch is one entry of GET ["dispatches"]: a dispatch this
// peer received, summarised (never its body or headers).
type RecentDispatch struct {
	Time     int64    `json:"ts"` // Unix milliseconds
	Kind     string   `json:"kind"`
	Method   string   `json:"method"`
	Resource []string `json:"resource"`
	From     string   `json:"from"`
	Author   string   `json:"author,omitempty"`
}

// recentRing keeps the last dispatches received.
type recentRing struct {
	mu   sync.Mutex
	buf  []RecentDispatch
	next int
	full bool
}

const (
	recentElems   = 8  // resource elements kept
	recentElemLen = 64 // bytes kept of each
)

// KeepRecent makes the engine remember the last size dispatches it
// receives and serve them, newest first, as GET ["dispatches"] to this
// machine's clients (the web view shows them). Off until called: it costs
// a summary per dispatch. Call it before the engine is in use.
func (n *Node) KeepRecent(size int) error {
	if size <= 0 || n.recent.Load() != nil {
		return nil
	}
	r := &recentRing{buf: make([]RecentDispatch, size)}
	_, err := n.Handle(dispatch.Endpoint{Method: dispatch.GET, Resource: []string{"dispatches"}}, func(context.Context, *Incoming) (any, error) {
		return r.list(), nil
	}, Inline(), LocalOnly(), QueueLen(BuiltinQueueLen))
	if err != nil {
		return err
	}
	n.recent.Store(r)
	return nil
}

func (n *Node) noteRecent(d *dispatch.Dispatch, rt replyTo) {
	r := n.recent.Load()
	if r == nil || isStatusRead(d) {
		return
	}
	res := d.ResourceText()
	if len(res) > recentElems {
		res = append(res[:recentElems:recentElems], "…")
	}
	for i, e := range res {
		if len(e) > recentElemLen {
			res[i] = e[:recentElemLen] + "…"
		}
	}
	e := RecentDispatch{
		Time:     n.cfg.now().UnixMilli(),
		Kind:     d.Kind().String(),
		Method:   d.Method,
		Resource: res,
		From:     rt.o.ID(),
		Author:   rt.author,
	}
	r.mu.Lock()
	r.buf[r.next] = e
	r.next = (r.next + 1) % len(r.buf)
	r.full = r.full || r.next == 0
	r.mu.Unlock()
}

func (r *recentRing) list() []RecentDispatch {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	if r.full {
		n = len(r.buf)
	}
	out := make([]RecentDispatch, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, r.buf[(r.next-i+len(r.buf))%len(r.buf)])
	}
	return out
}

// isStatusRead tells the reads of the peer's own status resources, which
// monitors (the web view among them) poll: listed, they would push out
// everything else.
func isStatusRead(d *dispatch.Dispatch) bool {
	if d.Method != dispatch.GET || len(d.Resource) != 1 {
		return false
	}
	switch d.Resource[0] {
	case "peer", "peers", "saturation", "subscriptions", "dispatches", "identity", "names":
		return true
	}
	return false
}
