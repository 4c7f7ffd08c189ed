package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/mesh"
	"github.com/jstp-peer/jstp-peer/node"
)

// benchEndpoint is what peer B serves: GET ["bench", ":n"], answered with
// n, so the answer carries a small body.
var benchEndpoint = dispatch.Endpoint{Method: "GET", Resource: []string{"bench", ":n"}}

// warnLogger keeps the peers quiet unless something goes wrong; what they
// log reaches the parent's stderr with the role in front.
func warnLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startPeer starts a mesh peer on loopback with a fresh identity. Loopback
// mode switches off NAT traversal and relays, which only cost time on one
// machine; DHT server mode keeps the two peers' routing tables useful
// without AutoNAT's verdict.
func startPeer(ctx context.Context, boot []string, gatewayTCP string) (*node.Peer, error) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	return node.Start(ctx, node.PeerConfig{
		Mesh: mesh.Config{
			Key:         key,
			Loopback:    true,
			ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
			DHTMode:     mesh.DHTServer,
			Bootstrap:   boot,
		},
		GatewayTCP: gatewayTCP,
		Logger:     warnLogger(),
	})
}

// runPeerB serves the benchmark endpoint until stdin closes.
func runPeerB(ctx context.Context) error {
	p, err := startPeer(ctx, nil, "")
	if err != nil {
		return err
	}
	defer p.Close()
	// The handler answers from memory, so it runs on the goroutine that
	// read the request (node.Inline), as such handlers should.
	_, err = p.Node.Handle(benchEndpoint, func(ctx context.Context, in *node.Incoming) (any, error) {
		return in.Params["n"], nil
	}, node.Inline())
	if err != nil {
		return err
	}
	h := p.Host.LibP2P()
	r := ready{ID: h.ID().String(), Addr: tcpAddr(p.Host)}
	if r.Addr == "" {
		return fmt.Errorf("no TCP address among %v", p.Host.Addrs())
	}
	return serveCommands(ctx, r, map[string]handler{"conns": connsOp(h)})
}

// runPeerA joins B's mesh, serves a classic TCP gateway, and sends B the
// requests the parent asks for.
func runPeerA(ctx context.Context, rf roleFlags) error {
	b, err := peer.AddrInfoFromString(rf.boot)
	if err != nil {
		return fmt.Errorf("-boot: %w", err)
	}
	p, err := startPeer(ctx, []string{rf.boot}, "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer p.Close()
	h := p.Host.LibP2P()
	// Start only logs a failed bootstrap; every benchmark needs the
	// connection, so a missing one is an error here.
	if h.Network().Connectedness(b.ID) != network.Connected {
		return fmt.Errorf("not connected to peer B %s after bootstrap", b.ID)
	}
	if len(p.Gateways) == 0 {
		return fmt.Errorf("the peer started no TCP gateway")
	}
	d := dispatch.New("GET", "bench", "1")
	d.Host = []dispatch.Host{{Name: b.ID.String()}}
	c := &meshClient{ctx: ctx, n: p.Node, d: d}
	r := ready{ID: h.ID().String(), Gateway: p.Gateways[0].Addr().String(), Conns: conns(h)}
	return serveCommands(ctx, r, map[string]handler{
		"conns": connsOp(h),
		"rtt": func(_ context.Context, cmd command) (reply, error) {
			res, err := roundTrips(cmd.N, c.request)
			return reply{Round: res}, err
		},
		"pipe": func(_ context.Context, cmd command) (reply, error) {
			res, err := pipelined(cmd.N, cmd.Depth, c.request)
			return reply{Round: res}, err
		},
		"burst": func(_ context.Context, cmd command) (reply, error) {
			return reply{Round: c.burst(cmd.N)}, nil
		},
	})
}

// meshClient sends the benchmark request to B through the engine's
// public API, as an application would.
type meshClient struct {
	ctx context.Context
	n   *node.Node
	d   *dispatch.Dispatch
}

// request sends one Request and reads its answers until the channel
// closes: the engine closes it once every expected answer is in, or with a
// 504 at the deadline. The code is the answers' codes joined with "+", so
// a missing or extra answer shows in the results.
func (c *meshClient) request(int) (string, error) {
	ch, err := c.n.Request(c.ctx, c.d)
	if err != nil {
		return "", err
	}
	return answerCodes(ch), nil
}

// answerCodes reads a Request's answers until the channel closes.
// It allocates nothing for the usual lone 200, so that the harness adds
// as little as it can to what it measures.
func answerCodes(ch <-chan *dispatch.Dispatch) string {
	codes := ""
	for a := range ch {
		c := "not-an-answer"
		if code, _, _, ok := a.AnswerInfo(); ok {
			c = codeText(code)
		}
		if codes == "" {
			codes = c
		} else {
			codes += "+" + c
		}
	}
	if codes == "" {
		return "none"
	}
	return codes
}

// burst issues n requests without waiting for any answer, then reads
// them all: the engine holds n transactions at once while the parent
// samples both peers' memory. One goroutine issues them and keeps only
// the answer channels, so the memory measured is the engine's, not the
// harness's. Request does not wait for answers; it only waits when the
// link's send queue is full (back-pressure on the application).
func (c *meshClient) burst(n int) roundResult {
	codes := map[string]int{}
	chans := make([]<-chan *dispatch.Dispatch, 0, n)
	start := time.Now()
	for range n {
		ch, err := c.n.Request(c.ctx, c.d)
		if err != nil {
			codes["error"]++
			continue
		}
		chans = append(chans, ch)
	}
	for _, ch := range chans {
		codes[answerCodes(ch)]++
	}
	return roundResult{N: n, Elapsed: time.Since(start), Codes: codes}
}

// tcpAddr returns the host's TCP address with /p2p/ID, for bootstrapping.
func tcpAddr(h *mesh.Host) string {
	for _, a := range h.Addrs() {
		if s := a.String(); strings.Contains(s, "/tcp/") {
			return s
		}
	}
	return ""
}

// conns lists what was negotiated on each of h's connections.
func conns(h host.Host) []connInfo {
	var out []connInfo
	for _, c := range h.Network().Conns() {
		st := c.ConnState()
		out = append(out, connInfo{
			Peer:      c.RemotePeer().String(),
			Transport: st.Transport,
			Security:  string(st.Security),
			Muxer:     string(st.StreamMultiplexer),
			Early:     st.UsedEarlyMuxerNegotiation,
		})
	}
	return out
}

func connsOp(h host.Host) handler {
	return func(context.Context, command) (reply, error) { return reply{Conns: conns(h)}, nil }
}
