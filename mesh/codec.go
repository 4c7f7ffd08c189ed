package mesh

// The dispatch frame codec: one JSON dispatch per line. libp2p dispatch
// streams, the classic TCP gateway and anything else that carries
// dispatches over a byte stream share it, so it is written against plain
// io.Reader and io.Writer and knows nothing about the transport.
//
// The rules follow what the classic Node.js engine (npm jstp 1.1.5) does
// on the wire; docs/classic-wire.md has the evidence. In short: every
// dispatch it writes is JSON.stringify output plus "\n" (never a raw
// newline inside, never two objects on one line); it reads by splitting
// each received chunk on "\n", skipping empty lines, tolerating "\r\n"
// (JSON.parse ignores the "\r"), and it also takes a final line that has
// no terminator. It does not reassemble a line that spans two reads, which
// is why this reader buffers and the engine's docs page warns about bursts.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// DefaultMaxFrame bounds one frame when NewFrameReader is given no limit:
// the largest dispatch the dispatch package decodes by default (1 MiB).
const DefaultMaxFrame = dispatch.DefaultMaxSize

// maxReadBuffer caps the bufio buffer: lines up to this size are returned
// straight from it; longer ones are gathered in a second buffer up to the
// frame limit. Every open stream holds one, so it is sized for the common
// dispatch (a few hundred bytes) with ample room, not for the largest.
const maxReadBuffer = 16 << 10

// FrameReader reads newline-delimited frames from a byte stream.
//
// Framing rules:
//   - a frame is the bytes of one line, without its "\n" and without one
//     "\r" right before it ("\r\n" is tolerated);
//   - lines that are empty or hold only spaces, tabs and "\r" are skipped;
//   - a line whose frame exceeds the limit is discarded up to its "\n"
//     without being held in memory, and reported as an error wrapping
//     dispatch.ErrTooLarge (413); the next ReadFrame reads the next line, so
//     one oversized dispatch does not cost the connection;
//   - several objects on one line ("{...}{...}") are one frame: the Node
//     engine never writes that and cannot read it either, so it is left to
//     the dispatch decoder to reject (400);
//   - at the end of the stream, io.EOF when the last line was complete;
//     bytes after the last "\n" are io.ErrUnexpectedEOF, unless
//     AcceptUnterminated is set.
//
// A FrameReader is not safe for concurrent use.
type FrameReader struct {
	// AcceptUnterminated makes a final line with no "\n" before the end of
	// the stream a frame (followed by io.EOF) instead of
	// io.ErrUnexpectedEOF. The Node engine's TCP server accepts such a
	// line, and hand-written classic clients (a shell one-liner, a script
	// that calls socket.end(json)) rely on that, so the classic TCP gateway
	// sets it; libp2p streams leave it off, where a missing terminator
	// means a truncated frame.
	AcceptUnterminated bool

	br  *bufio.Reader
	max int
	acc []byte // a line longer than the bufio buffer, at most max+1 bytes
	err error  // sticky: returned by every call once set
}

// NewFrameReader returns a reader of frames of at most maxSize bytes
// (maxSize <= 0 means DefaultMaxFrame). Its read buffer is
// min(maxSize+2, 16 KiB) bytes; longer frames are gathered in a second
// buffer that never grows beyond maxSize+1 bytes (kept for reuse).
func NewFrameReader(r io.Reader, maxSize int) *FrameReader {
	return newFrameReader(r, maxSize, maxReadBuffer)
}

// newFrameReader lets tests shrink the read buffer, so that small inputs
// reach the path that gathers a line longer than the buffer.
func newFrameReader(r io.Reader, maxSize, maxBuffer int) *FrameReader {
	if maxSize <= 0 {
		maxSize = DefaultMaxFrame
	}
	size := maxSize + 2 // the frame, a "\r" and the "\n"
	if size > maxBuffer || size < 0 {
		size = maxBuffer
	}
	return &FrameReader{br: bufio.NewReaderSize(r, size), max: maxSize}
}

// MaxSize returns the frame limit.
func (fr *FrameReader) MaxSize() int { return fr.max }

