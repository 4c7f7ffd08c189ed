package mesh

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify/pb"
	"github.com/libp2p/go-msgio/pbio"
	"google.golang.org/protobuf/proto"
)

// Identification tells a peer which protocols the other end of a
// connection speaks; gossipsub counts a peer in its topics only once it
// knows the peer speaks gossipsub. libp2p identifies a connection once and
// never again: when that fails (its 5 s timeout, on a publisher accepting
// a thousand subscribers at once), the peer's protocols stay unknown for
// the life of the connection, and a subscriber whose BIND was accepted
// gets no event. So the mesh asks again itself, on the same connection:
// it opens an identify stream, reads the protocols the peer lists, and
// tells the peerstore and everyone listening (gossipsub among them) as
// an identify push would.

// Reidentification: how many peers are asked again at once, how many
// times each, the first wait (doubled at each try), and the bounds of
// what is read.
const (
	reidentifyConcurrent = 16
	reidentifyTries      = 3
	reidentifyFirstWait  = time.Second
	reidentifyTimeout    = 10 * time.Second
	maxIdentifyMessage   = 8 << 10 // libp2p's own bound
	maxIdentifyParts     = 10
	maxIdentifyProtocols = 256
)

// watchIdentification asks again for the protocols of peers whose
// identification failed, until ctx ends.
func (h *Host) watchIdentification(ctx context.Context) error {
	sub, err := h.host.EventBus().Subscribe(new(event.EvtPeerIdentificationFailed))
	if err != nil {
		return err
	}
	emit, err := h.host.EventBus().Emitter(new(event.EvtPeerProtocolsUpdated))
	if err != nil {
		sub.Close()
		return err
	}
	slots := make(chan struct{}, reidentifyConcurrent)
	h.wg.Go(func() {
		defer sub.Close()
		defer emit.Close()
		var tries sync.WaitGroup
		defer tries.Wait()
		pending := map[peer.ID]bool{}
		done := make(chan peer.ID, reidentifyConcurrent)
		for {
			select {
			case <-ctx.Done():
				return
			case id := <-done:
				delete(pending, id)
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				id := e.(event.EvtPeerIdentificationFailed).Peer
				if pending[id] {
					continue
				}
				select {
				case slots <- struct{}{}:
				default:
					h.log.Debug("identification failed; every retry slot is taken", "peer", id)
					continue
				}
				pending[id] = true
				tries.Go(func() {
					defer func() { <-slots }()
					h.reidentify(ctx, id, emit)
					select {
					case done <- id:
					case <-ctx.Done():
					}
				})
			}
		}
	})
	return nil
}

// reidentify asks id for its protocols while it stays connected and
// unidentified.
func (h *Host) reidentify(ctx context.Context, id peer.ID, emit event.Emitter) {
	wait := reidentifyFirstWait
	for try := 1; try <= reidentifyTries; try++ {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait *= 2
		if h.host.Network().Connectedness(id) != network.Connected {
			return
		}
		if known, err := h.host.Peerstore().GetProtocols(id); err == nil && len(known) > 0 {
			return // a push or another connection told us meanwhile
		}
		protos, err := h.askProtocols(ctx, id)
		if err != nil {
			h.log.Debug("identification failed again", "peer", id, "try", try, "err", err)
			continue
		}
		if err := h.host.Peerstore().AddProtocols(id, protos...); err != nil {
			h.log.Debug("peerstore refused the protocols", "peer", id, "err", err)
			return
		}
		if err := emit.Emit(event.EvtPeerProtocolsUpdated{Peer: id, Added: protos}); err != nil {
			h.log.Debug("could not announce the protocols", "peer", id, "err", err)
		}
		h.log.Debug("identified on another try", "peer", id, "try", try, "protocols", len(protos))
		return
	}
	h.log.Warn("peer not identified: gossip will not reach it on this connection", "peer", id)
}

// askProtocols reads the protocols id lists in an identify message.
func (h *Host) askProtocols(ctx context.Context, id peer.ID) ([]protocol.ID, error) {
	ctx, cancel := context.WithTimeout(ctx, reidentifyTimeout)
	defer cancel()
	s, err := h.host.NewStream(network.WithNoDial(ctx, "identify again"), id, identify.ID)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(reidentifyTimeout))
	r := pbio.NewDelimitedReader(s, maxIdentifyMessage)
	var all pb.Identify
	for range maxIdentifyParts {
		var part pb.Identify
		if err := r.ReadMsg(&part); err != nil {
			break // EOF ends the message; anything else, we use what came
		}
		proto.Merge(&all, &part)
	}
	if len(all.Protocols) == 0 {
		return nil, fmt.Errorf("no protocols in the identify message")
	}
	if len(all.Protocols) > maxIdentifyProtocols {
		all.Protocols = all.Protocols[:maxIdentifyProtocols]
	}
	return protocol.ConvertFromStrings(all.Protocols), nil
}
