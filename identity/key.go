package identity

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// KeyFileName is the name of the key file inside the data directory. It
// holds the private key in libp2p's protobuf encoding
// (crypto.MarshalPrivateKey), the format other libp2p tools read, or that
// encoding encrypted under a passphrase (see WithPassphrase).
const KeyFileName = "identity.key"

// AppDirName is the directory created under the user's configuration
// directory by DefaultDataDir.
const AppDirName = "jstp-peer"

// maxKeyFile bounds every key file read here. A marshalled Ed25519 key is
// 68 bytes, an encrypted one about 150, a sealing key under 100; anything
// far larger is not a key file, and reading it whole would be pointless.
const maxKeyFile = 16 << 10

// DefaultDataDir returns the default data directory:
// os.UserConfigDir()/jstp-peer (for example ~/.config/jstp-peer on Linux,
// ~/Library/Application Support/jstp-peer on macOS, %AppData%\jstp-peer on
// Windows). It does not create it; LoadOrCreate does.
func DefaultDataDir() (string, error) {
	base, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("identity: no user config directory, pass a data directory explicitly: %w", err)
	}
	return filepath.Join(base, AppDirName), nil
}

// KeyOption configures how the identity key is stored.
type KeyOption func(*keyConfig)

type keyConfig struct {
	passphrase []byte
}

// WithPassphrase keeps the identity key encrypted at rest under
// passphrase (see SetPassphrase for the file format). A new key is
// written encrypted; an encrypted key needs the passphrase to load
// (ErrPassphraseRequired without it, ErrWrongPassphrase with another);
// a key stored in clear is refused with ErrNotEncrypted rather than
// silently used. An empty passphrase means none.
func WithPassphrase(passphrase []byte) KeyOption {
	return func(c *keyConfig) { c.passphrase = passphrase }
}

func keyOptions(opts []KeyOption) keyConfig {
	var c keyConfig
	for _, o := range opts {
		o(&c)
	}
	return c
}

// LoadOrCreate returns the peer's private key from dataDir/identity.key,
// creating an Ed25519 key there the first time. With no options the key
// is stored in clear, protected by file permissions only.
//
// The directory is created with mode 0700 and the file with mode 0600. On
// Unix-like systems an existing key file that grants any permission to
// group or others is refused rather than used, because a key others can
// read is a key others can impersonate; the error says how to fix it.
// Windows and Plan 9 have no such permission bits and skip the check.
//
// Creation is atomic: the key is written to a temporary file in the same
// directory, synced, then hard-linked into place, so a crash never leaves a
// half-written key, and when two processes race to create the key both end
// up with the one that won (the loser loads it instead of overwriting it).
//
// Only Ed25519 keys are accepted: signing and sealing build on them.
func LoadOrCreate(dataDir string, opts ...KeyOption) (crypto.PrivKey, error) {
	if dataDir == "" {
		return nil, errors.New("identity: empty data directory")
	}
	cfg := keyOptions(opts)
	path := filepath.Join(dataDir, KeyFileName)
	key, err := load(path, cfg.passphrase)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: create data directory: %w", err)
	}
	return create(path, cfg.passphrase)
}

// Rotate gives the peer a new identity: the key file is kept as
// identity.key.old-<UTC time, 20060102T150405Z> (with -2, -3… appended
// when that name is taken) and a new key takes its place, stored as opts
// say. It returns the new key. With no key yet, Rotate creates one.
//
// The old key stays under its new name so that what it signed or
// published can still be explained; delete it when no longer needed.
// The peer id changes, so the sealing key record must be signed again
// (NewKeyRecord); the sealing key itself is kept (see RotateSealingKey).
//
// Rotate is meant for a stopped peer. A process loading the key meanwhile
// sees the old key or the new one, never none, where the file system has
// hard links.
func Rotate(dataDir string, opts ...KeyOption) (crypto.PrivKey, error) {
	if dataDir == "" {
		return nil, errors.New("identity: empty data directory")
	}
	cfg := keyOptions(opts)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: create data directory: %w", err)
	}
	path := filepath.Join(dataDir, KeyFileName)
	if err := keepAside(path, time.Now()); err != nil {
		return nil, err
	}
	key, data, err := newIdentityKey(cfg.passphrase)
	if err != nil {
		return nil, err
	}
	if err := replaceFile(path, data); err != nil {
		return nil, err
	}
	return key, nil
}

// keepAside gives the file at path a second name, path.old-<time>, for
// Rotate; the caller then replaces path. Without hard links the file is
// renamed instead.
func keepAside(path string, now time.Time) error {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	base := path + ".old-" + now.UTC().Format("20060102T150405Z")
	for i := 1; i <= 100; i++ {
		old := base
		if i > 1 {
			old += "-" + strconv.Itoa(i)
		}
		if _, err := os.Lstat(old); err == nil {
			continue
		}
		switch err := os.Link(path, old); {
		case err == nil:
			return nil
		case errors.Is(err, fs.ErrExist):
			continue
		default:
			if err := os.Rename(path, old); err != nil {
				return fmt.Errorf("identity: keep old key as %s: %w", old, err)
			}
			return nil
		}
	}
	return fmt.Errorf("identity: no free name to keep %s aside", path)
}

