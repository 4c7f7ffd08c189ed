package identity

import (
	"crypto/hpke"
	"testing"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// The benchmarks work on the ~300-byte sample dispatch. Seal and Open are
// split into their HPKE key set-up (BenchmarkHPKESetup) and the rest, to
// show where a sealed round trip spends its time.

func BenchmarkSign(b *testing.B) {
	key, _ := newIdentity(b)
	d := sample(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := Sign(key, d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	key, _ := newIdentity(b)
	d := sample(b)
	if err := Sign(key, d); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReplayCheck(b *testing.B) {
	key, id := newIdentity(b)
	now := time.Now()
	ds := make([]*dispatch.Dispatch, 4096)
	for i := range ds {
		ds[i] = signedAt(b, key, now.UnixMilli(), i)
	}
	g := NewReplayGuard(WithMaxEntries(1024), WithClock(func() time.Time { return now }))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = g.Check(id, ds[i%len(ds)])
		i++
	}
}

func BenchmarkSeal(b *testing.B) {
	for _, k := range kems {
		b.Run(k.name, func(b *testing.B) {
			to := newRecipient(b, k.id)
			orig := sample(b)
			b.ReportAllocs()
			for b.Loop() {
				d := *orig
				if err := Seal(to.rec, to.id, &d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, k := range kems {
		b.Run(k.name, func(b *testing.B) {
			to := newRecipient(b, k.id)
			sealed := sample(b)
			if err := Seal(to.rec, to.id, sealed); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				d := *sealed
				if err := Open(to.sk, to.id, &d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHPKESetup measures the per-message key set-up alone: the
// encapsulation Seal pays and the decapsulation Open pays.
func BenchmarkHPKESetup(b *testing.B) {
	for _, k := range kems {
		to := newRecipient(b, k.id)
		info := sealInfo(to.id)
		b.Run(k.name+"/encap", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := hpke.NewSender(to.rec.pub, sealKDF, sealAEAD, info); err != nil {
					b.Fatal(err)
				}
			}
		})
		enc, _, _ := hpke.NewSender(to.rec.pub, sealKDF, sealAEAD, info)
		b.Run(k.name+"/decap", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := hpke.NewRecipient(enc, to.sk.priv, sealKDF, sealAEAD, info); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
