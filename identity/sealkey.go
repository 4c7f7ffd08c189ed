package identity

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
)

// SealingKeyFileName is the sealing key's file in the data directory,
// next to identity.key and kept the same way (mode 0600, refused when
// group or others can access it).
const SealingKeyFileName = "sealing.key"

// sealingKeyMagic starts a sealing key file. The layout:
//
//	"jstp-peer sealing key v1\n" | uint16 big-endian HPKE KEM id | private key
//
// where the private key is the KEM's SerializePrivateKey output (RFC 9180
// §7.1.2; the 32-byte seed for X-Wing).
const sealingKeyMagic = "jstp-peer sealing key v1\n"

// KEM ids accepted in sealing keys, key records and sealed headers.
const (
	// KEMX25519 is DHKEM(X25519, HKDF-SHA256), RFC 9180: the default.
	KEMX25519 uint16 = 0x0020
	// KEMMLKEM768X25519 is the hybrid ML-KEM-768 + X25519 KEM ("X-Wing",
	// draft-ietf-hpke-pq): confidential even against a future quantum
	// computer, at 1216-byte public keys and 1120-byte encapsulations.
	KEMMLKEM768X25519 uint16 = 0x647a
)

// kemByID returns a KEM this package accepts.
func kemByID(id uint16) (hpke.KEM, error) {
	switch id {
	case KEMX25519:
		return hpke.DHKEM(ecdh.X25519()), nil
	case KEMMLKEM768X25519:
		return hpke.MLKEM768X25519(), nil
	}
	return nil, fmt.Errorf("unsupported KEM %#04x", id)
}

// SealingKey is a peer's HPKE key pair for dispatches sealed to it. It is
// separate from the Ed25519 identity key on purpose: converting the
// signing key to X25519 would tie two uses to one secret, rule out
// post-quantum KEMs, and forbid rotating one without the other. The
// identity key vouches for it instead (NewKeyRecord).
type SealingKey struct {
	priv hpke.PrivateKey
}

// SealingOption configures a sealing key.
type SealingOption func(*sealingConfig)

type sealingConfig struct {
	kem uint16 // 0: any existing one, X25519 when creating
}

// WithKEM chooses the KEM of a new sealing key: KEMX25519 (the default)
// or KEMMLKEM768X25519. LoadOrCreateSealingKey refuses an existing key of
// another KEM rather than silently using it.
func WithKEM(id uint16) SealingOption {
	return func(c *sealingConfig) { c.kem = id }
}

// GenerateSealingKey returns a new sealing key, not stored anywhere.
// Default KEM: X25519.
func GenerateSealingKey(opts ...SealingOption) (*SealingKey, error) {
	var c sealingConfig
	for _, o := range opts {
		o(&c)
	}
	if c.kem == 0 {
		c.kem = KEMX25519
	}
	kem, err := kemByID(c.kem)
	if err != nil {
		return nil, fmt.Errorf("identity: sealing key: %w", err)
	}
	priv, err := kem.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("identity: generate sealing key: %w", err)
	}
	return &SealingKey{priv: priv}, nil
}

// KEM returns the key's HPKE KEM id.
func (k *SealingKey) KEM() uint16 { return k.priv.KEM().ID() }

// PublicKey returns the serialised public key (RFC 9180
// SerializePublicKey), as published in the key record.
func (k *SealingKey) PublicKey() []byte { return k.priv.PublicKey().Bytes() }

func (k *SealingKey) marshal() ([]byte, error) {
	sk, err := k.priv.Bytes()
	if err != nil {
		return nil, fmt.Errorf("identity: encode sealing key: %w", err)
	}
	out := make([]byte, 0, len(sealingKeyMagic)+2+len(sk))
	out = append(out, sealingKeyMagic...)
	out = binary.BigEndian.AppendUint16(out, k.KEM())
	return append(out, sk...), nil
}

func parseSealingKey(path string, data []byte) (*SealingKey, error) {
	corrupt := func(why string) error {
		return fmt.Errorf("identity: sealing key file %s is corrupt (%s); move it aside or RotateSealingKey to create a new one", path, why)
	}
	if !bytes.HasPrefix(data, []byte(sealingKeyMagic)) || len(data) < len(sealingKeyMagic)+2 {
		return nil, corrupt("not a sealing key file")
	}
	rest := data[len(sealingKeyMagic):]
	kem, err := kemByID(binary.BigEndian.Uint16(rest))
	if err != nil {
		return nil, corrupt(err.Error())
	}
	priv, err := kem.NewPrivateKey(rest[2:])
	if err != nil {
		return nil, corrupt(err.Error())
	}
	return &SealingKey{priv: priv}, nil
}

