package mcpauth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/openxaa/xaa/internal/jose"
)

const prmURL = "https://gw.example.com/.well-known/oauth-protected-resource/mcp/crm"

func decodeOAuthBody(t *testing.T, rec *httptest.ResponseRecorder) oauthBody {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	var b oauthBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	return b
}

func decodeRPCError(t *testing.T, body []byte) rpcError {
	t.Helper()
	var e rpcError
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	return e
}

func TestD77_NoTokenChallenge(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	m, log := newTestMiddleware(t, as, nil)
	up := &upstream{}
	h := m.Wrap(up.echo())
	for _, tc := range []struct{ name, authz string }{
		{"no header", ""},
		{"empty header", " "},
		{"other scheme", "Basic YWxpY2U6c2VjcmV0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/mcp/crm", strings.NewReader(callBody(1, "search_customers")))
			if tc.authz != "" {
				req.Header.Set("Authorization", tc.authz)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401", rec.Code)
			}
			// D77: resource_metadata, no error parameter. The scope is the
			// union of the tools without step-up.
			want := `Bearer resource_metadata="` + prmURL + `", scope="crm:read crm:write"`
			if got := rec.Header().Get("WWW-Authenticate"); got != want {
				t.Errorf("WWW-Authenticate = %q, want %q", got, want)
			}
			if got := rec.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q", got)
			}
			if b := decodeOAuthBody(t, rec); b.Error == "" || b.Description == "" {
				t.Errorf("body = %+v", b)
			}
		})
	}
	if up.calls.Load() != 0 {
		t.Errorf("upstream reached %d times", up.calls.Load())
	}
	ds := log.all()
	if len(ds) != 3 {
		t.Fatalf("decisions = %+v, want 3", ds)
	}
	for _, d := range ds {
		if d.Allowed || d.Rule != RuleTokenMissing || d.Tool != "search_customers" {
			t.Errorf("decision = %+v", d)
		}
	}
}

func TestD78_ProtectedResourceMetadata(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	m, _ := newTestMiddleware(t, as, nil)
	if got, want := m.MetadataPath(), "/.well-known/oauth-protected-resource/mcp/crm"; got != want {
		t.Errorf("MetadataPath = %q, want %q", got, want)
	}
	if got := m.ResourceMetadataURL(); got != prmURL {
		t.Errorf("ResourceMetadataURL = %q, want %q", got, prmURL)
	}
	mux := http.NewServeMux()
	mux.Handle(m.MetadataPath(), m.MetadataHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Get(srv.URL + m.MetadataPath())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var got map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"resource":                 testResource,
		"authorization_servers":    []any{testIssuer},
		"scopes_supported":         []any{"crm:export", "crm:read", "crm:write"},
		"bearer_methods_supported": []any{"header"},
		"resource_name":            "CRM",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}

	// A root resource adds no path; SetTools re-derives scopes_supported.
	root, _ := newTestMiddleware(t, as, func(o *Options) { o.Resource = "https://gw.example.com/" })
	if got := root.MetadataPath(); got != "/.well-known/oauth-protected-resource" {
		t.Errorf("root MetadataPath = %q", got)
	}
	root.SetTools(map[string]ToolRule{"only": {Scopes: []string{"x:y"}}})
	rec := httptest.NewRecorder()
	root.MetadataHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if !strings.Contains(rec.Body.String(), `"scopes_supported":["x:y"]`) {
		t.Errorf("after SetTools: %s", rec.Body)
	}
	rec = httptest.NewRecorder()
	root.MetadataHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST metadata = %d", rec.Code)
	}
}

