package jose

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gojose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

// privateMembers are JWK members that must never be published.
func privateMembers() []string {
	return []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv", "x5c", "x5u"}
}

// assertPublicOnly fails if the JSON of a JWK Set contains any member that
// carries private or symmetric key material.
func assertPublicOnly(t *testing.T, data []byte) {
	t.Helper()
	var set struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		t.Fatalf("JWKS JSON: %v", err)
	}
	for i, k := range set.Keys {
		for _, m := range privateMembers() {
			if _, ok := k[m]; ok {
				t.Errorf("key %d publishes %q: %s", i, m, data)
			}
		}
	}
}

func TestPublicJWKS(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var nilEC *ecdsa.PrivateKey
	in := []gojose.JSONWebKey{
		{Key: f.es.priv, KeyID: "es", Algorithm: ES256, Use: "sig"},
		{Key: f.ed.priv, KeyID: "ed", Algorithm: EdDSA, Use: "sig"},
		{Key: f.rs.priv, KeyID: "rs", Algorithm: RS256},
		{Key: opaqueSigner{f.esB.priv}, KeyID: "kms", Algorithm: ES256, Use: "sig"},
		{Key: f.esB.priv.Public(), KeyID: "pub", Algorithm: ES256, Use: "sig"},
		{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "hs", Algorithm: "HS256"},
		{Key: nil, KeyID: "nil"},
		{Key: nilEC, KeyID: "typed-nil"},
		{Key: "not a key", KeyID: "string"},
	}
	set := PublicJWKS(in...)
	data, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	assertPublicOnly(t, data)
	var got []string
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Errorf("key %q is not public", k.KeyID)
		}
		got = append(got, k.KeyID+"/"+k.Algorithm+"/"+k.Use)
	}
	want := []string{"es/ES256/sig", "ed/EdDSA/sig", "rs/RS256/", "kms/ES256/sig", "pub/ES256/sig"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PublicJWKS keys (-want +got):\n%s", diff)
	}
	if empty, _ := json.Marshal(PublicJWKS()); string(empty) != `{"keys":[]}` {
		t.Errorf("PublicJWKS() = %s, want an empty keys array", empty)
	}
}