// checkPerms reports whether the permission bits of a key file are safe.
func checkPerms(path string, info fs.FileInfo) error {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		return nil
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("identity: key file %s is accessible by group or others (mode %04o); run `chmod 600 %s`", path, perm, path)
	}
	return nil
}

// readKeyFile reads a key file after checking that it is a regular file
// only its owner can access, and small enough to be a key. A missing file
// is an error wrapping fs.ErrNotExist.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		// Wrapped so callers can test fs.ErrNotExist.
		return nil, fmt.Errorf("identity: open key file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("identity: stat key file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("identity: key file %s is not a regular file", path)
	}
	if err := checkPerms(path, info); err != nil {
		return nil, err
	}
	if info.Size() > maxKeyFile {
		return nil, fmt.Errorf("identity: key file %s is %d bytes, not a key; move it aside to create a new one", path, info.Size())
	}
	data := make([]byte, info.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("identity: read key file: %w", err)
	}
	return data, nil
}

func load(path string, passphrase []byte) (crypto.PrivKey, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	return decodeIdentityKey(path, data, passphrase)
}

// decodeIdentityKey reads a key file's content, in clear or encrypted.
func decodeIdentityKey(path string, data, passphrase []byte) (crypto.PrivKey, error) {
	encrypted := bytes.HasPrefix(data, []byte(encryptedKeyMagic))
	switch {
	case encrypted && len(passphrase) == 0:
		return nil, fmt.Errorf("%w (%s)", ErrPassphraseRequired, path)
	case !encrypted && len(passphrase) > 0:
		return nil, fmt.Errorf("%w (%s)", ErrNotEncrypted, path)
	case encrypted:
		plain, err := decryptKey(data, passphrase)
		if errors.Is(err, ErrWrongPassphrase) {
			return nil, fmt.Errorf("%w (%s)", err, path)
		}
		if err != nil {
			return nil, fmt.Errorf("identity: key file %s: %w", path, err)
		}
		data = plain
	}
	key, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("identity: key file %s is corrupt or not a libp2p private key (move it aside to create a new identity): %w", path, err)
	}
	if key.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("identity: key file %s holds a %s key; jstp-peer uses Ed25519", path, key.Type())
	}
	return key, nil
}

// newIdentityKey generates an Ed25519 key and its file content.
func newIdentityKey(passphrase []byte) (crypto.PrivKey, []byte, error) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: generate key: %w", err)
	}
	data, err := encodeIdentityKey(key, passphrase)
	if err != nil {
		return nil, nil, err
	}
	return key, data, nil
}

// encodeIdentityKey is the key file content for key: its libp2p encoding,
// encrypted when passphrase is not empty.
func encodeIdentityKey(key crypto.PrivKey, passphrase []byte) ([]byte, error) {
	data, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("identity: encode key: %w", err)
	}
	if len(passphrase) == 0 {
		return data, nil
	}
	return encryptKey(data, passphrase, argonDefault)
}

func create(path string, passphrase []byte) (crypto.PrivKey, error) {
	key, data, err := newIdentityKey(passphrase)
	if err != nil {
		return nil, err
	}
	switch err := installNew(path, data); {
	case errors.Is(err, fs.ErrExist):
		return load(path, passphrase)
	case err != nil:
		return nil, err
	}
	return key, nil
}

// writeTemp writes data to a new, synced temporary file next to path and
// returns its name. CreateTemp opens with mode 0600, so the key is never
// readable by others, not even between creation and a chmod.
func writeTemp(path string, data []byte) (string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*.tmp")
	if err != nil {
		return "", fmt.Errorf("identity: create key file: %w", err)
	}
	tmpPath := tmp.Name()
	_, err = tmp.Write(data)
	// Sync before the file gets its final name: after a crash the name
	// must not point at an empty file.
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmpPath)
		return "", fmt.Errorf("identity: write key file: %w", err)
	}
	return tmpPath, nil
}

// installNew gives data the name path unless path exists, in which case
// the error wraps fs.ErrExist and nothing changes.
func installNew(path string, data []byte) error {
	tmpPath, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmpPath) // after a successful link or rename this is a no-op or removes the extra name
	// Link fails if the name exists, which turns a race between two
	// processes into "first one wins" instead of "last one wins".
	switch err := os.Link(tmpPath, path); {
	case err == nil:
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("identity: install key file: %w", err)
	default:
		// Some file systems have no hard links; rename is still atomic.
		if err := os.Rename(tmpPath, path); err != nil {
			return fmt.Errorf("identity: install key file: %w", err)
		}
	}
	syncDir(filepath.Dir(path))
	return nil
}

// replaceFile atomically gives data the name path, replacing any file
// there.
func replaceFile(path string, data []byte) error {
	tmpPath, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmpPath, path); err != nil {
		os.Remove(tmpPath)
		return fmt.Errorf("identity: install key file: %w", err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

// syncDir makes the new directory entry durable where the platform allows
// it; failure only weakens crash safety, so it is not reported.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
