package identity

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
)

func TestPassphraseCreateAndLoad(t *testing.T) {
	dir := t.TempDir()
	pw := []byte("correct horse battery staple")
	k1, err := LoadOrCreate(dir, WithPassphrase(pw))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := crypto.MarshalPrivateKey(k1)
	if !bytes.HasPrefix(data, []byte(encryptedKeyMagic)) || bytes.Contains(data, raw[4:]) {
		t.Fatal("key file is not encrypted")
	}
	k2, err := LoadOrCreate(dir, WithPassphrase(pw))
	if err != nil {
		t.Fatal(err)
	}
	if peerID(t, k1) != peerID(t, k2) {
		t.Fatal("reload gave another key")
	}
	if _, err := LoadOrCreate(dir, WithPassphrase([]byte("wrong"))); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: err = %v", err)
	}
	if _, err := LoadOrCreate(dir); !errors.Is(err, ErrPassphraseRequired) {
		t.Fatalf("no passphrase: err = %v", err)
	}
	// The encrypted file was left alone through all of that.
	if after, _ := os.ReadFile(filepath.Join(dir, KeyFileName)); !bytes.Equal(after, data) {
		t.Fatal("key file changed")
	}
}

func TestPassphraseOnClearKey(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreate(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir, WithPassphrase([]byte("pw"))); !errors.Is(err, ErrNotEncrypted) {
		t.Fatalf("err = %v, want ErrNotEncrypted", err)
	}
	// An empty passphrase is none.
	if _, err := LoadOrCreate(dir, WithPassphrase(nil)); err != nil {
		t.Fatal(err)
	}
}

func TestSetPassphrase(t *testing.T) {
	dir := t.TempDir()
	k, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := peerID(t, k)
	steps := []struct{ old, new string }{{"", "one"}, {"one", "two"}, {"two", ""}}
	for _, s := range steps {
		if err := SetPassphrase(dir, []byte(s.old), []byte(s.new)); err != nil {
			t.Fatalf("%q → %q: %v", s.old, s.new, err)
		}
		got, err := LoadOrCreate(dir, WithPassphrase([]byte(s.new)))
		if err != nil {
			t.Fatalf("load after %q → %q: %v", s.old, s.new, err)
		}
		if peerID(t, got) != want {
			t.Fatal("SetPassphrase changed the key")
		}
		if runtime.GOOS != "windows" && runtime.GOOS != "plan9" {
			if fi, _ := os.Stat(filepath.Join(dir, KeyFileName)); fi.Mode().Perm() != 0o600 {
				t.Fatalf("mode %04o after SetPassphrase", fi.Mode().Perm())
			}
		}
	}
	if err := SetPassphrase(dir, []byte("nope"), []byte("x")); !errors.Is(err, ErrNotEncrypted) {
		t.Fatalf("wrong old passphrase on a clear key: err = %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("data dir holds %v, want only the key", entries)
	}
}

func TestEncryptedKeyAltered(t *testing.T) {
	dir := t.TempDir()
	pw := []byte("pw")
	if _, err := LoadOrCreate(dir, WithPassphrase(pw)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, KeyFileName)
	good, _ := os.ReadFile(path)
	m := len(encryptedKeyMagic)
	cases := map[string]struct {
		edit func([]byte)
		want string
	}{
		"salt":         {func(b []byte) { b[m+10] ^= 1 }, "wrong passphrase"},
		"ciphertext":   {func(b []byte) { b[len(b)-20] ^= 1 }, "wrong passphrase"},
		"time changed": {func(b []byte) { b[m+3] = 2 }, "wrong passphrase"},
		"huge time":    {func(b []byte) { b[m] = 0xff }, "unsupported Argon2id costs"},
		"huge memory":  {func(b []byte) { b[m+4] = 0xff }, "unsupported Argon2id costs"},
		"zero threads": {func(b []byte) { b[m+8] = 0 }, "unsupported Argon2id costs"},
		"truncated":    {nil, "truncated"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			b := bytes.Clone(good)
			if c.edit != nil {
				c.edit(b)
			} else {
				b = b[:m+20]
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreate(dir, WithPassphrase(pw))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestRotate(t *testing.T) {
	dir := t.TempDir()
	k0, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	k1, err := Rotate(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := Rotate(dir, WithPassphrase([]byte("pw")))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{peerID(t, k0).String(): true, peerID(t, k1).String(): true, peerID(t, k2).String(): true}
	if len(ids) != 3 {
		t.Fatal("Rotate did not make new keys")
	}
	cur, err := LoadOrCreate(dir, WithPassphrase([]byte("pw")))
	if err != nil || peerID(t, cur) != peerID(t, k2) {
		t.Fatalf("current key after rotation: %v", err)
	}
	olds, _ := filepath.Glob(filepath.Join(dir, KeyFileName+".old-*"))
	if len(olds) != 2 {
		t.Fatalf("old keys kept: %v, want 2", olds)
	}
	// Both rotations most likely fell in one second; the names must differ
	// and each must hold a key of its own, still readable only by its owner.
	found := map[string]bool{}
	for _, p := range olds {
		name := filepath.Base(p)
		stamp := strings.TrimPrefix(name, KeyFileName+".old-")
		if _, err := time.Parse("20060102T150405Z", strings.SplitN(stamp, "-", 2)[0]); err != nil {
			t.Errorf("old key name %q: %v", name, err)
		}
		k, err := load(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		found[peerID(t, k).String()] = true
	}
	if !found[peerID(t, k0).String()] || !found[peerID(t, k1).String()] {
		t.Fatal("old key files do not hold the old keys")
	}
}

func TestRotateWithoutKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	k, err := Rotate(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := LoadOrCreate(dir)
	if err != nil || peerID(t, got) != peerID(t, k) {
		t.Fatalf("load after Rotate: %v", err)
	}
	if olds, _ := filepath.Glob(filepath.Join(dir, "*.old-*")); len(olds) != 0 {
		t.Fatalf("nothing to keep aside, yet %v", olds)
	}
}
