package xaaclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/jose"
)

// idTokenWorld is an IdP reduced to its JWKS, with a signer for ID tokens.
type idTokenWorld struct {
	c      *Client
	meta   *serverMetadata
	signer *jose.LocalSigner
	other  *jose.LocalSigner // a key the IdP does not publish
	now    time.Time
}

func newIDTokenWorld(t *testing.T) *idTokenWorld {
	t.Helper()
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s1, _ := jose.NewLocalSigner(k1, jose.ES256)
	s2, _ := jose.NewLocalSigner(k2, jose.ES256)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jose.PublicJWKS(s1.PublicKey()))
	}))
	t.Cleanup(srv.Close)
	c := testClient(t, srv.URL)
	return &idTokenWorld{c: c, meta: &serverMetadata{Issuer: srv.URL, JWKSURI: srv.URL + "/jwks"}, signer: s1, other: s2, now: time.Now()}
}

func (w *idTokenWorld) claims() map[string]any {
	return map[string]any{
		"iss": w.meta.Issuer, "sub": "alice", "aud": "app", "exp": w.now.Add(5 * time.Minute).Unix(), "iat": w.now.Unix(),
		"nonce": "n-123", "auth_time": w.now.Add(-time.Minute).Unix(), "acr": "urn:openxaa:acr:pwd", "jti": "j1",
	}
}

// TestVerifyIDToken: every check of the ID token has a case that fails
// it, and the login is refused for each.
func TestVerifyIDToken(t *testing.T) {
	t.Parallel()
	w := newIDTokenWorld(t)
	for _, tc := range []struct {
		name   string
		edit   func(map[string]any)
		typ    string
		signer *jose.LocalSigner
		nonce  string
		ok     bool
	}{
		{name: "good", ok: true},
		{name: "refresh: no nonce expected", nonce: "-", edit: func(m map[string]any) { delete(m, "nonce") }, ok: true},
		{name: "aud array with azp", edit: func(m map[string]any) { m["aud"] = []string{"app", "other"}; m["azp"] = "app" }, ok: true},
		{name: "wrong nonce", edit: func(m map[string]any) { m["nonce"] = "n-999" }},
		{name: "no nonce", edit: func(m map[string]any) { delete(m, "nonce") }},
		{name: "nonce not a string", edit: func(m map[string]any) { m["nonce"] = 7 }},
		{name: "wrong aud", edit: func(m map[string]any) { m["aud"] = "other" }},
		{name: "aud array without azp", edit: func(m map[string]any) { m["aud"] = []string{"app", "other"} }},
		{name: "azp of another party", edit: func(m map[string]any) { m["azp"] = "other" }},
		{name: "wrong iss", edit: func(m map[string]any) { m["iss"] = "https://evil.example.com" }},
		{name: "expired", edit: func(m map[string]any) { m["exp"] = w.now.Add(-time.Hour).Unix() }},
		{name: "issued in the future", edit: func(m map[string]any) { m["iat"] = w.now.Add(time.Hour).Unix() }},
		{name: "no iat", edit: func(m map[string]any) { delete(m, "iat") }},
		{name: "no sub", edit: func(m map[string]any) { delete(m, "sub") }},
		{name: "auth_time a string", edit: func(m map[string]any) { m["auth_time"] = "yesterday" }},
		{name: "access token typ", typ: jose.TypeAccessToken},
		{name: "ID-JAG typ", typ: jose.TypeIDJAG},
		{name: "unpublished key", signer: w.other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := w.claims()
			if tc.edit != nil {
				tc.edit(m)
			}
			s := w.signer
			if tc.signer != nil {
				s = tc.signer
			}
			typ := jose.TypeJWT
			if tc.typ != "" {
				typ = tc.typ
			}
			raw, err := s.Sign(t.Context(), typ, m)
			if err != nil {
				t.Fatal(err)
			}
			nonce := "n-123"
			if tc.nonce == "-" {
				nonce = ""
			}
			cl, err := w.c.verifyIDToken(t.Context(), w.meta, raw, nonce)
			if tc.ok {
				if err != nil || cl.Subject != "alice" || cl.AuthTime.IsZero() {
					t.Errorf("verifyIDToken: %+v, %v", cl, err)
				}
			} else if !errors.Is(err, ErrLoginFailed) {
				t.Errorf("verifyIDToken: %v; want ErrLoginFailed", err)
			}
		})
	}
}

