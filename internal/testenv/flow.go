// Package testenv is test support for end-to-end tests that drive a real
// `xaa serve` over HTTP: a browser-like OIDC login, token-endpoint posts and
// JWKS fetching. It is imported only by tests.
package testenv

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/jose"
)

// client bounds every request a test makes, so a hung server fails the
// test instead of the whole run.
var client = &http.Client{Timeout: 10 * time.Second}

// KeysAt fetches a published JWKS as a key set for jose.Verify.
func KeysAt(t testing.TB, jwksURL string) jose.KeySet {
	t.Helper()
	resp, err := client.Get(jwksURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d %s", jwksURL, resp.StatusCode, body)
	}
	set, err := jose.ParseJWKS(body)
	if err != nil {
		t.Fatalf("%s: %v", jwksURL, err)
	}
	ks, err := jose.NewStaticKeySet(set)
	if err != nil {
		t.Fatalf("%s: %v", jwksURL, err)
	}
	return ks
}

// TokenPost posts form to a token endpoint, with client_secret_basic
// credentials when id is set, and decodes the JSON answer.
func TokenPost(t testing.TB, endpoint, id, secret string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("POST %s = %d, not JSON: %.300s", endpoint, resp.StatusCode, body)
	}
	return resp.StatusCode, m
}

// Login names who signs in where.
type Login struct {
	Issuer       string // the IdP's issuer URL
	ClientID     string // a requesting app with client_secret_basic
	ClientSecret string
	RedirectURI  string // registered; nothing needs to listen on it
	Username     string
	Password     string
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// OIDCLogin signs a user in through the IdP's real authorization endpoint
// and login form, with PKCE S256, checks the state and redeems the code.
// It returns the ID token.
func OIDCLogin(t testing.TB, l Login) string {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	// A browser that follows the IdP's own redirects and stops at the
	// client's redirect URI.
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), l.Issuer+"/") {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	fetch := func(req *http.Request) (*http.Response, string) {
		t.Helper()
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", req.Method, req.URL, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}

	verifier := rand.Text() + rand.Text() // 52 base32 characters
	sum := sha256.Sum256([]byte(verifier))
	state, nonce := rand.Text(), rand.Text()
	q := url.Values{
		"client_id": {l.ClientID}, "redirect_uri": {l.RedirectURI}, "response_type": {"code"},
		"scope": {"openid"}, "state": {state}, "nonce": {nonce},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	req, _ := http.NewRequest(http.MethodGet, l.Issuer+"/authorize?"+q.Encode(), nil)
	resp, body := fetch(req)
	m := csrfField.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("authorize ended at %s with %d and no login form: %.300s", resp.Request.URL, resp.StatusCode, body)
	}
	form := url.Values{"csrf_token": {html.UnescapeString(m[1])}, "username": {l.Username}, "password": {l.Password}}
	req, _ = http.NewRequest(http.MethodPost, l.Issuer+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, body = fetch(req)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil || !strings.HasPrefix(loc.String(), l.RedirectURI+"?") {
		t.Fatalf("login ended with %d to %q, not at the redirect URI: %.300s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if got := loc.Query().Get("state"); got != state {
		t.Fatalf("redirect state = %q, want %q", got, state)
	}
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("redirect carries no code: %s", loc.Redacted())
	}
	status, tok := TokenPost(t, l.Issuer+"/token", l.ClientID, l.ClientSecret, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {l.RedirectURI}, "code_verifier": {verifier},
	})
	idToken, _ := tok["id_token"].(string)
	if status != http.StatusOK || idToken == "" {
		t.Fatalf("code redemption = %d %v", status, tok["error"])
	}
	return idToken
}

// FreeLoopbackPort returns a port that was free a moment ago, for configs
// that must name the port serve will listen on before it starts. Losing the
// race to another process fails loudly (serve cannot listen).
func FreeLoopbackPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