// invalidTokenCases are bearer tokens the middleware must refuse with 401
// invalid_token, each tagged with its checklist item.
func invalidTokenCases(t *testing.T, as *testAS) []struct{ item, name, token string } {
	other := makeTestAS(t)
	tampered := as.token(t, "crm:read", nil)
	tampered = tampered[:len(tampered)-4] + flip(tampered[len(tampered)-4:])
	return []struct{ item, name, token string }{
		{"D79", "foreign audience", as.token(t, "crm:read", func(c map[string]any) { c["aud"] = "https://gw.example.com/mcp/files" })},
		{"D79", "two audiences", as.token(t, "crm:read", func(c map[string]any) { c["aud"] = []string{testResource, "https://x.example"} })},
		{"D79", "audience with trailing slash", as.token(t, "crm:read", func(c map[string]any) { c["aud"] = testResource + "/" })},
		{"D80", "expired", as.token(t, "crm:read", func(c map[string]any) {
			c["iat"] = time.Now().Add(-10 * time.Minute).Unix()
			c["exp"] = time.Now().Add(-2 * time.Minute).Unix()
		})},
		{"D80", "bad signature", tampered},
		{"D80", "signed by another key", other.token(t, "crm:read", nil)},
		{"D81", "ID-JAG as bearer", as.mint(t, jose.TypeIDJAG, nil)},
		{"D81", "ID token (typ JWT)", as.mint(t, jose.TypeJWT, nil)},
		{"D81", "no typ", as.mint(t, "", nil)},
		{"D81", "typ application/jwt", as.mint(t, "application/jwt", nil)},
		{"D82", "foreign issuer", as.token(t, "crm:read", func(c map[string]any) { c["iss"] = "https://evil.example.com" })},
		{"D82", "issuer with trailing slash", as.token(t, "crm:read", func(c map[string]any) { c["iss"] = testIssuer + "/" })},
		{"D80", "garbage", "not-a-jwt"},
		{"D80", "no client_id", as.token(t, "crm:read", func(c map[string]any) { delete(c, "client_id") })},
		{"D80", "scope array", as.token(t, "crm:read", func(c map[string]any) { c["scope"] = []string{"crm:read"} })},
		{"D80", "auth_time string", as.token(t, "crm:read", func(c map[string]any) { c["auth_time"] = "yesterday" })},
		{"D80", "no jti", as.token(t, "crm:read", func(c map[string]any) { delete(c, "jti") })},
	}
}

func flip(s string) string {
	b := []byte(s)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

func TestD79toD82_InvalidTokens(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	m, log := newTestMiddleware(t, as, nil)
	up := &upstream{}
	h := m.Wrap(up.echo())
	for _, tc := range invalidTokenCases(t, as) {
		t.Run(tc.item+"_"+tc.name, func(t *testing.T) {
			rec := post(t, h, "/mcp/crm", "Bearer "+tc.token, callBody(1, "search_customers"))
			if rec.Code != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401; body %s", rec.Code, rec.Body)
			}
			www := rec.Header().Get("WWW-Authenticate")
			if !strings.HasPrefix(www, `Bearer error="invalid_token", error_description="`) ||
				!strings.HasSuffix(www, `", resource_metadata="`+prmURL+`"`) {
				t.Errorf("WWW-Authenticate = %q", www)
			}
			if b := decodeOAuthBody(t, rec); b.Error != "invalid_token" || b.Description == "" {
				t.Errorf("body = %+v", b)
			}
		})
	}
	if up.calls.Load() != 0 {
		t.Errorf("upstream reached %d times", up.calls.Load())
	}
	for _, d := range log.all() {
		if d.Allowed || d.Rule != RuleTokenInvalid {
			t.Errorf("decision = %+v", d)
		}
	}
}

func TestInvalidTokenDescriptions(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	m, _ := newTestMiddleware(t, as, nil)
	h := m.Wrap((&upstream{}).echo())
	for _, tc := range []struct{ token, want string }{
		{as.token(t, "crm:read", func(c map[string]any) { c["aud"] = "https://x.example" }), "the access token was issued for another resource"},
		{as.mint(t, jose.TypeIDJAG, nil), "the bearer token is not an access token (typ must be at+jwt)"},
		{as.token(t, "crm:read", func(c map[string]any) { c["iss"] = "https://evil\"\\.example" }), "the access token was issued by an untrusted issuer"},
	} {
		rec := post(t, h, "/mcp/crm", "Bearer "+tc.token, callBody(1, "search_customers"))
		if b := decodeOAuthBody(t, rec); b.Description != tc.want {
			t.Errorf("description = %q, want %q", b.Description, tc.want)
		}
	}
}

