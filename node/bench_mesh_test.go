package node

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/mesh"

	"github.com/jstp-peer/jstp-peer/internal/poll"
)

// The baselines carry a line of the same size as the mesh's dispatch and
// echo it, so the ratios show what JSTP adds over the bare transport.

const echoProto protocol.ID = "/bench/echo/1"

func benchPair(b *testing.B) (a, c *Peer) {
	a = newTestPeer(b, nil)
	c = newTestPeer(b, a)
	// The handler answers from memory, so it runs on the goroutine that
	// read the request, as in the cross-process benchmarks.
	c.Node.Handle(dispatch.Endpoint{Method: "GET", Resource: []string{"bench", ":n"}}, func(ctx context.Context, in *Incoming) (any, error) {
		return in.Params["n"], nil
	}, Inline())
	return a, c
}

func benchRequest(c *Peer) *dispatch.Dispatch {
	d := dispatch.New("GET", "bench", "1")
	d.Host = []dispatch.Host{hostOf(c)}
	return d
}

// BenchmarkRoundTripMesh is one warm Request → answer between two peers.
func BenchmarkRoundTripMesh(b *testing.B) {
	a, c := benchPair(b)
	d := benchRequest(c)
	ctx := context.Background()
	request(b, a, d) // warm: connection and stream open
	b.ReportAllocs()
	for b.Loop() {
		ch, err := a.Node.Request(ctx, d)
		if err != nil {
			b.Fatal(err)
		}
		for range ch {
		}
	}
}

func echoLines(r io.Reader, w io.Writer) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		if _, err := w.Write(line); err != nil {
			return
		}
	}
}

func benchLine(c *Peer) []byte {
	return append(benchRequest(c).AppendJSON(nil), '\n')
}

// rawEchoStream opens a libp2p stream between a benchmark pair to an echo
// handler on the far side: the baseline the dispatch stream is measured
// against.
func rawEchoStream(b *testing.B) (s network.Stream, line []byte) {
	a, c := benchPair(b)
	c.Host.LibP2P().SetStreamHandler(echoProto, func(s network.Stream) { echoLines(s, s); s.Close() })
	s, err := a.Host.LibP2P().NewStream(context.Background(), c.Host.ID(), echoProto)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s, benchLine(c)
}

// echoRoundTrips writes line and reads its echo once per iteration.
func echoRoundTrips(b *testing.B, rw io.ReadWriter, line []byte) {
	br := bufio.NewReader(rw)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rw.Write(line); err != nil {
			b.Fatal(err)
		}
		if _, err := br.ReadSlice('\n'); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRoundTripRawStream echoes the same bytes over one libp2p
// stream between the same kind of hosts.
func BenchmarkRoundTripRawStream(b *testing.B) {
	s, line := rawEchoStream(b)
	echoRoundTrips(b, s, line)
}

// BenchmarkRoundTripRawTCP echoes the same bytes over loopback TCP.
func BenchmarkRoundTripRawTCP(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		echoLines(conn, conn)
		conn.Close()
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	echoRoundTrips(b, conn, append(dispatch.New("GET", "bench", "1").AppendJSON(nil), '\n'))
}

// BenchmarkPipelinedMesh keeps 64 requests in flight between two peers;
// ns/op is the cost per request at that depth.
func BenchmarkPipelinedMesh(b *testing.B) {
	a, c := benchPair(b)
	d := benchRequest(c)
	request(b, a, d)
	ctx := context.Background()
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	b.ReportAllocs()
	for b.Loop() {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ch, err := a.Node.Request(ctx, d)
			if err != nil {
				b.Error(err)
				return
			}
			for range ch {
			}
		}()
	}
	wg.Wait()
}

// BenchmarkPipelinedRawStream writes and reads the same bytes on one
// libp2p stream with 64 lines in flight.
func BenchmarkPipelinedRawStream(b *testing.B) {
	s, line := rawEchoStream(b)
	credit := make(chan struct{}, 64)
	done := make(chan struct{})
	var read atomic.Int64
	go func() {
		defer close(done)
		br := bufio.NewReader(s)
		for {
			if _, err := br.ReadSlice('\n'); err != nil {
				return
			}
			read.Add(1)
			<-credit
		}
	}()
	var sent int64
	b.ReportAllocs()
	for b.Loop() {
		credit <- struct{}{}
		if _, err := s.Write(line); err != nil {
			b.Fatal(err)
		}
		sent++
	}
	// Half-close: the echo side drains, closes, and the reader sees EOF
	// once every line has come back.
	s.CloseWrite()
	<-done
	if read.Load() != sent {
		b.Fatalf("read %d of %d lines", read.Load(), sent)
	}
}

const fanout = 10

// BenchmarkFanoutBind is one event from a target to 10 remote
// subscribers (BindAt, gossipsub underneath), until all have it.
func BenchmarkFanoutBind(b *testing.B) {
	target := newTestPeer(b, nil)
	var got atomic.Int64
	next := make(chan struct{}, 1)
	for i := 0; i < fanout; i++ {
		p := newTestPeer(b, target, func(c *PeerConfig) { c.Mesh.DHTMode = mesh.DHTClient })
		_, err := p.Node.BindAt(context.Background(), []dispatch.Host{hostOf(target)}, dispatch.Endpoint{Method: "POST", Resource: []string{"tick"}},
			func(context.Context, *Incoming) {
				if got.Add(1)%fanout == 0 {
					next <- struct{}{}
				}
			})
		if err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	d := dispatch.New("POST", "tick")
	b.ReportAllocs()
	for b.Loop() {
		if err := target.Node.Send(ctx, d); err != nil {
			b.Fatal(err)
		}
		<-next
	}
}

// BenchmarkFanoutRawGossipsub publishes the same bytes on one topic to 10
// subscribers of the same topology, until all have it.
func BenchmarkFanoutRawGossipsub(b *testing.B) {
	target := newTestPeer(b, nil)
	const topic = "/bench/raw"
	var got atomic.Int64
	next := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var subs []*pubsub.Subscription
	for i := 0; i < fanout; i++ {
		p := newTestPeer(b, target, func(c *PeerConfig) { c.Mesh.DHTMode = mesh.DHTClient })
		t, err := p.Host.PubSub().Join(topic)
		if err != nil {
			b.Fatal(err)
		}
		s, err := t.Subscribe()
		if err != nil {
			b.Fatal(err)
		}
		subs = append(subs, s)
		go func() {
			for {
				if _, err := s.Next(ctx); err != nil {
					return
				}
				if got.Add(1)%fanout == 0 {
					next <- struct{}{}
				}
			}
		}()
	}
	pt, err := target.Host.PubSub().Join(topic)
	if err != nil {
		b.Fatal(err)
	}
	poll.Until(b, 10*time.Second, "subscribers known to the publisher", func() bool { return len(pt.ListPeers()) == fanout })
	msg := dispatch.New("POST", "tick").AppendJSON(nil)
	b.ReportAllocs()
	for b.Loop() {
		if err := pt.Publish(ctx, msg); err != nil {
			b.Fatal(err)
		}
		<-next
	}
	for _, s := range subs {
		s.Cancel()
	}
}
