package xaaclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/openxaa/xaa/internal/authserver"
	"github.com/openxaa/xaa/xaaclient"
)

// TestFlowThroughGoSDK: a go-sdk MCP client with the xaaclient handler
// connects to an mcpauth-protected server it has never seen: the 401
// leads to discovery, the SSO login, one exchange and one redemption;
// tools/list and tools/call then work with the cached token.
func TestFlowThroughGoSDK(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	b := w.browser("alice")
	c := w.client(b, nil)
	ctx := t.Context()
	cs := w.session(ctx, c, w.files)
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	// mcpauth lists the tools the token's scope (files:read) allows; the
	// step-up tools stay listed.
	if diff := cmp.Diff([]string{"admin", "fresh", "search"}, names); diff != "" {
		t.Errorf("tools (-want +got):\n%s", diff)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "search", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("tools/call search: %v %+v", err, res)
	}
	if got := w.rec.count(idpTokenPath, grantTE); got != 1 {
		t.Errorf("token exchanges = %d, want 1", got)
	}
	if got := w.rec.count(asTokenPath, grantJB); got != 1 {
		t.Errorf("jwt-bearer redemptions = %d, want 1", got)
	}
	if got := b.formsFilled(); got != 1 {
		t.Errorf("logins = %d, want 1", got)
	}
	// The login used PKCE S256, state and nonce, and the identity is
	// alice's.
	authURL, _ := url.Parse(b.visited()[0])
	q := authURL.Query()
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if q.Get(k) == "" {
			t.Errorf("authorization request lacks %s", k)
		}
	}
	if q.Get("code_challenge_method") != "S256" || !strings.HasPrefix(q.Get("redirect_uri"), "http://127.0.0.1:") {
		t.Errorf("authorization request: method %q redirect %q", q.Get("code_challenge_method"), q.Get("redirect_uri"))
	}
	id, err := c.Identity()
	if err != nil || id.Subject == "" || !id.Renewable {
		t.Errorf("Identity = %+v, %v; want a renewable session", id, err)
	}
}

// TestE88ResourceMismatchAbortsBeforeAnyAS (checklist E88): metadata
// whose resource is not the requested MCP URL, found through the
// challenge or through the well-known URL, stops the client before it
// contacts any authorization server (not even its metadata) or the IdP.
func TestE88ResourceMismatchAbortsBeforeAnyAS(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	liar, quiet := w.base+"/mcp/liar", w.base+"/mcp/quiet"
	prm := func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(map[string]any{"resource": w.files, "authorization_servers": []string{w.asIss}})
	}
	w.mux.HandleFunc("/elsewhere/prm", prm)
	w.mux.HandleFunc("/.well-known/oauth-protected-resource/mcp/quiet", prm)
	w.mux.HandleFunc("/mcp/liar", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+w.base+`/elsewhere/prm", scope="files:read"`)
		rw.WriteHeader(http.StatusUnauthorized)
	})
	w.mux.HandleFunc("/mcp/quiet", func(rw http.ResponseWriter, _ *http.Request) { rw.WriteHeader(http.StatusMethodNotAllowed) })

	b := w.browser("alice")
	c := w.client(b, nil)
	ctx := t.Context()
	h, err := c.Handler(liar)
	if err != nil {
		t.Fatal(err)
	}
	_, err = mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: liar, OAuthHandler: h, DisableStandaloneSSE: true}, nil)
	if !errors.Is(err, xaaclient.ErrResourceMismatch) {
		t.Errorf("connect through the challenge: %v; want ErrResourceMismatch", err)
	}
	if _, err := c.Token(ctx, quiet); !errors.Is(err, xaaclient.ErrResourceMismatch) {
		t.Errorf("token through the well-known URL: %v; want ErrResourceMismatch", err)
	}
	for _, line := range w.rec.requestLines() {
		if strings.Contains(line, "/as") || strings.Contains(line, "/idp") {
			t.Errorf("the client contacted %q after a resource mismatch", line)
		}
	}
	if len(b.visited()) != 0 {
		t.Error("the client started a login after a resource mismatch")
	}
}

