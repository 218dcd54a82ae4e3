package xaaclient_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/openxaa/xaa/internal/authserver"
	"github.com/openxaa/xaa/internal/directory"
	"github.com/openxaa/xaa/internal/idp"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/keyring"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
	"github.com/openxaa/xaa/mcpauth"
	"github.com/openxaa/xaa/xaaclient"
)

// The test organisation. alice is in staff and eng, bob in staff only.
// The assistant app reaches the files MCP server: staff may read, eng may
// also write and export, and export needs a login at most ten minutes old
// (an IdP-side step-up). At the files server itself, the "fresh" tool
// needs an authentication at most five minutes old and "admin" an MFA
// login (resource-side step-ups, RFC 9470). The "pending" server's
// connection awaits approval; "stray" is governed by the authorization
// server but unknown to the IdP.
const (
	appID       = "assistant"
	appSecret   = "assistant-secret-0123456789abcdefghijklmnopqrstu"
	asClientID  = "assistant-at-files"
	asSecret    = "assistant-at-files-secret-0123456789abcdefghijk"
	password    = "correct horse battery staple"
	agentID     = "agent" // authenticates with private_key_jwt at both servers
	agentASID   = "agent-at-files"
	scopeRead   = "files:read"
	scopeWrite  = "files:write"
	scopeExport = "files:export"
	acrMFA      = "urn:openxaa:acr:mfa"
)

// testClock is the wall clock plus an offset a test moves forward; every
// server and the client share it. (testing/synctest cannot reach real
// loopback sockets.)
type testClock struct{ offset atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// exchange is one recorded token-endpoint request and its answer.
type exchange struct {
	path     string
	form     url.Values
	status   int
	response map[string]any
}

// recorder sits in front of every server of the world: it counts and
// keeps every request line and every token-endpoint conversation, so
// tests can count exchanges at the servers and search for leaked tokens.
type recorder struct {
	mu        sync.Mutex
	lines     []string // "METHOD /path?query"
	exchanges []exchange
	bearers   []string // Authorization headers seen by the MCP servers
	mcpAuth   []string // for each request to an MCP server, its bearer token or
	// rewrite, if set, may change the IdP's token-exchange answer.
	rewrite func(body map[string]any)
}

func (rec *recorder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.lines = append(rec.lines, r.Method+" "+r.URL.RequestURI())
		if strings.HasPrefix(r.URL.Path, "/mcp/") {
			a := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			rec.mcpAuth = append(rec.mcpAuth, a)
			if a != "" {
				rec.bearers = append(rec.bearers, a)
			}
		}
		rewrite := rec.rewrite
		rec.mu.Unlock()
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/token") {
			next.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		r.Body = io.NopCloser(bytes.NewReader(body))
		rw := httptest.NewRecorder()
		next.ServeHTTP(rw, r)
		var resp map[string]any
		_ = json.Unmarshal(rw.Body.Bytes(), &resp)
		out := rw.Body.Bytes()
		if rewrite != nil && rw.Code == http.StatusOK && form.Get("grant_type") == "urn:ietf:params:oauth:grant-type:token-exchange" {
			rewrite(resp)
			out, _ = json.Marshal(resp)
		}
		rec.mu.Lock()
		rec.exchanges = append(rec.exchanges, exchange{path: r.URL.Path, form: form, status: rw.Code, response: resp})
		rec.mu.Unlock()
		for k, v := range rw.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rw.Code)
		_, _ = w.Write(out)
	})
}

// count returns how many token requests with grant_type went to path.
func (rec *recorder) count(path, grantType string) int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	n := 0
	for _, e := range rec.exchanges {
		if e.path == path && e.form.Get("grant_type") == grantType {
			n++
		}
	}
	return n
}

func (rec *recorder) forms(path, grantType string) []url.Values {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []url.Values
	for _, e := range rec.exchanges {
		if e.path == path && e.form.Get("grant_type") == grantType {
			out = append(out, e.form)
		}
	}
	return out
}

// mcpBearers returns the bearer token of every request to an MCP server
// so far ("" for none), in order.
func (rec *recorder) mcpBearers() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.mcpAuth)
}

func (rec *recorder) requestLines() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.lines)
}

// secrets returns every token and secret that crossed a token endpoint or
// reached an MCP server: what must never show up in a log or a URL.
func (rec *recorder) secrets() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []string
	add := func(s string) {
		if len(s) >= 16 && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, e := range rec.exchanges {
		for _, k := range []string{"subject_token", "assertion", "refresh_token", "client_secret", "client_assertion", "code_verifier"} {
			add(e.form.Get(k))
		}
		for _, k := range []string{"access_token", "id_token", "refresh_token"} {
			if s, ok := e.response[k].(string); ok {
				add(s)
			}
		}
	}
	for _, b := range rec.bearers {
		add(b)
	}
	return out
}

