package keyring

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func newTestBox(t testing.TB, wk []byte, purpose string) *SecretBox {
	t.Helper()
	b, err := NewSecretBox(wk, purpose)
	if err != nil {
		t.Fatalf("NewSecretBox: %v", err)
	}
	return b
}

func TestSecretBoxRoundTrip(t *testing.T) {
	t.Parallel()
	wk := newWrappingKey(t)
	b := newTestBox(t, wk, "totp")
	plain := []byte("12345678901234567890")
	blob, err := b.Seal(plain, []byte("u_alice"))
	if err != nil {
		t.Fatal(err)
	}
	if len(blob) != sealOverhead+len(plain) || blob[0] != sealV1 || bytes.Contains(blob, plain) {
		t.Fatalf("blob of %d bytes, version %d, or plaintext visible", len(blob), blob[0])
	}
	// Another box from the same wrapping key opens it: nothing but the key
	// and the purpose is state.
	got, err := newTestBox(t, wk, "totp").Open(blob, []byte("u_alice"))
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v; want the plaintext", got, err)
	}
	again, err := b.Seal(plain, []byte("u_alice"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(blob, again) {
		t.Error("two seals of the same secret are identical (nonce reuse)")
	}
	empty, err := b.Seal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Open(empty, nil); err != nil || len(got) != 0 {
		t.Errorf("empty secret round trip = %q, %v", got, err)
	}
}

func TestSecretBoxOpenRejects(t *testing.T) {
	t.Parallel()
	wk := newWrappingKey(t)
	b := newTestBox(t, wk, "totp")
	blob, err := b.Seal([]byte("secret"), []byte("u_alice"))
	if err != nil {
		t.Fatal(err)
	}
	keyBlob, err := newTestSealer(t, wk).seal("u_alice", "kid", "ES256", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func([]byte) []byte) []byte { return f(bytes.Clone(blob)) }
	tests := []struct {
		name string
		box  *SecretBox
		blob []byte
		aad  string
		want error
	}{
		{"other aad (another user's row)", b, blob, "u_bob", ErrSealedSecretInvalid},
		{"aad prefix", b, blob, "u_alic", ErrSealedSecretInvalid},
		{"other purpose", newTestBox(t, wk, "recovery"), blob, "u_alice", ErrSealedSecretInvalid},
		{"other wrapping key", newTestBox(t, newWrappingKey(t), "totp"), blob, "u_alice", ErrSecretWrongWrappingKey},
		{"empty", b, nil, "u_alice", ErrSealedSecretInvalid},
		{"truncated", b, blob[:sealOverhead-1], "u_alice", ErrSealedSecretInvalid},
		{"tag cut", b, blob[:len(blob)-1], "u_alice", ErrSealedSecretInvalid},
		{"unknown version", b, edit(func(x []byte) []byte { x[0] = 2; return x }), "u_alice", ErrSealedSecretInvalid},
		{"flipped ciphertext", b, edit(func(x []byte) []byte { x[len(x)-1] ^= 1; return x }), "u_alice", ErrSealedSecretInvalid},
		{"flipped nonce", b, edit(func(x []byte) []byte { x[1+wrapIDSize] ^= 1; return x }), "u_alice", ErrSealedSecretInvalid},
		{"sealed signing key blob", b, keyBlob, "u_alice", ErrSealedSecretInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.box.Open(tt.blob, []byte(tt.aad))
			if !errors.Is(err, tt.want) || got != nil {
				t.Fatalf("Open = %q, %v; want nil, %v", got, err, tt.want)
			}
		})
	}
	// And the other way round: the signing-key sealer cannot open a box.
	if _, err := newTestSealer(t, wk).open("u_alice", "kid", "ES256", blob); !errors.Is(err, ErrSealedKeyInvalid) {
		t.Errorf("sealer opened a secret box blob: %v", err)
	}
}

func TestSecretBoxEveryByteIsAuthenticated(t *testing.T) {
	t.Parallel()
	b := newTestBox(t, newWrappingKey(t), "totp")
	blob, err := b.Seal([]byte("secret"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range blob {
		x := bytes.Clone(blob)
		x[i] ^= 0x80
		if got, err := b.Open(x, []byte("aad")); err == nil || got != nil {
			t.Errorf("flipping byte %d went unnoticed", i)
		}
	}
}

func TestNewSecretBoxRejects(t *testing.T) {
	t.Parallel()
	wk := newWrappingKey(t)
	for _, tc := range []struct {
		name    string
		key     []byte
		purpose string
		want    error // nil: any error
	}{
		{"short key", wk[:31], "totp", ErrInvalidWrappingKey},
		{"zero key", make([]byte, WrappingKeySize), "totp", ErrInvalidWrappingKey},
		{"empty purpose", wk, "", nil},
		{"purpose with space", wk, "to tp", nil},
		{"non-ASCII purpose", wk, "tötp", nil},
		{"long purpose", wk, strings.Repeat("p", 65), nil},
	} {
		b, err := NewSecretBox(tc.key, tc.purpose)
		if err == nil || b != nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: NewSecretBox = %v, %v; want an error", tc.name, b, err)
		}
	}
}

func TestSecretBoxKeyIsNotTheSealerKey(t *testing.T) {
	t.Parallel()
	wk := newWrappingKey(t)
	b := newTestBox(t, wk, "totp")
	s := newTestSealer(t, wk)
	if b.keyID != s.keyID {
		t.Error("secret box and sealer disagree on the wrapping key id")
	}
	// No purpose spells the sealer's label.
	if strings.HasPrefix(hkdfInfoAEAD, hkdfInfoSecretBox) || strings.HasPrefix(hkdfInfoKeyID, hkdfInfoSecretBox) {
		t.Error("a purpose could make the secret box derive the sealer's key")
	}
}

func FuzzSecretBoxOpen(f *testing.F) {
	b := newTestBox(f, bytes.Repeat([]byte{7}, WrappingKeySize), "totp")
	valid, err := b.Seal([]byte("secret"), []byte("u_alice"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, []byte("u_alice"))
	f.Add(valid, []byte("u_bob"))
	f.Add(valid[:len(valid)-1], []byte("u_alice"))
	f.Add([]byte{}, []byte{})
	f.Add(append([]byte{sealV1}, make([]byte, sealOverhead)...), []byte("u_alice"))
	f.Fuzz(func(t *testing.T, blob, aad []byte) {
		sealed, err := b.Seal(blob, aad)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := b.Open(sealed, aad); err != nil || !bytes.Equal(back, blob) {
			t.Fatalf("round trip: %v", err)
		}
		got, err := b.Open(blob, aad)
		if err != nil {
			if got != nil {
				t.Fatal("Open returned plaintext with an error")
			}
			if !errors.Is(err, ErrSealedSecretInvalid) && !errors.Is(err, ErrSecretWrongWrappingKey) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if !bytes.Equal(got, []byte("secret")) || string(aad) != "u_alice" {
			t.Fatalf("opened a blob never sealed for aad %q", aad)
		}
	})
}