func TestMalformedAuthorization(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	m, _ := newTestMiddleware(t, as, nil)
	up := &upstream{}
	h := m.Wrap(up.echo())
	good := as.token(t, "crm:read", nil)
	for _, tc := range []struct {
		name    string
		headers []string
		status  int
		errCode string
	}{
		{"bearer without token", []string{"Bearer"}, 401, "invalid_token"},
		{"bearer with spaces only", []string{"Bearer    "}, 401, "invalid_token"},
		{"token with a comma", []string{"Bearer " + good + ",x"}, 401, "invalid_token"},
		{"two tokens", []string{"Bearer " + good + " " + good}, 401, "invalid_token"},
		{"two headers", []string{"Bearer " + good, "Bearer " + good}, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/mcp/crm", strings.NewReader(callBody(1, "search_customers")))
			for _, v := range tc.headers {
				req.Header.Add("Authorization", v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d", rec.Code, tc.status)
			}
			if got := decodeOAuthBody(t, rec).Error; tc.errCode != "" && got != tc.errCode {
				t.Errorf("error = %q, want %q", got, tc.errCode)
			}
		})
	}
	if up.calls.Load() != 0 {
		t.Errorf("upstream reached %d times", up.calls.Load())
	}
	// The scheme name is case-insensitive (RFC 7235).
	if rec := post(t, h, "/mcp/crm", "bEaReR "+good, callBody(1, "search_customers")); rec.Code != http.StatusOK {
		t.Errorf("lowercase scheme: %d %s", rec.Code, rec.Body)
	}
}

