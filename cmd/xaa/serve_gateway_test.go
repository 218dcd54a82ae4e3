package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/openxaa/xaa/idjag"
	"github.com/openxaa/xaa/internal/config"
	"github.com/openxaa/xaa/internal/gateway"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/testenv"
)

const (
	gwTestClientSecret = "gw-client-secret-0123456789abcdefghijklmnop"
	gwTestAppSecret    = "gw-app-secret-0123456789abcdefghijklmnopqr"
	gwTestUpstreamKey  = "gw-upstream-key-0123456789abcdefghijklmno"
)

// gwTestIdP is an IdP that is only a signing key and its JWKS on loopback.
type gwTestIdP struct {
	issuer string
	signer *jose.LocalSigner
}

func newGWTestIdP(t *testing.T) *gwTestIdP {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, err := jose.NewLocalSigner(k, jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	set := jose.PublicJWKS(s.PublicKey())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(srv.Close)
	return &gwTestIdP{issuer: srv.URL, signer: s}
}

// upstreamRecorder is the MCP server behind the gateway: a go-sdk server
// that records every Authorization header it receives.
type upstreamRecorder struct {
	mu   sync.Mutex
	auth []string
}

func (u *upstreamRecorder) start(t *testing.T) string {
	s := mcp.NewServer(&mcp.Implementation{Name: "files", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "read_file"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "contents"}}}, nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "write_file"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "written"}}}, nil, nil
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.auth = append(u.auth, r.Header.Get("Authorization"))
		u.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/mcp"
}

func (u *upstreamRecorder) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.auth)
}

