package directory

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/openxaa/xaa/internal/store"
)

func TestCanonicalResource(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string // want "" means refused
	}{
		// Accepted, and how they are written.
		{"https://mcp.example.com/mcp", "https://mcp.example.com/mcp"},
		{"HTTPS://MCP.Example.COM/mcp", "https://mcp.example.com/mcp"},
		{"https://mcp.example.com:443/mcp", "https://mcp.example.com/mcp"},
		{"https://mcp.example.com:0443/mcp", "https://mcp.example.com/mcp"},
		{"https://mcp.example.com:8443/mcp", "https://mcp.example.com:8443/mcp"},
		{"https://mcp.example.com:/mcp", "https://mcp.example.com/mcp"},
		{"https://mcp.example.com", "https://mcp.example.com"},
		{"https://mcp.example.com/", "https://mcp.example.com/"},
		{"https://mcp.example.com/MCP/", "https://mcp.example.com/MCP/"},
		{"https://mcp.example.com/a%2Fb/%7e", "https://mcp.example.com/a%2Fb/%7e"},
		{"https://mcp.example.com/a/b;v=1/@x:y", "https://mcp.example.com/a/b;v=1/@x:y"},
		{"https://xn--bcher-kva.example/mcp", "https://xn--bcher-kva.example/mcp"},
		{"https://10.1.2.3/mcp", "https://10.1.2.3/mcp"},
		{"https://[2001:DB8::0001]:8443/mcp", "https://[2001:db8::1]:8443/mcp"},
		{"http://127.0.0.1:8443/mcp", "http://127.0.0.1:8443/mcp"},
		{"http://127.0.0.1:80/mcp", "http://127.0.0.1/mcp"},
		{"http://127.8.9.10/mcp", "http://127.8.9.10/mcp"},
		{"http://LOCALHOST:3000", "http://localhost:3000"},
		{"http://[::1]:3000/mcp", "http://[::1]:3000/mcp"},
		{"https://a.b-c.example/..x/.y", "https://a.b-c.example/..x/.y"},

		// Refused.
		{"", ""},
		{"mcp.example.com/mcp", ""},
		{"//mcp.example.com/mcp", ""},
		{"https:/mcp.example.com/mcp", ""},
		{"https:///mcp", ""},
		{"ftp://mcp.example.com/", ""},
		{"javascript://mcp.example.com/%0aalert(1)", ""},
		{"http://mcp.example.com/mcp", ""},
		{"http://127.0.0.1.example.com/", ""},
		{"http://[::ffff:127.0.0.1]/", ""},
		{"http://0x7f.0.0.1/", ""},
		{"http://127.1/", ""},
		{"http://2130706433/", ""},
		{"http://0177.0.0.1/", ""},
		{"https://mcp.example.com/mcp#frag", ""},
		{"https://mcp.example.com/mcp#", ""},
		{"https://mcp.example.com/mcp?x=1", ""},
		{"https://mcp.example.com/mcp?", ""},
		{"https://user@mcp.example.com/mcp", ""},
		{"https://user:pw@mcp.example.com/mcp", ""},
		{"https://@mcp.example.com/mcp", ""},
		{"https://good.example@evil.example/mcp", ""},
		{"https://mcp.example.com./mcp", ""},
		{"https://mcp..example.com/mcp", ""},
		{"https://-mcp.example.com/", ""},
		{"https://mcp-.example.com/", ""},
		{"https://mcp_x.example.com/", ""},
		{"https://bücher.example/", ""},
		{"https://mcp%2eexample.com/", ""},
		{"https://mcp.example.com:65536/", ""},
		{"https://mcp.example.com:0/", ""},
		{"https://mcp.example.com:-1/", ""},
		{"https://mcp.example.com:443443/", ""},
		{"https://mcp.example.com:https/", ""},
		{"https://[fe80::1%25eth0]/", ""},
		{"https://[v1.x]/", ""},
		{"https://[::1/", ""},
		{"https://[::1]x/", ""},
		{"https://1.2.3.4.5/", ""},
		{"https://mcp.example.com/a b", ""},
		{"https://mcp.example.com/a\tb", ""},
		{"https://mcp.example.com/é", ""},
		{"https://mcp.example.com/a\\b", ""},
		{"https://mcp.example.com/a%zz", ""},
		{"https://mcp.example.com/a%2", ""},
		{"https://mcp.example.com/a/../b", ""},
		{"https://mcp.example.com/a/./b", ""},
		{"https://mcp.example.com/..", ""},
		{"https://mcp.example.com/a/%2e%2E/b", ""},
		{"https://mcp.example.com/a/%2e", ""},
		{" https://mcp.example.com/", ""},
		{"https://mcp.example.com/\x00", ""},
		{"https://" + strings.Repeat("a", 64) + ".example/", ""},
		{"https://mcp.example.com/" + strings.Repeat("a", 2048), ""},
	} {
		got, err := CanonicalResource(tc.in)
		switch {
		case tc.want == "" && (err == nil || !errors.Is(err, store.ErrResourceURI)):
			t.Errorf("CanonicalResource(%q) = %q, %v; want ErrResourceURI", tc.in, got, err)
		case tc.want != "" && (err != nil || got != tc.want):
			t.Errorf("CanonicalResource(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func FuzzCanonicalResource(f *testing.F) {
	for _, s := range []string{
		"https://mcp.example.com/mcp", "HTTPS://MCP.EXAMPLE.COM:443/", "http://127.0.0.1:8443/as",
		"https://[::1]:8443/x", "https://u@h/", "https://h/#f", "https://h/?q", "https://h:/", "https://h/%2e%2e",
		"http://localhost", "https://1.2.3.4:08443/a/b/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := CanonicalResource(s)
		if err != nil {
			if c != "" || !errors.Is(err, store.ErrResourceURI) {
				t.Fatalf("CanonicalResource(%q) = %q, %v", s, c, err)
			}
			return
		}
		again, err := CanonicalResource(c)
		if err != nil || again != c {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, c, again, err)
		}
		_, rest, _ := strings.Cut(s, "://")
		authority, _, _ := strings.Cut(rest, "/")
		if strings.ContainsAny(s, "#?") || strings.Contains(authority, "@") {
			t.Fatalf("accepted %q, which has a fragment, query or userinfo", s)
		}
		// An independent parser agrees on what was accepted.
		u, err := url.Parse(c)
		if err != nil {
			t.Fatalf("net/url cannot parse canonical %q: %v", c, err)
		}
		if u.User != nil || u.Fragment != "" || u.RawQuery != "" || u.ForceQuery || u.Opaque != "" {
			t.Fatalf("canonical %q has userinfo, fragment, query or is opaque", c)
		}
		if u.Scheme != "https" && u.Scheme != "http" {
			t.Fatalf("canonical %q has scheme %q", c, u.Scheme)
		}
		if u.Host == "" || u.Host != strings.ToLower(u.Host) {
			t.Fatalf("canonical %q has host %q", c, u.Host)
		}
		if p := u.Port(); p == "443" && u.Scheme == "https" || p == "80" && u.Scheme == "http" {
			t.Fatalf("canonical %q keeps the default port", c)
		}
		if u.Scheme == "http" && !isLoopbackHostForTest(u.Hostname()) {
			t.Fatalf("canonical %q is http on a non-loopback host", c)
		}
	})
}

func isLoopbackHostForTest(h string) bool {
	return h == "localhost" || strings.HasPrefix(h, "127.") || h == "::1"
}
