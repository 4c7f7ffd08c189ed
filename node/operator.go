package node

// The operator's resources: what `jstp-peer connect`, `ping`, `resolve`,
// `provide` and `unprovide` ask the local peer. They act on the peer
// itself (its connections, the names it announces) or make it do work
// for the asker (dials, DHT walks), so they serve clients on this machine
// only (LocalOnly): a remote peer is answered 403.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/routing"
	"github.com/jstp-peer/jstp-peer/saturation"
)

// provideWait bounds how long PUT ["names", NAME] waits for the first
// announcement before answering: well inside the answer timeout. An
// announcement that takes longer goes on in the background (Names
// retries it), and the answer says so.
const provideWait = 5 * time.Second

// ProviderInfo is one element of the providers in the body of
// GET ["names", NAME].
type ProviderInfo struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
	// Self marks this peer.
	Self bool `json:"self,omitempty"`
}

// NameInfo is the body of GET ["names", NAME]: the peers that provide
// the name, sorted by peer id.
type NameInfo struct {
	Name      string         `json:"name"`
	Providers []ProviderInfo `json:"providers"`
}

// ProvideInfo is the body of the answer to PUT ["names", NAME].
type ProvideInfo struct {
	Name string `json:"name"`
	// Announced reports that the first announcement reached the DHT; when
	// false it is retried in the background and Error says why it has
	// not yet. The peer serves the name either way.
	Announced bool   `json:"announced"`
	Error     string `json:"error,omitempty"`
}

// PingInfo is the body of GET ["ping", PEER].
type PingInfo struct {
	ID    string  `json:"id"`
	RTTMS float64 `json:"rttMs"`
}

// serveOperator registers the operator's resources:
//
//	POST   ["peers"]         body {"addr": MULTIADDR} (or the text): connect
//	GET    ["ping", PEER]    one libp2p ping of PEER (a peer id or multiaddr)
//	GET    ["names"]         the names this peer provides
//	GET    ["names", NAME]   the peers that provide NAME (a DHT lookup)
//	PUT    ["names", NAME]   provide NAME from now on
//	DELETE ["names", NAME]   stop providing NAME
func (p *Peer) serveOperator() error {
	handlers := []struct {
		method   string
		resource []string
		h        Handler
	}{
		{dispatch.POST, []string{"peers"}, p.opConnect},
		{dispatch.GET, []string{"ping", ":peer"}, p.opPing},
		{dispatch.GET, []string{"names"}, func(context.Context, *Incoming) (any, error) { return p.Names.Provided(), nil }},
		{dispatch.GET, []string{"names", ":name"}, p.opResolve},
		{dispatch.PUT, []string{"names", ":name"}, p.opProvide},
		{dispatch.DELETE, []string{"names", ":name"}, p.opUnprovide},
	}
	for _, r := range handlers {
		if _, err := p.Node.Handle(dispatch.Endpoint{Method: r.method, Resource: r.resource}, r.h, LocalOnly(), QueueLen(BuiltinQueueLen)); err != nil {
			return fmt.Errorf("node: operator resource %s /%s: %w", r.method, strings.Join(r.resource, "/"), err)
		}
	}
	return nil
}

// opFail answers code with a one-line message as the body.
func opFail(code int, format string, args ...any) (any, error) {
	return Reply{Code: code, Body: oneLine(fmt.Sprintf(format, args...))}, nil
}

// listBreak is a line break in a message, with the indent and bullet of
// the list that follows it: libp2p lists failed dials as "\n  * [addr] ...".
var listBreak = regexp.MustCompile(`\s*\n\s*(\*\s*)?`)

// oneLine folds a message onto one line: an answer is read as one.
func oneLine(s string) string {
	return listBreak.ReplaceAllString(strings.TrimSpace(s), "; ")
}

// peerArg reads a peer named by id or by a multiaddr ending in /p2p/ID.
func peerArg(s string) (peer.AddrInfo, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return peer.AddrInfo{}, errors.New("want a peer id or a multiaddr ending in /p2p/<peer id>")
	}
	t, err := routing.Classify(dispatch.Host{Name: s})
	if err != nil || t.Kind != routing.Peer {
		if len(s) > 200 {
			s = s[:200] + "…" // the asker knows what it sent
		}
		return peer.AddrInfo{}, fmt.Errorf("%q is not a peer id or a multiaddr ending in /p2p/<peer id>", s)
	}
	return t.Peer, nil
}

