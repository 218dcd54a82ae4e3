package idp

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/openxaa/xaa/internal/directory"
	"github.com/openxaa/xaa/internal/policy"
	"github.com/openxaa/xaa/internal/store"
)

func rpConfig(t *testing.T, h *ssoHarness, clientID, secret string) (*oauth2.Config, *oidc.IDTokenVerifier) {
	t.Helper()
	ctx := oidc.InsecureIssuerURLContext(t.Context(), h.issuer)
	provider, err := oidc.NewProvider(ctx, h.issuer)
	if err != nil {
		t.Fatalf("oidc.NewProvider: %v", err)
	}
	return &oauth2.Config{
		ClientID: clientID, ClientSecret: secret, Endpoint: provider.Endpoint(), RedirectURL: rpRedirect,
		Scopes: []string{oidc.ScopeOpenID, "profile", "email", oidc.ScopeOfflineAccess},
	}, provider.Verifier(&oidc.Config{ClientID: clientID})
}

// rpLogin is an independent relying party (go-oidc + x/oauth2) logging in
// with code + PKCE and verifying the ID token, nonce included.
func rpLogin(t *testing.T, h *ssoHarness, user, otp string, extra ...oauth2.AuthCodeOption) (*oauth2.Token, *oidc.IDToken) {
	t.Helper()
	conf, verifier := rpConfig(t, h, rp1, rp1Secret)
	pkce, state, nonce := oauth2.GenerateVerifier(), "st-"+randomToken()[:8], "n-"+randomToken()[:8]
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(pkce), oidc.Nonce(nonce)}, extra...)
	back := h.login(t, h.browser(), conf.AuthCodeURL(state, opts...), user, otp)
	q := back.Query()
	if q.Get("state") != state || q.Get("iss") != h.issuer || q.Get("code") == "" {
		t.Fatalf("redirect back = %v; want code, state %q and iss %q", back, state, h.issuer)
	}
	tok, err := conf.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(pkce))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := verifier.Verify(t.Context(), raw)
	if err != nil {
		t.Fatalf("verify ID token: %v", err)
	}
	if idt.Nonce != nonce {
		t.Fatalf("nonce = %q, want %q", idt.Nonce, nonce)
	}
	return tok, idt
}

type idClaims struct {
	AuthTime int64    `json:"auth_time"`
	ACR      string   `json:"acr"`
	AMR      []string `json:"amr"`
	SID      string   `json:"sid"`
	AZP      string   `json:"azp"`
	JTI      string   `json:"jti"`
}

func TestSSOPasswordLoginGoOIDC(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, nil)
	tok, idt := rpLogin(t, h, "alice", "")
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if idt.Subject != h.users["alice"] || c.ACR != policy.ACRPassword || len(c.AMR) != 1 || c.AMR[0] != "pwd" ||
		c.SID == "" || c.AZP != rp1 || c.JTI == "" || c.AuthTime == 0 {
		t.Errorf("ID token claims = sub %q %+v", idt.Subject, c)
	}
	if tok.RefreshToken == "" {
		t.Error("no refresh token for offline_access")
	}
	// userinfo with the access token.
	req, _ := http.NewRequest(http.MethodGet, h.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	p := do(t, http.DefaultClient, req)
	var ui map[string]any
	_ = json.Unmarshal([]byte(p.body), &ui)
	if p.status != 200 || ui["sub"] != h.users["alice"] || ui["email"] != "alice@example.com" || ui["preferred_username"] != "alice" {
		t.Errorf("userinfo = %d %s", p.status, p.body)
	}
	// refresh rotates.
	conf, _ := rpConfig(t, h, rp1, rp1Secret)
	tok2, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil || tok2.RefreshToken == "" || tok2.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh = %v, %v; want a new refresh token", tok2, err)
	}
}

