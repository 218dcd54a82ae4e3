package authserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gojose "github.com/go-jose/go-jose/v4"
	"golang.org/x/time/rate"

	"github.com/openxaa/xaa/idjag"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/keyring"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
	"github.com/openxaa/xaa/internal/store/storetest"
)

// The test world: this authorization server, two trusted IdPs (A signs
// ES256, B EdDSA), an RSA IdP that only exists to be impersonated with
// HS256, and an untrusted one.
const (
	asIssuer     = "https://as.example.com"
	idpA         = "https://idp-a.example.com"
	idpB         = "https://idp-b.example.com"
	idpRSA       = "https://idp-rsa.example.com"
	idpOff       = "https://idp-off.example.com" // trusted but disabled
	idpEvil      = "https://evil.example.com"
	resMCP       = "https://mcp.example.com/mcp"
	resOther     = "https://other.example.com/mcp" // governed, not in client1's policy
	resForeign   = "https://foreign.example.com/mcp"
	client1      = "client1"
	client1Sec   = "client1-secret-0123456789abcdefghijklmnopqrstuvwxyz"
	client2      = "client2" // policy narrows scopes to "a"
	client2Sec   = "client2-secret-0123456789abcdefghijklmnopqrstuvwxyz"
	clientNoPol  = "client-no-policy"
	clientNoSec  = "client-no-policy-secret-0123456789abcdefghijklmnop"
	blockedSub   = "mallory" // refused by idpA's subject hook
	auditKeyTest = "0123456789abcdef0123456789abcdef"
)

// testNow is the fixed clock: tokens minted by the harness never expire
// during a test, so benchmarks and fuzzing stay deterministic.
var testNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type idp struct {
	issuer string
	signer *jose.LocalSigner
	keys   *jose.StaticKeySet
}