// gwDeployment is a config with the authorization server and the gateway
// in one process on port: the gateway's route names the authorization
// server of the same listener, which is only reachable once serve listens.
func gwDeployment(t *testing.T, port int, idp *gwTestIdP, upstream string) string {
	t.Helper()
	path := deployment(t, fmt.Sprintf("127.0.0.1:%d", port))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	secretFile, keyFile := filepath.Join(dir, "gw.secret"), filepath.Join(dir, "upstream.key")
	for f, v := range map[string]string{secretFile: gwTestClientSecret + "\n", keyFile: gwTestUpstreamKey} {
		if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	base, _, _ := strings.Cut(string(data), "issuers:")
	res := fmt.Sprintf("http://127.0.0.1:%d/mcp/files", port)
	as := fmt.Sprintf("http://127.0.0.1:%d/as", port)
	cfg := base + fmt.Sprintf(`issuers:
  authserver: %q
dev_mode: true
authserver:
  trusted_issuers:
    - issuer: %q
      jwks_uri: %q
  resources:
    - uri: %q
      scopes: [files:read, files:write]
      tools:
        read_file: {scopes: [files:read]}
        write_file: {scopes: [files:write]}
  clients:
    - client_id: assistant
      auth_method: client_secret_basic
      client_secret_sha256: %q
      resources: [%q]
    - client_id: gw-files
      auth_method: client_secret_basic
      client_secret_sha256: %q
      resources: [%q]
gateway:
  routes:
    - path: /mcp/files
      resource: %q
      authserver:
        issuer: %q
        client_id: gw-files
        client_secret_file: %s
      upstream:
        url: %q
        credential: {header: Authorization, value_file: %s, prefix: "Bearer "}
      revocation_poll_interval: 1s
      revocation_max_staleness: 30s
`, as, idp.issuer, idp.issuer, res, sha256Hex(gwTestAppSecret), res, sha256Hex(gwTestClientSecret), res, res, as, secretFile, upstream, keyFile)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type gwBearer struct {
	token string
	base  http.RoundTripper
}

func (b gwBearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// TestServeGateway: `xaa serve` runs the authorization server and the
// gateway on one listener; a token the in-process authorization server
// issued works through the gateway, the upstream sees only the configured
// credential, the tool policy comes from the authorization server's
// config, and every tool call is in the audit trail.
func TestServeGateway(t *testing.T) {
	t.Parallel()
	port := testenv.FreeLoopbackPort(t)
	idp := newGWTestIdP(t)
	up := &upstreamRecorder{}
	cfgPath := gwDeployment(t, port, idp, up.start(t))
	if _, _, err := runXAA(t, nil, "migrate", "--config", cfgPath); err != nil {
		t.Fatal(err)
	}
	base, log, stop := startServe(t, cfgPath)
	defer stop()
	waitHealthy(t, base+"/readyz")

	as := base + "/as"
	res := base + "/mcp/files"
	now := time.Now()
	jag, err := idp.signer.Sign(t.Context(), idjag.JWTType, map[string]any{
		"iss": idp.issuer, "sub": "alice", "aud": as, "client_id": "assistant", "jti": fmt.Sprint(now.UnixNano()),
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "resource": res, "scope": "files:read",
	})
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {idjag.GrantTypeJWTBearer}, "assertion": {jag}}
	req, _ := http.NewRequest(http.MethodPost, as+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("assistant", gwTestAppSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tr)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
		t.Fatalf("token: %d", resp.StatusCode)
	}

	c := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil)
	cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: res, MaxRetries: -1,
		HTTPClient: &http.Client{Transport: gwBearer{tr.AccessToken, http.DefaultTransport}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	lt, err := cs.ListTools(t.Context(), nil)
	if err != nil || len(lt.Tools) != 1 || lt.Tools[0].Name != "read_file" {
		t.Errorf("tools/list = %+v, %v; want read_file only (files:read)", lt, err)
	}
	if _, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "read_file", Arguments: map[string]any{}}); err != nil {
		t.Errorf("read_file: %v", err)
	}
	if _, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "write_file", Arguments: map[string]any{}}); err == nil {
		t.Error("write_file without files:write succeeded")
	}
	_ = cs.Close()

	// The protected-resource metadata is on the same listener.
	resp, err = http.Get(base + "/.well-known/oauth-protected-resource/mcp/files")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("PRM = %d", resp.StatusCode)
	}
	for _, a := range up.seen() {
		if a != "Bearer "+gwTestUpstreamKey {
			t.Errorf("the upstream saw Authorization %q", a)
		}
	}
	if len(up.seen()) == 0 {
		t.Error("the upstream saw nothing")
	}
	stop()
	for _, secret := range []string{tr.AccessToken, gwTestClientSecret, gwTestUpstreamKey} {
		if strings.Contains(log.String(), secret) {
			t.Error("the log holds a token or secret")
		}
	}

	cfg, err := config.Load(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := openStore(t.Context(), cfg, nil)
	if err == nil {
		defer db.Close()
		evs, err := db.ListAudit(t.Context(), store.AuditFilter{Type: gateway.AuditToolCall})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range evs {
			got = append(got, e.Outcome+" "+e.Data["tool"])
		}
		if !slices.Equal(got, []string{"allow read_file", "deny write_file"}) {
			t.Errorf("tool-call audit = %q", got)
		}
	} else {
		t.Fatal(err)
	}
}

