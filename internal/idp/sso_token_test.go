package idp

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/policy"
	"github.com/openxaa/xaa/internal/store"
)

// These cover the SSO half's token endpoint and /authorize beyond
// sso_test.go. The spec checklist (xaa-protocol.md §7) is about token
// exchange and the RAS; none of its items names the code or refresh grant,
// so these tests are named after the behaviour (§2.6 and decisions.md
// "duplicate parameters are invalid_request").

// tokenPostRaw posts body to /token as is, so a test can repeat a
// parameter.
func tokenPostRaw(t *testing.T, h *ssoHarness, client, secret, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.issuer+"/token", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, secret)
	p := do(t, http.DefaultClient, req)
	var m map[string]any
	_ = json.Unmarshal([]byte(p.body), &m)
	return p.status, m
}

const ssoVerifier = "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv" // what authURL's challenge is for

// TestSSOTokenRepeatedParameter: a repeated parameter is invalid_request
// before the grant runs, so nothing is issued and the code is not
// consumed: the well-formed redemption afterwards succeeds.
func TestSSOTokenRepeatedParameter(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"code", "redirect_uri", "code_verifier", "grant_type"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newSSOHarness(t, nil)
			code := codeFor(t, h, "alice", nil)
			good := codeForm(code, ssoVerifier)
			extra := url.Values{name: {good.Get(name)}}
			if name == "code" {
				extra.Set("code", randomToken())
			}
			status, body := tokenPostRaw(t, h, rp1, rp1Secret, good.Encode()+"&"+extra.Encode())
			if status != http.StatusBadRequest || body["error"] != "invalid_request" || body["access_token"] != nil {
				t.Fatalf("got %d %v; want 400 invalid_request", status, body)
			}
			if n := h.tokenCount(t); n != 0 {
				t.Errorf("%d token.issued records; want 0", n)
			}
			if status, body := tokenPost(t, h, rp1, rp1Secret, good); status != http.StatusOK {
				t.Errorf("the code after the refused request: %d %v; want it still redeemable", status, body)
			}
		})
	}
	t.Run("refresh_token", func(t *testing.T) {
		t.Parallel()
		h := newSSOHarness(t, nil)
		_, first := tokenPost(t, h, rp1, rp1Secret, codeForm(codeFor(t, h, "alice", nil), ssoVerifier))
		rt, _ := first["refresh_token"].(string)
		good := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		status, body := tokenPostRaw(t, h, rp1, rp1Secret, good.Encode()+"&refresh_token="+randomToken())
		if status != http.StatusBadRequest || body["error"] != "invalid_request" {
			t.Fatalf("got %d %v; want 400 invalid_request", status, body)
		}
		if status, body := tokenPost(t, h, rp1, rp1Secret, good); status != http.StatusOK {
			t.Errorf("the refresh token after the refused request: %d %v; want it still usable", status, body)
		}
		if n := len(h.audit(t, "token.refresh_reuse")); n != 0 {
			t.Errorf("%d token.refresh_reuse records; want 0", n)
		}
	})
}

// TestSSOTokenExpiredCode: a code presented after its lifetime is
// invalid_grant, with one denial record and nothing issued.
func TestSSOTokenExpiredCode(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, nil)
	code := codeFor(t, h, "alice", nil)
	h.clock.advance(DefaultCodeLifetime + time.Second)
	status, body := tokenPost(t, h, rp1, rp1Secret, codeForm(code, ssoVerifier))
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" || body["access_token"] != nil {
		t.Fatalf("got %d %v; want 400 invalid_grant", status, body)
	}
	if n := h.tokenCount(t); n != 0 {
		t.Errorf("%d token.issued records; want 0", n)
	}
	denied := h.audit(t, "token.denied")
	if len(denied) != 1 || !strings.Contains(denied[0].Reason, "expired") {
		t.Errorf("denial records %+v; want one saying the code expired", denied)
	}
}

// TestSSORefreshExpired: a refresh family ends at its absolute expiry,
// and rotation does not extend it: the token rotated an hour before the
// end is refused after it.
func TestSSORefreshExpired(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, nil)
	_, first := tokenPost(t, h, rp1, rp1Secret, codeForm(codeFor(t, h, "alice", nil), ssoVerifier))
	refresh := func(rt string) (int, map[string]any) {
		return tokenPost(t, h, rp1, rp1Secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	}
	rt, _ := first["refresh_token"].(string)
	h.clock.advance(DefaultRefreshLifetime - time.Hour)
	status, second := refresh(rt)
	if status != http.StatusOK {
		t.Fatalf("rotation before the end: %d %v", status, second)
	}
	h.clock.advance(time.Hour + time.Second)
	rt2, _ := second["refresh_token"].(string)
	status, body := refresh(rt2)
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" || body["access_token"] != nil {
		t.Fatalf("after the family's end: %d %v; want 400 invalid_grant", status, body)
	}
	denied := h.audit(t, "token.denied")
	if len(denied) != 1 || !strings.Contains(denied[0].Reason, "expired") {
		t.Errorf("denial records %+v; want one saying the refresh token expired", denied)
	}
	if n := h.tokenCount(t); n != 2 {
		t.Errorf("%d token.issued records; want 2 (redemption and one rotation)", n)
	}
}

