package xaaclient

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// metadataServer serves metadata documents at chosen paths and records
// the paths asked for, in order.
type metadataServer struct {
	*httptest.Server
	mu    sync.Mutex
	asked []string
	docs  map[string]map[string]any
}

func newMetadataServer(t *testing.T) *metadataServer {
	m := &metadataServer{docs: map[string]map[string]any{}}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.asked = append(m.asked, r.URL.Path)
		doc, ok := m.docs[r.URL.Path]
		m.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(m.Close)
	return m
}

func (m *metadataServer) serve(path string, doc map[string]any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.docs[path] = doc
}

func (m *metadataServer) paths() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.asked...)
}

func testClient(t *testing.T, issuer string, asIssuers ...string) *Client {
	t.Helper()
	servers := map[string]Credentials{"https://as.example.com": {ClientID: "app-at-as", ClientSecret: "secret-0123456789"}}
	for _, iss := range asIssuers {
		servers[iss] = Credentials{ClientID: "app-at-as", ClientSecret: "secret-0123456789"}
	}
	c, err := New(&Options{
		Issuer:            issuer,
		Client:            Credentials{ClientID: "app", ClientSecret: "secret-0123456789"},
		AuthServers:       servers,
		MemoryOnly:        true,
		AllowLoopbackHTTP: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestE89MetadataDiscoveryOrder (checklist E89): for an issuer with a
// path the client tries the RFC 8414 path-inserted URL, then OpenID
// Connect inserted, then appended; without a path the two root
// locations. A document for another issuer is refused at once, also one
// that differs by a trailing slash.
func TestE89MetadataDiscoveryOrder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		path      string // issuer path
		served    string // where the document is
		docIssuer string // "" = the issuer itself
		wantPaths []string
		wantErr   error
	}{
		{"path, appended OpenID only", "/tenant1", "/tenant1/.well-known/openid-configuration", "",
			[]string{"/.well-known/oauth-authorization-server/tenant1", "/.well-known/openid-configuration/tenant1", "/tenant1/.well-known/openid-configuration"}, nil},
		{"path, inserted OpenID", "/tenant1", "/.well-known/openid-configuration/tenant1", "",
			[]string{"/.well-known/oauth-authorization-server/tenant1", "/.well-known/openid-configuration/tenant1"}, nil},
		{"path, RFC 8414 first", "/tenant1", "/.well-known/oauth-authorization-server/tenant1", "",
			[]string{"/.well-known/oauth-authorization-server/tenant1"}, nil},
		{"no path", "", "/.well-known/openid-configuration", "",
			[]string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"}, nil},
		{"foreign issuer", "/tenant1", "/.well-known/oauth-authorization-server/tenant1", "https://evil.example.com/tenant1",
			[]string{"/.well-known/oauth-authorization-server/tenant1"}, ErrIssuerMismatch},
		{"trailing slash differs", "/tenant1", "/.well-known/oauth-authorization-server/tenant1", "SELF/",
			[]string{"/.well-known/oauth-authorization-server/tenant1"}, ErrIssuerMismatch},
		{"nothing anywhere", "/tenant1", "/elsewhere", "",
			[]string{"/.well-known/oauth-authorization-server/tenant1", "/.well-known/openid-configuration/tenant1", "/tenant1/.well-known/openid-configuration"}, ErrDiscovery},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newMetadataServer(t)
			issuer := m.URL + tc.path
			docIssuer := tc.docIssuer
			switch docIssuer {
			case "":
				docIssuer = issuer
			case "SELF/":
				docIssuer = issuer + "/"
			}
			m.serve(tc.served, map[string]any{"issuer": docIssuer, "token_endpoint": issuer + "/token"})
			c := testClient(t, m.URL)
			meta, err := c.serverMetadata(t.Context(), "authorization server", issuer)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("serverMetadata: %v; want %v", err, tc.wantErr)
				}
			} else if err != nil || meta.Issuer != issuer {
				t.Errorf("serverMetadata: %+v, %v", meta, err)
			}
			if diff := cmp.Diff(tc.wantPaths, m.paths()); diff != "" {
				t.Errorf("locations tried (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPRMDiscovery: protected resource metadata from the challenge's URL
// only (no well-known fallback when the server named one), else path
// inserted then root; the resource must be exactly the endpoint.
func TestPRMDiscovery(t *testing.T) {
	t.Parallel()
	m := newMetadataServer(t)
	asIss := m.URL + "/as"
	endpoint := m.URL + "/mcp/files"
	m.serve("/.well-known/oauth-protected-resource", map[string]any{"resource": endpoint, "authorization_servers": []string{asIss}})
	// An authorization server without the ID-JAG grant: discovery passes
	// the PRM and stops there.
	m.serve("/.well-known/oauth-authorization-server/as", map[string]any{"issuer": asIss, "token_endpoint": asIss + "/token",
		"grant_types_supported": []string{"authorization_code"}, "authorization_endpoint": asIss + "/authorize"})
	c := testClient(t, m.URL, asIss)
	if _, err := c.discoverNow(t.Context(), endpoint, ""); !errors.Is(err, ErrNotXAA) {
		t.Fatalf("discoverNow: %v; want ErrNotXAA", err)
	}
	if diff := cmp.Diff([]string{"/.well-known/oauth-protected-resource/mcp/files", "/.well-known/oauth-protected-resource",
		"/.well-known/oauth-authorization-server/as"}, m.paths()); diff != "" {
		t.Errorf("PRM locations (-want +got):\n%s", diff)
	}
	// A challenge-provided URL that does not exist is an error, not a
	// reason to try the well-known locations.
	m2 := newMetadataServer(t)
	m2.serve("/.well-known/oauth-protected-resource/mcp/files", map[string]any{"resource": m2.URL + "/mcp/files", "authorization_servers": []string{"https://as.example.com"}})
	if _, err := testClient(t, m2.URL).discoverNow(t.Context(), m2.URL+"/mcp/files", m2.URL+"/gone"); err == nil {
		t.Error("a missing challenge-provided PRM was not an error")
	}
	if diff := cmp.Diff([]string{"/gone"}, m2.paths()); diff != "" {
		t.Errorf("PRM locations (-want +got):\n%s", diff)
	}
	// No credentials for any listed AS: refused before contacting it.
	m3 := newMetadataServer(t)
	m3.serve("/.well-known/oauth-protected-resource/mcp", map[string]any{"resource": m3.URL + "/mcp", "authorization_servers": []string{m3.URL + "/other-as"}})
	if _, err := testClient(t, m3.URL).discoverNow(t.Context(), m3.URL+"/mcp", ""); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("discoverNow without credentials: %v; want ErrNoCredentials", err)
	}
	if diff := cmp.Diff([]string{"/.well-known/oauth-protected-resource/mcp"}, m3.paths()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestCanonicalURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"https://MCP.Example.com/mcp", "https://mcp.example.com/mcp"},
		{"HTTPS://mcp.example.com:443/mcp", "https://mcp.example.com/mcp"},
		{"http://127.0.0.1:80/x", "http://127.0.0.1/x"},
		{"https://mcp.example.com:8443/Mcp/", "https://mcp.example.com:8443/Mcp/"},
		{"https://mcp.example.com", "https://mcp.example.com"},
		{"https://[::1]:8443/mcp", "https://[::1]:8443/mcp"},
		{"https://mcp.example.com/a%2Fb?q=1", "https://mcp.example.com/a%2Fb?q=1"},
	} {
		got, err := canonicalURL(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("canonicalURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "mcp.example.com/mcp", "https://user@mcp.example.com/", "https://mcp.example.com/#f", "ftp://x/y", "https:///x"} {
		if got, err := canonicalURL(bad); err == nil {
			t.Errorf("canonicalURL(%q) = %q; want an error", bad, got)
		}
	}
	if sameResource("https://mcp.example.com/mcp", "https://mcp.example.com/mcp/") {
		t.Error("a trailing slash is a different resource")
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	strict, err := New(&Options{Issuer: "https://idp.example.com", Client: Credentials{ClientID: "a", ClientSecret: "s"},
		AuthServers: map[string]Credentials{"https://as.example.com": {ClientID: "b", ClientSecret: "s"}}, MemoryOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	dev := testClient(t, "http://127.0.0.1:1")
	for _, tc := range []struct {
		c    *Client
		url  string
		want bool
	}{
		{strict, "https://as.example.com/token", true},
		{strict, "http://127.0.0.1:8080/token", false},
		{strict, "http://as.example.com/token", false},
		{dev, "http://127.0.0.1:8080/token", true},
		{dev, "http://[::1]:8080/token", true},
		{dev, "http://localhost:8080/token", true},
		{dev, "http://as.example.com/token", false},
		{dev, "http://127.0.0.1.nip.io/token", false},
		{dev, "https://u:p@as.example.com/token", false},
		{dev, "/token", false},
	} {
		if _, err := tc.c.checkURL("x", tc.url); (err == nil) != tc.want {
			t.Errorf("checkURL(%q) = %v; want ok=%v", tc.url, err, tc.want)
		}
	}
}

func TestWellKnownURLs(t *testing.T) {
	t.Parallel()
	u, _ := url.Parse("https://auth.example.com/tenant1/")
	want := []string{
		"https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
		"https://auth.example.com/.well-known/openid-configuration/tenant1",
		"https://auth.example.com/tenant1/.well-known/openid-configuration",
	}
	if diff := cmp.Diff(want, wellKnownURLs(u)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	e, _ := url.Parse("https://mcp.example.com/mcp/files/")
	if diff := cmp.Diff([]string{"https://mcp.example.com/.well-known/oauth-protected-resource/mcp/files/",
		"https://mcp.example.com/.well-known/oauth-protected-resource"}, prmURLs(e)); diff != "" {
		t.Errorf("PRM (-want +got):\n%s", diff)
	}
	root, _ := url.Parse("https://mcp.example.com/")
	if diff := cmp.Diff([]string{"https://mcp.example.com/.well-known/oauth-protected-resource"}, prmURLs(root)); diff != "" {
		t.Errorf("PRM of the root (-want +got):\n%s", diff)
	}
}
