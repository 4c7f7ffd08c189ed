package identity

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/crypto/argon2"
)

// encryptedKeyMagic starts an encrypted identity key file. A libp2p
// protobuf key starts with the byte 0x08, so the two never mix up.
const encryptedKeyMagic = "jstp-peer encrypted key v1\n"

// argonParams are Argon2id's costs, stored in the file so that they can
// grow without breaking old files.
type argonParams struct {
	time    uint32 // passes
	memory  uint32 // KiB
	threads uint8
}

// argonDefault is RFC 9106's second recommended setting (64 MiB, 3
// passes, 4 lanes): about a tenth of a second on a laptop, paid once at
// start-up. Tests lower it.
var argonDefault = argonParams{time: 3, memory: 64 << 10, threads: 4}

// Bounds on the costs read from a file, so an altered file cannot make
// loading take gigabytes or minutes before the passphrase is even
// checked.
const (
	argonMaxTime   = 64
	argonMaxMemory = 1 << 20 // KiB: 1 GiB
	saltSize       = 16
	headerSize     = len(encryptedKeyMagic) + 4 + 4 + 1 + saltSize
)

// encryptKey returns the encrypted key file for the libp2p-encoded key
// plain. The layout, all integers big-endian:
//
//	"jstp-peer encrypted key v1\n"
//	uint32 Argon2id time | uint32 Argon2id memory (KiB) | uint8 Argon2id threads
//	16-byte salt
//	12-byte nonce
//	AES-256-GCM ciphertext and tag of plain
//
// The AES key is Argon2id(passphrase, salt, time, memory, threads, 32
// bytes); everything before the nonce is the GCM additional data, so
// lowering the costs in the file breaks decryption instead of weakening
// it.
func encryptKey(plain, passphrase []byte, p argonParams) ([]byte, error) {
	out := make([]byte, 0, headerSize+12+len(plain)+16)
	out = append(out, encryptedKeyMagic...)
	out = binary.BigEndian.AppendUint32(out, p.time)
	out = binary.BigEndian.AppendUint32(out, p.memory)
	out = append(out, p.threads)
	salt := make([]byte, saltSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("identity: encrypt key: %w", err)
	}
	out = append(out, salt...)
	aead, err := keyCipher(passphrase, salt, p)
	if err != nil {
		return nil, err
	}
	header := append([]byte(nil), out...) // GCM wants additional data apart from dst
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("identity: encrypt key: %w", err)
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plain, header), nil
}

// decryptKey reverses encryptKey. A wrong passphrase and an altered file
// both fail GCM's check, reported as ErrWrongPassphrase.
func decryptKey(data, passphrase []byte) ([]byte, error) {
	if len(data) < headerSize+12+16 {
		return nil, errors.New("encrypted key is truncated")
	}
	rest := data[len(encryptedKeyMagic):]
	p := argonParams{
		time:    binary.BigEndian.Uint32(rest[0:4]),
		memory:  binary.BigEndian.Uint32(rest[4:8]),
		threads: rest[8],
	}
	if p.time < 1 || p.time > argonMaxTime || p.threads < 1 || p.memory < 8*uint32(p.threads) || p.memory > argonMaxMemory {
		return nil, fmt.Errorf("encrypted key has unsupported Argon2id costs (time %d, memory %d KiB, threads %d)", p.time, p.memory, p.threads)
	}
	salt := rest[9 : 9+saltSize]
	aead, err := keyCipher(passphrase, salt, p)
	if err != nil {
		return nil, err
	}
	header := data[:headerSize]
	nonce := data[headerSize : headerSize+aead.NonceSize()]
	plain, err := aead.Open(nil, nonce, data[headerSize+aead.NonceSize():], header)
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	return plain, nil
}

func keyCipher(passphrase, salt []byte, p argonParams) (cipher.AEAD, error) {
	k := argon2.IDKey(passphrase, salt, p.time, p.memory, p.threads, 32)
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("identity: key cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

// SetPassphrase changes how dataDir/identity.key is protected at rest,
// keeping the key (and so the peer id): oldPassphrase opens it (empty:
// it is stored in clear), newPassphrase encrypts it (empty: store it in
// clear). The file is replaced atomically and keeps mode 0600.
//
// The file format is described at encryptKey: Argon2id (RFC 9106, 64 MiB,
// 3 passes, 4 lanes, 16-byte random salt) derives an AES-256-GCM key;
// the costs and salt are stored in the file, authenticated with the key.
func SetPassphrase(dataDir string, oldPassphrase, newPassphrase []byte) error {
	if dataDir == "" {
		return errors.New("identity: empty data directory")
	}
	path := filepath.Join(dataDir, KeyFileName)
	key, err := load(path, oldPassphrase)
	if err != nil {
		return err
	}
	data, err := encodeIdentityKey(key, newPassphrase)
	if err != nil {
		return err
	}
	return replaceFile(path, data)
}
