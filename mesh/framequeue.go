package mesh

// The writing side of the frame codec: FrameWriter for one goroutine,
// FrameQueue for many goroutines sharing one stream.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// writeFlushSize is how much a FrameWriter buffers before it writes on
// its own, so a long run of WriteDispatch calls without Flush stays
// bounded in memory.
const writeFlushSize = 64 << 10

// errNewline rejects a frame that would break the framing.
var errNewline = dispatch.Errorf(dispatch.ErrBadDispatch, "frame contains a newline")

// FrameWriter buffers frames and writes them with as few Write calls as
// the caller's Flush calls allow. It is the single-goroutine writer; use a
// FrameQueue when several goroutines write to one stream.
//
// A FrameWriter is not safe for concurrent use. After a write error every
// call returns that error.
type FrameWriter struct {
	w   io.Writer
	buf []byte
	err error
}

// NewFrameWriter returns a FrameWriter on w.
func NewFrameWriter(w io.Writer) *FrameWriter {
	return &FrameWriter{w: w}
}

// WriteDispatch appends d's one-line JSON encoding and "\n" to the buffer.
// Nothing is written to the stream until Flush, or until more than 64 KiB
// is buffered.
func (fw *FrameWriter) WriteDispatch(d *dispatch.Dispatch) error {
	if fw.err != nil {
		return fw.err
	}
	fw.buf = append(d.AppendJSON(fw.buf), '\n')
	return fw.maybeFlush()
}

// WriteFrame appends an already encoded frame (without its terminator)
// and "\n" to the buffer, for relaying a frame without decoding it. A
// frame that contains "\n" is refused with an error wrapping
// dispatch.ErrBadDispatch, since it would arrive as two frames.
func (fw *FrameWriter) WriteFrame(frame []byte) error {
	if fw.err != nil {
		return fw.err
	}
	if bytes.IndexByte(frame, '\n') >= 0 {
		return errNewline
	}
	fw.buf = append(append(fw.buf, frame...), '\n')
	return fw.maybeFlush()
}

func (fw *FrameWriter) maybeFlush() error {
	if len(fw.buf) >= writeFlushSize {
		return fw.Flush()
	}
	return nil
}

// Buffered returns the number of bytes waiting for Flush.
func (fw *FrameWriter) Buffered() int { return len(fw.buf) }

// Flush writes everything buffered with one Write call.
func (fw *FrameWriter) Flush() error {
	if fw.err != nil {
		return fw.err
	}
	if len(fw.buf) == 0 {
		return nil
	}
	_, err := fw.w.Write(fw.buf)
	fw.buf = fw.buf[:0]
	if err != nil {
		fw.err = fmt.Errorf("mesh: write frames: %w", err)
		return fw.err
	}
	return nil
}

// yieldBelow is the batch, in bytes, below which Run yields once before
// writing, for more frames to join it.
const yieldBelow = 1000

// ErrQueueClosed is returned by a FrameQueue's Enqueue methods after Close,
// and after Run has returned.
var ErrQueueClosed = errors.New("mesh: frame queue closed")

// DefaultQueueBytes is the default bound on the bytes a FrameQueue holds
// while they wait to be written (see WithQueueBytes).
const DefaultQueueBytes = 4 << 20

// QueueOption configures a FrameQueue.
type QueueOption func(*FrameQueue)

// WithQueueBytes bounds the encoded bytes waiting in the queue (default
// DefaultQueueBytes). A frame larger than the bound is still accepted when
// the queue is empty, so any frame can get through eventually. The bytes
// being written by Run are not counted: at most twice the bound is held.
func WithQueueBytes(n int) QueueOption {
	return func(q *FrameQueue) {
		if n > 0 {
			q.maxBytes = n
		}
	}
}

// QueueStats counts a FrameQueue's work since it was created.
type QueueStats struct {
	Frames uint64 // frames written
	Writes uint64 // Write calls made; Frames/Writes is the coalescing ratio
}

