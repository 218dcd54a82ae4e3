package main

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/testenv"
)

const (
	adminTestSecret   = "admin-console-secret-0123456789abcdefghij"
	adminTestPassword = "alice-admin-password-correct-horse"
)

// adminDeployment is a dev-mode deployment on a fixed loopback port with
// the IdP, the authorization server and the admin API (under /admin), and
// a seed with an administrator (alice), a viewer (vic), the admin console
// app, and two connections: one approved, one pending.
func adminDeployment(t *testing.T, port int) (cfgPath, adminURL string) {
	t.Helper()
	path := deployment(t, fmt.Sprintf("127.0.0.1:%d", port))
	dir := filepath.Dir(path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	origin := fmt.Sprintf("http://127.0.0.1:%d", port)
	adminURL = origin + "/admin"
	idpIssuer, asIssuer := origin+"/idp", origin+"/as"
	seed := fmt.Sprintf(`groups:
  - name: staff
  - name: xaa-admins
users:
  - username: alice
    password: %q
    groups: [staff, xaa-admins]
  - username: vic
    password: %q
    groups: [staff]
apps:
  - client_id: xaa-admin
    name: Admin console
    auth_method: client_secret_basic
    client_secret: %q
    redirect_uris: [%q]
  - client_id: assistant
    auth_method: client_secret_basic
    client_secret: assistant-secret-0123456789abcdefghijkl
    redirect_uris: ["http://127.0.0.1/cb"]
  - client_id: agent
    auth_method: client_secret_basic
    client_secret: agent-secret-0123456789abcdefghijklmno
    redirect_uris: ["http://127.0.0.1/cb"]
auth_servers:
  - issuer: %q
    client_ids:
      assistant: assistant-at-files
      agent: agent-at-files
resources:
  - uri: https://mcp.example.com/files
    name: Files
    auth_server: %q
    scopes:
      - name: files:read
connections:
  - app: assistant
    resource: https://mcp.example.com/files
    groups:
      staff: [files:read]
    status: approved
    approver: security@example.com
  - app: agent
    resource: https://mcp.example.com/files
    groups:
      staff: [files:read]
    status: pending
`, adminTestPassword, adminTestPassword, adminTestSecret, adminURL+"/auth/callback", asIssuer, asIssuer)
	seedPath := filepath.Join(dir, "seed.yaml")
	secretPath := filepath.Join(dir, "admin-secret")
	for p, content := range map[string]string{seedPath: seed, secretPath: adminTestSecret + "\n"} {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	base, _, _ := strings.Cut(string(data), "issuers:\n")
	cfg := base + fmt.Sprintf(`issuers:
  idp: %q
  authserver: %q
dev_mode: true
seed_file: %s
authserver:
  trusted_issuers:
    - issuer: %q
      jwks_uri: "%s/jwks.json"
  resources:
    - uri: https://mcp.example.com/files
      scopes: [files:read]
admin:
  endpoint: %q
  client_id: xaa-admin
  client_secret_file: %s
  session_lifetime: 10m
  roles:
    xaa-admins: admin
`, idpIssuer, asIssuer, seedPath, idpIssuer, idpIssuer, adminURL, secretPath)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, adminURL
}

// TestServeAdmin runs `xaa serve` with the admin API and drives it with
// `xaa admin`: tokens created locally and printed once, every command
// group, role refusals surfacing as errors, and an administrator signing
// in through the served IdP's login form.
func TestServeAdmin(t *testing.T) {
	t.Parallel()
	port := testenv.FreeLoopbackPort(t)
	cfg, adminURL := adminDeployment(t, port)
	if _, _, err := runXAA(t, nil, "migrate", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	base, log, _ := startServe(t, cfg)
	waitHealthy(t, base+"/healthz")

	dir := t.TempDir()
	token := func(role string) string {
		t.Helper()
		out, errOut, err := runXAA(t, nil, "admin", "token", "create", "--config", cfg, "--role", role, "--ttl", "10m", "--description", "test")
		if err != nil {
			t.Fatalf("token create %s: %v\n%s", role, err, errOut)
		}
		tok := strings.TrimSpace(out)
		if !strings.HasPrefix(tok, "xaa_at_") || !strings.Contains(errOut, "shown once") {
			t.Fatalf("token create printed %q / %q", out, errOut)
		}
		f := filepath.Join(dir, role+".token")
		if err := os.WriteFile(f, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	adminTok, viewerTok, auditorTok := token("admin"), token("viewer"), token("auditor")
	if _, _, err := runXAA(t, nil, "admin", "token", "create", "--config", cfg, "--role", "admin", "--ttl", "2h"); err == nil {
		t.Error("a 2h token was created; the limit is 1h")
	}
	if _, _, err := runXAA(t, nil, "admin", "token", "create", "--config", cfg, "--role", "root"); err == nil {
		t.Error("a token of an unknown role was created")
	}

	xa := func(tokFile string, args ...string) (string, error) {
		t.Helper()
		out, errOut, err := runXAA(t, nil, append([]string{"admin", "--url", adminURL, "--token-file", tokFile}, args...)...)
		if err != nil {
			return out + errOut, err
		}
		return out, nil
	}
	mustXA := func(tokFile string, args ...string) string {
		t.Helper()
		out, err := xa(tokFile, args...)
		if err != nil {
			t.Fatalf("xaa admin %v: %v\n%s\nserve log:\n%s", args, err, out, log.String())
		}
		return out
	}

	who := mustXA(adminTok, "whoami")
	if !strings.Contains(who, "token at_") || !strings.Contains(who, "roles admin") {
		t.Errorf("whoami = %q", who)
	}
	var page struct {
		Items []struct{ ID, App, Status string } `json:"items"`
	}
	if err := json.Unmarshal([]byte(mustXA(viewerTok, "--json", "connections", "list", "--sort", "-created", "--all")), &page); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, it := range page.Items {
		ids[it.App] = it.ID
	}
	if len(page.Items) != 2 || ids["agent"] == "" || ids["assistant"] == "" {
		t.Fatalf("connections = %+v", page.Items)
	}
	if out := mustXA(viewerTok, "connections", "list", "--status", "pending"); !strings.Contains(out, ids["agent"]) || strings.Contains(out, ids["assistant"]) {
		t.Errorf("pending connections:\n%s", out)
	}

	// A role reaching beyond itself is an error naming the refusal.
	if out, err := xa(viewerTok, "connections", "revoke", ids["assistant"], "--reason", "x"); err == nil || !strings.Contains(out+err.Error(), "403 forbidden") {
		t.Errorf("viewer revoke: %v %s", err, out)
	}
	if out := mustXA(adminTok, "connections", "approve", ids["agent"], "--note", "reviewed"); !strings.Contains(out, "is approved") {
		t.Errorf("approve = %q", out)
	}
	if out := mustXA(adminTok, "connections", "revoke", ids["assistant"], "--reason", "retired"); !strings.Contains(out, "is revoked") {
		t.Errorf("revoke = %q", out)
	}
	if _, err := xa(adminTok, "connections", "revoke", ids["assistant"]); err == nil {
		t.Error("revoke without --reason succeeded")
	}
	if out := mustXA(adminTok, "connections", "show", ids["assistant"]); !strings.Contains(out, `"history"`) || !strings.Contains(out, `"revoked"`) {
		t.Errorf("show = %s", out)
	}
	until := time.Now().Add(72 * time.Hour).UTC().Format(time.RFC3339)
	if out := mustXA(adminTok, "connections", "recertify", ids["agent"], "--until", until); !strings.Contains(out, "recertify by") {
		t.Errorf("recertify = %q", out)
	}

	if out := mustXA(viewerTok, "users", "list", "--group", "xaa-admins"); !strings.Contains(out, "alice") || strings.Contains(out, "vic") {
		t.Errorf("users list:\n%s", out)
	}
	if out := mustXA(viewerTok, "users", "show", "alice"); !strings.Contains(out, `"admin_roles"`) {
		t.Errorf("users show = %s", out)
	}
	if out := mustXA(viewerTok, "groups", "show", "staff"); !strings.Contains(out, "vic") {
		t.Errorf("groups show = %s", out)
	}
	if out := mustXA(viewerTok, "apps", "list"); !strings.Contains(out, "xaa-admin") {
		t.Errorf("apps list:\n%s", out)
	}
	if out := mustXA(viewerTok, "resources", "show", "https://mcp.example.com/files"); !strings.Contains(out, `"connections"`) {
		t.Errorf("resources show = %s", out)
	}
	if out := mustXA(viewerTok, "resources", "list"); !strings.Contains(out, "files:read") {
		t.Errorf("resources list:\n%s", out)
	}
	mustXA(adminTok, "groups", "remove-member", "staff", "vic", "--reason", "moved")
	mustXA(adminTok, "users", "disable", "vic", "--reason", "left")
	mustXA(adminTok, "apps", "revoke", "agent", "--reason", "retired")
	if out := mustXA(viewerTok, "users", "list", "--disabled", "true"); !strings.Contains(out, "vic") {
		t.Errorf("disabled users:\n%s", out)
	}

	// The audit trail, for auditors.
	if out := mustXA(auditorTok, "audit", "query", "--type", "admin.token_create", "--all"); strings.Count(out, "admin.token_create") < 3 {
		t.Errorf("audit query:\n%s", out)
	}
	if out := mustXA(auditorTok, "audit", "verify"); !strings.Contains(out, "stream admin: ok") {
		t.Errorf("audit verify:\n%s", out)
	}
	if out := mustXA(auditorTok, "audit", "trace", "no-such-jti"); !strings.Contains(out, "no records") {
		t.Errorf("audit trace = %q", out)
	}
	// tail prints what exists since --since, then follows until cancelled.
	tailCtx, stopTail := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	var tailOut, tailErr syncBuffer
	err := run(tailCtx, []string{"xaa", "admin", "--url", adminURL, "--token-file", auditorTok, "audit", "tail",
		"--type", "admin.token_create", "--since", "2000-01-01T00:00:00Z", "--every", "200ms"},
		func(string) string { return "" }, strings.NewReader(""), &tailOut, &tailErr)
	stopTail()
	if err != nil || strings.Count(tailOut.String(), "admin.token_create") < 3 || strings.Contains(tailOut.String(), "users.disable") {
		t.Errorf("audit tail: %v\nstdout:\n%s\nstderr:\n%s", err, tailOut.String(), tailErr.String())
	}
	if _, err := xa(auditorTok, "audit", "tail", "--every", "1ms"); err == nil {
		t.Error("audit tail accepted --every 1ms")
	}
	exportFile := filepath.Join(dir, "audit.jsonl")
	mustXA(auditorTok, "audit", "export", "--stream", "admin", "--out", exportFile)
	if out, _, err := runXAA(t, nil, "audit", "verify", "--export", exportFile); err != nil || !strings.Contains(out, "all verified") {
		t.Errorf("the API's export does not verify offline: %v\n%s", err, out)
	}
	if _, err := xa(viewerTok, "audit", "query"); err == nil {
		t.Error("a viewer read the audit trail")
	}

	// The token also comes from the environment; never from a flag.
	tok, _ := os.ReadFile(auditorTok)
	out, _, err := runXAA(t, map[string]string{"XAA_ADMIN_TOKEN": strings.TrimSpace(string(tok)), "XAA_ADMIN_URL": adminURL}, "admin", "whoami")
	if err != nil || !strings.Contains(out, "roles auditor") {
		t.Errorf("whoami with XAA_ADMIN_TOKEN = %q, %v", out, err)
	}
	if _, _, err := runXAA(t, nil, "admin", "--url", adminURL, "whoami"); err == nil || !strings.Contains(err.Error(), "no admin token") {
		t.Errorf("whoami without a token: %v", err)
	}

	// An administrator signs in through the served IdP.
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	get := func(u string) (int, string) {
		t.Helper()
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get(adminURL + "/auth/login")
	m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		t.Fatalf("login = %d without the IdP's form: %.300s\nlog:\n%s", code, body, log.String())
	}
	resp, err := browser.PostForm(fmt.Sprintf("http://127.0.0.1:%d/idp/login", port),
		url.Values{"csrf_token": {html.UnescapeString(m[1])}, "username": {"alice"}, "password": {adminTestPassword}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "Signed in as alice") {
		t.Fatalf("sign-in ended with %d: %.300s\nlog:\n%s", resp.StatusCode, b, log.String())
	}
	if code, body := get(adminURL + "/api/v1/session"); code != http.StatusOK || !strings.Contains(body, `"csrf_token"`) {
		t.Errorf("session after sign-in = %d %s", code, body)
	}
	if code, body := get(adminURL + "/api/openapi.json"); code != http.StatusOK || !strings.Contains(body, `"openapi": "3.1.0"`) {
		t.Errorf("openapi = %d", code)
	}
}

// TestServeAdminOnly: `xaa serve --admin` runs the admin API alone, and
// asking for it without admin.endpoint is an error.
func TestServeAdminOnly(t *testing.T) {
	t.Parallel()
	cfg := deployment(t, "127.0.0.1:0")
	if _, _, err := runXAA(t, nil, "migrate", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runXAA(t, nil, "serve", "--admin", "--config", cfg); err == nil || !strings.Contains(err.Error(), "admin.endpoint") {
		t.Fatalf("serve --admin without admin.endpoint: %v", err)
	}
}
