package identity

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// Header names this package reads and writes, lowercase as the decoder
// keeps them in Dispatch.Extra.
const (
	// SignatureHeader holds a dispatch's signature (see Sign).
	SignatureHeader = "signature"
	// SealedHeader holds a sealed dispatch's ciphertext (see Seal).
	SealedHeader = "sealed"
	// HopsHeader counts the gateways a dispatch crossed; gateways rewrite
	// it, so signatures leave it out and sealing leaves it readable.
	HopsHeader = "hops"
	// ViaHeader is a per-hop label gateways rewrite; treated like hops.
	ViaHeader = "via"
)

// SignatureAlgorithm is the only value of the "alg" member: Ed25519 as in
// RFC 8032, the algorithm of the peer's libp2p identity key.
const SignatureAlgorithm = "ed25519"

// SignatureDomain is prepended to the canonical dispatch before signing.
// The identity key also signs libp2p handshakes, peer records and
// sealing key records; a distinct prefix makes a signature over a
// dispatch useless as any of those, and theirs useless here, the way
// libp2p signed envelopes prefix a domain string.
const SignatureDomain = "jstp-peer dispatch signature v2\n"

// MaxSignatureHeader bounds the "signature" header's raw value before it
// is parsed. A well-formed one is about 180 bytes.
const MaxSignatureHeader = 1 << 10

// SignatureHeaderValue is the "signature" header:
//
//	"signature": {"alg": "ed25519", "author": "<peer id>", "sig": "<base64url>"}
//
// author is the signer's peer id in its usual text form (base58btc
// multihash, "12D3KooW…"; the CID form is accepted on input). Only peer
// ids that embed their public key (identity multihash) can be verified
// without a lookup, and of those only Ed25519 ones are accepted. sig is
// the 64-byte Ed25519 signature in unpadded base64url (RFC 4648 §5);
// hdrs, optional, the extension headers it covers (below).
// Members other than these five are refused: nothing in this header is
// covered by the signature, so nothing else in it could be trusted.
//
// to, optional, is the final recipient as the author named it: the last
// element of the host chain when it was signed (a peer id, a multiaddr or
// a service name; a classic [host, port] target is not named). The
// recipient refuses a dispatch signed for another (node: 401), so that
// whoever holds its bytes — a gateway on the way — cannot have it run by
// a peer it was not meant for. A dispatch to a service name may run on
// any peer that provides the name: retries move it between replicas.
//
// The signed message is SignatureDomain, the nonce n and a newline, to
// and a newline, followed by the RFC 8785
// canonical form (dispatch.CanonicalJSON) of the dispatch's encoding
// without what gateways and other engines rewrite: "host", "token"
// (classic engines give each hop its own transaction id), "hops", "via",
// and "signature" itself; and with only the extension headers hdrs
// lists (all of the author's, sorted). Protocol, method, resource or
// endpoint, timestamp and body are covered. An engine on the way may add
// headers (the Node.js engine adds "referer"): VerifyAndTrim drops what
// the signature does not cover, so handlers never take an added header
// for the author's. Removing or changing a covered one voids it.
//
//	"signature": {"alg": "ed25519", "author": "…", "sig": "…", "n": "…", "to": "12D3KooW…", "hdrs": ["note"]}
type SignatureHeaderValue struct {
	Alg    string `json:"alg"`
	Author string `json:"author"`
	Sig    string `json:"sig"`
	// Nonce is 12 random bytes (unpadded base64url) the signature
	// covers: two dispatches alike in every signed part (the token is
	// not one) still get different signatures, so the replay guard,
	// which knows a dispatch by its signature, tells them apart.
	Nonce string `json:"n"`
	// To is the final recipient the signature is for; empty for none.
	To string `json:"to,omitempty"`
	// Headers are the extension headers the signature covers, sorted.
	Headers []string `json:"hdrs,omitempty"`
}

// MaxSignedHeaders bounds the extension headers one signature covers.
const MaxSignedHeaders = 64

// Sign signs d with key, an Ed25519 libp2p private key, for the last
// element of its host chain (see SignFor), and sets its "signature"
// header, replacing any there. Sign before sealing: the signature then
// travels inside the sealed part (see Seal).
//
// It fails when d has no canonical form (a body that is not I-JSON, see
// dispatch.Dispatch.Canonical).
func Sign(key crypto.PrivKey, d *dispatch.Dispatch) error {
	var to string
	if n := len(d.Host); n > 0 && !d.Host[n-1].IsTuple() {
		to = d.Host[n-1].Name
	}
	return SignFor(key, d, to)
}