// FrameQueue lets many goroutines send frames on one stream. Enqueue
// encodes the dispatch in the caller's goroutine and appends it to a
// pending buffer; Run, a loop the owner of the stream runs in a goroutine
// of its own, takes the whole pending buffer and writes it with a single
// Write call. While one Write is in progress, everything enqueued meanwhile
// piles up in the other buffer and goes out in the next Write: under load
// writes coalesce by themselves, and with no load every frame goes out at
// once, without a timer.
//
// The queue is bounded by a frame count and a byte count. Enqueue waits
// for room until its context ends; TryEnqueue fails at once with an error
// wrapping dispatch.ErrUnavailable (503), for callers that must never
// stall on a slow reader.
//
// Enqueue, TryEnqueue, Close and Stats are safe for concurrent use. Run
// must be called once.
type FrameQueue struct {
	w        io.Writer
	maxLen   int
	maxBytes int

	mu      sync.Mutex
	pending []byte        // encoded frames waiting for Run
	n       int           // frames in pending
	spare   []byte        // the buffer Run wrote last, reused next
	room    chan struct{} // closed when pending is taken; nil if nobody waits
	err     error         // set by Close or when Run ends; refuses new frames
	closing bool          // Close was called: Run drains and returns
	writing bool          // a Write is in progress, Run's or SendNow's

	ready   chan struct{} // capacity 1: pending is non-empty, or Close
	running atomic.Bool
	frames  atomic.Uint64
	writes  atomic.Uint64
}

// NewFrameQueue returns a queue that writes to w and holds at most
// queueLen frames (queueLen <= 0 means 1024) waiting to be written.
func NewFrameQueue(w io.Writer, queueLen int, opts ...QueueOption) *FrameQueue {
	if queueLen <= 0 {
		queueLen = 1024
	}
	q := &FrameQueue{
		w:        w,
		maxLen:   queueLen,
		maxBytes: DefaultQueueBytes,
		ready:    make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(q)
	}
	return q
}

// scratch holds encoding buffers, so Enqueue encodes outside the lock and
// allocates nothing in steady state. Buffers grown past scratchKeep by a
// large dispatch are left to the garbage collector rather than pooled.
var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

const scratchKeep = 64 << 10

func putScratch(bp *[]byte, b []byte) {
	if cap(b) > scratchKeep {
		return
	}
	*bp = b
	scratch.Put(bp)
}

// How a frame enters a FrameQueue that is full.
type admit int

const (
	admitWait   admit = iota // wait for room until ctx ends
	admitRefuse              // fail at once with ErrUnavailable
	admitAlways              // take it beyond the bounds
)

// Enqueue encodes d and queues it, waiting while the queue is full. It
// returns ctx's error if ctx ends first, and ErrQueueClosed (or the write
// error that ended Run) once the queue no longer writes. d is encoded
// before Enqueue returns, so the caller may change it afterwards.
func (q *FrameQueue) Enqueue(ctx context.Context, d *dispatch.Dispatch) error {
	return q.enqueueDispatch(ctx, d, admitWait)
}

// TryEnqueue is Enqueue without waiting: when the queue is full it returns
// an error wrapping dispatch.ErrUnavailable.
func (q *FrameQueue) TryEnqueue(d *dispatch.Dispatch) error {
	return q.enqueueDispatch(context.Background(), d, admitRefuse)
}

// Push queues d whatever the queue holds, failing only once the queue is
// closed. It is for frames whose number the caller bounds some other way
// (answers: one per request the peer was allowed to have in flight), and
// which must neither be lost nor stall the goroutine that produced them.
// Frames pushed beyond the bounds count towards them, so Enqueue and
// TryEnqueue wait or refuse until the backlog is written.
func (q *FrameQueue) Push(d *dispatch.Dispatch) error {
	return q.enqueueDispatch(context.Background(), d, admitAlways)
}

// EnqueueFrame queues an encoded frame (without its terminator), for
// relaying a frame without decoding it. The frame is copied. A frame that
// contains "\n" is refused with an error wrapping dispatch.ErrBadDispatch.
func (q *FrameQueue) EnqueueFrame(ctx context.Context, frame []byte) error {
	return q.enqueueFrame(ctx, frame, admitWait)
}

