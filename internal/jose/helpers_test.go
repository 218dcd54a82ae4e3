package jose

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"os"
	"testing"
	"time"

	gojose "github.com/go-jose/go-jose/v4"
)

// Test identities. The IdP (issuerA) issues ID tokens and ID-JAGs; issuerB
// is a second trusted issuer whose keys must never verify issuerA's tokens.
const (
	issuerA  = "https://idp.example.com"
	issuerB  = "https://other-idp.example.net"
	asIssuer = "https://as.example.com"
	resource = "https://mcp.example.com/mcp"
	clientID = "client-1"
)

// testNow is the fixed verification time of every test.
func testNow() time.Time { return time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC) }

// testKey is a signing key whose public half is in a trusted key set.
type testKey struct {
	alg  string
	kid  string
	priv crypto.Signer
}

func (k *testKey) public() gojose.JSONWebKey {
	return gojose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: k.alg, Use: "sig"}
}

// signRaw signs the JWS signing input the way RFC 7518 §3 prescribes,
// without go-jose, so tests can sign headers go-jose would never produce.
func (k *testKey) signRaw(tb testing.TB, input string) []byte {
	tb.Helper()
	digest := sha256.Sum256([]byte(input))
	switch k.alg {
	case ES256:
		r, s, err := ecdsa.Sign(rand.Reader, k.priv.(*ecdsa.PrivateKey), digest[:])
		if err != nil {
			tb.Fatal(err)
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig
	case EdDSA:
		return ed25519.Sign(k.priv.(ed25519.PrivateKey), []byte(input))
	case RS256:
		sig, err := rsa.SignPKCS1v15(rand.Reader, k.priv.(*rsa.PrivateKey), crypto.SHA256, digest[:])
		if err != nil {
			tb.Fatal(err)
		}
		return sig
	case PS256:
		sig, err := rsa.SignPSS(rand.Reader, k.priv.(*rsa.PrivateKey), crypto.SHA256, digest[:],
			&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		if err != nil {
			tb.Fatal(err)
		}
		return sig
	}
	tb.Fatalf("signRaw: alg %q", k.alg)
	return nil
}

// jws assembles a compact JWS from header and payload JSON text, exactly as
// given, signed with k.
func (k *testKey) jws(tb testing.TB, header, payload string) string {
	tb.Helper()
	input := b64(header) + "." + b64(payload)
	return input + "." + base64.RawURLEncoding.EncodeToString(k.signRaw(tb, input))
}

// token signs claims under a header with k's alg and kid and the given typ
// ("" leaves typ out).
func (k *testKey) token(tb testing.TB, typ string, claims map[string]any) string {
	tb.Helper()
	return k.jws(tb, header(k.alg, k.kid, typ), mustJSON(tb, claims))
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func header(alg, kid, typ string) string {
	if typ == "" {
		return fmt.Sprintf(`{"alg":%q,"kid":%q}`, alg, kid)
	}
	return fmt.Sprintf(`{"alg":%q,"kid":%q,"typ":%q}`, alg, kid, typ)
}

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// hs256 builds the classic alg-confusion token: HMAC keyed with bytes of a
// public key that the attacker knows.
func hs256(header, payload string, key []byte) string {
	input := b64(header) + "." + b64(payload)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// fixture holds deterministic keys and the trusted issuers of the tests.
type fixture struct {
	es, ed, rs, ps *testKey // issuerA
	esB            *testKey // issuerB
	issuers        mapIssuers
}

// mapIssuers trusts several issuers, each with its own key set.
type mapIssuers map[string]KeySet

func (m mapIssuers) KeySet(_ context.Context, issuer string) (KeySet, error) {
	ks, ok := m[issuer]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownIssuer, issuer)
	}
	return ks, nil
}

// seededP256 derives a P-256 key from a label so fuzz corpora stay valid
// across runs.
func seededP256(tb testing.TB, label string) *ecdsa.PrivateKey {
	tb.Helper()
	d := sha256.Sum256([]byte(label))
	// Reduce below the group order; a SHA-256 output almost always is.
	n := elliptic.P256().Params().N
	v := new(big.Int).Mod(new(big.Int).SetBytes(d[:]), n)
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), v.FillBytes(make([]byte, 32)))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func seededEd25519(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(label))
	return ed25519.NewKeyFromSeed(seed[:])
}