// TestE90OnlyTheIDJAGGrant (checklist E90): with the real authorization
// server (id-jag profile) the exchange names it as audience and the PRM
// resource as resource; an authorization server without the profile is
// refused, and its authorization endpoint is never opened.
func TestE90OnlyTheIDJAGGrant(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	legacyAS := w.base + "/legacy-as"
	legacy := w.base + "/mcp/legacy"
	w.mux.HandleFunc("/.well-known/oauth-protected-resource/mcp/legacy", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(map[string]any{"resource": legacy, "authorization_servers": []string{legacyAS}})
	})
	w.mux.HandleFunc("/.well-known/oauth-authorization-server/legacy-as", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(map[string]any{
			"issuer": legacyAS, "authorization_endpoint": legacyAS + "/authorize", "token_endpoint": legacyAS + "/token",
			"response_types_supported": []string{"code"}, "grant_types_supported": []string{"authorization_code"},
			"code_challenge_methods_supported": []string{"S256"},
		})
	})
	w.mux.HandleFunc("/mcp/legacy", func(rw http.ResponseWriter, _ *http.Request) { rw.WriteHeader(http.StatusUnauthorized) })

	b := w.browser("alice")
	c := w.client(b, func(o *xaaclient.Options) {
		o.AuthServers[legacyAS] = xaaclient.Credentials{ClientID: "x", ClientSecret: "legacy-secret-0123456789"}
	})
	ctx := t.Context()
	if _, err := c.Token(ctx, legacy); !errors.Is(err, xaaclient.ErrNotXAA) {
		t.Errorf("token for a non-XAA server: %v; want ErrNotXAA", err)
	}
	if _, err := c.Token(ctx, w.files); err != nil {
		t.Fatalf("token for the files server: %v", err)
	}
	forms := w.rec.forms(idpTokenPath, grantTE)
	if len(forms) != 1 {
		t.Fatalf("exchanges = %d, want 1", len(forms))
	}
	want := url.Values{
		"grant_type": {grantTE}, "requested_token_type": {"urn:ietf:params:oauth:token-type:id-jag"},
		"audience": {w.asIss}, "resource": {w.files}, "scope": {scopeRead},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:id_token"},
	}
	got := forms[0]
	got.Del("subject_token")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("token exchange form (-want +got):\n%s", diff)
	}
	for _, line := range w.rec.requestLines() {
		if strings.Contains(line, "/authorize") && !strings.HasPrefix(line, "GET /idp/authorize") {
			t.Errorf("the client opened an authorization server's authorization endpoint: %q", line)
		}
	}
}

// TestE91ExchangeResponseChecks (checklist E91): a token-exchange answer
// with the wrong issued_token_type or token_type, a foreign or extra
// resource, a missing resource the ID-JAG claims, or a token that is not
// an ID-JAG is discarded: the client never presents it.
func TestE91ExchangeResponseChecks(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	b := w.browser("alice")
	ctx := t.Context()
	notJAG := "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4In0.c2ln"
	for _, tc := range []struct {
		name   string
		mutate func(m map[string]any)
	}{
		{"issued_token_type", func(m map[string]any) { m["issued_token_type"] = "urn:ietf:params:oauth:token-type:access_token" }},
		{"token_type Bearer", func(m map[string]any) { m["token_type"] = "Bearer" }},
		{"token_type missing", func(m map[string]any) { delete(m, "token_type") }},
		{"foreign resource", func(m map[string]any) { m["resource"] = "https://other.example.com/mcp" }},
		{"extra resource", func(m map[string]any) { m["resource"] = []string{w.files, "https://other.example.com/mcp"} }},
		{"resource missing", func(m map[string]any) { delete(m, "resource") }},
		{"not an ID-JAG", func(m map[string]any) { m["access_token"] = notJAG }},
		{"no token", func(m map[string]any) { delete(m, "access_token") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := w.client(b, nil)
			w.rec.mu.Lock()
			w.rec.rewrite = tc.mutate
			w.rec.mu.Unlock()
			before := w.rec.count(asTokenPath, grantJB)
			_, err := c.Token(ctx, w.files, scopeRead)
			if !errors.Is(err, xaaclient.ErrInvalidResponse) {
				t.Errorf("Token: %v; want ErrInvalidResponse", err)
			}
			if got := w.rec.count(asTokenPath, grantJB); got != before {
				t.Errorf("the client presented a discarded ID-JAG (%d redemptions, want %d)", got, before)
			}
		})
	}
	// The same client and server with the answer untouched work.
	w.rec.mu.Lock()
	w.rec.rewrite = nil
	w.rec.mu.Unlock()
	if _, err := w.client(b, nil).Token(ctx, w.files, scopeRead); err != nil {
		t.Fatalf("unmodified exchange: %v", err)
	}
}

