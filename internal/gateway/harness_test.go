package gateway

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/time/rate"

	"github.com/openxaa/xaa/idjag"
	"github.com/openxaa/xaa/internal/authserver"
	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/keyring"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
)

// The test world: a real authorization server (internal/authserver on a
// real SQLite store, on loopback), an IdP that is only a signing key, a
// real go-sdk MCP server behind a recorder as the HTTP upstream, this test
// binary re-executed as a go-sdk stdio server, and the gateway in front,
// served through the production server shell (internal/httpserver).
const (
	idpIssuer      = "https://idp.example.com"
	appClient      = "assistant"
	appSecret      = "assistant-secret-0123456789abcdefghijklmnopqrstuv"
	gwClient       = "gateway"
	gwSecret       = "gateway-secret-0123456789abcdefghijklmnopqrstuvwx"
	upstreamSecret = "upstream-secret-0123456789abcdefghijklmnopqrstu"
	acrMFA         = "urn:openxaa:acr:mfa"
	acrPwd         = "urn:openxaa:acr:pwd"
	stdioEnv       = "XAA_GATEWAY_TEST_STDIO"
	alice          = "alice"
)

// Route paths of the world.
const (
	pathHTTP    = "/mcp/crm"
	pathStdio   = "/mcp/stdio"
	pathIntro   = "/mcp/intro"
	pathForeign = "/mcp/other" // governed by the AS, not served by the gateway
)

var resourceScopes = []string{"crm:read", "crm:export", "crm:admin"}

// asTools is the tool policy every resource of the world publishes.
var asTools = map[string]authserver.ToolRule{
	"search_customers": {Scopes: []string{"crm:read"}},
	"export_customers": {Scopes: []string{"crm:export"}, ACRValues: []string{acrMFA}, MaxAge: 5 * time.Minute},
	"delete_customers": {Scopes: []string{"crm:admin", "crm:read"}},
	"slow":             {Scopes: []string{"crm:read"}},
	"pid":              {Scopes: []string{"crm:read"}},
}

func TestMain(m *testing.M) {
	if os.Getenv(stdioEnv) == "1" {
		runStdioServer()
		return
	}
	os.Exit(m.Run())
}

// runStdioServer is the stdio upstream: this binary, re-executed.
func runStdioServer() {
	fmt.Fprintln(os.Stderr, "stdio test server ready")
	if err := newMCPServer(nil).Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		fmt.Fprintln(os.Stderr, "stdio test server:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

type searchIn struct {
	Query string `json:"query"`
}

// slowGate lets a test hold the "slow" tool until it says so.
type slowGate struct {
	started chan struct{}
	release chan struct{}
}

// newMCPServer is the upstream MCP server: a go-sdk server with tools,
// one of them ("secret_tool") absent from every policy, a resource and a
// prompt.
func newMCPServer(gate *slowGate) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "crm-test", Version: "1.0.0"}, nil)
	text := func(s string) *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
	}
	for _, name := range []string{"search_customers", "export_customers", "delete_customers", "secret_tool"} {
		mcp.AddTool(s, &mcp.Tool{Name: name, Description: name}, func(_ context.Context, _ *mcp.CallToolRequest, in searchIn) (*mcp.CallToolResult, any, error) {
			return text(name + ":" + in.Query), nil, nil
		})
	}
	mcp.AddTool(s, &mcp.Tool{Name: "pid", Description: "the server's process id"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return text(fmt.Sprint(os.Getpid())), nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "slow", Description: "reports progress, then waits"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		if tok := req.Params.GetProgressToken(); tok != nil {
			_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: 1, Message: "started"})
		}
		if gate != nil {
			close(gate.started)
			<-gate.release
		}
		return text("slow:done"), nil, nil
	})
	s.AddResource(&mcp.Resource{URI: "crm://readme", Name: "readme", MIMEType: "text/plain"}, func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: "crm://readme", MIMEType: "text/plain", Text: "hello"}}}, nil
	})
	s.AddPrompt(&mcp.Prompt{Name: "greet", Description: "a greeting"}, func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "hi"}}}}, nil
	})
	return s
}

// recorder is the HTTP upstream's front door: it records every request's
// headers and the tools it was asked to call, and refuses any request
// without the gateway's credential (as a real upstream with an API key
// would).
type recorder struct {
	mu      sync.Mutex
	headers []http.Header
	uris    []string
	tools   []string
}

