package mcpauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/auth"
)

func TestJWTVerifierTokenInfo(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	now := time.Now().Truncate(time.Second)
	tok := as.token(t, "crm:read  crm:export", func(c map[string]any) {
		c["jti"] = "j1"
		c["iat"] = now.Unix()
		c["exp"] = now.Add(time.Minute).Unix()
		c["auth_time"] = now.Add(-time.Hour).Unix()
		c["aud"] = []string{testResource} // a one-element array is fine
	})
	ti, err := as.verifier(t, nil).Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	want := &TokenInfo{
		Issuer: testIssuer, Subject: testSubject, ClientID: testClient, JTI: "j1", Audience: testResource, ACR: acrMFA,
		Scopes: []string{"crm:read", "crm:export"}, AMR: []string{"pwd", "otp"},
		AuthTime: now.Add(-time.Hour).UTC(), IssuedAt: now.UTC(), Expiration: now.Add(time.Minute).UTC(),
	}
	if diff := cmp.Diff(want, ti); diff != "" {
		t.Errorf("TokenInfo (-want +got):\n%s", diff)
	}
	// Optional claims absent: zero values.
	ti, err = as.verifier(t, nil).Verify(context.Background(), as.token(t, "", func(c map[string]any) {
		delete(c, "scope")
		delete(c, "acr")
		delete(c, "amr")
		delete(c, "auth_time")
	}))
	if err != nil {
		t.Fatal(err)
	}
	if ti.Scopes != nil || ti.ACR != "" || ti.AMR != nil || !ti.AuthTime.IsZero() {
		t.Errorf("TokenInfo = %+v", ti)
	}
}

func TestJWTVerifierRejections(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	v := as.verifier(t, nil)
	for _, tc := range invalidTokenCases(t, as) {
		_, err := v.Verify(context.Background(), tc.token)
		if !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s %s: err = %v, want ErrInvalidToken", tc.item, tc.name, err)
		}
	}
	for _, tc := range []struct {
		name string
		edit func(c map[string]any)
	}{
		{"amr not an array", func(c map[string]any) { c["amr"] = "pwd" }},
		{"acr number", func(c map[string]any) { c["acr"] = 2 }},
		{"negative auth_time", func(c map[string]any) { c["auth_time"] = -1 }},
		{"client_id empty", func(c map[string]any) { c["client_id"] = "" }},
		{"lifetime over an hour", func(c map[string]any) { c["exp"] = time.Now().Add(2 * time.Hour).Unix() }},
	} {
		if _, err := v.Verify(context.Background(), as.token(t, "crm:read", tc.edit)); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
}

func TestNewJWTVerifierValidates(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	for _, tc := range []struct {
		name string
		o    *JWTOptions
	}{
		{"nil", nil},
		{"no issuer", &JWTOptions{Resource: testResource, JWKS: as.jwks}},
		{"no resource", &JWTOptions{Issuer: testIssuer, JWKS: as.jwks}},
		{"no keys", &JWTOptions{Issuer: testIssuer, Resource: testResource}},
		{"both key sources", &JWTOptions{Issuer: testIssuer, Resource: testResource, JWKS: as.jwks, JWKSURL: "https://as.example.com/jwks"}},
		{"bad JWKS", &JWTOptions{Issuer: testIssuer, Resource: testResource, JWKS: []byte(`{"keys":"x"}`)}},
		{"empty JWKS", &JWTOptions{Issuer: testIssuer, Resource: testResource, JWKS: []byte(`{"keys":[]}`)}},
		{"http JWKS URL", &JWTOptions{Issuer: testIssuer, Resource: testResource, JWKSURL: "http://as.example.com/jwks"}},
		{"http loopback without opt-in", &JWTOptions{Issuer: testIssuer, Resource: testResource, JWKSURL: "http://127.0.0.1:1/jwks"}},
		{"private address", &JWTOptions{Issuer: testIssuer, Resource: testResource, JWKSURL: "https://10.0.0.1/jwks"}},
	} {
		if _, err := NewJWTVerifier(tc.o); err == nil {
			t.Errorf("%s: NewJWTVerifier succeeded", tc.name)
		}
	}
}

