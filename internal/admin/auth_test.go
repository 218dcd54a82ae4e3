package admin

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// TestHumanLoginThroughIdP signs an administrator in through the IdP's
// real authorization endpoint and login form (code + PKCE S256, state,
// nonce), then uses the session cookie: reads need nothing more, changes
// need the same-origin Origin and the CSRF token, and signing out ends the
// session.
func TestHumanLoginThroughIdP(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqliteURL(t))
	b, page := h.signIn("alice")
	if page.status != http.StatusOK || !strings.Contains(string(page.body), "Signed in as alice") {
		t.Fatalf("callback = %d %.300s, want the signed-in page", page.status, page.body)
	}
	if csp := page.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("callback page CSP = %q", csp)
	}

	sess := h.do(b, http.MethodGet, "/api/v1/session", "", nil)
	m := sess.json(t)
	if sess.status != http.StatusOK || m["kind"] != "human" || m["name"] != "alice" || m["id"] != h.users["alice"] {
		t.Fatalf("GET session = %d %v", sess.status, m)
	}
	if roles, _ := m["roles"].([]any); len(roles) != 1 || roles[0] != "admin" {
		t.Errorf("roles = %v, want [admin]", m["roles"])
	}
	csrf, _ := m["csrf_token"].(string)
	if csrf == "" {
		t.Fatal("session has no csrf_token")
	}

	// The session cookie's attributes: HttpOnly, SameSite=Strict, short
	// lived; not Secure only because this is loopback http in dev mode.
	ck := h.sessionSetCookie(b)
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Max-Age="} {
		if !strings.Contains(ck, want) {
			t.Errorf("session Set-Cookie %q lacks %s", ck, want)
		}
	}

	// A change with the cookie, the origin and the CSRF token works (and
	// is audited with the human actor and role).
	same := map[string]string{"Origin": h.origin(), CSRFHeader: csrf}
	a := h.do(b, http.MethodPost, "/api/v1/tokens", `{"role":"viewer","ttl":"10m","description":"ci"}`, same)
	if a.status != http.StatusOK {
		t.Fatalf("POST tokens with session = %d %s", a.status, a.body)
	}
	evs, err := h.db.ListAudit(context.Background(), store.AuditFilter{Type: "admin.token_create", Since: time.Now().Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(evs, func(e store.AuditEvent) bool { return e.Actor == h.users["alice"] }); i < 0 || evs[i].Data["actor_kind"] != "human" {
		t.Errorf("no admin.token_create record with actor alice (human): %+v", evs)
	}

	// Sign out: the session ends, the cookie no longer works.
	if a := h.do(b, http.MethodPost, "/api/v1/session/logout", `{}`, same); a.status != http.StatusOK {
		t.Fatalf("logout = %d %s", a.status, a.body)
	}
	if a := h.do(b, http.MethodGet, "/api/v1/session", "", nil); a.status != http.StatusUnauthorized {
		t.Fatalf("session after logout = %d %s, want 401", a.status, a.body)
	}
}

// TestLoginRefusedWithoutAdminGroup: an IdP user in no admin group gets
// no session, and the refusal is audited.
func TestLoginRefusedWithoutAdminGroup(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqliteURL(t))
	before := h.snapshot()
	b, page := h.signIn("eve")
	if page.status != http.StatusForbidden {
		t.Fatalf("callback for eve = %d %.300s, want 403", page.status, page.body)
	}
	if a := h.do(b, http.MethodGet, "/api/v1/session", "", nil); a.status != http.StatusUnauthorized {
		t.Fatalf("session = %d, want 401", a.status)
	}
	after := h.snapshot()
	if !slices.Equal(before.tables["admin_sessions"], after.tables["admin_sessions"]) {
		t.Error("a session was created for a user outside the admin groups")
	}
	evs, _ := h.db.ListAudit(context.Background(), store.AuditFilter{Type: "admin.login", Outcome: "deny"})
	if len(evs) != 1 || evs[0].Actor != h.users["eve"] {
		t.Errorf("admin.login deny records = %+v, want one for eve", evs)
	}
}

// TestRolesFollowGroupsNow: a session's roles are the user's groups of
// now, so removing a member takes effect on the next request.
func TestRolesFollowGroupsNow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqliteURL(t))
	b, page := h.signIn("amos")
	if page.status != http.StatusOK {
		t.Fatalf("sign-in = %d", page.status)
	}
	if err := h.db.RemoveMember(context.Background(), "xaa-approvers", h.users["amos"]); err != nil {
		t.Fatal(err)
	}
	if a := h.do(b, http.MethodGet, "/api/v1/session", "", nil); a.status != http.StatusForbidden {
		t.Fatalf("session after leaving the admin group = %d %s, want 403", a.status, a.body)
	}
}

