package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gojose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/idjag"
	"github.com/openxaa/xaa/internal/jose"
)

const (
	testIssuer   = "https://idp.test.example"
	testAudience = "http://127.0.0.1/as"
	testClient   = "bench-client"
	testSecret   = "bench secret/with+specials"
)

func testKey(t *testing.T, alg string) *signingKey {
	t.Helper()
	var (
		key crypto.Signer
		err error
	)
	switch alg {
	case "ES256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS256":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	k, err := newSigningKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testSpec() assertionSpec {
	return assertionSpec{
		Issuer: testIssuer, Audience: testAudience, ClientID: testClient,
		SubPrefix: "user-", Subjects: 2, Resource: "https://mcp.test.example/files", Scope: "files:read",
		Type: idjag.JWTType, Lifetime: 5 * time.Minute,
	}
}

// verifier checks assertions the way OpenXAA's authorization server does
// (the ID-JAG profile: typ, alg, single aud, jti, lifetime cap).
func verifier(t *testing.T, k *signingKey) func(ctx context.Context, raw string) (*jose.Token, error) {
	t.Helper()
	keys, err := jose.NewStaticKeySet(jose.PublicJWKS(k.public))
	if err != nil {
		t.Fatal(err)
	}
	issuers := jose.SingleIssuer{Issuer: testIssuer, Keys: keys}
	return func(ctx context.Context, raw string) (*jose.Token, error) {
		return jose.Verify(ctx, raw, jose.IDJAGProfile(), issuers, jose.Expectations{Audiences: []string{testAudience}})
	}
}

// TestMintedAssertionsVerify: every minted body is a jwt-bearer form whose
// assertion passes OpenXAA's strict ID-JAG verification with the key's
// public JWK, for both algorithms, with a distinct jti each and the
// subjects cycled.
func TestMintedAssertionsVerify(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"ES256", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			k := testKey(t, alg)
			m, err := newMinter(k, testSpec(), url.Values{"resource": {"https://mcp.test.example/files"}})
			if err != nil {
				t.Fatal(err)
			}
			bodies, err := m.bodies(0, 5)
			if err != nil {
				t.Fatal(err)
			}
			verify := verifier(t, k)
			seen := map[string]bool{}
			var subs []string
			for _, b := range bodies {
				form, err := url.ParseQuery(b)
				if err != nil {
					t.Fatal(err)
				}
				if got := form.Get("grant_type"); got != idjag.GrantTypeJWTBearer {
					t.Errorf("grant_type = %q", got)
				}
				if got := form.Get("resource"); got != "https://mcp.test.example/files" {
					t.Errorf("resource parameter = %q", got)
				}
				tok, err := verify(t.Context(), form.Get("assertion"))
				if err != nil {
					t.Fatalf("assertion does not verify: %v", err)
				}
				if tok.Header.Algorithm != alg || tok.Header.KeyID != k.kid {
					t.Errorf("header alg %q kid %q, want %q %q", tok.Header.Algorithm, tok.Header.KeyID, alg, k.kid)
				}
				if got := tok.Expiry.Sub(tok.IssuedAt); got != 5*time.Minute {
					t.Errorf("exp - iat = %s, want 5m", got)
				}
				if seen[tok.ID] {
					t.Errorf("jti %q minted twice", tok.ID)
				}
				seen[tok.ID] = true
				subs = append(subs, tok.Subject)
			}
			if diff := cmp.Diff([]string{"user-0", "user-1", "user-0", "user-1", "user-0"}, subs); diff != "" {
				t.Errorf("subjects (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTwoMintersNeverShareJTI: the jti prefix is random per minter, so
// two runs against one database never collide.
func TestTwoMintersNeverShareJTI(t *testing.T) {
	t.Parallel()
	k := testKey(t, "ES256")
	verify := verifier(t, k)
	var jtis []string
	for range 2 {
		m, err := newMinter(k, testSpec(), nil)
		if err != nil {
			t.Fatal(err)
		}
		a, err := m.assertion(0)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := verify(t.Context(), a)
		if err != nil {
			t.Fatal(err)
		}
		jtis = append(jtis, tok.ID)
	}
	if jtis[0] == jtis[1] {
		t.Errorf("two minters both produced jti %q for request 0", jtis[0])
	}
}

func TestNewMinterRefusesIncompleteSpecs(t *testing.T) {
	t.Parallel()
	k := testKey(t, "ES256")
	tests := []struct {
		name   string
		change func(*assertionSpec)
	}{
		{"no issuer", func(s *assertionSpec) { s.Issuer = "" }},
		{"no audience", func(s *assertionSpec) { s.Audience = "" }},
		{"no subjects", func(s *assertionSpec) { s.Subjects = 0 }},
		{"no lifetime", func(s *assertionSpec) { s.Lifetime = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := testSpec()
			tt.change(&s)
			if _, err := newMinter(k, s, nil); err == nil {
				t.Error("newMinter accepted the spec")
			}
		})
	}
}

// tokenEndpoint is a real single-use jwt-bearer endpoint: it authenticates
// the client (either method), verifies the assertion strictly and redeems
// each jti once; refuseEvery > 0 also refuses every n-th good request.
type tokenEndpoint struct {
	verify      func(ctx context.Context, raw string) (*jose.Token, error)
	refuseEvery int64

	n       atomic.Int64
	mu      sync.Mutex
	used    map[string]int
	badAuth int
}

func (e *tokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	fail := func(status int, code string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"error":"` + code + `"}`))
	}
	if id != testClient || secret != testSecret {
		e.mu.Lock()
		e.badAuth++
		e.mu.Unlock()
		fail(http.StatusUnauthorized, "invalid_client")
		return
	}
	tok, err := e.verify(r.Context(), r.PostFormValue("assertion"))
	if err != nil || r.PostFormValue("grant_type") != idjag.GrantTypeJWTBearer {
		fail(http.StatusBadRequest, "invalid_grant")
		return
	}
	e.mu.Lock()
	e.used[tok.ID]++
	first := e.used[tok.ID] == 1
	e.mu.Unlock()
	if !first || (e.refuseEvery > 0 && e.n.Add(1)%e.refuseEvery == 0) {
		fail(http.StatusBadRequest, "invalid_grant")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"access_token":"x","token_type":"Bearer","expires_in":300}`))
}

func newEndpoint(t *testing.T, k *signingKey, refuseEvery int64) (*tokenEndpoint, string) {
	t.Helper()
	e := &tokenEndpoint{verify: verifier(t, k), refuseEvery: refuseEvery, used: map[string]int{}}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return e, srv.URL + "/token"
}

// TestDriveSendsEachAssertionOnceOverKeptAliveConnections: against a
// single-use endpoint every request succeeds (so no assertion was sent
// twice), the endpoint saw each jti exactly once, the workers opened no
// more connections than there are workers, and the pool running out is
// counted rather than fatal.
func TestDriveSendsEachAssertionOnceOverKeptAliveConnections(t *testing.T) {
	t.Parallel()
	for _, method := range []string{"client_secret_basic", "client_secret_post"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			k := testKey(t, "ES256")
			e, tokenURL := newEndpoint(t, k, 0)
			m, err := newMinter(k, testSpec(), nil)
			if err != nil {
				t.Fatal(err)
			}
			pool, err := m.bodies(0, 20) // small: the rest is signed during the load
			if err != nil {
				t.Fatal(err)
			}
			src := &bodySource{m: m, pool: pool}
			res, err := drive(t.Context(), loadOptions{
				URL: tokenURL, ClientID: testClient, ClientSecret: testSecret, AuthMethod: method,
				Workers: 4, Warmup: 50 * time.Millisecond, Duration: 200 * time.Millisecond, Timeout: 10 * time.Second,
			}, src)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Failures) != 0 || res.OK != res.Requests || res.Requests == 0 {
				t.Errorf("requests %d, ok %d, failures %v; want all good", res.Requests, res.OK, res.Failures)
			}
			if res.Dials > 4 {
				t.Errorf("opened %d connections for 4 workers", res.Dials)
			}
			if len(res.latencies) != res.Requests {
				t.Errorf("%d latencies for %d requests", len(res.latencies), res.Requests)
			}
			if int(src.next.Load()) > 20 && res.InlineMinted == 0 {
				t.Errorf("%d bodies taken from a pool of 20, but none counted as signed during the load", src.next.Load())
			}
			e.mu.Lock()
			defer e.mu.Unlock()
			if e.badAuth != 0 {
				t.Errorf("%d requests failed client authentication", e.badAuth)
			}
			if int64(len(e.used)) != src.next.Load() {
				t.Errorf("endpoint saw %d distinct jtis, the load generator took %d bodies", len(e.used), src.next.Load())
			}
			for jti, n := range e.used {
				if n != 1 {
					t.Errorf("jti %s presented %d times", jti, n)
				}
			}
		})
	}
}

