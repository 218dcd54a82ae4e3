package gateway

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

// originGuard refuses, with 403, a request whose Origin header names
// anything but the resource's own origin or one of allowed. MCP's
// streamable HTTP transport requires servers to validate Origin against
// DNS rebinding: a page on evil.example.com whose name was made to resolve
// to the gateway's address sends its own origin. Requests without Origin
// (every non-browser client) pass; so does any Host header, because a
// gateway behind a TLS terminator or load balancer may see several.
func originGuard(resource string, allowed []string, log *slog.Logger, next http.Handler) (http.Handler, error) {
	own, ok := canonicalOrigin(resource, true)
	if !ok {
		return nil, fmt.Errorf("%w: Resource %q has no http(s) origin", ErrInvalidOptions, resource)
	}
	ok2 := map[string]bool{own: true}
	for _, a := range allowed {
		c, ok := canonicalOrigin(a, false)
		if !ok {
			return nil, fmt.Errorf("%w: AllowedOrigins: %q is not an origin (scheme://host[:port], no path)", ErrInvalidOptions, a)
		}
		ok2[c] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		values := r.Header.Values("Origin")
		if len(values) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		if c, ok := canonicalOrigin(values[0], false); len(values) == 1 && ok && ok2[c] {
			next.ServeHTTP(w, r)
			return
		}
		log.InfoContext(r.Context(), "refused a request from a foreign origin", "origin", clipHeader(strings.Join(values, ", ")),
			"resource", resource)
		writeJSONRPCError(w, http.StatusForbidden, nil, codeInvalidRequest, "requests from this origin are not allowed (Origin header)")
	}), nil
}

// canonicalOrigin returns scheme://host[:port] of an http(s) origin in
// lower case without a default port, and false for anything else ("null",
// opaque or relative URLs, userinfo, a query or fragment). withPath allows
// a path (a resource URI, whose origin is wanted); an Origin header has
// none.
func canonicalOrigin(raw string, withPath bool) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" ||
		strings.Contains(raw, "#") || u.Host == "" || u.Hostname() == "" {
		return "", false
	}
	if !withPath && u.RawPath+u.Path != "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	host, port := strings.ToLower(u.Hostname()), u.Port()
	switch {
	case scheme == "http" && port == "80", scheme == "https" && port == "443":
		port = ""
	case scheme != "http" && scheme != "https":
		return "", false
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		return scheme + "://" + host + ":" + port, true
	}
	return scheme + "://" + host, true
}

// clipHeader keeps an untrusted header value short enough for a log line.
func clipHeader(s string) string {
	const n = 120
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