func (p *Peer) opConnect(ctx context.Context, in *Incoming) (any, error) {
	var addr string
	var obj struct {
		Addr string `json:"addr"`
	}
	switch {
	case json.Unmarshal(in.Dispatch.Body, &addr) == nil:
	case json.Unmarshal(in.Dispatch.Body, &obj) == nil && obj.Addr != "":
		addr = obj.Addr
	default:
		return opFail(400, `the body must be {"addr": MULTIADDR}`)
	}
	ai, err := peerArg(addr)
	if err != nil {
		return opFail(400, "%v", err)
	}
	if ai.ID == p.Host.ID() {
		return opFail(400, "%s is this peer", ai.ID)
	}
	if err := p.Host.Connect(ctx, ai); err != nil {
		return opFail(502, "cannot connect to %s: %v", addr, rootCause(err))
	}
	p.Node.log.Info("connected on request", "peer", ai.ID, "from", in.From, "dispatch", in.Dispatch)
	for _, pi := range p.Host.Peers() {
		if pi.ID == ai.ID {
			return pi, nil
		}
	}
	// Connected and gone again already: say so rather than pretend.
	return opFail(502, "connected to %s, but the connection closed at once", ai.ID)
}

func (p *Peer) opPing(ctx context.Context, in *Incoming) (any, error) {
	ai, err := peerArg(in.Params["peer"])
	if err != nil {
		return opFail(400, "%v", err)
	}
	if ai.ID == p.Host.ID() {
		return opFail(400, "%s is this peer", ai.ID)
	}
	if len(ai.Addrs) > 0 {
		// A pasted address is tried for this ping, and forgotten soon
		// unless a connection makes it worth keeping.
		p.Host.LibP2P().Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
	}
	rtt, err := p.Host.Ping(ctx, ai.ID)
	if err != nil {
		return opFail(502, "no pong from %s: %v", ai.ID, rootCause(err))
	}
	return PingInfo{ID: ai.ID.String(), RTTMS: float64(rtt) / float64(time.Millisecond)}, nil
}

func (p *Peer) opResolve(ctx context.Context, in *Incoming) (any, error) {
	name := in.Params["name"]
	if err := routing.ValidName(name); err != nil {
		return opFail(400, "service name %q: names are 1 to %d characters without white space, \"/\" or \":\"", name, routing.MaxNameLen)
	}
	providers, err := p.Names.Resolve(ctx, name)
	switch {
	case errors.Is(err, dispatch.ErrNotFound):
		return opFail(404, "no peer provides %q", name)
	case err != nil:
		return opFail(504, "looking up %q: %v", name, rootCause(err))
	}
	info := NameInfo{Name: name, Providers: make([]ProviderInfo, 0, len(providers))}
	for _, ai := range providers {
		pi := ProviderInfo{ID: ai.ID.String(), Addrs: make([]string, 0, len(ai.Addrs)), Self: ai.ID == p.Host.ID()}
		for _, a := range ai.Addrs {
			pi.Addrs = append(pi.Addrs, a.String())
		}
		info.Providers = append(info.Providers, pi)
	}
	return info, nil
}

func (p *Peer) opProvide(ctx context.Context, in *Incoming) (any, error) {
	name := in.Params["name"]
	if err := routing.ValidName(name); err != nil {
		return opFail(400, "service name %q: names are 1 to %d characters without white space, \"/\" or \":\"", name, routing.MaxNameLen)
	}
	if err := saturation.ValidateNames([]string{name}); err != nil {
		return opFail(400, "service name %q: %v", name, err)
	}
	provided := p.Names.Provided()
	if !slices.Contains(provided, name) && len(provided) >= saturation.MaxNames {
		return opFail(400, "this peer provides %d names already, the most one peer may", len(provided))
	}
	wctx, cancel := context.WithTimeout(ctx, provideWait)
	defer cancel()
	err := p.Names.Provide(wctx, name)
	if errors.Is(err, routing.ErrNamesClosed) {
		return opFail(503, "the peer is stopping")
	}
	p.reportNames()
	p.Node.log.Info("name provided on request", "name", name, "from", in.From, "dispatch", in.Dispatch)
	info := ProvideInfo{Name: name, Announced: err == nil}
	if err != nil {
		info.Error = "announcement retried in the background: " + rootCause(err).Error()
	}
	return info, nil
}

func (p *Peer) opUnprovide(_ context.Context, in *Incoming) (any, error) {
	name := in.Params["name"]
	if !p.Names.Provides(name) {
		return opFail(404, "this peer does not provide %q", name)
	}
	p.Names.Unprovide(name)
	p.reportNames()
	p.Node.log.Info("name no longer provided, on request", "name", name, "from", in.From, "dispatch", in.Dispatch)
	return ProvideInfo{Name: name}, nil
}

// reportNames makes the saturation reports carry the names provided now,
// so replica choice elsewhere sees the change with the next report.
func (p *Peer) reportNames() {
	if p.sat == nil {
		return
	}
	if err := p.sat.meter.SetNames(p.Names.Provided()...); err != nil {
		p.Node.log.Warn("saturation reports keep the former names", "err", err)
	}
}

// rootCause is the innermost error of a chain of wrapped ones: the
// layers above it repeat what the answer already says ("routing:
// resolve x: ..."). Errors joined from several causes are kept whole.
func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}