func newIdP(t testing.TB, issuer string, alg string) *idp {
	t.Helper()
	var s *jose.LocalSigner
	var err error
	switch alg {
	case jose.ES256:
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		s, err = jose.NewLocalSigner(k, alg)
	case jose.EdDSA:
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		s, err = jose.NewLocalSigner(k, alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	ks, err := jose.NewStaticKeySet(jose.PublicJWKS(s.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	return &idp{issuer: issuer, signer: s, keys: ks}
}

type harness struct {
	t      testing.TB
	db     *sqlstore.DB
	keys   *keyring.Manager
	srv    *Server
	hs     *httptest.Server
	client *http.Client
	a, b   *idp
	rsaKey *rsa.PrivateKey
	rsaKID string
	cfg    Config
}

type harnessOptions struct {
	postgres bool
	// edit changes the Config before New.
	edit func(*Config)
}

func newHarness(t testing.TB, o *harnessOptions) *harness {
	t.Helper()
	if o == nil {
		o = &harnessOptions{}
	}
	ctx := context.Background()
	dbURL := "sqlite:" + filepath.Join(t.TempDir(), "as.db")
	if o.postgres {
		dbURL = storetest.PostgresURL(t)
	}
	db, err := sqlstore.Open(ctx, dbURL, nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	wk := make([]byte, 32)
	_, _ = rand.Read(wk)
	keys, err := keyring.New(ctx, db, keyring.Options{Owner: asIssuer, WrappingKey: wk, MaxTokenLifetime: time.Hour})
	if err != nil {
		t.Fatalf("keyring: %v", err)
	}
	h := &harness{t: t, db: db, keys: keys, a: newIdP(t, idpA, jose.ES256), b: newIdP(t, idpB, jose.EdDSA)}
	h.rsaKey, h.rsaKID = rsaIdPKey(t)
	rsaKeys, err := jose.NewStaticKeySet(jose.PublicJWKS(gojose.JSONWebKey{Key: &h.rsaKey.PublicKey, KeyID: h.rsaKID, Algorithm: jose.RS256, Use: "sig"}))
	if err != nil {
		t.Fatal(err)
	}
	off := newIdP(t, idpOff, jose.ES256)
	for _, c := range []store.Client{
		{ID: client1, Realm: asIssuer, AuthMethod: oauth.AuthMethodSecretBasic, SecretDigest: oauth.HashSecret(client1Sec), CreatedAt: testNow},
		{ID: client2, Realm: asIssuer, AuthMethod: oauth.AuthMethodSecretPost, SecretDigest: oauth.HashSecret(client2Sec), CreatedAt: testNow},
		{ID: clientNoPol, Realm: asIssuer, AuthMethod: oauth.AuthMethodSecretBasic, SecretDigest: oauth.HashSecret(clientNoSec), CreatedAt: testNow},
	} {
		if err := db.CreateClient(ctx, c); err != nil {
			t.Fatalf("create client: %v", err)
		}
	}
	h.cfg = Config{
		Issuer: asIssuer,
		Store:  db,
		Keys:   keys,
		TrustedIssuers: []TrustedIssuer{
			{Issuer: idpA, Keys: h.a.keys, Subjects: func(ctx context.Context, iss, sub string) (string, error) {
				if sub == blockedSub {
					return "", ErrUnknownSubject
				}
				return DefaultSubject(ctx, iss, sub)
			}},
			{Issuer: idpB, Keys: h.b.keys, Algorithms: []string{jose.EdDSA}},
			{Issuer: idpRSA, Keys: rsaKeys, Algorithms: []string{jose.RS256}},
			{Issuer: idpOff, Keys: off.keys, Disabled: true},
		},
		Resources: []Resource{
			{URI: resMCP, Scopes: []string{"a", "b", "c"}, Tools: map[string]ToolRule{
				"search":     {Scopes: []string{"a"}},
				"export/all": {Scopes: []string{"a", "b"}, ACRValues: []string{"urn:openxaa:acr:mfa", "urn:openxaa:acr:phr"}, MaxAge: 5 * time.Minute},
			}},
			{URI: resOther, Scopes: []string{"a", "x"}, AccessTokenLifetime: 600 * time.Second},
		},
		Clients: map[string]ClientPolicy{
			client1: {Resources: []string{resMCP}},
			client2: {Resources: []string{resMCP, resOther}, Scopes: []string{"a"}},
		},
		AuditKey:  []byte(auditKeyTest),
		RateLimit: &oauth.TokenLimit{PerClient: rate.Inf, PerAddress: rate.Inf},
		Now:       func() time.Time { return testNow },
	}
	if o.edit != nil {
		o.edit(&h.cfg)
	}
	h.srv, err = New(h.cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.hs = httptest.NewServer(h.srv.Handler())
	t.Cleanup(h.hs.Close)
	h.client = h.hs.Client()
	return h
}

func rsaIdPKey(t testing.TB) (*rsa.PrivateKey, string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	kid, err := jose.Thumbprint(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return k, kid
}

// claims is a mutable ID-JAG claim set; goodClaims is what a good IdP
// mints for client1 and resMCP.
type claims map[string]any

func goodClaims(iss string) claims {
	return claims{
		"iss":       iss,
		"sub":       "alice",
		"aud":       asIssuer,
		"client_id": client1,
		"jti":       randomJTI(),
		"iat":       testNow.Unix(),
		"exp":       testNow.Add(300 * time.Second).Unix(),
		"resource":  resMCP,
		"scope":     "a b",
		"acr":       "urn:openxaa:acr:mfa",
		"amr":       []string{"pwd", "otp"},
		"auth_time": testNow.Add(-time.Minute).Unix(),
	}
}

func randomJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// mint signs c with the IdP's key under typ (idjag.JWTType by default).
func (p *idp) mint(t testing.TB, c claims, typ ...string) string {
	t.Helper()
	ty := idjag.JWTType
	if len(typ) > 0 {
		ty = typ[0]
	}
	tok, err := p.signer.Sign(context.Background(), ty, map[string]any(c))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// good mints a good ID-JAG from IdP A, with edits applied.
func (h *harness) good(edit ...func(claims)) string {
	c := goodClaims(idpA)
	for _, e := range edit {
		e(c)
	}
	return h.a.mint(h.t, c)
}

// jb is a jwt-bearer form for assertion.
func jb(assertion string) url.Values {
	v := url.Values{"grant_type": {idjag.GrantTypeJWTBearer}}
	if assertion != "" {
		v.Set("assertion", assertion)
	}
	return v
}

type result struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r result) str(k string) string { s, _ := r.body[k].(string); return s }

// post sends form to /token as client1 with client_secret_basic.
func (h *harness) post(form url.Values) result {
	return h.postAs(form, client1, client1Sec, true)
}

// postAs sends form with the client's credentials, in the Authorization
// header (basic) or in the body; id "" sends none.
func (h *harness) postAs(form url.Values, id, secret string, basic bool) result {
	h.t.Helper()
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	if id != "" && !basic {
		f.Set("client_id", id)
		f.Set("client_secret", secret)
	}
	req, err := http.NewRequest(http.MethodPost, h.hs.URL+"/token", strings.NewReader(f.Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" && basic {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	return h.do(req)
}

func (h *harness) do(req *http.Request) result {
	h.t.Helper()
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		h.t.Fatalf("response %d is not JSON: %q", resp.StatusCode, raw)
	}
	return r
}

// wantError checks an OAuth error response.
func wantError(t testing.TB, r result, status int, code string) {
	t.Helper()
	if r.status != status || r.str("error") != code {
		t.Fatalf("got %d %s, want %d %s", r.status, r.raw, status, code)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	if _, ok := r.body["access_token"]; ok {
		t.Error("an error response carries an access_token")
	}
}

func wantOK(t testing.TB, r result) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("got %d %s, want 200", r.status, r.raw)
	}
}

// accessToken verifies an issued access token with the AS's keys.
func (h *harness) accessToken(raw, aud string) (*jose.Token, map[string]any) {
	h.t.Helper()
	tok, err := jose.Verify(context.Background(), raw, jose.AccessTokenProfile(),
		jose.SingleIssuer{Issuer: asIssuer, Keys: h.keys.KeySet()},
		jose.Expectations{Audiences: []string{aud}, Issuer: asIssuer, Now: testNow})
	if err != nil {
		h.t.Fatalf("access token does not verify: %v", err)
	}
	var m map[string]any
	if err := tok.Decode(&m); err != nil {
		h.t.Fatal(err)
	}
	return tok, m
}

// audit returns the events of a type.
func (h *harness) audit(typ string) []store.AuditEvent {
	h.t.Helper()
	evs, err := h.db.ListAudit(context.Background(), store.AuditFilter{Type: typ, Limit: 1000})
	if err != nil {
		h.t.Fatal(err)
	}
	return evs
}

// compact assembles a JWS from raw header and payload JSON and a signature.
func compact(header, payload string, sig []byte) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(payload)) + "." + enc(sig)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