func TestSSOTOTPLogin(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, nil)
	otp := directory.TOTPCode(h.totpKey, directory.TOTPStep(time.Now()))
	_, idt := rpLogin(t, h, "bob", otp, oauth2.SetAuthURLParam("acr_values", policy.ACRMFA))
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if c.ACR != policy.ACRMFA || strings.Join(c.AMR, " ") != "pwd otp" {
		t.Errorf("acr %q amr %v; want mfa and pwd otp", c.ACR, c.AMR)
	}
	// The same code cannot log in twice.
	conf, _ := rpConfig(t, h, rp1, rp1Secret)
	b := h.browser()
	p := get(t, b, conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	p = postForm(t, b, h.issuer+"/login", url.Values{"csrf_token": {csrf(t, p)}, "username": {"bob"}, "password": {ssoPassword}})
	p = postForm(t, b, h.issuer+"/login", url.Values{"csrf_token": {csrf(t, p)}, "otp": {otp}})
	if p.status != http.StatusUnauthorized {
		t.Errorf("replayed TOTP code: status %d, want 401", p.status)
	}
}

// TestSSOMFAOnDemand: with MFAOnDemand a user enrolled in TOTP signs in
// with the password alone (acr pwd) until a request asks for MFA, which
// then takes the one-time code (acr mfa); without it (the default, see
// TestSSOTOTPLogin) every login of that user takes the code.
func TestSSOMFAOnDemand(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, nil, func(c *Config) { c.MFAOnDemand = true })
	for _, tc := range []struct {
		name    string
		otp     string
		extra   []oauth2.AuthCodeOption
		wantACR string
		wantAMR string
	}{
		{"no acr_values: password only", "", nil, policy.ACRPassword, "pwd"},
		{"acr_values mfa: the code is asked", directory.TOTPCode(h.totpKey, directory.TOTPStep(time.Now())),
			[]oauth2.AuthCodeOption{oauth2.SetAuthURLParam("acr_values", policy.ACRMFA)}, policy.ACRMFA, "pwd otp"},
	} {
		_, idt := rpLogin(t, h, "bob", tc.otp, tc.extra...)
		var c idClaims
		if err := idt.Claims(&c); err != nil {
			t.Fatal(err)
		}
		if c.ACR != tc.wantACR || strings.Join(c.AMR, " ") != tc.wantAMR {
			t.Errorf("%s: acr %q amr %v; want %q and %q", tc.name, c.ACR, c.AMR, tc.wantACR, tc.wantAMR)
		}
	}
}

func TestSSOSessionReuseAndPromptLogin(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, nil)
	conf, _ := rpConfig(t, h, rp1, rp1Secret)
	b := h.browser()
	h.login(t, b, conf.AuthCodeURL("s1", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "alice", "")
	// A second request is answered from the session.
	p := get(t, b, conf.AuthCodeURL("s2", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if loc, _ := url.Parse(p.header.Get("Location")); p.status != http.StatusSeeOther || loc.Query().Get("code") == "" {
		t.Errorf("with a session: %d %v; want a code", p.status, p.header.Get("Location"))
	}
	for _, opt := range []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("max_age", "0")} {
		p = get(t, b, conf.AuthCodeURL("s3", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), opt))
		if p.status != http.StatusOK || !strings.Contains(p.body, "csrf_token") {
			t.Errorf("forced re-authentication: %d; want the login form", p.status)
		}
	}
	if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP = %q", csp)
	}
}

