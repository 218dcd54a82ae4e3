package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/auth/extauth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"

	"github.com/openxaa/xaa/idjag"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/testenv"
)

const (
	e2eAppSecret   = "e2e-app-secret-0123456789abcdefghijklmnop"
	e2eASSecret    = "e2e-as-secret-0123456789abcdefghijklmnopq"
	e2ePassword    = "alice-e2e-password-correct-horse"
	e2eRedirectURI = "http://127.0.0.1/cb"
	e2eResource    = "https://mcp.example.com/files"
	e2eASClientID  = "assistant-at-files"
)

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
	port := testenv.FreeLoopbackPort(t)
	cfg, idpIssuer, asIssuer := e2eDeployment(t, port)
	if _, _, err := runXAA(t, nil, "migrate", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	base, log, stop := startServe(t, cfg)
	defer stop()
	waitHealthy(t, base+"/healthz")
	ctx := t.Context()

	// 1. OIDC login.
	idToken := testenv.OIDCLogin(t, testenv.Login{Issuer: idpIssuer, ClientID: "assistant", ClientSecret: e2eAppSecret, RedirectURI: e2eRedirectURI, Username: "alice", Password: e2ePassword})
	idpKeys := testenv.KeysAt(t, idpIssuer+"/jwks.json")
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
	asKeys := testenv.KeysAt(t, asIssuer+"/jwks.json")
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
	status, tok := testenv.TokenPost(t, asIssuer+"/token", e2eASClientID, e2eASSecret, bearer)
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
	if status, tok := testenv.TokenPost(t, asIssuer+"/token", e2eASClientID, e2eASSecret, bearer); status != http.StatusBadRequest || tok["error"] != "invalid_grant" {
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
