package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/time/rate"

	"github.com/openxaa/xaa/idjag"
	"github.com/openxaa/xaa/internal/config"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/testenv"
)

func TestTokenLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   config.TokenRateLimit
		want oauth.TokenLimit
	}{
		{"config defaults are oauth's", config.Default().TokenRateLimit,
			oauth.TokenLimit{PerClient: oauth.DefaultTokenPerClient, PerAddress: oauth.DefaultTokenPerAddress, Burst: 200}},
		{"zero passes through as oauth's defaults", config.TokenRateLimit{}, oauth.TokenLimit{}},
		{"tuned", config.TokenRateLimit{PerClient: 0.5, PerAddress: 20, Burst: 3}, oauth.TokenLimit{PerClient: 0.5, PerAddress: 20, Burst: 3}},
		{"disabled turns both off", config.TokenRateLimit{PerClient: 1, PerAddress: 1, Burst: 1, Disabled: true},
			oauth.TokenLimit{PerClient: rate.Inf, PerAddress: rate.Inf}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, *tokenLimit(tt.in)); diff != "" {
				t.Errorf("tokenLimit (-want +got):\n%s", diff)
			}
		})
	}
}

// TestServeTokenRateLimit: token_rate_limit reaches both roles' token
// endpoints. With a burst of one and a rate too slow to refill during the
// test (one request per 1000 s, so a slow -race run cannot flake it), a
// client's second token request is refused with 429 and Retry-After,
// whatever the grant, before its content is looked at.
func TestServeTokenRateLimit(t *testing.T) {
	t.Parallel()
	port := testenv.FreeLoopbackPort(t)
	cfg, _, _ := e2eDeployment(t, port)
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("token_rate_limit:\n  per_client: 0.001\n  burst: 1\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := runXAA(t, nil, "migrate", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	base, _, _ := startServe(t, cfg)
	waitHealthy(t, base+"/healthz")

	tests := []struct {
		name, endpoint, id, secret string
		form                       url.Values
	}{
		{"idp", "/idp/token", "assistant", e2eAppSecret, url.Values{
			"grant_type": {"authorization_code"}, "code": {"bogus"}, "redirect_uri": {e2eRedirectURI},
			"code_verifier": {strings.Repeat("v", 43)},
		}},
		{"authserver", "/as/token", e2eASClientID, e2eASSecret, url.Values{
			"grant_type": {idjag.GrantTypeJWTBearer}, "assertion": {"bogus"}, "resource": {e2eResource},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: each role's buckets are its own, but both
			// subtests share the test's source address.
			status, code, retry := rateLimitedPost(t, base+tt.endpoint, tt.id, tt.secret, tt.form)
			if status != http.StatusBadRequest || code != "invalid_grant" || retry != "" {
				t.Fatalf("first request = %d %q (Retry-After %q); want 400 invalid_grant", status, code, retry)
			}
			status, code, retry = rateLimitedPost(t, base+tt.endpoint, tt.id, tt.secret, tt.form)
			if status != http.StatusTooManyRequests {
				t.Fatalf("second request = %d %q; want 429", status, code)
			}
			if n, err := strconv.Atoi(retry); err != nil || n < 1 {
				t.Errorf("Retry-After = %q; want a whole number of seconds, at least 1", retry)
			}
		})
	}
}

// rateLimitedPost is tokenPost that also returns Retry-After.
func rateLimitedPost(t *testing.T, endpoint, id, secret string, form url.Values) (status int, errCode, retryAfter string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("POST %s = %d, not JSON: %.300s", endpoint, resp.StatusCode, body)
	}
	return resp.StatusCode, m.Error, resp.Header.Get("Retry-After")
}

// TestServeTrustedProxies: behind a proxy listed in listen.trusted_proxies,
// the per-address budget follows X-Forwarded-For, so two users behind one
// proxy do not share a budget, and one user cannot escape it by rotating
// the header when the proxy is not trusted (TestServeTokenRateLimit).
func TestServeTrustedProxies(t *testing.T) {
	t.Parallel()
	port := testenv.FreeLoopbackPort(t)
	cfg, _, _ := e2eDeployment(t, port)
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), "listen:\n", "listen:\n  trusted_proxies: [\"127.0.0.0/8\"]\n", 1))
	data = append(data, "token_rate_limit:\n  per_client: 1000000\n  per_address: 0.001\n  burst: 1\n"...)
	if err := os.WriteFile(cfg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runXAA(t, nil, "migrate", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	base, _, _ := startServe(t, cfg)
	waitHealthy(t, base+"/healthz")

	post := func(forwardedFor string) int {
		t.Helper()
		form := url.Values{"grant_type": {"authorization_code"}, "code": {"bogus"}, "redirect_uri": {e2eRedirectURI},
			"code_verifier": {strings.Repeat("v", 43)}}
		req, err := http.NewRequest(http.MethodPost, base+"/idp/token", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", forwardedFor)
		req.SetBasicAuth("assistant", url.QueryEscape(e2eAppSecret))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post("198.51.100.1"); got != http.StatusBadRequest {
		t.Fatalf("first user's first request = %d, want 400", got)
	}
	if got := post("198.51.100.1"); got != http.StatusTooManyRequests {
		t.Fatalf("first user's second request = %d, want 429", got)
	}
	if got := post("198.51.100.2"); got != http.StatusBadRequest {
		t.Fatalf("second user behind the same proxy = %d, want 400 (its own budget)", got)
	}
}
