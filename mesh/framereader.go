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
	"errors"
	"io"

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
