package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/testenv"
	"github.com/openxaa/xaa/mcpauth"
)

const (
	cliAppSecret = "cli-app-secret-0123456789abcdefghijklmnopqr"
	cliASSecret  = "cli-as-secret-0123456789abcdefghijklmnopqrs"
	cliPassword  = "alice-cli-password-correct-horse"
	cliASClient  = "assistant-at-files"
)

// cliWorld is `xaa serve` (IdP and authorization server) plus two go-sdk
// MCP servers behind mcpauth in this process: files, where staff may
// read, and pending, whose connection awaits approval.
type cliWorld struct {
	idpIssuer, asIssuer string
	files, pending      string
	profile             string
	server              *mcp.Server // the files server, to change its tools
	toolCalls           atomic.Int64

	mu       sync.Mutex
	sessions []string // "METHOD version" of each request to files that named a session
}

// sessionRequests returns and forgets what the files server saw.
func (w *cliWorld) sessionRequests() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.sessions
	w.sessions = nil
	return out
}

func newCLIWorld(t *testing.T) *cliWorld {
	t.Helper()
	mux := http.NewServeMux()
	mcpSrv := httptest.NewUnstartedServer(mux)
	w := &cliWorld{files: "http://" + mcpSrv.Listener.Addr().String() + "/mcp", pending: "http://" + mcpSrv.Listener.Addr().String() + "/pending"}

	port := testenv.FreeLoopbackPort(t)
	path := deployment(t, fmt.Sprintf("127.0.0.1:%d", port))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	w.idpIssuer = fmt.Sprintf("http://127.0.0.1:%d/idp", port)
	w.asIssuer = fmt.Sprintf("http://127.0.0.1:%d/as", port)
	seed := fmt.Sprintf(`groups:
  - name: staff
users:
  - username: alice
    email: alice@example.com
    password: %q
    groups: [staff]
apps:
  - client_id: assistant
    name: Assistant
    auth_method: client_secret_basic
    client_secret: %q
    redirect_uris: [http://127.0.0.1/callback]
auth_servers:
  - issuer: %q
    name: Files AS
    client_ids:
      assistant: %s
resources:
  - uri: %q
    name: Files
    auth_server: %q
    scopes: [{name: files:read}, {name: files:write}]
  - uri: %q
    name: Pending
    auth_server: %q
    scopes: [{name: files:read}]
connections:
  - app: assistant
    resource: %q
    groups:
      staff: [files:read]
    status: approved
    approver: secops@example.com
  - app: assistant
    resource: %q
    groups:
      staff: [files:read]
    status: pending
`, cliPassword, cliAppSecret, w.asIssuer, cliASClient, w.files, w.asIssuer, w.pending, w.asIssuer, w.files, w.pending)
	seedPath := filepath.Join(filepath.Dir(path), "seed.yaml")
	if err := os.WriteFile(seedPath, []byte(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	base, _, ok := strings.Cut(string(data), "issuers:\n")
	if !ok {
		t.Fatal("deployment config has no issuers section")
	}
	cfg := base + fmt.Sprintf(`issuers:
  idp: %q
  authserver: %q
dev_mode: true
seed_file: %s
authserver:
  trusted_issuers:
    - issuer: %q
      jwks_uri: "%s/jwks.json"
      algorithms: [ES256]
  resources:
    - uri: %q
      scopes: [files:read, files:write]
    - uri: %q
      scopes: [files:read]
  clients:
    - client_id: %s
      auth_method: client_secret_basic
      client_secret_sha256: %q
      resources: [%q, %q]
`, w.idpIssuer, w.asIssuer, seedPath, w.idpIssuer, w.idpIssuer, w.files, w.pending, cliASClient, sha256Hex(cliASSecret), w.files, w.pending)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runXAA(t, nil, "migrate", "--config", path); err != nil {
		t.Fatal(err)
	}
	serveBase, _, _ := startServe(t, path)
	waitHealthy(t, serveBase+"/healthz")

	w.server = mcp.NewServer(&mcp.Implementation{Name: "files", Version: "1"}, nil)
	w.server.AddTool(&mcp.Tool{Name: "echo", Description: "Echo the arguments as JSON.\nMore text.", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			w.toolCalls.Add(1)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(req.Params.Arguments)}}}, nil
		})
	w.server.AddTool(&mcp.Tool{Name: "fail", Description: "Always fails.", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "it failed"}}}, nil
		})
	for _, ep := range []struct {
		resource string
		tools    map[string]mcpauth.ToolRule
	}{
		{w.files, map[string]mcpauth.ToolRule{"echo": {Scopes: []string{"files:read"}}, "fail": {Scopes: []string{"files:read"}},
			"later": {Scopes: []string{"files:read"}}}},
		{w.pending, map[string]mcpauth.ToolRule{"echo": {Scopes: []string{"files:read"}}}},
	} {
		v, err := mcpauth.NewJWTVerifier(&mcpauth.JWTOptions{Issuer: w.asIssuer, Resource: ep.resource, JWKSURL: w.asIssuer + "/jwks.json", AllowLoopbackHTTP: true})
		if err != nil {
			t.Fatal(err)
		}
		mw, err := mcpauth.New(&mcpauth.Options{Resource: ep.resource, AuthorizationServers: []string{w.asIssuer}, Verifier: v, Tools: ep.tools})
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(ep.resource)
		h := mw.Wrap(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return w.server }, nil))
		mux.Handle(u.Path, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Mcp-Session-Id") != "" {
				w.mu.Lock()
				w.sessions = append(w.sessions, r.Method+" "+r.Header.Get("Mcp-Protocol-Version"))
				w.mu.Unlock()
			}
			h.ServeHTTP(rw, r)
		}))
		mux.Handle("GET "+mw.MetadataPath(), mw.MetadataHandler())
	}
	mcpSrv.Start()
	t.Cleanup(mcpSrv.Close)

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.secret"), []byte(cliAppSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.profile = filepath.Join(dir, "client.yaml")
	profile := fmt.Sprintf(`issuer: %s
client_id: assistant
client_secret_file: app.secret
cache_file: tokens.json
auth_servers:
  - issuer: %s
    client_id: %s
    client_secret: %s
`, w.idpIssuer, w.asIssuer, cliASClient, cliASSecret)
	if err := os.WriteFile(w.profile, []byte(profile), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

var loginURLRE = regexp.MustCompile(`(?m)^  (http://\S+/authorize\?\S+)$`)

// login runs `xaa login` and plays the user: it reads the sign-in URL from
// stderr, fills in the IdP's login form and lands on the loopback redirect.
func (w *cliWorld) login(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(t.Context(), append([]string{"xaa", "login", "--profile", w.profile, "--no-browser"}, args...),
			func(string) string { return "" }, strings.NewReader(""), &out, &errOut)
	}()
	var authURL string
	deadline := time.Now().Add(20 * time.Second)
	for authURL == "" {
		if m := loginURLRE.FindStringSubmatch(errOut.String()); m != nil {
			authURL = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("login ended before printing a URL: %v\n%s", err, errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no sign-in URL on stderr:\n%s", errOut.String())
		}
	}
	w.browse(t, authURL)
	if err := <-done; err != nil {
		t.Fatalf("xaa login: %v\n%s", err, errOut.String())
	}
	return out.String()
}

var cliCSRF = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func (w *cliWorld) browse(t *testing.T, authURL string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), w.idpIssuer+"/") {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := cliCSRF.FindStringSubmatch(string(body))
	if m == nil {
		t.Fatalf("no login form at %s: %.200s", authURL, body)
	}
	resp, err = c.PostForm(w.idpIssuer+"/login", url.Values{"csrf_token": {html.UnescapeString(m[1])}, "username": {"alice"}, "password": {cliPassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "http://127.0.0.1:") {
		t.Fatalf("login ended with %d at %q", resp.StatusCode, loc)
	}
	resp, err = c.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the loopback redirect answered %d", resp.StatusCode)
	}
}

// TestClientCLI drives the end-user commands against `xaa serve` and a
// governed MCP server: login through the browser, then token, tools and
// call without signing in again.
func TestClientCLI(t *testing.T) {
	t.Parallel()
	w := newCLIWorld(t)
	if out := w.login(t); !strings.Contains(out, "Signed in at "+w.idpIssuer+" as ") {
		t.Errorf("login printed %q", out)
	}
	fi, err := os.Stat(filepath.Join(filepath.Dir(w.profile), "tokens.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token cache: %v (mode %v)", err, fi.Mode())
	}

	out, errOut, err := runXAA(t, nil, "token", w.files, "--profile", w.profile, "--no-login")
	if err != nil {
		t.Fatalf("xaa token: %v\n%s", err, errOut)
	}
	tok := strings.TrimSuffix(out, "\n")
	if strings.Contains(tok, "\n") || tok == "" {
		t.Fatalf("xaa token printed more than a token: %q", out)
	}
	keys := testenv.KeysAt(t, w.asIssuer+"/jwks.json")
	if _, err := jose.Verify(t.Context(), tok, jose.AccessTokenProfile(), jose.SingleIssuer{Issuer: w.asIssuer, Keys: keys},
		jose.Expectations{Audiences: []string{w.files}, Issuer: w.asIssuer}); err != nil {
		t.Errorf("the printed token: %v", err)
	}

	out, errOut, err = runXAA(t, nil, "tools", w.files, "--profile", w.profile, "--no-login")
	if err != nil {
		t.Fatalf("xaa tools: %v\n%s", err, errOut)
	}
	if !regexp.MustCompile(`(?m)^echo\s+Echo the arguments as JSON\.$`).MatchString(out) || !strings.Contains(out, "fail") {
		t.Errorf("xaa tools printed:\n%s", out)
	}

	out, errOut, err = runXAA(t, nil, "call", w.files, "echo", "--profile", w.profile, "--no-login",
		"q=hello world", "n=3", "big=12345678901234567890", "flag=true", `obj={"a":[1,2]}`, `s="42"`, "empty=")
	if err != nil {
		t.Fatalf("xaa call: %v\n%s", err, errOut)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("echo printed %q: %v", out, err)
	}
	want := map[string]any{"q": "hello world", "n": 3.0, "big": 12345678901234567890.0, "flag": true,
		"obj": map[string]any{"a": []any{1.0, 2.0}}, "s": "42", "empty": ""}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("arguments the tool received (-want +got):\n%s", diff)
	}
	if !strings.Contains(out, "12345678901234567890") {
		t.Errorf("a large integer lost precision: %s", out)
	}

	out, _, err = runXAA(t, nil, "call", w.files, "fail", "--profile", w.profile, "--no-login")
	if !errors.Is(err, errToolFailed) || !strings.Contains(out, "it failed") {
		t.Errorf("xaa call fail: %v, printed %q; want the content and a non-zero exit", err, out)
	}
	if _, _, err := runXAA(t, nil, "call", w.files, "echo", "novalue", "--profile", w.profile); err == nil {
		t.Error("an argument without = was accepted")
	}

	// Denied: the pending connection. Final, and said so.
	_, _, err = runXAA(t, nil, "token", w.pending, "--profile", w.profile, "--no-login")
	if err == nil || !strings.Contains(err.Error(), "access_denied") {
		t.Errorf("xaa token for the pending server: %v; want access_denied", err)
	}
}

