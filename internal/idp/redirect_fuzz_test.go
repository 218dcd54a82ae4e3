package idp

import (
	"net/url"
	"testing"
)

// FuzzRedirectURIMatch: a redirect URI matches iff it equals a registered
// one byte for byte (and has no userinfo or fragment), or the RFC 8252
// loopback rule admits it (http, same IP literal, only the port differs).
func FuzzRedirectURIMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"https://rp.example.com/cb", "https://rp.example.com/cb"},
		{"https://rp.example.com/cb", "https://RP.example.com/cb"},
		{"https://rp.example.com/cb", "https://good@evil.example/cb"},
		{"https://rp.example.com/cb", "https://rp.example.com.evil.example/cb"},
		{"http://127.0.0.1/cb", "http://127.0.0.1:8080/cb"},
		{"http://[::1]/cb", "http://[::1]:1/cb"},
		{"http://127.0.0.1/cb", "http://127.0.0.1:8080/cb?x"},
		{"http://127.0.0.1/cb", "http://localhost:8080/cb"},
		{"http://127.0.0.1/cb", "http://u@127.0.0.1:8080/cb"},
		{"", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, registered, got string) {
		match := matchRedirectURI([]string{registered}, got)
		// An empty redirect_uri never matches, even an empty registration.
		exact := got != "" && registered == got && !hasUserinfoOrFragment(got)
		if exact && !match {
			t.Fatalf("exact %q did not match", got)
		}
		if got == "" && match {
			t.Fatalf("empty redirect URI matched %q", registered)
		}
		if !match || exact {
			return
		}
		// A non-exact match must be the loopback rule.
		r, err1 := url.Parse(registered)
		g, err2 := url.Parse(got)
		if err1 != nil || err2 != nil {
			t.Fatalf("unparsable %q matched %q", got, registered)
		}
		if r.Scheme != "http" || g.Scheme != "http" || g.User != nil || g.Fragment != "" ||
			(r.Hostname() != "127.0.0.1" && r.Hostname() != "::1") || g.Hostname() != r.Hostname() ||
			g.EscapedPath() != r.EscapedPath() || g.RawQuery != r.RawQuery {
			t.Fatalf("%q matched %q outside the loopback rule", got, registered)
		}
	})
}

func TestRedirectURIMatch(t *testing.T) {
	t.Parallel()
	reg := []string{"https://rp.example.com/cb", "http://127.0.0.1/cb", "http://[::1]/cb?a=1"}
	for _, tc := range []struct {
		got  string
		want bool
	}{
		{"https://rp.example.com/cb", true},
		{"https://rp.example.com/cb/", false},
		{"https://RP.example.com/cb", false},
		{"https://rp.example.com:443/cb", false},
		{"https://good@rp.example.com/cb", false},
		{"https://rp.example.com/cb#x", false},
		{"http://127.0.0.1/cb", true},
		{"http://127.0.0.1:49152/cb", true},
		{"http://127.0.0.1:0/cb", false},
		{"http://127.0.0.1:65536/cb", false},
		{"http://127.0.0.1:8080/CB", false},
		{"https://127.0.0.1:8080/cb", false},
		{"http://localhost:8080/cb", false},
		{"http://127.0.0.2:8080/cb", false},
		{"http://[::1]:9/cb?a=1", true},
		{"http://[::1]:9/cb?a=2", false},
		{"http://[0:0::1]:9/cb?a=1", false},
	} {
		if got := matchRedirectURI(reg, tc.got); got != tc.want {
			t.Errorf("matchRedirectURI(%q) = %v, want %v", tc.got, got, tc.want)
		}
	}
}
