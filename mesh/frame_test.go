package mesh

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// Lines captured from the Node.js engine (npm jstp 1.1.5) on the classic
// wire; docs/classic-wire.md shows where each comes from.
const (
	nodePost    = `{"resource":["User"],"body":{"message":"with callback"},"method":"POST","protocol":["JSTP","0.4"],"timestamp":1795414300440,"token":["8e9fd368-2cb1-4b28-a457-337ab8113602"],"referer":[]}`
	nodeBind    = `{"endpoint":{"method":"GET","resource":["User","*"]},"method":"BIND","protocol":["JSTP","0.4"],"timestamp":1795414300442,"token":["982518e6-0ad9-47c5-aaae-c8cf7c739b6d"],"referer":[],"body":{}}`
	nodePatch   = `{"method":"patch","resource":["x"],"token":["mytx"],"referer":["me"],"extra":1,"protocol":["JSTP","0.4"],"timestamp":1795414300442,"body":{}}`
	nodeRelease = `{"method":"RELEASE","endpoint":{"method":"ANSWER","resource":["*","tx1","*"]},"protocol":["JSTP","0.4"],"timestamp":1795414348052,"token":[],"referer":[],"body":{}}`
	nodeAnswer  = `{"method":"ANSWER","resource":[200,"tx1","5ba2d22c-89ac-40ee-99eb-a0ca47ce0cc6"],"body":{"hello":"world"},"protocol":["JSTP","0.4"],"timestamp":1795414348052,"token":[],"referer":[]}`
	nodeTimeout = `{"method":"ANSWER","resource":[504,"t9","1b0690fe-5fbb-4aba-b833-84fea94d90a4"],"body":{"message":"Timeout"},"protocol":["JSTP","0.4"],"timestamp":1795414396187,"token":[],"referer":[]}`
	node406     = `{"method":"ANSWER","resource":[406,"tx"],"body":{"message":"Not Acceptable","source":{"protocol":["JSTP","0.4"],"method":"ANSWER","resource":[404,"tx"],"timestamp":1,"token":["tx"],"referer":[],"body":{}}},"protocol":["JSTP","0.4"],"timestamp":1795414620358,"token":[],"referer":[]}`
	// nodeGarbage is what the engine writes when it pushes a dispatch that
	// carries a transaction id to a remote subscriber.
	nodeGarbage = `[object Object]`
)

// result is one ReadFrame outcome, comparable across readers.
type result struct {
	frame string
	err   error // nil, io.EOF, io.ErrUnexpectedEOF, dispatch.ErrTooLarge, or other
}

func (r result) String() string {
	if r.err != nil {
		return "error(" + r.err.Error() + ")"
	}
	return fmt.Sprintf("%q", r.frame)
}

// readAll drains fr into results, stopping after the first sticky error.
// ErrTooLarge results are normalised to the sentinel.
func readAll(t testing.TB, fr *FrameReader) []result {
	t.Helper()
	var out []result
	for i := 0; i < 1_000_000; i++ {
		f, err := fr.ReadFrame()
		switch {
		case err == nil:
			if len(f) > fr.MaxSize() {
				t.Fatalf("frame of %d bytes exceeds the limit of %d", len(f), fr.MaxSize())
			}
			if bytes.IndexByte(f, '\n') >= 0 {
				t.Fatalf("frame %q contains a newline", f)
			}
			out = append(out, result{frame: string(f)})
		case errors.Is(err, dispatch.ErrTooLarge):
			if dispatch.Code(err) != 413 {
				t.Fatalf("oversized frame error %v maps to %d, want 413", err, dispatch.Code(err))
			}
			out = append(out, result{err: dispatch.ErrTooLarge})
		default:
			return append(out, result{err: err})
		}
	}
	t.Fatal("reader never ended")
	return nil
}

func frames(fs ...string) []result {
	out := make([]result, len(fs))
	for i, f := range fs {
		out[i] = result{frame: f}
	}
	return out
}

var (
	tooLarge = result{err: dispatch.ErrTooLarge}
	eof      = result{err: io.EOF}
	truncEOF = result{err: io.ErrUnexpectedEOF}
)

func seq(parts ...any) []result {
	var out []result
	for _, p := range parts {
		switch x := p.(type) {
		case string:
			out = append(out, result{frame: x})
		case result:
			out = append(out, x)
		case []result:
			out = append(out, x...)
		}
	}
	return out
}

func sameResults(a, b []result) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].frame != b[i].frame || !errors.Is(a[i].err, b[i].err) {
			return false
		}
	}
	return true
}