func challengeOf(v string) string {
	s := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

func authURL(h *ssoHarness, mod func(url.Values)) string {
	v := url.Values{
		"client_id": {rp1}, "redirect_uri": {rpRedirect}, "response_type": {"code"}, "scope": {"openid offline_access"},
		"state": {"xyz"}, "nonce": {"n"}, "code_challenge": {challengeOf(strings.Repeat("v", 43))}, "code_challenge_method": {"S256"},
	}
	if mod != nil {
		mod(v)
	}
	return h.issuer + "/authorize?" + v.Encode()
}

// TestSSOAuthorizeRejects: bad authorization requests never reach a login
// form; a bad client or redirect URI is never redirected to.
func TestSSOAuthorizeRejects(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, nil)
	cases := []struct {
		name      string
		url       string
		wantError string // "" = local error page, no redirect
	}{
		{"pkce missing", authURL(h, func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") }), "invalid_request"},
		{"pkce plain", authURL(h, func(v url.Values) { v.Set("code_challenge_method", "plain") }), "invalid_request"},
		{"pkce method missing", authURL(h, func(v url.Values) { v.Del("code_challenge_method") }), "invalid_request"},
		{"no openid", authURL(h, func(v url.Values) { v.Set("scope", "profile") }), "invalid_scope"},
		{"token response", authURL(h, func(v url.Values) { v.Set("response_type", "token") }), "unsupported_response_type"},
		{"repeated state", authURL(h, nil) + "&state=again", "invalid_request"},
		{"repeated scope", authURL(h, nil) + "&scope=openid", "invalid_request"},
		{"repeated client_id", authURL(h, nil) + "&client_id=" + rp1, ""},
		{"repeated redirect_uri", authURL(h, nil) + "&redirect_uri=" + url.QueryEscape(rpRedirect), ""},
		{"unknown client", authURL(h, func(v url.Values) { v.Set("client_id", "nope") }), ""},
		{"redirect other case", authURL(h, func(v url.Values) { v.Set("redirect_uri", "https://RP.example.com/cb") }), ""},
		{"redirect path case", authURL(h, func(v url.Values) { v.Set("redirect_uri", "https://rp.example.com/CB") }), ""},
		{"redirect userinfo", authURL(h, func(v url.Values) { v.Set("redirect_uri", "https://rp.example.com@evil.example/cb") }), ""},
		{"redirect userinfo good@evil", authURL(h, func(v url.Values) { v.Set("redirect_uri", "https://good@evil.example/cb") }), ""},
		{"redirect lookalike host", authURL(h, func(v url.Values) { v.Set("redirect_uri", "https://rp.example.com.evil.example/cb") }), ""},
		{"redirect extra query", authURL(h, func(v url.Values) { v.Set("redirect_uri", rpRedirect+"?x=1") }), ""},
		{"loopback other path", authURL(h, func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:5555/other") }), ""},
		{"loopback localhost", authURL(h, func(v url.Values) { v.Set("redirect_uri", "http://localhost:5555/cb") }), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := get(t, h.browser(), tc.url)
			loc := p.header.Get("Location")
			if tc.wantError == "" {
				if loc != "" || p.status != http.StatusBadRequest {
					t.Fatalf("got %d Location %q; want a local 400 error page", p.status, loc)
				}
				return
			}
			u, _ := url.Parse(loc)
			if p.status != http.StatusSeeOther || !strings.HasPrefix(loc, rpRedirect+"?") || u.Query().Get("error") != tc.wantError ||
				u.Query().Get("iss") != h.issuer || u.Query().Get("code") != "" {
				t.Fatalf("got %d Location %q; want error %s with iss", p.status, loc, tc.wantError)
			}
		})
	}
	// The loopback rule: any port, same path.
	p := get(t, h.browser(), authURL(h, func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:5555/cb") }))
	if p.status != http.StatusOK || !strings.Contains(p.body, "csrf_token") {
		t.Errorf("loopback with a port: %d; want the login form", p.status)
	}
}

// codeFor logs alice in with the fixed verifier and returns the code.
func codeFor(t *testing.T, h *ssoHarness, user string, mod func(url.Values)) string {
	t.Helper()
	back := h.login(t, h.browser(), authURL(h, mod), user, "")
	c := back.Query().Get("code")
	if c == "" {
		t.Fatalf("no code: %v", back)
	}
	return c
}

func tokenPost(t *testing.T, h *ssoHarness, client, secret string, v url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.issuer+"/token", strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, secret)
	p := do(t, http.DefaultClient, req)
	var body map[string]any
	_ = json.Unmarshal([]byte(p.body), &body)
	return p.status, body
}

func codeForm(code, verifier string) url.Values {
	v := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect}}
	if verifier != "" {
		v.Set("code_verifier", verifier)
	}
	return v
}

// TestSSOTokenRejects: each bad redemption returns invalid_grant, issues
// nothing and writes exactly one audit record of the expected type.
func TestSSOTokenRejects(t *testing.T) {
	t.Parallel()
	good := strings.Repeat("v", 43)
	cases := []struct {
		name      string
		run       func(t *testing.T, h *ssoHarness) (int, map[string]any)
		wantAudit string
	}{
		{"verifier missing", func(t *testing.T, h *ssoHarness) (int, map[string]any) {
			return tokenPost(t, h, rp1, rp1Secret, codeForm(codeFor(t, h, "alice", nil), ""))
		}, "token.denied"},
		{"verifier mismatch", func(t *testing.T, h *ssoHarness) (int, map[string]any) {
			return tokenPost(t, h, rp1, rp1Secret, codeForm(codeFor(t, h, "alice", nil), strings.Repeat("w", 43)))
		}, "token.denied"},
		{"other client", func(t *testing.T, h *ssoHarness) (int, map[string]any) {
			return tokenPost(t, h, rp2, rp2Secret, codeForm(codeFor(t, h, "alice", nil), good))
		}, "token.denied"},
		{"redirect_uri differs", func(t *testing.T, h *ssoHarness) (int, map[string]any) {
			v := codeForm(codeFor(t, h, "alice", nil), good)
			v.Set("redirect_uri", rpLoopback)
			return tokenPost(t, h, rp1, rp1Secret, v)
		}, "token.denied"},
		{"unknown code", func(t *testing.T, h *ssoHarness) (int, map[string]any) {
			return tokenPost(t, h, rp1, rp1Secret, codeForm(randomToken(), good))
		}, "token.denied"},
		{"user disabled after login", func(t *testing.T, h *ssoHarness) (int, map[string]any) {
			code := codeFor(t, h, "alice", nil)
			if err := h.db.UpdateUser(t.Context(), h.users["alice"], func(u store.User) (store.User, error) { u.Disabled = true; return u, nil }); err != nil {
				t.Fatal(err)
			}
			return tokenPost(t, h, rp1, rp1Secret, codeForm(code, good))
		}, "token.denied"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newSSOHarness(t, nil)
			status, body := tc.run(t, h)
			if status != http.StatusBadRequest || body["error"] != "invalid_grant" || body["access_token"] != nil {
				t.Fatalf("got %d %v; want 400 invalid_grant", status, body)
			}
			if n := h.tokenCount(t); n != 0 {
				t.Errorf("%d token.issued records; want 0", n)
			}
			if n := len(h.audit(t, tc.wantAudit)); n != 1 {
				t.Errorf("%d %s records; want 1", n, tc.wantAudit)
			}
		})
	}
}

func TestSSOCodeReuseRevokesFirstTokens(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, nil)
	good := strings.Repeat("v", 43)
	code := codeFor(t, h, "alice", nil)
	status, first := tokenPost(t, h, rp1, rp1Secret, codeForm(code, good))
	if status != 200 {
		t.Fatalf("first redemption: %d %v", status, first)
	}
	status, second := tokenPost(t, h, rp1, rp1Secret, codeForm(code, good))
	if status != 400 || second["error"] != "invalid_grant" {
		t.Fatalf("second redemption: %d %v; want invalid_grant", status, second)
	}
	if n := len(h.audit(t, "token.code_reuse")); n != 1 {
		t.Errorf("%d token.code_reuse records; want 1", n)
	}
	status, body := tokenPost(t, h, rp1, rp1Secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first["refresh_token"].(string)}})
	if status != 400 || body["error"] != "invalid_grant" {
		t.Errorf("first use's refresh token after reuse: %d %v; want invalid_grant", status, body)
	}
	req, _ := http.NewRequest(http.MethodGet, h.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+first["access_token"].(string))
	if p := do(t, http.DefaultClient, req); p.status != http.StatusUnauthorized {
		t.Errorf("first use's access token at userinfo: %d; want 401", p.status)
	}
}