// LoadOrCreateSealingKey returns the sealing key from
// dataDir/sealing.key, creating it the first time (KEM X25519 unless
// WithKEM says otherwise). Files are kept exactly like identity.key:
// directory 0700, file 0600 written atomically, refused when group or
// others may access it, first creator wins a race.
func LoadOrCreateSealingKey(dataDir string, opts ...SealingOption) (*SealingKey, error) {
	if dataDir == "" {
		return nil, errors.New("identity: empty data directory")
	}
	var c sealingConfig
	for _, o := range opts {
		o(&c)
	}
	path := filepath.Join(dataDir, SealingKeyFileName)
	k, err := loadSealingKey(path, c.kem)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: create data directory: %w", err)
	}
	k, err = GenerateSealingKey(opts...)
	if err != nil {
		return nil, err
	}
	data, err := k.marshal()
	if err != nil {
		return nil, err
	}
	switch err := installNew(path, data); {
	case errors.Is(err, fs.ErrExist):
		return loadSealingKey(path, c.kem)
	case err != nil:
		return nil, err
	}
	return k, nil
}

func loadSealingKey(path string, want uint16) (*SealingKey, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	k, err := parseSealingKey(path, data)
	if err != nil {
		return nil, err
	}
	if want != 0 && k.KEM() != want {
		return nil, fmt.Errorf("identity: sealing key file %s uses KEM %#04x, not the %#04x asked for; RotateSealingKey replaces it", path, k.KEM(), want)
	}
	return k, nil
}

// RotateSealingKey replaces dataDir/sealing.key with a new key (options as
// for LoadOrCreateSealingKey), keeping the old one as
// sealing.key.old-<UTC time> so dispatches already sealed to it can still
// be opened by hand. Publish a new key record afterwards.
func RotateSealingKey(dataDir string, opts ...SealingOption) (*SealingKey, error) {
	if dataDir == "" {
		return nil, errors.New("identity: empty data directory")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: create data directory: %w", err)
	}
	k, err := GenerateSealingKey(opts...)
	if err != nil {
		return nil, err
	}
	data, err := k.marshal()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dataDir, SealingKeyFileName)
	if err := keepAside(path, time.Now()); err != nil {
		return nil, err
	}
	if err := replaceFile(path, data); err != nil {
		return nil, err
	}
	return k, nil
}

// Key records: how a peer publishes its sealing key.
const (
	// KeyRecordDomain is the libp2p signed-envelope domain of key
	// records, so the identity key's signature on one cannot pass for a
	// peer record or anything else it signs.
	KeyRecordDomain = "jstp-peer-sealing-key"
	// KeyRecordPayloadType is the envelope's payload type. It is checked
	// on opening: a validly signed envelope of another type is refused.
	KeyRecordPayloadType = "/jstp-peer/sealing-key/1"
	// MaxKeyRecordSize bounds an envelope before it is parsed. An X-Wing
	// record is about 1.8 KiB, an X25519 one about 200 bytes.
	MaxKeyRecordSize = 8 << 10
)

// KeyRecord is a peer's sealing public key as its identity key vouches
// for it. It travels in a libp2p signed envelope (core/record) with
// domain KeyRecordDomain and payload type KeyRecordPayloadType, signed by
// the identity key; the envelope carries that key, so the signer's peer
// id needs no lookup. The payload is one JSON object:
//
//	{"kem": 32, "key": "<base64url>", "issued": 1700000000000}
//
// kem is the HPKE KEM id (32 = 0x0020 X25519, 25722 = 0x647a
// X-Wing), key the serialised public key in unpadded base64url, issued
// the Unix time in milliseconds it was signed. All three are required,
// no other member is allowed. Of two valid records from one peer, the
// one issued later is current.
//
// KeyRecord implements record.Record; it is not registered with
// record.RegisterType, since OpenKeyRecord names its type explicitly.
type KeyRecord struct {
	KEM       uint16
	PublicKey []byte
	IssuedAt  time.Time
	// Peer is the signer, set by OpenKeyRecord; it is not part of the
	// payload.
	Peer peer.ID

	pub hpke.PublicKey
}