func TestJWKSHandler(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var fail atomic.Bool
	source := func(context.Context) (gojose.JSONWebKeySet, error) {
		if fail.Load() {
			return gojose.JSONWebKeySet{}, errors.New("key store down")
		}
		// The source hands out private keys by mistake; nothing private
		// may leave the handler.
		return gojose.JSONWebKeySet{Keys: []gojose.JSONWebKey{
			{Key: f.es.priv, KeyID: f.es.kid, Algorithm: ES256, Use: "sig"},
			{Key: f.ed.priv, KeyID: f.ed.kid, Algorithm: EdDSA, Use: "sig"},
		}}, nil
	}
	srv := httptest.NewServer(JWKSHandler(source, 0))
	t.Cleanup(srv.Close)
	hourly := httptest.NewServer(JWKSHandler(source, time.Hour))
	t.Cleanup(hourly.Close)

	do := func(t *testing.T, url, method string, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}

	// The subtests share the server state and so run in sequence.
	resp, body := do(t, srv.URL, http.MethodGet, nil)
	etag := resp.Header.Get("ETag")
	t.Run("GET", func(t *testing.T) {
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		wantHeaders := map[string]string{
			"Content-Type":                "application/json",
			"Cache-Control":               "public, max-age=300, must-revalidate",
			"Access-Control-Allow-Origin": "*",
			"X-Content-Type-Options":      "nosniff",
		}
		for k, v := range wantHeaders {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 10 {
			t.Errorf("ETag = %q", etag)
		}
		assertPublicOnly(t, body)
		set, err := ParseJWKS(body)
		if err != nil {
			t.Fatalf("ParseJWKS of our own JWKS: %v", err)
		}
		if len(set.Keys) != 2 {
			t.Errorf("%d keys, want 2", len(set.Keys))
		}
	})
	t.Run("HEAD", func(t *testing.T) {
		resp, body := do(t, srv.URL, http.MethodHead, nil)
		if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.Header.Get("ETag") != etag {
			t.Errorf("HEAD: status %d, %d body bytes, ETag %q", resp.StatusCode, len(body), resp.Header.Get("ETag"))
		}
	})
	t.Run("If-None-Match", func(t *testing.T) {
		for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
			resp, body := do(t, srv.URL, http.MethodGet, map[string]string{"If-None-Match": inm})
			if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
				t.Errorf("If-None-Match %s: status %d, %d body bytes", inm, resp.StatusCode, len(body))
			}
			if resp.Header.Get("ETag") != etag || resp.Header.Get("Cache-Control") == "" {
				t.Errorf("304 without ETag or Cache-Control: %v", resp.Header)
			}
		}
		resp, _ := do(t, srv.URL, http.MethodGet, map[string]string{"If-None-Match": `"stale"`})
		if resp.StatusCode != http.StatusOK {
			t.Errorf("stale If-None-Match: status %d", resp.StatusCode)
		}
	})
	t.Run("methods", func(t *testing.T) {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
			resp, _ := do(t, srv.URL, m, nil)
			if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(resp.Header.Get("Allow"), "GET") {
				t.Errorf("%s: status %d, Allow %q", m, resp.StatusCode, resp.Header.Get("Allow"))
			}
		}
		resp, _ := do(t, srv.URL, http.MethodOptions, nil)
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("OPTIONS: status %d, headers %v", resp.StatusCode, resp.Header)
		}
	})
	t.Run("max age", func(t *testing.T) {
		resp, err := hourly.Client().Get(hourly.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got, want := resp.Header.Get("Cache-Control"), "public, max-age=3600, must-revalidate"; got != want {
			t.Errorf("Cache-Control = %q, want %q", got, want)
		}
	})
	t.Run("source fails", func(t *testing.T) {
		fail.Store(true)
		defer fail.Store(false)
		resp, body := do(t, srv.URL, http.MethodGet, map[string]string{"If-None-Match": etag})
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("status %d, want 503", resp.StatusCode)
		}
		if got := resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control = %q, want no-store", got)
		}
		if got := resp.Header.Get("Content-Type"); got != "application/json" {
			t.Errorf("Content-Type = %q", got)
		}
		if string(body) != `{"error":"temporarily_unavailable"}` {
			t.Errorf("body = %s", body)
		}
	})
}

// jwkJSON renders k as a JWK object, with members changed or removed (nil).
func jwkJSON(t *testing.T, k gojose.JSONWebKey, kv ...any) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(mustJSON(t, k)), &m); err != nil {
		t.Fatal(err)
	}
	return mustJSON(t, with(m, kv...))
}

func jwks(entries ...string) string { return `{"keys":[` + strings.Join(entries, ",") + `]}` }