// TestE92RenewalNeverReusesAnIDJAG (checklist E92): when the access token
// expires the client exchanges again (with the same ID token while it is
// fresh), and when the ID token has expired it renews it with the refresh
// token first (rotated and stored), then exchanges and redeems again.
// Every redemption presents a new ID-JAG. A dead refresh token leads to a
// new login.
func TestE92RenewalNeverReusesAnIDJAG(t *testing.T) {
	t.Parallel()
	w := newWorld(t, &worldOptions{accessTokenLifetime: 120 * time.Second})
	b := w.browser("alice")
	c := w.client(b, nil)
	ctx := t.Context()
	tok1, err := c.Token(ctx, w.files, scopeRead)
	if err != nil {
		t.Fatal(err)
	}
	// Cached: no new exchange.
	if again, err := c.Token(ctx, w.files, scopeRead); err != nil || again.AccessToken != tok1.AccessToken {
		t.Fatalf("second Token: %v, same token %v", err, err == nil && again.AccessToken == tok1.AccessToken)
	}
	// The access token (120 s) is stale after 90 s; the ID token (300 s)
	// is not.
	w.clock.advance(100 * time.Second)
	tok2, err := c.Token(ctx, w.files, scopeRead)
	if err != nil || tok2.AccessToken == tok1.AccessToken {
		t.Fatalf("Token after the access token expired: %v (same token: %v)", err, err == nil && tok2.AccessToken == tok1.AccessToken)
	}
	tes := w.rec.forms(idpTokenPath, grantTE)
	if len(tes) != 2 || tes[0].Get("subject_token") != tes[1].Get("subject_token") {
		t.Fatalf("exchanges = %d; the second must reuse the still fresh ID token", len(tes))
	}
	if got := w.rec.count(idpTokenPath, grantRefresh); got != 0 {
		t.Errorf("refreshes = %d before the ID token expired", got)
	}
	firstRT := refreshTokenIn(t, w, grantCode)

	// Now the ID token is stale too.
	w.clock.advance(200 * time.Second)
	if _, err := c.Token(ctx, w.files, scopeRead); err != nil {
		t.Fatalf("Token after the ID token expired: %v", err)
	}
	refreshes := w.rec.forms(idpTokenPath, grantRefresh)
	if len(refreshes) != 1 || refreshes[0].Get("refresh_token") != firstRT {
		t.Fatalf("refreshes = %d, want 1 with the login's refresh token", len(refreshes))
	}
	tes = w.rec.forms(idpTokenPath, grantTE)
	if len(tes) != 3 || tes[2].Get("subject_token") == tes[1].Get("subject_token") {
		t.Fatalf("exchanges = %d; the third must use the renewed ID token", len(tes))
	}
	rotated := refreshTokenIn(t, w, grantRefresh)
	if stored := cacheFile(t, c, w).Session.RefreshToken; stored != rotated || stored == firstRT {
		t.Error("the cache does not hold the rotated refresh token")
	}

	// Every redemption presented a different ID-JAG, and the
	// authorization server refused none.
	jbs := w.rec.forms(asTokenPath, grantJB)
	seen := map[string]bool{}
	for _, f := range jbs {
		if seen[f.Get("assertion")] {
			t.Error("an ID-JAG was presented twice")
		}
		seen[f.Get("assertion")] = true
	}
	if len(jbs) != 3 || len(w.audit(authserver.AuditAccessTokenIssued)) != 3 || len(w.audit(authserver.AuditAccessTokenDenied)) != 0 {
		t.Errorf("redemptions %d, issued %d, denied %d; want 3, 3, 0", len(jbs), len(w.audit(authserver.AuditAccessTokenIssued)),
			len(w.audit(authserver.AuditAccessTokenDenied)))
	}
	if b.formsFilled() != 1 || w.rec.count(idpTokenPath, grantCode) != 1 {
		t.Errorf("logins %d, code redemptions %d; renewal must not need the browser", b.formsFilled(), w.rec.count(idpTokenPath, grantCode))
	}

	// The refresh token dies (an administrator revoked the family): after
	// the next expiry the client signs in again (silently, through the
	// IdP session) instead of failing or looping.
	if _, err := w.db.RevokeRefreshFamily(ctx, familyOf(t, w), w.clock.now()); err != nil {
		t.Fatal(err)
	}
	w.clock.advance(301 * time.Second)
	if _, err := c.Token(ctx, w.files, scopeRead); err != nil {
		t.Fatalf("Token after the refresh token died: %v", err)
	}
	if got := w.rec.count(idpTokenPath, grantCode); got != 2 {
		t.Errorf("code redemptions = %d, want a second login", got)
	}
	if got := w.rec.count(idpTokenPath, grantRefresh); got != 2 {
		t.Errorf("refreshes = %d, want exactly one refused attempt", got)
	}
}

// refreshTokenIn returns the refresh token of the last successful grant
// of grantType at the IdP.
func refreshTokenIn(t *testing.T, w *world, grantType string) string {
	t.Helper()
	w.rec.mu.Lock()
	defer w.rec.mu.Unlock()
	for i := len(w.rec.exchanges) - 1; i >= 0; i-- {
		e := w.rec.exchanges[i]
		if e.path == idpTokenPath && e.form.Get("grant_type") == grantType && e.status == http.StatusOK {
			rt, _ := e.response["refresh_token"].(string)
			return rt
		}
	}
	t.Fatalf("no successful %s grant", grantType)
	return ""
}

// familyOf returns the refresh family of the last issued IdP tokens.
func familyOf(t *testing.T, w *world) string {
	t.Helper()
	evs := w.audit("token.issued")
	for i := len(evs) - 1; i >= 0; i-- {
		if f := evs[i].Data["refresh_family"]; f != "" {
			return f
		}
	}
	t.Fatal("no refresh family in the IdP audit")
	return ""
}

