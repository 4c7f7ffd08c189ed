package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
)

// ProtocolID is the libp2p protocol dispatches travel under. The version
// is the JSTP version the wire carries; a peer of another version does
// not negotiate it and is not sent dispatches it cannot read.
const ProtocolID protocol.ID = "/jstp/0.4/dispatch"

// streamOpenTimeout bounds opening a stream to a peer we are connected
// to, or can dial.
const streamOpenTimeout = 15 * time.Second

// Receiver is what a Transport hands incoming dispatches to: the engine.
type Receiver interface {
	Receive(ctx context.Context, from node.Origin, d *dispatch.Dispatch)
	ReceiveFrame(ctx context.Context, from node.Origin, frame []byte)
	ReceiveNotification(ctx context.Context, from node.Origin, d *dispatch.Dispatch)
	Decoder() dispatch.Decoder
}

// Transport carries dispatches between peers over libp2p streams. Each
// remote peer has one session, an Origin for the engine; its dispatches
// go out on one long-lived stream (opened on first use or adopted from
// the peer), through a FrameQueue that coalesces writes under load and
// refuses rather than stalls when the peer does not keep up.
type Transport struct {
	h        host.Host
	recv     Receiver
	log      *slog.Logger
	queueLen int
	maxFrame int
	// beforeBind runs before a BIND from a peer is processed; the gossip
	// layer uses it to make sure the peer's topic subscription is known.
	beforeBind func(ctx context.Context, s *Session, d *dispatch.Dispatch)
	sink       func(ep dispatch.Endpoint) node.Origin

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu       sync.Mutex
	sessions map[peer.ID]*Session
}

// NewTransport registers the dispatch protocol on h and delivers what
// arrives to recv. queueLen bounds each peer's outgoing queue (0: 1024).
func NewTransport(h host.Host, recv Receiver, queueLen int, log *slog.Logger) *Transport {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		h:        h,
		recv:     recv,
		log:      log.With("component", "mesh"),
		queueLen: queueLen,
		maxFrame: recv.Decoder().MaxSize,
		ctx:      ctx,
		cancel:   cancel,
		sessions: map[peer.ID]*Session{},
	}
	if t.maxFrame <= 0 {
		t.maxFrame = dispatch.DefaultMaxSize
	}
	h.SetStreamHandler(ProtocolID, t.handleStream)
	h.Network().Notify(&network.NotifyBundle{DisconnectedF: t.disconnected})
	return t
}

// Close ends every session and stops every goroutine the Transport
// started. It does not close the host.
func (t *Transport) Close() error {
	t.once.Do(func() {
		t.h.RemoveStreamHandler(ProtocolID)
		t.cancel()
		t.mu.Lock()
		for _, s := range t.sessions {
			s.close()
		}
		t.mu.Unlock()
		t.wg.Wait()
	})
	return nil
}

// Session returns the session with a peer, creating it.
func (t *Transport) Session(id peer.ID) *Session {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sessions[id]
	if s == nil || s.isClosed() {
		s = &Session{t: t, id: id, done: make(chan struct{})}
		t.sessions[id] = s
	}
	return s
}

// disconnected ends the session when the last connection to a peer goes:
// the engine then releases the peer's subscriptions.
func (t *Transport) disconnected(_ network.Network, c network.Conn) {
	id := c.RemotePeer()
	if t.h.Network().Connectedness(id) == network.Connected {
		return
	}
	t.mu.Lock()
	s := t.sessions[id]
	delete(t.sessions, id)
	t.mu.Unlock()
	if s != nil {
		s.close()
	}
}

func (t *Transport) handleStream(st network.Stream) {
	s := t.Session(st.Conn().RemotePeer())
	if !s.adopt(st) {
		st.Reset()
	}
}

// Session is the engine's Origin for one remote peer.
type Session struct {
	t    *Transport
	id   peer.ID
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	q       *FrameQueue // the stream dispatches go out on; nil until one is open
	opening chan struct{}
	streams map[network.Stream]*FrameQueue
}

// ID is the peer id.
func (s *Session) ID() string { return s.id.String() }

// Peer is the peer id.
func (s *Session) Peer() peer.ID { return s.id }

// Done is closed when the peer disconnects.
func (s *Session) Done() <-chan struct{} { return s.done }

// WantsProvisional: peers of this project expect the list of triggering
// ids, to answer 504 for missing answers themselves.
func (s *Session) WantsProvisional() bool { return true }

// Sink makes the peer's subscriptions publish to the endpoint's gossipsub
// topic, shared by every subscriber of this peer's endpoint.
func (s *Session) Sink(ep dispatch.Endpoint) node.Origin {
	if s.t.sink == nil {
		return s
	}
	return s.t.sink(ep)
}

func (s *Session) isClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *Session) close() {
	s.once.Do(func() {
		close(s.done)
		s.mu.Lock()
		for st, q := range s.streams {
			q.Close()
			st.Close()
		}
		s.mu.Unlock()
	})
}

