package node

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/identity"
	"github.com/jstp-peer/jstp-peer/mesh"
)

// whoAmI makes p answer GET ["who"] with the author it was told.
func whoAmI(t *testing.T, p *Peer) {
	t.Helper()
	if _, err := p.Node.Handle(ep("GET", "who"), func(_ context.Context, in *Incoming) (any, error) {
		return in.Author, nil
	}); err != nil {
		t.Fatal(err)
	}
}

func authorIn(t *testing.T, as []*dispatch.Dispatch) string {
	t.Helper()
	if len(as) != 1 || codeOf(t, as[0]) != 200 {
		t.Fatalf("answers %v, want one 200", as)
	}
	var who string
	if err := json.Unmarshal(as[0].Body, &who); err != nil {
		t.Fatal(err)
	}
	return who
}

// A dispatch that crosses gateways reaches its handler with its true
// author, and the answer comes back signed by the peer that wrote it;
// over one link, the link names the author and nothing is signed.
func TestAuthorThroughGateways(t *testing.T) {
	a := newTestPeer(t, nil)
	g1 := newTestPeer(t, a)
	g2 := newTestPeer(t, a)
	b := newTestPeer(t, a)
	whoAmI(t, b)
	connectAll(t, a, g1, g2, b)

	req := dispatch.New("GET", "who")
	req.Host = []dispatch.Host{hostOf(g1), hostOf(g2), hostOf(b)}
	as := request(t, a, req)
	if who := authorIn(t, as); who != a.Host.ID().String() {
		t.Fatalf("b saw author %s, want a (%s)", who, a.Host.ID())
	}
	author, err := identity.Verify(as[0])
	if err != nil || author != b.Host.ID() {
		t.Fatalf("the answer's signature: author %s, %v; want b's", author, err)
	}

	req = dispatch.New("GET", "who")
	req.Host = []dispatch.Host{hostOf(b)}
	as = request(t, a, req)
	if who := authorIn(t, as); who != a.Host.ID().String() {
		t.Fatalf("over one link b saw author %s, want a", who)
	}
	if as[0].Extra.Has(identity.SignatureHeader) {
		t.Fatal("an answer over one link was signed")
	}
	if who := authorIn(t, request(t, b, dispatch.New("GET", "who"))); who != b.Host.ID().String() {
		t.Fatalf("b's own application is author %s, want b", who)
	}
}

// A dispatch changed after it was signed, or signed by one peer in
// another's name, is refused with 401 at the first peer that sees it, and
// counted there; a signed dispatch sent twice is refused the second time.
func TestSignatureRefusals(t *testing.T) {
	a := newTestPeer(t, nil)
	g := newTestPeer(t, a)
	b := newTestPeer(t, a)
	whoAmI(t, b)
	connectAll(t, a, g, b)
	signed := func() *dispatch.Dispatch {
		d := dispatch.New("GET", "who")
		d.Token = []any{uuid.NewString()}
		d.Body = json.RawMessage(`{"amount":1}`)
		if err := identity.Sign(a.Host.LibP2P().Peerstore().PrivKey(a.Host.ID()), d); err != nil {
			t.Fatal(err)
		}
		d.Host = []dispatch.Host{hostOf(g), hostOf(b)}
		return d
	}

	tampered := signed()
	tampered.Body = json.RawMessage(`{"amount":1000}`)
	if as := request(t, a, tampered); len(as) != 1 || codeOf(t, as[0]) != 401 {
		t.Fatalf("tampered: answers %v, want one 401", as)
	}

	forged := signed()
	var h identity.SignatureHeaderValue
	json.Unmarshal(forged.Extra.Value(identity.SignatureHeader), &h)
	h.Author = b.Host.ID().String()
	raw, _ := json.Marshal(h)
	forged.Extra.Set(identity.SignatureHeader, raw)
	if as := request(t, a, forged); len(as) != 1 || codeOf(t, as[0]) != 401 {
		t.Fatalf("forged author: answers %v, want one 401", as)
	}
	if got := g.Node.Stats().Dropped["unauthorized"]; got != 2 {
		t.Fatalf("g counted %d unauthorized dispatches, want 2", got)
	}

	once := signed()
	again := *once
	again.Extra = once.Extra.Clone()
	again.Host = append([]dispatch.Host(nil), once.Host...)
	if who := authorIn(t, request(t, a, once)); who != a.Host.ID().String() {
		t.Fatalf("first copy: author %s", who)
	}
	if as := request(t, a, &again); len(as) != 1 || codeOf(t, as[0]) != 401 {
		t.Fatalf("replay: answers %v, want one 401", as)
	}
}

