package identity

import (
	"crypto/hpke"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// SealDomain starts the HPKE info of every sealed dispatch; the
// recipient's peer id (its binary multihash) follows it. A ciphertext
// made for one peer, or for another use of HPKE with the same key,
// cannot be opened as a dispatch for another.
const SealDomain = "jstp-peer sealed dispatch v1\n"

// SealedMethod, with the resource ["jstp-peer", "sealed"], is what a
// sealed dispatch shows in place of its method and resource. The decoder
// requires both on every regular dispatch, and gateways must keep
// validating what they forward, so a sealed dispatch is a valid POST
// rather than a new method that classic engines and older peers would
// answer with 405. The resource is namespaced to stay clear of
// applications' resources; a peer that does not open sealed dispatches
// processes it as an ordinary POST that (with no token) wants no answer.
const SealedMethod = dispatch.POST

var sealedResource = [...]string{"jstp-peer", "sealed"}

// MaxSealedHeader is a backstop bound on a "sealed" header's raw value
// before it is parsed; the decoder's dispatch size limit (1 MiB by
// default) is the real one, and caps what can be sealed at about 3/4 of
// it because of base64.
const MaxSealedHeader = 16 << 20

// The HPKE suite besides the KEM: fixed, so that neither side has to
// negotiate and a header cannot ask for a weaker one. ChaCha20-Poly1305
// is constant-time without AES hardware.
var (
	sealKDF  = hpke.HKDFSHA256()
	sealAEAD = hpke.ChaCha20Poly1305()
)

// SealedHeaderValue is the "sealed" header:
//
//	"sealed": {"kem": 32, "enc": "<base64url>", "ct": "<base64url>"}
//
// kem is the HPKE KEM id of the recipient's sealing key (see KeyRecord);
// the rest of the suite is fixed: HKDF-SHA256 and ChaCha20-Poly1305, base
// mode (RFC 9180). enc is the encapsulated key and ct the ciphertext,
// both unpadded base64url. All three are required, no other member is
// allowed.
//
// HPKE inputs:
//
//   - info: SealDomain followed by the recipient's peer id in binary
//     (its multihash bytes);
//   - aad: the JSON text {"protocol":[…],"timestamp":N} of the readable
//     dispatch, as dispatch.Dispatch.AppendJSON writes those two headers
//     (no white space; strings escaped as that encoder does);
//   - plaintext: the original dispatch as AppendJSON writes it, without
//     "host", "hops" and "via". It keeps protocol and timestamp (Open
//     checks they equal the readable ones), method, resource or endpoint,
//     token, body and every other header, the "signature" header
//     included.
//
// The readable dispatch is
//
//	{"protocol":…, "method":"POST", "resource":["jstp-peer","sealed"],
//	 "timestamp":…, "host":…, "hops":…, "via":…, "sealed":{…}}
//
// with host, hops and via only when the original had them: what gateways
// need to route, and nothing that names the author, the transaction or
// the endpoint.
type SealedHeaderValue struct {
	KEM uint16 `json:"kem"`
	Enc string `json:"enc"`
	CT  string `json:"ct"`
}

// IsSealed reports whether d carries a "sealed" or a "sealed-session"
// header.
func IsSealed(d *dispatch.Dispatch) bool {
	return d.Extra.Has(SealedHeader) || d.Extra.Has(SessionHeader)
}

// Seal encrypts d in place to recipient, whose sealing key rec publishes
// (rec comes from OpenKeyRecord for that same peer). Method, resource,
// endpoint, token, body and every header other than the routing ones
// move into the "sealed" header (format at SealedHeaderValue); protocol,
// timestamp, host, hops and via stay readable.
//
// Each call encapsulates a fresh HPKE key. That set-up is most of the
// cost (with X25519 about nine tenths of Seal's ~0.1 ms and of Open's
// ~0.06 ms), yet reusing a per-pair key is not worth its risks here: a
// counter nonce needs both ends to agree on message order across a mesh
// that reorders, loses and restarts (a reused nonce breaks
// ChaCha20-Poly1305 outright), and any shared key would link a pair's
// dispatches for gateways and expose all of them if it leaked. Fresh
// encapsulation keeps every sealed dispatch independent and stateless.
//
// Sign first, seal second: the signature travels inside, so gateways
// learn neither who wrote a dispatch nor who it is for beyond the next
// host, and the recipient verifies it after Open as for any dispatch. A
// signature outside would give gateways nothing they could check (they
// cannot see what it signs), only the author's name. Note that the
// signature binds the author to the content, not to the recipient: a
// recipient can re-seal what it received for a third peer.
// Applications that need "meant for me" put the recipient in the body.
//
// The emitter's engine must record a transaction before sealing: the
// readable dispatch carries no token, so no gateway can answer it.
// Invalid dispatches, exceptions and dispatches already sealed are
// refused.
func Seal(rec *KeyRecord, recipient peer.ID, d *dispatch.Dispatch) error {
	if rec == nil || rec.Peer == "" || rec.Peer != recipient {
		return fmt.Errorf("identity: seal: the key record is not %s's (use OpenKeyRecord)", recipient)
	}
	plain, err := plaintext(d)
	if err != nil {
		return err
	}
	pub := rec.pub
	if pub == nil {
		kem, err := kemByID(rec.KEM)
		if err != nil {
			return fmt.Errorf("identity: seal: %w", err)
		}
		if pub, err = kem.NewPublicKey(rec.PublicKey); err != nil {
			return fmt.Errorf("identity: seal: %w", err)
		}
	}
	enc, sender, err := hpke.NewSender(pub, sealKDF, sealAEAD, sealInfo(recipient))
	if err != nil {
		return fmt.Errorf("identity: seal: %w", err)
	}
	ct, err := sender.Seal(sealAAD(d), plain)
	if err != nil {
		return fmt.Errorf("identity: seal: %w", err)
	}
	header := make([]byte, 0, 40+base64.RawURLEncoding.EncodedLen(len(enc))+base64.RawURLEncoding.EncodedLen(len(ct)))
	header = append(header, `{"kem":`...)
	header = strconv.AppendUint(header, uint64(pub.KEM().ID()), 10)
	header = append(header, `,"enc":"`...)
	header = base64.RawURLEncoding.AppendEncode(header, enc)
	header = append(header, `","ct":"`...)
	header = base64.RawURLEncoding.AppendEncode(header, ct)
	header = append(header, `"}`...)
	toReadable(d, SealedHeader, header)
	return nil
}

// plaintext checks that d may be sealed and returns what is sealed of
// it: the dispatch without host, hops and via.
func plaintext(d *dispatch.Dispatch) ([]byte, error) {
	if d.Exception != nil {
		return nil, errors.New("identity: seal: exception dispatches are not sealed")
	}
	if IsSealed(d) {
		return nil, errors.New("identity: seal: dispatch is already sealed")
	}
	// The recipient validates what it opens; an invalid dispatch would
	// travel the whole way only to be refused there.
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("identity: seal: %w", err)
	}
	inner := *d
	inner.Host = nil
	inner.Extra.Delete(HopsHeader)
	inner.Extra.Delete(ViaHeader)
	return inner.AppendJSON(make([]byte, 0, 512)), nil
}

