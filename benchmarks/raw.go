package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// The raw baselines' protocols: every line is sent back. On echoProto
// the echo side writes back together the lines that arrived together; on
// echoEachProto it writes each line as soon as it has read it.
const (
	echoProto     protocol.ID = "/jstp-bench/echo/1"
	echoEachProto protocol.ID = "/jstp-bench/echo-each/1"
)

// maxLine bounds a line the echo sides read; the benchmark's are a few
// hundred bytes.
const maxLine = 64 << 10

// newRawHost starts a libp2p host that connects like a mesh peer does.
// mesh.New passes no security or muxer option, so libp2p applies its
// defaults (TLS, then Noise; yamux); naming the same defaults here keeps
// the pair negotiating what the peers negotiate, which the parent prints
// for both. TCP is the only transport, as the peers only listen on TCP.
// Relays are off, as in the peers' loopback mode.
func newRawHost() (host.Host, error) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	return libp2p.New(
		libp2p.Identity(key),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DefaultSecurity,
		libp2p.DefaultMuxers,
		libp2p.DisableRelay(),
	)
}

// runRawB echoes lines on a libp2p stream protocol and on plain TCP.
func runRawB(ctx context.Context) error {
	h, err := newRawHost()
	if err != nil {
		return err
	}
	defer h.Close()
	h.SetStreamHandler(echoProto, func(s network.Stream) {
		echoLines(s, true)
		s.Close()
	})
	h.SetStreamHandler(echoEachProto, func(s network.Stream) {
		echoLines(s, false)
		s.Close()
	})
	ln, err := serveTCP(func(c net.Conn) {
		echoLines(c, true)
		c.Close()
	})
	if err != nil {
		return err
	}
	defer ln.Close()
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("no address to announce: %v", err)
	}
	r := ready{ID: h.ID().String(), Addr: addrs[0].String(), TCP: ln.Addr().String()}
	return serveCommands(ctx, r, map[string]handler{"conns": connsOp(h)})
}

// echoLines writes back every line it reads. With coalesce, lines
// already buffered are written back together, as the mesh's frame queue
// coalesces what queued up during a write: the baseline batches the way a
// careful hand-written server would, so it is not handicapped against the
// mesh. Without, each line is one write, as a naive server does.
func echoLines(rw io.ReadWriter, coalesce bool) {
	br := bufio.NewReaderSize(rw, maxLine)
	bw := bufio.NewWriterSize(rw, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		if _, err := bw.Write(line); err != nil {
			return
		}
		if !coalesce || br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return
			}
		}
	}
}

// runRawA connects to raw-b over libp2p and TCP and echoes the lines the
// parent gives it.
func runRawA(ctx context.Context, rf roleFlags) error {
	ai, err := peer.AddrInfoFromString(rf.peer)
	if err != nil {
		return fmt.Errorf("-peer: %w", err)
	}
	h, err := newRawHost()
	if err != nil {
		return err
	}
	defer h.Close()
	if err := h.Connect(ctx, *ai); err != nil {
		return err
	}
	s, err := h.NewStream(ctx, ai.ID, echoProto)
	if err != nil {
		return err
	}
	defer s.Close()
	each, err := h.NewStream(ctx, ai.ID, echoEachProto)
	if err != nil {
		return err
	}
	defer each.Close()
	tc, err := net.Dial("tcp", rf.tcp)
	if err != nil {
		return err
	}
	defer tc.Close()
	rc, err := net.Dial("tcp", rf.relay)
	if err != nil {
		return fmt.Errorf("-relay: %w", err)
	}
	defer rc.Close()
	stream := newEchoClient(s, true)
	perLine := newEchoClient(each, false)
	plain := newEchoClient(tc, true)
	relayed := newEchoClient(rc, true)
	return serveCommands(ctx, ready{ID: h.ID().String(), Conns: conns(h)}, map[string]handler{
		"conns":       connsOp(h),
		"rtt-stream":  stream.roundTripOp,
		"pipe-stream": stream.pipelineOp,
		"pipe-each":   perLine.pipelineOp,
		"rtt-tcp":     plain.roundTripOp,
		"rtt-relay":   relayed.roundTripOp,
	})
}

// echoClient sends lines to an echo server and reads them back. With
// coalesce, a pipelined round writes the lines it has credits for in one
// write; without, one write per line.
type echoClient struct {
	w        io.Writer
	br       *bufio.Reader
	coalesce bool
}

func newEchoClient(rw io.ReadWriter, coalesce bool) *echoClient {
	return &echoClient{w: rw, br: bufio.NewReaderSize(rw, maxLine), coalesce: coalesce}
}

func (e *echoClient) roundTripOp(_ context.Context, c command) (reply, error) {
	res, err := roundTrips(c.N, func(int) (string, error) {
		if _, err := e.w.Write(c.Line); err != nil {
			return "", err
		}
		_, err := e.br.ReadSlice('\n')
		return "ok", err
	})
	return reply{Round: res}, err
}

// pipelineOp keeps c.Depth lines in flight (see creditPipeline).
func (e *echoClient) pipelineOp(_ context.Context, c command) (reply, error) {
	buf := make([]byte, 0, c.Depth*len(c.Line))
	write := func(k int) error {
		if !e.coalesce {
			for range k {
				if _, err := e.w.Write(c.Line); err != nil {
					return err
				}
			}
			return nil
		}
		buf = buf[:0]
		for range k {
			buf = append(buf, c.Line...)
		}
		_, err := e.w.Write(buf)
		return err
	}
	read := func() (string, error) {
		_, err := e.br.ReadSlice('\n')
		return "ok", err
	}
	res, err := creditPipeline(c.N, c.Depth, write, read)
	return reply{Round: res}, err
}

// runRawRelay passes TCP connections on to raw-b's echo, bytes as they
// come, both ways: the baseline of a gateway, which puts a third process
// on the path. On two cores that process costs more than its copying:
// every request wakes one more process, twice.
func runRawRelay(ctx context.Context, rf roleFlags) error {
	ln, err := serveTCP(func(c net.Conn) {
		defer c.Close()
		up, err := net.Dial("tcp", rf.tcp)
		if err != nil {
			return
		}
		go func() {
			io.Copy(up, c)
			up.Close()
		}()
		io.Copy(c, up)
	})
	if err != nil {
		return err
	}
	defer ln.Close()
	return serveCommands(ctx, ready{TCP: ln.Addr().String()}, nil)
}

// serveTCP listens on a free loopback port and serves each connection on
// a goroutine of its own, until the listener is closed.
func serveTCP(serve func(net.Conn)) (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln, nil
}
