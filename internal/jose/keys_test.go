package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	gojose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

func TestThumbprintRFC7638(t *testing.T) {
	t.Parallel()
	// RFC 7638 §3.1.
	const example = `{"kty":"RSA",
	 "n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
	 "e":"AQAB","alg":"RS256","kid":"2011-04-29"}`
	var k gojose.JSONWebKey
	if err := json.Unmarshal([]byte(example), &k); err != nil {
		t.Fatal(err)
	}
	got, err := Thumbprint(k.Key)
	if err != nil {
		t.Fatal(err)
	}
	if want := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Errorf("Thumbprint = %q, want %q", got, want)
	}
	if _, err := Thumbprint([]byte("symmetric")); err == nil {
		t.Error("Thumbprint of a symmetric key succeeded")
	}
}

func TestNewStaticKeySet(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	mod := func(k *testKey, change func(*gojose.JSONWebKey)) gojose.JSONWebKey {
		jwk := k.public()
		change(&jwk)
		return jwk
	}
	tests := []struct {
		name string
		keys []gojose.JSONWebKey
		ok   bool
	}{
		{"valid ES256, EdDSA, RS256, PS256", []gojose.JSONWebKey{f.es.public(), f.ed.public(), f.rs.public(), f.ps.public()}, true},
		{"use absent", []gojose.JSONWebKey{mod(f.es, func(k *gojose.JSONWebKey) { k.Use = "" })}, true},
		{"empty set", nil, true},
		{"private EC key", []gojose.JSONWebKey{mod(f.es, func(k *gojose.JSONWebKey) { k.Key = f.es.priv })}, false},
		{"private Ed25519 key", []gojose.JSONWebKey{mod(f.ed, func(k *gojose.JSONWebKey) { k.Key = f.ed.priv })}, false},
		{"private RSA key", []gojose.JSONWebKey{mod(f.rs, func(k *gojose.JSONWebKey) { k.Key = f.rs.priv })}, false},
		{"symmetric key", []gojose.JSONWebKey{{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "hs", Algorithm: "HS256", Use: "sig"}}, false},
		{"symmetric key claiming ES256", []gojose.JSONWebKey{{Key: []byte("0123456789abcdef"), KeyID: "hs", Algorithm: ES256}}, false},
		{"missing kid", []gojose.JSONWebKey{mod(f.es, func(k *gojose.JSONWebKey) { k.KeyID = "" })}, false},
		{"kid too long", []gojose.JSONWebKey{mod(f.es, func(k *gojose.JSONWebKey) { k.KeyID = strings.Repeat("k", 129) })}, false},
		{"missing alg", []gojose.JSONWebKey{mod(f.es, func(k *gojose.JSONWebKey) { k.Algorithm = "" })}, false},
		{"use enc", []gojose.JSONWebKey{mod(f.es, func(k *gojose.JSONWebKey) { k.Use = "enc" })}, false},
		{"EC key with RS256", []gojose.JSONWebKey{mod(f.es, func(k *gojose.JSONWebKey) { k.Algorithm = RS256 })}, false},
		{"RSA key with ES256", []gojose.JSONWebKey{mod(f.rs, func(k *gojose.JSONWebKey) { k.Algorithm = ES256 })}, false},
		{"RSA key with HS256", []gojose.JSONWebKey{mod(f.rs, func(k *gojose.JSONWebKey) { k.Algorithm = "HS256" })}, false},
		{"Ed25519 key with ES256", []gojose.JSONWebKey{mod(f.ed, func(k *gojose.JSONWebKey) { k.Algorithm = ES256 })}, false},
		{"P-384 key with ES256", []gojose.JSONWebKey{{Key: p384.Public(), KeyID: "p384", Algorithm: ES256}}, false},
		{"RSA 1024", []gojose.JSONWebKey{{Key: rsa1024.Public(), KeyID: "rsa1024", Algorithm: RS256}}, false},
		{"duplicate kid", []gojose.JSONWebKey{f.es.public(), mod(f.ed, func(k *gojose.JSONWebKey) { k.KeyID = f.es.kid })}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ks, err := NewStaticKeySet(gojose.JSONWebKeySet{Keys: tc.keys})
			if (err == nil) != tc.ok {
				t.Fatalf("NewStaticKeySet error = %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok {
				return
			}
			for _, want := range tc.keys {
				got, err := ks.Key(t.Context(), want.KeyID)
				if err != nil || got.Key == nil || got.Algorithm != want.Algorithm {
					t.Errorf("Key(%q) = %v, %v", want.KeyID, got, err)
				}
			}
			if _, err := ks.Key(t.Context(), "unknown"); !errors.Is(err, ErrUnknownKey) {
				t.Errorf("Key(unknown) error = %v, want ErrUnknownKey", err)
			}
		})
	}
}