// cacheFileState is the part of the cache file tests read.
type cacheFileState struct {
	Session struct {
		IDToken      string `json:"id_token"`
		RefreshToken string `json:"refresh_token"`
	} `json:"session"`
	Tokens []struct {
		AccessToken string `json:"access_token"`
	} `json:"access_tokens"`
}

func cacheFile(t *testing.T, c *xaaclient.Client, w *world) cacheFileState {
	t.Helper()
	path, ok := w.cachePaths.Load(c)
	if !ok {
		t.Fatal("no cache file for this client")
	}
	data, err := os.ReadFile(path.(string))
	if err != nil {
		t.Fatal(err)
	}
	var st cacheFileState
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestE93DenialIsFinal (checklist E93): access_denied, invalid_target and
// invalid_scope from the IdP are *DeniedError, after exactly one exchange
// and no redemption; asking again sends nothing, and nothing else is
// tried (no other grant, no authorization endpoint, no new login).
func TestE93DenialIsFinal(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	ctx := t.Context()
	for _, tc := range []struct {
		name, user, endpoint, scope, code string
	}{
		{"pending connection", "alice", w.pending, scopeRead, "access_denied"},
		{"resource unknown to the IdP", "alice", w.stray, scopeRead, "invalid_target"},
		{"no allowed scope", "bob", w.files, scopeWrite, "invalid_scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := w.browser(tc.user)
			c := w.client(b, nil)
			if err := c.Login(ctx, nil); err != nil {
				t.Fatal(err)
			}
			linesBefore := len(w.rec.requestLines())
			teBefore, jbBefore := w.rec.count(idpTokenPath, grantTE), w.rec.count(asTokenPath, grantJB)
			_, err := c.Token(ctx, tc.endpoint, tc.scope)
			var d *xaaclient.DeniedError
			if !errors.As(err, &d) || d.Code != tc.code || !errors.Is(err, xaaclient.ErrDenied) || d.Description == "" {
				t.Fatalf("Token: %v; want a DeniedError %s with a description", err, tc.code)
			}
			if _, err := c.Token(ctx, tc.endpoint, tc.scope); !errors.Is(err, xaaclient.ErrDenied) {
				t.Errorf("second Token: %v; want the same denial", err)
			}
			if got := w.rec.count(idpTokenPath, grantTE) - teBefore; got != 1 {
				t.Errorf("exchanges = %d, want exactly 1", got)
			}
			if got := w.rec.count(asTokenPath, grantJB) - jbBefore; got != 0 {
				t.Errorf("redemptions = %d, want 0", got)
			}
			for _, line := range w.rec.requestLines()[linesBefore:] {
				if !strings.HasPrefix(line, "GET /") && line != "POST "+idpTokenPath {
					t.Errorf("after the denial the client sent %q", line)
				}
				if strings.Contains(line, "authorize") {
					t.Errorf("the client fell back to %q", line)
				}
			}
			if len(b.visited()) != 1 {
				t.Errorf("logins = %d, want only the first", len(b.visited()))
			}
		})
	}
}

// TestE93StepUpAtTheIdP (checklist E93): the IdP answers the exchange with
// insufficient_user_authentication (the export scope needs a login at most
// ten minutes old). With a StepUp callback the client asks it, sends the
// user to the IdP with max_age and prompt=login, and gets the token;
// without one it returns *StepUpError and sends nobody anywhere.
func TestE93StepUpAtTheIdP(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	ctx := t.Context()

	t.Run("no callback", func(t *testing.T) {
		b := w.browser("alice")
		c := w.client(b, nil)
		if err := c.Login(ctx, nil); err != nil {
			t.Fatal(err)
		}
		w.clock.advance(11 * time.Minute)
		_, err := c.Token(ctx, w.files, scopeRead, scopeExport)
		var su *xaaclient.StepUpError
		if !errors.As(err, &su) || su.MaxAge != 10*time.Minute || !errors.Is(err, xaaclient.ErrStepUpRequired) {
			t.Fatalf("Token: %v; want a StepUpError with max_age 10m", err)
		}
		if len(b.visited()) != 1 {
			t.Errorf("the client opened the browser %d times, want only the first login", len(b.visited()))
		}
	})

	t.Run("callback", func(t *testing.T) {
		b := w.browser("alice")
		var asked []xaaclient.StepUpChallenge
		c := w.client(b, func(o *xaaclient.Options) {
			o.StepUp = func(_ context.Context, ch *xaaclient.StepUpChallenge) error {
				asked = append(asked, *ch)
				return nil
			}
		})
		cs := w.session(ctx, c, w.files)
		w.clock.advance(11 * time.Minute)
		// export needs files:export: a 403 makes the client ask for the
		// union, and the IdP wants a fresh login for it.
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "export", Arguments: map[string]any{}})
		if err != nil || res.IsError {
			t.Fatalf("export after step-up: %v %+v", err, res)
		}
		if len(asked) != 1 || !asked[0].FromIdP || asked[0].MaxAge != 10*time.Minute || asked[0].Resource != w.files {
			t.Errorf("StepUp asked %+v; want once, from the IdP, max_age 10m", asked)
		}
		urls := b.visited()
		if len(urls) != 2 {
			t.Fatalf("logins = %d, want 2", len(urls))
		}
		q := mustQuery(t, urls[1])
		if q.Get("prompt") != "login" || q.Get("max_age") != "600" {
			t.Errorf("step-up login asked prompt=%q max_age=%q; want login and 600", q.Get("prompt"), q.Get("max_age"))
		}
		if b.formsFilled() != 2 {
			t.Errorf("the user signed in %d times, want 2 (prompt=login forces the form)", b.formsFilled())
		}
	})
}

