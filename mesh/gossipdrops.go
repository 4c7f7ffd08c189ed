package mesh

import (
	"log/slog"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/jstp-peer/jstp-peer/internal/ratelog"
)

// Gossipsub's own queues, sized for bursts a mesh makes by itself.
// Its defaults (32 each) lost events in a mesh of fifty peers on two
// cores: every peer publishes its first saturation report as it starts,
// each arrives in several copies (flood publish and the mesh), and only
// one copy is marked seen once a worker has verified its signature, so
// the copies queue up behind two workers. An event arriving then was
// refused with "validation queue full", and nothing sends it again.
// Both queues hold pointers: the validation queue costs 8 KiB per peer,
// and a peer's send queue grows only as far as it is used.
const (
	gossipValidateQueue = 1024
	gossipPeerQueue     = 256
)

// GossipDrops counts the messages gossipsub dropped on this peer because
// one of its queues was full. Gossipsub has no back-pressure: a message
// dropped here is lost to those it was for unless a peer gossips it again.
type GossipDrops struct {
	// Outbound counts messages not sent to a peer whose send queue was
	// full (the peer reads too slowly, or the link is congested).
	Outbound uint64 `json:"outbound"`
	// Validation counts messages received while the validation queue
	// was full or validation was throttled.
	Validation uint64 `json:"validation"`
	// Subscriber counts messages not handed to a local subscription
	// that did not keep up.
	Subscriber uint64 `json:"subscriber"`
}

// dropCounter is a gossipsub tracer that counts drops and says so in the
// log, at most once per ratelog.DefaultInterval for each kind. Its
// methods run on gossipsub's event loop, so they only count.
type dropCounter struct {
	outbound, validation, subscriber atomic.Uint64
	warn                             *ratelog.Logger
}

var _ pubsub.RawTracer = (*dropCounter)(nil)

func newDropCounter(log *slog.Logger) *dropCounter {
	return &dropCounter{warn: ratelog.New(log, ratelog.DefaultInterval)}
}

func (c *dropCounter) drops() GossipDrops {
	return GossipDrops{
		Outbound:   c.outbound.Load(),
		Validation: c.validation.Load(),
		Subscriber: c.subscriber.Load(),
	}
}

func (c *dropCounter) DropRPC(rpc *pubsub.RPC, p peer.ID) {
	if n := len(rpc.GetPublish()); n > 0 {
		c.outbound.Add(uint64(n))
		c.warn.Warn("gossip messages dropped: peer's send queue full", "peer", p, "total", c.outbound.Load())
	}
}

func (c *dropCounter) RejectMessage(msg *pubsub.Message, reason string) {
	if reason == pubsub.RejectValidationQueueFull || reason == pubsub.RejectValidationThrottled {
		c.validation.Add(1)
		c.warn.Warn("gossip message dropped: validation queue full", "topic", msg.GetTopic(), "total", c.validation.Load())
	}
}

func (c *dropCounter) UndeliverableMessage(msg *pubsub.Message) {
	c.subscriber.Add(1)
	c.warn.Warn("gossip message dropped: subscription not keeping up", "topic", msg.GetTopic(), "total", c.subscriber.Load())
}

func (*dropCounter) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (*dropCounter) OnClosedOutboundStream(peer.ID)                       {}
func (*dropCounter) Join(string)                                          {}
func (*dropCounter) Leave(string)                                         {}
func (*dropCounter) Graft(peer.ID, string)                                {}
func (*dropCounter) Prune(peer.ID, string)                                {}
func (*dropCounter) ValidateMessage(*pubsub.Message)                      {}
func (*dropCounter) DeliverMessage(*pubsub.Message)                       {}
func (*dropCounter) DuplicateMessage(*pubsub.Message)                     {}
func (*dropCounter) ThrottlePeer(peer.ID)                                 {}
func (*dropCounter) RecvRPC(*pubsub.RPC)                                  {}
func (*dropCounter) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (*dropCounter) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