func TestD84_QueryToken(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	m, _ := newTestMiddleware(t, as, nil)
	up := &upstream{}
	h := m.Wrap(up.echo())
	good := as.token(t, "crm:read", nil)
	for _, tc := range []struct{ name, target, authz string }{
		{"query only", "/mcp/crm?access_token=" + good, ""},
		{"query and header", "/mcp/crm?access_token=" + good, "Bearer " + good},
		{"encoded name", "/mcp/crm?x=1&access%5Ftoken=" + good, ""},
		{"semicolon separated", "/mcp/crm?x=1;access_token=" + good, "Bearer " + good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := post(t, h, tc.target, tc.authz, callBody(1, "search_customers"))
			if rec.Code != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401", rec.Code)
			}
			if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), `Bearer error="invalid_token"`) {
				t.Errorf("WWW-Authenticate = %q", rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
	if up.calls.Load() != 0 {
		t.Errorf("a query token was accepted: upstream reached %d times", up.calls.Load())
	}
}

func TestD83_InsufficientScope(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	m, log := newTestMiddleware(t, as, nil)
	up := &upstream{}
	h := m.Wrap(up.echo())
	for _, tc := range []struct {
		name, scope, tool, wantScope string
		missing                      []string
	}{
		{"no scope at all", "", "search_customers", "crm:read", []string{"crm:read"}},
		{"one of two", "crm:read", "delete_customer", "crm:read crm:write", []string{"crm:write"}},
		{"prefix is not a match", "crm:rea crm:read:x CRM:READ", "search_customers", "crm:read", []string{"crm:read"}},
		{"tab-joined scopes are one scope", "crm:read\tcrm:write", "delete_customer", "crm:read crm:write", []string{"crm:read", "crm:write"}},
		{"step-up tool without its scope", "crm:read", "export_customers", "crm:export", []string{"crm:export"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(log.all())
			rec := post(t, h, "/mcp/crm", "Bearer "+as.token(t, tc.scope, nil), callBody(7, tc.tool))
			if rec.Code != http.StatusForbidden {
				t.Fatalf("status = %d, want 403; %s", rec.Code, rec.Body)
			}
			www := rec.Header().Get("WWW-Authenticate")
			wantPrefix := `Bearer error="insufficient_scope", scope="` + tc.wantScope + `", resource_metadata="` + prmURL + `", error_description="`
			if !strings.HasPrefix(www, wantPrefix) {
				t.Errorf("WWW-Authenticate = %q, want prefix %q", www, wantPrefix)
			}
			if b := decodeOAuthBody(t, rec); b.Error != "insufficient_scope" {
				t.Errorf("body = %+v", b)
			}
			ds := log.all()[before:]
			if len(ds) != 1 || ds[0].Allowed || ds[0].Rule != RuleScope || ds[0].Tool != tc.tool ||
				!cmp.Equal(ds[0].MissingScopes, tc.missing) || ds[0].JTI == "" || ds[0].Subject != testSubject || ds[0].ClientID != testClient {
				t.Errorf("decisions = %+v", ds)
			}
		})
	}
	if up.calls.Load() != 0 {
		t.Errorf("upstream reached %d times", up.calls.Load())
	}
}

func TestD85_StepUp(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	m, log := newTestMiddleware(t, as, nil)
	up := &upstream{}
	h := m.Wrap(up.echo())
	now := time.Now()
	for _, tc := range []struct {
		name  string
		edit  func(c map[string]any)
		allow bool
	}{
		{"D85 acr differs", func(c map[string]any) { c["acr"] = "urn:openxaa:acr:pwd" }, false},
		{"D85 acr absent", func(c map[string]any) { delete(c, "acr") }, false},
		{"D85 acr differs in case", func(c map[string]any) { c["acr"] = strings.ToUpper(acrMFA) }, false},
		{"auth_time absent", func(c map[string]any) { delete(c, "auth_time") }, false},
		{"auth_time too old", func(c map[string]any) { c["auth_time"] = now.Add(-6 * time.Minute).Unix() }, false},
		{"auth_time past max_age plus leeway", func(c map[string]any) { c["auth_time"] = now.Add(-5*time.Minute - 31*time.Second).Unix() }, false},
		{"auth_time within leeway", func(c map[string]any) { c["auth_time"] = now.Add(-5*time.Minute - 20*time.Second).Unix() }, true},
		{"auth_time in the future", func(c map[string]any) { c["auth_time"] = now.Add(2 * time.Minute).Unix() }, false},
		{"fresh MFA login", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := as.token(t, "crm:export", tc.edit)
			before := up.calls.Load()
			rec := post(t, h, "/mcp/crm", "Bearer "+tok, callBody(3, "export_customers"))
			if tc.allow {
				if rec.Code != http.StatusOK || up.calls.Load() != before+1 {
					t.Fatalf("status = %d, upstream calls %d -> %d; want allowed", rec.Code, before, up.calls.Load())
				}
				return
			}
			if rec.Code != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401; %s", rec.Code, rec.Body)
			}
			www := rec.Header().Get("WWW-Authenticate")
			if !strings.HasPrefix(www, `Bearer error="insufficient_user_authentication", error_description="`) ||
				!strings.HasSuffix(www, `", acr_values="`+acrMFA+`", max_age="300", resource_metadata="`+prmURL+`"`) {
				t.Errorf("WWW-Authenticate = %q", www)
			}
			if b := decodeOAuthBody(t, rec); b.Error != "insufficient_user_authentication" {
				t.Errorf("body = %+v", b)
			}
			if up.calls.Load() != before {
				t.Errorf("upstream reached")
			}
		})
	}
	for _, d := range log.all() {
		if !d.Allowed && d.Rule != RuleStepUp {
			t.Errorf("decision = %+v", d)
		}
	}
}