var _ record.Record = (*KeyRecord)(nil)

// Domain implements record.Record.
func (*KeyRecord) Domain() string { return KeyRecordDomain }

// Codec implements record.Record.
func (*KeyRecord) Codec() []byte { return []byte(KeyRecordPayloadType) }

// MarshalRecord implements record.Record.
func (r *KeyRecord) MarshalRecord() ([]byte, error) {
	out := []byte(`{"kem":`)
	out = strconv.AppendUint(out, uint64(r.KEM), 10)
	out = append(out, `,"key":"`...)
	out = base64.RawURLEncoding.AppendEncode(out, r.PublicKey)
	out = append(out, `","issued":`...)
	out = strconv.AppendInt(out, r.IssuedAt.UnixMilli(), 10)
	return append(out, '}'), nil
}

// UnmarshalRecord implements record.Record. It checks the payload fully:
// a supported KEM and a public key that KEM accepts. Errors wrap
// ErrBadKeyRecord.
func (r *KeyRecord) UnmarshalRecord(data []byte) error {
	if len(data) > MaxKeyRecordSize {
		return fmt.Errorf("%w: payload is %d bytes", ErrBadKeyRecord, len(data))
	}
	var key string
	var issued int64
	if err := decodeObject(data, map[string]any{"kem": &r.KEM, "key": &key, "issued": &issued}); err != nil {
		return fmt.Errorf("%w: %w", ErrBadKeyRecord, err)
	}
	if issued <= 0 {
		return fmt.Errorf("%w: issued must be a positive Unix time in milliseconds", ErrBadKeyRecord)
	}
	kem, err := kemByID(r.KEM)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadKeyRecord, err)
	}
	pk, err := base64.RawURLEncoding.Strict().DecodeString(key)
	if err != nil {
		return fmt.Errorf("%w: key is not unpadded base64url", ErrBadKeyRecord)
	}
	pub, err := kem.NewPublicKey(pk)
	if err != nil {
		return fmt.Errorf("%w: key: %w", ErrBadKeyRecord, err)
	}
	r.PublicKey, r.IssuedAt, r.pub = pk, time.UnixMilli(issued), pub
	return nil
}

// NewKeyRecord returns the signed envelope (libp2p's protobuf Envelope)
// publishing sk's public key, signed by identityKey and stamped now.
func NewKeyRecord(identityKey crypto.PrivKey, sk *SealingKey) ([]byte, error) {
	if identityKey == nil || sk == nil {
		return nil, errors.New("identity: key record: missing key")
	}
	rec := &KeyRecord{KEM: sk.KEM(), PublicKey: sk.PublicKey(), IssuedAt: time.Now()}
	env, err := record.Seal(rec, identityKey)
	if err != nil {
		return nil, fmt.Errorf("identity: key record: %w", err)
	}
	out, err := env.Marshal()
	if err != nil {
		return nil, fmt.Errorf("identity: key record: %w", err)
	}
	return out, nil
}

// OpenKeyRecord checks a signed key record envelope from expected and
// returns its record, with Peer set. It fails, wrapping ErrBadKeyRecord
// (401), when the envelope is over MaxKeyRecordSize, does not parse, is
// not signed by expected's key in KeyRecordDomain, is of another payload
// type, or carries a payload UnmarshalRecord refuses.
func OpenKeyRecord(envelope []byte, expected peer.ID) (*KeyRecord, error) {
	if len(envelope) > MaxKeyRecordSize {
		return nil, fmt.Errorf("%w: %d bytes, over the limit of %d", ErrBadKeyRecord, len(envelope), MaxKeyRecordSize)
	}
	var rec KeyRecord
	env, err := record.ConsumeTypedEnvelope(envelope, &rec)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKeyRecord, err)
	}
	// ConsumeTypedEnvelope checks the domain through the signature but not
	// the payload type.
	if string(env.PayloadType) != KeyRecordPayloadType {
		return nil, fmt.Errorf("%w: payload type %q", ErrBadKeyRecord, clip(string(env.PayloadType)))
	}
	signer, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: signer: %w", ErrBadKeyRecord, err)
	}
	if signer != expected {
		return nil, fmt.Errorf("%w: signed by %s, not %s", ErrBadKeyRecord, signer, expected)
	}
	rec.Peer = signer
	return &rec, nil
}