// TestStepUpAtTheResource: the resource answers 401
// insufficient_user_authentication (RFC 9470). A max_age challenge leads,
// through the callback, to a fresh login and a new token; an acr the user
// cannot reach (MFA for a user without a second factor) ends in the IdP's
// denial after one attempt.
func TestStepUpAtTheResource(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	ctx := t.Context()
	b := w.browser("alice")
	var mu sync.Mutex
	var asked []xaaclient.StepUpChallenge
	c := w.client(b, func(o *xaaclient.Options) {
		o.StepUp = func(_ context.Context, ch *xaaclient.StepUpChallenge) error {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, *ch)
			return nil
		}
	})
	cs := w.session(ctx, c, w.files)
	w.clock.advance(6 * time.Minute)
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "fresh", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("fresh after step-up: %v %+v", err, res)
	}
	if len(asked) != 1 || asked[0].FromIdP || asked[0].MaxAge != 5*time.Minute {
		t.Fatalf("StepUp asked %+v; want once, from the resource, max_age 5m", asked)
	}
	if q := mustQuery(t, b.visited()[1]); q.Get("max_age") != "300" || q.Get("prompt") != "login" {
		t.Errorf("step-up login: max_age %q prompt %q", q.Get("max_age"), q.Get("prompt"))
	}

	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "admin", Arguments: map[string]any{}})
	if !errors.Is(err, xaaclient.ErrDenied) {
		t.Errorf("admin (MFA) for a user without a second factor: %v; want the IdP's denial", err)
	}
	if len(asked) != 2 || !slices.Equal(asked[1].ACRValues, []string{acrMFA}) {
		t.Errorf("StepUp asked %+v; want a second time, for %s", asked, acrMFA)
	}
	if q := mustQuery(t, b.visited()[2]); q.Get("acr_values") != acrMFA || q.Get("prompt") != "login" {
		t.Errorf("MFA step-up login: acr_values %q prompt %q", q.Get("acr_values"), q.Get("prompt"))
	}
	if len(b.visited()) != 3 {
		t.Errorf("logins = %d, want 3 (no retry loop)", len(b.visited()))
	}
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// TestScopeUnion (spec digest §2.8): a 403 insufficient_scope makes the
// client ask for the union of the scopes it holds and the challenged
// ones. When the IdP narrows the grant the client stops with *ScopeError,
// and it re-authorizes at most MaxScopeRetries times for one challenge.
func TestScopeUnion(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	ctx := t.Context()

	// alice (eng) may write.
	c := w.client(w.browser("alice"), nil)
	cs := w.session(ctx, c, w.files)
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "write", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("write: %v %+v", err, res)
	}
	var scopes []string
	for _, f := range w.rec.forms(idpTokenPath, grantTE) {
		scopes = append(scopes, f.Get("scope"))
	}
	if diff := cmp.Diff([]string{"files:read", "files:read files:write"}, scopes); diff != "" {
		t.Errorf("exchanged scopes (-want +got):\n%s", diff)
	}

	// bob (staff) may not: the IdP narrows the union to files:read.
	before := w.rec.count(idpTokenPath, grantTE)
	c = w.client(w.browser("bob"), nil)
	cs = w.session(ctx, c, w.files)
	var counts []int
	for range 3 {
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "write", Arguments: map[string]any{}})
		if !errors.Is(err, xaaclient.ErrInsufficientScope) {
			t.Fatalf("write as bob: %v; want ErrInsufficientScope", err)
		}
		counts = append(counts, w.rec.count(idpTokenPath, grantTE)-before)
	}
	// 1 for the session, 1 per re-authorization, none after the bound.
	if diff := cmp.Diff([]int{2, 3, 3}, counts); diff != "" {
		t.Errorf("exchanges after each call (-want +got):\n%s", diff)
	}
	var se *xaaclient.ScopeError
	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "write", Arguments: map[string]any{}})
	if !errors.As(err, &se) || !slices.Equal(se.Required, []string{scopeWrite}) {
		t.Errorf("error %v; want a ScopeError requiring files:write", err)
	}
	// The read tool still works with the narrowed token.
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "search", Arguments: map[string]any{}}); err != nil || res.IsError {
		t.Errorf("search as bob: %v", err)
	}
}