// TestLoginCallbackRefusals: a callback without the sign-in cookie, with
// another state, or from another issuer creates nothing.
func TestLoginCallbackRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqliteURL(t))
	start := func() (*http.Client, string) {
		b := newBrowser(t)
		b.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		a := h.do(b, http.MethodGet, "/auth/login", "", nil)
		loc := a.header.Get("Location")
		if a.status != http.StatusSeeOther || !strings.HasPrefix(loc, h.issuer+"/authorize?") {
			t.Fatalf("login = %d to %q", a.status, loc)
		}
		for _, want := range []string{"code_challenge_method=S256", "nonce=", "state=", "client_id=" + adminClientID} {
			if !strings.Contains(loc, want) {
				t.Errorf("authorization request %q lacks %s", loc, want)
			}
		}
		u, _ := http.NewRequest(http.MethodGet, loc, nil)
		return b, u.URL.Query().Get("state")
	}
	before := h.snapshot()
	for _, c := range []struct {
		name  string
		query func(state string) string
		fresh bool // a browser that never started a sign-in
	}{
		{"no sign-in cookie", func(st string) string { return "code=abc&state=" + st + "&iss=" + h.issuer }, true},
		{"another state", func(string) string { return "code=abc&state=forged&iss=" + h.issuer }, false},
		{"another issuer", func(st string) string { return "code=abc&state=" + st + "&iss=https://evil.example" }, false},
		{"no iss", func(st string) string { return "code=abc&state=" + st }, false},
		{"unknown parameter", func(st string) string { return "code=abc&state=" + st + "&iss=" + h.issuer + "&x=1" }, false},
		{"an unknown code", func(st string) string { return "code=abc&state=" + st + "&iss=" + h.issuer }, false},
	} {
		b, st := start()
		if c.fresh {
			b = newBrowser(t)
		}
		a := h.do(b, http.MethodGet, "/auth/callback?"+c.query(st), "", nil)
		if a.status < 400 || a.status >= 500 {
			t.Errorf("%s: callback = %d %s, want 4xx", c.name, a.status, a.body)
		}
		if m := a.json(t); m["error"] == nil || m["error_description"] == "" {
			t.Errorf("%s: error body %v", c.name, m)
		}
	}
	after := h.snapshot()
	if !slices.Equal(before.tables["admin_sessions"], after.tables["admin_sessions"]) {
		t.Error("a refused callback created a session")
	}
}

// TestTokenAuth: admin tokens as Bearer tokens; anything else is 401
// invalid_token with a challenge, and a token in the URL is refused.
func TestTokenAuth(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqliteURL(t))
	for _, r := range Roles {
		a := h.as(r, http.MethodGet, "/api/v1/session", "")
		m := a.json(t)
		if a.status != http.StatusOK || m["kind"] != "token" || m["csrf_token"] != nil {
			t.Errorf("%s token: session = %d %v", r, a.status, m)
		}
	}
	ctx := context.Background()
	expired, err := CreateToken(ctx, h.db, TokenRequest{Role: RoleAdmin, TTL: time.Second, Actor: "cli:test", ActorKind: "cli",
		Now: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := CreateToken(ctx, h.db, TokenRequest{Role: RoleAdmin, TTL: time.Hour, Actor: "cli:test", ActorKind: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.db.RevokeAdminToken(ctx, revoked.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	good := h.tokens[RoleAdmin]
	for _, c := range []struct {
		name, auth string
		want       int
		code       string
	}{
		{"none", "", 401, codeUnauthorized},
		{"expired", "Bearer " + expired.Value, 401, codeInvalidToken},
		{"revoked", "Bearer " + revoked.Value, 401, codeInvalidToken},
		{"unknown", "Bearer " + tokenPrefix + randomValue(), 401, codeInvalidToken},
		{"malformed", "Bearer " + tokenPrefix + "short", 401, codeInvalidToken},
		{"no prefix", "Bearer " + good[len(tokenPrefix):], 401, codeInvalidToken},
		{"basic scheme", "Basic " + good, 401, codeInvalidToken},
		{"empty bearer", "Bearer ", 401, codeInvalidToken},
		{"lowercase scheme", "bearer " + good, 200, ""},
	} {
		hdr := map[string]string{}
		if c.auth != "" {
			hdr["Authorization"] = c.auth
		}
		a := h.do(nil, http.MethodGet, "/api/v1/session", "", hdr)
		if a.status != c.want {
			t.Errorf("%s: status %d %s, want %d", c.name, a.status, a.body, c.want)
			continue
		}
		if c.want == 401 {
			if m := a.json(t); m["error"] != c.code {
				t.Errorf("%s: error %v, want %s", c.name, m["error"], c.code)
			}
			if ch := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer") {
				t.Errorf("%s: WWW-Authenticate %q", c.name, ch)
			}
		}
	}
	a := h.do(nil, http.MethodGet, "/api/v1/session?access_token="+good, "", nil)
	if a.status != http.StatusBadRequest {
		t.Errorf("token in the query = %d, want 400", a.status)
	}
	if a.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", a.header.Get("Cache-Control"))
	}
}

func (h *harness) origin() string { return h.issuer }

// sessionSetCookie signs in again to capture the raw Set-Cookie header of
// the session (the jar hides attributes).
func (h *harness) sessionSetCookie(_ *http.Client) string {
	h.t.Helper()
	b := newBrowser(h.t)
	var setCookie string
	b.CheckRedirect = func(req *http.Request, via []*http.Request) error { return nil }
	a := h.do(b, http.MethodGet, "/auth/login", "", nil)
	m := csrfField.FindSubmatch(a.body)
	if m == nil {
		h.t.Fatal("no login form")
	}
	b.CheckRedirect = func(req *http.Request, via []*http.Request) error { return http.ErrUseLastResponse }
	form := url.Values{"csrf_token": {html.UnescapeString(string(m[1]))}, "username": {"alice"}, "password": {password}}
	req, _ := http.NewRequest(http.MethodPost, h.issuer+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	req, _ = http.NewRequest(http.MethodGet, resp.Header.Get("Location"), nil)
	resp, err = b.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, h.admin.cookieName()+"=") {
			setCookie = c
		}
	}
	if setCookie == "" {
		h.t.Fatalf("callback set no session cookie: %v", resp.Header.Values("Set-Cookie"))
	}
	return setCookie
}
