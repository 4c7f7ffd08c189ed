package identity

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// KeyFileName is the name of the key file inside the data directory. It
// holds the private key in libp2p's protobuf encoding
// (crypto.MarshalPrivateKey), the format other libp2p tools read.
const KeyFileName = "identity.key"

// AppDirName is the directory created under the user's configuration
// directory by DefaultDataDir.
const AppDirName = "jstp-peer"

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

// LoadOrCreate returns the peer's private key from dataDir/identity.key,
// creating an Ed25519 key there the first time.
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
func LoadOrCreate(dataDir string) (crypto.PrivKey, error) {
	if dataDir == "" {
		return nil, errors.New("identity: empty data directory")
	}
	path := filepath.Join(dataDir, KeyFileName)
	key, err := load(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: create data directory: %w", err)
	}
	return create(path)
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

func load(path string) (crypto.PrivKey, error) {
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
	// A marshalled Ed25519 key is 68 bytes; anything far larger is not a
	// key file, and reading it whole would be pointless.
	const maxKeyFile = 16 << 10
	if info.Size() > maxKeyFile {
		return nil, fmt.Errorf("identity: key file %s is %d bytes, not a key; move it aside to create a new identity", path, info.Size())
	}
	data := make([]byte, info.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("identity: read key file: %w", err)
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

func create(path string) (crypto.PrivKey, error) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: generate key: %w", err)
	}
	data, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("identity: encode key: %w", err)
	}
	dir := filepath.Dir(path)
	// CreateTemp opens with mode 0600, so the key is never readable by
	// others, not even between creation and a chmod.
	tmp, err := os.CreateTemp(dir, ".identity-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("identity: create key file: %w", err)
	}
	tmpPath := tmp.Name()
	defer os.Remove(tmpPath) // after a successful link or rename this is a no-op or removes the extra name
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("identity: write key file: %w", err)
	}
	// Sync before the file gets its final name: after a crash the name
	// must not point at an empty file.
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("identity: sync key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("identity: close key file: %w", err)
	}
	// Link fails if the name exists, which turns a race between two
	// processes into "first one wins" instead of "last one wins".
	switch err := os.Link(tmpPath, path); {
	case err == nil:
	case errors.Is(err, fs.ErrExist):
		return load(path)
	default:
		// Some file systems have no hard links; rename is still atomic.
		if err := os.Rename(tmpPath, path); err != nil {
			return nil, fmt.Errorf("identity: install key file: %w", err)
		}
	}
	syncDir(dir)
	return key, nil
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