// TestSingleFlight: 100 concurrent callers with a cold cache cause exactly
// one exchange and one redemption, counted at the servers; so do 100
// concurrent go-sdk sessions calling a tool.
func TestSingleFlight(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	ctx := t.Context()

	t.Run("Token", func(t *testing.T) {
		c := w.client(w.browser("alice"), nil)
		if err := c.Login(ctx, nil); err != nil {
			t.Fatal(err)
		}
		te, jb := w.rec.count(idpTokenPath, grantTE), w.rec.count(asTokenPath, grantJB)
		tokens := make([]string, 100)
		var wg sync.WaitGroup
		for i := range tokens {
			wg.Go(func() {
				tok, err := c.Token(ctx, w.files, scopeRead)
				if err != nil {
					t.Error(err)
					return
				}
				tokens[i] = tok.AccessToken
			})
		}
		wg.Wait()
		if got := w.rec.count(idpTokenPath, grantTE) - te; got != 1 {
			t.Errorf("exchanges = %d, want 1", got)
		}
		if got := w.rec.count(asTokenPath, grantJB) - jb; got != 1 {
			t.Errorf("redemptions = %d, want 1", got)
		}
		for _, tok := range tokens {
			if tok != tokens[0] {
				t.Fatal("callers got different tokens")
			}
		}
	})

	t.Run("sessions", func(t *testing.T) {
		c := w.client(w.browser("alice"), nil)
		if err := c.Login(ctx, nil); err != nil {
			t.Fatal(err)
		}
		te, jb, calls := w.rec.count(idpTokenPath, grantTE), w.rec.count(asTokenPath, grantJB), w.fileCalls.Load()
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() {
				h, err := c.Handler(w.files)
				if err != nil {
					t.Error(err)
					return
				}
				cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil).
					Connect(ctx, &mcp.StreamableClientTransport{Endpoint: w.files, OAuthHandler: h, DisableStandaloneSSE: true}, nil)
				if err != nil {
					t.Error(err)
					return
				}
				defer cs.Close()
				if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "search", Arguments: map[string]any{}}); err != nil || res.IsError {
					t.Errorf("search: %v", err)
				}
			})
		}
		wg.Wait()
		if got := w.rec.count(idpTokenPath, grantTE) - te; got != 1 {
			t.Errorf("exchanges = %d, want 1", got)
		}
		if got := w.rec.count(asTokenPath, grantJB) - jb; got != 1 {
			t.Errorf("redemptions = %d, want 1", got)
		}
		if got := w.fileCalls.Load() - calls; got != 100 {
			t.Errorf("tool calls = %d, want 100", got)
		}
	})

	// The go-sdk's own path: 100 concurrent TokenSource().Token() on a
	// handler whose cached token has just gone stale.
	t.Run("TokenSource", func(t *testing.T) {
		c := w.client(w.browser("alice"), nil)
		h, err := c.Handler(w.files)
		if err != nil {
			t.Fatal(err)
		}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil).
			Connect(ctx, &mcp.StreamableClientTransport{Endpoint: w.files, OAuthHandler: h, DisableStandaloneSSE: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		w.clock.advance(100 * time.Second) // the 120 s access token is stale, the ID token is not
		te, jb := w.rec.count(idpTokenPath, grantTE), w.rec.count(asTokenPath, grantJB)
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() {
				ts, err := h.TokenSource(ctx)
				if err != nil || ts == nil {
					t.Errorf("TokenSource: %v", err)
					return
				}
				if tok, err := ts.Token(); err != nil || tok == nil {
					t.Errorf("Token: %v", err)
				}
			})
		}
		wg.Wait()
		if got := w.rec.count(idpTokenPath, grantTE) - te; got != 1 {
			t.Errorf("exchanges = %d, want 1", got)
		}
		if got := w.rec.count(asTokenPath, grantJB) - jb; got != 1 {
			t.Errorf("redemptions = %d, want 1", got)
		}
	})
}