// TestSatisfies: a step-up login that the IdP did not perform (old
// auth_time, another acr) is reported, never silently accepted.
func TestSatisfies(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for _, tc := range []struct {
		name string
		cl   idClaims
		lo   LoginOptions
		ok   bool
	}{
		{"plain login", idClaims{}, LoginOptions{}, true},
		{"fresh", idClaims{AuthTime: now}, LoginOptions{ForceLogin: true, MaxAge: 5 * time.Minute}, true},
		{"old session reused", idClaims{AuthTime: now.Add(-time.Hour)}, LoginOptions{ForceLogin: true}, false},
		{"older than max_age", idClaims{AuthTime: now.Add(-time.Hour)}, LoginOptions{MaxAge: 5 * time.Minute}, false},
		{"no auth_time", idClaims{}, LoginOptions{MaxAge: time.Minute}, false},
		{"acr met", idClaims{AuthTime: now, ACR: "mfa"}, LoginOptions{ForceLogin: true, ACRValues: []string{"mfa"}}, true},
		{"acr not met", idClaims{AuthTime: now, ACR: "pwd"}, LoginOptions{ForceLogin: true, ACRValues: []string{"mfa"}}, false},
	} {
		err := satisfies(&tc.cl, &tc.lo, now)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrStepUpRequired)) {
			t.Errorf("%s: satisfies = %v; want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	good := func() *Options {
		return &Options{
			Issuer:      "https://idp.example.com",
			Client:      Credentials{ClientID: "app", ClientSecret: "s"},
			AuthServers: map[string]Credentials{"https://as.example.com": {ClientID: "b", ClientSecret: "s"}},
			MemoryOnly:  true,
		}
	}
	for _, tc := range []struct {
		name string
		edit func(*Options)
		ok   bool
	}{
		{"good", func(*Options) {}, true},
		{"private_key_jwt Ed25519", func(o *Options) { o.Client = Credentials{ClientID: "app", PrivateKey: edKey} }, true},
		{"loopback http allowed", func(o *Options) { o.Issuer = "http://127.0.0.1:8080/idp"; o.AllowLoopbackHTTP = true }, true},
		{"IPv6 loopback redirect", func(o *Options) { o.RedirectURL = "http://[::1]:9000/cb" }, true},
		{"nil", nil, false},
		{"no issuer", func(o *Options) { o.Issuer = "" }, false},
		{"http issuer", func(o *Options) { o.Issuer = "http://idp.example.com" }, false},
		{"loopback http not allowed", func(o *Options) { o.Issuer = "http://127.0.0.1:8080/idp" }, false},
		{"issuer with query", func(o *Options) { o.Issuer = "https://idp.example.com/?x=1" }, false},
		{"no client_id", func(o *Options) { o.Client.ClientID = "" }, false},
		{"public client", func(o *Options) { o.Client.ClientSecret = "" }, false},
		{"secret and key", func(o *Options) { o.Client.PrivateKey = edKey }, false},
		{"RSA key", func(o *Options) { o.Client = Credentials{ClientID: "app", PrivateKey: rsaKey} }, false},
		{"P-384 key", func(o *Options) { o.Client = Credentials{ClientID: "app", PrivateKey: p384} }, false},
		{"post without secret", func(o *Options) {
			o.Client = Credentials{ClientID: "app", PrivateKey: edKey, AuthMethod: AuthMethodSecretPost}
		}, false},
		{"unknown method", func(o *Options) { o.Client.AuthMethod = "none" }, false},
		{"no auth servers", func(o *Options) { o.AuthServers = nil }, false},
		{"bad AS credentials", func(o *Options) { o.AuthServers["https://as.example.com"] = Credentials{ClientID: "b"} }, false},
		{"redirect on localhost", func(o *Options) { o.RedirectURL = "http://localhost/cb" }, false},
		{"https redirect", func(o *Options) { o.RedirectURL = "https://127.0.0.1/cb" }, false},
		{"redirect elsewhere", func(o *Options) { o.RedirectURL = "http://10.0.0.1/cb" }, false},
		{"redirect with query", func(o *Options) { o.RedirectURL = "http://127.0.0.1/cb?x=1" }, false},
		{"no openid", func(o *Options) { o.LoginScopes = []string{"profile"} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o *Options
			if tc.edit != nil {
				o = good()
				tc.edit(o)
			}
			_, err := New(o)
			if (err == nil) != tc.ok {
				t.Errorf("New: %v; want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestDefaultCacheFile: one file per (issuer, client) under the user's
// config directory.
func TestDefaultCacheFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv("HOME", dir)
	o := &Options{
		Issuer:      "https://idp.example.com",
		Client:      Credentials{ClientID: "app", ClientSecret: "s"},
		AuthServers: map[string]Credentials{"https://as.example.com": {ClientID: "b", ClientSecret: "s"}},
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.UserConfigDir()
	if want := filepath.Join(cfg, "xaa", DefaultCacheFileName(o.Issuer, "app")); c.opts.CacheFile != want || !strings.HasPrefix(want, dir) {
		t.Errorf("default cache file %q, want %q under %s", c.opts.CacheFile, want, dir)
	}
	if DefaultCacheFileName(o.Issuer, "app") == DefaultCacheFileName(o.Issuer, "app2") {
		t.Error("two clients share a cache file name")
	}
}

func newTokenFile(t *testing.T) *tokenFile {
	return &tokenFile{path: filepath.Join(t.TempDir(), "xaa", "tokens.json"), issuer: "https://idp", clientID: "app"}
}

// TestTokenFile: written 0600 atomically; refused when others may read
// it, when it is a symlink, or when others may write its directory;
// state for another issuer or client, or a corrupt file, reads as empty;
// concurrent writers (separate handles on one path, as two processes
// have) lose no update.
func TestTokenFile(t *testing.T) {
	t.Parallel()
	f := newTokenFile(t)
	if _, err := f.update(func(st *cacheState) error {
		st.Session = &session{LoginID: "l", Subject: "alice", IDToken: "id"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(f.path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v, mode %v", err, fi.Mode())
	}
	if di, _ := os.Stat(filepath.Dir(f.path)); di.Mode().Perm() != 0o700 {
		t.Errorf("cache directory mode %04o, want 0700", di.Mode().Perm())
	}
	st, err := f.read()
	if err != nil || st.Session == nil || st.Session.Subject != "alice" {
		t.Fatalf("read: %+v, %v", st, err)
	}

	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		if err := os.Chmod(f.path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := f.read(); !errors.Is(err, ErrInsecureCacheFile) {
			t.Errorf("mode %04o: read %v; want ErrInsecureCacheFile", mode, err)
		}
		if _, err := f.update(func(*cacheState) error { return nil }); !errors.Is(err, ErrInsecureCacheFile) {
			t.Errorf("mode %04o: update %v; want ErrInsecureCacheFile", mode, err)
		}
	}
	_ = os.Chmod(f.path, 0o600)

	link := &tokenFile{path: filepath.Join(filepath.Dir(f.path), "link.json"), issuer: f.issuer, clientID: f.clientID}
	if err := os.Symlink(f.path, link.path); err != nil {
		t.Fatal(err)
	}
	if _, err := link.read(); !errors.Is(err, ErrInsecureCacheFile) {
		t.Errorf("symlink: %v; want ErrInsecureCacheFile", err)
	}

	shared := &tokenFile{path: filepath.Join(t.TempDir(), "open", "tokens.json"), issuer: f.issuer, clientID: f.clientID}
	_ = os.MkdirAll(filepath.Dir(shared.path), 0o777)
	_ = os.Chmod(filepath.Dir(shared.path), 0o777)
	if _, err := shared.update(func(*cacheState) error { return nil }); !errors.Is(err, ErrInsecureCacheFile) {
		t.Errorf("world-writable directory: %v; want ErrInsecureCacheFile", err)
	}

	foreign := &tokenFile{path: f.path, issuer: "https://other-idp", clientID: "app"}
	if st, err := foreign.read(); err != nil || st.Session != nil {
		t.Errorf("another issuer's file read as %+v, %v; want empty", st, err)
	}
	if err := os.WriteFile(f.path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if st, err := f.read(); err != nil || st.Session != nil {
		t.Errorf("corrupt file read as %+v, %v; want empty", st, err)
	}

	// Fifty writers, each with its own handle, each adding one token.
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			h := &tokenFile{path: f.path, issuer: f.issuer, clientID: f.clientID}
			if _, err := h.update(func(st *cacheState) error {
				st.Tokens = append(st.Tokens, storedToken{Resource: fmt.Sprint(i)})
				return nil
			}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if st, err := f.read(); err != nil || len(st.Tokens) != 50 {
		t.Errorf("after 50 concurrent updates: %d tokens, %v", len(st.Tokens), err)
	}
	entries, _ := os.ReadDir(filepath.Dir(f.path))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// TestFlightGroup: concurrent callers share one call; a caller that gives
// up does not cancel the call for the others; when all give up the call
// is cancelled and a later caller starts afresh.
func TestFlightGroup(t *testing.T) {
	t.Parallel()
	var g flightGroup
	var calls atomic.Int32
	gate := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]any, 20)
	for i := range results {
		wg.Go(func() {
			v, err := g.do(t.Context(), "k", func(context.Context) (any, error) {
				calls.Add(1)
				<-gate
				return "v", nil
			})
			if err != nil {
				t.Error(err)
			}
			results[i] = v
		})
	}
	// Let every caller join before the call returns.
	for {
		g.mu.Lock()
		f := g.calls["k"]
		n := 0
		if f != nil {
			n = f.waiters
		}
		g.mu.Unlock()
		if n == 20 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	if calls.Load() != 1 {
		t.Errorf("calls = %d, want 1", calls.Load())
	}
	for _, r := range results {
		if r != "v" {
			t.Fatalf("result %v", r)
		}
	}

	// One caller leaves, the other stays: the call is not cancelled.
	started := make(chan struct{})
	release := make(chan struct{})
	leaver, cancel := context.WithCancel(t.Context())
	var sawCancel atomic.Bool
	done := make(chan any, 1)
	go func() {
		v, _ := g.do(t.Context(), "k2", func(ctx context.Context) (any, error) {
			close(started)
			select {
			case <-release:
				return "done", nil
			case <-ctx.Done():
				sawCancel.Store(true)
				return nil, ctx.Err()
			}
		})
		done <- v
	}()
	<-started
	leftErr := make(chan error, 1)
	go func() {
		_, err := g.do(leaver, "k2", nil)
		leftErr <- err
	}()
	for {
		g.mu.Lock()
		n := g.calls["k2"].waiters
		g.mu.Unlock()
		if n == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-leftErr; !errors.Is(err, context.Canceled) {
		t.Errorf("leaver: %v", err)
	}
	close(release)
	if v := <-done; v != "done" || sawCancel.Load() {
		t.Errorf("stayer got %v (call cancelled: %v)", v, sawCancel.Load())
	}

	// Everyone leaves: the call's context ends.
	ctx, cancelAll := context.WithCancel(t.Context())
	cancelled := make(chan struct{})
	go func() {
		_, _ = g.do(ctx, "k3", func(fctx context.Context) (any, error) {
			<-fctx.Done()
			close(cancelled)
			return nil, fctx.Err()
		})
	}()
	for {
		g.mu.Lock()
		f := g.calls["k3"]
		g.mu.Unlock()
		if f != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancelAll()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the call was not cancelled when its only caller left")
	}
	v, err := g.do(t.Context(), "k3", func(context.Context) (any, error) { return "fresh", nil })
	if err != nil || v != "fresh" {
		t.Errorf("a later caller got %v, %v; want a fresh call", v, err)
	}
}

// TestPeekAndResource: the helpers that read an IdP answer before use.
func TestPeekAndResource(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw string
		n   int
		ok  bool
	}{
		{`"https://a/mcp"`, 1, true},
		{`["https://a/mcp"]`, 1, true},
		{`["https://a/mcp","https://b/mcp"]`, 2, true},
		{`[]`, 0, false},
		{`""`, 0, false},
		{`["x","x"]`, 0, false},
		{`[""]`, 0, false},
		{`7`, 0, false},
		{`{"a":1}`, 0, false},
	} {
		set, has, err := resourceSet(json.RawMessage(tc.raw))
		if (err == nil) != tc.ok || (tc.ok && (!has || len(set) != tc.n)) {
			t.Errorf("resourceSet(%s) = %v, %v, %v", tc.raw, set, has, err)
		}
	}
	if _, has, err := resourceSet(nil); has || err != nil {
		t.Error("absent resource")
	}
	for _, bad := range []string{"a.b", "a.b.c.d", "!!.e30.x", "e30.!!.x", "W10.e30.x"} {
		if _, _, err := peekJWT(bad); err == nil {
			t.Errorf("peekJWT(%q) accepted", bad)
		}
	}
	if !mediaTypeIs("application/OAUTH-ID-JAG+JWT", "oauth-id-jag+jwt") || mediaTypeIs("JWT", "oauth-id-jag+jwt") {
		t.Error("mediaTypeIs")
	}
}