func TestUnknownToolIsJSONRPCError(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	m, log := newTestMiddleware(t, as, nil)
	up := &upstream{}
	h := m.Wrap(up.echo())
	tok := "Bearer " + as.token(t, "crm:read crm:write crm:export", nil)
	for _, tc := range []struct{ name, body string }{
		{"unlisted tool", callBody(9, "debug_dump")},
		{"case differs", callBody(9, "Search_Customers")},
		{"trailing space", callBody(9, "search_customers ")},
		{"no params", `{"jsonrpc":"2.0","id":9,"method":"tools/call"}`},
		{"name not a string", `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":1}}`},
		{"duplicate name in params", `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"search_customers","name":"debug_dump"}}`},
		{"case-colliding name in params", `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"Name":"debug_dump","name":"search_customers"}}`},
		{"escaped duplicate name key", `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"search_customers","nam\u0065":"x"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := post(t, h, "/mcp/crm", tok, tc.body)
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200; %s", rec.Code, rec.Body)
			}
			e := decodeRPCError(t, rec.Body.Bytes())
			if e.Error.Code != -32602 || e.Error.Message != "tool not available" || string(e.ID) != "9" {
				t.Errorf("response = %s", rec.Body)
			}
			if rec.Header().Get("WWW-Authenticate") != "" {
				t.Errorf("a challenge for an unknown tool")
			}
		})
	}
	if up.calls.Load() != 0 {
		t.Errorf("upstream reached %d times", up.calls.Load())
	}
	for _, d := range log.all() {
		if d.Allowed || d.Rule != RuleUnknownTool {
			t.Errorf("decision = %+v", d)
		}
	}
}

func TestD87_NoTokenPassthrough(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	m, log := newTestMiddleware(t, as, nil)
	up := &upstream{}
	h := m.Wrap(up.echo())
	body := callBody(5, "delete_customer")
	rec := post(t, h, "/mcp/crm", "Bearer "+as.token(t, "crm:write crm:read", nil), body)
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d; %s", rec.Code, rec.Body)
	}
	// D87: the upstream never sees the bearer token, but gets the body
	// intact and the verified token in its context.
	if up.calls.Load() != 1 || up.sawAuth.Load() != 0 || up.sawNoInfo.Load() != 0 {
		t.Errorf("calls %d, saw Authorization %d, missing TokenInfo %d", up.calls.Load(), up.sawAuth.Load(), up.sawNoInfo.Load())
	}
	if got := up.lastBody.Load(); got != body {
		t.Errorf("upstream body = %v, want %s", got, body)
	}
	want := []Decision{{Method: "tools/call", Tool: "delete_customer", Subject: testSubject, ClientID: testClient,
		Allowed: true, Rule: RuleAllowed}}
	if diff := cmp.Diff(want, log.all(), cmpopts.IgnoreFields(Decision{}, "Time", "JTI", "Reason")); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}
	// A rule without scopes lets any valid token call the tool.
	if rec := post(t, h, "/mcp/crm", "Bearer "+as.token(t, "", nil), callBody(6, "ping")); rec.Code != http.StatusOK {
		t.Errorf("ping: %d", rec.Code)
	}
}

func TestBatch(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	m, log := newTestMiddleware(t, as, nil)
	up := &upstream{}
	h := m.Wrap(up.echo())
	tok := "Bearer " + as.token(t, "crm:read", nil)
	batch := func(parts ...string) string { return "[" + strings.Join(parts, ",") + "]" }

	// All allowed: forwarded once.
	rec := post(t, h, "/mcp/crm", tok, batch(callBody(1, "search_customers"), callBody(2, "ping"),
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`))
	if rec.Code != http.StatusOK || up.calls.Load() != 1 {
		t.Fatalf("allowed batch: %d, upstream %d", rec.Code, up.calls.Load())
	}
	// One scope denial denies all, and the challenge names every scope
	// of every tool in the batch.
	rec = post(t, h, "/mcp/crm", tok, batch(callBody(1, "search_customers"), callBody(2, "delete_customer")))
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `scope="crm:read crm:write"`) {
		t.Errorf("scope batch: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	// An unknown tool wins: JSON-RPC errors for every request in the batch.
	rec = post(t, h, "/mcp/crm", tok, batch(callBody(1, "search_customers"), callBody(2, "debug_dump"), callBody(3, "delete_customer")))
	if rec.Code != http.StatusOK {
		t.Fatalf("unknown batch: %d", rec.Code)
	}
	var errs []rpcError
	if err := json.Unmarshal(rec.Body.Bytes(), &errs); err != nil || len(errs) != 3 {
		t.Fatalf("unknown batch body %s: %v", rec.Body, err)
	}
	if errs[1].Error.Message != "tool not available" || string(errs[1].ID) != "2" || errs[0].Error.Code != -32600 {
		t.Errorf("unknown batch body %s", rec.Body)
	}
	if up.calls.Load() != 1 {
		t.Errorf("a denied batch was forwarded")
	}
	// Decisions: 2 allowed, then 2 denied, then 3 denied; the allowed call
	// of a denied batch is recorded as not run.
	ds := log.all()
	if len(ds) != 7 {
		t.Fatalf("decisions: %+v", ds)
	}
	if !ds[0].Allowed || !ds[1].Allowed || ds[2].Allowed || ds[2].Rule != RuleScope || ds[2].Tool != "search_customers" ||
		!strings.HasPrefix(ds[2].Reason, "not run") || ds[5].Rule != RuleUnknownTool {
		t.Errorf("decisions: %+v", ds)
	}
}

func TestBodyLimitsAndParsing(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	m, _ := newTestMiddleware(t, as, func(o *Options) { o.MaxBodyBytes = 256 })
	up := &upstream{}
	h := m.Wrap(up.echo())
	tok := "Bearer " + as.token(t, "crm:read", nil)
	for _, tc := range []struct {
		name, body string
		status     int
		code       int
	}{
		{"too large", `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"` + strings.Repeat("x", 300) + `"}}`, 413, -32600},
		{"not JSON", `jsonrpc=2.0&method=tools/call`, 400, -32700},
		{"empty", ``, 400, -32700},
		{"trailing data", callBody(1, "search_customers") + `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"debug_dump"}}`, 400, -32700},
		{"invalid UTF-8", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"x\":\"\xff\"}}", 400, -32700},
		{"empty batch", `[]`, 400, -32600},
		{"scalar", `42`, 400, -32600},
		{"batch of scalars", `[1,2]`, 400, -32600},
		{"method not a string", `{"jsonrpc":"2.0","id":1,"method":["tools/call"]}`, 400, -32600},
		{"duplicate method", `{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"debug_dump"}}`, 400, -32600},
		{"long s folds into params", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_customers"},"paramſ":{"name":"debug_dump"}}`, 400, -32600},
		{"case-colliding method", `{"jsonrpc":"2.0","id":1,"method":"tools/list","METHOD":"tools/call","params":{"name":"debug_dump"}}`, 400, -32600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := post(t, h, "/mcp/crm", tok, tc.body)
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d; %s", rec.Code, tc.status, rec.Body)
			}
			if e := decodeRPCError(t, rec.Body.Bytes()); e.Error.Code != tc.code || e.JSONRPC != "2.0" {
				t.Errorf("body = %s", rec.Body)
			}
		})
	}
	if up.calls.Load() != 0 {
		t.Errorf("upstream reached %d times", up.calls.Load())
	}
	// A method named in another case is a different (unknown) method to
	// the server, but if it says tools/call its tool is still checked.
	rec := post(t, h, "/mcp/crm", tok, `{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"name":"debug_dump"}}`)
	if rec.Code != http.StatusOK || up.calls.Load() != 0 || !strings.Contains(rec.Body.String(), "tool not available") {
		t.Errorf("Method key: %d %s", rec.Code, rec.Body)
	}
}

