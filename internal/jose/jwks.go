package jose

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	gojose "github.com/go-jose/go-jose/v4"
)

// Limits on a JWK Set fetched from another party.
const (
	maxJWKSSize = 64 << 10
	maxJWKSKeys = 32
)

// defaultJWKSMaxAge is how long clients may cache our JWKS. Rotation
// pre-publishes keys for longer than this, so a cached copy never lacks a
// key in use; a removed key disappears from caches within this time.
const defaultJWKSMaxAge = 300 * time.Second

// PublicJWKS returns a JWK Set holding only the public half of each key,
// with its kid, alg and use and nothing else (no certificates, no private
// or symmetric material). Keys that have no public half, such as symmetric
// keys, are left out.
func PublicJWKS(keys ...gojose.JSONWebKey) gojose.JSONWebKeySet {
	set := gojose.JSONWebKeySet{Keys: make([]gojose.JSONWebKey, 0, len(keys))}
	for _, k := range keys {
		pub := gojose.JSONWebKey{Key: publicHalf(k.Key), KeyID: k.KeyID, Algorithm: k.Algorithm, Use: k.Use}
		if pub.Key == nil || !pub.Valid() {
			continue
		}
		set.Keys = append(set.Keys, pub)
	}
	return set
}

// publicHalf returns the public key of key, which may be a public key, a
// private key or any crypto.Signer, or nil when it has none.
func publicHalf(key any) crypto.PublicKey {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k == nil {
			return nil
		}
		key = &k.PublicKey
	case *rsa.PrivateKey:
		if k == nil {
			return nil
		}
		key = &k.PublicKey
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return nil
		}
		key = k.Public()
	case crypto.Signer: // a KMS or HSM key
		key = k.Public()
	}
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if k != nil {
			return k
		}
	case *rsa.PublicKey:
		if k != nil {
			return k
		}
	case ed25519.PublicKey:
		return k
	}
	return nil
}

// JWKSHandler serves the JWK Set that source returns, reduced to public
// keys by PublicJWKS. Responses may be cached for maxAge (0 means five
// minutes) and carry an ETag; If-None-Match is honoured. When source fails
// the answer is 503 temporarily_unavailable and is not cached, so that no
// cache pins an empty or partial key set.
func JWKSHandler(source func(ctx context.Context) (gojose.JSONWebKeySet, error), maxAge time.Duration) http.Handler {
	if maxAge <= 0 {
		maxAge = defaultJWKSMaxAge
	}
	// must-revalidate: once stale, a cache must not keep serving a set
	// from which a (compromised) key has been removed.
	cacheControl := "public, max-age=" + strconv.FormatInt(max(int64(maxAge/time.Second), 1), 10) + ", must-revalidate"

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Browser-based clients verify our tokens too; the set is public.
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("X-Content-Type-Options", "nosniff")
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodOptions:
			h.Set("Access-Control-Allow-Methods", "GET, HEAD")
			h.Set("Access-Control-Max-Age", "86400")
			w.WriteHeader(http.StatusNoContent)
			return
		default:
			h.Set("Allow", "GET, HEAD, OPTIONS")
			h.Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}

		set, err := source(r.Context())
		if err != nil {
			writeJWKSError(w, http.StatusServiceUnavailable, "temporarily_unavailable")
			return
		}
		body, err := json.Marshal(PublicJWKS(set.Keys...))
		if err != nil {
			writeJWKSError(w, http.StatusInternalServerError, "server_error")
			return
		}
		sum := sha256.Sum256(body)
		etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
		h.Set("ETag", etag)
		h.Set("Cache-Control", cacheControl)
		if etagMatches(r.Header.Values("If-None-Match"), etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
	})
}

