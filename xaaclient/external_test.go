package xaaclient_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/openxaa/xaa/internal/testenv"
	"github.com/openxaa/xaa/xaaclient"
)

// aliceIDToken signs alice in at the world's IdP outside the client, as
// an application with its own SSO would.
func aliceIDToken(t *testing.T, w *world) string {
	t.Helper()
	return testenv.OIDCLogin(t, testenv.Login{Issuer: w.idpIssuer, ClientID: appID, ClientSecret: appSecret,
		RedirectURI: "http://127.0.0.1/callback", Username: "alice", Password: password})
}

// externalClient is a client that takes its ID tokens from source and
// talks to the IdP's token endpoint only; its browser fails the test.
func externalClient(t *testing.T, w *world, source func(context.Context) (string, error), edit func(*xaaclient.Options)) *xaaclient.Client {
	t.Helper()
	b := w.browser("alice")
	b.disabled = true
	return w.client(b, func(o *xaaclient.Options) {
		o.IDToken = source
		o.IdPTokenEndpoint = w.idpIssuer + "/token"
		if edit != nil {
			edit(o)
		}
	})
}

// TestExternalIDToken: with Options.IDToken the client exchanges the
// application's ID token and never signs anyone in, fetches no IdP
// metadata (IdPTokenEndpoint), calls the source again for each new
// exchange, and answers a step-up with *StepUpError instead of a login.
func TestExternalIDToken(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	ctx := t.Context()
	idToken := aliceIDToken(t, w)
	signedIn := len(w.rec.requestLines())
	var calls atomic.Int64
	c := externalClient(t, w, func(context.Context) (string, error) {
		calls.Add(1)
		return idToken, nil
	}, nil)

	tok, err := c.Token(ctx, w.files, scopeRead)
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	if tok.AccessToken == "" || tok.Extra("scope") != scopeRead {
		t.Errorf("token scope %v, want %s", tok.Extra("scope"), scopeRead)
	}
	forms := w.rec.forms(idpTokenPath, grantTE)
	if len(forms) != 1 || forms[0].Get("subject_token") != idToken {
		t.Fatalf("exchanges %d; want one, with the application's ID token as subject_token", len(forms))
	}
	for _, l := range w.rec.requestLines()[signedIn:] {
		if strings.Contains(l, "/.well-known/oauth-authorization-server/idp") || strings.Contains(l, "/idp/authorize") ||
			strings.Contains(l, "/idp/jwks") {
			t.Errorf("the client fetched %q; with IdPTokenEndpoint only the token endpoint is used", l)
		}
	}
	id, err := c.Identity()
	if err != nil || id.Subject == "" || id.Renewable {
		t.Errorf("Identity = %+v, %v; want alice's subject, not renewable", id, err)
	}
	if err := c.Login(ctx, nil); !errors.Is(err, xaaclient.ErrLoginFailed) {
		t.Errorf("Login with Options.IDToken: %v; want ErrLoginFailed", err)
	}

	// A step-up at the resource cannot be met by the client itself.
	cs := w.session(ctx, c, w.files)
	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "admin", Arguments: map[string]any{}})
	var su *xaaclient.StepUpError
	if !errors.As(err, &su) || !slices.Equal(su.ACRValues, []string{acrMFA}) {
		t.Errorf("admin tool (MFA) with a password login: %v; want *StepUpError for %s", err, acrMFA)
	}

	// Once the application's token has expired it is not presented.
	w.clock.advance(time.Hour)
	before := w.rec.count(idpTokenPath, grantTE)
	if _, err := c.Token(ctx, w.files, scopeRead, scopeWrite); !errors.Is(err, xaaclient.ErrLoginRequired) {
		t.Errorf("Token with an expired application ID token: %v; want ErrLoginRequired", err)
	}
	if n := w.rec.count(idpTokenPath, grantTE); n != before {
		t.Errorf("the client exchanged an expired ID token")
	}
	if calls.Load() != 2 {
		t.Errorf("the ID token source was called %d times; want once per mint (2)", calls.Load())
	}
}