// TestSSORefreshDisabledUser: refreshing for a disabled user is
// invalid_grant, audited with policy's rule. The family is NOT revoked:
// disabled is a state the directory answers at every use (refresh,
// exchange, userinfo, session), not an event, so whether a grant survives
// must not depend on whether a client happened to refresh while the user
// was disabled. Re-enabling restores the grant. Killing a user's grants
// (after a compromise) is a revocation of its own, not a side effect of a
// refresh attempt.
func TestSSORefreshDisabledUser(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, nil)
	_, first := tokenPost(t, h, rp1, rp1Secret, codeForm(codeFor(t, h, "alice", nil), ssoVerifier))
	rt, _ := first["refresh_token"].(string)
	refresh := func() (int, map[string]any) {
		return tokenPost(t, h, rp1, rp1Secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	}
	setDisabled := func(v bool) {
		t.Helper()
		if err := h.db.UpdateUser(t.Context(), h.users["alice"], func(u store.User) (store.User, error) {
			u.Disabled = v
			return u, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	setDisabled(true)
	status, body := refresh()
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" || body["access_token"] != nil {
		t.Fatalf("disabled user: %d %v; want 400 invalid_grant", status, body)
	}
	denied := h.audit(t, "token.denied")
	if len(denied) != 1 || denied[0].Data["rule"] != policy.RuleUserDisabled || denied[0].Subject != h.users["alice"] {
		t.Errorf("denial records %+v; want one with rule %s", denied, policy.RuleUserDisabled)
	}
	row, err := h.db.GetRefreshToken(t.Context(), digestOf(rt))
	if err != nil || !row.RevokedAt.IsZero() || !row.SupersededAt.IsZero() {
		t.Errorf("refresh token after the denial: %+v, %v; want neither revoked nor superseded", row, err)
	}
	setDisabled(false)
	if status, body := refresh(); status != http.StatusOK {
		t.Errorf("after re-enabling: %d %v; want the grant back", status, body)
	}
}

// authorizeForm is authURL's parameters as a form body.
func authorizeForm(mod func(url.Values)) url.Values {
	u, _ := url.Parse(authURL(&ssoHarness{}, mod))
	return u.Query()
}

// TestSSOAuthorizePOST: POST /authorize with a form body (OIDC Core
// §3.1.2.1) is the same request as GET. An RP page submitting it from a
// browser is cross-site by nature, so it must not be refused as CSRF.
func TestSSOAuthorizePOST(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, nil)
	post := func(t *testing.T, c *http.Client, body string, header map[string]string) page {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, h.issuer+"/authorize", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		return do(t, c, req)
	}
	crossSite := map[string]string{"Origin": "https://rp.example.com", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
	for _, tc := range []struct {
		name   string
		header map[string]string
	}{{"plain", nil}, {"browser_cross_site", crossSite}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := h.browser()
			p := post(t, b, authorizeForm(nil).Encode(), tc.header)
			if p.status != http.StatusOK || !strings.Contains(p.body, "csrf_token") {
				t.Fatalf("POST /authorize: %d; want the login form: %.200s", p.status, p.body)
			}
			p = postForm(t, b, h.issuer+"/login", url.Values{"csrf_token": {csrf(t, p)}, "username": {"alice"}, "password": {ssoPassword}})
			loc, _ := url.Parse(p.header.Get("Location"))
			if p.status != http.StatusSeeOther || loc == nil || loc.Query().Get("state") != "xyz" || loc.Query().Get("iss") != h.issuer {
				t.Fatalf("login: %d %q; want a redirect with state and iss", p.status, p.header.Get("Location"))
			}
			if status, body := tokenPost(t, h, rp1, rp1Secret, codeForm(loc.Query().Get("code"), ssoVerifier)); status != http.StatusOK {
				t.Errorf("redeeming the code: %d %v", status, body)
			}
		})
	}
	t.Run("repeated_parameter", func(t *testing.T) {
		t.Parallel()
		p := post(t, h.browser(), authorizeForm(nil).Encode()+"&scope=openid", nil)
		u, _ := url.Parse(p.header.Get("Location"))
		if p.status != http.StatusSeeOther || u == nil || u.Query().Get("error") != "invalid_request" || u.Query().Get("code") != "" {
			t.Errorf("got %d %q; want an invalid_request redirect", p.status, p.header.Get("Location"))
		}
	})
	t.Run("body_only", func(t *testing.T) {
		// Parameters in a POST's query are not read: the request names
		// no client, so it gets the local error page.
		t.Parallel()
		req, _ := http.NewRequest(http.MethodPost, h.issuer+"/authorize?"+authorizeForm(nil).Encode(), strings.NewReader(""))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if p := do(t, h.browser(), req); p.status != http.StatusBadRequest || p.header.Get("Location") != "" {
			t.Errorf("got %d %q; want a local 400", p.status, p.header.Get("Location"))
		}
	})
	t.Run("not_a_form", func(t *testing.T) {
		t.Parallel()
		req, _ := http.NewRequest(http.MethodPost, h.issuer+"/authorize", strings.NewReader(`{"client_id":"rp1"}`))
		req.Header.Set("Content-Type", "application/json")
		if p := do(t, h.browser(), req); p.status != http.StatusBadRequest || p.header.Get("Location") != "" {
			t.Errorf("got %d %q; want a local 400", p.status, p.header.Get("Location"))
		}
	})
}