// TestCacheFile: the session and tokens survive the process in a 0600
// file (no ID-JAG in it); another Client on the same file uses them
// without a login or an exchange; a file others can read is refused.
func TestCacheFile(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "cache", "tokens.json")
	b := w.browser("alice")
	c1 := w.client(b, func(o *xaaclient.Options) { o.CacheFile = path })
	tok, err := c1.Token(ctx, w.files, scopeRead)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("cache file mode %04o, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	for _, f := range w.rec.forms(asTokenPath, grantJB) {
		if strings.Contains(string(data), f.Get("assertion")) {
			t.Error("the cache file holds an ID-JAG")
		}
	}
	if !strings.Contains(string(data), tok.AccessToken) {
		t.Error("the cache file does not hold the access token")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}

	// A second process: same file, no browser allowed.
	nb := w.browser("alice")
	nb.disabled = true
	c2 := w.client(nb, func(o *xaaclient.Options) { o.CacheFile = path; o.NonInteractive = true })
	te := w.rec.count(idpTokenPath, grantTE)
	tok2, err := c2.Token(ctx, w.files, scopeRead)
	if err != nil || tok2.AccessToken != tok.AccessToken {
		t.Fatalf("second client: %v; want the cached token", err)
	}
	if w.rec.count(idpTokenPath, grantTE) != te {
		t.Error("the second client exchanged although the token was cached")
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	c3 := w.client(nb, func(o *xaaclient.Options) { o.CacheFile = path; o.NonInteractive = true })
	if _, err := c3.Token(ctx, w.files, scopeRead); !errors.Is(err, xaaclient.ErrInsecureCacheFile) {
		t.Errorf("Token with a world-readable cache: %v; want ErrInsecureCacheFile", err)
	}

	// Without a session and without interaction: ErrLoginRequired, and
	// no browser.
	c4 := w.client(nb, func(o *xaaclient.Options) { o.MemoryOnly = true; o.NonInteractive = true })
	if _, err := c4.Token(ctx, w.files, scopeRead); !errors.Is(err, xaaclient.ErrLoginRequired) {
		t.Errorf("Token without a session: %v; want ErrLoginRequired", err)
	}
	if len(nb.visited()) != 0 {
		t.Error("a non-interactive client opened the browser")
	}
}

// TestPrivateKeyJWT: the agent app authenticates with private_key_jwt at
// the IdP (ES256) and at the authorization server (EdDSA).
func TestPrivateKeyJWT(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	c := w.client(w.browser("alice"), func(o *xaaclient.Options) {
		o.Client = xaaclient.Credentials{ClientID: agentID, PrivateKey: w.agentIdPKey}
		o.AuthServers = map[string]xaaclient.Credentials{w.asIss: {ClientID: agentASID, PrivateKey: w.agentASKey}}
	})
	if _, err := c.Token(t.Context(), w.files, scopeRead); err != nil {
		t.Fatalf("Token with private_key_jwt: %v", err)
	}
	for _, f := range append(w.rec.forms(idpTokenPath, grantTE), w.rec.forms(asTokenPath, grantJB)...) {
		if f.Get("client_assertion") == "" || f.Has("client_secret") {
			t.Errorf("a token request did not use private_key_jwt: %v", f.Get("grant_type"))
		}
	}
}

// TestLoginResponseChecks: the loopback listener ignores an answer with a
// foreign state (and keeps waiting for the real one), and refuses the
// login when the answer's iss is foreign or missing although the IdP
// advertises RFC 9207; an error=access_denied answer is a denial.
func TestLoginResponseChecks(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	ctx := t.Context()
	with := func(u *url.URL, k, v string) *url.URL {
		c := *u
		q := c.Query()
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		c.RawQuery = q.Encode()
		return &c
	}
	for _, tc := range []struct {
		name   string
		tamper func(u *url.URL) []*url.URL
		want   error
	}{
		{"foreign state first", func(u *url.URL) []*url.URL { return []*url.URL{with(u, "state", "forged"), u} }, nil},
		{"foreign iss", func(u *url.URL) []*url.URL { return []*url.URL{with(u, "iss", "https://evil.example.com")} }, xaaclient.ErrIssuerMismatch},
		{"iss missing", func(u *url.URL) []*url.URL { return []*url.URL{with(u, "iss", "")} }, xaaclient.ErrIssuerMismatch},
		{"access_denied", func(u *url.URL) []*url.URL {
			d := with(with(u, "code", ""), "error", "access_denied")
			return []*url.URL{with(d, "error_description", "not for you")}
		}, xaaclient.ErrDenied},
		{"foreign iss with an error", func(u *url.URL) []*url.URL {
			return []*url.URL{with(with(with(u, "code", ""), "error", "access_denied"), "iss", "https://evil.example.com")}
		}, xaaclient.ErrIssuerMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := w.browser("alice")
			b.tamper = tc.tamper
			c := w.client(b, nil)
			codes := w.rec.count(idpTokenPath, grantCode)
			err := c.Login(ctx, nil)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Login: %v; want %v", err, tc.want)
			}
			if tc.want != nil && w.rec.count(idpTokenPath, grantCode) != codes {
				t.Error("the client redeemed a code from a refused answer")
			}
		})
	}
}