// opaqueSigner hides the concrete key type, the way a KMS client does.
type opaqueSigner struct{ s crypto.Signer }

func (o opaqueSigner) Public() crypto.PublicKey { return o.s.Public() }
func (o opaqueSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return o.s.Sign(r, digest, opts)
}

func TestLocalSignerRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := testNow()
	claims := map[string]any{
		"iss": asIssuer, "sub": "user-1", "aud": resource, "client_id": clientID,
		"jti": "at-9", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "scope": "tools.read tools.write",
	}
	tests := []struct {
		name string
		key  crypto.Signer
		alg  string
	}{
		{"ES256", f.es.priv, ES256},
		{"EdDSA", f.ed.priv, EdDSA},
		{"ES256 behind an opaque crypto.Signer", opaqueSigner{f.es.priv}, ES256},
		{"EdDSA behind an opaque crypto.Signer", opaqueSigner{f.ed.priv}, EdDSA},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := NewLocalSigner(tc.key, tc.alg)
			if err != nil {
				t.Fatal(err)
			}
			wantKID, err := Thumbprint(tc.key.Public())
			if err != nil {
				t.Fatal(err)
			}
			if s.KeyID() != wantKID || s.Algorithm() != tc.alg {
				t.Errorf("KeyID, Algorithm = %q, %q; want %q, %q", s.KeyID(), s.Algorithm(), wantKID, tc.alg)
			}
			keys, err := NewStaticKeySet(PublicJWKS(s.PublicKey()))
			if err != nil {
				t.Fatal(err)
			}
			issuers := SingleIssuer{Issuer: asIssuer, Keys: keys}
			// Twice, so the cached per-typ signer is exercised.
			for range 2 {
				raw, err := s.Sign(t.Context(), TypeAccessToken, claims)
				if err != nil {
					t.Fatal(err)
				}
				tok, err := Verify(t.Context(), raw, AccessTokenProfile(), issuers,
					Expectations{Audiences: []string{resource}, Issuer: asIssuer, Now: now})
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				want := Header{Algorithm: tc.alg, KeyID: wantKID, Type: TypeAccessToken}
				if diff := cmp.Diff(want, tok.Header); diff != "" {
					t.Errorf("header (-want +got):\n%s", diff)
				}
			}
			// The same signer signs another kind under its own typ.
			raw, err := s.Sign(t.Context(), TypeIDJAG, with(claims, "aud", asIssuer))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Verify(t.Context(), raw, AccessTokenProfile(), issuers,
				Expectations{Audiences: []string{asIssuer}, Now: now}); !errors.Is(err, ErrType) {
				t.Errorf("ID-JAG verified as access token: %v, want ErrType", err)
			}
		})
	}
}

func TestLocalSignerRejects(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  crypto.Signer
		alg  string
	}{
		{"RSA", f.rs.priv, RS256},
		{"P-384", p384, ES256},
		{"EC key as EdDSA", f.es.priv, EdDSA},
		{"Ed25519 key as ES256", f.ed.priv, ES256},
		{"HS256", f.es.priv, "HS256"},
		{"none", f.ed.priv, "none"},
	}
	for _, tc := range tests {
		if _, err := NewLocalSigner(tc.key, tc.alg); err == nil {
			t.Errorf("%s: NewLocalSigner succeeded", tc.name)
		}
	}

	s, err := NewLocalSigner(f.es.priv, ES256)
	if err != nil {
		t.Fatal(err)
	}
	for _, claims := range []any{nil, []string{"a"}, "string", 42, map[string]any{"f": func() {}}} {
		if _, err := s.Sign(t.Context(), TypeAccessToken, claims); err == nil {
			t.Errorf("Sign(%T) succeeded", claims)
		}
	}
}

// Ed25519 public keys from an ed25519.PrivateKey work as Thumbprint input
// and match the kid NewLocalSigner assigns.
func TestThumbprintMatchesSigner(t *testing.T) {
	t.Parallel()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewLocalSigner(priv, EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := Thumbprint(priv.Public())
	if err != nil || tp != s.KeyID() || s.PublicKey().KeyID != tp {
		t.Errorf("Thumbprint = %q, %v; signer kid %q", tp, err, s.KeyID())
	}
}