func TestParseJWKS(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	es, ed, rs := f.es.public(), f.ed.public(), f.rs.public()
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// Keycloak publishes an encryption key beside its signing key.
	keycloakEnc := jwkJSON(t, rs, "kid", "enc-1", "use", "enc", "alg", "RSA-OAEP")
	many := make([]string, maxJWKSKeys+1)
	for i := range many {
		many[i] = jwkJSON(t, es, "kid", fmt.Sprint("k", i))
	}

	accepts := []struct {
		name string
		data string
		kids []string
	}{
		{"ES256, EdDSA, RS256", jwks(jwkJSON(t, es), jwkJSON(t, ed), jwkJSON(t, rs)), []string{"es-a", "ed-a", "rs-a"}},
		{"Keycloak-style with an encryption key", jwks(keycloakEnc, jwkJSON(t, rs)), []string{"rs-a"}},
		{"key without alg skipped", jwks(jwkJSON(t, es, "alg", nil, "kid", "no-alg"), jwkJSON(t, ed)), []string{"ed-a"}},
		{"key without kid skipped", jwks(jwkJSON(t, es, "kid", nil), jwkJSON(t, ed)), []string{"ed-a"}},
		{"unsupported alg skipped", jwks(jwkJSON(t, gojose.JSONWebKey{Key: p384.Public(), KeyID: "p384", Algorithm: "ES384"}), jwkJSON(t, ed)), []string{"ed-a"}},
		{"unknown kty with unknown alg skipped", jwks(`{"kty":"AKP","alg":"ML-DSA-44","kid":"pq","pub":"AAAA"}`, jwkJSON(t, ed)), []string{"ed-a"}},
		{"key_ops without verify skipped", jwks(jwkJSON(t, es, "use", nil, "key_ops", []string{"encrypt"}), jwkJSON(t, ed)), []string{"ed-a"}},
		{"key_ops with verify kept", jwks(jwkJSON(t, es, "use", nil, "key_ops", []string{"verify"})), []string{"es-a"}},
		{"use absent", jwks(jwkJSON(t, es, "use", nil)), []string{"es-a"}},
		{"extra top-level members", `{"keys":[` + jwkJSON(t, es) + `],"issuer":"x"}`, []string{"es-a"}},
		{"x5t and extra members ignored", jwks(jwkJSON(t, es, "x5t", strings.Repeat("A", 27), "ext", true)), []string{"es-a"}},
		{"exactly 32 keys", jwks(many[:maxJWKSKeys]...), nil},
	}
	for _, tc := range accepts {
		t.Run("accept "+tc.name, func(t *testing.T) {
			t.Parallel()
			set, err := ParseJWKS([]byte(tc.data))
			if err != nil {
				t.Fatalf("ParseJWKS: %v", err)
			}
			if _, err := NewStaticKeySet(set); err != nil {
				t.Errorf("NewStaticKeySet of parsed set: %v", err)
			}
			if tc.kids == nil {
				return
			}
			var kids []string
			for _, k := range set.Keys {
				kids = append(kids, k.KeyID)
				if len(k.Certificates) != 0 || k.CertificatesURL != nil {
					t.Errorf("key %q keeps certificate data", k.KeyID)
				}
			}
			if diff := cmp.Diff(tc.kids, kids); diff != "" {
				t.Errorf("kids (-want +got):\n%s", diff)
			}
		})
	}

	rejects := []struct {
		name string
		data string
	}{
		{"too large", `{"keys":[` + jwkJSON(t, es) + `],"pad":"` + strings.Repeat("a", maxJWKSSize) + `"}`},
		{"empty", ``},
		{"not JSON", `keys`},
		{"array", `[` + jwkJSON(t, es) + `]`},
		{"invalid UTF-8", `{"keys":[` + jwkJSON(t, es) + `],"x":"` + "\xff" + `"}`},
		{"trailing data", jwks(jwkJSON(t, es)) + `{}`},
		{"no keys member", `{"key":[]}`},
		{"keys not an array", `{"keys":{}}`},
		{"keys null", `{"keys":null}`},
		{"duplicate keys member", `{"keys":[` + jwkJSON(t, es) + `],"keys":[]}`},
		{"duplicate member in a key", jwks(strings.TrimSuffix(jwkJSON(t, es), "}") + `,"kid":"other"}`)},
		{"case-variant member in a key", jwks(strings.TrimSuffix(jwkJSON(t, es), "}") + `,"KID":"other"}`)},
		{"too many keys", jwks(many...)},
		{"entry not an object", jwks(`"es-a"`)},
		{"private EC key", jwks(jwkJSON(t, gojose.JSONWebKey{Key: f.es.priv, KeyID: "es", Algorithm: ES256}))},
		{"private RSA key", jwks(jwkJSON(t, gojose.JSONWebKey{Key: f.rs.priv, KeyID: "rs", Algorithm: RS256}))},
		{"private key marked enc", jwks(jwkJSON(t, gojose.JSONWebKey{Key: f.rs.priv, KeyID: "rs", Algorithm: "RSA-OAEP", Use: "enc"}), jwkJSON(t, es))},
		{"symmetric key", jwks(`{"kty":"oct","k":"c2VjcmV0","kid":"hs","alg":"HS256"}`, jwkJSON(t, es))},
		{"duplicate kid", jwks(jwkJSON(t, es), jwkJSON(t, ed, "kid", "es-a"))},
		{"RSA 1024", jwks(jwkJSON(t, gojose.JSONWebKey{Key: rsa1024.Public(), KeyID: "weak", Algorithm: RS256}))},
		{"P-384 key claiming ES256", jwks(jwkJSON(t, gojose.JSONWebKey{Key: p384.Public(), KeyID: "p384", Algorithm: ES256}))},
		{"EC key claiming RS256", jwks(jwkJSON(t, es, "alg", RS256))},
		{"RSA key claiming EdDSA", jwks(jwkJSON(t, rs, "alg", EdDSA))},
		{"point not on the curve", jwks(jwkJSON(t, es, "y", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))},
		{"kid too long", jwks(jwkJSON(t, es, "kid", strings.Repeat("k", 129)))},
		{"kid not a string", jwks(jwkJSON(t, es, "kid", 7))},
		{"alg not a string", jwks(jwkJSON(t, es, "alg", []string{ES256}))},
		{"use not a string", jwks(jwkJSON(t, es, "use", 1))},
		{"key_ops not an array", jwks(jwkJSON(t, es, "use", nil, "key_ops", "verify"))},
		{"nested too deep", jwks(jwkJSON(t, es, "ext", json.RawMessage(strings.Repeat("[", 40)+strings.Repeat("]", 40))))},
	}
	for _, tc := range rejects {
		t.Run("reject "+tc.name, func(t *testing.T) {
			t.Parallel()
			set, err := ParseJWKS([]byte(tc.data))
			if !errors.Is(err, ErrInvalidKeySet) {
				t.Fatalf("ParseJWKS = %d keys, %v; want ErrInvalidKeySet", len(set.Keys), err)
			}
			if len(set.Keys) != 0 {
				t.Errorf("ParseJWKS returned keys with an error")
			}
		})
	}
}