// TestExternalIDTokenRefused: an ID token the IdP refuses is asked for
// once more; the same token again ends in ErrLoginRequired with one more
// exchange attempt, never a browser.
func TestExternalIDTokenRefused(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	forged := unsignedJWT(t, map[string]any{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	var calls atomic.Int64
	c := externalClient(t, w, func(context.Context) (string, error) {
		calls.Add(1)
		return forged, nil
	}, nil)
	_, err := c.Token(t.Context(), w.files, scopeRead)
	if !errors.Is(err, xaaclient.ErrLoginRequired) {
		t.Fatalf("Token with a token the IdP refuses: %v; want ErrLoginRequired", err)
	}
	if n := w.rec.count(idpTokenPath, grantTE); n != 1 {
		t.Errorf("exchanges = %d, want 1 (the same token is not presented twice)", n)
	}
	if calls.Load() != 2 {
		t.Errorf("source called %d times, want 2 (the refusal asks again)", calls.Load())
	}
}

// TestExternalIDTokenMalformed: what the application supplies is read
// before anything is sent; each bad token is refused with no exchange.
func TestExternalIDTokenMalformed(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	future := time.Now().Add(time.Hour).Unix()
	for _, tc := range []struct {
		name  string
		token string
		err   error
		want  error
	}{
		{"source error", "", errors.New("no session"), xaaclient.ErrLoginRequired},
		{"empty", "", nil, xaaclient.ErrLoginRequired},
		{"not a JWT", "not-a-jwt", nil, xaaclient.ErrLoginFailed},
		{"two segments", "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0", nil, xaaclient.ErrLoginFailed},
		{"no sub", unsignedJWT(t, map[string]any{"exp": future}), nil, xaaclient.ErrLoginFailed},
		{"empty sub", unsignedJWT(t, map[string]any{"sub": "", "exp": future}), nil, xaaclient.ErrLoginFailed},
		{"sub not a string", unsignedJWT(t, map[string]any{"sub": 7, "exp": future}), nil, xaaclient.ErrLoginFailed},
		{"exp a string", unsignedJWT(t, map[string]any{"sub": "alice", "exp": "tomorrow"}), nil, xaaclient.ErrLoginFailed},
		{"exp negative", unsignedJWT(t, map[string]any{"sub": "alice", "exp": -5}), nil, xaaclient.ErrLoginFailed},
		{"auth_time a string", unsignedJWT(t, map[string]any{"sub": "alice", "exp": future, "auth_time": "x"}), nil, xaaclient.ErrLoginFailed},
		{"acr a number", unsignedJWT(t, map[string]any{"sub": "alice", "exp": future, "acr": 2}), nil, xaaclient.ErrLoginFailed},
		{"expired", unsignedJWT(t, map[string]any{"sub": "alice", "exp": time.Now().Add(-time.Minute).Unix()}), nil, xaaclient.ErrLoginRequired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := externalClient(t, w, func(context.Context) (string, error) { return tc.token, tc.err }, nil)
			before := w.rec.count(idpTokenPath, grantTE)
			_, err := c.Token(t.Context(), w.files, scopeRead)
			if !errors.Is(err, tc.want) {
				t.Errorf("Token: %v; want %v", err, tc.want)
			}
			if n := w.rec.count(idpTokenPath, grantTE); n != before {
				t.Errorf("the client sent %d exchange(s) for a token it should have refused", n-before)
			}
		})
	}
}

// TestAllowExchangeWithoutResource: an IdP that predates ID-JAG -05 sends
// the resource claim only. The option accepts that when the claim is the
// requested resource; a response naming another resource is refused all
// the same (checklist E91), and without the option a missing resource is
// refused (TestE91ExchangeResponseChecks).
func TestAllowExchangeWithoutResource(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	b := w.browser("alice")
	allow := func(o *xaaclient.Options) { o.AllowExchangeWithoutResource = true }
	for _, tc := range []struct {
		name   string
		mutate func(map[string]any)
		ok     bool
	}{
		{"resource omitted", func(m map[string]any) { delete(m, "resource") }, true},
		{"foreign resource", func(m map[string]any) { m["resource"] = "https://other.example.com/mcp" }, false},
		{"extra resource", func(m map[string]any) { m["resource"] = []string{w.files, "https://other.example.com/mcp"} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.rec.mu.Lock()
			w.rec.rewrite = tc.mutate
			w.rec.mu.Unlock()
			before := w.rec.count(asTokenPath, grantJB)
			_, err := w.client(b, allow).Token(t.Context(), w.files, scopeRead)
			redeemed := w.rec.count(asTokenPath, grantJB) - before
			switch {
			case tc.ok && (err != nil || redeemed != 1):
				t.Errorf("Token: %v, %d redemption(s); want a token", err, redeemed)
			case !tc.ok && (!errors.Is(err, xaaclient.ErrInvalidResponse) || redeemed != 0):
				t.Errorf("Token: %v, %d redemption(s); want ErrInvalidResponse and none", err, redeemed)
			}
		})
	}
}

// TestAuthMethodNone: a public client at the IdP sends its client_id in
// the form and no secret; our IdP, which authenticates every client,
// refuses it. Authorization servers never take auth method none.
func TestAuthMethodNone(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	idToken := aliceIDToken(t, w)
	c := externalClient(t, w, func(context.Context) (string, error) { return idToken, nil }, func(o *xaaclient.Options) {
		o.Client = xaaclient.Credentials{ClientID: appID, AuthMethod: xaaclient.AuthMethodNone}
	})
	_, err := c.Token(t.Context(), w.files, scopeRead)
	var oe *xaaclient.OAuthError
	if !errors.As(err, &oe) || oe.Code != "invalid_client" {
		t.Errorf("Token as a public client at our IdP: %v; want invalid_client", err)
	}
	forms := w.rec.forms(idpTokenPath, grantTE)
	if len(forms) != 1 || forms[0].Get("client_id") != appID || forms[0].Has("client_secret") || forms[0].Has("client_assertion") {
		t.Errorf("public-client exchange form %v; want client_id and no credential", forms)
	}
}

func TestOptionsExternal(t *testing.T) {
	t.Parallel()
	src := func(context.Context) (string, error) { return "", nil }
	base := func() *xaaclient.Options {
		return &xaaclient.Options{
			Issuer:            "https://idp.example.com",
			Client:            xaaclient.Credentials{ClientID: "app", ClientSecret: "s"},
			AuthServers:       map[string]xaaclient.Credentials{"https://as.example.com": {ClientID: "app", ClientSecret: "s"}},
			MemoryOnly:        true,
			AllowLoopbackHTTP: true,
		}
	}
	for _, tc := range []struct {
		name string
		edit func(*xaaclient.Options)
		ok   bool
	}{
		{"external with endpoint", func(o *xaaclient.Options) {
			o.IDToken, o.IdPTokenEndpoint = src, "https://idp.example.com/token"
		}, true},
		{"loopback http endpoint", func(o *xaaclient.Options) {
			o.IDToken, o.IdPTokenEndpoint = src, "http://127.0.0.1:9/token"
		}, true},
		{"public client at the IdP", func(o *xaaclient.Options) {
			o.Client = xaaclient.Credentials{ClientID: "app", AuthMethod: xaaclient.AuthMethodNone}
		}, true},
		{"endpoint without IDToken", func(o *xaaclient.Options) { o.IdPTokenEndpoint = "https://idp.example.com/token" }, false},
		{"http endpoint off loopback", func(o *xaaclient.Options) {
			o.IDToken, o.IdPTokenEndpoint = src, "http://idp.example.com/token"
		}, false},
		{"relative endpoint", func(o *xaaclient.Options) { o.IDToken, o.IdPTokenEndpoint = src, "/token" }, false},
		{"endpoint with fragment", func(o *xaaclient.Options) {
			o.IDToken, o.IdPTokenEndpoint = src, "https://idp.example.com/token#x"
		}, false},
		{"none with a secret", func(o *xaaclient.Options) {
			o.Client = xaaclient.Credentials{ClientID: "app", ClientSecret: "s", AuthMethod: xaaclient.AuthMethodNone}
		}, false},
		{"none at an authorization server", func(o *xaaclient.Options) {
			o.AuthServers = map[string]xaaclient.Credentials{"https://as.example.com": {ClientID: "app", AuthMethod: xaaclient.AuthMethodNone}}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base()
			tc.edit(o)
			_, err := xaaclient.New(o)
			if (err == nil) != tc.ok {
				t.Errorf("New: %v; want ok=%v", err, tc.ok)
			}
		})
	}
}

// unsignedJWT is a compact JWS with the given claims and a junk
// signature: what the client can read but no server accepts.
func unsignedJWT(t *testing.T, claims map[string]any) string {
	t.Helper()
	body, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"ES256","typ":"JWT"}`)) + "." + enc(body) + "." + enc([]byte("not-a-signature"))
}
