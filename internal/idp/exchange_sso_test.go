package idp

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openxaa/xaa/idjag"
	"github.com/openxaa/xaa/internal/store"
)

// seedExchange gives the SSO harness's rp1 a connection to testResource
// (staff get files:read), so that tokens from a real login can be
// exchanged.
func (h *ssoHarness) seedExchange(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	if err := h.db.CreateAuthServer(ctx, store.AuthServer{Issuer: testAS, Name: "AS", ClientIDs: map[string]string{rp1: "as-rp1"},
		CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := h.db.CreateResource(ctx, store.Resource{URI: testResource, Name: "MCP", AuthServerIssuer: testAS,
		Scopes: []store.ResourceScope{{Name: scopeRead}}, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := h.db.CreateConnection(ctx, store.Connection{
		ID: "c_rp1_mcp", AppID: rp1, ResourceURI: testResource,
		GroupScopes:   []store.GroupScopes{{Group: "staff", Scopes: []string{scopeRead}}},
		IDJAGLifetime: 300 * time.Second, AccessTokenLifetime: 300 * time.Second,
		Status: store.ConnectionApproved, Approver: "secops", CreatedAt: now, UpdatedAt: now,
	}); err != nil {
		t.Fatal(err)
	}
}

// exchange asks for an ID-JAG for testResource as rp1.
func (h *ssoHarness) exchange(t *testing.T, subjectToken, subjectTokenType string) (int, map[string]any) {
	t.Helper()
	return tokenPost(t, h, rp1, rp1Secret, url.Values{
		"grant_type":           {idjag.GrantTypeTokenExchange},
		"requested_token_type": {idjag.TokenType},
		"audience":             {testAS},
		"resource":             {testResource},
		"scope":                {scopeRead},
		"subject_token":        {subjectToken},
		"subject_token_type":   {subjectTokenType},
	})
}

// TestExchangeAfterCodeReuse: an authorization code redeemed twice revokes
// what its first redemption issued, and from then on neither that ID token
// nor that refresh token mints an ID-JAG, though the ID token's signature
// and exp are still good.
func TestExchangeAfterCodeReuse(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, nil)
	h.seedExchange(t)
	verifier := strings.Repeat("v", 43)
	code := codeFor(t, h, "alice", nil)
	status, first := tokenPost(t, h, rp1, rp1Secret, codeForm(code, verifier))
	if status != http.StatusOK {
		t.Fatalf("first redemption: %d %v", status, first)
	}
	idt, _ := first["id_token"].(string)
	rt, _ := first["refresh_token"].(string)
	if status, body := h.exchange(t, idt, idjag.TokenTypeIDToken); status != http.StatusOK {
		t.Fatalf("exchange before the reuse: %d %v", status, body)
	}
	if status, body := tokenPost(t, h, rp1, rp1Secret, codeForm(code, verifier)); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("second redemption: %d %v; want invalid_grant", status, body)
	}
	for _, tc := range []struct {
		name, token, tokenType, rule string
	}{
		{"id_token", idt, idjag.TokenTypeIDToken, ruleSubjectRevoked},
		{"refresh_token", rt, idjag.TokenTypeRefreshToken, ruleSubjectInvalid},
	} {
		status, body := h.exchange(t, tc.token, tc.tokenType)
		if status != http.StatusBadRequest || body["error"] != "invalid_grant" || body["access_token"] != nil {
			t.Errorf("%s of the first redemption after the reuse: %d %v; want invalid_grant", tc.name, status, body)
		}
		denied := h.audit(t, AuditIDJAGDenied)
		if len(denied) == 0 || denied[len(denied)-1].Rule != tc.rule {
			t.Errorf("%s: denial records %+v; want the last with rule %s", tc.name, denied, tc.rule)
		}
	}
	if n := len(h.audit(t, AuditIDJAGIssued)); n != 1 {
		t.Errorf("%d ID-JAGs issued; want only the one before the reuse", n)
	}
}
