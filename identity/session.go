package identity

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// Sealing sessions: what makes a sealed round trip cheap. Seal costs an
// HPKE encapsulation (an X25519 key agreement each way) and the recipient
// must verify a signature inside to know whom to answer; a session pays
// for that once per pair of peers. The emitter makes a random session key
// and hands it to the recipient inside a dispatch sealed with Seal and
// signed (SessionKeyHeader); both then seal to each other with that key
// and XChaCha20-Poly1305, whose 192-bit nonces are random, so neither end
// keeps a counter the other must agree with across a mesh that reorders,
// loses and restarts.
//
// What a session proves: only the two peers know its key, and the
// recipient learned it from a dispatch its emitter signed, so a dispatch
// that opens in a session comes from the other end, without a signature.
// Each direction has its own associated data, so nothing can be
// reflected back to its sender as the other's. What it gives up against
// Seal: the key lives as long as the session (an emitter replaces it
// after SessionLifetime), so a leak of one session key, or of the
// recipient's sealing key together with the first dispatch, exposes the
// session's dispatches; and gateways can tell which sealed dispatches
// belong to one session (they could tell as much from the pair of peers).

// SessionHeader holds a dispatch sealed in a session:
//
//	"sealed-session": {"sid": "<base64url>", "n": "<base64url>", "ct": "<base64url>"}
//
// sid is the 16-byte session id, n the 24-byte nonce, ct the ciphertext
// of the same plaintext as Seal's (the dispatch without host, hops and
// via), with associated data sessionDomain, the direction, the session id
// and the readable protocol and timestamp.
const SessionHeader = "sealed-session"

// SessionKeyHeader, inside a dispatch sealed with Seal, hands its
// recipient a session (Session.Secret). The dispatch must be signed: its
// author is the session's other end.
const SessionKeyHeader = "session-key"

// SessionLifetime is how long an emitter uses one session before it makes
// another; recipients keep sessions somewhat longer.
const SessionLifetime = 10 * time.Minute

const sessionDomain = "jstp-peer sealed session v1\n"

// Direction tells the two ends' dispatches apart in a session.
type Direction byte

const (
	// ToRecipient: from the peer that made the session.
	ToRecipient Direction = 'q'
	// ToEmitter: answers back to it.
	ToEmitter Direction = 'a'
)

const (
	sessionIDLen   = 16
	sessionKeyLen  = chacha20poly1305.KeySize
	maxSessionText = 64 // base64url of id and key is 64 characters
)

// Session is one end of a sealing session with Peer.
type Session struct {
	// Peer is the other end.
	Peer    peer.ID
	Created time.Time

	id     string // base64url
	secret string // base64url of id and key, for SessionKeyHeader
	aead   cipher.AEAD
}

// NewSession makes a session with other, with a random id and key.
func NewSession(other peer.ID) (*Session, error) {
	var raw [sessionIDLen + sessionKeyLen]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("identity: session: %w", err)
	}
	return sessionFrom(other, raw[:])
}

// ParseSession is the recipient's end of a session handed over in
// SessionKeyHeader by other, the verified author of the dispatch that
// carried it. Errors wrap ErrBadSeal.
func ParseSession(other peer.ID, secret string) (*Session, error) {
	if len(secret) > maxSessionText {
		return nil, fmt.Errorf("%w: session key of %d characters", ErrBadSeal, len(secret))
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(secret)
	if err != nil || len(raw) != sessionIDLen+sessionKeyLen {
		return nil, fmt.Errorf("%w: session key is not %d bytes of unpadded base64url", ErrBadSeal, sessionIDLen+sessionKeyLen)
	}
	return sessionFrom(other, raw)
}

func sessionFrom(other peer.ID, raw []byte) (*Session, error) {
	aead, err := chacha20poly1305.NewX(raw[sessionIDLen:])
	if err != nil {
		return nil, fmt.Errorf("identity: session: %w", err)
	}
	return &Session{
		Peer:    other,
		Created: time.Now(),
		id:      base64.RawURLEncoding.EncodeToString(raw[:sessionIDLen]),
		secret:  base64.RawURLEncoding.EncodeToString(raw),
		aead:    aead,
	}, nil
}

// ID is the session's id as dispatches carry it.
func (s *Session) ID() string { return s.id }

// Secret is what SessionKeyHeader carries: the id and the key. It must
// only ever travel sealed to the session's recipient.
func (s *Session) Secret() string { return s.secret }

// SealSession seals d in place in session s, in direction dir: the
// readable dispatch is Seal's, with a "sealed-session" header.
func SealSession(s *Session, dir Direction, d *dispatch.Dispatch) error {
	plain, err := plaintext(d)
	if err != nil {
		return err
	}

	var nonce [chacha20poly1305.NonceSizeX]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return fmt.Errorf("identity: seal: %w", err)
	}
	ct := s.aead.Seal(nil, nonce[:], plain, sessionAAD(s.id, dir, d))

	enc := base64.RawURLEncoding
	header := make([]byte, 0, 32+len(s.id)+enc.EncodedLen(len(nonce))+enc.EncodedLen(len(ct)))
	header = append(header, `{"sid":"`...)
	header = append(header, s.id...)
	header = append(header, `","n":"`...)
	header = enc.AppendEncode(header, nonce[:])
	header = append(header, `","ct":"`...)
	header = enc.AppendEncode(header, ct)
	header = append(header, `"}`...)
	toReadable(d, SessionHeader, header)
	return nil
}