// TryEnqueueFrame is EnqueueFrame without waiting.
func (q *FrameQueue) TryEnqueueFrame(frame []byte) error {
	return q.enqueueFrame(context.Background(), frame, admitRefuse)
}

func (q *FrameQueue) enqueueDispatch(ctx context.Context, d *dispatch.Dispatch, how admit) error {
	bp := scratch.Get().(*[]byte)
	b := append(d.AppendJSON((*bp)[:0]), '\n')
	err := q.push(ctx, b, how)
	putScratch(bp, b)
	return err
}

func (q *FrameQueue) enqueueFrame(ctx context.Context, frame []byte, how admit) error {
	if bytes.IndexByte(frame, '\n') >= 0 {
		return errNewline
	}
	bp := scratch.Get().(*[]byte)
	b := append(append((*bp)[:0], frame...), '\n')
	err := q.push(ctx, b, how)
	putScratch(bp, b)
	return err
}

// push copies one terminated frame into the pending buffer.
func (q *FrameQueue) push(ctx context.Context, frame []byte, how admit) error {
	for {
		q.mu.Lock()
		if q.err != nil {
			err := q.err
			q.mu.Unlock()
			return err
		}
		if how == admitAlways || q.hasRoomLocked(len(frame)) {
			q.pending = append(q.pending, frame...)
			q.n++
			q.mu.Unlock()
			q.signal()
			return nil
		}
		if how == admitRefuse {
			n, size := q.n, len(q.pending)
			q.mu.Unlock()
			return dispatch.Errorf(dispatch.ErrUnavailable, "send queue full (%d frames, %d bytes waiting)", n, size)
		}
		room := q.roomLocked()
		q.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return fmt.Errorf("mesh: enqueue frame: %w", ctx.Err())
		}
	}
}

func (q *FrameQueue) hasRoomLocked(size int) bool {
	return q.n == 0 || (q.n < q.maxLen && len(q.pending)+size <= q.maxBytes)
}

// roomLocked returns a channel closed when Run next takes the pending
// frames. q.mu must be held.
func (q *FrameQueue) roomLocked() <-chan struct{} {
	if q.room == nil {
		q.room = make(chan struct{})
	}
	return q.room
}