// TestE94NoTokensInLogsOrURLs (checklist E94): a full run (login, tools,
// scope union, step-ups, renewal, denial) with every client log record
// captured; no token, secret or ID-JAG that crossed any endpoint appears
// in the log, in any request URL the servers saw, or in the URLs the
// browser was given.
func TestE94NoTokensInLogsOrURLs(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	ctx := t.Context()
	var logs logBuffer
	b := w.browser("alice")
	c := w.client(b, func(o *xaaclient.Options) {
		o.Logger = newLogger(&logs)
		o.StepUp = func(context.Context, *xaaclient.StepUpChallenge) error { return nil }
	})
	cs := w.session(ctx, c, w.files)
	for _, tool := range []string{"search", "write"} {
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{}}); err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
	}
	w.clock.advance(11 * time.Minute)
	for _, tool := range []string{"fresh", "export"} {
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{}}); err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
	}
	if _, err := c.Token(ctx, w.pending, scopeRead); !errors.Is(err, xaaclient.ErrDenied) {
		t.Fatalf("pending: %v", err)
	}
	if w.rec.count(idpTokenPath, grantRefresh) == 0 || w.rec.count(idpTokenPath, grantTE) < 4 {
		t.Fatal("the run did not renew and exchange enough to mean anything")
	}
	secrets := append(w.rec.secrets(), appSecret, asSecret)
	st := cacheFile(t, c, w)
	secrets = append(secrets, st.Session.IDToken, st.Session.RefreshToken)
	if len(logs.String()) == 0 {
		t.Fatal("the client logged nothing")
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if strings.Contains(logs.String(), s) {
			t.Errorf("the log holds a secret (%.12s...)", s)
		}
		for _, line := range w.rec.requestLines() {
			if strings.Contains(line, s) {
				t.Errorf("a request URL holds a secret (%.12s...): %.80s", s, line)
			}
		}
		for _, u := range b.visited() {
			if strings.Contains(u, s) {
				t.Errorf("an authorization URL holds a secret (%.12s...)", s)
			}
		}
	}
}

// TestCachedTokenFirst: a new process (a new Client on the same cache
// file) presents the cached token on its very first request, with no 401
// round trip and no exchange. A cached token the resource refuses (here
// one damaged in the file) is dropped on the 401 and replaced by one new
// exchange, and that same request succeeds: with protocol 2025-11-25 the
// session has a single initialize, so nothing else could mask a failure.
func TestCachedTokenFirst(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "tokens.json")
	c1 := w.client(w.browser("alice"), func(o *xaaclient.Options) { o.CacheFile = path })
	tok, err := c1.Token(ctx, w.files, scopeRead)
	if err != nil {
		t.Fatal(err)
	}
	nb := w.browser("alice")
	nb.disabled = true
	connect := func(c *xaaclient.Client) *mcp.ClientSession {
		t.Helper()
		h, err := c.Handler(w.files)
		if err != nil {
			t.Fatal(err)
		}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil).Connect(ctx,
			&mcp.StreamableClientTransport{Endpoint: w.files, OAuthHandler: h, DisableStandaloneSSE: true},
			&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		t.Cleanup(func() { _ = cs.Close() })
		return cs
	}
	te, before := w.rec.count(idpTokenPath, grantTE), len(w.rec.mcpBearers())
	c2 := w.client(nb, func(o *xaaclient.Options) { o.CacheFile = path; o.NonInteractive = true })
	connect(c2)
	if got := w.rec.count(idpTokenPath, grantTE); got != te {
		t.Errorf("a new client exchanged although a token was cached (%d exchanges)", got-te)
	}
	for i, b := range w.rec.mcpBearers()[before:] {
		if b != tok.AccessToken {
			t.Errorf("request %d of the new client carried %.10q, not the cached token", i, b)
		}
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	damaged := strings.Replace(string(data), tok.AccessToken, "eyJhbGciOiJFUzI1NiJ9.e30.broken-signature", 1)
	if err := os.WriteFile(path, []byte(damaged), 0o600); err != nil {
		t.Fatal(err)
	}
	c3 := w.client(nb, func(o *xaaclient.Options) { o.CacheFile = path; o.NonInteractive = true })
	te, before = w.rec.count(idpTokenPath, grantTE), len(w.rec.mcpBearers())
	cs := connect(c3)
	if seen := w.rec.mcpBearers()[before:]; len(seen) < 2 || !strings.HasSuffix(seen[0], "broken-signature") ||
		seen[1] == seen[0] || seen[1] == "" {
		t.Errorf("the first request should carry the damaged token and its retry a new one; saw %d requests", len(seen))
	}
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "search", Arguments: map[string]any{}}); err != nil || res.IsError {
		t.Fatalf("search: %v", err)
	}
	if got := w.rec.count(idpTokenPath, grantTE) - te; got != 1 {
		t.Errorf("exchanges = %d, want 1 to replace the refused token", got)
	}
	if data, _ := os.ReadFile(path); strings.Contains(string(data), "broken-signature") {
		t.Error("the refused token is still cached")
	}
}