// ReadFrame returns the next frame.
//
// The returned slice aliases the reader's buffers and is valid only until
// the next call: copy it to keep it. Reading a frame allocates nothing once
// the buffers have reached the size of the largest frame seen.
//
// Errors: an error wrapping dispatch.ErrTooLarge for an oversized line
// (the stream stays usable), io.EOF at a clean end, io.ErrUnexpectedEOF
// for a truncated last line, or the underlying reader's error. All but
// ErrTooLarge are sticky.
func (fr *FrameReader) ReadFrame() ([]byte, error) {
	for {
		line, err := fr.readLine()
		if err != nil {
			return nil, err
		}
		if !isBlank(line) {
			return line, nil
		}
	}
}

// readLine returns the next line with its terminator removed, blank or
// not, or the error that replaces it.
func (fr *FrameReader) readLine() ([]byte, error) {
	if fr.err != nil {
		return nil, fr.err
	}
	fr.acc = fr.acc[:0]
	discarded := 0 // bytes of an oversized line dropped so far; 0: not dropping
	for {
		chunk, err := fr.br.ReadSlice('\n')
		switch {
		case err == nil:
			// chunk ends with "\n"; with fr.acc it completes the line.
			raw := len(fr.acc) + len(chunk) - 1
			if discarded > 0 {
				return nil, fr.tooLarge(discarded + len(chunk) - 1)
			}
			if raw > fr.max+1 {
				return nil, fr.tooLarge(raw)
			}
			if len(fr.acc) == 0 {
				return fr.checkSize(trimCR(chunk[:len(chunk)-1]))
			}
			fr.acc = append(fr.acc, chunk[:len(chunk)-1]...)
			return fr.checkSize(trimCR(fr.acc))

		case errors.Is(err, bufio.ErrBufferFull):
			// The line goes on beyond the buffer. Keep it only while it
			// can still be a legal frame (+1 for a possible "\r").
			if discarded > 0 || len(fr.acc)+len(chunk) > fr.max+1 {
				if discarded == 0 {
					discarded = len(fr.acc)
					fr.acc = fr.acc[:0]
				}
				discarded += len(chunk)
				continue
			}
			fr.acc = append(fr.acc, chunk...)

		default:
			// End of stream or a read error: chunk holds whatever
			// followed the last "\n".
			if err != io.EOF {
				fr.err = err
				return nil, err
			}
			if discarded == 0 && len(fr.acc) == 0 && len(chunk) == 0 {
				fr.err = io.EOF
				return nil, io.EOF
			}
			if !fr.AcceptUnterminated {
				fr.err = io.ErrUnexpectedEOF
				return nil, io.ErrUnexpectedEOF
			}
			fr.err = io.EOF // after this last line
			if discarded > 0 {
				return nil, fr.tooLarge(discarded + len(chunk))
			}
			if raw := len(fr.acc) + len(chunk); raw > fr.max+1 {
				return nil, fr.tooLarge(raw)
			}
			if len(fr.acc) == 0 {
				return fr.checkSize(trimCR(chunk))
			}
			fr.acc = append(fr.acc, chunk...)
			return fr.checkSize(trimCR(fr.acc))
		}
	}
}

// checkSize applies the limit to a complete frame. Only a frame of exactly
// max+1 bytes whose last byte is not "\r" can fail here; everything longer
// was stopped before it was buffered.
func (fr *FrameReader) checkSize(frame []byte) ([]byte, error) {
	if len(frame) > fr.max {
		return nil, fr.tooLarge(len(frame))
	}
	return frame, nil
}

