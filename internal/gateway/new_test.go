package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/mcpauth"
)

// fakeMetadataAS serves an RFC 8414 document (edited by md) and the
// contract's resource-policy answer (policy), to show how New treats an
// authorization server it cannot rely on. Its revocation list is empty.
func fakeMetadataAS(t *testing.T, md func(base string) map[string]any, policy func(resource string) (int, any)) string {
	t.Helper()
	var base string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/oauth-authorization-server":
			_ = json.NewEncoder(w).Encode(md(base))
		case "/revocations":
			_, _ = w.Write([]byte(`{"revoked":[],"fences":[],"cursor":0,"has_more":false}`))
		case "/resource-policy":
			status, body := policy(r.URL.Query().Get("resource"))
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(body)
		case "/jwks.json":
			_, _ = w.Write([]byte(`{"keys":[]}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	base = srv.URL
	return base
}

func goodMetadata(base string) map[string]any {
	return map[string]any{
		"issuer":                           base,
		"jwks_uri":                         base + "/jwks.json",
		"openxaa_revocation_list_endpoint": base + "/revocations",
		"openxaa_resource_policy_endpoint": base + "/resource-policy",
	}
}

func goodPolicy(resource string) (int, any) {
	return 200, map[string]any{"resource": resource, "scopes": []string{"a"}, "tools": map[string]any{"t": map[string]any{"scopes": []string{"a"}}}}
}

// TestNewRefusesWhatItCannotEnforce: New fails, naming the route and the
// reason, when the authorization server's metadata or policy cannot be
// trusted or is missing; it never starts a route without a tool policy or
// (with local JWT checks) without a revocation list.
func TestNewRefusesWhatItCannotEnforce(t *testing.T) {
	t.Parallel()
	const resource = "http://127.0.0.1:9/mcp"
	edit := func(f func(base string, m map[string]any)) func(string) map[string]any {
		return func(base string) map[string]any {
			m := goodMetadata(base)
			f(base, m)
			return m
		}
	}
	tests := []struct {
		name   string
		md     func(string) map[string]any
		policy func(string) (int, any)
		route  func(*Route)
		want   string
	}{
		{name: "issuer mismatch", md: edit(func(b string, m map[string]any) { m["issuer"] = b + "/" }), want: "refusing it (RFC 8414 §3.3)"},
		{name: "no revocation list with jwt", md: edit(func(_ string, m map[string]any) { delete(m, "openxaa_revocation_list_endpoint") }),
			want: "publishes no openxaa_revocation_list_endpoint"},
		{name: "no policy endpoint and no tools", md: edit(func(_ string, m map[string]any) { delete(m, "openxaa_resource_policy_endpoint") }),
			want: "no tool policy"},
		{name: "policy for another resource", policy: func(string) (int, any) { return goodPolicy("http://127.0.0.1:9/other") },
			want: "answered for"},
		{name: "policy refused", policy: func(string) (int, any) {
			return 400, map[string]string{"error": "invalid_target", "error_description": "not yours"}
		}, want: "HTTP 400 invalid_target: not yours"},
		{name: "policy with a bad tool name", policy: func(r string) (int, any) {
			return 200, map[string]any{"resource": r, "tools": map[string]any{"bad name": map[string]any{"scopes": []string{"a"}}}}
		}, want: "not an MCP tool name"},
		{name: "policy with a scopeless tool", policy: func(r string) (int, any) {
			return 200, map[string]any{"resource": r, "tools": map[string]any{"t": map[string]any{}}}
		}, want: "requires no scope"},
		{name: "endpoint over clear text", md: edit(func(_ string, m map[string]any) {
			m["openxaa_revocation_list_endpoint"] = "http://as.example.com/revocations"
		}), want: "plain http is allowed only to loopback"},
		{name: "introspection without endpoint", route: func(r *Route) { r.Introspection = true }, want: "publishes no introspection_endpoint"},
		{name: "staleness not above the interval", route: func(r *Route) { r.PollInterval, r.MaxStaleness = 10e9, 10e9 }, want: "must exceed PollInterval"},
		{name: "bad configured tool", route: func(r *Route) { r.Tools = map[string]mcpauth.ToolRule{"t": {}} }, want: "requires no scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			md, policy := tt.md, tt.policy
			if md == nil {
				md = goodMetadata
			}
			if policy == nil {
				policy = goodPolicy
			}
			base := fakeMetadataAS(t, md, policy)
			r := Route{Path: "/mcp", Resource: resource, Issuer: base, ClientID: gwClient, ClientSecret: gwSecret, UpstreamURL: "http://127.0.0.1:9/mcp"}
			if tt.route != nil {
				tt.route(&r)
			}
			_, err := New(t.Context(), &Options{Routes: []Route{r}, Audit: closedStore(t), AllowLoopbackHTTP: true})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "/mcp") {
				t.Errorf("New = %v; want an error naming the route and containing %q", err, tt.want)
			}
		})
	}
	t.Run("the real authorization server refuses a wrong secret", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, &worldOptions{noStdio: true})
		r := Route{Path: "/x", Resource: w.gwURL + pathHTTP, Issuer: w.asURL, ClientID: gwClient, ClientSecret: "wrong-secret-0123456789abcdefghijklmnop", UpstreamURL: w.upstream}
		_, err := New(t.Context(), &Options{Routes: []Route{r}, Audit: w.gwDB, AllowLoopbackHTTP: true})
		if err == nil || !strings.Contains(err.Error(), "HTTP 401 invalid_client") {
			t.Errorf("New = %v; want the authorization server's refusal", err)
		}
		if strings.Contains(err.Error(), "wrong-secret") {
			t.Error("the error holds the secret")
		}
	})
	t.Run("a configured policy needs no policy endpoint", func(t *testing.T) {
		t.Parallel()
		base := fakeMetadataAS(t, edit(func(_ string, m map[string]any) { delete(m, "openxaa_resource_policy_endpoint") }), goodPolicy)
		r := Route{Path: "/mcp", Resource: resource, Issuer: base, ClientID: gwClient, ClientSecret: gwSecret, UpstreamURL: "http://127.0.0.1:9/mcp",
			Tools: map[string]mcpauth.ToolRule{"t": {Scopes: []string{"a"}}}}
		g, err := New(t.Context(), &Options{Routes: []Route{r}, Audit: closedStore(t), AllowLoopbackHTTP: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := g.routes[0].auth.Tools(); len(got) != 1 {
			t.Errorf("tools = %v", got)
		}
	})
}

// TestFetchToolsParses checks the policy answer's conversion, including
// step-up rules.
func TestFetchToolsParses(t *testing.T) {
	t.Parallel()
	base := fakeMetadataAS(t, goodMetadata, func(r string) (int, any) {
		return 200, map[string]any{"resource": r, "scopes": []string{"a", "b"}, "access_token_lifetime": 300, "tools": map[string]any{
			"x": map[string]any{"scopes": []string{"a"}},
			"y": map[string]any{"scopes": []string{"b"}, "acr_values": []string{acrMFA}, "max_age": 300},
		}}
	})
	c := &asClient{http: http.DefaultClient, clientID: gwClient, secret: gwSecret}
	tools, err := fetchTools(t.Context(), c, base+"/resource-policy", "http://127.0.0.1:9/mcp")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]mcpauth.ToolRule{
		"x": {Scopes: []string{"a"}},
		"y": {Scopes: []string{"b"}, ACRValues: []string{acrMFA}, MaxAge: 300e9},
	}
	if !sameTools(tools, want) {
		t.Errorf("tools = %+v", tools)
	}
}

// FuzzResourcePolicy feeds arbitrary resource-policy answers to the
// gateway's checks. Invariant: an accepted policy holds only rules the
// authorization server itself would accept (valid tool names, at least
// one valid scope, valid acr values, max_age within bounds), copied
// exactly; anything else is refused.
func FuzzResourcePolicy(f *testing.F) {
	f.Add(`{"resource":"https://gw.example.com/mcp","tools":{"t":{"scopes":["a"],"acr_values":["urn:x"],"max_age":300}}}`)
	f.Add(`{"resource":"https://gw.example.com/mcp","tools":{"bad name":{"scopes":["a"]}}}`)
	f.Add(`{"resource":"https://gw.example.com/mcp","tools":{"t":{"scopes":[]}}}`)
	f.Add(`{"resource":"https://other.example.com/mcp","tools":{}}`)
	f.Add(`{"resource":"https://gw.example.com/mcp","tools":{"t":{"scopes":["a b"],"max_age":-1}}}`)
	f.Fuzz(func(t *testing.T, body string) {
		const resource = "https://gw.example.com/mcp"
		var p resourcePolicy
		if json.Unmarshal([]byte(body), &p) != nil {
			return
		}
		tools, err := policyTools(&p, resource)
		if err != nil {
			if tools != nil {
				t.Fatal("a refused policy returned tools")
			}
			return
		}
		if p.Resource != resource || len(tools) != len(p.Tools) {
			t.Fatalf("accepted a policy for %q with %d of %d tools", p.Resource, len(tools), len(p.Tools))
		}
		for name, rule := range tools {
			in := p.Tools[name]
			if store.CheckToolName(name) != nil || len(rule.Scopes) == 0 {
				t.Fatalf("accepted tool %q with scopes %q", name, rule.Scopes)
			}
			for _, s := range rule.Scopes {
				if store.CheckScope(s) != nil {
					t.Fatalf("accepted scope %q", s)
				}
			}
			for _, a := range rule.ACRValues {
				if store.CheckACRValue(a) != nil {
					t.Fatalf("accepted acr %q", a)
				}
			}
			if rule.MaxAge < 0 || rule.MaxAge > store.MaxToolMaxAge || rule.MaxAge != time.Duration(in.MaxAge)*time.Second {
				t.Fatalf("max_age %d became %s", in.MaxAge, rule.MaxAge)
			}
			if !slices.Equal(rule.Scopes, in.Scopes) || !slices.Equal(rule.ACRValues, in.ACRValues) {
				t.Fatalf("rule %+v is not a copy of %+v", rule, in)
			}
		}
	})
}

// TestRegisterMounts: routes are mounted with and without their
// resource's host, so another role mounted on the same host cannot shadow
// them; metadata paths shared by resources on different hosts are served
// per host; and a conflicting mount is an error, not a panic.
func TestRegisterMounts(t *testing.T) {
	t.Parallel()
	base := fakeMetadataAS(t, goodMetadata, goodPolicy)
	route := func(path, resource string) Route {
		return Route{Path: path, Resource: resource, Issuer: base, ClientID: gwClient, ClientSecret: gwSecret, UpstreamURL: "http://127.0.0.1:9/mcp"}
	}
	g, err := New(t.Context(), &Options{Routes: []Route{route("/a", "https://a.example.com/mcp"), route("/b", "https://b.example.com/mcp")},
		Audit: closedStore(t), AllowLoopbackHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("a.example.com/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	if err := g.Register(mux); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	get := func(method, host, path string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader("{}"))
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var md struct {
			Resource string `json:"resource"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&md)
		return resp.StatusCode, md.Resource
	}
	for _, tt := range []struct {
		method, host, path string
		status             int
		resource           string
	}{
		{"GET", "a.example.com", "/.well-known/oauth-protected-resource/mcp", 200, "https://a.example.com/mcp"},
		{"GET", "b.example.com", "/.well-known/oauth-protected-resource/mcp", 200, "https://b.example.com/mcp"},
		{"GET", "other.example.com", "/.well-known/oauth-protected-resource/mcp", 404, ""},
		{"POST", "a.example.com", "/a", 401, ""},        // the gateway, not the other role
		{"POST", "127.0.0.1", "/b", 401, ""},            // any host reaches the route
		{"GET", "a.example.com", "/elsewhere", 418, ""}, // the other role keeps the rest
	} {
		if status, res := get(tt.method, tt.host, tt.path); status != tt.status || res != tt.resource {
			t.Errorf("%s %s%s = %d %q, want %d %q", tt.method, tt.host, tt.path, status, res, tt.status, tt.resource)
		}
	}
	if err := g.Register(mux); err == nil || !strings.Contains(err.Error(), "cannot mount") {
		t.Errorf("second Register = %v, want a conflict error", err)
	}
}