// TestClientProfileChecks: a profile with a secret that others can read is
// refused, as are unknown keys and missing registrations.
func TestClientProfileChecks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := "issuer: https://idp.example.com\nclient_id: a\nclient_secret: s3cret\nauth_servers:\n  - issuer: https://as.example.com\n    client_id: b\n    client_secret: s3cret\n"
	for _, tc := range []struct {
		name, body string
		mode       os.FileMode
		want       string
	}{
		{"readable secret", good, 0o644, "readable by others"},
		{"writable", strings.ReplaceAll(good, "client_secret: s3cret", "client_secret_file: x"), 0o666, "writable by others"},
		{"unknown key", good + "isuser: x\n", 0o600, "isuser"},
		{"no issuer", strings.Replace(good, "issuer: https://idp.example.com\n", "", 1), 0o600, "issuer is required"},
		{"no auth servers", "issuer: https://idp.example.com\nclient_id: a\nclient_secret: s\n", 0o600, "auth_servers"},
		{"public client", strings.Replace(good, "client_secret: s3cret\nauth", "auth", 1), 0o600, "confidential"},
	} {
		p := write(strings.ReplaceAll(tc.name, " ", "-")+".yaml", tc.body, tc.mode)
		_, _, err := runXAA(t, nil, "token", "https://mcp.example.com/mcp", "--profile", p, "--no-login")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error mentioning %q", tc.name, err, tc.want)
		}
	}
	if _, _, err := runXAA(t, map[string]string{"XAA_PROFILE": filepath.Join(dir, "missing.yaml")}, "token", "https://mcp.example.com/mcp"); err == nil ||
		!strings.Contains(err.Error(), "no client profile") {
		t.Errorf("missing profile: %v", err)
	}
}

// TestToolArguments: values that parse as JSON are JSON, the rest strings.
func TestToolArguments(t *testing.T) {
	t.Parallel()
	got, err := toolArguments([]string{"a=1", "b=x", "c=[1]", "d=null", "e=a=b", `f="q"`})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": json.Number("1"), "b": "x", "c": []any{json.Number("1")}, "d": nil, "e": "a=b", "f": "q"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range [][]string{{"=1"}, {"x"}, {"a=1", "a=2"}} {
		if _, err := toolArguments(bad); err == nil {
			t.Errorf("toolArguments(%q) accepted", bad)
		}
	}
}