// A signature names the final recipient: a copy redirected to another
// peer serving the same resource (by a gateway that saw it, or anyone
// holding its bytes) is refused there, and the original still runs.
func TestSignatureBindsRecipient(t *testing.T) {
	a := newTestPeer(t, nil)
	g := newTestPeer(t, a)
	b := newTestPeer(t, a)
	c := newTestPeer(t, a)
	whoAmI(t, b)
	whoAmI(t, c)
	connectAll(t, a, g, b, c)
	// signedForB is what a gateway on the way to b holds, and could send
	// elsewhere with another host chain.
	signedForB := func(hosts ...dispatch.Host) *dispatch.Dispatch {
		d := dispatch.New("GET", "who")
		d.Token = []any{uuid.NewString()}
		d.Host = []dispatch.Host{hostOf(g), hostOf(b)}
		if err := identity.Sign(a.Host.LibP2P().Peerstore().PrivKey(a.Host.ID()), d); err != nil {
			t.Fatal(err)
		}
		if got := identity.Recipient(d); got != b.Host.ID().String() {
			t.Fatalf("signed for %q, want b", got)
		}
		d.Host = hosts
		return d
	}
	for name, r := range map[string]*dispatch.Dispatch{
		"through the gateway": signedForB(hostOf(g), hostOf(c)),
		"directly":            signedForB(hostOf(c)),
	} {
		as := request(t, a, r)
		if len(as) != 1 || codeOf(t, as[0]) != 401 || !strings.Contains(string(as[0].Body), "signed for") {
			t.Fatalf("redirected to c %s: answers %v, want one 401 for the recipient", name, as)
		}
	}
	if who := authorIn(t, request(t, a, signedForB(hostOf(g), hostOf(b)))); who != a.Host.ID().String() {
		t.Fatalf("to its recipient: author %s", who)
	}
}

// tapped records every frame a peer reads from other peers.
type tapped struct {
	mesh.Ingress
	mu     sync.Mutex
	frames [][]byte
}

func (t *tapped) Attach(l mesh.Link) mesh.FrameFunc {
	f := t.Ingress.Attach(l)
	return func(ctx context.Context, frame []byte, err error) {
		t.mu.Lock()
		t.frames = append(t.frames, bytes.Clone(frame))
		t.mu.Unlock()
		f(ctx, frame, err)
	}
}

func (t *tapped) saw(s string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, f := range t.frames {
		if bytes.Contains(f, []byte(s)) {
			return true
		}
	}
	return false
}

func tapPeer(tap *tapped) func(*PeerConfig) {
	return func(c *PeerConfig) {
		c.Setup = func(p *Peer) error {
			p.tap = func(in mesh.Ingress) mesh.Ingress { tap.Ingress = in; return tap }
			return nil
		}
	}
}

