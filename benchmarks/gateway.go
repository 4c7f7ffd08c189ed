package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
)

// tokenPlaceholder stands for the token in the encoded dispatch; it is as
// long as the uuid an engine generates, so the gateway's line is the size
// of the mesh's.
const tokenPlaceholder = "TOKEN-PLACEHOLDER-0123456789ABCDEFGH"

// roundTimeout bounds reading the answers of one round from the gateway,
// so a missing answer fails the round instead of hanging the run.
const roundTimeout = 2 * time.Minute

// gatewayClient is a classic JSTP client of peer A's TCP gateway: it
// writes newline-delimited dispatches for peer B and reads the answers on
// the same connection. It declares the provisional extension, so the
// gateway answers it as it answers peers; announcements (1xx) are
// counted, and the one final answer per request ends it.
type gatewayClient struct {
	conn           net.Conn
	br             *bufio.Reader
	before, after  []byte // the encoded dispatch around its token
	seq            int
	provisional    int // 1xx answers read
	stray, unknown int // answers to no request waited for; lines that are no answer
	dup            int // second final answers to one request
}

func dialGateway(addr, peerB string) (*gatewayClient, error) {
	d := dispatch.New("GET", "bench", "1")
	d.Protocol = []string{"JSTP", dispatch.Version, node.ProvisionalExtension}
	d.Host = []dispatch.Host{{Name: peerB}}
	d.Token = []any{tokenPlaceholder}
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("gateway dispatch: %w", err)
	}
	line := append(d.AppendJSON(nil), '\n')
	before, after, ok := bytes.Cut(line, []byte(tokenPlaceholder))
	if !ok {
		return nil, fmt.Errorf("token not found in %s", line)
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &gatewayClient{conn: conn, br: bufio.NewReaderSize(conn, maxLine), before: before, after: after}, nil
}

func (g *gatewayClient) close() { g.conn.Close() }

// appendLine appends the dispatch of request number seq, its token
// "gw-" and seq in 33 digits (without fmt, which cost the client, on the
// peers' two cores, a third of a microsecond a request).
func (g *gatewayClient) appendLine(b []byte, seq int) []byte {
	b = append(b, g.before...)
	b = append(b, "gw-"...)
	var digits [33]byte
	for i := len(digits) - 1; i >= 0; i-- {
		digits[i] = byte('0' + seq%10)
		seq /= 10
	}
	b = append(b, digits[:]...)
	return append(b, g.after...)
}

// seqOf is the request number in a token, or -1.
func seqOf(token string) int {
	s, ok := strings.CutPrefix(token, "gw-")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// next reads lines until a final answer and returns its code and request
// number; announcements, stray answers and other lines are counted.
func (g *gatewayClient) next(lo, hi int) (code, seq int, err error) {
	for {
		line, err := g.br.ReadSlice('\n')
		if err != nil {
			return 0, 0, err
		}
		code, txid, ok := answerOf(line)
		switch seq := seqOf(txid); {
		case !ok:
			g.unknown++
		case seq < lo || seq >= hi:
			g.stray++
		case code < 200:
			g.provisional++
		default:
			return code, seq, nil
		}
	}
}

// roundTrips sends n dispatches one after the other, each waiting for
// its answer.
func (g *gatewayClient) roundTrips(n int) (roundResult, error) {
	g.conn.SetReadDeadline(time.Now().Add(roundTimeout))
	var buf []byte
	return roundTrips(n, func(int) (string, error) {
		g.seq++
		buf = g.appendLine(buf[:0], g.seq)
		if _, err := g.conn.Write(buf); err != nil {
			return "", err
		}
		code, _, err := g.next(g.seq, g.seq+1)
		if err != nil {
			return "", fmt.Errorf("waiting for the answer to request %d: %w", g.seq, err)
		}
		return codeText(code), nil
	})
}

// pipeline keeps depth dispatches in flight on the connection.
func (g *gatewayClient) pipeline(n, depth int) (roundResult, error) {
	g.conn.SetReadDeadline(time.Now().Add(roundTimeout))
	lo := g.seq + 1
	g.seq += n
	hi := g.seq + 1
	next := lo
	var buf []byte
	write := func(k int) error {
		buf = buf[:0]
		for range k {
			buf = g.appendLine(buf, next)
			next++
		}
		_, err := g.conn.Write(buf)
		return err
	}
	seen := make([]bool, n)
	read := func() (string, error) {
		for {
			code, seq, err := g.next(lo, hi)
			if err != nil {
				return "", err
			}
			if !seen[seq-lo] {
				seen[seq-lo] = true
				return codeText(code), nil
			}
			g.dup++
		}
	}
	return creditPipeline(n, depth, write, read)
}

// codeText is strconv.Itoa without an allocation for the usual 200.
func codeText(code int) string {
	if code == 200 {
		return "200"
	}
	return strconv.Itoa(code)
}

// answerOf reads the code and transaction id of an answer line: an
// ANSWER's resource is [code, txid, ...]; an exception carries its code
// in its header and the transaction id in token[0]. It decodes with the
// engine's own decoder, as a Go client of a gateway would: the client is
// a process on the same two cores, and encoding/json into a struct cost
// it 3.3 µs an answer against 0.9.
func answerOf(line []byte) (code int, txid string, ok bool) {
	d, err := dispatch.Decode(bytes.TrimSuffix(line, []byte("\n")))
	if err != nil {
		return 0, "", false
	}
	if d.Exception != nil {
		return d.Exception.Code, d.TransactionID(), true
	}
	code, txid, _, ok = d.AnswerInfo()
	return code, txid, ok
}