// TestServeGatewayErrors: the gateway role refuses to start without routes
// or with a route it cannot enforce, and says why.
func TestServeGatewayErrors(t *testing.T) {
	t.Parallel()
	t.Run("no routes", func(t *testing.T) {
		cfg := deployment(t, "127.0.0.1:0")
		if _, _, err := runXAA(t, nil, "migrate", "--config", cfg); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"gateway"}, {"serve", "--gateway"}} {
			_, _, err := runXAA(t, nil, append(args, "--config", cfg)...)
			if err == nil || !strings.Contains(err.Error(), "needs gateway.routes") {
				t.Errorf("%v = %v; want the missing routes named", args, err)
			}
		}
	})
	t.Run("authorization server unreachable", func(t *testing.T) {
		port := testenv.FreeLoopbackPort(t)
		cfg := gwDeployment(t, port, newGWTestIdP(t), "http://127.0.0.1:1/mcp")
		data, _ := os.ReadFile(cfg)
		// The route's issuer is a port nobody listens on.
		data = []byte(strings.Replace(string(data), fmt.Sprintf("issuer: \"http://127.0.0.1:%d/as\"", port), "issuer: \"http://127.0.0.1:1/as\"", 1))
		if err := os.WriteFile(cfg, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := runXAA(t, nil, "migrate", "--config", cfg); err != nil {
			t.Fatal(err)
		}
		_, _, err := runXAA(t, nil, "gateway", "--config", cfg)
		if err == nil || !strings.Contains(err.Error(), "gateway route /mcp/files") || !strings.Contains(err.Error(), "metadata") {
			t.Errorf("gateway = %v; want the route and the failed discovery named", err)
		}
	})
	t.Run("secret file readable by others", func(t *testing.T) {
		port := testenv.FreeLoopbackPort(t)
		cfg := gwDeployment(t, port, newGWTestIdP(t), "http://127.0.0.1:1/mcp")
		if err := os.Chmod(filepath.Join(filepath.Dir(cfg), "gw.secret"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := runXAA(t, nil, "migrate", "--config", cfg); err != nil {
			t.Fatal(err)
		}
		_, _, err := runXAA(t, nil, "gateway", "--config", cfg)
		if err == nil || !strings.Contains(err.Error(), "client_secret_file") || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("gateway = %v; want the insecure file named", err)
		}
	})
}

func TestChildEnv(t *testing.T) {
	t.Parallel()
	got := childEnv(map[string]config.Secret{"B": "2", "A": "1"}, "/usr/bin")
	if !slices.Equal(got, []string{"A=1", "B=2", "PATH=/usr/bin"}) {
		t.Errorf("childEnv = %q", got)
	}
	got = childEnv(map[string]config.Secret{"PATH": "/opt/bin"}, "/usr/bin")
	if !slices.Equal(got, []string{"PATH=/opt/bin"}) {
		t.Errorf("childEnv with PATH = %q", got)
	}
}

// TestGatewayRouteSecrets: where the gateway's secrets come from: the
// file, or the XAA_GATEWAY_<index>_CLIENT_SECRET(_FILE) environment, never
// both variables; the upstream credential gets its prefix.
func TestGatewayRouteSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "s")
	if err := os.WriteFile(file, []byte("from-file\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	route := func() *config.GatewayRoute {
		return &config.GatewayRoute{Path: "/mcp", Resource: "https://gw.example.com/mcp",
			AuthServer: config.GatewayAuthServer{Issuer: "https://as.example.com", ClientID: "gw", ClientSecretFile: "/nonexistent"},
			Upstream: config.GatewayUpstream{URL: "https://up.example.com/mcp",
				Credential: &config.GatewayCredential{Header: "X-Api-Key", Value: "k", Prefix: "Key "}}}
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	r, err := gatewayRoute(route(), 3, env(map[string]string{"XAA_GATEWAY_3_CLIENT_SECRET": "from-env"}))
	if err != nil || r.ClientSecret != "from-env" || r.Credential.Value != "Key k" || r.Introspection {
		t.Errorf("env secret: %+v, %v", r, err)
	}
	r, err = gatewayRoute(route(), 3, env(map[string]string{"XAA_GATEWAY_3_CLIENT_SECRET_FILE": file}))
	if err != nil || r.ClientSecret != "from-file" {
		t.Errorf("env secret file: %q, %v", r.ClientSecret, err)
	}
	_, err = gatewayRoute(route(), 3, env(map[string]string{"XAA_GATEWAY_3_CLIENT_SECRET": "a", "XAA_GATEWAY_3_CLIENT_SECRET_FILE": file}))
	if err == nil || !strings.Contains(err.Error(), "both XAA_GATEWAY_3_CLIENT_SECRET and XAA_GATEWAY_3_CLIENT_SECRET_FILE") {
		t.Errorf("both set: %v", err)
	}
	_, err = gatewayRoute(route(), 3, env(nil))
	if err == nil || !strings.Contains(err.Error(), "gateway.routes[3].authserver.client_secret_file") {
		t.Errorf("missing file: %v", err)
	}
	if err := os.WriteFile(file, []byte("two\nlines\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = gatewayRoute(route(), 3, env(map[string]string{"XAA_GATEWAY_3_CLIENT_SECRET_FILE": file}))
	if err == nil || !strings.Contains(err.Error(), "more than one line") {
		t.Errorf("two lines: %v", err)
	}
}