func (rec *recorder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.Body != nil {
			body, _ = io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		rec.mu.Lock()
		rec.headers = append(rec.headers, r.Header.Clone())
		rec.uris = append(rec.uris, r.URL.RequestURI())
		rec.tools = append(rec.tools, toolCalls(body)...)
		rec.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+upstreamSecret {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (rec *recorder) calledTools() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.tools...)
}

func (rec *recorder) requestURIs() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.uris...)
}

func (rec *recorder) allHeaders() []http.Header {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]http.Header(nil), rec.headers...)
}

// toolCalls lists the tools/call names in a JSON-RPC body (one message or
// a batch).
func toolCalls(body []byte) []string {
	var msgs []json.RawMessage
	if json.Unmarshal(body, &msgs) != nil {
		msgs = []json.RawMessage{body}
	}
	var out []string
	for _, m := range msgs {
		var msg struct {
			Method string `json:"method"`
			Params struct {
				Name string `json:"name"`
			} `json:"params"`
		}
		if json.Unmarshal(m, &msg) == nil && msg.Method == "tools/call" {
			out = append(out, msg.Params.Name)
		}
	}
	return out
}

// clock is the authorization server's clock: real time plus an offset a
// test may move.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time      { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) add(d time.Duration) { c.offset.Add(int64(d)) }

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type world struct {
	t        testing.TB
	asDB     *sqlstore.DB
	gwDB     *sqlstore.DB
	as       *authserver.Server
	asCfg    authserver.Config
	asServe  atomic.Pointer[http.Handler] // the running authorization server
	asURL    string
	asClock  *clock
	idp      *jose.LocalSigner
	rec      *recorder
	mcp      *mcp.Server // the HTTP upstream's server
	gate     *slowGate
	gw       *Gateway
	gwURL    string
	logs     *syncBuffer
	upstream string
	tokens   []string // every access token minted, for the log check
	tokensMu sync.Mutex
}

type worldOptions struct {
	// edit changes the gateway Options before New.
	edit func(w *world, o *Options)
	// noStdio leaves the stdio route out (faster worlds).
	noStdio bool
	// auditor replaces the gateway's audit store.
	auditor Auditor
	// quiet logs at Info instead of Debug (benchmarks).
	quiet bool
	// readTimeout and writeTimeout replace the gateway server's
	// (httpserver's defaults otherwise).
	readTimeout, writeTimeout time.Duration
}

func openStore(t testing.TB, name string) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), name), nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

