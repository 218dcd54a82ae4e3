package idp

import (
	"net/url"
	"strings"
)

// matchRedirectURI reports whether got may be used as a redirect URI for a
// client that registered registered. The rule is exact byte equality (no
// case folding, no normalisation), with one exception: RFC 8252 §7.3
// loopback redirects, where a registered http://127.0.0.1 or http://[::1]
// URI matches the same URI on any port. A URI with userinfo or a fragment
// never matches.
func matchRedirectURI(registered []string, got string) bool {
	if got == "" || hasUserinfoOrFragment(got) {
		return false
	}
	for _, r := range registered {
		if r == got {
			return true
		}
	}
	for _, r := range registered {
		if loopbackMatch(r, got) {
			return true
		}
	}
	return false
}

func hasUserinfoOrFragment(s string) bool {
	u, err := url.Parse(s)
	return err != nil || u.User != nil || u.Fragment != "" || strings.Contains(s, "#")
}

// loopbackMatch is the RFC 8252 §7.3 rule: both are http URIs on the same
// loopback IP literal (never the name localhost), with identical path and
// query; only the port may differ.
func loopbackMatch(registered, got string) bool {
	r, err := url.Parse(registered)
	if err != nil {
		return false
	}
	g, err := url.Parse(got)
	if err != nil {
		return false
	}
	host := r.Hostname()
	if r.Scheme != "http" || g.Scheme != "http" || (host != "127.0.0.1" && host != "::1") {
		return false
	}
	if r.User != nil || g.User != nil || r.Opaque != "" || g.Opaque != "" || g.Fragment != "" || g.RawFragment != "" {
		return false
	}
	if g.Hostname() != host || !validPort(g.Port()) {
		return false
	}
	// The literal spelling of the host part must be canonical too.
	wantHost := host
	if host == "::1" {
		wantHost = "[::1]"
	}
	if gh := strings.TrimSuffix(g.Host, ":"+g.Port()); gh != wantHost {
		return false
	}
	return r.EscapedPath() == g.EscapedPath() && r.RawQuery == g.RawQuery && r.ForceQuery == g.ForceQuery
}

func validPort(p string) bool {
	if p == "" {
		return true
	}
	if len(p) > 5 || p[0] == '0' {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n >= 1 && n <= 65535
}