// SessionHeaderValue is the parsed "sealed-session" header.
type SessionHeaderValue struct {
	SID   string `json:"sid"`
	Nonce string `json:"n"`
	CT    string `json:"ct"`
}

// ParseSessionHeader parses a "sealed-session" header, bounded by
// MaxSealedHeader, without decrypting anything; the session is found by
// its SID. Errors wrap ErrBadSeal.
func ParseSessionHeader(raw []byte) (*SessionHeaderValue, error) {
	if len(raw) > MaxSealedHeader {
		return nil, fmt.Errorf("%w: header is %d bytes, over the limit of %d", ErrBadSeal, len(raw), MaxSealedHeader)
	}
	h, ok := parseSessionCompact(raw)
	if !ok {
		// Another engine may have re-serialised it (member order, white
		// space, escapes): the strict general parser.
		if err := decodeObject(raw, map[string]any{"sid": &h.SID, "n": &h.Nonce, "ct": &h.CT}); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadSeal, err)
		}
	}
	if len(h.SID) != base64.RawURLEncoding.EncodedLen(sessionIDLen) || h.Nonce == "" || h.CT == "" {
		return nil, fmt.Errorf("%w: header needs sid, n and ct", ErrBadSeal)
	}
	return &h, nil
}

// parseSessionCompact reads the header exactly as SealSession writes it,
// {"sid":"…","n":"…","ct":"…"} with base64url values, without the JSON
// decoder: on the path of every sealed dispatch, the general parser cost
// a sixth of a sealed round trip. Anything else is left to that parser.
func parseSessionCompact(raw []byte) (SessionHeaderValue, bool) {
	var h SessionHeaderValue
	rest := raw
	for _, m := range []struct {
		prefix string
		into   *string
	}{{`{"sid":"`, &h.SID}, {`,"n":"`, &h.Nonce}, {`,"ct":"`, &h.CT}} {
		if len(rest) < len(m.prefix) || string(rest[:len(m.prefix)]) != m.prefix {
			return h, false
		}
		rest = rest[len(m.prefix):]
		end := 0
		for end < len(rest) && isBase64URL(rest[end]) {
			end++
		}
		if end == len(rest) || rest[end] != '"' {
			return h, false
		}
		*m.into = string(rest[:end])
		rest = rest[end+1:]
	}
	return h, string(rest) == "}"
}

func isBase64URL(c byte) bool { return base64URLChars[c] }

var base64URLChars = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") {
		t[c] = true
	}
	return t
}()

// OpenSession opens d, sealed in session s in direction dir, and restores
// it in place as Open does. h is d's parsed header (ParseSessionHeader),
// whose SID the caller used to find s. Errors wrap ErrBadSeal; on error d
// is unchanged.
func OpenSession(s *Session, dir Direction, h *SessionHeaderValue, d *dispatch.Dispatch) error {
	if h.SID != s.id {
		return fmt.Errorf("%w: sealed in another session", ErrBadSeal)
	}
	nonce, err := base64.RawURLEncoding.Strict().DecodeString(h.Nonce)
	if err != nil || len(nonce) != chacha20poly1305.NonceSizeX {
		return fmt.Errorf("%w: n is not %d bytes of unpadded base64url", ErrBadSeal, chacha20poly1305.NonceSizeX)
	}
	ct, err := base64.RawURLEncoding.Strict().DecodeString(h.CT)
	if err != nil {
		return fmt.Errorf("%w: ct is not unpadded base64url", ErrBadSeal)
	}
	plain, err := s.aead.Open(nil, nonce, ct, sessionAAD(s.id, dir, d))
	if err != nil {
		return fmt.Errorf("%w: does not open in its session (altered, moved to another dispatch, or sent back)", ErrBadSeal)
	}
	return restore(d, plain)
}

func sessionAAD(id string, dir Direction, d *dispatch.Dispatch) []byte {
	aad := make([]byte, 0, 128)
	aad = append(aad, sessionDomain...)
	aad = append(aad, byte(dir))
	aad = append(aad, id...)
	return (&dispatch.Dispatch{Protocol: d.Protocol, Timestamp: d.Timestamp}).AppendJSON(aad)
}
