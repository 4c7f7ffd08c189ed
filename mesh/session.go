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
)

// ProtocolID is the libp2p protocol dispatches travel under. The version
// is the JSTP version the wire carries; a peer of another version does
// not negotiate it and is not sent dispatches it cannot read.
const ProtocolID protocol.ID = "/jstp/0.4/dispatch"

// streamOpenTimeout bounds opening a stream to a peer we are connected
// to, or can dial.
const streamOpenTimeout = 15 * time.Second

// DefaultQueueLen bounds each link's outgoing queue, in frames, when a
// constructor is given no bound.
const DefaultQueueLen = 1024

// Streams carries dispatches between peers over libp2p streams. Each
// remote peer has one Session, a Link; its dispatches go out on one
// long-lived stream (opened on first use or adopted from the peer),
// through a FrameQueue that coalesces writes under load.
//
// NewStreams builds it; nothing arrives before Start registers the
// protocol, so whoever composes a peer wires every part first.
type Streams struct {
	h        host.Host
	log      *slog.Logger
	queueLen int
	maxFrame int
	in       Ingress // set by Start, before the stream handler runs

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu       sync.Mutex
	started  bool
	sessions map[peer.ID]*Session
}

// NewStreams returns the dispatch stream protocol on h, not started.
// queueLen bounds each session's outgoing queue (0: DefaultQueueLen) and
// maxFrame each frame read (0: DefaultMaxFrame).
func NewStreams(h host.Host, queueLen, maxFrame int, log *slog.Logger) *Streams {
	if log == nil {
		log = slog.Default()
	}
	if queueLen <= 0 {
		queueLen = DefaultQueueLen
	}
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Streams{
		h:        h,
		log:      log.With("component", "streams"),
		queueLen: queueLen,
		maxFrame: maxFrame,
		ctx:      ctx,
		cancel:   cancel,
		sessions: map[peer.ID]*Session{},
	}
}

// Start registers the protocol: from now on streams are accepted and
// sessions deliver what they read to in.
func (t *Streams) Start(in Ingress) {
	t.mu.Lock()
	if t.started {
		t.mu.Unlock()
		return
	}
	t.started = true
	t.in = in
	t.mu.Unlock()
	t.h.Network().Notify(&network.NotifyBundle{DisconnectedF: t.disconnected})
	t.h.SetStreamHandler(ProtocolID, t.handleStream)
}

// Close ends every session and stops every goroutine Streams started. It
// does not close the host.
func (t *Streams) Close() error {
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

// Session returns the session with a peer, creating it. It fails once
// Streams is closed or before it is started.
func (t *Streams) Session(id peer.ID) (*Session, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.started || t.ctx.Err() != nil {
		return nil, dispatch.Errorf(dispatch.ErrNotGateway, "dispatch streams are not running")
	}
	s := t.sessions[id]
	if s == nil || s.isClosed() {
		s = &Session{t: t, id: id, idText: id.String(), done: make(chan struct{})}
		// Attach before any frame can arrive, and before anyone else
		// can see the session.
		s.frames = t.in.Attach(s)
		t.sessions[id] = s
	}
	return s, nil
}

// Open returns the session with a peer this host is connected to, if one
// is open: the common case of a dispatch to a peer, answered without
// touching the peerstore.
func (t *Streams) Open(id peer.ID) (*Session, bool) {
	t.mu.Lock()
	s := t.sessions[id]
	t.mu.Unlock()
	if s == nil || s.isClosed() || t.h.Network().Connectedness(id) != network.Connected {
		return nil, false
	}
	return s, true
}

// Connect makes sure the host can reach ai, dialling its addresses when
// it is not connected.
func (t *Streams) Connect(ctx context.Context, ai peer.AddrInfo) error {
	if t.h.Network().Connectedness(ai.ID) == network.Connected {
		return nil
	}
	if err := t.h.Connect(ctx, ai); err != nil {
		return fmt.Errorf("mesh: connect to %s: %w", ai.ID, err)
	}
	return nil
}

// Self is this host's peer id.
func (t *Streams) Self() peer.ID { return t.h.ID() }

// disconnected ends the session when the last connection to a peer goes:
// the engine then releases the peer's subscriptions.
func (t *Streams) disconnected(_ network.Network, c network.Conn) {
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

func (t *Streams) handleStream(st network.Stream) {
	s, err := t.Session(st.Conn().RemotePeer())
	if err != nil || !s.adopt(st) {
		st.Reset()
	}
}

// Session is the Link with one remote peer.
type Session struct {
	t      *Streams
	id     peer.ID
	idText string // id.String(), a base58 encoding: asked for on every dispatch
	frames FrameFunc
	done   chan struct{}
	once   sync.Once

	mu      sync.Mutex
	q       *FrameQueue // the stream dispatches go out on; nil until one is open
	opening chan struct{}
	streams map[network.Stream]*FrameQueue
}

// ID is the peer id.
func (s *Session) ID() string { return s.idText }

// Kind is PeerLink.
func (s *Session) Kind() LinkKind { return PeerLink }

// Remote is the peer id.
func (s *Session) Remote() string { return s.idText }

// Peer is the peer id.
func (s *Session) Peer() peer.ID { return s.id }

// Done is closed when the peer disconnects.
func (s *Session) Done() <-chan struct{} { return s.done }

// Close ends the session (the peer stays connected; the next dispatch
// opens a new one).
func (s *Session) Close() {
	s.t.mu.Lock()
	if s.t.sessions[s.id] == s {
		delete(s.t.sessions, s.id)
	}
	s.t.mu.Unlock()
	s.close()
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

// Send queues d, waiting for room until ctx ends, and opens a stream
// first when there is none.
func (s *Session) Send(ctx context.Context, d *dispatch.Dispatch) error {
	q, err := s.queue(ctx)
	if err != nil {
		return err
	}
	return q.Enqueue(ctx, d)
}

// SendNow is Send that writes on the caller's goroutine when the stream
// is idle.
func (s *Session) SendNow(ctx context.Context, d *dispatch.Dispatch) error {
	q, err := s.queue(ctx)
	if err != nil {
		return err
	}
	return q.SendNow(ctx, d)
}

// Offer queues d unless the queue is full.
func (s *Session) Offer(d *dispatch.Dispatch) error {
	q, err := s.queue(s.t.ctx)
	if err != nil {
		return err
	}
	return q.TryEnqueue(d)
}

// Push queues d whatever the queue holds.
func (s *Session) Push(d *dispatch.Dispatch) error {
	q, err := s.queue(s.t.ctx)
	if err != nil {
		return err
	}
	return q.Push(d)
}

// WaitRoom waits until Offer would accept a dispatch.
func (s *Session) WaitRoom(ctx context.Context) error {
	s.mu.Lock()
	q := s.q
	s.mu.Unlock()
	if q == nil {
		return nil
	}
	return q.WaitRoom(ctx)
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
				s.frames(ctx, nil, err)
				continue
			}
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				s.t.log.Debug("dispatch stream read ended", "peer", s.id, "err", err)
			}
			return
		}
		s.frames(ctx, frame, nil)
	}
}
