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

	"github.com/libp2p/go-libp2p/core/record"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

var kems = []struct {
	name string
	id   uint16
}{{"x25519", KEMX25519}, {"mlkem768x25519", KEMMLKEM768X25519}}

func TestSealingKeyCreateReload(t *testing.T) {
	for _, k := range kems {
		t.Run(k.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			k1, err := LoadOrCreateSealingKey(dir, WithKEM(k.id))
			if err != nil {
				t.Fatal(err)
			}
			if k1.KEM() != k.id {
				t.Fatalf("KEM = %#x, want %#x", k1.KEM(), k.id)
			}
			k2, err := LoadOrCreateSealingKey(dir) // any KEM
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(k1.PublicKey(), k2.PublicKey()) {
				t.Fatal("reload gave another key")
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 || entries[0].Name() != SealingKeyFileName {
				t.Fatalf("data dir holds %v, want only %s", entries, SealingKeyFileName)
			}
		})
	}
}

func TestSealingKeyDefaultIsX25519(t *testing.T) {
	k, err := LoadOrCreateSealingKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if k.KEM() != KEMX25519 || len(k.PublicKey()) != 32 {
		t.Fatalf("KEM %#x, %d-byte public key", k.KEM(), len(k.PublicKey()))
	}
}

func TestSealingKeyPermissions(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("no Unix permission bits on " + runtime.GOOS)
	}
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := LoadOrCreateSealingKey(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, SealingKeyFileName)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("sealing key mode = %04o, want 0600", got)
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode = %04o, want 0700", di.Mode().Perm())
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreateSealingKey(dir)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: err = %v, want a refusal saying chmod 600", mode, err)
		}
	}
}

func TestSealingKeyKEMMismatch(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreateSealingKey(dir); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOrCreateSealingKey(dir, WithKEM(KEMMLKEM768X25519))
	if err == nil || !strings.Contains(err.Error(), "RotateSealingKey") {
		t.Fatalf("err = %v, want a refusal naming RotateSealingKey", err)
	}
	if _, err := LoadOrCreateSealingKey(t.TempDir(), WithKEM(0x0010)); err == nil {
		t.Fatal("unsupported KEM (P-256) accepted")
	}
}

func TestSealingKeyCorrupt(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":      {},
		"garbage":    []byte("not a key"),
		"magic only": []byte(sealingKeyMagic),
		"bad kem":    append([]byte(sealingKeyMagic), 0x00, 0x10, 1, 2, 3),
		"short key":  append([]byte(sealingKeyMagic), 0x00, 0x20, 1, 2, 3),
		"identity":   {0x08, 0x01, 0x12, 0x40},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, SealingKeyFileName)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadOrCreateSealingKey(dir); err == nil || !strings.Contains(err.Error(), "corrupt") {
				t.Fatalf("err = %v, want corrupt", err)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
				t.Fatal("corrupt file was overwritten")
			}
		})
	}
}

func TestRotateSealingKey(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateSealingKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := RotateSealingKey(dir, WithKEM(KEMMLKEM768X25519))
	if err != nil {
		t.Fatal(err)
	}
	if k2.KEM() != KEMMLKEM768X25519 || bytes.Equal(k1.PublicKey(), k2.PublicKey()) {
		t.Fatal("rotation did not give a new hybrid key")
	}
	k3, err := LoadOrCreateSealingKey(dir)
	if err != nil || !bytes.Equal(k3.PublicKey(), k2.PublicKey()) {
		t.Fatalf("reload after rotation: %v", err)
	}
	olds, _ := filepath.Glob(filepath.Join(dir, SealingKeyFileName+".old-*"))
	if len(olds) != 1 {
		t.Fatalf("old keys kept: %v, want one", olds)
	}
	data, err := readKeyFile(olds[0])
	if err != nil {
		t.Fatal(err)
	}
	old, err := parseSealingKey(olds[0], data)
	if err != nil || !bytes.Equal(old.PublicKey(), k1.PublicKey()) {
		t.Fatalf("old key file does not hold the old key: %v", err)
	}
}

func TestKeyRecordRoundTrip(t *testing.T) {
	for _, k := range kems {
		t.Run(k.name, func(t *testing.T) {
			idKey, id := newIdentity(t)
			sk, err := GenerateSealingKey(WithKEM(k.id))
			if err != nil {
				t.Fatal(err)
			}
			before := time.Now().Add(-time.Millisecond)
			env, err := NewKeyRecord(idKey, sk)
			if err != nil {
				t.Fatal(err)
			}
			if len(env) > MaxKeyRecordSize/2 {
				t.Errorf("record is %d bytes, close to the %d limit", len(env), MaxKeyRecordSize)
			}
			rec, err := OpenKeyRecord(env, id)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Peer != id || rec.KEM != k.id || !bytes.Equal(rec.PublicKey, sk.PublicKey()) {
				t.Fatalf("record = %+v", rec)
			}
			if rec.IssuedAt.Before(before) || rec.IssuedAt.After(time.Now()) {
				t.Fatalf("issued at %v", rec.IssuedAt)
			}
		})
	}
}