// A well-formed set without a single usable signing key is the issuer
// withdrawing its keys: an empty set, not an error (see ParseJWKS).
func TestParseJWKSNoUsableKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	es, rs := f.es.public(), f.rs.public()
	tests := []struct {
		name string
		data string
	}{
		{"empty keys", `{"keys":[]}`},
		{"empty keys with whitespace and other members", ` { "issuer" : "x", "keys" : [ ] } `},
		{"only encryption keys", jwks(jwkJSON(t, rs, "kid", "enc-1", "use", "enc", "alg", "RSA-OAEP"))},
		{"only key_ops without verify", jwks(jwkJSON(t, es, "use", nil, "key_ops", []string{"encrypt"}))},
		{"only keys without alg or kid", jwks(jwkJSON(t, es, "alg", nil), jwkJSON(t, rs, "kid", nil))},
		{"only unsupported algs", jwks(`{"kty":"AKP","alg":"ML-DSA-44","kid":"pq","pub":"AAAA"}`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			set, err := ParseJWKS([]byte(tc.data))
			if err != nil {
				t.Fatalf("ParseJWKS: %v", err)
			}
			if set.Keys == nil || len(set.Keys) != 0 {
				t.Fatalf("ParseJWKS = %#v, want an empty non-nil Keys", set.Keys)
			}
			if out, err := json.Marshal(set); err != nil || string(out) != `{"keys":[]}` {
				t.Errorf("marshalled = %s, %v", out, err)
			}
			ks, err := NewStaticKeySet(set)
			if err != nil {
				t.Fatalf("NewStaticKeySet: %v", err)
			}
			for _, kid := range []string{"es-a", "rs-a", "enc-1", "pq", ""} {
				if _, err := ks.Key(t.Context(), kid); !errors.Is(err, ErrUnknownKey) {
					t.Errorf("Key(%q) = %v, want ErrUnknownKey", kid, err)
				}
			}
		})
	}
}