const (
	idpTokenPath = "/idp/token"
	asTokenPath  = "/as/token"
	grantTE      = "urn:ietf:params:oauth:grant-type:token-exchange"
	grantJB      = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	grantRefresh = "refresh_token"
	grantCode    = "authorization_code"
)

// world is a real IdP, a real authorization server and real go-sdk MCP
// servers behind mcpauth, on one loopback listener, over one SQLite file.
type world struct {
	t                testing.TB
	db               *sqlstore.DB
	base             string
	idpIssuer, asIss string
	files            string // the files MCP endpoint (and resource)
	pending, stray   string
	clock            *testClock
	rec              *recorder
	mux              *http.ServeMux
	srv              *httptest.Server
	fileCalls        atomic.Int64 // tool calls that reached the files server
	// agentIdPKey and agentASKey are the agent app's private_key_jwt keys
	// at the IdP (ES256) and at the authorization server (EdDSA).
	agentIdPKey *ecdsa.PrivateKey
	agentASKey  ed25519.PrivateKey
	cachePaths  sync.Map // *xaaclient.Client -> its cache file
}

type worldOptions struct {
	// accessTokenLifetime of the files resource at the authorization
	// server; default 120 s.
	accessTokenLifetime time.Duration
}

func newWorld(t testing.TB, o *worldOptions) *world {
	t.Helper()
	if o == nil {
		o = &worldOptions{}
	}
	if o.accessTokenLifetime == 0 {
		o.accessTokenLifetime = 120 * time.Second
	}
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "xaa.db"), nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	w := &world{t: t, db: db, clock: &testClock{}, rec: &recorder{}, mux: http.NewServeMux()}
	w.srv = httptest.NewUnstartedServer(w.rec.wrap(w.mux))
	w.base = "http://" + w.srv.Listener.Addr().String()
	w.idpIssuer, w.asIss = w.base+"/idp", w.base+"/as"
	w.files, w.pending, w.stray = w.base+"/mcp/files", w.base+"/mcp/pending", w.base+"/mcp/stray"

	wk := make([]byte, 32)
	_, _ = rand.Read(wk)
	idpKeys, err := keyring.New(ctx, db, keyring.Options{Owner: w.idpIssuer, WrappingKey: wk, MaxTokenLifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	asKeys, err := keyring.New(ctx, db, keyring.Options{Owner: w.asIss, WrappingKey: wk, MaxTokenLifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	box, err := keyring.NewSecretBox(wk, directory.TOTPSealPurpose)
	if err != nil {
		t.Fatal(err)
	}
	w.agentIdPKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, w.agentASKey, _ = ed25519.GenerateKey(rand.Reader)
	w.seed(ctx, box)

	auditKey := []byte("0123456789abcdef0123456789abcdef")
	idpSrv, err := idp.New(idp.Config{Issuer: w.idpIssuer, Store: db, Keys: idpKeys, TOTP: box, DevMode: true,
		AuditKey: auditKey, Now: w.clock.now})
	if err != nil {
		t.Fatalf("idp.New: %v", err)
	}
	asSrv, err := authserver.New(authserver.Config{
		Issuer: w.asIss, Store: db, Keys: asKeys, DevMode: true, AuditKey: auditKey, Now: w.clock.now,
		TrustedIssuers: []authserver.TrustedIssuer{{Issuer: w.idpIssuer, Keys: idpKeys.KeySet()}},
		Resources: []authserver.Resource{
			{URI: w.files, Scopes: []string{scopeRead, scopeWrite, scopeExport}, AccessTokenLifetime: o.accessTokenLifetime},
			{URI: w.pending, Scopes: []string{scopeRead}},
			{URI: w.stray, Scopes: []string{scopeRead}},
		},
		Clients: map[string]authserver.ClientPolicy{
			asClientID: {Resources: []string{w.files, w.pending, w.stray}},
			agentASID:  {Resources: []string{w.files}},
		},
	})
	if err != nil {
		t.Fatalf("authserver.New: %v", err)
	}
	w.mux.Handle("/idp/", http.StripPrefix("/idp", idpSrv.Handler()))
	w.mux.Handle("GET /.well-known/oauth-authorization-server/idp", idpSrv.MetadataHandler())
	w.mux.Handle("/as/", http.StripPrefix("/as", asSrv.Handler()))
	w.mux.Handle("GET /.well-known/oauth-authorization-server/as", asSrv.MetadataHandler())
	w.srv.Start()
	t.Cleanup(w.srv.Close)

	w.mcpServer(w.files, map[string]mcpauth.ToolRule{
		"search": {Scopes: []string{scopeRead}},
		"write":  {Scopes: []string{scopeWrite}},
		"export": {Scopes: []string{scopeExport}},
		"fresh":  {Scopes: []string{scopeRead}, MaxAge: 5 * time.Minute},
		"admin":  {Scopes: []string{scopeRead}, ACRValues: []string{acrMFA}},
	}, []string{scopeRead})
	w.mcpServer(w.pending, map[string]mcpauth.ToolRule{"search": {Scopes: []string{scopeRead}}}, nil)
	w.mcpServer(w.stray, map[string]mcpauth.ToolRule{"search": {Scopes: []string{scopeRead}}}, nil)
	return w
}

// seed writes the organisation with the code `xaa seed` runs.
func (w *world) seed(ctx context.Context, box *keyring.SecretBox) {
	t := w.t
	seed := fmt.Sprintf(`groups:
  - name: staff
  - name: eng
users:
  - username: alice
    email: alice@example.com
    password: %[1]q
    groups: [staff, eng]
  - username: bob
    email: bob@example.com
    password: %[1]q
    groups: [staff]
apps:
  - client_id: %[2]s
    name: Assistant
    auth_method: client_secret_basic
    client_secret: %[3]q
    redirect_uris: [http://127.0.0.1/callback]
  - client_id: agent
    name: Agent
    auth_method: private_key_jwt
    jwks: %[8]q
    redirect_uris: [http://127.0.0.1/callback]
auth_servers:
  - issuer: %[4]q
    name: Files AS
    client_ids:
      %[2]s: %[5]s
      agent: agent-at-files
resources:
  - uri: %[6]q
    name: Files
    auth_server: %[4]q
    scopes: [{name: files:read}, {name: files:write}, {name: files:export}]
  - uri: %[7]q
    name: Pending
    auth_server: %[4]q
    scopes: [{name: files:read}]
connections:
  - app: %[2]s
    resource: %[6]q
    groups:
      staff: [files:read]
      eng: [files:read, files:write, files:export]
    step_up:
      files:export: {max_age: 10m}
    status: approved
    approver: secops@example.com
  - app: agent
    resource: %[6]q
    groups:
      staff: [files:read]
    status: approved
    approver: secops@example.com
  - app: %[2]s
    resource: %[7]q
    groups:
      staff: [files:read]
    status: pending
`, password, appID, appSecret, w.asIss, asClientID, w.files, w.pending, jwksOf(t, w.agentIdPKey))
	s, err := directory.ParseSeed("seed.yaml", []byte(seed))
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	if _, err := directory.Apply(ctx, w.db, s, &directory.ApplyOptions{TOTPBox: box}); err != nil {
		t.Fatalf("apply seed: %v", err)
	}
	if err := w.db.CreateClient(ctx, store.Client{Realm: w.asIss, ID: asClientID, AuthMethod: oauth.AuthMethodSecretBasic,
		SecretDigest: oauth.HashSecret(asSecret), CreatedAt: time.Now()}); err != nil {
		t.Fatalf("register the AS client: %v", err)
	}
	if err := w.db.CreateClient(ctx, store.Client{Realm: w.asIss, ID: agentASID, AuthMethod: oauth.AuthMethodPrivateKeyJWT,
		JWKS: []byte(jwksOf(t, w.agentASKey)), CreatedAt: time.Now()}); err != nil {
		t.Fatalf("register the agent at the AS: %v", err)
	}
}

// jwksOf is the public JWK Set of key, as a registration holds it.
func jwksOf(t testing.TB, key crypto.Signer) string {
	t.Helper()
	alg := jose.EdDSA
	if _, ok := key.(*ecdsa.PrivateKey); ok {
		alg = jose.ES256
	}
	s, err := jose.NewLocalSigner(key, alg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jose.PublicJWKS(s.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mcpServer mounts a go-sdk MCP server at endpoint behind mcpauth (the
// OpenXAA resource-server middleware) verifying the authorization
// server's access tokens.
func (w *world) mcpServer(endpoint string, tools map[string]mcpauth.ToolRule, challenge []string) {
	t := w.t
	v, err := mcpauth.NewJWTVerifier(&mcpauth.JWTOptions{Issuer: w.asIss, Resource: endpoint, JWKSURL: w.asIss + "/jwks.json",
		AllowLoopbackHTTP: true, Now: w.clock.now})
	if err != nil {
		t.Fatalf("verifier: %v", err)
	}
	mw, err := mcpauth.New(&mcpauth.Options{Resource: endpoint, AuthorizationServers: []string{w.asIss}, Verifier: v,
		Tools: tools, ChallengeScopes: challenge, Now: w.clock.now})
	if err != nil {
		t.Fatalf("mcpauth.New: %v", err)
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "files", Version: "1"}, nil)
	for name := range tools {
		server.AddTool(&mcp.Tool{Name: name, Description: "the " + name + " tool", InputSchema: json.RawMessage(`{"type":"object"}`)},
			func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				w.fileCalls.Add(1)
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name + " ok"}}}, nil
			})
	}
	u, _ := url.Parse(endpoint)
	w.mux.Handle(u.Path, mw.Wrap(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)))
	w.mux.Handle("GET "+mw.MetadataPath(), mw.MetadataHandler())
}

// audit returns the audit records of one type.
func (w *world) audit(typ string) []store.AuditEvent {
	w.t.Helper()
	evs, err := w.db.ListAudit(w.t.Context(), store.AuditFilter{Type: typ, Limit: 10000})
	if err != nil {
		w.t.Fatal(err)
	}
	return evs
}

// browser is the user's browser: it follows the authorization URL, signs
// in through the IdP's real login form when asked, and lands on the
// client's loopback redirect. It keeps the IdP session cookie across
// logins and remembers every URL it was given.
type browser struct {
	t        testing.TB
	w        *world
	user     string
	mu       sync.Mutex
	urls     []string
	forms    int // login forms filled in
	jar      http.CookieJar
	disabled bool // fail instead of browsing (a login must not happen)
	// tamper, if set, changes the IdP's redirect back to the client
	// before the browser follows it; landing more than once is allowed.
	tamper func(u *url.URL) []*url.URL
}

func (w *world) browser(user string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: w.t, w: w, user: user, jar: jar}
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func (b *browser) open(ctx context.Context, authURL string) error {
	b.mu.Lock()
	b.urls = append(b.urls, authURL)
	disabled := b.disabled
	b.mu.Unlock()
	if disabled {
		return fmt.Errorf("test browser: no login expected here")
	}
	c := &http.Client{Jar: b.jar, Timeout: 20 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), b.w.idpIssuer+"/") {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	do := func(req *http.Request) (*http.Response, string, error) {
		resp, err := c.Do(req.WithContext(ctx))
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body), nil
	}
	req, _ := http.NewRequest(http.MethodGet, authURL, nil)
	resp, body, err := do(req)
	if err != nil {
		return err
	}
	if m := csrfRE.FindStringSubmatch(body); m != nil {
		b.mu.Lock()
		b.forms++
		b.mu.Unlock()
		form := url.Values{"csrf_token": {html.UnescapeString(m[1])}, "username": {b.user}, "password": {password}}
		req, _ = http.NewRequest(http.MethodPost, b.w.idpIssuer+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if resp, body, err = do(req); err != nil {
			return err
		}
	}
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "http://127.0.0.1:") {
		return fmt.Errorf("test browser: the IdP ended with %d at %q: %.200s", resp.StatusCode, loc, body)
	}
	// Land on the client's loopback listener, as a browser would.
	lands := []string{loc}
	if b.tamper != nil {
		u, _ := url.Parse(loc)
		lands = nil
		for _, v := range b.tamper(u) {
			lands = append(lands, v.String())
		}
	}
	for _, l := range lands {
		req, _ = http.NewRequest(http.MethodGet, l, nil)
		if _, _, err := do(req); err != nil {
			return err
		}
	}
	return nil
}

