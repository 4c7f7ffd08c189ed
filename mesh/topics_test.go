package mesh

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// What the validator decoded of a message reaches the subscription with
// it, so the subscriber does not decode it again; what it refused never
// arrives.
func TestSubscriptionGetsWhatTheValidatorDecoded(t *testing.T) {
	a, b, ta, tb := topicsPair(t)
	type decoded struct{ text string }
	tb.Validate(func(_ string, _ peer.ID, data []byte) (any, bool) {
		return &decoded{string(data)}, string(data) != "refused"
	})
	const topic = "jstp/test/decoded"
	got := make(chan any, 4)
	cancel, err := tb.Subscribe(topic, a.ID(), func(data []byte, d any) {
		if dd, ok := d.(*decoded); !ok || dd.text != string(data) {
			t.Errorf("message %q came with %#v", data, d)
		}
		got <- d
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
	for _, m := range []string{"refused", "kept"} {
		if err := ta.Publish(ctx, topic, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case d := <-got:
		if dd, _ := d.(*decoded); dd == nil || dd.text != "kept" {
			t.Fatalf("first delivery %#v, want the decoded \"kept\"", d)
		}
	case <-ctx.Done():
		t.Fatal("nothing delivered")
	}
}

// topicsPair starts two hosts, b bootstrapped to a, and Topics on each.
func topicsPair(t *testing.T) (a, b *Host, ta, tb *Topics) {
	t.Helper()
	a = newTestHost(t, testConfig(t))
	cfg := testConfig(t)
	cfg.Bootstrap = addrStrings(a.Addrs())
	b = newTestHost(t, cfg)
	ta = NewTopics(a.PubSub(), testLogger(t))
	t.Cleanup(func() { ta.Close() })
	tb = NewTopics(b.PubSub(), testLogger(t))
	t.Cleanup(func() { tb.Close() })
	return a, b, ta, tb
}
