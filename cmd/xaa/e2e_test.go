package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
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

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/auth/extauth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"

	"github.com/openxaa/xaa/idjag"
	"github.com/openxaa/xaa/internal/jose"
)

const (
	e2eAppSecret   = "e2e-app-secret-0123456789abcdefghijklmnop"
	e2eASSecret    = "e2e-as-secret-0123456789abcdefghijklmnopq"
	e2ePassword    = "alice-e2e-password-correct-horse"
	e2eRedirectURI = "http://127.0.0.1/cb"
	e2eResource    = "https://mcp.example.com/files"
	e2eASClientID  = "assistant-at-files"
)

var e2eCSRF = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// e2eDeployment is deployment() with both issuers at the port serve will
// listen on (so discovery by issuer works, as a real client does it), a
// seed of one user, app, authorization server, resource and connection,
// and the authserver section trusting the IdP of the same process.
func e2eDeployment(t *testing.T, port int) (cfgPath, idpIssuer, asIssuer string) {
	t.Helper()
	path := deployment(t, fmt.Sprintf("127.0.0.1:%d", port))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	idpIssuer = fmt.Sprintf("http://127.0.0.1:%d/idp", port)
	asIssuer = fmt.Sprintf("http://127.0.0.1:%d/as", port)

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
`, e2ePassword, e2eAppSecret, e2eRedirectURI, asIssuer, e2eASClientID, e2eResource, asIssuer, e2eResource)
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
      access_token_lifetime: 5m
  clients:
    - client_id: %s
      auth_method: client_secret_basic
      client_secret_sha256: %q
      resources: [%q]
      scopes: [files:read]
`, idpIssuer, asIssuer, seedPath, idpIssuer, idpIssuer, e2eResource, e2eASClientID, sha256Hex(e2eASSecret), e2eResource)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, idpIssuer, asIssuer
}

// keysAt fetches a published JWKS as a key set for jose.Verify.
func keysAt(t *testing.T, jwksURL string) jose.KeySet {
	t.Helper()
	resp, err := http.Get(jwksURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d %s", jwksURL, resp.StatusCode, body)
	}
	set, err := jose.ParseJWKS(body)
	if err != nil {
		t.Fatalf("%s: %v", jwksURL, err)
	}
	ks, err := jose.NewStaticKeySet(set)
	if err != nil {
		t.Fatalf("%s: %v", jwksURL, err)
	}
	return ks
}

// tokenPost posts form to a token endpoint, with client_secret_basic
// credentials when id is set, and decodes the JSON answer.
func tokenPost(t *testing.T, endpoint, id, secret string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("POST %s = %d, not JSON: %.300s", endpoint, resp.StatusCode, body)
	}
	return resp.StatusCode, m
}