// SignFor is Sign for the recipient to, however much of the host chain is
// left: a peer passing a dispatch on to its last hop signs it for that
// hop's element. An empty to names no recipient (answers, dispatches with
// no host).
func SignFor(key crypto.PrivKey, d *dispatch.Dispatch, to string) error {
	if key == nil || key.Type() != crypto.Ed25519 {
		return fmt.Errorf("identity: sign: want an Ed25519 key")
	}
	author, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return fmt.Errorf("identity: sign: %w", err)
	}
	hdrs := coverable(d.Extra)
	if len(hdrs) > MaxSignedHeaders {
		return fmt.Errorf("identity: sign: %d extension headers, at most %d are signed", len(hdrs), MaxSignedHeaders)
	}
	var nonceRaw [12]byte
	if _, err := rand.Read(nonceRaw[:]); err != nil {
		return fmt.Errorf("identity: sign: %w", err)
	}
	nonce := base64.RawURLEncoding.EncodeToString(nonceRaw[:])
	if len(to) > maxRecipient {
		return fmt.Errorf("identity: sign: recipient of %d bytes, at most %d", len(to), maxRecipient)
	}
	msg, err := signedMessage(d, nonce, to, hdrs)
	if err != nil {
		return fmt.Errorf("identity: sign: %w", err)
	}
	sig, err := key.Sign(msg)
	if err != nil {
		return fmt.Errorf("identity: sign: %w", err)
	}
	raw, err := json.Marshal(SignatureHeaderValue{
		Alg:     SignatureAlgorithm,
		Author:  author.String(),
		Sig:     base64.RawURLEncoding.EncodeToString(sig),
		Nonce:   nonce,
		To:      to,
		Headers: hdrs,
	})
	if err != nil {
		return fmt.Errorf("identity: sign: %w", err)
	}
	d.Extra.Set(SignatureHeader, raw)
	return nil
}

// Verify checks d's signature and returns its author. The author's public
// key comes from the peer id itself, so Verify needs no key store and
// works after any number of gateways and re-serialisations.
//
// Errors: ErrUnsigned when there is no "signature" header,
// ErrBadSignature for every other failure. Both map to 401. A verified
// dispatch may still be a replay; see ReplayGuard.
func Verify(d *dispatch.Dispatch) (peer.ID, error) {
	_, author, err := verify(d)
	return author, err
}

// verify is Verify, returning the parsed header too.
func verify(d *dispatch.Dispatch) (*SignatureHeaderValue, peer.ID, error) {
	h, author, sig, err := signatureParts(d)
	if err != nil {
		return nil, "", err
	}
	pub, err := author.ExtractPublicKey()
	if err != nil || pub.Type() != crypto.Ed25519 {
		// Hashed peer ids (RSA, ECDSA keys) would need a key lookup;
		// Verify stays self-contained, and peers here use Ed25519.
		return nil, "", fmt.Errorf("%w: author %s does not embed an Ed25519 public key", ErrBadSignature, author)
	}
	msg, err := signedMessage(d, h.Nonce, h.To, h.Headers)
	if err != nil {
		// %v: the cause's own code (400) must not win over 401.
		return nil, "", fmt.Errorf("%w: no canonical form: %v", ErrBadSignature, err)
	}
	ok, err := pub.Verify(msg, sig)
	if err != nil || !ok {
		return nil, "", fmt.Errorf("%w: does not verify for author %s", ErrBadSignature, author)
	}
	return h, author, nil
}

// Recipient returns the recipient d's signature names (SignFor), "" for
// none. It parses the header without verifying it: call it after Verify.
func Recipient(d *dispatch.Dispatch) string {
	raw, ok := d.Extra.Get(SignatureHeader)
	if !ok {
		return ""
	}
	h, err := ParseSignatureHeader(raw)
	if err != nil {
		return ""
	}
	return h.To
}

// VerifyAndTrim is Verify, and then drops from d the extension headers
// its signature does not cover (routing headers excepted), which some
// engine on the way added: a handler must not take them for the
// author's. It also returns the recipient the signature names (see
// Recipient).
func VerifyAndTrim(d *dispatch.Dispatch) (author peer.ID, to string, err error) {
	h, author, err := verify(d)
	if err != nil {
		return "", "", err
	}
	for _, x := range d.Extra { // Delete stores a new slice: this one stays whole
		if routingOrSignature(x.Name) {
			continue
		}
		if _, ok := slices.BinarySearch(h.Headers, x.Name); !ok {
			d.Extra.Delete(x.Name)
		}
	}
	return author, h.To, nil
}