func TestJWTVerifierRemoteJWKS(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	var up atomic.Bool
	up.Store(true)
	jwks := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(as.jwks)
	})
	plain := httptest.NewServer(jwks)
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(jwks)
	defer tlsSrv.Close()

	for _, tc := range []struct {
		name string
		o    JWTOptions
	}{
		{"http loopback", JWTOptions{JWKSURL: plain.URL + "/jwks", AllowLoopbackHTTP: true}},
		{"https with the client's roots", JWTOptions{JWKSURL: tlsSrv.URL + "/jwks", AllowLoopbackHTTP: true, HTTPClient: tlsSrv.Client()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.Issuer, o.Resource = testIssuer, testResource
			v, err := NewJWTVerifier(&o)
			if err != nil {
				t.Fatal(err)
			}
			ti, err := v.Verify(context.Background(), as.token(t, "crm:read", nil))
			if err != nil || ti.Subject != testSubject {
				t.Fatalf("Verify = %+v, %v", ti, err)
			}
		})
	}

	// Keys that cannot be fetched are a dependency failure, not a bad
	// token: the middleware answers 503 and forwards nothing.
	up.Store(false)
	v, err := NewJWTVerifier(&JWTOptions{Issuer: testIssuer, Resource: testResource, JWKSURL: plain.URL + "/other", AllowLoopbackHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), as.token(t, "crm:read", nil))
	if err == nil || errors.Is(err, ErrInvalidToken) {
		t.Fatalf("err = %v, want a dependency failure", err)
	}
	m, _ := newTestMiddleware(t, as, func(o *Options) { o.Verifier = v })
	upstream := &upstream{}
	rec := post(t, m.Wrap(upstream.echo()), "/mcp/crm", "Bearer "+as.token(t, "crm:read", nil), callBody(1, "search_customers"))
	if rec.Code != http.StatusServiceUnavailable || upstream.calls.Load() != 0 {
		t.Errorf("status %d, upstream %d", rec.Code, upstream.calls.Load())
	}
}

// introspectionAS is a real RFC 7662 endpoint over loopback.
type introspectionAS struct {
	t       *testing.T
	answers map[string]string // token -> JSON answer
	calls   atomic.Int32
	srv     *httptest.Server
}

const (
	gwClientID     = "gw crm" // a space: Basic credentials are form-encoded first
	gwClientSecret = "s3cr:t%"
)