// oidcLogin signs alice in through the IdP's real authorization endpoint
// and login form, with PKCE S256, and redeems the code for an ID token.
func oidcLogin(t *testing.T, idpIssuer string) string {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	// A browser that follows the IdP's own redirects and stops at the
	// client's redirect URI (which nothing listens on).
	browser := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), idpIssuer+"/") {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	fetch := func(req *http.Request) (*http.Response, string) {
		t.Helper()
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", req.Method, req.URL, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}

	verifier := rand.Text() + rand.Text() // 52 base32 characters
	sum := sha256.Sum256([]byte(verifier))
	state, nonce := rand.Text(), rand.Text()
	q := url.Values{
		"client_id": {"assistant"}, "redirect_uri": {e2eRedirectURI}, "response_type": {"code"},
		"scope": {"openid"}, "state": {state}, "nonce": {nonce},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	req, _ := http.NewRequest(http.MethodGet, idpIssuer+"/authorize?"+q.Encode(), nil)
	resp, body := fetch(req)
	m := e2eCSRF.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("authorize ended at %s with %d and no login form: %.300s", resp.Request.URL, resp.StatusCode, body)
	}
	form := url.Values{"csrf_token": {html.UnescapeString(m[1])}, "username": {"alice"}, "password": {e2ePassword}}
	req, _ = http.NewRequest(http.MethodPost, idpIssuer+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, body = fetch(req)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil || !strings.HasPrefix(loc.String(), e2eRedirectURI+"?") {
		t.Fatalf("login ended with %d to %q, not at the redirect URI: %.300s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if got := loc.Query().Get("state"); got != state {
		t.Fatalf("redirect state = %q, want %q", got, state)
	}
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("redirect carries no code: %s", loc.Redacted())
	}

	status, tok := tokenPost(t, idpIssuer+"/token", "assistant", e2eAppSecret, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {e2eRedirectURI}, "code_verifier": {verifier},
	})
	idToken, _ := tok["id_token"].(string)
	if status != http.StatusOK || idToken == "" {
		t.Fatalf("code redemption = %d %v", status, tok["error"])
	}
	return idToken
}

// e2eAuthClaims are the sign-in claims an ID token and an access token share.
type e2eAuthClaims struct {
	Subject  string   `json:"sub"`
	Audience string   `json:"aud"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope"`
	AuthTime int64    `json:"auth_time"`
	ACR      string   `json:"acr"`
	AMR      []string `json:"amr"`
}

// TestEndToEnd runs the whole Cross App Access flow against the real
// binary: OIDC login at the IdP, token exchange for an ID-JAG, and the
// jwt-bearer grant at the authorization server of the same process; then
// the MCP Go SDK's enterprise handler does the same, as a client would.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	port := freeLoopbackPort(t)
	cfg, idpIssuer, asIssuer := e2eDeployment(t, port)
	if _, _, err := runXAA(t, nil, "migrate", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	base, log, stop := startServe(t, cfg)
	defer stop()
	waitHealthy(t, base+"/healthz")
	ctx := t.Context()

	// 1. OIDC login.
	idToken := oidcLogin(t, idpIssuer)
	idpKeys := keysAt(t, idpIssuer+"/jwks.json")
	idt, err := jose.Verify(ctx, idToken, jose.IDTokenProfile(), jose.SingleIssuer{Issuer: idpIssuer, Keys: idpKeys},
		jose.Expectations{Audiences: []string{"assistant"}, Issuer: idpIssuer})
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	var login e2eAuthClaims
	if err := idt.Decode(&login); err != nil {
		t.Fatal(err)
	}
	if login.AuthTime == 0 || len(login.AMR) == 0 {
		t.Errorf("ID token lacks auth_time or amr: %+v", login)
	}

	// 2. Token exchange with the go-sdk (client_secret_post, empty code=).
	jag, err := oauthex.ExchangeToken(ctx, idpIssuer+"/token", &oauthex.TokenExchangeRequest{
		RequestedTokenType: oauthex.TokenTypeIDJAG,
		Audience:           asIssuer,
		Resource:           e2eResource,
		Scope:              []string{"files:read"},
		SubjectToken:       idToken,
		SubjectTokenType:   oauthex.TokenTypeIDToken,
	}, &oauthex.ClientCredentials{ClientID: "assistant", ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: e2eAppSecret}}, nil)
	if err != nil {
		t.Fatalf("token exchange: %v", err)
	}
	if itt, _ := jag.Extra("issued_token_type").(string); itt != idjag.TokenType {
		t.Errorf("issued_token_type = %q, want %q", itt, idjag.TokenType)
	}
	if jag.TokenType != "N_A" {
		t.Errorf("token_type = %q, want N_A", jag.TokenType)
	}
	jt, err := jose.Verify(ctx, jag.AccessToken, jose.IDJAGProfile(), jose.SingleIssuer{Issuer: idpIssuer, Keys: idpKeys},
		jose.Expectations{Audiences: []string{asIssuer}, Issuer: idpIssuer})
	if err != nil {
		t.Fatalf("ID-JAG: %v", err)
	}
	var jc idjag.Claims
	if err := jt.Decode(&jc); err != nil {
		t.Fatal(err)
	}
	if jc.ClientID != e2eASClientID || jc.Subject != login.Subject {
		t.Errorf("ID-JAG client_id %q sub %q; want %q and the ID token's %q", jc.ClientID, jc.Subject, e2eASClientID, login.Subject)
	}

	// 3. jwt-bearer at the authorization server, client_secret_basic.
	asKeys := keysAt(t, asIssuer+"/jwks.json")
	want := e2eAuthClaims{
		Subject: idpIssuer + "|" + login.Subject, Audience: e2eResource, ClientID: e2eASClientID, Scope: "files:read",
		AuthTime: login.AuthTime, ACR: login.ACR, AMR: login.AMR,
	}
	checkAccessToken := func(t *testing.T, raw string) {
		t.Helper()
		at, err := jose.Verify(ctx, raw, jose.AccessTokenProfile(), jose.SingleIssuer{Issuer: asIssuer, Keys: asKeys},
			jose.Expectations{Audiences: []string{e2eResource}, Issuer: asIssuer})
		if err != nil {
			t.Fatalf("access token: %v", err)
		}
		var got e2eAuthClaims
		if err := at.Decode(&got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("access token claims (-want +got):\n%s", diff)
		}
	}
	bearer := url.Values{"grant_type": {idjag.GrantTypeJWTBearer}, "assertion": {jag.AccessToken}, "resource": {e2eResource}}
	status, tok := tokenPost(t, asIssuer+"/token", e2eASClientID, e2eASSecret, bearer)
	if status != http.StatusOK {
		t.Fatalf("jwt-bearer = %d %v %v", status, tok["error"], tok["error_description"])
	}
	if tt, _ := tok["token_type"].(string); !strings.EqualFold(tt, "Bearer") || tok["scope"] != "files:read" || tok["resource"] != e2eResource {
		t.Errorf("jwt-bearer response: token_type %v scope %v resource %v", tok["token_type"], tok["scope"], tok["resource"])
	}
	if _, ok := tok["refresh_token"]; ok {
		t.Error("jwt-bearer issued a refresh token")
	}
	access, _ := tok["access_token"].(string)
	checkAccessToken(t, access)

	// An ID-JAG is single-use.
	if status, tok := tokenPost(t, asIssuer+"/token", e2eASClientID, e2eASSecret, bearer); status != http.StatusBadRequest || tok["error"] != "invalid_grant" {
		t.Errorf("second presentation of the ID-JAG = %d %v; want 400 invalid_grant", status, tok["error"])
	}

	// 4. The go-sdk's enterprise handler: discovery of both servers by
	// issuer, token exchange and jwt-bearer, both with client_secret_post.
	h, err := extauth.NewEnterpriseHandler(&extauth.EnterpriseHandlerConfig{
		IdPIssuerURL:     idpIssuer,
		IdPCredentials:   &oauthex.ClientCredentials{ClientID: "assistant", ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: e2eAppSecret}},
		MCPAuthServerURL: asIssuer,
		MCPResourceURI:   e2eResource,
		MCPCredentials:   &oauthex.ClientCredentials{ClientID: e2eASClientID, ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: e2eASSecret}},
		MCPScopes:        []string{"files:read"},
		IDTokenFetcher: func(context.Context) (*oauth2.Token, error) {
			return (&oauth2.Token{}).WithExtra(map[string]any{"id_token": idToken}), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	unauthorized := &http.Response{StatusCode: http.StatusUnauthorized, Body: io.NopCloser(strings.NewReader(""))}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e2eResource, nil)
	if err := h.Authorize(ctx, req, unauthorized); err != nil {
		t.Fatalf("go-sdk enterprise handler: %v", err)
	}
	ts, err := h.TokenSource(ctx)
	if err != nil || ts == nil {
		t.Fatalf("go-sdk token source = %v, %v", ts, err)
	}
	sdkTok, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	if sdkTok.AccessToken == access {
		t.Error("the go-sdk got the same access token again")
	}
	checkAccessToken(t, sdkTok.AccessToken)

	stop()
	for _, secret := range []string{e2ePassword, e2eAppSecret, e2eASSecret, idToken, jag.AccessToken, access} {
		if strings.Contains(log.String(), secret) {
			t.Error("serve's log holds a secret or token")
		}
	}
}