func (fr *FrameReader) tooLarge(n int) error {
	fr.acc = fr.acc[:0]
	return dispatch.Errorf(dispatch.ErrTooLarge, "frame of %d bytes exceeds the limit of %d", n, fr.max)
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

// isBlank reports whether a line holds nothing but JSON whitespace other
// than "\n" (which never reaches here).
func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// ReadDispatch reads one frame and decodes it with dec. It returns the
// frame as well, which aliases fr's buffer like ReadFrame's result (the
// Dispatch shares no memory with it).
//
// A frame that does not decode is not a stream error: the Dispatch (nil
// when the frame is not a JSON object) and the decode error come back with
// the frame, and the next call reads the next frame. The Node engine does
// write lines that are not dispatches (the text "[object Object]", see
// docs/classic-wire.md), so a session should answer or log such a frame and
// carry on. Stream errors (io.EOF and the rest) come back with a nil frame.
func ReadDispatch(fr *FrameReader, dec dispatch.Decoder) (*dispatch.Dispatch, []byte, error) {
	frame, err := fr.ReadFrame()
	if err != nil {
		return nil, nil, err
	}
	d, err := dec.Decode(frame)
	return d, frame, err
}

// TrimMessage returns the frame carried by one WebSocket message: the
// message without trailing "\n", "\r", spaces and tabs. The Node engine
// sends one dispatch per text message, but its client pool writes the
// second and later dispatches on a reused connection with a "\n" appended
// (clientPool/websocket.js: write(dispatch + "\n")). An empty result means
// a blank message, which carries no dispatch.
func TrimMessage(msg []byte) []byte {
	return bytes.TrimRight(msg, " \t\r\n")
}

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

// Enqueue encodes d and queues it, waiting while the queue is full. It
// returns ctx's error if ctx ends first, and ErrQueueClosed (or the write
// error that ended Run) once the queue no longer writes. d is encoded
// before Enqueue returns, so the caller may change it afterwards.
func (q *FrameQueue) Enqueue(ctx context.Context, d *dispatch.Dispatch) error {
	return q.enqueueDispatch(ctx, d, true)
}

// TryEnqueue is Enqueue without waiting: when the queue is full it returns
// an error wrapping dispatch.ErrUnavailable.
func (q *FrameQueue) TryEnqueue(d *dispatch.Dispatch) error {
	return q.enqueueDispatch(context.Background(), d, false)
}

// EnqueueFrame queues an encoded frame (without its terminator), for
// relaying a frame without decoding it. The frame is copied. A frame that
// contains "\n" is refused with an error wrapping dispatch.ErrBadDispatch.
func (q *FrameQueue) EnqueueFrame(ctx context.Context, frame []byte) error {
	return q.enqueueFrame(ctx, frame, true)
}

// TryEnqueueFrame is EnqueueFrame without waiting.
func (q *FrameQueue) TryEnqueueFrame(frame []byte) error {
	return q.enqueueFrame(context.Background(), frame, false)
}

func (q *FrameQueue) enqueueDispatch(ctx context.Context, d *dispatch.Dispatch, wait bool) error {
	bp := scratch.Get().(*[]byte)
	b := append(d.AppendJSON((*bp)[:0]), '\n')
	err := q.push(ctx, b, wait)
	putScratch(bp, b)
	return err
}

func (q *FrameQueue) enqueueFrame(ctx context.Context, frame []byte, wait bool) error {
	if bytes.IndexByte(frame, '\n') >= 0 {
		return errNewline
	}
	bp := scratch.Get().(*[]byte)
	b := append(append((*bp)[:0], frame...), '\n')
	err := q.push(ctx, b, wait)
	putScratch(bp, b)
	return err
}

// push copies one terminated frame into the pending buffer.
func (q *FrameQueue) push(ctx context.Context, frame []byte, wait bool) error {
	for {
		q.mu.Lock()
		if q.err != nil {
			err := q.err
			q.mu.Unlock()
			return err
		}
		if q.n == 0 || (q.n < q.maxLen && len(q.pending)+len(frame) <= q.maxBytes) {
			q.pending = append(q.pending, frame...)
			q.n++
			q.mu.Unlock()
			q.signal()
			return nil
		}
		if !wait {
			n, size := q.n, len(q.pending)
			q.mu.Unlock()
			return dispatch.Errorf(dispatch.ErrUnavailable, "send queue full (%d frames, %d bytes waiting)", n, size)
		}
		if q.room == nil {
			q.room = make(chan struct{})
		}
		room := q.room
		q.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return fmt.Errorf("mesh: enqueue frame: %w", ctx.Err())
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
		batch, n := q.pending, q.n
		q.pending, q.n, q.spare = q.spare[:0], 0, nil
		if q.room != nil {
			close(q.room)
			q.room = nil
		}
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
		q.mu.Unlock()
		if closing {
			return nil
		}
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