func writeJWKSError(w http.ResponseWriter, status int, code string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"error":"` + code + `"}`))
}

// etagMatches applies the weak comparison of RFC 9110 §13.1.2
// (If-None-Match) to a strong etag.
func etagMatches(headers []string, etag string) bool {
	for _, h := range headers {
		for _, tag := range strings.Split(h, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
				return true
			}
		}
	}
	return false
}

// ParseJWKS parses a JWK Set fetched from a trusted issuer's jwks_uri.
//
// It refuses the whole document when it is over 64 KiB, is not a single
// JSON object, repeats a member name at any depth, has no "keys" array or
// more than 32 entries, when any entry carries private or symmetric key
// material, or when a key meant for us (use sig or absent, a supported alg,
// a kid) is invalid or repeats a kid: such a set is broken or hostile.
//
// Entries that are not meant for verifying our tokens are skipped, as
// RFC 7517 §5 asks: use other than "sig" (Keycloak publishes its RSA-OAEP
// encryption key next to its signing key), key_ops without "verify", no
// alg or an alg we do not support, no kid. Every key returned has passed
// the NewStaticKeySet checks.
//
// A well-formed set with nothing left ({"keys":[]}, or encryption keys
// only) is returned empty, without error: it is the issuer's authoritative
// statement that it has no signing keys, for instance after withdrawing a
// compromised one. Treating it as a broken document would let a cache keep
// serving the withdrawn keys as if the issuer were merely unreachable. The
// returned Keys slice is never nil, so the set marshals as {"keys":[]}.
func ParseJWKS(data []byte) (gojose.JSONWebKeySet, error) {
	fail := func(format string, args ...any) (gojose.JSONWebKeySet, error) {
		return gojose.JSONWebKeySet{}, fmt.Errorf("%w: "+format, append([]any{ErrInvalidKeySet}, args...)...)
	}
	if len(data) > maxJWKSSize {
		return fail("%d bytes, limit %d", len(data), maxJWKSSize)
	}
	members, err := scanObject(data)
	if err != nil {
		return fail("%s", detail(err))
	}
	var keysRaw json.RawMessage
	for _, m := range members {
		if m.name == "keys" {
			keysRaw = m.raw
		}
	}
	if len(keysRaw) == 0 || keysRaw[0] != '[' {
		return fail("no \"keys\" array")
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(keysRaw, &entries); err != nil {
		return fail("keys: %v", err)
	}
	if len(entries) > maxJWKSKeys {
		return fail("%d keys, limit %d", len(entries), maxJWKSKeys)
	}

	set := gojose.JSONWebKeySet{Keys: make([]gojose.JSONWebKey, 0, len(entries))}
	seen := make(map[string]bool, len(entries))
	for i, e := range entries {
		k, ok, err := parseJWK(e)
		if err != nil {
			return fail("key %d: %v", i, err)
		}
		if !ok {
			continue
		}
		if seen[k.KeyID] {
			return fail("key %d: duplicate kid %s", i, quote(k.KeyID))
		}
		seen[k.KeyID] = true
		set.Keys = append(set.Keys, k)
	}
	return set, nil
}

// parseJWK returns the verification key in raw, or ok == false when the
// entry is not a signature key we could use.
func parseJWK(raw json.RawMessage) (key gojose.JSONWebKey, ok bool, err error) {
	members, err := scanObject(raw)
	if err != nil {
		return key, false, errors.New(detail(err))
	}
	fields := make(map[string]json.RawMessage, len(members))
	for _, m := range members {
		fields[m.name] = m.raw
	}
	// Members that hold private or symmetric key material in some kty.
	for _, name := range [...]string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"} {
		if _, found := fields[name]; found {
			return key, false, fmt.Errorf("private or symmetric key material (%q)", name)
		}
	}
	str := func(name string) (string, bool, error) {
		v, found := fields[name]
		if !found {
			return "", false, nil
		}
		s, isStr := jsonString(v)
		if !isStr {
			return "", false, fmt.Errorf("%s is not a string", name)
		}
		return s, true, nil
	}

	use, hasUse, err := str("use")
	if err != nil || (hasUse && use != "sig") {
		return key, false, err
	}
	if ops, found := fields["key_ops"]; found {
		var list []string
		if err := json.Unmarshal(ops, &list); err != nil || ops[0] != '[' {
			return key, false, fmt.Errorf("key_ops is not an array of strings")
		}
		verify := false
		for _, op := range list {
			verify = verify || op == "verify"
		}
		if !verify {
			return key, false, nil
		}
	}
	alg, hasAlg, err := str("alg")
	if err != nil || !hasAlg || !supportedAlgorithm(alg) {
		return key, false, err
	}
	kid, hasKID, err := str("kid")
	if err != nil || !hasKID {
		return key, false, err
	}

	var k gojose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		return key, false, fmt.Errorf("kid %s: %v", quote(kid), err)
	}
	if k.KeyID != kid || k.Algorithm != alg || k.Use != use {
		return key, false, fmt.Errorf("kid %s: go-jose read different kid, alg or use", quote(kid))
	}
	key = gojose.JSONWebKey{Key: k.Key, KeyID: kid, Algorithm: alg, Use: use}
	if err := checkVerificationKey(key); err != nil {
		return gojose.JSONWebKey{}, false, fmt.Errorf("kid %s: %v", quote(kid), err)
	}
	return key, true, nil
}

// detail is the explanation of a rejection without its token-oriented
// sentinel text, for errors about documents that are not tokens.
func detail(err error) string {
	var r *rejection
	if errors.As(err, &r) {
		return r.detail
	}
	return err.Error()
}
