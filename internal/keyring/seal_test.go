package keyring

import (
	"bytes"
	"errors"
	"testing"
)

func newTestSealer(t testing.TB, wk []byte) *sealer {
	t.Helper()
	s, err := newSealer(wk)
	if err != nil {
		t.Fatalf("newSealer: %v", err)
	}
	return s
}

func TestSealRoundTrip(t *testing.T) {
	t.Parallel()
	s := newTestSealer(t, newWrappingKey(t))
	plain := []byte("pkcs8 der bytes")
	blob, err := s.seal("owner", "kid", "ES256", plain)
	if err != nil {
		t.Fatal(err)
	}
	if len(blob) != sealOverhead+len(plain) || blob[0] != sealV1 {
		t.Fatalf("blob: %d bytes, version %d", len(blob), blob[0])
	}
	if bytes.Contains(blob, plain) {
		t.Fatal("plaintext visible in the sealed blob")
	}
	got, err := s.open("owner", "kid", "ES256", blob)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, plain) {
		t.Errorf("open = %q, want %q", got, plain)
	}

	// A fresh nonce per seal: sealing the same key twice differs.
	again, err := s.seal("owner", "kid", "ES256", plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(blob[1+wrapIDSize:1+wrapIDSize+nonceSize], again[1+wrapIDSize:1+wrapIDSize+nonceSize]) {
		t.Error("two seals used the same nonce")
	}
}

func TestSealOpenRejects(t *testing.T) {
	t.Parallel()
	wk := newWrappingKey(t)
	s := newTestSealer(t, wk)
	blob, err := s.seal("owner", "kid", "ES256", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(blob)) }
	tests := []struct {
		name            string
		sealer          *sealer
		owner, kid, alg string
		blob            []byte
		want            error
	}{
		{"wrong wrapping key", newTestSealer(t, newWrappingKey(t)), "owner", "kid", "ES256", blob, ErrWrongWrappingKey},
		{"other owner", s, "other", "kid", "ES256", blob, ErrSealedKeyInvalid},
		{"other kid", s, "owner", "other", "ES256", blob, ErrSealedKeyInvalid},
		{"other alg", s, "owner", "kid", "EdDSA", blob, ErrSealedKeyInvalid},
		// Length prefixes keep field boundaries: "owner"+"kid" is not "own"+"erkid".
		{"shifted field boundary", s, "own", "erkid", "ES256", blob, ErrSealedKeyInvalid},
		{"empty", s, "owner", "kid", "ES256", nil, ErrSealedKeyInvalid},
		{"header only", s, "owner", "kid", "ES256", blob[:1+wrapIDSize+nonceSize], ErrSealedKeyInvalid},
		{"truncated tag", s, "owner", "kid", "ES256", blob[:len(blob)-1], ErrSealedKeyInvalid},
		{"appended byte", s, "owner", "kid", "ES256", append(bytes.Clone(blob), 0), ErrSealedKeyInvalid},
		{"version 0", s, "owner", "kid", "ES256", edit(func(b []byte) []byte { b[0] = 0; return b }), ErrSealedKeyInvalid},
		{"version 2", s, "owner", "kid", "ES256", edit(func(b []byte) []byte { b[0] = 2; return b }), ErrSealedKeyInvalid},
		{"key id edited", s, "owner", "kid", "ES256", edit(func(b []byte) []byte { b[1] ^= 1; return b }), ErrWrongWrappingKey},
		{"nonce edited", s, "owner", "kid", "ES256", edit(func(b []byte) []byte { b[1+wrapIDSize] ^= 1; return b }), ErrSealedKeyInvalid},
		{"ciphertext edited", s, "owner", "kid", "ES256", edit(func(b []byte) []byte { b[sealOverhead-16] ^= 1; return b }), ErrSealedKeyInvalid},
		{"tag edited", s, "owner", "kid", "ES256", edit(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrSealedKeyInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.sealer.open(tt.owner, tt.kid, tt.alg, tt.blob)
			if !errors.Is(err, tt.want) || got != nil {
				t.Fatalf("open = %q, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TestSealEveryByteIsAuthenticated flips each bit of a blob: none may open.
func TestSealEveryByteIsAuthenticated(t *testing.T) {
	t.Parallel()
	s := newTestSealer(t, newWrappingKey(t))
	blob, err := s.seal("owner", "kid", "ES256", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range blob {
		for bit := range 8 {
			b := bytes.Clone(blob)
			b[i] ^= 1 << bit
			if _, err := s.open("owner", "kid", "ES256", b); err == nil {
				t.Fatalf("flipping bit %d of byte %d still opens", bit, i)
			}
		}
	}
}

func TestSealerDerivesDistinctKeys(t *testing.T) {
	t.Parallel()
	wk := newWrappingKey(t)
	a, b := newTestSealer(t, wk), newTestSealer(t, wk)
	if a.keyID != b.keyID {
		t.Error("the same wrapping key gave two key ids")
	}
	if bytes.Contains(wk, a.keyID[:]) {
		t.Error("the key id is a slice of the wrapping key")
	}
	if c := newTestSealer(t, newWrappingKey(t)); c.keyID == a.keyID {
		t.Error("two wrapping keys share a key id")
	}
}

func FuzzSealOpen(f *testing.F) {
	wk := bytes.Repeat([]byte{7}, WrappingKeySize)
	s := newTestSealer(f, wk)
	valid, err := s.seal("owner", "kid", "ES256", []byte("secret"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, "owner", "kid", "ES256")
	f.Add(valid[:len(valid)-1], "owner", "kid", "ES256")
	f.Add(valid, "owner", "kid", "EdDSA")
	f.Add(valid, "own", "erkid", "ES256")
	f.Add([]byte{}, "", "", "")
	f.Add([]byte{sealV1}, "owner", "kid", "ES256")
	f.Add(append([]byte{sealV1}, make([]byte, sealOverhead)...), "owner", "kid", "ES256")
	f.Fuzz(func(t *testing.T, blob []byte, owner, kid, alg string) {
		// Any row and content round-trips.
		sealed, err := s.seal(owner, kid, alg, blob)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := s.open(owner, kid, alg, sealed); err != nil || !bytes.Equal(back, blob) {
			t.Fatalf("round trip: %v", err)
		}

		got, err := s.open(owner, kid, alg, blob)
		if err != nil {
			if got != nil {
				t.Fatal("open returned plaintext with an error")
			}
			if !errors.Is(err, ErrSealedKeyInvalid) && !errors.Is(err, ErrWrongWrappingKey) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		// Only a blob sealed for this row may open. (Workers re-run the
		// setup, so the seed's nonce may differ from valid's: compare the
		// row and the contents, not the bytes.)
		if !bytes.Equal(got, []byte("secret")) || owner != "owner" || kid != "kid" || alg != "ES256" {
			t.Fatalf("opened a blob that was never sealed for (%q, %q, %q)", owner, kid, alg)
		}
	})
}