// Deliver queues d for the peer without waiting: a peer that does not
// keep up loses dispatches (ErrUnavailable, 503) rather than stall the
// engine's workers.
func (s *Session) Deliver(ctx context.Context, d *dispatch.Dispatch) error {
	q, err := s.queue(ctx)
	if err != nil {
		return err
	}
	return q.TryEnqueue(d)
}

// Send queues d for the peer, waiting for room until ctx ends: the
// sender's own dispatches push back on the sender.
func (s *Session) Send(ctx context.Context, d *dispatch.Dispatch) error {
	q, err := s.queue(ctx)
	if err != nil {
		return err
	}
	return q.Enqueue(ctx, d)
}

// queue returns the outgoing queue, opening a stream when there is none.
// Concurrent callers wait for one opening instead of each opening a
// stream of its own.
func (s *Session) queue(ctx context.Context) (*FrameQueue, error) {
	for {
		s.mu.Lock()
		if s.isClosed() {
			s.mu.Unlock()
			return nil, dispatch.Errorf(dispatch.ErrNotGateway, "peer %s disconnected", s.id)
		}
		if s.q != nil {
			q := s.q
			s.mu.Unlock()
			return q, nil
		}
		if wait := s.opening; wait != nil {
			s.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		wait := make(chan struct{})
		s.opening = wait
		s.mu.Unlock()

		octx, cancel := context.WithTimeout(ctx, streamOpenTimeout)
		st, err := s.t.h.NewStream(octx, s.id, ProtocolID)
		cancel()
		s.mu.Lock()
		s.opening = nil
		close(wait)
		s.mu.Unlock()
		if err != nil {
			return nil, dispatch.Errorf(dispatch.ErrNotGateway, "cannot open a dispatch stream to %s: %v", s.id, err)
		}
		if !s.adopt(st) {
			st.Reset()
			return nil, dispatch.Errorf(dispatch.ErrNotGateway, "peer %s disconnected", s.id)
		}
	}
}

// adopt starts reading st and makes it the outgoing stream if there is
// none yet, so a peer that opened a stream to us is answered on it.
func (s *Session) adopt(st network.Stream) bool {
	q := NewFrameQueue(st, s.t.queueLen)
	s.mu.Lock()
	if s.isClosed() {
		s.mu.Unlock()
		return false
	}
	if s.streams == nil {
		s.streams = map[network.Stream]*FrameQueue{}
	}
	s.streams[st] = q
	if s.q == nil {
		s.q = q
	}
	s.mu.Unlock()
	s.t.wg.Add(2)
	go func() {
		defer s.t.wg.Done()
		if err := q.Run(s.t.ctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, ErrQueueClosed) {
			s.t.log.Debug("dispatch stream write ended", "peer", s.id, "err", err)
		}
		st.Reset()
	}()
	go func() {
		defer s.t.wg.Done()
		s.read(st)
		s.drop(st, q)
	}()
	return true
}

// drop forgets a stream that ended; the next dispatch opens another.
func (s *Session) drop(st network.Stream, q *FrameQueue) {
	q.Close()
	s.mu.Lock()
	delete(s.streams, st)
	if s.q == q {
		s.q = nil
		for _, other := range s.streams {
			s.q = other
			break
		}
	}
	s.mu.Unlock()
}

// read hands every frame of st to the engine until the stream ends.
func (s *Session) read(st network.Stream) {
	fr := NewFrameReader(st, s.t.maxFrame)
	ctx := s.t.ctx
	for {
		frame, err := fr.ReadFrame()
		if err != nil {
			if errors.Is(err, dispatch.ErrTooLarge) {
				// The oversized frame was skipped; say so and carry on.
				s.t.log.Info("dispatch frame too large", "peer", s.id, "err", err)
				s.Deliver(ctx, dispatch.NewException(err, nil))
				continue
			}
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				s.t.log.Debug("dispatch stream read ended", "peer", s.id, "err", err)
			}
			return
		}
		d, derr := s.t.recv.Decoder().Decode(frame)
		if derr != nil {
			// The engine decodes it again to answer with the exception.
			s.t.recv.ReceiveFrame(ctx, s, frame)
			continue
		}
		if s.t.beforeBind != nil && d.Method == dispatch.BIND && len(d.Host) == 0 {
			s.t.beforeBind(ctx, s, d)
		}
		s.t.recv.Receive(ctx, s, d)
	}
}

// Connect makes sure the host can reach ai, dialling its addresses when
// it is not connected.
func (t *Transport) Connect(ctx context.Context, ai peer.AddrInfo) error {
	if t.h.Network().Connectedness(ai.ID) == network.Connected {
		return nil
	}
	if err := t.h.Connect(ctx, ai); err != nil {
		return fmt.Errorf("mesh: connect to %s: %w", ai.ID, err)
	}
	return nil
}