// toReadable turns d, sealed, into what gateways see: the sealed method
// and resource, the routing headers, and the sealed part under name.
func toReadable(d *dispatch.Dispatch, name string, sealed []byte) {
	extra := dispatch.Headers{{Name: name, Value: sealed}}
	for _, h := range []string{HopsHeader, ViaHeader} {
		if v, ok := d.Extra.Get(h); ok {
			extra.Set(h, v)
		}
	}
	d.Method = SealedMethod
	d.Resource = []any{sealedResource[0], sealedResource[1]}
	d.Endpoint, d.Token, d.Body, d.Extra = nil, nil, nil, extra
}

// Open decrypts a dispatch sealed to self with sk and restores it in
// place: the original dispatch, with the host chain, hops and via of the
// one that arrived (gateways may have changed them). Every other readable
// header is dropped, since nothing vouches for it. The restored dispatch
// is validated like a decoded one.
//
// Errors wrap ErrBadSeal (400): no or a malformed "sealed" header, a KEM
// other than sk's, a ciphertext sealed to another peer or key or altered,
// a readable protocol or timestamp other than the sealed ones (a payload
// moved to another dispatch), or a plaintext that is not a valid
// dispatch. On error d is unchanged.
func Open(sk *SealingKey, self peer.ID, d *dispatch.Dispatch) error {
	raw, ok := d.Extra.Get(SealedHeader)
	if !ok {
		return fmt.Errorf("%w: no %q header", ErrBadSeal, SealedHeader)
	}
	h, err := ParseSealedHeader(raw)
	if err != nil {
		return err
	}
	if h.KEM != sk.KEM() {
		return fmt.Errorf("%w: sealed with KEM %#04x, this peer's key uses %#04x", ErrBadSeal, h.KEM, sk.KEM())
	}
	enc, err := base64.RawURLEncoding.Strict().DecodeString(h.Enc)
	if err != nil {
		return fmt.Errorf("%w: enc is not unpadded base64url", ErrBadSeal)
	}
	ct, err := base64.RawURLEncoding.Strict().DecodeString(h.CT)
	if err != nil {
		return fmt.Errorf("%w: ct is not unpadded base64url", ErrBadSeal)
	}
	r, err := hpke.NewRecipient(enc, sk.priv, sealKDF, sealAEAD, sealInfo(self))
	if err != nil {
		return fmt.Errorf("%w: bad encapsulated key: %w", ErrBadSeal, err)
	}
	plain, err := r.Open(sealAAD(d), ct)
	if err != nil {
		// One message for every cause: which one it was would help only
		// an attacker probing the key.
		return fmt.Errorf("%w: does not open (sealed to another peer or key, moved to another dispatch, or altered)", ErrBadSeal)
	}
	return restore(d, plain)
}