func TestFrameReaderRules(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		name    string
		in      string
		max     int
		lenient bool
		want    []result
	}{
		{"empty stream", "", 64, false, seq(eof)},
		{"one line", "{}\n", 64, false, seq("{}", eof)},
		{"crlf", "{\"a\":1}\r\n{}\r\n", 64, false, seq(`{"a":1}`, "{}", eof)},
		{"only one cr is the terminator's", "{}\r\r\n", 64, false, seq("{}\r", eof)},
		{"blank lines skipped", "\n\n \n\t\r\n{}\n \r\n", 64, false, seq("{}", eof)},
		{"inner spaces kept", " {} \n", 64, false, seq(" {} ", eof)},
		{"several objects on a line are one frame", "{}{}\n", 64, false, seq("{}{}", eof)},
		{"exactly at the limit", long + "\n", 100, false, seq(long, eof)},
		{"at the limit with crlf", long + "\r\n", 100, false, seq(long, eof)},
		{"one over the limit", long + "x\n{}\n", 100, false, seq(tooLarge, "{}", eof)},
		{"one over the limit ending in cr", long + "x\r\n{}\n", 100, false, seq(tooLarge, "{}", eof)},
		{"far over the limit, stream stays usable", "a\n" + strings.Repeat("y", 10_000) + "\nb\n", 100, false, seq("a", tooLarge, "b", eof)},
		{"two oversized in a row", long + "1\n" + long + "2\n" + "c\n", 100, false, seq(tooLarge, tooLarge, "c", eof)},
		{"oversized blank line is still oversized", strings.Repeat(" ", 200) + "\n{}\n", 100, false, seq(tooLarge, "{}", eof)},
		{"unterminated tail", "{}\n{\"a\"", 64, false, seq("{}", truncEOF)},
		{"unterminated blank tail", "{}\n  ", 64, false, seq("{}", truncEOF)},
		{"unterminated oversized tail", "{}\n" + long + "z", 100, false, seq("{}", truncEOF)},
		{"lenient: unterminated tail is a frame", "{}\n{\"a\":2}", 64, true, seq("{}", `{"a":2}`, eof)},
		{"lenient: unterminated tail with cr", "{\"a\":2}\r", 64, true, seq(`{"a":2}`, eof)},
		{"lenient: unterminated blank tail", "{}\n  ", 64, true, seq("{}", eof)},
		{"lenient: unterminated oversized tail", "{}\n" + long + "z", 100, true, seq("{}", tooLarge, eof)},
		{"lenient: terminated stream unchanged", "{}\n", 64, true, seq("{}", eof)},
		{
			"a chunk the Node engine wrote",
			nodeRelease + "\n" + nodeAnswer + "\n" + nodeGarbage + "\n",
			dispatch.DefaultMaxSize, false,
			seq(nodeRelease, nodeAnswer, nodeGarbage, eof),
		},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"one byte", iotest.OneByteReader},
		{"half", iotest.HalfReader},
		{"data+EOF", iotest.DataErrReader},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			for _, buf := range []int{16, 37, maxReadBuffer} {
				t.Run(fmt.Sprintf("%s/%s/buf%d", tt.name, rd.name, buf), func(t *testing.T) {
					fr := newFrameReader(rd.wrap(strings.NewReader(tt.in)), tt.max, buf)
					fr.AcceptUnterminated = tt.lenient
					got := readAll(t, fr)
					if !sameResults(got, tt.want) {
						t.Fatalf("got %v, want %v", got, tt.want)
					}
					// Errors other than ErrTooLarge are sticky.
					if _, err := fr.ReadFrame(); !errors.Is(err, tt.want[len(tt.want)-1].err) {
						t.Fatalf("after the end: %v, want %v again", err, tt.want[len(tt.want)-1].err)
					}
				})
			}
		}
	}
}

func TestFrameReaderDefaultLimit(t *testing.T) {
	fr := NewFrameReader(strings.NewReader(""), 0)
	if fr.MaxSize() != DefaultMaxFrame {
		t.Fatalf("MaxSize() = %d, want %d", fr.MaxSize(), DefaultMaxFrame)
	}
}