func TestSSORefreshReuseRevokesFamily(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, nil)
	_, first := tokenPost(t, h, rp1, rp1Secret, codeForm(codeFor(t, h, "alice", nil), strings.Repeat("v", 43)))
	rt1 := first["refresh_token"].(string)
	refresh := func(rt string) (int, map[string]any) {
		return tokenPost(t, h, rp1, rp1Secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	}
	status, second := refresh(rt1)
	if status != 200 {
		t.Fatalf("rotation: %d %v", status, second)
	}
	rt2 := second["refresh_token"].(string)
	if status, body := refresh(rt1); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("superseded token: %d %v; want invalid_grant", status, body)
	}
	if n := len(h.audit(t, "token.refresh_reuse")); n != 1 {
		t.Errorf("%d token.refresh_reuse records; want 1", n)
	}
	if status, body := refresh(rt2); status != 400 || body["error"] != "invalid_grant" {
		t.Errorf("the family's current token after reuse: %d %v; want invalid_grant", status, body)
	}
	// Another client cannot use it either way.
	if status, body := tokenPost(t, h, rp2, rp2Secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt2}}); status != 400 {
		t.Errorf("other client: %d %v", status, body)
	}
}

func TestSSOLoginFailuresAndLockout(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, &LoginLimit{UserFailures: 3, IPFailures: 100})
	b := h.browser()
	p := get(t, b, authURL(h, nil))
	tok := csrf(t, p)
	try := func(user, pass string) page {
		return postForm(t, b, h.issuer+"/login", url.Values{"csrf_token": {tok}, "username": {user}, "password": {pass}})
	}
	// Disabled user with the right password, unknown user, wrong password:
	// one answer.
	for _, c := range [][2]string{{"carol", ssoPassword}, {"nobody", ssoPassword}, {"bob", "wrong password!"}} {
		if p := try(c[0], c[1]); p.status != http.StatusUnauthorized || !strings.Contains(p.body, "incorrect") {
			t.Errorf("%s: %d; want 401 with the generic message", c[0], p.status)
		}
	}
	// CSRF token missing or wrong.
	if p := postForm(t, b, h.issuer+"/login", url.Values{"username": {"alice"}, "password": {ssoPassword}}); p.status != http.StatusForbidden {
		t.Errorf("no CSRF token: %d; want 403", p.status)
	}
	for range 3 {
		p = try("alice", "wrong password!")
	}
	if p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") == "" {
		t.Fatalf("third failure: %d Retry-After %q; want 429", p.status, p.header.Get("Retry-After"))
	}
	if p := try("alice", ssoPassword); p.status != http.StatusTooManyRequests {
		t.Errorf("locked user with the right password: %d; want 429", p.status)
	}
	if n := len(h.audit(t, "sso.login_locked")); n != 1 {
		t.Errorf("%d sso.login_locked records; want 1", n)
	}
	if n := len(h.audit(t, "sso.login_failed")); n != 6 {
		t.Errorf("%d sso.login_failed records; want 6", n)
	}
	if n := len(h.audit(t, "sso.login")); n != 0 {
		t.Errorf("%d sso.login records; want 0", n)
	}
}

func TestSSOMetadata(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, nil)
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		p := get(t, http.DefaultClient, h.issuer+path)
		var m map[string]any
		if err := json.Unmarshal([]byte(p.body), &m); err != nil {
			t.Fatal(err)
		}
		if m["issuer"] != h.issuer || m["authorization_response_iss_parameter_supported"] != true ||
			!strings.Contains(p.body, `"code_challenge_methods_supported":["S256"]`) ||
			!strings.Contains(p.body, grantTokenExchange) || !strings.Contains(p.body, tokenTypeIDJAGURN) {
			t.Errorf("%s = %s", path, p.body)
		}
	}
}