func newIntrospectionAS(t *testing.T) *introspectionAS {
	a := &introspectionAS{t: t, answers: map[string]string{}}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.calls.Add(1)
		id, secret, ok := r.BasicAuth()
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		if !ok || id != gwClientID || secret != gwClientSecret {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if err := r.ParseForm(); err != nil || r.PostForm.Get("token_type_hint") != "access_token" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		answer, ok := a.answers[r.PostForm.Get("token")]
		if !ok {
			answer = `{"active":false}`
		}
		if answer == "500" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(answer))
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func activeAnswer(edit func(m map[string]any)) string {
	now := time.Now()
	m := map[string]any{
		"active": true, "scope": "crm:read crm:export", "client_id": testClient, "sub": testSubject,
		"aud": testResource, "iss": testIssuer, "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
		"jti": "j-intro", "token_type": "Bearer", "auth_time": now.Add(-time.Minute).Unix(), "acr": acrMFA, "amr": []string{"pwd", "otp"},
	}
	if edit != nil {
		edit(m)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func (a *introspectionAS) verifier(t *testing.T, ttl time.Duration, now func() time.Time) *IntrospectionVerifier {
	v, err := NewIntrospectionVerifier(&IntrospectionOptions{
		Endpoint: a.srv.URL + "/introspect", ClientID: gwClientID, ClientSecret: gwClientSecret,
		Issuer: testIssuer, Resource: testResource, AllowLoopbackHTTP: true, CacheTTL: ttl, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestD86_IntrospectionInactive(t *testing.T) {
	t.Parallel()
	a := newIntrospectionAS(t)
	a.answers["good"] = activeAnswer(nil)
	a.answers["other-aud"] = activeAnswer(func(m map[string]any) { m["aud"] = "https://gw.example.com/mcp/files" })
	a.answers["other-iss"] = activeAnswer(func(m map[string]any) { m["iss"] = "https://evil.example.com" })
	a.answers["expired"] = activeAnswer(func(m map[string]any) { m["exp"] = time.Now().Add(-time.Second).Unix() })
	a.answers["no-sub"] = activeAnswer(func(m map[string]any) { delete(m, "sub") })
	a.answers["dup"] = `{"active":true,"active":false}`
	a.answers["broken"] = "500"
	v := a.verifier(t, 0, nil)
	m, log := newTestMiddleware(t, newTestAS(t), func(o *Options) { o.Verifier = v })
	up := &upstream{}
	h := m.Wrap(up.echo())
	for _, tc := range []struct {
		token  string
		status int
	}{
		{"unknown", 401}, // {"active":false}: D86
		{"other-aud", 401},
		{"other-iss", 401},
		{"expired", 401},
		{"no-sub", 401},
		{"dup", 503},
		{"broken", 503},
		{"good", 200},
	} {
		rec := post(t, h, "/mcp/crm", "Bearer "+tc.token, callBody(1, "search_customers"))
		if rec.Code != tc.status {
			t.Errorf("%s: status = %d, want %d", tc.token, rec.Code, tc.status)
		}
		if tc.status == 401 && decodeOAuthBody(t, rec).Error != "invalid_token" {
			t.Errorf("%s: body %s", tc.token, rec.Body)
		}
	}
	if up.calls.Load() != 1 {
		t.Errorf("upstream reached %d times, want 1", up.calls.Load())
	}
	ds := log.all()
	if last := ds[len(ds)-1]; !last.Allowed || last.JTI != "j-intro" {
		t.Errorf("last decision %+v", last)
	}
	// Wrong client credentials: the AS says 401, which is our failure.
	bad, _ := NewIntrospectionVerifier(&IntrospectionOptions{Endpoint: a.srv.URL, ClientID: "x", ClientSecret: "y",
		Issuer: testIssuer, Resource: testResource, AllowLoopbackHTTP: true})
	if _, err := bad.Verify(context.Background(), "good"); err == nil || errors.Is(err, ErrInvalidToken) {
		t.Errorf("bad credentials: %v", err)
	}
}

func TestIntrospectionCache(t *testing.T) {
	t.Parallel()
	a := newIntrospectionAS(t)
	a.answers["good"] = activeAnswer(nil)
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	v := a.verifier(t, time.Minute, clock)
	rev := revokeJTI("")
	v.revocations = &rev
	for range 3 {
		if _, err := v.Verify(context.Background(), "good"); err != nil {
			t.Fatal(err)
		}
	}
	if a.calls.Load() != 1 {
		t.Errorf("introspection calls = %d, want 1 (cached)", a.calls.Load())
	}
	// Revocations apply to cached answers too.
	rev = "j-intro"
	if _, err := v.Verify(context.Background(), "good"); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("revoked cached token: %v", err)
	}
	rev = ""
	now.Add(int64(61 * time.Second))
	if _, err := v.Verify(context.Background(), "good"); err != nil || a.calls.Load() != 2 {
		t.Errorf("after TTL: err %v, calls %d", err, a.calls.Load())
	}
	// Inactive answers are not cached.
	for range 2 {
		_, _ = v.Verify(context.Background(), "nope")
	}
	if a.calls.Load() != 4 {
		t.Errorf("calls = %d, want 4", a.calls.Load())
	}
}

func TestNewIntrospectionVerifierValidates(t *testing.T) {
	t.Parallel()
	good := IntrospectionOptions{Endpoint: "https://as.example.com/introspect", ClientID: "c", ClientSecret: "s", Issuer: testIssuer, Resource: testResource}
	for _, tc := range []struct {
		name string
		edit func(o *IntrospectionOptions)
	}{
		{"http endpoint", func(o *IntrospectionOptions) { o.Endpoint = "http://as.example.com/introspect" }},
		{"http loopback without opt-in", func(o *IntrospectionOptions) { o.Endpoint = "http://127.0.0.1/introspect" }},
		{"http non-loopback with opt-in", func(o *IntrospectionOptions) {
			o.Endpoint, o.AllowLoopbackHTTP = "http://as.example.com/introspect", true
		}},
		{"relative endpoint", func(o *IntrospectionOptions) { o.Endpoint = "/introspect" }},
		{"no secret", func(o *IntrospectionOptions) { o.ClientSecret = "" }},
		{"no resource", func(o *IntrospectionOptions) { o.Resource = "" }},
		{"negative TTL", func(o *IntrospectionOptions) { o.CacheTTL = -1 }},
	} {
		o := good
		tc.edit(&o)
		if _, err := NewIntrospectionVerifier(&o); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if _, err := NewIntrospectionVerifier(&good); err != nil {
		t.Error(err)
	}
}

func TestSDKVerifier(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	verify := SDKVerifier(as.verifier(t, nil))
	info, err := verify(context.Background(), as.token(t, "crm:read", nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.UserID != testSubject || !cmp.Equal(info.Scopes, []string{"crm:read"}) || info.Extra["client_id"] != testClient {
		t.Errorf("info = %+v", info)
	}
	if _, ok := info.Extra["token_info"].(*TokenInfo); !ok {
		t.Errorf("no token_info")
	}
	_, err = verify(context.Background(), as.mint(t, "JWT", nil), nil)
	if !errors.Is(err, auth.ErrInvalidToken) || !errors.Is(err, ErrInvalidToken) {
		t.Errorf("ID token: %v", err)
	}
	// Used with the go-sdk's own middleware: 401 for a bad token.
	h := auth.RequireBearerToken(verify, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	rec := post(t, h, "/", "Bearer "+as.mint(t, "JWT", nil), "{}")
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("go-sdk middleware: %d", rec.Code)
	}
}