func TestKeyRecordSignedByAnotherKey(t *testing.T) {
	_, alice := newIdentity(t)
	mallory, _ := newIdentity(t)
	sk, _ := GenerateSealingKey()
	env, err := NewKeyRecord(mallory, sk)
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenKeyRecord(env, alice)
	if !errors.Is(err, ErrBadKeyRecord) {
		t.Fatalf("err = %v, want ErrBadKeyRecord", err)
	}
	if c := dispatch.Code(err); c != 401 {
		t.Fatalf("code = %d, want 401", c)
	}
}

// otherRecord has the key record's payload but another domain or type.
type otherRecord struct {
	KeyRecord
	domain, codec string
}

func (r *otherRecord) Domain() string { return r.domain }
func (r *otherRecord) Codec() []byte  { return []byte(r.codec) }

func TestKeyRecordOtherDomainOrType(t *testing.T) {
	idKey, id := newIdentity(t)
	sk, _ := GenerateSealingKey()
	for name, r := range map[string]*otherRecord{
		"libp2p peer record domain": {domain: "libp2p-peer-record", codec: KeyRecordPayloadType},
		"another payload type":      {domain: KeyRecordDomain, codec: "/other/1"},
	} {
		t.Run(name, func(t *testing.T) {
			r.KeyRecord = KeyRecord{KEM: sk.KEM(), PublicKey: sk.PublicKey(), IssuedAt: time.Now()}
			env, err := record.Seal(r, idKey)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := env.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := OpenKeyRecord(raw, id); !errors.Is(err, ErrBadKeyRecord) {
				t.Fatalf("err = %v, want ErrBadKeyRecord", err)
			}
		})
	}
}

func TestKeyRecordTamperedAndOversized(t *testing.T) {
	idKey, id := newIdentity(t)
	sk, _ := GenerateSealingKey()
	env, err := NewKeyRecord(idKey, sk)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(env, []byte(`"kem":32`))
	if i < 0 {
		t.Fatalf("payload not found in %q", env)
	}
	bad := bytes.Clone(env)
	bad[i+len(`"kem":3`)] = '3' // 33: still a number, no longer signed
	if _, err := OpenKeyRecord(bad, id); !errors.Is(err, ErrBadKeyRecord) {
		t.Fatalf("tampered: err = %v", err)
	}
	big := append(bytes.Clone(env), make([]byte, MaxKeyRecordSize)...)
	if _, err := OpenKeyRecord(big, id); !errors.Is(err, ErrBadKeyRecord) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("oversized: err = %v", err)
	}
}

func TestKeyRecordPayloadStrict(t *testing.T) {
	good := `{"kem":32,"key":"` + strings.Repeat("A", 42) + `Q","issued":1}`
	var r KeyRecord
	if err := r.UnmarshalRecord([]byte(good)); err != nil {
		t.Fatalf("good payload: %v", err)
	}
	for _, p := range []string{
		`{"kem":32,"key":"AAAA","issued":1}`,                                     // short key
		`{"kem":32,"key":"` + strings.Repeat("A", 43) + `","issued":1,"x":1}`,    // unknown member
		`{"kem":32,"KEY":"` + strings.Repeat("A", 43) + `","issued":1}`,          // case
		`{"kem":32,"kem":32,"key":"` + strings.Repeat("A", 43) + `","issued":1}`, // repeated
		`{"kem":16,"key":"` + strings.Repeat("A", 43) + `","issued":1}`,          // P-256
		`{"kem":32,"key":"` + strings.Repeat("A", 43) + `","issued":0}`,          // no time
		`{"kem":32,"key":"` + strings.Repeat("A", 43) + `"}`,                     // missing
		`{"kem":32,"key":"` + strings.Repeat("A", 43) + `","issued":1} {}`,       // trailing
		`{"kem":70000,"key":"` + strings.Repeat("A", 43) + `","issued":1}`,       // overflow
	} {
		if err := new(KeyRecord).UnmarshalRecord([]byte(p)); !errors.Is(err, ErrBadKeyRecord) {
			t.Errorf("%s: err = %v, want ErrBadKeyRecord", p, err)
		}
	}
}
