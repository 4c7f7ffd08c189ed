package identity

import (
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func peerID(t *testing.T, k crypto.PrivKey) peer.ID {
	t.Helper()
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestLoadOrCreateCreatesThenReloads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	k1, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if k1.Type() != crypto.Ed25519 {
		t.Fatalf("key type = %v, want Ed25519", k1.Type())
	}
	k2, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	if a, b := peerID(t, k1), peerID(t, k2); a != b {
		t.Fatalf("reload gave peer id %s, want %s", b, a)
	}
	// No temporary file is left behind.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != KeyFileName {
		t.Fatalf("data dir holds %v, want only %s", entries, KeyFileName)
	}
}

func TestLoadOrCreatePermissions(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("no Unix permission bits on " + runtime.GOOS)
	}
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := LoadOrCreate(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", got)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := di.Mode().Perm(); got != 0o700 {
		t.Errorf("data dir mode = %04o, want 0700", got)
	}
}

func TestLoadOrCreateRefusesOpenPermissions(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("no Unix permission bits on " + runtime.GOOS)
	}
	for _, mode := range []fs.FileMode{0o640, 0o604, 0o660, 0o644} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			if _, err := LoadOrCreate(dir); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, KeyFileName)
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreate(dir)
			if err == nil {
				t.Fatalf("mode %04o accepted", mode)
			}
			if !strings.Contains(err.Error(), "chmod 600") {
				t.Errorf("error %q does not say how to fix it", err)
			}
		})
	}
}

func TestLoadOrCreateCorruptFile(t *testing.T) {
	// An empty file, garbage and a truncated key.
	dir0 := t.TempDir()
	k, err := LoadOrCreate(dir0)
	if err != nil {
		t.Fatal(err)
	}
	good, err := crypto.MarshalPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":     {},
		"garbage":   []byte("this is not a key\n"),
		"truncated": good[:len(good)/2],
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, KeyFileName)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreate(dir)
			if err == nil {
				t.Fatal("corrupt key file accepted")
			}
			if errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "corrupt") {
				t.Errorf("error %q does not say the file is corrupt", err)
			}
			// The corrupt file is left alone for the user to inspect.
			if got, _ := os.ReadFile(path); string(got) != string(data) {
				t.Error("corrupt key file was overwritten")
			}
		})
	}
}

func TestLoadOrCreateRefusesOtherKeyTypes(t *testing.T) {
	k, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	data, err := crypto.MarshalPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, KeyFileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir); err == nil || !strings.Contains(err.Error(), "Ed25519") {
		t.Fatalf("secp256k1 key: err = %v, want an error naming Ed25519", err)
	}
}

func TestLoadOrCreateEmptyDir(t *testing.T) {
	if _, err := LoadOrCreate(""); err == nil {
		t.Fatal("empty data dir accepted")
	}
}

func TestDefaultDataDir(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", "/tmp/xdg-test")
	t.Setenv("HOME", "/tmp/home-test")
	t.Setenv("AppData", `C:\AppData`)
	dir, err := DefaultDataDir()
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(dir) != AppDirName {
		t.Fatalf("DefaultDataDir() = %q, want it to end in %q", dir, AppDirName)
	}
}
