package idp

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/idjag"
	"github.com/openxaa/xaa/internal/directory"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/policy"
	"github.com/openxaa/xaa/internal/store"
)

// The step-up organisation: rp1 reaches testResource; staff get both
// scopes, but files:write needs an MFA login (scopeWrite) and reports:run
// a login at most ten minutes old.
const (
	scopeFresh  = "reports:run"
	stepUpConn  = "c_rp1_stepup"
	stepUpAtAS  = "as-rp1"
	freshMaxAge = 10 * time.Minute
)

// seedStepUp gives the SSO harness's rp1 a connection with step-up rules.
func (h *ssoHarness) seedStepUp(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	if err := h.db.CreateAuthServer(ctx, store.AuthServer{Issuer: testAS, Name: "AS", ClientIDs: map[string]string{rp1: stepUpAtAS},
		CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := h.db.CreateResource(ctx, store.Resource{URI: testResource, Name: "MCP", AuthServerIssuer: testAS,
		Scopes:    []store.ResourceScope{{Name: scopeRead}, {Name: scopeWrite, Sensitive: true}, {Name: scopeFresh}},
		CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := h.db.CreateConnection(ctx, store.Connection{
		ID: stepUpConn, AppID: rp1, ResourceURI: testResource,
		GroupScopes: []store.GroupScopes{{Group: "staff", Scopes: []string{scopeRead, scopeWrite, scopeFresh}}},
		StepUp: []store.StepUpRule{
			{Scope: scopeWrite, ACR: policy.ACRMFA},
			{Scope: scopeFresh, MaxAge: freshMaxAge},
		},
		IDJAGLifetime: 300 * time.Second, AccessTokenLifetime: 300 * time.Second,
		Status: store.ConnectionApproved, Approver: "secops", CreatedAt: now, UpdatedAt: now,
	}); err != nil {
		t.Fatal(err)
	}
}

// stepUpLogin logs user in through the real login form in browser b
// (keeping its session cookie), redeems the code as rp1 and returns the ID
// token. mod adjusts the authorization request; otp is "" for a
// password-only login.
func (h *ssoHarness) stepUpLogin(t *testing.T, b *http.Client, user, otp string, mod func(url.Values)) string {
	t.Helper()
	back := h.login(t, b, authURL(h, mod), user, otp)
	code := back.Query().Get("code")
	if code == "" {
		t.Fatalf("login redirected back without a code: %v", back)
	}
	status, body := tokenPost(t, h, rp1, rp1Secret, codeForm(code, strings.Repeat("v", 43)))
	idt, _ := body["id_token"].(string)
	if status != http.StatusOK || idt == "" {
		t.Fatalf("code redemption: %d %v", status, body)
	}
	return idt
}

// idTokenClaims verifies an ID token from this IdP for rp1 at the
// server's clock and returns its authentication claims.
func (h *ssoHarness) idTokenClaims(t *testing.T, raw string) idClaims {
	t.Helper()
	tok, err := jose.Verify(t.Context(), raw, jose.IDTokenProfile(),
		jose.SingleIssuer{Issuer: h.issuer, Keys: h.srv.cfg.Keys.KeySet()}, jose.Expectations{Audiences: []string{rp1}, Now: h.clock.now()})
	if err != nil {
		t.Fatalf("verify ID token: %v", err)
	}
	var c idClaims
	if err := tok.Decode(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// exchangeScope asks for an ID-JAG for testResource with scope as rp1.
func (h *ssoHarness) exchangeScope(t *testing.T, idToken, scope string) (int, map[string]any) {
	t.Helper()
	return tokenPost(t, h, rp1, rp1Secret, url.Values{
		"grant_type":           {idjag.GrantTypeTokenExchange},
		"requested_token_type": {idjag.TokenType},
		"audience":             {testAS},
		"resource":             {testResource},
		"scope":                {scope},
		"subject_token":        {idToken},
		"subject_token_type":   {idjag.TokenTypeIDToken},
	})
}

// TestStepUpEndToEnd is the step-up acceptance over the real
// login: alice, without TOTP, signs in with her password; the ID token
// (acr pwd) cannot buy files:write, whose rule needs mfa, and the error
// says so in acr_values. An administrator then enrolls TOTP for her; she
// signs in again in the same browser asking for acr mfa (her pwd session
// does not satisfy it, so the IdP runs both factors), and the new ID token
// buys an ID-JAG whose acr, amr and auth_time are those of that login.
func TestStepUpEndToEnd(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, nil)
	h.seedStepUp(t)
	alice := h.users["alice"]
	b := h.browser()

	pwdToken := h.stepUpLogin(t, b, "alice", "", nil)
	if c := h.idTokenClaims(t, pwdToken); c.ACR != policy.ACRPassword || !cmp.Equal(c.AMR, []string{"pwd"}) {
		t.Fatalf("first login: acr %q amr %v; want a password-only login", c.ACR, c.AMR)
	}
	// The scope without a rule is fine on a password login; the gated
	// one is not, and the error names the context to come back with.
	if status, body := h.exchangeScope(t, pwdToken, scopeRead); status != http.StatusOK {
		t.Fatalf("files:read on a password login: %d %v", status, body)
	}
	issuedBefore := len(h.audit(t, AuditIDJAGIssued))
	status, body := h.exchangeScope(t, pwdToken, scopeRead+" "+scopeWrite)
	if status != http.StatusBadRequest || body["error"] != oauth.CodeInsufficientUserAuthentication {
		t.Fatalf("files:write on a password login = %d %v; want insufficient_user_authentication", status, body)
	}
	if body["acr_values"] != policy.ACRMFA || body["max_age"] != nil || body["access_token"] != nil {
		t.Errorf("step-up error = %v; want acr_values %q, no max_age, no token", body, policy.ACRMFA)
	}
	denied := h.audit(t, AuditIDJAGDenied)
	if len(denied) != 1 || denied[0].Rule != policy.RuleStepUpACR || denied[0].Subject != alice {
		t.Errorf("denial records %+v; want one %s for alice", denied, policy.RuleStepUpACR)
	}
	if n := len(h.audit(t, AuditIDJAGIssued)); n != issuedBefore {
		t.Errorf("the denied exchange issued an ID-JAG (%d issued, was %d)", n, issuedBefore)
	}

	// Enrollment, as an administrator (or `xaa seed`) would do it.
	secret, err := directory.GenerateTOTPSecret()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.db.UpdateUser(t.Context(), alice, func(u store.User) (store.User, error) {
		u.TOTPSealed, err = directory.SealTOTPSecret(h.srv.cfg.TOTP, u.ID, secret)
		u.UpdatedAt = time.Now().UTC().Truncate(time.Second)
		return u, err
	}); err != nil {
		t.Fatalf("enroll TOTP: %v", err)
	}

	// Later (so the two auth_times differ), a fresh login with both factors.
	h.clock.advance(2 * time.Minute)
	loginAt := h.clock.now().Unix()
	otp := directory.TOTPCode(secret, directory.TOTPStep(h.clock.now()))
	mfaToken := h.stepUpLogin(t, b, "alice", otp, func(v url.Values) { v.Set("acr_values", policy.ACRMFA) })
	idc := h.idTokenClaims(t, mfaToken)
	if idc.ACR != policy.ACRMFA || !cmp.Equal(idc.AMR, []string{"pwd", "otp"}) || idc.AuthTime < loginAt || idc.AuthTime > loginAt+5 {
		t.Fatalf("second login: acr %q amr %v auth_time %d; want mfa, [pwd otp], about %d", idc.ACR, idc.AMR, idc.AuthTime, loginAt)
	}

	status, body = h.exchangeScope(t, mfaToken, scopeRead+" "+scopeWrite)
	if status != http.StatusOK {
		t.Fatalf("files:write after the MFA login = %d %v", status, body)
	}
	raw, _ := body["access_token"].(string)
	tok, err := jose.Verify(t.Context(), raw, jose.IDJAGProfile(),
		jose.SingleIssuer{Issuer: h.issuer, Keys: h.srv.cfg.Keys.KeySet()}, jose.Expectations{Audiences: []string{testAS}, Now: h.clock.now()})
	if err != nil {
		t.Fatalf("verify ID-JAG: %v", err)
	}
	var c idjag.Claims
	if err := tok.Decode(&c); err != nil {
		t.Fatal(err)
	}
	type view struct {
		Iss, Sub, Aud, ClientID, Resource, Scope, ACR string
		AMR                                           []string
		AuthTime                                      int64
	}
	want := view{Iss: h.issuer, Sub: alice, Aud: testAS, ClientID: stepUpAtAS, Resource: testResource,
		Scope: scopeRead + " " + scopeWrite, ACR: policy.ACRMFA, AMR: []string{"pwd", "otp"}, AuthTime: idc.AuthTime}
	got := view{Iss: c.Issuer, Sub: c.Subject, Aud: c.Audience, ClientID: c.ClientID, Resource: c.Resource,
		Scope: c.Scope, ACR: c.ACR, AMR: c.AMR, AuthTime: c.AuthTime}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ID-JAG after step-up (-want +got):\n%s", d)
	}
	if body["scope"] != scopeRead+" "+scopeWrite || body["issued_token_type"] != idjag.TokenType {
		t.Errorf("exchange response = %v", body)
	}
	// The old password token still cannot buy the gated scope.
	deniedBefore := len(h.audit(t, AuditIDJAGDenied))
	status, body = h.exchangeScope(t, pwdToken, scopeWrite)
	if status != http.StatusBadRequest || body["error"] != oauth.CodeInsufficientUserAuthentication {
		t.Errorf("the password token after the step-up = %d %v; want still insufficient_user_authentication", status, body)
	}
	if n := len(h.audit(t, AuditIDJAGDenied)); n != deniedBefore+1 {
		t.Errorf("%d denial records, want %d", n, deniedBefore+1)
	}
}

// TestStepUpMaxAgeEndToEnd: an SSO session answers a later authorization
// request without a login, so its ID token's auth_time is the session's.
// Past the rule's max_age that token cannot buy reports:run, and the error
// carries max_age; a login forced with max_age (as the client would retry)
// yields a token that can.
func TestStepUpMaxAgeEndToEnd(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, nil)
	h.seedStepUp(t)
	b := h.browser()

	// Sign in eleven minutes "ago" (the server's clock runs behind), then
	// bring the clock back to now.
	h.clock.advance(-(freshMaxAge + time.Minute))
	h.stepUpLogin(t, b, "alice", "", nil)
	h.clock.advance(freshMaxAge + time.Minute)

	// The session answers without a login: a new ID token, an old auth_time.
	old := h.stepUpLogin(t, b, "alice", "", nil)
	if c := h.idTokenClaims(t, old); time.Since(time.Unix(c.AuthTime, 0)) < freshMaxAge {
		t.Fatalf("session-answered ID token auth_time %v; want older than %v", time.Unix(c.AuthTime, 0), freshMaxAge)
	}
	if status, body := h.exchangeScope(t, old, scopeRead); status != http.StatusOK {
		t.Fatalf("files:read (no rule) on the old login: %d %v", status, body)
	}
	status, body := h.exchangeScope(t, old, scopeFresh)
	h.wantStepUpMaxAge(t, status, body)

	// The client retries with max_age: the session is too old, so the IdP
	// asks for the password again.
	loginAt := time.Now().Unix()
	fresh := h.stepUpLogin(t, b, "alice", "", func(v url.Values) { v.Set("max_age", "600") })
	if c := h.idTokenClaims(t, fresh); c.AuthTime < loginAt || c.AuthTime > loginAt+5 {
		t.Fatalf("retried login auth_time %d; want about %d", c.AuthTime, loginAt)
	}
	status, body = h.exchangeScope(t, fresh, scopeFresh)
	if status != http.StatusOK {
		t.Fatalf("reports:run after a fresh login = %d %v", status, body)
	}
	if body["scope"] != scopeFresh {
		t.Errorf("scope %v; want %s", body["scope"], scopeFresh)
	}
}

func (h *ssoHarness) wantStepUpMaxAge(t *testing.T, status int, body map[string]any) {
	t.Helper()
	if status != http.StatusBadRequest || body["error"] != oauth.CodeInsufficientUserAuthentication || body["access_token"] != nil {
		t.Fatalf("reports:run on an old login = %d %v; want 400 insufficient_user_authentication", status, body)
	}
	if body["max_age"] != float64(freshMaxAge/time.Second) || body["acr_values"] != nil {
		t.Errorf("step-up error = %v; want max_age %d and no acr_values", body, int(freshMaxAge/time.Second))
	}
	denied := h.audit(t, AuditIDJAGDenied)
	if len(denied) != 1 || denied[0].Rule != policy.RuleStepUpMaxAge || denied[0].Subject != h.users["alice"] {
		t.Errorf("denial records %+v; want one %s for alice", denied, policy.RuleStepUpMaxAge)
	}
}