func testRSAKey(tb testing.TB) *rsa.PrivateKey {
	tb.Helper()
	data, err := os.ReadFile("testdata/rsa2048-test-only.pem")
	if err != nil {
		tb.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		tb.Fatal("testdata: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return k.(*rsa.PrivateKey)
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	rsaKey := testRSAKey(tb)
	f := &fixture{
		es:  &testKey{alg: ES256, kid: "es-a", priv: seededP256(tb, "issuer A ES256")},
		ed:  &testKey{alg: EdDSA, kid: "ed-a", priv: seededEd25519("issuer A EdDSA")},
		rs:  &testKey{alg: RS256, kid: "rs-a", priv: rsaKey},
		ps:  &testKey{alg: PS256, kid: "ps-a", priv: rsaKey},
		esB: &testKey{alg: ES256, kid: "es-b", priv: seededP256(tb, "issuer B ES256")},
	}
	setA, err := NewStaticKeySet(gojose.JSONWebKeySet{Keys: []gojose.JSONWebKey{
		f.es.public(), f.ed.public(), f.rs.public(), f.ps.public(),
	}})
	if err != nil {
		tb.Fatal(err)
	}
	setB, err := NewStaticKeySet(gojose.JSONWebKeySet{Keys: []gojose.JSONWebKey{f.esB.public()}})
	if err != nil {
		tb.Fatal(err)
	}
	// The AS and the client share issuerA's keys in these tests; issuerB's
	// set is the one that must stay separate.
	f.issuers = mapIssuers{issuerA: setA, asIssuer: setA, clientID: setA, issuerB: setB}
	return f
}

// Claim sets of each kind, valid at testNow.

func idJAGClaims() map[string]any {
	now := testNow().Unix()
	return map[string]any{
		"iss": issuerA, "sub": "user-1", "aud": asIssuer, "client_id": clientID,
		"jti": "jag-1", "iat": now - 10, "exp": now + 290,
		"resource": resource, "scope": "tools.read",
	}
}

// setClaims are a Security Event Token's: no sub at the top, the subject
// is in the event.
func setClaims() map[string]any {
	now := testNow().Unix()
	return map[string]any{
		"iss": issuerA, "aud": asIssuer, "jti": "set-1", "iat": now - 10, "exp": now + 290,
		"events": map[string]any{"urn:example:event": map[string]any{"subject": map[string]any{"format": "iss_sub", "iss": issuerA, "sub": "user-1"}}},
	}
}

func accessTokenClaims() map[string]any {
	now := testNow().Unix()
	return map[string]any{
		"iss": asIssuer, "sub": "user-1", "aud": resource, "client_id": clientID,
		"jti": "at-1", "iat": now - 10, "exp": now + 290, "scope": "tools.read",
	}
}

func idTokenClaims() map[string]any {
	now := testNow().Unix()
	return map[string]any{
		"iss": issuerA, "sub": "user-1", "aud": []string{clientID, "other-client"}, "azp": clientID,
		"iat": now - 10, "exp": now + 3590, "nonce": "n-0S6_WzA2Mj",
	}
}

func clientAssertionClaims() map[string]any {
	now := testNow().Unix()
	return map[string]any{
		"iss": clientID, "sub": clientID, "aud": asIssuer + "/token",
		"jti": "ca-1", "iat": now - 5, "exp": now + 55,
	}
}

// with returns a copy of m with the given key/value pairs set; a nil value
// deletes the key.
func with(m map[string]any, kv ...any) map[string]any {
	out := maps.Clone(m)
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, k)
		} else {
			out[k] = kv[i+1]
		}
	}
	return out
}