// TestDriveCountsRefusals: refusals are counted by status and OAuth error,
// and every measured request is either ok or a failure.
func TestDriveCountsRefusals(t *testing.T) {
	t.Parallel()
	k := testKey(t, "ES256")
	_, tokenURL := newEndpoint(t, k, 3)
	m, err := newMinter(k, testSpec(), nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := drive(t.Context(), loadOptions{
		URL: tokenURL, ClientID: testClient, ClientSecret: testSecret, AuthMethod: "client_secret_basic",
		Workers: 2, Duration: 200 * time.Millisecond, Timeout: 10 * time.Second,
	}, &bodySource{m: m})
	if err != nil {
		t.Fatal(err)
	}
	refused := res.Failures["400 invalid_grant"]
	if refused == 0 || len(res.Failures) != 1 || res.OK+refused != res.Requests {
		t.Errorf("requests %d, ok %d, failures %v; want about a third 400 invalid_grant", res.Requests, res.OK, res.Failures)
	}
}

// TestReplayCheck passes against a single-use endpoint and fails against
// one that redeems an assertion twice.
func TestReplayCheck(t *testing.T) {
	t.Parallel()
	k := testKey(t, "ES256")
	m, err := newMinter(k, testSpec(), nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := func(u string) loadOptions {
		return loadOptions{URL: u, ClientID: testClient, ClientSecret: testSecret, AuthMethod: "client_secret_basic", Timeout: 10 * time.Second}
	}

	_, singleUse := newEndpoint(t, k, 0)
	got, err := replayCheck(t.Context(), opts(singleUse), &bodySource{m: m})
	if err != nil || !strings.Contains(got, "400 invalid_grant") {
		t.Errorf("single-use endpoint: %q, %v", got, err)
	}

	lax := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"access_token":"x"}`))
	}))
	defer lax.Close()
	if _, err := replayCheck(t.Context(), opts(lax.URL), &bodySource{m: m}); err == nil || !strings.Contains(err.Error(), "redeemed twice") {
		t.Errorf("endpoint without replay protection: err = %v, want redeemed twice", err)
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		body   string
		err    error
		want   string
	}{
		{200, `{"access_token":"a","token_type":"Bearer"}`, nil, ""},
		{200, `{"token_type":"Bearer"}`, nil, "200 without access_token"},
		{400, `{"error":"invalid_grant","error_description":"x"}`, nil, "400 invalid_grant"},
		{401, `{"error":"invalid_client"}`, nil, "401 invalid_client"},
		{503, `Service Unavailable`, nil, "503 (no OAuth error)"},
		{500, `{}`, nil, "500 (no OAuth error)"},
		{200, ``, errors.New("unexpected EOF"), "200 body read: unexpected EOF"},
	}
	for _, tt := range tests {
		if got := classify(tt.status, []byte(tt.body), tt.err); got != tt.want {
			t.Errorf("classify(%d, %q, %v) = %q, want %q", tt.status, tt.body, tt.err, got, tt.want)
		}
	}
}

func TestParamFlag(t *testing.T) {
	t.Parallel()
	p := paramFlag{}
	for _, ok := range []string{"scope=files:read", "resource=https://mcp.example/x?a=b", "audience="} {
		if err := p.Set(ok); err != nil {
			t.Errorf("Set(%q) = %v", ok, err)
		}
	}
	want := url.Values{"scope": {"files:read"}, "resource": {"https://mcp.example/x?a=b"}, "audience": {""}}
	if diff := cmp.Diff(want, url.Values(p)); diff != "" {
		t.Errorf("params (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"noequals", "=v", "grant_type=x", "assertion=x", "client_id=x", "client_secret=x"} {
		if err := p.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}

func TestNewSigningKeyRefusesWeakOrForeignKeys(t *testing.T) {
	t.Parallel()
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]crypto.Signer{"P-384": p384, "RSA-1024": rsa1024} {
		if _, err := newSigningKey(key); err == nil {
			t.Errorf("%s key accepted", name)
		}
	}
	// The published JWK is public only and names its alg.
	k := testKey(t, "ES256")
	if !k.public.IsPublic() || k.public.Algorithm != string(gojose.ES256) || k.public.Use != "sig" {
		t.Errorf("public JWK = %+v", k.public)
	}
}

func TestBackendDatabase(t *testing.T) {
	t.Parallel()
	tests := []struct {
		title  string
		want   string
		wantOK bool
	}{
		{"postgres: 15/main: postgres hydra_bench 127.0.0.1(37966) COMMIT\x00\x00", "hydra_bench", true},
		{"postgres: postgres xaa_bench 127.0.0.1(40000) idle", "xaa_bench", true},
		{"postgres: 15/main: app test [local] idle in transaction", "test", true},
		{"postgres: 15/main: checkpointer ", "", false},
		{"postgres: 15/main: logical replication launcher", "", false},
		{"/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main", "", false},
		{"./jwtbearer load -pg-db hydra_bench 127.0.0.1(1)", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := backendDatabase(tt.title)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("backendDatabase(%q) = %q, %v; want %q, %v", tt.title, got, ok, tt.want, tt.wantOK)
		}
	}
}
