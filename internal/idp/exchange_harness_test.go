package idp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/openxaa/xaa/idjag"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/keyring"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/policy"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
)

// The test organisation. app1 holds client_id "as-client-1" at the AS, so
// the ID-JAG's client_id differs from the IdP client_id (B35).
const (
	testIssuer   = "https://idp.example.com"
	testAS       = "https://as.example.com"
	testAS2      = "https://as2.example.com"
	testResource = "https://mcp.example.com/mcp"
	testRes2     = "https://other.example.com/mcp"
	app1         = "app1"
	app1Secret   = "app1-secret-0123456789abcdefghijklmnopqrstuvwxyz"
	app2         = "app2"
	app2Secret   = "app2-secret-0123456789abcdefghijklmnopqrstuvwxyz"
	appJWT       = "app-jwt"
	app1AtAS     = "as-client-1"
	userAlice    = "u_alice" // staff + eng
	userBob      = "u_bob"   // staff
	userCarol    = "u_carol" // disabled, staff + eng
	userDave     = "u_dave"  // no groups
	connApp1     = "c_app1_mcp"
	scopeRead    = "files:read"
	scopeWrite   = "files:write"
)

type harness struct {
	t      testing.TB
	db     *sqlstore.DB
	dbPath string
	raw    *sql.DB
	keys   *keyring.Manager
	srv    *Server
	hs     *httptest.Server
	client *http.Client
}

type harnessOptions struct {
	limits *oauth.TokenLimit
}