// restore replaces the readable dispatch d with the plaintext it carried,
// checked, keeping d's routing headers.
func restore(d *dispatch.Dispatch, plain []byte) error {
	// The ciphertext came inside a dispatch that passed the size limit,
	// so the plaintext, shorter, is held to that and no more.
	inner, err := dispatch.Decoder{MaxSize: len(plain) + 1}.Decode(plain)
	if err != nil {
		// %v: one code for every seal failure, not the inner one's.
		return fmt.Errorf("%w: sealed dispatch: %v", ErrBadSeal, err)
	}
	switch {
	case inner.Host != nil:
		return fmt.Errorf("%w: sealed dispatch has a host chain", ErrBadSeal)
	case IsSealed(inner):
		return fmt.Errorf("%w: sealed dispatch is sealed again", ErrBadSeal)
	case inner.Extra.Has(HopsHeader) || inner.Extra.Has(ViaHeader):
		return fmt.Errorf("%w: sealed dispatch has routing headers", ErrBadSeal)
	case !slices.Equal(inner.Protocol, d.Protocol) || inner.Timestamp != d.Timestamp:
		// The AAD already binds these; this guards against a sender
		// that sealed one thing and showed another.
		return fmt.Errorf("%w: sealed protocol or timestamp differs from the readable one", ErrBadSeal)
	}
	inner.Host = d.Host
	for _, name := range []string{HopsHeader, ViaHeader} {
		if v, ok := d.Extra.Get(name); ok {
			inner.Extra.Set(name, v)
		}
	}
	*d = *inner
	return nil
}

// ParseSealedHeader parses a "sealed" header's raw value, bounded by
// MaxSealedHeader, without decrypting anything. Errors wrap ErrBadSeal.
func ParseSealedHeader(raw []byte) (*SealedHeaderValue, error) {
	if len(raw) > MaxSealedHeader {
		return nil, fmt.Errorf("%w: header is %d bytes, over the limit of %d", ErrBadSeal, len(raw), MaxSealedHeader)
	}
	var h SealedHeaderValue
	if err := decodeObject(raw, map[string]any{"kem": &h.KEM, "enc": &h.Enc, "ct": &h.CT}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSeal, err)
	}
	if _, err := kemByID(h.KEM); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSeal, err)
	}
	if h.Enc == "" || h.CT == "" {
		return nil, fmt.Errorf("%w: header needs enc and ct", ErrBadSeal)
	}
	return &h, nil
}

func sealInfo(recipient peer.ID) []byte {
	return append([]byte(SealDomain), recipient...)
}

// sealAAD is the readable part the ciphertext is bound to: protocol and
// timestamp, which gateways never change. Host, hops and via are left
// out because gateways do change them.
func sealAAD(d *dispatch.Dispatch) []byte {
	return (&dispatch.Dispatch{Protocol: d.Protocol, Timestamp: d.Timestamp}).AppendJSON(make([]byte, 0, 64))
}
