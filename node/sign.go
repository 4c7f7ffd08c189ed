package node

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/identity"
	"github.com/jstp-peer/jstp-peer/mesh"
	"github.com/jstp-peer/jstp-peer/routing"
)

// Signatures (docs/security.md). One rule decides what a peer signs: a
// dispatch that will cross more than the link it leaves on carries a
// signature. Over a single link the libp2p channel already authenticates
// the peer at the other end, so a signature there would only cost time:
// about 40 µs to sign and verify, a third of a round trip. So a peer
// signs, when they are unsigned,
//   - what it passes on to a peer with more host elements to go (the
//     application's dispatches, its gateway clients', and unsigned ones
//     it relays for others: it vouches for those);
//   - the answers it writes for a signed dispatch whose author is not the
//     peer at the other end of the link (it came through gateways).
// WithSignAll makes it sign everything it passes on to peers.
//
// Every dispatch that arrives signed is verified, whatever its origin,
// and checked against replays; the author then reaches handlers as
// Incoming.Author. An unsigned dispatch from a peer is that peer's.

// WithIdentity makes the engine sign with key, the peer's Ed25519
// identity key (identity.LoadOrCreate). Without it the engine signs
// nothing but still verifies what arrives signed.
func WithIdentity(key crypto.PrivKey) Option { return func(c *config) { c.key = key } }

// WithSignAll makes the engine sign every dispatch it authors or passes
// on unsigned to a peer, not only those that cross gateways: for
// applications that keep signed records of what they receive.
func WithSignAll() Option { return func(c *config) { c.signAll = true } }

// verify checks a signed dispatch: its signature, then that it is fresh
// and not seen before. It returns the author, or "" for an unsigned one,
// and the recipient the signature names ("" for none).
func (n *Node) verify(d *dispatch.Dispatch) (author, to string, err error) {
	if !d.Extra.Has(identity.SignatureHeader) {
		return "", "", nil
	}
	id, to, err := identity.VerifyAndTrim(d)
	if err == nil {
		err = n.replay.Check(id, d)
	}
	if err != nil {
		n.stats.unauthorized.Add(1)
		return "", "", err
	}
	return id.String(), to, nil
}

// checkRecipient refuses a dispatch about to be processed here that its
// author signed for another recipient: whoever holds a signed dispatch's
// bytes (a gateway it crossed) could otherwise have it run by any peer
// serving the same resource, in the author's name.
func (n *Node) checkRecipient(to string) error {
	if to == "" {
		return nil
	}
	h := dispatch.Host{Name: to}
	if t, err := routing.Classify(h); err == nil && t.Kind == routing.Peer {
		if t.Peer.ID.String() == n.cfg.id {
			return nil
		}
	} else if n.IsLocal(h) {
		return nil
	}
	n.stats.unauthorized.Add(1)
	return fmt.Errorf("%w: signed for %s, not this peer", identity.ErrBadSignature, to)
}

// authorOf is the author handlers see: the verified signer, the peer at
// the other end of the link, or this peer for its own application and
// gateway clients (it vouches for them when it passes them on).
func (n *Node) authorOf(rt replyTo) string {
	if rt.author != "" {
		return rt.author
	}
	if lo, ok := rt.o.(*linkOrigin); ok && lo.kind == mesh.PeerLink {
		return lo.l.ID()
	}
	return n.cfg.id
}

// signForward signs d, about to be passed on to next (which the host
// element to led to), when the rule above says so, for its final
// recipient: the last element left of its host chain, or to when next
// is the last hop.
func (n *Node) signForward(d *dispatch.Dispatch, next *linkOrigin, to dispatch.Host) error {
	if n.cfg.key == nil || next.kind != mesh.PeerLink || (len(d.Host) == 0 && !n.cfg.signAll) {
		return nil
	}
	if len(d.Host) > 0 {
		to = d.Host[len(d.Host)-1]
	}
	if to.IsTuple() {
		// A classic engine at [host, port] checks no signature.
		to = dispatch.Host{}
	}
	return n.sign(d, to.Name)
}

// signAnswer signs an answer or exception written here for rt.
func (n *Node) signAnswer(rt replyTo, a *dispatch.Dispatch) {
	if n.cfg.key == nil {
		return
	}
	lo, ok := rt.o.(*linkOrigin)
	if !ok || lo.kind != mesh.PeerLink {
		return
	}
	if !n.cfg.signAll && (rt.author == "" || rt.author == lo.l.ID()) {
		return
	}
	if err := n.sign(a, ""); err != nil {
		n.warn.Warn("answer not signed", "to", lo.l.ID(), "err", err)
	}
}

// sign signs d for the recipient to ("" for none), unless it is signed.
func (n *Node) sign(d *dispatch.Dispatch, to string) error {
	if d.Extra.Has(identity.SignatureHeader) {
		return nil
	}
	if d.Timestamp == 0 {
		// Receivers refuse signed dispatches without a fresh timestamp
		// (replays).
		d.Timestamp = n.cfg.now().UnixMilli()
	}
	if err := identity.SignFor(n.cfg.key, d, to); err != nil {
		return dispatch.Errorf(dispatch.ErrBadDispatch, "cannot sign: %w", err)
	}
	return nil
}