func TestGetAndDeletePassWithoutBodyInspection(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	m, _ := newTestMiddleware(t, as, nil)
	up := &upstream{}
	h := m.Wrap(up.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })))
	tok := "Bearer " + as.token(t, "", nil)
	for _, tc := range []struct {
		method, body, authz string
		status              int
	}{
		{http.MethodGet, "", tok, http.StatusNoContent},
		{http.MethodDelete, "", tok, http.StatusNoContent},
		{http.MethodGet, "", "", http.StatusUnauthorized},
		{http.MethodDelete, "", "", http.StatusUnauthorized},
		// A body on GET or DELETE would go past the inspection.
		{http.MethodGet, callBody(1, "debug_dump"), tok, http.StatusBadRequest},
		{http.MethodDelete, callBody(1, "debug_dump"), tok, http.StatusBadRequest},
		// Streamable HTTP has no other methods.
		{http.MethodPut, callBody(1, "debug_dump"), tok, http.StatusMethodNotAllowed},
		{http.MethodPatch, callBody(1, "debug_dump"), tok, http.StatusMethodNotAllowed},
		{http.MethodOptions, "", tok, http.StatusMethodNotAllowed},
	} {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		req := httptest.NewRequest(tc.method, "/mcp/crm", body)
		if tc.authz != "" {
			req.Header.Set("Authorization", tc.authz)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.status {
			t.Errorf("%s with body %q: %d, want %d", tc.method, tc.body, rec.Code, tc.status)
		}
	}
	if up.calls.Load() != 2 || up.sawAuth.Load() != 0 {
		t.Errorf("upstream calls %d, saw Authorization %d", up.calls.Load(), up.sawAuth.Load())
	}
}

