package mesh

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/internal/poll"
)

// A peer whose validation cannot keep up drops what gossipsub cannot
// queue; every message that does not arrive is counted on one side or
// the other, never lost silently.
func TestGossipDropsAreCounted(t *testing.T) {
	a, b, ta, tb := topicsPair(t)

	// b's validator holds every message until release: its workers
	// stop, and the validation queue fills.
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	tb.Validate(func(string, peer.ID, []byte) (any, bool) {
		<-release
		return nil, true
	})
	const topic = "jstp/test/drops"
	var mu sync.Mutex
	got := map[string]bool{}
	cancel, err := tb.Subscribe(topic, a.ID(), func(data []byte, _ any) {
		mu.Lock()
		got[string(data)] = true
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	ctx, stop := context.WithTimeout(t.Context(), 20*time.Second)
	defer stop()
	if err := ta.WaitMember(ctx, topic, b.ID()); err != nil {
		t.Fatalf("b never joined the topic at a: %v", err)
	}

	const n = 2 * gossipValidateQueue
	for i := range n {
		if err := ta.Publish(ctx, topic, fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until every message is either at b or counted as dropped
	// somewhere, with b's validators still held: what b has not dropped
	// is then queued, and the queue holds fewer than n.
	lost := func() uint64 {
		da, db := a.GossipDrops(), b.GossipDrops()
		return da.Outbound + db.Validation + db.Subscriber
	}
	poll.Until(t, 20*time.Second, "b's validation queue to overflow", func() bool {
		return b.GossipDrops().Validation > 0
	})
	releaseOnce.Do(func() { close(release) })
	poll.Until(t, 20*time.Second, "every message delivered or counted as dropped", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return uint64(len(got))+lost() >= n
	})
	if d := b.GossipDrops(); d.Validation == 0 {
		t.Errorf("b dropped nothing at validation: %+v", d)
	}
}
