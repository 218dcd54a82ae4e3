package xaaclient

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// canonicalURL returns the form under which two resource identifiers are
// compared (RFC 3986 §6.2.2 syntax normalisation as decisions.md fixes it):
// scheme and host lower-cased, a default port dropped, the path and query
// kept byte for byte. A fragment or userinfo is refused.
func canonicalURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%q is not a URL: %w", clip(raw), err)
	}
	switch {
	case u.Scheme == "" || u.Host == "" || u.Opaque != "":
		return "", fmt.Errorf("%q is not an absolute URL", clip(raw))
	case u.User != nil:
		return "", fmt.Errorf("%q must not carry a user name or password", clip(raw))
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "", fmt.Errorf("%q must not have a fragment", clip(raw))
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return "", fmt.Errorf("%q must be an http(s) URL", clip(raw))
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	port := u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	// The path and query exactly as written: everything after the
	// authority.
	_, rest, _ := strings.Cut(raw, "://")
	tail := ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		tail = rest[i:]
	}
	out := scheme + "://" + host
	if port != "" {
		out += ":" + port
	}
	return out + tail, nil
}

// sameResource compares two resource identifiers after canonicalisation.
func sameResource(a, b string) bool {
	ca, err1 := canonicalURL(a)
	cb, err2 := canonicalURL(b)
	return err1 == nil && err2 == nil && ca == cb
}

// checkURL enforces the transport rule on every URL the client talks to:
// https, or http on a loopback host when the client allows it. what names
// the URL in the error.
func (c *Client) checkURL(what, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("%w: %s %q is not an absolute URL", ErrInsecureURL, what, clip(raw))
	}
	if u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("%w: %s %q must not carry userinfo or a fragment", ErrInsecureURL, what, clip(raw))
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && c.opts.AllowLoopbackHTTP && isLoopbackHost(u.Hostname()):
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
		return nil, fmt.Errorf("%w: %s %q uses http; allow it for loopback development with AllowLoopbackHTTP", ErrInsecureURL, what, clip(raw))
	default:
		return nil, fmt.Errorf("%w: %s %q must use https", ErrInsecureURL, what, clip(raw))
	}
	return u, nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && !addr.Is4In6() && addr.IsLoopback()
}

// wellKnownURLs returns the metadata locations for issuer in the order of
// the spec digest §2.3 (RFC 8414 §3.1 path insertion first, then OpenID
// Connect Discovery inserted and appended).
func wellKnownURLs(issuer *url.URL) []string {
	origin := issuer.Scheme + "://" + issuer.Host
	path := strings.TrimSuffix(issuer.EscapedPath(), "/")
	if path == "" {
		return []string{
			origin + "/.well-known/oauth-authorization-server",
			origin + "/.well-known/openid-configuration",
		}
	}
	return []string{
		origin + "/.well-known/oauth-authorization-server" + path,
		origin + "/.well-known/openid-configuration" + path,
		origin + path + "/.well-known/openid-configuration",
	}
}

// prmURLs returns the RFC 9728 §3.1 locations for an MCP endpoint: path
// inserted, then the root.
func prmURLs(endpoint *url.URL) []string {
	origin := endpoint.Scheme + "://" + endpoint.Host
	root := origin + "/.well-known/oauth-protected-resource"
	path := endpoint.EscapedPath()
	if path == "" || path == "/" {
		return []string{root}
	}
	return []string{root + path, root}
}
