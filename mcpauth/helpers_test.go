package mcpauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/openxaa/xaa/internal/jose"
)

const (
	testIssuer   = "https://as.example.com"
	testResource = "https://gw.example.com/mcp/crm"
	testClient   = "app1"
	testSubject  = "alice"
	acrMFA       = "urn:openxaa:acr:mfa"
)

// testTools is the policy of the CRM demo: search needs crm:read, export
// needs crm:export and an MFA login no older than 5 minutes, delete needs
// two scopes.
func testTools() map[string]ToolRule {
	return map[string]ToolRule{
		"search_customers": {Scopes: []string{"crm:read"}},
		"export_customers": {Scopes: []string{"crm:export"}, ACRValues: []string{acrMFA}, MaxAge: 5 * time.Minute},
		"delete_customer":  {Scopes: []string{"crm:read", "crm:write"}},
		"ping":             {},
	}
}

// testAS is an authorization server's signing side: it mints access tokens
// with a real ES256 key, and publishes the public JWKS.
type testAS struct {
	signer *jose.LocalSigner
	jwks   []byte
}

var (
	sharedASOnce sync.Once
	sharedAS     *testAS
)

// newTestAS returns a key shared by the package's tests (key generation is
// the slow part; every test still verifies real signatures).
func newTestAS(tb testing.TB) *testAS {
	tb.Helper()
	sharedASOnce.Do(func() { sharedAS = makeTestAS(tb) })
	return sharedAS
}

func makeTestAS(tb testing.TB) *testAS {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := jose.NewLocalSigner(key, jose.ES256)
	if err != nil {
		tb.Fatal(err)
	}
	jwks, err := json.Marshal(jose.PublicJWKS(signer.PublicKey()))
	if err != nil {
		tb.Fatal(err)
	}
	return &testAS{signer: signer, jwks: jwks}
}

// claims returns the claims of a good access token for alice at now.
func goodClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss":       testIssuer,
		"sub":       testSubject,
		"aud":       testResource,
		"client_id": testClient,
		"scope":     "crm:read",
		"jti":       rand.Text(),
		"iat":       now.Unix(),
		"exp":       now.Add(5 * time.Minute).Unix(),
		"auth_time": now.Add(-time.Minute).Unix(),
		"acr":       acrMFA,
		"amr":       []string{"pwd", "otp"},
	}
}

// mint signs claims (good ones changed by edit) with typ.
func (a *testAS) mint(tb testing.TB, typ string, edit func(c map[string]any)) string {
	tb.Helper()
	c := goodClaims(time.Now())
	if edit != nil {
		edit(c)
	}
	tok, err := a.signer.Sign(context.Background(), typ, c)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// token mints a good at+jwt with the given scope.
func (a *testAS) token(tb testing.TB, scope string, edit func(c map[string]any)) string {
	tb.Helper()
	return a.mint(tb, jose.TypeAccessToken, func(c map[string]any) {
		c["scope"] = scope
		if edit != nil {
			edit(c)
		}
	})
}

func (a *testAS) verifier(tb testing.TB, rev Revocations) *JWTVerifier {
	tb.Helper()
	v, err := NewJWTVerifier(&JWTOptions{Issuer: testIssuer, Resource: testResource, JWKS: a.jwks, Revocations: rev})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// decisionLog collects decisions.
type decisionLog struct {
	mu sync.Mutex
	ds []Decision
}

func (l *decisionLog) record(_ context.Context, d Decision) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ds = append(l.ds, d)
	return nil
}

func (l *decisionLog) all() []Decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Decision(nil), l.ds...)
}

func newTestMiddleware(tb testing.TB, as *testAS, edit func(o *Options)) (*Middleware, *decisionLog) {
	tb.Helper()
	log := &decisionLog{}
	o := &Options{
		Resource:             testResource,
		AuthorizationServers: []string{testIssuer},
		ResourceName:         "CRM",
		Verifier:             as.verifier(tb, nil),
		Tools:                testTools(),
		OnDecision:           log.record,
	}
	if edit != nil {
		edit(o)
	}
	m, err := New(o)
	if err != nil {
		tb.Fatal(err)
	}
	return m, log
}

// upstream records what reaches the protected handler.
type upstream struct {
	calls     atomic.Int32
	sawAuth   atomic.Int32 // requests that carried an Authorization header
	sawNoInfo atomic.Int32 // requests without TokenInfo in the context
	lastBody  atomic.Value // string
}

func (u *upstream) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.calls.Add(1)
		if len(r.Header.Values("Authorization")) > 0 {
			u.sawAuth.Add(1)
		}
		if _, ok := TokenInfoFromContext(r.Context()); !ok {
			u.sawNoInfo.Add(1)
		}
		next.ServeHTTP(w, r)
	})
}

// echoHandler answers every POST with a JSON-RPC result echoing the body.
func (u *upstream) echo() http.Handler {
	return u.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.lastBody.Store(string(body))
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	}))
}

// post sends body to h with the given Authorization (none when empty).
func post(tb testing.TB, h http.Handler, target, authz, body string) *httptest.ResponseRecorder {
	tb.Helper()
	req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func callBody(id int, tool string) string {
	b, _ := json.Marshal(map[string]any{
		"jsonrpc": "2.0", "id": id, "method": "tools/call",
		"params": map[string]any{"name": tool, "arguments": map[string]any{}},
	})
	return string(b)
}

// crmServer is a real go-sdk MCP server with the CRM tools, counting calls.
type crmServer struct {
	server *mcp.Server
	mu     sync.Mutex
	calls  map[string]int
	users  []string // UserID of the go-sdk TokenInfo each call saw
}

func newCRMServer() *crmServer {
	s := &crmServer{server: mcp.NewServer(&mcp.Implementation{Name: "crm", Version: "v1"}, nil), calls: map[string]int{}}
	type in struct {
		Query string `json:"query,omitempty"`
	}
	type out struct {
		Tool string `json:"tool"`
	}
	for _, name := range []string{"search_customers", "export_customers", "delete_customer", "ping", "debug_dump"} {
		mcp.AddTool(s.server, &mcp.Tool{Name: name, Description: "the " + name + " tool"},
			func(ctx context.Context, req *mcp.CallToolRequest, _ in) (*mcp.CallToolResult, out, error) {
				s.mu.Lock()
				s.calls[name]++
				if req.Extra != nil && req.Extra.TokenInfo != nil {
					s.users = append(s.users, req.Extra.TokenInfo.UserID)
				}
				s.mu.Unlock()
				return nil, out{Tool: name}, nil
			})
	}
	return s
}

func (s *crmServer) count(tool string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[tool]
}

func (s *crmServer) handler(jsonResponse bool) http.Handler {
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.server },
		&mcp.StreamableHTTPOptions{JSONResponse: jsonResponse})
}

// bearerTransport adds a bearer token to every request, like an MCP
// client's HTTP layer.
type bearerTransport struct {
	token string
	base  http.RoundTripper
}

func (t *bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.token)
	return t.base.RoundTrip(r)
}

func bearerClient(token string) *http.Client {
	return &http.Client{Transport: &bearerTransport{token: token, base: http.DefaultTransport}, Timeout: 30 * time.Second}
}

// connect opens a go-sdk client session to url with token.
func connect(tb testing.TB, url, token string) (*mcp.ClientSession, error) {
	tb.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "v1"}, nil)
	return client.Connect(context.Background(), &mcp.StreamableClientTransport{
		Endpoint:   url,
		HTTPClient: bearerClient(token),
		MaxRetries: -1,
	}, nil)
}