// An oversized line must not be held in memory: the gathering buffer never
// grows past the limit, however long the line.
func TestFrameReaderBoundedMemory(t *testing.T) {
	const limit = 1000
	huge := bytes.Repeat([]byte("z"), 5<<20)
	in := io.MultiReader(bytes.NewReader(huge), strings.NewReader("\n{}\n"))
	fr := newFrameReader(in, limit, 64)
	got := readAll(t, fr)
	if want := seq(tooLarge, "{}", eof); !sameResults(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if c := cap(fr.acc); c > 2*(limit+1) { // append may round up
		t.Fatalf("gathering buffer grew to %d bytes for a limit of %d", c, limit)
	}
}

// A frame longer than the read buffer is gathered and returned whole.
func TestFrameReaderLongFrame(t *testing.T) {
	body := strings.Repeat("b", 200_000)
	frame := `{"method":"POST","body":"` + body + `"}`
	fr := NewFrameReader(iotest.HalfReader(strings.NewReader(frame+"\r\n"+nodeAnswer+"\n")), 0)
	got := readAll(t, fr)
	if want := seq(frame, nodeAnswer, eof); !sameResults(got, want) {
		t.Fatalf("got %d results, want frame of %d bytes then the answer", len(got), len(frame))
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestFrameReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	fr := NewFrameReader(io.MultiReader(strings.NewReader("{}\n{\"par"), errReader{boom}), 64)
	if f, err := fr.ReadFrame(); err != nil || string(f) != "{}" {
		t.Fatalf("first frame: %q, %v", f, err)
	}
	for range 2 {
		if _, err := fr.ReadFrame(); !errors.Is(err, boom) {
			t.Fatalf("got %v, want the reader's error (sticky)", err)
		}
	}
}

func TestReadDispatch(t *testing.T) {
	in := strings.Join([]string{nodePost, nodeBind, nodePatch, nodeRelease, nodeAnswer, nodeTimeout, node406, nodeGarbage, `{"method":"GET"}`}, "\n") + "\n"
	fr := NewFrameReader(strings.NewReader(in), 0)
	dec := dispatch.Decoder{Quirks: true}

	want := []struct {
		method string
		code   int // 200: decodes cleanly
	}{
		{"POST", 200}, {"BIND", 200}, {"PATCH", 200}, {"RELEASE", 200},
		{"ANSWER", 200}, {"ANSWER", 200}, {"ANSWER", 200},
		{"", 400},    // [object Object]: not JSON, and the stream goes on
		{"GET", 400}, // missing resource
	}
	for i, w := range want {
		d, frame, err := ReadDispatch(fr, dec)
		if frame == nil {
			t.Fatalf("dispatch %d: no frame (err %v)", i, err)
		}
		if got := dispatch.Code(err); got != w.code {
			t.Fatalf("dispatch %d (%s): code %d (%v), want %d", i, frame, got, err, w.code)
		}
		if w.method != "" && (d == nil || d.Method != w.method) {
			t.Fatalf("dispatch %d: got %v, want method %s", i, d, w.method)
		}
	}
	if _, _, err := ReadDispatch(fr, dec); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestTrimMessage(t *testing.T) {
	for in, want := range map[string]string{
		nodeAnswer:          nodeAnswer,
		nodePost + "\n":     nodePost,
		nodePost + "\r\n  ": nodePost,
		"\n":                "",
		"":                  "",
	} {
		if got := string(TrimMessage([]byte(in))); got != want {
			t.Errorf("TrimMessage(%q) = %q, want %q", in, got, want)
		}
	}
}

// countWriter counts Write calls and keeps what was written.
type countWriter struct {
	mu     sync.Mutex
	writes int
	buf    bytes.Buffer
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	return w.buf.Write(p)
}

func testDispatch(i int) *dispatch.Dispatch {
	d := dispatch.New("POST", "events", fmt.Sprintf("n%d", i))
	d.Token = []any{}
	d.Body = []byte(`{"multi":"line\nin a string","n":` + fmt.Sprint(i) + `}`)
	return d
}

func TestFrameWriterRoundTrip(t *testing.T) {
	var w countWriter
	fw := NewFrameWriter(&w)
	for i := range 10 {
		if err := fw.WriteDispatch(testDispatch(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := fw.WriteFrame([]byte(nodeAnswer)); err != nil {
		t.Fatal(err)
	}
	if w.writes != 0 || fw.Buffered() == 0 {
		t.Fatalf("wrote %d times before Flush (buffered %d)", w.writes, fw.Buffered())
	}
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.writes != 1 || fw.Buffered() != 0 {
		t.Fatalf("Flush made %d writes, left %d bytes", w.writes, fw.Buffered())
	}
	if err := fw.Flush(); err != nil || w.writes != 1 {
		t.Fatalf("empty Flush: %v, %d writes", err, w.writes)
	}

	fr := NewFrameReader(&w.buf, 0)
	for i := range 10 {
		d, _, err := ReadDispatch(fr, dispatch.Decoder{})
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got := d.ResourceText()[1]; got != fmt.Sprintf("n%d", i) {
			t.Fatalf("frame %d is %s", i, got)
		}
	}
	if f, err := fr.ReadFrame(); err != nil || string(f) != nodeAnswer {
		t.Fatalf("relayed frame: %q, %v", f, err)
	}
}

func TestFrameWriterRefusesNewline(t *testing.T) {
	fw := NewFrameWriter(io.Discard)
	err := fw.WriteFrame([]byte("{}\n{}"))
	if dispatch.Code(err) != 400 {
		t.Fatalf("got %v, want a 400", err)
	}
}

// The writer flushes on its own once 64 KiB is buffered, so memory stays
// bounded without Flush.
func TestFrameWriterBounded(t *testing.T) {
	var w countWriter
	fw := NewFrameWriter(&w)
	for i := range 2000 {
		if err := fw.WriteDispatch(testDispatch(i)); err != nil {
			t.Fatal(err)
		}
		if fw.Buffered() >= writeFlushSize {
			t.Fatalf("buffered %d bytes", fw.Buffered())
		}
	}
	if w.writes == 0 {
		t.Fatal("never wrote")
	}
}

func TestFrameWriterStickyError(t *testing.T) {
	r, w := io.Pipe()
	r.Close()
	fw := NewFrameWriter(w)
	if err := fw.WriteDispatch(testDispatch(1)); err != nil {
		t.Fatal(err) // buffered only
	}
	if err := fw.Flush(); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Flush: %v", err)
	}
	if err := fw.WriteDispatch(testDispatch(2)); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("after a failed Flush: %v", err)
	}
}

// runQueue starts q.Run and returns a function that waits for its result.
func runQueue(ctx context.Context, q *FrameQueue) func() error {
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	return func() error {
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("Run did not return")
		}
	}
}

// concurrentWriters has writers goroutines enqueue perWriter dispatches
// each through q, while the reading side checks every dispatch arrives
// once, intact.
func concurrentWriters(t *testing.T, q *FrameQueue, r io.Reader, writers, perWriter int) {
	t.Helper()
	concurrentWritersWith(t, q, r, writers, perWriter, func(w int, ctx context.Context, d *dispatch.Dispatch) error {
		return q.Enqueue(ctx, d)
	})
}

// concurrentWritersWith has each writer queue its frames with put, and
// checks that every frame arrives once, in each writer's order.
func concurrentWritersWith(t *testing.T, q *FrameQueue, r io.Reader, writers, perWriter int, put func(w int, ctx context.Context, d *dispatch.Dispatch) error) {
	t.Helper()
	ctx := t.Context()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				d := dispatch.New("POST", "events", w, i)
				d.Body = []byte(`{"pad":"` + strings.Repeat("p", (w*perWriter+i)%300) + `"}`)
				if err := put(w, ctx, d); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}

	seen := make(map[[2]string]bool)
	fr := NewFrameReader(r, 0)
	next := make([]int, writers)
	for len(seen) < writers*perWriter {
		d, frame, err := ReadDispatch(fr, dispatch.Decoder{})
		if err != nil {
			t.Fatalf("after %d dispatches: %v (frame %q)", len(seen), err, frame)
		}
		res := d.ResourceText()
		key := [2]string{res[1], res[2]}
		if seen[key] {
			t.Fatalf("dispatch %v arrived twice", key)
		}
		seen[key] = true
		// Each writer's frames keep their order.
		var w, i int
		fmt.Sscan(res[1], &w)
		fmt.Sscan(res[2], &i)
		if i != next[w] {
			t.Fatalf("writer %d: got frame %d, want %d", w, i, next[w])
		}
		next[w]++
	}
	wg.Wait()
}

// SendNow writes on the caller's goroutine when the queue is idle, and
// shares the stream with Enqueue, Push and Run without losing, repeating
// or reordering a frame.
func TestFrameQueueSendNowMixed(t *testing.T) {
	r, w := io.Pipe()
	q := NewFrameQueue(w, 64)
	stop := runQueue(t.Context(), q)
	defer func() {
		q.Close()
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	concurrentWritersWith(t, q, r, 6, 300, func(w int, ctx context.Context, d *dispatch.Dispatch) error {
		switch w % 3 {
		case 0:
			return q.SendNow(ctx, d)
		case 1:
			return q.Push(d)
		}
		return q.Enqueue(ctx, d)
	})
}

func TestFrameQueueConcurrentPipe(t *testing.T) {
	r, w := io.Pipe()
	q := NewFrameQueue(w, 64)
	wait := runQueue(t.Context(), q)

	const writers, perWriter = 16, 400
	concurrentWriters(t, q, r, writers, perWriter)

	q.Close()
	if err := wait(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := q.Stats()
	if st.Frames != writers*perWriter || st.Writes == 0 || st.Writes > st.Frames {
		t.Fatalf("stats %+v", st)
	}
	t.Logf("%d frames in %d writes (%.1f frames per write)", st.Frames, st.Writes, float64(st.Frames)/float64(st.Writes))
}

func TestFrameQueueConcurrentNetPipe(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	q := NewFrameQueue(a, 16, WithQueueBytes(4096))
	wait := runQueue(t.Context(), q)

	concurrentWriters(t, q, b, 8, 300)

	q.Close()
	if err := wait(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// gateWriter blocks every Write until the test lets it through.
type gateWriter struct {
	started chan []byte // receives a copy of each Write's data
	release chan struct{}
}

func newGateWriter() *gateWriter {
	return &gateWriter{started: make(chan []byte, 16), release: make(chan struct{})}
}

func (g *gateWriter) Write(p []byte) (int, error) {
	g.started <- bytes.Clone(p)
	<-g.release
	return len(p), nil
}

// Everything queued while a Write is in progress goes out in the next
// single Write.
func TestFrameQueueCoalesces(t *testing.T) {
	g := newGateWriter()
	q := NewFrameQueue(g, 1000)
	wait := runQueue(t.Context(), q)

	if err := q.TryEnqueue(testDispatch(0)); err != nil {
		t.Fatal(err)
	}
	first := <-g.started // Run is now inside Write
	if n := bytes.Count(first, []byte("\n")); n != 1 {
		t.Fatalf("first write held %d frames", n)
	}
	const queued = 200
	for i := 1; i <= queued; i++ {
		if err := q.TryEnqueue(testDispatch(i)); err != nil {
			t.Fatal(err)
		}
	}
	if q.Len() != queued {
		t.Fatalf("Len() = %d, want %d", q.Len(), queued)
	}
	g.release <- struct{}{}
	second := <-g.started
	if n := bytes.Count(second, []byte("\n")); n != queued {
		t.Fatalf("second write held %d frames, want %d", n, queued)
	}
	g.release <- struct{}{}
	q.Close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Writes != 2 || st.Frames != queued+1 {
		t.Fatalf("stats %+v", st)
	}
}

// frameCounter counts what it is given and returns at once, as a muxed
// stream's Write does (it hands the bytes to the muxer's own writer).
type frameCounter struct {
	mu     sync.Mutex
	frames int
	writes int
	all    chan struct{} // closed once want frames have come
	want   int
}

func (c *frameCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	c.frames += bytes.Count(p, []byte("\n"))
	if c.frames == c.want {
		close(c.all)
	}
	return len(p), nil
}

// Frames queued by goroutines that are all ready to run go out together
// even when a Write takes no time: Run lets them queue before it writes.
// On one processor the order is exact: without that pause the first
// frame's signal runs Run before the other senders, and every frame is a
// Write of its own. (The race detector shuffles the run queue, so only a
// run without it tells the two apart.)
func TestFrameQueueBatchesReadySenders(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const senders = 32
	w := &frameCounter{all: make(chan struct{}), want: senders}
	q := NewFrameQueue(w, 1000)
	wait := runQueue(t.Context(), q)
	var wg sync.WaitGroup
	for i := range senders {
		wg.Go(func() {
			if err := q.Enqueue(t.Context(), testDispatch(i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	select {
	case <-w.all:
	case <-time.After(10 * time.Second):
		t.Fatal("not every frame was written")
	}
	q.Close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.writes > senders/4 {
		t.Fatalf("%d frames took %d writes; want them batched", w.frames, w.writes)
	}
}

// enterWriter reports each Write as it starts.
type enterWriter struct {
	w       io.Writer
	entered chan struct{}
}

func (e *enterWriter) Write(p []byte) (int, error) {
	select {
	case e.entered <- struct{}{}:
	default:
	}
	return e.w.Write(p)
}

// A reader that stops reading must not block TryEnqueue: once the queue is
// full it fails at once with 503, and Enqueue gives up with its context.
func TestFrameQueueSlowReader(t *testing.T) {
	a, b := net.Pipe() // nobody reads b
	defer b.Close()
	const limit = 8
	w := &enterWriter{w: a, entered: make(chan struct{}, 1)}
	q := NewFrameQueue(w, limit)
	wait := runQueue(t.Context(), q)

	if err := q.TryEnqueue(testDispatch(0)); err != nil {
		t.Fatal(err)
	}
	<-w.entered // Run is stuck in Write
	var full error
	for i := 1; i < 10*limit && full == nil; i++ {
		full = q.TryEnqueue(testDispatch(i))
	}
	if !errors.Is(full, dispatch.ErrUnavailable) || dispatch.Code(full) != 503 {
		t.Fatalf("TryEnqueue on a full queue: %v", full)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := q.Enqueue(ctx, testDispatch(-1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Enqueue on a full queue: %v", err)
	}

	// Closing the connection ends the stuck Write, and with it Run.
	a.Close()
	if err := wait(); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Run: %v", err)
	}
	if err := q.TryEnqueue(testDispatch(0)); !errors.Is(err, ErrQueueClosed) || !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("TryEnqueue after Run failed: %v", err)
	}
}

// A blocked Enqueue proceeds as soon as Run takes the pending frames.
func TestFrameQueueEnqueueWaitsForRoom(t *testing.T) {
	g := newGateWriter()
	q := NewFrameQueue(g, 2)
	for i := range 2 {
		if err := q.TryEnqueue(testDispatch(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.TryEnqueue(testDispatch(2)); !errors.Is(err, dispatch.ErrUnavailable) {
		t.Fatalf("third frame: %v", err)
	}
	enq := make(chan error, 1)
	go func() { enq <- q.Enqueue(t.Context(), testDispatch(2)) }()

	wait := runQueue(t.Context(), q)
	<-g.started // the first two are taken: room for the third
	if err := <-enq; err != nil {
		t.Fatalf("blocked Enqueue: %v", err)
	}
	g.release <- struct{}{}
	if third := <-g.started; bytes.Count(third, []byte("\n")) != 1 {
		t.Fatalf("second write: %q", third)
	}
	g.release <- struct{}{}
	q.Close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

// Close lets Run write what was queued before it, then refuses more.
func TestFrameQueueCloseDrains(t *testing.T) {
	var w countWriter
	q := NewFrameQueue(&w, 100)
	for i := range 10 {
		if err := q.Enqueue(t.Context(), testDispatch(i)); err != nil {
			t.Fatal(err)
		}
	}
	q.Close()
	q.Close() // idempotent
	if err := q.TryEnqueue(testDispatch(99)); !errors.Is(err, ErrQueueClosed) {
		t.Fatalf("TryEnqueue after Close: %v", err)
	}
	if err := q.Run(t.Context()); err != nil {
		t.Fatalf("Run after Close: %v", err)
	}
	if n := bytes.Count(w.buf.Bytes(), []byte("\n")); n != 10 || w.writes != 1 {
		t.Fatalf("wrote %d frames in %d writes, want 10 in 1", n, w.writes)
	}
	if err := q.Run(t.Context()); err == nil {
		t.Fatal("second Run did not fail")
	}
}

// Run ends with its context; the queue then refuses frames and wakes
// anyone waiting for room.
func TestFrameQueueRunContext(t *testing.T) {
	g := newGateWriter()
	q := NewFrameQueue(g, 1)
	ctx, cancel := context.WithCancel(t.Context())
	wait := runQueue(ctx, q)
	if err := q.TryEnqueue(testDispatch(0)); err != nil {
		t.Fatal(err)
	}
	<-g.started
	if err := q.TryEnqueue(testDispatch(1)); err != nil {
		t.Fatal(err)
	}
	enq := make(chan error, 1)
	go func() { enq <- q.Enqueue(t.Context(), testDispatch(2)) }()
	cancel()
	g.release <- struct{}{}
	if err := wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	if err := <-enq; !errors.Is(err, ErrQueueClosed) {
		t.Fatalf("waiting Enqueue: %v", err)
	}
}

func TestFrameQueueRelayFrames(t *testing.T) {
	var w countWriter
	q := NewFrameQueue(&w, 10)
	if err := q.EnqueueFrame(t.Context(), []byte(nodeAnswer)); err != nil {
		t.Fatal(err)
	}
	if err := q.TryEnqueueFrame([]byte(nodeRelease)); err != nil {
		t.Fatal(err)
	}
	if err := q.TryEnqueueFrame([]byte("{}\n{}")); dispatch.Code(err) != 400 {
		t.Fatalf("frame with a newline: %v", err)
	}
	q.Close()
	if err := q.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, want := w.buf.String(), nodeAnswer+"\n"+nodeRelease+"\n"; got != want {
		t.Fatalf("wrote %q, want %q", got, want)
	}
}

// The byte bound holds frames back even when the count allows them, but
// never refuses a frame into an empty queue.
func TestFrameQueueByteBound(t *testing.T) {
	q := NewFrameQueue(io.Discard, 100, WithQueueBytes(100))
	big := dispatch.New("POST", "big")
	big.Body = []byte(`"` + strings.Repeat("b", 500) + `"`)
	if err := q.TryEnqueue(big); err != nil {
		t.Fatalf("large frame into an empty queue: %v", err)
	}
	if err := q.TryEnqueue(testDispatch(1)); !errors.Is(err, dispatch.ErrUnavailable) {
		t.Fatalf("frame past the byte bound: %v", err)
	}
}

// repeatReader serves the same bytes forever.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

func BenchmarkFrameReader(b *testing.B) {
	for _, tc := range []struct {
		name  string
		frame string
	}{
		{"answer", nodeAnswer},
		{"200KiB", `{"method":"POST","body":"` + strings.Repeat("b", 200<<10) + `"}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var block []byte
			for len(block) < 256<<10 {
				block = append(append(block, tc.frame...), '\n')
			}
			fr := NewFrameReader(&repeatReader{data: block}, 0)
			b.SetBytes(int64(len(tc.frame) + 1))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := fr.ReadFrame(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkFrameWriter(b *testing.B) {
	d, err := dispatch.Decoder{Quirks: true}.Decode([]byte(nodeAnswer))
	if err != nil {
		b.Fatal(err)
	}
	fw := NewFrameWriter(io.Discard)
	b.ReportAllocs()
	for b.Loop() {
		if err := fw.WriteDispatch(d); err != nil {
			b.Fatal(err)
		}
	}
	if err := fw.Flush(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkFrameQueue has parallel goroutines enqueue into one queue
// drained by Run over a net.Pipe, and reports how many frames each Write
// carried.
func BenchmarkFrameQueue(b *testing.B) {
	d, err := dispatch.Decoder{Quirks: true}.Decode([]byte(nodeAnswer))
	if err != nil {
		b.Fatal(err)
	}
	a, c := net.Pipe()
	defer c.Close()
	go io.Copy(io.Discard, c)
	q := NewFrameQueue(a, 1024)
	wait := runQueue(b.Context(), q)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := q.Enqueue(b.Context(), d); err != nil {
				b.Error(err)
				return
			}
		}
	})
	q.Close()
	if err := wait(); err != nil {
		b.Fatal(err)
	}
	st := q.Stats()
	b.ReportMetric(float64(st.Frames)/float64(max(st.Writes, 1)), "frames/write")
	a.Close()
}

// The tests below run the codec against the Node.js engine itself, through
// the scripts in testdata/interop (docs/classic-wire.md §8). They are
// skipped when node or the installed package is missing, and in -short mode.

// nodeHarness returns the interop directory, or skips the test.
func nodeHarness(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts Node.js processes")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not installed")
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "interop"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "jstp", "lib", "jstp.js")); err != nil {
		t.Skipf("npm jstp not installed (run npm ci in %s)", dir)
	}
	return dir
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startNode runs a harness script and returns its stdout lines. The
// process is killed when the test ends, which also ends the line reader.
func startNode(t *testing.T, dir string, args ...string) (<-chan string, *exec.Cmd) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "node", args...)
	cmd.Dir = dir
	// The script exits when its stdin closes, which happens when this
	// process ends even if it dies without running the cleanup below.
	cmd.Env = append(os.Environ(), "JSTP_INTEROP_WATCH_STDIN=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		stdin.Close()
		cmd.Wait()
		if t.Failed() {
			t.Logf("node %s stderr:\n%s", strings.Join(args, " "), stderr.String())
		}
	})
	return lines, cmd
}

// nextLine returns the script's next stdout line, failing the test if none
// comes within a generous deadline.
func nextLine(t *testing.T, lines <-chan string) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("script ended")
		}
		return l
	case <-time.After(15 * time.Second):
		t.Fatal("script printed nothing for 15 s")
	}
	return ""
}

// expectLine reads stdout lines until one equals want.
func expectLine(t *testing.T, lines <-chan string, want string) {
	t.Helper()
	for nextLine(t, lines) != want {
	}
}

// closeGracefully half-closes and drains conn before closing it: the Node
// engine dies on a TCP reset (docs/classic-wire.md §2).
func closeGracefully(t *testing.T, conn net.Conn) {
	t.Helper()
	conn.(*net.TCPConn).CloseWrite()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, conn)
	conn.Close()
}

func TestCodecAgainstNodeServer(t *testing.T) {
	dir := nodeHarness(t)
	port := freePort(t)
	stdout, _ := startNode(t, dir, "server.js", fmt.Sprint(port))
	expectLine(t, stdout, "ready")

	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer closeGracefully(t, conn)
	conn.SetDeadline(time.Now().Add(10 * time.Second))

	// A request with a transaction id, then 50 events through a FrameQueue
	// (a few KiB in all: well under the engine's 64 KiB read).
	fw := NewFrameWriter(conn)
	get := dispatch.New("GET", "hello", "go")
	get.Token = []any{"go-tx"}
	if err := fw.WriteDispatch(get); err != nil {
		t.Fatal(err)
	}
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	fr := NewFrameReader(conn, 0)
	dec := dispatch.Decoder{Quirks: true}
	var answer *dispatch.Dispatch
	for answer == nil {
		d, frame, err := ReadDispatch(fr, dec)
		if err != nil {
			t.Fatalf("reading the engine's reply: %v (frame %q)", err, frame)
		}
		switch d.Method {
		case "RELEASE": // the completion notice, §4
			if d.Endpoint.Method != "ANSWER" || d.Endpoint.Resource[1] != "go-tx" {
				t.Fatalf("unexpected %s", frame)
			}
		case "ANSWER":
			answer = d
		default:
			t.Fatalf("unexpected %s", frame)
		}
	}
	code, txid, trig, ok := answer.AnswerInfo()
	if !ok || code != 200 || txid != "go-tx" || trig == "" || string(answer.Body) != `{"hello":"go"}` {
		t.Fatalf("answer %s", answer)
	}

	q := NewFrameQueue(conn, 64)
	wait := runQueue(t.Context(), q)
	const events = 50
	for i := range events {
		d := dispatch.New("POST", "events", fmt.Sprint(i))
		d.Token = []any{} // the engine requires the header
		if err := q.Enqueue(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	q.Close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	for i := range events {
		line := nextLine(t, stdout)
		d, err := dec.Decode([]byte(line))
		if err != nil || d.ResourceText()[1] != fmt.Sprint(i) {
			t.Fatalf("event %d: %s (%v)", i, line, err)
		}
	}
}

// client.js sends a request over the engine's own client pool; a Go
// stand-in for a classic engine answers it on the same connection.
func TestCodecAgainstNodeClient(t *testing.T) {
	dir := nodeHarness(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	stdout, cmd := startNode(t, dir, "client.js", fmt.Sprint(port), "GET", `["hello","go"]`, `{"q":1}`, "8000")

	conn, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer closeGracefully(t, conn)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fr := NewFrameReader(conn, 0)
	req, frame, err := ReadDispatch(fr, dispatch.Decoder{Quirks: true})
	if err != nil {
		t.Fatalf("request %q: %v", frame, err)
	}
	if req.Method != "GET" || req.Host != nil || req.TransactionID() == "" || string(req.Body) != `{"q":1}` {
		t.Fatalf("request %s", frame)
	}

	ans := dispatch.NewAnswer(200, req.TransactionID(), "go-trig", []byte(`{"hello":"go"}`))
	ans.Token = []any{} // the engine echoes an answer that carries a token (§5)
	fw := NewFrameWriter(conn)
	if err := fw.WriteDispatch(ans); err != nil {
		t.Fatal(err)
	}
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	line := nextLine(t, stdout)
	got, err := dispatch.Decoder{Quirks: true}.Decode([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if code, txid, trig, _ := got.AnswerInfo(); code != 200 || txid != req.TransactionID() || trig != "go-trig" {
		t.Fatalf("client printed %s", line)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("client.js: %v", err)
	}
}

// binder.js binds on a Go stand-in, which pushes a dispatch with a
// transaction id; the engine's answer comes back on the same connection
// with the pusher's triggering id (docs/classic-wire.md §6).
func TestCodecAgainstNodeBinder(t *testing.T) {
	dir := nodeHarness(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	stdout, _ := startNode(t, dir, "binder.js", fmt.Sprint(port), `{"method":"POST","resource":["events","*"]}`, "200")

	conn, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer closeGracefully(t, conn)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fr := NewFrameReader(conn, 0)
	dec := dispatch.Decoder{Quirks: true}
	bind, frame, err := ReadDispatch(fr, dec)
	if err != nil || bind.Method != "BIND" || bind.Endpoint.String() != "POST /events/*" || bind.TransactionID() == "" {
		t.Fatalf("BIND %q: %v", frame, err)
	}
	expectLine(t, stdout, "bound")

	push := dispatch.New("POST", "events", "pushed")
	push.Token = []any{"gw-tx", "gw-trig"}
	push.Body = []byte(`{"n":3}`)
	fw := NewFrameWriter(conn)
	if err := fw.WriteDispatch(push); err != nil {
		t.Fatal(err)
	}
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	ans, frame, err := ReadDispatch(fr, dec)
	if err != nil {
		t.Fatalf("answer %q: %v", frame, err)
	}
	if code, txid, trig, _ := ans.AnswerInfo(); code != 200 || txid != "gw-tx" || trig != "gw-trig" {
		t.Fatalf("answer %s", frame)
	}
	line := nextLine(t, stdout)
	if got, err := dec.Decode([]byte(line)); err != nil || got.ResourceText()[1] != "pushed" {
		t.Fatalf("binder printed %s (%v)", line, err)
	}
}