func newHarness(t testing.TB, o *harnessOptions) *harness {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "xaa.db")
	db, err := sqlstore.Open(ctx, "sqlite:"+path, nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	wk := make([]byte, 32)
	_, _ = rand.Read(wk)
	keys, err := keyring.New(ctx, db, keyring.Options{Owner: testIssuer, WrappingKey: wk, MaxTokenLifetime: time.Hour})
	if err != nil {
		t.Fatalf("keyring: %v", err)
	}
	limits := &oauth.TokenLimit{PerClient: rate.Inf, PerAddress: rate.Inf}
	if o != nil && o.limits != nil {
		limits = o.limits
	}
	srv, err := New(Config{
		Issuer:         testIssuer,
		Store:          db,
		Keys:           keys,
		AuditKey:       []byte("0123456789abcdef0123456789abcdef"),
		TokenRateLimit: limits,
	})
	if err != nil {
		t.Fatalf("idp.New: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	h := &harness{t: t, db: db, dbPath: path, raw: raw, keys: keys, srv: srv, hs: hs, client: hs.Client()}
	h.seed(ctx)
	return h
}

// with returns a shallow copy of h reporting to t (a fuzz target must
// not call the *testing.F's helpers).
func (h *harness) with(t testing.TB) *harness {
	c := *h
	c.t = t
	return &c
}

// seed builds the organisation through the store, as `xaa seed` would.
func (h *harness) seed(ctx context.Context) {
	t := h.t
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("seed: %v", err)
		}
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	otherSigner, err := jose.NewLocalSigner(other, jose.ES256)
	must(err)
	jwks, err := json.Marshal(jose.PublicJWKS(otherSigner.PublicKey()))
	must(err)
	for _, c := range []store.Client{
		{Realm: Realm, ID: app1, AuthMethod: oauth.AuthMethodSecretBasic, SecretDigest: oauth.HashSecret(app1Secret), CreatedAt: now},
		{Realm: Realm, ID: app2, AuthMethod: oauth.AuthMethodSecretBasic, SecretDigest: oauth.HashSecret(app2Secret), CreatedAt: now},
		{Realm: Realm, ID: appJWT, AuthMethod: oauth.AuthMethodPrivateKeyJWT, JWKS: jwks, CreatedAt: now},
	} {
		must(h.db.CreateClient(ctx, c))
	}
	for _, g := range []string{"staff", "eng"} {
		must(h.db.CreateGroup(ctx, store.Group{Name: g, CreatedAt: now, UpdatedAt: now}))
	}
	for _, u := range []struct {
		id, name string
		disabled bool
		groups   []string
	}{
		{userAlice, "alice", false, []string{"staff", "eng"}},
		{userBob, "bob", false, []string{"staff"}},
		{userCarol, "carol", true, []string{"staff", "eng"}},
		{userDave, "dave", false, nil},
	} {
		must(h.db.CreateUser(ctx, store.User{ID: u.id, Username: u.name, Email: u.name + "@example.com", Disabled: u.disabled, CreatedAt: now, UpdatedAt: now}))
		for _, g := range u.groups {
			must(h.db.AddMember(ctx, g, u.id))
		}
	}
	must(h.db.CreateAuthServer(ctx, store.AuthServer{Issuer: testAS, Name: "AS", ClientIDs: map[string]string{app1: app1AtAS, app2: "as-client-2", appJWT: "as-client-jwt"}, CreatedAt: now, UpdatedAt: now}))
	must(h.db.CreateAuthServer(ctx, store.AuthServer{Issuer: testAS2, Name: "AS2", ClientIDs: map[string]string{app1: "as2-client-1"}, CreatedAt: now, UpdatedAt: now}))
	scopes := []store.ResourceScope{{Name: scopeRead}, {Name: scopeWrite, Sensitive: true}, {Name: "admin"}}
	must(h.db.CreateResource(ctx, store.Resource{URI: testResource, Name: "MCP", AuthServerIssuer: testAS, Scopes: scopes, CreatedAt: now, UpdatedAt: now}))
	must(h.db.CreateResource(ctx, store.Resource{URI: testRes2, Name: "Other", AuthServerIssuer: testAS2, Scopes: scopes, CreatedAt: now, UpdatedAt: now}))
	must(h.db.CreateConnection(ctx, store.Connection{
		ID: connApp1, AppID: app1, ResourceURI: testResource,
		GroupScopes:   []store.GroupScopes{{Group: "staff", Scopes: []string{scopeRead}}, {Group: "eng", Scopes: []string{scopeRead, scopeWrite}}},
		StepUp:        []store.StepUpRule{{Scope: scopeWrite, ACR: policy.ACRMFA}},
		IDJAGLifetime: 300 * time.Second, AccessTokenLifetime: 300 * time.Second,
		Status: store.ConnectionApproved, Approver: "secops", CreatedAt: now, UpdatedAt: now,
	}))
	must(h.db.CreateConnection(ctx, store.Connection{
		ID: "c_app2_mcp", AppID: app2, ResourceURI: testResource,
		GroupScopes:   []store.GroupScopes{{Group: "staff", Scopes: []string{scopeRead}}},
		IDJAGLifetime: 120 * time.Second, AccessTokenLifetime: 300 * time.Second, IncludeEmail: true,
		Status: store.ConnectionApproved, Approver: "secops", CreatedAt: now, UpdatedAt: now,
	}))
}

// idToken mints an ID token as the SSO half would, with overrides, and
// records it in the token ledger as the code grant does.
type idTokenOpts struct {
	sub, aud, iss, typ, acr string
	amr                     []string
	authAge                 time.Duration // before now
	exp                     time.Duration // relative to now; default +5 min
	signer                  jose.Signer
	extra                   map[string]any
	// unrecorded leaves the token out of the ledger (a token signed with
	// our key that no grant issued); noJTI omits the jti claim, which
	// also leaves it unrecorded.
	unrecorded, noJTI bool
}

func (h *harness) idToken(o idTokenOpts) string {
	h.t.Helper()
	tok, _ := h.idTokenJTI(o)
	return tok
}

// idTokenJTI is idToken that also returns the token's jti.
func (h *harness) idTokenJTI(o idTokenOpts) (token, jti string) {
	h.t.Helper()
	now := time.Now()
	if o.sub == "" {
		o.sub = userAlice
	}
	if o.aud == "" {
		o.aud = app1
	}
	if o.iss == "" {
		o.iss = testIssuer
	}
	if o.typ == "" {
		o.typ = jose.TypeJWT
	}
	if o.acr == "" {
		o.acr = policy.ACRPassword
	}
	if o.amr == nil {
		o.amr = []string{"pwd"}
	}
	if o.exp == 0 {
		o.exp = 5 * time.Minute
	}
	if o.authAge == 0 {
		o.authAge = time.Minute
	}
	if o.signer == nil {
		o.signer = h.keys.Signer()
	}
	claims := map[string]any{
		"iss": o.iss, "sub": o.sub, "aud": o.aud,
		"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(o.exp).Unix(),
		"auth_time": now.Add(-o.authAge).Unix(), "acr": o.acr, "amr": o.amr, "sid": "s_1",
	}
	if !o.noJTI {
		claims["jti"] = randomToken()[:22]
	}
	for k, v := range o.extra {
		claims[k] = v
	}
	tok, err := o.signer.Sign(context.Background(), o.typ, claims)
	if err != nil {
		h.t.Fatal(err)
	}
	jti, _ = claims["jti"].(string)
	if o.unrecorded || jti == "" {
		return tok, jti
	}
	if err := h.db.RecordToken(context.Background(), store.IssuedToken{
		JTI: jti, Kind: store.TokenKindIDToken, Issuer: o.iss, ClientID: o.aud, Subject: o.sub, Audience: o.aud,
		IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(o.exp),
	}); err != nil {
		h.t.Fatalf("record ID token: %v", err)
	}
	return tok, jti
}

// goodTE is the checklist's "good TE" for app1.
func (h *harness) goodTE(subjectToken string) url.Values {
	return url.Values{
		"grant_type":           {idjag.GrantTypeTokenExchange},
		"requested_token_type": {idjag.TokenType},
		"audience":             {testAS},
		"resource":             {testResource},
		"scope":                {scopeRead},
		"subject_token":        {subjectToken},
		"subject_token_type":   {idjag.TokenTypeIDToken},
	}
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r response) str(k string) string { s, _ := r.body[k].(string); return s }

// post sends form to /token with client_secret_basic for client (no
// authentication when client is "").
func (h *harness) post(client, secret string, form url.Values) response {
	h.t.Helper()
	return h.postRaw(client, secret, form.Encode())
}

func (h *harness) postRaw(client, secret, body string) response {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.hs.URL+"/token", strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if client != "" {
		req.SetBasicAuth(url.QueryEscape(client), url.QueryEscape(secret))
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &r.body)
	return r
}

func (h *harness) app1(form url.Values) response { h.t.Helper(); return h.post(app1, app1Secret, form) }

// tokenRows counts the ID-JAG ledger rows.
func (h *harness) tokenRows() int {
	h.t.Helper()
	var n int
	if err := h.raw.QueryRow(`SELECT COUNT(*) FROM tokens WHERE kind = ?`, store.TokenKindIDJAG).Scan(&n); err != nil {
		h.t.Fatalf("count tokens: %v", err)
	}
	return n
}

// exchangeAudit returns the exchange audit records (issued and denied).
func (h *harness) exchangeAudit() []store.AuditEvent {
	h.t.Helper()
	evs, err := h.db.ListAudit(context.Background(), store.AuditFilter{Limit: 1000})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []store.AuditEvent
	for _, e := range evs {
		if e.Type == AuditIDJAGIssued || e.Type == AuditIDJAGDenied {
			out = append(out, e)
		}
	}
	return out
}

// verifyIDJAG checks the ID-JAG as a resource AS would.
func (h *harness) verifyIDJAG(raw string) (*jose.Token, idjag.Claims) {
	h.t.Helper()
	tok, err := jose.Verify(context.Background(), raw, jose.IDJAGProfile(),
		jose.SingleIssuer{Issuer: testIssuer, Keys: h.keys.KeySet()}, jose.Expectations{Audiences: []string{testAS}})
	if err != nil {
		h.t.Fatalf("verify ID-JAG: %v", err)
	}
	var c idjag.Claims
	if err := tok.Decode(&c); err != nil {
		h.t.Fatal(err)
	}
	return tok, c
}