// signatureParts parses d's signature header, and in it the author and
// the signature.
func signatureParts(d *dispatch.Dispatch) (*SignatureHeaderValue, peer.ID, []byte, error) {
	raw, ok := d.Extra.Get(SignatureHeader)
	if !ok {
		return nil, "", nil, ErrUnsigned
	}
	h, err := ParseSignatureHeader(raw)
	if err != nil {
		return nil, "", nil, err
	}
	author, err := peer.Decode(h.Author)
	if err != nil {
		return nil, "", nil, fmt.Errorf("%w: author is not a peer id", ErrBadSignature)
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(h.Sig)
	if err != nil || len(sig) != 64 {
		return nil, "", nil, fmt.Errorf("%w: sig is not 64 bytes of unpadded base64url", ErrBadSignature)
	}
	if n, err := base64.RawURLEncoding.Strict().DecodeString(h.Nonce); err != nil || len(n) != 12 {
		return nil, "", nil, fmt.Errorf("%w: n is not 12 bytes of unpadded base64url", ErrBadSignature)
	}
	return h, author, sig, nil
}

// maxRecipient bounds the "to" member: a multiaddr with a peer id fits.
const maxRecipient = 256

// ParseSignatureHeader parses a "signature" header's raw value, bounded
// by MaxSignatureHeader, without verifying anything. Errors wrap
// ErrBadSignature.
func ParseSignatureHeader(raw []byte) (*SignatureHeaderValue, error) {
	if len(raw) > MaxSignatureHeader {
		return nil, fmt.Errorf("%w: header is %d bytes, over the limit of %d", ErrBadSignature, len(raw), MaxSignatureHeader)
	}
	var h SignatureHeaderValue
	if err := decodeObject(raw, map[string]any{"alg": &h.Alg, "author": &h.Author, "sig": &h.Sig, "n": &h.Nonce, "to": &h.To, "hdrs": &h.Headers}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if len(h.Headers) > MaxSignedHeaders {
		return nil, fmt.Errorf("%w: %d signed headers, at most %d", ErrBadSignature, len(h.Headers), MaxSignedHeaders)
	}
	for i, name := range h.Headers {
		if routingOrSignature(name) || (i > 0 && name <= h.Headers[i-1]) {
			return nil, fmt.Errorf("%w: hdrs must list extension headers, sorted, once each", ErrBadSignature)
		}
	}
	if h.Alg != SignatureAlgorithm {
		return nil, fmt.Errorf("%w: algorithm %q, want %q", ErrBadSignature, clip(h.Alg), SignatureAlgorithm)
	}
	if h.Author == "" || h.Sig == "" {
		return nil, fmt.Errorf("%w: header needs author and sig", ErrBadSignature)
	}
	if len(h.To) > maxRecipient {
		return nil, fmt.Errorf("%w: recipient of %d bytes, at most %d", ErrBadSignature, len(h.To), maxRecipient)
	}
	return &h, nil
}

// signedMessage is SignatureDomain followed by the canonical form of d
// without what gateways rewrite — its host chain, its token (classic
// engines give each hop its own transaction id) and the routing headers —
// and with only the extension headers hdrs, which must all be there: an
// engine on the way may add headers of its own (the Node.js engine adds
// "referer"), but not remove the author's.
func signedMessage(d *dispatch.Dispatch, nonce, to string, hdrs []string) ([]byte, error) {
	s := *d
	s.Host = nil
	s.Token = nil
	s.Extra = nil
	if len(hdrs) > 0 {
		// hdrs are sorted and unique (coverable, or checked when parsed).
		s.Extra = make(dispatch.Headers, 0, len(hdrs))
		for _, name := range hdrs {
			v, ok := d.Extra.Get(name)
			if !ok {
				return nil, fmt.Errorf("signed header %q is missing", clip(name))
			}
			s.Extra = append(s.Extra, dispatch.Header{Name: name, Value: v})
		}
	}
	canon, err := s.Canonical()
	if err != nil {
		return nil, err
	}
	msg := make([]byte, 0, len(SignatureDomain)+len(nonce)+len(to)+2+len(canon))
	msg = append(msg, SignatureDomain...)
	msg = append(msg, nonce...)
	msg = append(msg, '\n')
	msg = append(msg, to...)
	msg = append(msg, '\n')
	return append(msg, canon...), nil
}

// coverable lists, sorted, the extension headers a signature covers: all
// but the routing headers and the signature itself.
func coverable(extra dispatch.Headers) []string {
	var out []string
	for _, h := range extra { // sorted already
		if !routingOrSignature(h.Name) {
			out = append(out, h.Name)
		}
	}
	return out
}

func routingOrSignature(name string) bool {
	switch name {
	case SignatureHeader, HopsHeader, ViaHeader, "host", "token":
		return true
	}
	return false
}

// clip shortens untrusted text quoted in an error.
func clip(s string) string {
	const max = 32
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