func loopbackListener(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func newWorld(t testing.TB, o *worldOptions) *world {
	t.Helper()
	if o == nil {
		o = &worldOptions{}
	}
	ctx := context.Background()
	w := &world{t: t, asClock: &clock{}, rec: &recorder{}, logs: &syncBuffer{},
		gate: &slowGate{started: make(chan struct{}), release: make(chan struct{})}}
	level := slog.LevelDebug
	if o.quiet {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: level}))
	t.Cleanup(func() { w.checkLogs() })

	asLn, gwLn := loopbackListener(t), loopbackListener(t)
	w.asURL = "http://" + asLn.Addr().String()
	w.gwURL = "http://" + gwLn.Addr().String()

	// The IdP is a key the authorization server trusts.
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, err := jose.NewLocalSigner(k, jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	w.idp = signer
	idpKeys, err := jose.NewStaticKeySet(jose.PublicJWKS(signer.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}

	// The authorization server.
	w.asDB = openStore(t, "as.db")
	wk := make([]byte, 32)
	_, _ = rand.Read(wk)
	keys, err := keyring.New(ctx, w.asDB, keyring.Options{Owner: w.asURL, WrappingKey: wk, MaxTokenLifetime: time.Hour, Now: w.asClock.now})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []store.Client{
		{ID: appClient, Realm: w.asURL, AuthMethod: oauth.AuthMethodSecretBasic, SecretDigest: oauth.HashSecret(appSecret), CreatedAt: time.Now()},
		{ID: gwClient, Realm: w.asURL, AuthMethod: oauth.AuthMethodSecretBasic, SecretDigest: oauth.HashSecret(gwSecret), CreatedAt: time.Now()},
	} {
		if err := w.asDB.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	var resources []authserver.Resource
	var uris []string
	for _, p := range []string{pathHTTP, pathStdio, pathIntro, pathForeign} {
		resources = append(resources, authserver.Resource{URI: w.gwURL + p, Scopes: resourceScopes, Tools: asTools})
		uris = append(uris, w.gwURL+p)
	}
	w.asCfg = authserver.Config{
		Issuer:         w.asURL,
		Store:          w.asDB,
		Keys:           keys,
		TrustedIssuers: []authserver.TrustedIssuer{{Issuer: idpIssuer, Keys: idpKeys}},
		Resources:      resources,
		Clients: map[string]authserver.ClientPolicy{
			appClient: {Resources: uris},
			gwClient:  {Resources: uris},
		},
		AuditKey:  []byte("0123456789abcdef0123456789abcdef"),
		RateLimit: &oauth.TokenLimit{PerClient: rate.Inf, PerAddress: rate.Inf},
		DevMode:   true,
		Now:       w.asClock.now,
		Logger:    logger.With("role", "authserver"),
	}
	w.restartAS(nil)
	asHS := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		(*w.asServe.Load()).ServeHTTP(rw, r)
	}))
	asHS.Listener.Close()
	asHS.Listener = asLn
	asHS.Start()
	t.Cleanup(asHS.Close)

	// The HTTP upstream: a go-sdk server with resumable streams.
	mcpSrv := newMCPServer(w.gate)
	w.mcp = mcpSrv
	up := httptest.NewServer(w.rec.wrap(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return mcpSrv },
		&mcp.StreamableHTTPOptions{EventStore: mcp.NewMemoryEventStore(nil)})))
	t.Cleanup(up.Close)
	w.upstream = up.URL + "/mcp"

	// The gateway.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cred := &Credential{Header: "Authorization", Value: "Bearer " + upstreamSecret}
	opts := &Options{
		Routes: []Route{
			{Path: pathHTTP, Resource: w.gwURL + pathHTTP, Issuer: w.asURL, ClientID: gwClient, ClientSecret: gwSecret,
				UpstreamURL: w.upstream, Credential: cred},
			{Path: pathIntro, Resource: w.gwURL + pathIntro, Issuer: w.asURL, ClientID: gwClient, ClientSecret: gwSecret,
				UpstreamURL: w.upstream, Credential: cred, Introspection: true},
		},
		AllowLoopbackHTTP: true,
		Logger:            logger.With("role", "gateway"),
	}
	if !o.noStdio {
		opts.Routes = append(opts.Routes, Route{Path: pathStdio, Resource: w.gwURL + pathStdio, Issuer: w.asURL, ClientID: gwClient, ClientSecret: gwSecret,
			Command: []string{self}, Env: []string{stdioEnv + "=1"}, MaxChildren: 4})
	}
	if o.auditor != nil {
		opts.Audit = o.auditor
	} else {
		w.gwDB = openStore(t, "gw.db")
		opts.Audit = TxAudit(w.gwDB)
	}
	if o.edit != nil {
		o.edit(w, opts)
	}
	w.gw, err = New(ctx, opts)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	t.Cleanup(func() { _ = w.gw.Close() })
	mux := http.NewServeMux()
	if err := w.gw.Register(mux); err != nil {
		t.Fatal(err)
	}
	shell, err := httpserver.New(httpserver.Options{Name: "gateway", Addr: "127.0.0.1:0", Handler: mux, Logger: logger, BodyLimit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	gwHS := httptest.NewUnstartedServer(shell.Handler())
	gwHS.Listener.Close()
	gwHS.Listener = gwLn
	gwHS.Config.ReadTimeout = cmp.Or(o.readTimeout, httpserver.DefaultReadTimeout)
	gwHS.Config.WriteTimeout = cmp.Or(o.writeTimeout, httpserver.DefaultWriteTimeout)
	gwHS.Start()
	t.Cleanup(gwHS.Close)
	return w
}

// restartAS replaces the running authorization server with a new one on
// the same database and keys, its config changed by edit (a restart with
// a new config file).
func (w *world) restartAS(edit func(*authserver.Config)) {
	w.t.Helper()
	if edit != nil {
		edit(&w.asCfg)
	}
	as, err := authserver.New(w.asCfg)
	if err != nil {
		w.t.Fatalf("authserver.New: %v", err)
	}
	w.as = as
	h := as.Handler()
	w.asServe.Store(&h)
}

// checkLogs fails the test if any minted token appears in any log line
// (D94: tokens never appear in logs).
func (w *world) checkLogs() {
	logs := w.logs.String()
	w.tokensMu.Lock()
	defer w.tokensMu.Unlock()
	for _, tok := range w.tokens {
		if strings.Contains(logs, tok) {
			w.t.Errorf("a token appears in the logs")
			return
		}
		// The signature alone identifies the token too.
		if sig := tok[strings.LastIndex(tok, ".")+1:]; strings.Contains(logs, sig) {
			w.t.Errorf("a token's signature appears in the logs")
			return
		}
	}
}

type claims map[string]any

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// idJAG mints an ID-JAG for the app and resource with scope, after edits.
func (w *world) idJAG(resource, scope string, edit ...func(claims)) string {
	w.t.Helper()
	now := w.asClock.now()
	c := claims{
		"iss": idpIssuer, "sub": alice, "aud": w.asURL, "client_id": appClient, "jti": randomID(),
		"iat": now.Unix(), "exp": now.Add(300 * time.Second).Unix(), "resource": resource, "scope": scope,
		"acr": acrPwd, "amr": []string{"pwd"}, "auth_time": now.Add(-time.Minute).Unix(),
	}
	for _, e := range edit {
		e(c)
	}
	tok, err := w.idp.Sign(context.Background(), idjag.JWTType, map[string]any(c))
	if err != nil {
		w.t.Fatal(err)
	}
	w.remember(tok)
	return tok
}

func (w *world) remember(tok string) {
	w.tokensMu.Lock()
	w.tokens = append(w.tokens, tok)
	w.tokensMu.Unlock()
}

// token redeems a fresh ID-JAG at the real authorization server for an
// access token of resource path with scope.
func (w *world) token(path, scope string, edit ...func(claims)) string {
	w.t.Helper()
	form := url.Values{"grant_type": {idjag.GrantTypeJWTBearer}, "assertion": {w.idJAG(w.gwURL+path, scope, edit...)}}
	var out struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	status := w.asPost("/token", form, appClient, appSecret, &out)
	if status != http.StatusOK || out.AccessToken == "" {
		w.t.Fatalf("token: %d %s: %s", status, out.Error, out.Description)
	}
	w.remember(out.AccessToken)
	return out.AccessToken
}

// mfa is an ID-JAG edit for a fresh MFA login.
func mfa(c claims) {
	c["acr"] = acrMFA
	c["amr"] = []string{"pwd", "otp"}
}

// revoke revokes an access token at the authorization server, as its
// client.
func (w *world) revoke(tok string) {
	w.t.Helper()
	if status := w.asPost("/revoke", url.Values{"token": {tok}}, appClient, appSecret, nil); status != http.StatusOK {
		w.t.Fatalf("revoke: %d", status)
	}
}

func (w *world) asPost(path string, form url.Values, id, secret string, out any) int {
	w.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, w.asURL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// toolCallAudits returns the gateway's tool-call audit records.
func (w *world) toolCallAudits() []store.AuditEvent {
	w.t.Helper()
	evs, err := w.gwDB.ListAudit(context.Background(), store.AuditFilter{Type: AuditToolCall, Limit: 1000})
	if err != nil {
		w.t.Fatal(err)
	}
	return evs
}

// bearer adds a token to every request of a go-sdk client.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// connect opens a go-sdk client session to a gateway route with token.
func (w *world) connect(t testing.TB, path, token string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "gateway-test", Version: "1.0.0"}, nil)
	tr := &mcp.StreamableClientTransport{
		Endpoint:   w.gwURL + path,
		HTTPClient: &http.Client{Transport: bearer{token: token, base: http.DefaultTransport}},
		MaxRetries: -1,
	}
	cs, err := c.Connect(t.Context(), tr, nil)
	if err != nil {
		t.Fatalf("connect %s: %v", path, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// rpc is a raw answer of the gateway.
type rpc struct {
	status int
	header http.Header
	body   string
}

// post sends one JSON-RPC body to a route with raw HTTP, so tests see the
// exact status and headers. token "" sends no Authorization.
func (w *world) post(path, token, session, body string, extra ...string) rpc {
	w.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, w.gwURL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	}
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	return w.do(req)
}

func (w *world) do(req *http.Request) rpc {
	w.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rpc{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// session initializes a raw MCP session on path and returns its id.
func (w *world) session(path, token string) string {
	w.t.Helper()
	r := w.post(path, token, "", initBody)
	sid := r.header.Get("Mcp-Session-Id")
	if r.status != http.StatusOK || sid == "" {
		w.t.Fatalf("initialize %s: %d %q %s", path, r.status, sid, r.body)
	}
	if r := w.post(path, token, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); r.status != http.StatusAccepted {
		w.t.Fatalf("initialized: %d %s", r.status, r.body)
	}
	return sid
}

func callBody(id int, tool string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":{"query":"q"}}}`, id, tool)
}
