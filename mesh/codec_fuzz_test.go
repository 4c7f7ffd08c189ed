package mesh

import (
	"bytes"
	"io"
	"testing"
)

// chunkReader returns data in pieces whose sizes come from the fuzz input,
// the way a socket delivers a stream in arbitrary reads (after
// nats-server's parser fuzzing). A size byte with its top bit set also
// returns io.EOF together with the last bytes, which io.Reader allows.
type chunkReader struct {
	data  []byte
	sizes []byte
	i     int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	eofWithData := false
	if len(r.sizes) > 0 {
		s := r.sizes[r.i%len(r.sizes)]
		r.i++
		n = int(s&0x7f) + 1
		eofWithData = s&0x80 != 0
	}
	n = min(n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	if len(r.data) == 0 && eofWithData {
		return n, io.EOF
	}
	return n, nil
}

// modelFrames is the framing rule written the obvious way, over the whole
// input at once: the results ReadFrame must produce.
func modelFrames(data []byte, maxSize int, lenient bool) []result {
	lines := bytes.Split(data, []byte("\n"))
	tail := lines[len(lines)-1] // after the last "\n"; empty if data ends with one
	lines = lines[:len(lines)-1]
	var out []result
	line := func(l []byte) {
		l = trimCR(l)
		switch {
		case len(l) > maxSize:
			out = append(out, tooLarge)
		case isBlank(l):
		default:
			out = append(out, result{frame: string(l)})
		}
	}
	for _, l := range lines {
		line(l)
	}
	switch {
	case len(tail) == 0:
	case !lenient:
		return append(out, truncEOF)
	default:
		line(tail)
	}
	return append(out, eof)
}

func FuzzFrameReader(f *testing.F) {
	seeds := []string{
		"",
		"{}\n",
		nodeRelease + "\n" + nodeAnswer + "\n",
		nodePost + "\n" + nodeBind + "\n" + nodePatch + "\n",
		nodeGarbage + "\n" + nodeTimeout + "\n",
		"{\"a\":1}\r\n\r\n \n{}\r\r\n",
		"{}{}\n{\"unterminated\":",
		"\n\n\n",
		"x\r",
	}
	for i, s := range seeds {
		f.Add([]byte(s), []byte{byte(i), 3, 0x80 | 7}, uint16(40+i*30), uint8(i), i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, data, sizes []byte, maxSize uint16, bufSize uint8, lenient bool) {
		limit := int(maxSize%1024) + 1
		// Small read buffers make short inputs take the path that gathers
		// a line longer than the buffer.
		fr := newFrameReader(&chunkReader{data: data, sizes: sizes}, limit, 16+int(bufSize%64))
		fr.AcceptUnterminated = lenient

		got := readAll(t, fr) // also checks size and newline per frame
		want := modelFrames(data, limit, lenient)
		if !sameResults(got, want) {
			t.Fatalf("limit %d, lenient %v, input %q:\n got %v\nwant %v", limit, lenient, data, got, want)
		}
		if cap(fr.acc) > 2*(limit+1)+64 {
			t.Fatalf("gathering buffer grew to %d for a limit of %d", cap(fr.acc), limit)
		}

		// The frames, joined with "\n", are the input's lines minus the
		// blank and oversized ones.
		var joined, lines [][]byte
		for _, r := range got {
			if r.err == nil {
				joined = append(joined, []byte(r.frame))
			}
		}
		all := bytes.Split(data, []byte("\n"))
		if !lenient || len(all[len(all)-1]) == 0 {
			all = all[:len(all)-1]
		}
		for _, l := range all {
			if l = trimCR(l); len(l) <= limit && !isBlank(l) {
				lines = append(lines, l)
			}
		}
		if !bytes.Equal(bytes.Join(joined, []byte("\n")), bytes.Join(lines, []byte("\n"))) {
			t.Fatalf("frames %q differ from the input's lines %q", joined, lines)
		}
	})
}
