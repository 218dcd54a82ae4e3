package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
)

// TestOriginValidation: a request whose Origin header is neither the
// resource's own origin nor an allowed one is refused with 403 before
// the token is even looked at, and reaches no upstream (the MCP
// conformance suite's dns-rebinding-protection scenario sends Host and
// Origin evil.example.com). Requests without Origin, the non-browser
// clients, are unaffected.
func TestOriginValidation(t *testing.T) {
	t.Parallel()
	w := newWorld(t, &worldOptions{noStdio: true, edit: func(_ *world, o *Options) {
		o.Routes[0].AllowedOrigins = []string{"https://App.Example.com:443"}
	}})
	tok := w.token(pathHTTP, "crm:read")
	own := w.gwURL
	port := own[strings.LastIndex(own, ":")+1:]
	for _, tc := range []struct {
		name    string
		origins []string
		token   string
		want    int
	}{
		{"no origin", nil, tok, http.StatusOK},
		{"own origin", []string{own}, tok, http.StatusOK},
		{"own origin upper case", []string{strings.ToUpper(own)}, tok, http.StatusOK},
		{"allowed origin", []string{"https://app.example.com"}, tok, http.StatusOK},
		{"no origin, no token", nil, "", http.StatusUnauthorized},
		{"own origin, no token", []string{own}, "", http.StatusUnauthorized},
		{"foreign", []string{"http://evil.example.com"}, tok, http.StatusForbidden},
		{"foreign, no token", []string{"http://evil.example.com"}, "", http.StatusForbidden},
		{"rebound name, same port", []string{"http://evil.example.com:" + port}, tok, http.StatusForbidden},
		{"same host, other port", []string{"http://127.0.0.1:1"}, tok, http.StatusForbidden},
		{"same host, other scheme", []string{"https://127.0.0.1:" + port}, tok, http.StatusForbidden},
		{"allowed host, other scheme", []string{"http://app.example.com"}, tok, http.StatusForbidden},
		{"null", []string{"null"}, tok, http.StatusForbidden},
		{"empty", []string{""}, tok, http.StatusForbidden},
		{"with a path", []string{own + "/mcp"}, tok, http.StatusForbidden},
		{"with userinfo", []string{"http://a@" + own[len("http://"):]}, tok, http.StatusForbidden},
		{"two origins", []string{own, "http://evil.example.com"}, tok, http.StatusForbidden},
		{"own twice", []string{own, own}, tok, http.StatusForbidden},
		{"garbage", []string{"::not a url"}, tok, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(w.rec.requestURIs())
			req, _ := http.NewRequest(http.MethodPost, w.gwURL+pathHTTP, strings.NewReader(initBody))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			for _, o := range tc.origins {
				req.Header.Add("Origin", o)
			}
			r := w.do(req)
			if r.status != tc.want {
				t.Fatalf("status %d, want %d: %s", r.status, tc.want, r.body)
			}
			reached := len(w.rec.requestURIs()) > before
			if tc.want == http.StatusForbidden {
				if reached {
					t.Error("a refused request reached the upstream")
				}
				if !strings.Contains(r.body, `"code":-32600`) || r.header.Get("Cache-Control") != "no-store" {
					t.Errorf("403 body %s (Cache-Control %q); want a JSON-RPC error, no-store", r.body, r.header.Get("Cache-Control"))
				}
			}
			if tc.want == http.StatusOK && !reached {
				t.Error("an allowed request did not reach the upstream")
			}
		})
	}
	// The protected-resource metadata is public: any origin may read it.
	req, _ := http.NewRequest(http.MethodGet, w.gwURL+"/.well-known/oauth-protected-resource"+pathHTTP, nil)
	req.Header.Set("Origin", "http://evil.example.com")
	if r := w.do(req); r.status != http.StatusOK {
		t.Errorf("metadata with a foreign Origin: %d", r.status)
	}
}

func TestNewRejectsBadAllowedOrigins(t *testing.T) {
	t.Parallel()
	for _, o := range []string{"*", "null", "https://app.example.com/", "https://app.example.com/path", "app.example.com",
		"ftp://app.example.com", "https://app.example.com?x", "https://app.example.com#f", "https://u@app.example.com", ""} {
		rc := Route{Path: "/mcp", Resource: "https://gw.example.com/mcp", Issuer: "https://as.example.com", ClientID: "gw",
			ClientSecret: "s", UpstreamURL: "http://127.0.0.1:1/mcp", AllowedOrigins: []string{o}}
		_, err := New(context.Background(), &Options{Routes: []Route{rc}, Audit: TxAudit(nil)})
		if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), "AllowedOrigins") {
			t.Errorf("AllowedOrigins %q: %v; want an ErrInvalidOptions naming AllowedOrigins", o, err)
		}
	}
}

func TestCanonicalOrigin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in       string
		withPath bool
		want     string
		ok       bool
	}{
		{"https://gw.example.com", false, "https://gw.example.com", true},
		{"HTTPS://GW.Example.COM:443", false, "https://gw.example.com", true},
		{"http://gw.example.com:80", false, "http://gw.example.com", true},
		{"http://gw.example.com:443", false, "http://gw.example.com:443", true},
		{"http://127.0.0.1:8470", false, "http://127.0.0.1:8470", true},
		{"http://[::1]:8470", false, "http://[::1]:8470", true},
		{"https://gw.example.com/mcp/files", true, "https://gw.example.com", true},
		{"https://gw.example.com/mcp/files", false, "", false},
		{"https://gw.example.com/", false, "", false},
		{"null", false, "", false},
		{"", false, "", false},
		{"file:///etc/passwd", false, "", false},
		{"ws://gw.example.com", false, "", false},
		{"https://gw.example.com?", false, "", false},
		{"https://gw.example.com#", false, "", false},
		{"https://user:pw@gw.example.com", false, "", false},
		{"https://:443", false, "", false},
		{"mailto:a@example.com", false, "", false},
	} {
		got, ok := canonicalOrigin(tc.in, tc.withPath)
		if got != tc.want || ok != tc.ok {
			t.Errorf("canonicalOrigin(%q, %v) = %q, %v; want %q, %v", tc.in, tc.withPath, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzCanonicalOrigin: an accepted origin is canonical (a fixed point),
// lower case, and carries no path, query, fragment or userinfo, so two
// spellings of one origin always compare equal and nothing else does.
func FuzzCanonicalOrigin(f *testing.F) {
	for _, s := range []string{"https://gw.example.com", "HTTP://A.B:80", "http://[::1]:1", "null", "https://a/b", "https://a@b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, ok := canonicalOrigin(raw, false)
		if !ok {
			return
		}
		again, ok2 := canonicalOrigin(c, false)
		if !ok2 || again != c {
			t.Fatalf("canonicalOrigin(%q) = %q, which canonicalizes to %q, %v", raw, c, again, ok2)
		}
		if c != strings.ToLower(c) || strings.ContainsAny(c[strings.Index(c, "://")+3:], "/?#@") {
			t.Fatalf("canonicalOrigin(%q) = %q is not a bare lower-case origin", raw, c)
		}
		if !strings.HasPrefix(c, "http://") && !strings.HasPrefix(c, "https://") {
			t.Fatalf("canonicalOrigin(%q) = %q is not http(s)", raw, c)
		}
	})
}