// WaitRoom waits until the queue would take a small frame without
// waiting, or it closes (then it returns nil: the next Enqueue reports
// why), or ctx ends. A reader uses it to stop reading from a peer whose
// answers are not being read: what the peer sends waits in the
// transport's buffers, and the transport's flow control slows the peer.
func (q *FrameQueue) WaitRoom(ctx context.Context) error {
	for {
		q.mu.Lock()
		if q.err != nil || q.hasRoomLocked(1) {
			q.mu.Unlock()
			return nil
		}
		room := q.roomLocked()
		q.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// signal wakes Run without blocking; one pending token is enough, since
// Run takes everything queued when it wakes.
func (q *FrameQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// Run writes queued frames until Close, ctx's end or a write error, and
// returns nil after Close (having written everything queued before it),
// ctx's error, or the write error. Once Run returns, the queue refuses new
// frames. Run does not close w.
//
// A Write blocked on a stalled peer holds Run until it returns: close the
// underlying connection (or set a write deadline) to end it.
func (q *FrameQueue) Run(ctx context.Context) (err error) {
	if !q.running.CompareAndSwap(false, true) {
		return errors.New("mesh: FrameQueue.Run called more than once")
	}
	defer func() { q.stop(err) }()
	for {
		// Cancellation wins over pending frames: a caller that cancels
		// wants Run to stop, not to drain.
		if err := ctx.Err(); err != nil {
			return err
		}
		select {
		case <-q.ready:
		case <-ctx.Done():
			return ctx.Err()
		}
		q.mu.Lock()
		if len(q.pending) < yieldBelow {
			// Let the goroutines that are about to queue frames do
			// so first, so that one Write carries them all: the
			// stream's Write only hands bytes to the muxer, so a
			// pipelined burst would otherwise go out a frame per
			// write, and per system call. Alone, a frame waits for
			// nothing (gRPC's HTTP/2 writer yields the same way).
			q.mu.Unlock()
			runtime.Gosched()
			q.mu.Lock()
		}
		if q.writing {
			// SendNow is writing, and drains what is pending before it
			// lets go; it wakes Run again if Close came meanwhile.
			q.mu.Unlock()
			continue
		}
		if q.err != nil && !q.closing {
			// SendNow's write failed: the stream is broken.
			err := q.err
			q.mu.Unlock()
			return err
		}
		batch, n := q.takeLocked()
		q.writing = true
		closing := q.closing
		q.mu.Unlock()

		if len(batch) > 0 {
			_, werr := q.w.Write(batch)
			q.writes.Add(1)
			if werr != nil {
				return fmt.Errorf("mesh: write frames: %w", werr)
			}
			q.frames.Add(uint64(n))
		}
		q.mu.Lock()
		q.spare = batch[:0]
		q.writing = false
		if q.n > 0 {
			q.signal()
		}
		q.mu.Unlock()
		if closing {
			return nil
		}
	}
}

// takeLocked takes the pending frames for writing. q.mu must be held.
func (q *FrameQueue) takeLocked() (batch []byte, n int) {
	batch, n = q.pending, q.n
	q.pending, q.n, q.spare = q.spare[:0], 0, nil
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
	return batch, n
}

// SendNow is Enqueue that writes d on the caller's goroutine when nothing
// is being written or waiting: the caller, who would wait for room anyway,
// saves the hand-over to Run's goroutine, which costs a wake-up per frame
// when the stream is idle. It also writes what others queue meanwhile.
// The write may block while the peer does not read, whatever ctx says; so
// it is for callers that may wait (an application sending), never for a
// goroutine that others depend on.
func (q *FrameQueue) SendNow(ctx context.Context, d *dispatch.Dispatch) error {
	q.mu.Lock()
	if q.err != nil || q.writing || q.n > 0 || !q.running.Load() {
		q.mu.Unlock()
		return q.Enqueue(ctx, d)
	}
	q.writing = true
	q.mu.Unlock()
	bp := scratch.Get().(*[]byte)
	b := append(d.AppendJSON((*bp)[:0]), '\n')
	_, werr := q.w.Write(b)
	putScratch(bp, b)
	q.writes.Add(1)
	if werr == nil {
		q.frames.Add(1)
	}
	for {
		q.mu.Lock()
		if werr != nil || q.n == 0 {
			q.writing = false
			if werr != nil && q.err == nil {
				werr = fmt.Errorf("mesh: write frames: %w", werr)
				q.err = fmt.Errorf("%w: %w", ErrQueueClosed, werr)
				q.pending, q.n = nil, 0
			}
			if werr != nil || q.closing {
				q.signal() // Run returns, or drains and returns
			}
			q.mu.Unlock()
			return werr
		}
		batch, n := q.takeLocked()
		q.mu.Unlock()
		_, werr = q.w.Write(batch)
		q.writes.Add(1)
		if werr == nil {
			q.frames.Add(uint64(n))
		}
		q.mu.Lock()
		q.spare = batch[:0]
		q.mu.Unlock()
	}
}

// stop makes the queue refuse new frames and wakes everyone who waits.
func (q *FrameQueue) stop(cause error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err == nil || q.err == ErrQueueClosed {
		if cause == nil {
			cause = ErrQueueClosed
		} else {
			cause = fmt.Errorf("%w: %w", ErrQueueClosed, cause)
		}
		q.err = cause
	}
	q.pending, q.n = nil, 0
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
}

// Close stops the queue: Enqueue fails with ErrQueueClosed from now on,
// and Run writes what was queued before Close and returns nil. Close does
// not wait for Run (the caller owns that goroutine) and does not close the
// underlying writer. It is safe to call more than once.
func (q *FrameQueue) Close() error {
	q.mu.Lock()
	if q.err == nil {
		q.err = ErrQueueClosed
	}
	q.closing = true
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
	q.mu.Unlock()
	q.signal()
	return nil
}

// Len returns the number of frames waiting to be written.
func (q *FrameQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// Stats returns the frames written and the Write calls made so far.
func (q *FrameQueue) Stats() QueueStats {
	return QueueStats{Frames: q.frames.Load(), Writes: q.writes.Load()}
}
