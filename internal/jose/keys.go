package jose

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	gojose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
)

// Algorithm names used across OpenXAA.
const (
	ES256 = string(gojose.ES256)
	EdDSA = string(gojose.EdDSA)
	RS256 = string(gojose.RS256)
	PS256 = string(gojose.PS256)
)

// KeySet resolves the verification keys of one issuer. A KeySet is always
// bound to an issuer that was identified before any key is chosen, so a kid
// can never select another issuer's key.
type KeySet interface {
	// Key returns the public key with the kid, or an error wrapping
	// ErrUnknownKey. Implementations backed by a remote JWKS may refresh
	// (rate-limited) before giving up.
	Key(ctx context.Context, kid string) (*gojose.JSONWebKey, error)
}

// StaticKeySet is a fixed set of public keys, for example a JWKS pasted into
// configuration.
type StaticKeySet struct {
	keys map[string]gojose.JSONWebKey
}

// NewStaticKeySet validates set and returns it as a KeySet. Every key must
// be public, carry a kid and an alg, and be usable for signatures.
func NewStaticKeySet(set gojose.JSONWebKeySet) (*StaticKeySet, error) {
	s := &StaticKeySet{keys: make(map[string]gojose.JSONWebKey, len(set.Keys))}
	for i, k := range set.Keys {
		if err := checkVerificationKey(k); err != nil {
			return nil, fmt.Errorf("jose: key %d: %w", i, err)
		}
		if _, dup := s.keys[k.KeyID]; dup {
			return nil, fmt.Errorf("jose: key %d: duplicate kid %q", i, k.KeyID)
		}
		s.keys[k.KeyID] = k
	}
	return s, nil
}

// Key implements KeySet.
func (s *StaticKeySet) Key(_ context.Context, kid string) (*gojose.JSONWebKey, error) {
	k, ok := s.keys[kid]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKey, kid)
	}
	return &k, nil
}

// checkVerificationKey rejects keys that must never verify a token: private
// keys, symmetric keys, keys without kid or alg, and encryption-only keys.
func checkVerificationKey(k gojose.JSONWebKey) error {
	if k.KeyID == "" {
		return errors.New("missing kid")
	}
	if len(k.KeyID) > maxKIDLen {
		return errors.New("kid too long")
	}
	if k.Algorithm == "" {
		return errors.New("missing alg")
	}
	if k.Use != "" && k.Use != "sig" {
		return fmt.Errorf("use %q is not sig", k.Use)
	}
	if !k.IsPublic() {
		return errors.New("not a public key")
	}
	switch pub := k.Key.(type) {
	case *ecdsa.PublicKey:
		if k.Algorithm != ES256 || pub.Curve != elliptic.P256() {
			return fmt.Errorf("EC key with alg %q is not supported", k.Algorithm)
		}
	case ed25519.PublicKey:
		if k.Algorithm != EdDSA {
			return fmt.Errorf("OKP key with alg %q is not supported", k.Algorithm)
		}
	case *rsa.PublicKey:
		if k.Algorithm != RS256 && k.Algorithm != PS256 {
			return fmt.Errorf("RSA key with alg %q is not supported", k.Algorithm)
		}
		if pub.N.BitLen() < 2048 {
			return errors.New("RSA key shorter than 2048 bits")
		}
	default:
		return fmt.Errorf("key type %T is not supported", k.Key)
	}
	return nil
}

// maxKIDLen bounds the kid so it can only ever be used as a map key.
const maxKIDLen = 128

// Thumbprint returns the RFC 7638 SHA-256 thumbprint of pub, base64url
// encoded without padding. OpenXAA uses it as the kid of its own keys.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	jwk := gojose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("jose: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// Signer signs JWTs. The private key never leaves the implementation, so a
// KMS or HSM can stand behind it.
type Signer interface {
	// Sign serialises claims as a JSON object and returns a compact JWS with
	// the header typ, the signer's alg and kid.
	Sign(ctx context.Context, typ string, claims any) (string, error)
	// Algorithm returns the JWS alg the signer uses.
	Algorithm() string
	// KeyID returns the kid of the current signing key.
	KeyID() string
}

// LocalSigner signs with an in-process crypto.Signer (ECDSA P-256 for ES256,
// Ed25519 for EdDSA).
type LocalSigner struct {
	alg    gojose.SignatureAlgorithm
	kid    string
	key    crypto.Signer
	public gojose.JSONWebKey
	byTyp  sync.Map // typ -> gojose.Signer; typ values are few and fixed
}

// NewLocalSigner returns a signer for key. alg must be ES256 (P-256 key) or
// EdDSA (Ed25519 key): OpenXAA never signs with RSA, HMAC or none.
func NewLocalSigner(key crypto.Signer, alg string) (*LocalSigner, error) {
	switch k := key.Public().(type) {
	case *ecdsa.PublicKey:
		if alg != ES256 || k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("jose: ECDSA signing needs alg ES256 and a P-256 key, got %q", alg)
		}
	case ed25519.PublicKey:
		if alg != EdDSA {
			return nil, fmt.Errorf("jose: Ed25519 signing needs alg EdDSA, got %q", alg)
		}
	default:
		return nil, fmt.Errorf("jose: signing key type %T is not supported (use ES256 or EdDSA)", k)
	}
	kid, err := Thumbprint(key.Public())
	if err != nil {
		return nil, err
	}
	return &LocalSigner{
		alg:    gojose.SignatureAlgorithm(alg),
		kid:    kid,
		key:    key,
		public: gojose.JSONWebKey{Key: key.Public(), KeyID: kid, Algorithm: alg, Use: "sig"},
	}, nil
}

// Sign implements Signer.
func (s *LocalSigner) Sign(_ context.Context, typ string, claims any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("jose: marshal claims: %w", err)
	}
	if len(payload) == 0 || payload[0] != '{' {
		return "", errors.New("jose: claims must marshal to a JSON object")
	}
	signer, err := s.signerFor(typ)
	if err != nil {
		return "", err
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("jose: sign: %w", err)
	}
	return obj.CompactSerialize()
}

// signerFor returns a go-jose signer whose protected header carries typ and
// kid. go-jose fixes header values at construction, so one is kept per typ.
func (s *LocalSigner) signerFor(typ string) (gojose.Signer, error) {
	if v, ok := s.byTyp.Load(typ); ok {
		return v.(gojose.Signer), nil
	}
	opts := (&gojose.SignerOptions{}).WithHeader(gojose.HeaderKey("kid"), s.kid)
	if typ != "" {
		opts = opts.WithType(gojose.ContentType(typ))
	}
	// go-jose signs natively only with in-memory private keys; any other
	// crypto.Signer (KMS, HSM, a wrapper) goes through its opaque adapter.
	var key any = s.key
	switch s.key.(type) {
	case *ecdsa.PrivateKey, ed25519.PrivateKey:
	default:
		key = cryptosigner.Opaque(s.key)
	}
	signer, err := gojose.NewSigner(gojose.SigningKey{Algorithm: s.alg, Key: key}, opts)
	if err != nil {
		return nil, fmt.Errorf("jose: new signer: %w", err)
	}
	v, _ := s.byTyp.LoadOrStore(typ, signer)
	return v.(gojose.Signer), nil
}

// Algorithm implements Signer.
func (s *LocalSigner) Algorithm() string { return string(s.alg) }

// KeyID implements Signer.
func (s *LocalSigner) KeyID() string { return s.kid }

// PublicKey returns the public JWK (with kid, alg and use=sig) to publish.
func (s *LocalSigner) PublicKey() gojose.JSONWebKey { return s.public }