func (b *browser) visited() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.urls)
}

func (b *browser) formsFilled() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.forms
}

// client returns a xaaclient for the world with a cache file in a fresh
// directory, the browser b, and opts' other fields applied.
func (w *world) client(b *browser, edit func(*xaaclient.Options)) *xaaclient.Client {
	w.t.Helper()
	o := &xaaclient.Options{
		Issuer: w.idpIssuer,
		Client: xaaclient.Credentials{ClientID: appID, ClientSecret: appSecret},
		AuthServers: map[string]xaaclient.Credentials{
			w.asIss: {ClientID: asClientID, ClientSecret: asSecret},
		},
		CacheFile:         filepath.Join(w.t.TempDir(), "xaa", "tokens.json"),
		AllowLoopbackHTTP: true,
		Now:               w.clock.now,
		LoginTimeout:      30 * time.Second,
	}
	if b != nil {
		o.Browser = b.open
	}
	if edit != nil {
		edit(o)
	}
	c, err := xaaclient.New(o)
	if err != nil {
		w.t.Fatalf("xaaclient.New: %v", err)
	}
	w.cachePaths.Store(c, o.CacheFile)
	return c
}

// session connects a go-sdk MCP client to endpoint through the xaaclient
// handler.
func (w *world) session(ctx context.Context, c *xaaclient.Client, endpoint string) *mcp.ClientSession {
	w.t.Helper()
	h, err := c.Handler(endpoint)
	if err != nil {
		w.t.Fatal(err)
	}
	cl := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1"}, nil)
	cs, err := cl.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, OAuthHandler: h, DisableStandaloneSSE: true}, nil)
	if err != nil {
		w.t.Fatalf("connect to %s: %v", endpoint, err)
	}
	w.t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// logBuffer is a slog destination tests can read while the client writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogger(buf *logBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