func TestOnDecisionFailureFailsClosed(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	m, _ := newTestMiddleware(t, as, func(o *Options) {
		o.OnDecision = func(context.Context, Decision) error { return errors.New("audit store down") }
	})
	up := &upstream{}
	h := m.Wrap(up.echo())
	tok := "Bearer " + as.token(t, "crm:read", nil)
	for _, tc := range []struct{ name, authz, body string }{
		{"allowed call", tok, callBody(1, "search_customers")},
		{"denied call", tok, callBody(1, "delete_customer")},
		{"call without token", "", callBody(1, "search_customers")},
	} {
		rec := post(t, h, "/mcp/crm", tc.authz, tc.body)
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%s: status = %d, want 503", tc.name, rec.Code)
		}
	}
	if up.calls.Load() != 0 {
		t.Errorf("an unrecorded call ran")
	}
	// Requests without tool calls need no record.
	if rec := post(t, h, "/mcp/crm", tok, `{"jsonrpc":"2.0","id":1,"method":"ping"}`); rec.Code != http.StatusOK {
		t.Errorf("ping = %d", rec.Code)
	}
}

type errVerifier struct{ err error }

func (v errVerifier) Verify(context.Context, string) (*TokenInfo, error) { return nil, v.err }

func TestVerifierOutageIs503(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	m, _ := newTestMiddleware(t, as, func(o *Options) { o.Verifier = errVerifier{errors.New("jwks unreachable")} })
	up := &upstream{}
	rec := post(t, m.Wrap(up.echo()), "/mcp/crm", "Bearer abc", callBody(1, "search_customers"))
	if rec.Code != http.StatusServiceUnavailable || up.calls.Load() != 0 {
		t.Errorf("status = %d, upstream %d", rec.Code, up.calls.Load())
	}
	// A foreign verifier's ErrInvalidToken text is not echoed.
	m2, _ := newTestMiddleware(t, as, func(o *Options) {
		o.Verifier = errVerifier{errors.Join(ErrInvalidToken, errors.New("secret detail\r\nX-Injected: 1"))}
	})
	rec = post(t, m2.Wrap(up.echo()), "/mcp/crm", "Bearer abc", callBody(1, "search_customers"))
	if rec.Code != http.StatusUnauthorized || strings.Contains(rec.Header().Get("WWW-Authenticate"), "secret") {
		t.Errorf("status = %d, WWW-Authenticate %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
}

func TestRevokedTokenIsInvalid(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	revoked := revokeJTI("burned")
	m, _ := newTestMiddleware(t, as, func(o *Options) { o.Verifier = as.verifier(t, revoked) })
	up := &upstream{}
	h := m.Wrap(up.echo())
	rec := post(t, h, "/mcp/crm", "Bearer "+as.token(t, "crm:read", func(c map[string]any) { c["jti"] = "burned" }), callBody(1, "search_customers"))
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Header().Get("WWW-Authenticate"), "revoked") {
		t.Errorf("revoked: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	if rec := post(t, h, "/mcp/crm", "Bearer "+as.token(t, "crm:read", nil), callBody(1, "search_customers")); rec.Code != http.StatusOK {
		t.Errorf("not revoked: %d", rec.Code)
	}
}

type revokeJTI string

func (r revokeJTI) Revoked(t *TokenInfo) bool { return t.JTI == string(r) }

func TestChallengeCannotBeInjected(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{`plain text`, `Bearer error_description="plain text"`},
		{"quote\" and \\ backslash", `Bearer error_description="quote' and / backslash"`},
		{"line\r\nX-Evil: 1", `Bearer error_description="line??X-Evil: 1"`},
		{"naïve", `Bearer error_description="na??ve"`},
	} {
		if got := challenge(authParam{"error_description", tc.in}); got != tc.want {
			t.Errorf("challenge(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	v := as.verifier(t, nil)
	good := func() *Options {
		return &Options{Resource: testResource, AuthorizationServers: []string{testIssuer}, Verifier: v, Tools: testTools()}
	}
	for _, tc := range []struct {
		name string
		edit func(o *Options)
	}{
		{"no resource", func(o *Options) { o.Resource = "" }},
		{"relative resource", func(o *Options) { o.Resource = "/mcp" }},
		{"resource with fragment", func(o *Options) { o.Resource = testResource + "#x" }},
		{"resource with query", func(o *Options) { o.Resource = testResource + "?a=b" }},
		{"resource with quote", func(o *Options) { o.Resource = `https://gw.example.com/mcp"x` }},
		{"uppercase host", func(o *Options) { o.Resource = "https://GW.example.com/mcp" }},
		{"ftp resource", func(o *Options) { o.Resource = "ftp://gw.example.com/mcp" }},
		{"uppercase scheme", func(o *Options) { o.Resource = "HTTPS://gw.example.com/mcp" }},
		{"no authorization server", func(o *Options) { o.AuthorizationServers = nil }},
		{"no verifier", func(o *Options) { o.Verifier = nil }},
		{"negative body limit", func(o *Options) { o.MaxBodyBytes = -1 }},
		{"bad tool name", func(o *Options) { o.Tools = map[string]ToolRule{"bad name": {}} }},
		{"long tool name", func(o *Options) { o.Tools = map[string]ToolRule{strings.Repeat("a", 129): {}} }},
		{"scope with quote", func(o *Options) { o.Tools = map[string]ToolRule{"t": {Scopes: []string{`a"b`}}} }},
		{"scope with space", func(o *Options) { o.Tools = map[string]ToolRule{"t": {Scopes: []string{"a b"}}} }},
		{"acr with backslash", func(o *Options) { o.Tools = map[string]ToolRule{"t": {ACRValues: []string{`a\b`}}} }},
		{"fractional max age", func(o *Options) { o.Tools = map[string]ToolRule{"t": {MaxAge: 1500 * time.Millisecond}} }},
		{"bad challenge scope", func(o *Options) { o.ChallengeScopes = []string{""} }},
	} {
		o := good()
		tc.edit(o)
		if _, err := New(o); err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
	if _, err := New(good()); err != nil {
		t.Fatal(err)
	}
}

func TestSetToolsFailsClosed(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	m, _ := newTestMiddleware(t, as, nil)
	up := &upstream{}
	h := m.Wrap(up.echo())
	tok := "Bearer " + as.token(t, "crm:read", nil)
	if err := m.UpdateTools(map[string]ToolRule{"bad name": {}}); err == nil {
		t.Fatal("UpdateTools accepted an invalid name")
	}
	if rec := post(t, h, "/mcp/crm", tok, callBody(1, "search_customers")); rec.Code != http.StatusOK || up.calls.Load() != 1 {
		t.Fatalf("a rejected UpdateTools changed the policy: %d", rec.Code)
	}
	m.SetTools(map[string]ToolRule{"bad name": {}})
	if rec := post(t, h, "/mcp/crm", tok, callBody(1, "search_customers")); !strings.Contains(rec.Body.String(), "tool not available") {
		t.Errorf("after an invalid SetTools: %d %s", rec.Code, rec.Body)
	}
	in := map[string]ToolRule{"search_customers": {Scopes: []string{"crm:read"}}}
	m.SetTools(in)
	in["search_customers"] = ToolRule{Scopes: []string{"crm:admin"}} // the caller's map is copied
	if rec := post(t, h, "/mcp/crm", tok, callBody(1, "search_customers")); rec.Code != http.StatusOK {
		t.Errorf("after SetTools: %d %s", rec.Code, rec.Body)
	}
	if diff := cmp.Diff(map[string]ToolRule{"search_customers": {Scopes: []string{"crm:read"}, ACRValues: []string{}}}, m.Tools(),
		cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Tools (-want +got):\n%s", diff)
	}
}