// A sealed dispatch crosses two gateways that never see its resource,
// body or answer; its recipient's handler sees the plaintext and the
// verified author, and the answer comes back opened.
func TestSealedThroughGateways(t *testing.T) {
	a := newTestPeer(t, nil)
	tap1, tap2 := &tapped{}, &tapped{}
	g1 := newTestPeer(t, a, tapPeer(tap1))
	g2 := newTestPeer(t, a, tapPeer(tap2))
	b := newTestPeer(t, a)
	connectAll(t, a, g1, g2, b)
	if _, err := b.Node.Handle(ep("POST", "vault", ":item"), func(_ context.Context, in *Incoming) (any, error) {
		return map[string]string{"author": in.Author, "got": string(in.Dispatch.Body), "reply": "open-sesame-reply"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	req := dispatch.New("POST", "vault", "secret-item")
	req.Body = json.RawMessage(`"secret-plaintext-body"`)
	req.Host = []dispatch.Host{hostOf(g1), hostOf(g2), hostOf(b)}
	req.Extra = dispatch.Headers{{Name: SealHeader, Value: json.RawMessage(`true`)}}
	as := request(t, a, req)
	if len(as) != 1 || codeOf(t, as[0]) != 200 {
		t.Fatalf("answers %v, want one 200", as)
	}
	var got map[string]string
	if err := json.Unmarshal(as[0].Body, &got); err != nil {
		t.Fatalf("answer body %s: %v", as[0].Body, err)
	}
	if got["author"] != a.Host.ID().String() || got["got"] != `"secret-plaintext-body"` || got["reply"] != "open-sesame-reply" {
		t.Fatalf("answer %v", got)
	}
	for i, tap := range []*tapped{tap1, tap2} {
		if !tap.saw(`"jstp-peer","sealed"`) {
			t.Fatalf("gateway %d saw no sealed dispatch: the tap is broken", i+1)
		}
		for _, s := range []string{"secret-plaintext-body", "secret-item", "vault", "open-sesame-reply", a.Host.ID().String()} {
			if tap.saw(s) {
				t.Fatalf("gateway %d read %q", i+1, s)
			}
		}
	}
}

// A sealed dispatch cannot be opened by anyone but its recipient: moved
// to another peer it is refused there (400).
func TestSealedWrongRecipient(t *testing.T) {
	a := newTestPeer(t, nil)
	b := newTestPeer(t, a)
	c := newTestPeer(t, a)
	whoAmI(t, b)
	connectAll(t, a, b, c)
	d := dispatch.New("GET", "who")
	d.Token = []any{uuid.NewString()}
	d.Host = []dispatch.Host{hostOf(b)}
	rec, err := a.Node.keyRecordOf(t.Context(), b.Host.ID())
	if err != nil {
		t.Fatal(err)
	}
	if err := identity.Seal(rec, b.Host.ID(), d); err != nil {
		t.Fatal(err)
	}
	d.Token = []any{uuid.NewString()}
	d.Host = []dispatch.Host{hostOf(c)}
	if as := request(t, a, d); len(as) != 1 || codeOf(t, as[0]) != 400 {
		t.Fatalf("sealed to b, sent to c: answers %v, want one 400", as)
	}
}

// BenchmarkRoundTripTrust compares one warm round trip between two peers
// plain (the link authenticates both ends), signed both ways, and sealed
// both ways (signed inside).
func BenchmarkRoundTripTrust(b *testing.B) {
	for _, mode := range []string{"plain", "signed", "sealed"} {
		b.Run(mode, func(b *testing.B) {
			signAll := func(c *PeerConfig) { c.SignAll = mode == "signed" }
			a := newTestPeer(b, nil, signAll)
			c := newTestPeer(b, a, signAll)
			c.Node.Handle(dispatch.Endpoint{Method: "GET", Resource: []string{"bench", ":n"}}, func(ctx context.Context, in *Incoming) (any, error) {
				return in.Params["n"], nil
			})
			ctx := context.Background()
			next := func() *dispatch.Dispatch {
				d := benchRequest(c)
				if mode == "sealed" {
					d.Extra = dispatch.Headers{{Name: SealHeader, Value: json.RawMessage(`true`)}}
				}
				return d
			}
			request(b, a, next()) // warm: connection, stream, key record
			b.ReportAllocs()
			for b.Loop() {
				ch, err := a.Node.Request(ctx, next())
				if err != nil {
					b.Fatal(err)
				}
				for a := range ch {
					if code, _, _, _ := a.AnswerInfo(); code != 200 {
						b.Fatalf("answer %s", a)
					}
				}
			}
		})
	}
}

// connectAll connects every pair of peers, so that a test about what
// crosses them does not depend on finding peers through the DHT.
func connectAll(t *testing.T, ps ...*Peer) {
	t.Helper()
	for i, p := range ps {
		for _, q := range ps[i+1:] {
			if err := p.Host.LibP2P().Connect(t.Context(), peer.AddrInfo{ID: q.Host.ID(), Addrs: q.Host.Addrs()}); err != nil {
				t.Fatal(err)
			}
		}
	}
}
