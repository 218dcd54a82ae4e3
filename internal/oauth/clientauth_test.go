package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
)

const (
	testRealm    = "https://as.example"
	testTokenURL = "https://as.example/token"
	// Secrets of the test clients, as GenerateSecret would make them.
	basicSecret = "basic-secret-0123456789abcdefghijklmnopqrstuv"
	postSecret  = "post-secret-0123456789abcdefghijklmnopqrstuvw"
	// An id and secret that need form-urlencoding inside Basic credentials.
	weirdID     = "weird id:+%é"
	weirdSecret = "p@ss:w%rd+ /=é"
)

// clock is a settable time source shared by an env's authenticators.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// authEnv is a real SQLite store with registered clients.
type authEnv struct {
	db     *sqlstore.DB
	clock  *clock
	signer *jose.LocalSigner // registered for jwt-app
	other  *jose.LocalSigner // registered for nobody
}

func newSigner(t testing.TB) *jose.LocalSigner {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jose.NewLocalSigner(k, jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func openStore(t testing.TB) *sqlstore.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "xaa.db"), nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

func newAuthEnv(t testing.TB) *authEnv {
	t.Helper()
	env := &authEnv{
		db:     openStore(t),
		clock:  &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)},
		signer: newSigner(t),
		other:  newSigner(t),
	}
	jwks, err := json.Marshal(jose.PublicJWKS(env.signer.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	created := env.clock.Now()
	for _, c := range []store.Client{
		{Realm: testRealm, ID: "basic-app", AuthMethod: AuthMethodSecretBasic, SecretDigest: HashSecret(basicSecret)},
		{Realm: testRealm, ID: "post-app", AuthMethod: AuthMethodSecretPost, SecretDigest: HashSecret(postSecret)},
		{Realm: testRealm, ID: "jwt-app", AuthMethod: AuthMethodPrivateKeyJWT, JWKS: jwks},
		{Realm: testRealm, ID: "jwt-nokeys", AuthMethod: AuthMethodPrivateKeyJWT},
		{Realm: testRealm, ID: "jwt-emptykeys", AuthMethod: AuthMethodPrivateKeyJWT, JWKS: []byte(`{"keys":[]}`)},
		{Realm: testRealm, ID: "disabled-app", AuthMethod: AuthMethodSecretBasic, SecretDigest: HashSecret(basicSecret), Disabled: true},
		{Realm: testRealm, ID: "disabled-jwt", AuthMethod: AuthMethodPrivateKeyJWT, JWKS: jwks, Disabled: true},
		{Realm: testRealm, ID: weirdID, AuthMethod: AuthMethodSecretBasic, SecretDigest: HashSecret(weirdSecret)},
		// Same id and secret in another realm: must not authenticate here.
		{Realm: "idp", ID: "idp-app", AuthMethod: AuthMethodSecretBasic, SecretDigest: HashSecret(basicSecret)},
	} {
		c.Name, c.CreatedAt = c.ID, created
		if err := env.db.CreateClient(context.Background(), c); err != nil {
			t.Fatalf("create client %s: %v", c.ID, err)
		}
	}
	return env
}

// authenticator returns a fresh Authenticator (fresh failure counters) on
// the env's store and clock.
func (env *authEnv) authenticator(t testing.TB, fl *FailureLimit) *Authenticator {
	t.Helper()
	a, err := NewAuthenticator(AuthenticatorOptions{
		Realm:        testRealm,
		Clients:      env.db,
		Replay:       env.db,
		Audiences:    []string{testRealm, testTokenURL},
		Now:          env.clock.Now,
		FailureLimit: fl,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// assertion signs a client assertion for jwt-app; edit changes the claims
// (a nil value deletes the claim).
func (env *authEnv) assertion(t testing.TB, signer *jose.LocalSigner, typ string, edit map[string]any) string {
	t.Helper()
	now := env.clock.Now()
	claims := map[string]any{
		"iss": "jwt-app",
		"sub": "jwt-app",
		"aud": testRealm,
		"iat": now.Unix(),
		"exp": now.Add(time.Minute).Unix(),
		"jti": rand.Text(),
	}
	for k, v := range edit {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	tok, err := signer.Sign(context.Background(), typ, claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

func basicRaw(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }

// request builds a token request and parses its form, as a handler would.
func request(t testing.TB, form url.Values, authorization ...string) (*http.Request, Form) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", formCT)
	for _, a := range authorization {
		r.Header.Add("Authorization", a)
	}
	f, err := ParseTokenForm(r, 0)
	if err != nil {
		t.Fatalf("ParseTokenForm: %v", err)
	}
	return r, f
}

func vals(kv ...string) url.Values {
	v := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "code": {""}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func TestAuthenticateSucceeds(t *testing.T) {
	t.Parallel()
	env := newAuthEnv(t)
	jwt := func(edit map[string]any) string { return env.assertion(t, env.signer, "", edit) }
	tests := []struct {
		name   string
		form   url.Values
		authz  []string
		client string
		method string
	}{
		{name: "client_secret_basic", authz: []string{basic("basic-app", basicSecret)}, client: "basic-app", method: AuthMethodSecretBasic},
		{name: "basic with lower-case scheme", authz: []string{"basic " + strings.TrimPrefix(basic("basic-app", basicSecret), "Basic ")}, client: "basic-app", method: AuthMethodSecretBasic},
		{name: "basic with the same client_id in the form", form: vals("client_id", "basic-app"), authz: []string{basic("basic-app", basicSecret)}, client: "basic-app", method: AuthMethodSecretBasic},
		{name: "basic with percent-encoded id and secret", authz: []string{basic(weirdID, weirdSecret)}, client: weirdID, method: AuthMethodSecretBasic},
		{name: "client_secret_post", form: vals("client_id", "post-app", "client_secret", postSecret), client: "post-app", method: AuthMethodSecretPost},
		// The secret methods are one class (go-sdk posts, the TypeScript SDK uses Basic).
		{name: "basic-registered client using post", form: vals("client_id", "basic-app", "client_secret", basicSecret), client: "basic-app", method: AuthMethodSecretPost},
		{name: "post-registered client using basic", authz: []string{basic("post-app", postSecret)}, client: "post-app", method: AuthMethodSecretBasic},
		{name: "private_key_jwt", form: vals("client_assertion_type", ClientAssertionTypeJWTBearer, "client_assertion", jwt(nil)), client: "jwt-app", method: AuthMethodPrivateKeyJWT},
		{name: "private_key_jwt with client_id", form: vals("client_id", "jwt-app", "client_assertion_type", ClientAssertionTypeJWTBearer, "client_assertion", jwt(nil)), client: "jwt-app", method: AuthMethodPrivateKeyJWT},
		{name: "private_key_jwt aud = token endpoint", form: vals("client_assertion_type", ClientAssertionTypeJWTBearer, "client_assertion", jwt(map[string]any{"aud": testTokenURL})), client: "jwt-app", method: AuthMethodPrivateKeyJWT},
		{name: "private_key_jwt aud array", form: vals("client_assertion_type", ClientAssertionTypeJWTBearer, "client_assertion", jwt(map[string]any{"aud": []string{"https://other.example", testRealm}})), client: "jwt-app", method: AuthMethodPrivateKeyJWT},
		{name: "private_key_jwt typ client-authentication+jwt", form: vals("client_assertion_type", ClientAssertionTypeJWTBearer, "client_assertion", env.assertion(t, env.signer, "client-authentication+jwt", nil)), client: "jwt-app", method: AuthMethodPrivateKeyJWT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			form := tt.form
			if form == nil {
				form = vals()
			}
			r, f := request(t, form, tt.authz...)
			got, err := env.authenticator(t, nil).Authenticate(t.Context(), r, f)
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if got.Client.ID != tt.client || got.Client.Realm != testRealm || got.Method != tt.method ||
				got.UsedAuthorizationHeader != (tt.method == AuthMethodSecretBasic) {
				t.Errorf("got client %q realm %q method %q header %v; want %q %q %q",
					got.Client.ID, got.Client.Realm, got.Method, got.UsedAuthorizationHeader, tt.client, testRealm, tt.method)
			}
		})
	}
}

func TestAuthenticateRejects(t *testing.T) {
	t.Parallel()
	env := newAuthEnv(t)
	jwt := func(edit map[string]any) string { return env.assertion(t, env.signer, "", edit) }
	jwtForm := func(assertion string, kv ...string) url.Values {
		return vals(append([]string{"client_assertion_type", ClientAssertionTypeJWTBearer, "client_assertion", assertion}, kv...)...)
	}
	now := env.clock.Now()

	tests := []struct {
		name      string
		form      url.Values
		authz     []string
		code      string
		cause     error // matched with errors.Is when set
		challenge bool  // WWW-Authenticate expected
	}{
		// Which method.
		{name: "no credentials", code: CodeInvalidClient},
		{name: "client_id alone is no credential", form: vals("client_id", "post-app"), code: CodeInvalidClient},
		{name: "Basic header and client_secret", form: vals("client_id", "basic-app", "client_secret", basicSecret), authz: []string{basic("basic-app", basicSecret)}, code: CodeInvalidRequest},
		{name: "client_secret and client_assertion", form: jwtForm(jwt(nil), "client_id", "jwt-app", "client_secret", "x"), code: CodeInvalidRequest},
		{name: "Basic header and client_assertion", form: jwtForm(jwt(nil)), authz: []string{basic("basic-app", basicSecret)}, code: CodeInvalidRequest},
		{name: "two Authorization headers", authz: []string{basic("basic-app", basicSecret), basic("basic-app", basicSecret)}, code: CodeInvalidRequest},
		{name: "client_secret without client_id", form: vals("client_secret", postSecret), code: CodeInvalidRequest},

		// Secrets.
		{name: "unknown client (basic)", authz: []string{basic("nobody", basicSecret)}, code: CodeInvalidClient, cause: ErrUnknownClient, challenge: true},
		{name: "wrong secret (basic)", authz: []string{basic("basic-app", "wrong")}, code: CodeInvalidClient, cause: ErrWrongSecret, challenge: true},
		{name: "unknown client (post)", form: vals("client_id", "nobody", "client_secret", postSecret), code: CodeInvalidClient, cause: ErrUnknownClient},
		{name: "wrong secret (post)", form: vals("client_id", "post-app", "client_secret", "wrong"), code: CodeInvalidClient, cause: ErrWrongSecret},
		{name: "secret of another client", form: vals("client_id", "post-app", "client_secret", basicSecret), code: CodeInvalidClient, cause: ErrWrongSecret},
		{name: "client of another realm", authz: []string{basic("idp-app", basicSecret)}, code: CodeInvalidClient, cause: ErrUnknownClient, challenge: true},
		{name: "case variant of a client_id", authz: []string{basic("BASIC-APP", basicSecret)}, code: CodeInvalidClient, cause: ErrUnknownClient, challenge: true},
		{name: "disabled client, right secret", authz: []string{basic("disabled-app", basicSecret)}, code: CodeInvalidClient, cause: ErrClientDisabled, challenge: true},
		{name: "jwt client using a secret", form: vals("client_id", "jwt-app", "client_secret", "anything"), code: CodeInvalidClient, cause: ErrAuthMethodMismatch},
		{name: "jwt client using basic", authz: []string{basic("jwt-app", "anything")}, code: CodeInvalidClient, cause: ErrAuthMethodMismatch, challenge: true},
		{name: "disabled client using the other secret method", form: vals("client_id", "disabled-app", "client_secret", basicSecret), code: CodeInvalidClient, cause: ErrClientDisabled},
		{name: "wrong secret using the other secret method", form: vals("client_id", "basic-app", "client_secret", postSecret), code: CodeInvalidClient, cause: ErrWrongSecret},
		{name: "client_id in the form differs from Basic", form: vals("client_id", "post-app"), authz: []string{basic("basic-app", basicSecret)}, code: CodeInvalidClient, challenge: true},

		// Malformed Basic.
		{name: "Bearer scheme", authz: []string{"Bearer abc"}, code: CodeInvalidClient, challenge: true},
		{name: "scheme only", authz: []string{"Basic"}, code: CodeInvalidClient, challenge: true},
		{name: "scheme and spaces", authz: []string{"Basic   "}, code: CodeInvalidClient, challenge: true},
		{name: "not base64", authz: []string{"Basic ***"}, code: CodeInvalidClient, challenge: true},
		{name: "unpadded base64", authz: []string{"Basic " + base64.RawStdEncoding.EncodeToString([]byte("basic-app:"+basicSecret+"x"))}, code: CodeInvalidClient, challenge: true},
		{name: "no colon", authz: []string{basicRaw("basic-app")}, code: CodeInvalidClient, challenge: true},
		{name: "empty id", authz: []string{basicRaw(":" + basicSecret)}, code: CodeInvalidClient, challenge: true},
		{name: "empty secret", authz: []string{basicRaw("basic-app:")}, code: CodeInvalidClient, challenge: true},
		{name: "bad percent-encoding", authz: []string{basicRaw("basic%zzapp:" + basicSecret)}, code: CodeInvalidClient, challenge: true},
		{name: "control character", authz: []string{basicRaw("basic%0Aapp:" + basicSecret)}, code: CodeInvalidClient, challenge: true},
		{name: "raw (not form-encoded) credentials", authz: []string{basicRaw(weirdID + ":" + weirdSecret)}, code: CodeInvalidClient, challenge: true},

		// private_key_jwt.
		{name: "assertion without type", form: vals("client_assertion", jwt(nil)), code: CodeInvalidRequest},
		{name: "type without assertion", form: vals("client_assertion_type", ClientAssertionTypeJWTBearer), code: CodeInvalidRequest},
		{name: "wrong assertion type", form: vals("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer", "client_assertion", jwt(nil)), code: CodeInvalidClient},
		{name: "malformed assertion", form: jwtForm("not-a-jwt"), code: CodeInvalidClient, cause: jose.ErrMalformed},
		{name: "wrong aud", form: jwtForm(jwt(map[string]any{"aud": "https://other.example"})), code: CodeInvalidClient, cause: jose.ErrAudience},
		{name: "expired", form: jwtForm(jwt(map[string]any{"iat": now.Add(-3 * time.Minute).Unix(), "exp": now.Add(-time.Minute).Unix()})), code: CodeInvalidClient, cause: jose.ErrExpired},
		{name: "issued in the future", form: jwtForm(jwt(map[string]any{"iat": now.Add(2 * time.Minute).Unix(), "exp": now.Add(3 * time.Minute).Unix()})), code: CodeInvalidClient, cause: jose.ErrIssuedInFuture},
		{name: "lifetime too long", form: jwtForm(jwt(map[string]any{"exp": now.Add(time.Hour).Unix()})), code: CodeInvalidClient, cause: jose.ErrLifetimeTooLong},
		{name: "no jti", form: jwtForm(jwt(map[string]any{"jti": nil})), code: CodeInvalidClient, cause: jose.ErrMissingClaim},
		{name: "iss != sub", form: jwtForm(jwt(map[string]any{"sub": "basic-app"})), code: CodeInvalidClient, cause: ErrBadAssertion},
		{name: "client_id in the form differs from iss", form: jwtForm(jwt(nil), "client_id", "basic-app"), code: CodeInvalidClient},
		{name: "unknown key", form: jwtForm(env.assertion(t, env.other, "", nil)), code: CodeInvalidClient, cause: jose.ErrUnknownKey},
		{name: "access token typ", form: jwtForm(env.assertion(t, env.signer, "at+jwt", nil)), code: CodeInvalidClient, cause: jose.ErrType},
		{name: "unknown issuer", form: jwtForm(jwt(map[string]any{"iss": "nobody", "sub": "nobody"})), code: CodeInvalidClient, cause: ErrUnknownClient},
		{name: "iss with a control character", form: jwtForm(jwt(map[string]any{"iss": "jwt-app\x00", "sub": "jwt-app\x00"})), code: CodeInvalidClient, cause: ErrUnknownClient},
		{name: "secret client presenting an assertion", form: jwtForm(jwt(map[string]any{"iss": "post-app", "sub": "post-app"})), code: CodeInvalidClient, cause: ErrAuthMethodMismatch},
		{name: "basic client presenting an assertion", form: jwtForm(jwt(map[string]any{"iss": "basic-app", "sub": "basic-app"})), code: CodeInvalidClient, cause: ErrAuthMethodMismatch},
		{name: "disabled jwt client", form: jwtForm(jwt(map[string]any{"iss": "disabled-jwt", "sub": "disabled-jwt"})), code: CodeInvalidClient, cause: ErrClientDisabled},
		{name: "jwt client without keys", form: jwtForm(jwt(map[string]any{"iss": "jwt-nokeys", "sub": "jwt-nokeys"})), code: CodeInvalidClient, cause: ErrBadAssertion},
		{name: "jwt client with an empty JWK Set", form: jwtForm(jwt(map[string]any{"iss": "jwt-emptykeys", "sub": "jwt-emptykeys"})), code: CodeInvalidClient, cause: ErrBadAssertion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			form := tt.form
			if form == nil {
				form = vals()
			}
			r, f := request(t, form, tt.authz...)
			_, err := env.authenticator(t, nil).Authenticate(t.Context(), r, f)
			e, ok := errors.AsType[*Error](err)
			if !ok {
				t.Fatalf("Authenticate error = %v, want an *Error", err)
			}
			if e.Code != tt.code {
				t.Errorf("code = %q, want %q (%v)", e.Code, tt.code, err)
			}
			wantStatus := map[string]int{CodeInvalidClient: 401, CodeInvalidRequest: 400}[tt.code]
			if e.HTTPStatus() != wantStatus {
				t.Errorf("status = %d, want %d", e.HTTPStatus(), wantStatus)
			}
			if tt.cause != nil && !errors.Is(err, tt.cause) {
				t.Errorf("cause = %v, want %v", err, tt.cause)
			}
			if got := e.Header.Get("WWW-Authenticate"); (got != "") != tt.challenge {
				t.Errorf("WWW-Authenticate = %q, want present=%v", got, tt.challenge)
			} else if tt.challenge && got != `Basic realm="https://as.example", charset="UTF-8"` {
				t.Errorf("WWW-Authenticate = %q", got)
			}
			for _, secret := range []string{basicSecret, postSecret} {
				if strings.Contains(e.Description, secret) {
					t.Errorf("description leaks a secret: %q", e.Description)
				}
			}
		})
	}
}

// TestCredentialFailuresLookAlike: an unknown client, a wrong secret, a
// disabled client and a method mismatch (a private_key_jwt client presenting
// a secret) produce byte-identical responses (threat model item 21).
func TestCredentialFailuresLookAlike(t *testing.T) {
	t.Parallel()
	env := newAuthEnv(t)
	type variant struct {
		name  string
		form  url.Values
		authz []string
	}
	groups := map[string][]variant{
		"basic": {
			{name: "unknown client", authz: []string{basic("nobody", basicSecret)}},
			{name: "wrong secret", authz: []string{basic("basic-app", "wrong")}},
			{name: "disabled", authz: []string{basic("disabled-app", basicSecret)}},
			{name: "method mismatch", authz: []string{basic("jwt-app", basicSecret)}},
		},
		"post": {
			{name: "unknown client", form: vals("client_id", "nobody", "client_secret", "x")},
			{name: "wrong secret", form: vals("client_id", "post-app", "client_secret", "wrong")},
			{name: "method mismatch", form: vals("client_id", "jwt-app", "client_secret", postSecret)},
			{name: "disabled", form: vals("client_id", "disabled-app", "client_secret", basicSecret)},
		},
	}
	for group, variants := range groups {
		var first written
		for i, v := range variants {
			r, f := request(t, v.form, v.authz...)
			_, err := env.authenticator(t, nil).Authenticate(t.Context(), r, f)
			got, _ := render(t, r, err)
			got.Header.Del("Content-Length")
			if i == 0 {
				first = got
				if got.Status != http.StatusUnauthorized {
					t.Fatalf("%s/%s: status %d", group, v.name, got.Status)
				}
				continue
			}
			if diff := cmp.Diff(first, got); diff != "" {
				t.Errorf("%s: %q differs from %q (-first +this):\n%s", group, v.name, variants[0].name, diff)
			}
		}
	}
}

func TestClientAssertionSingleUse(t *testing.T) {
	t.Parallel()
	env := newAuthEnv(t)
	a := env.authenticator(t, nil)
	form := vals("client_assertion_type", ClientAssertionTypeJWTBearer, "client_assertion", env.assertion(t, env.signer, "", nil))
	r, f := request(t, form)
	if _, err := a.Authenticate(t.Context(), r, f); err != nil {
		t.Fatalf("first use: %v", err)
	}
	r, f = request(t, form)
	_, err := a.Authenticate(t.Context(), r, f)
	if e, ok := errors.AsType[*Error](err); !ok || e.Code != CodeInvalidClient || !errors.Is(err, store.ErrReplay) {
		t.Fatalf("second use: %v, want invalid_client caused by store.ErrReplay", err)
	}
	// Another authenticator on the same store (another instance) refuses it too.
	r, f = request(t, form)
	if _, err := env.authenticator(t, nil).Authenticate(t.Context(), r, f); !errors.Is(err, store.ErrReplay) {
		t.Fatalf("use at another instance: %v, want replay", err)
	}
}

// replaySpy records the entries passed to a real store.
type replaySpy struct {
	store.Replay
	mu      sync.Mutex
	entries []store.ReplayEntry
}

func (r *replaySpy) RecordOnce(ctx context.Context, e store.ReplayEntry) error {
	r.mu.Lock()
	r.entries = append(r.entries, e)
	r.mu.Unlock()
	return r.Replay.RecordOnce(ctx, e)
}

// TestClientAssertionReplayScopedByRealm: two realms sharing one database
// (the IdP and an authorization server in one process) may both have a
// client "jwt-app"; the same jti used once in each is not a replay, a second
// use within a realm still is.
func TestClientAssertionReplayScopedByRealm(t *testing.T) {
	t.Parallel()
	env := newAuthEnv(t)
	const idpAudience = "https://idp.example"
	jwks, err := json.Marshal(jose.PublicJWKS(env.signer.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	if err := env.db.CreateClient(t.Context(), store.Client{
		Realm: "idp", ID: "jwt-app", Name: "jwt-app", AuthMethod: AuthMethodPrivateKeyJWT, JWKS: jwks, CreatedAt: env.clock.Now(),
	}); err != nil {
		t.Fatal(err)
	}
	spy := &replaySpy{Replay: env.db}
	idp, err := NewAuthenticator(AuthenticatorOptions{
		Realm: "idp", Clients: env.db, Replay: spy, Audiences: []string{idpAudience}, Now: env.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	as := env.authenticator(t, nil)

	const jti = "shared-jti"
	try := func(a *Authenticator, aud string) error {
		form := vals("client_assertion_type", ClientAssertionTypeJWTBearer,
			"client_assertion", env.assertion(t, env.signer, "", map[string]any{"jti": jti, "aud": aud}))
		r, f := request(t, form)
		_, err := a.Authenticate(t.Context(), r, f)
		return err
	}
	if err := try(as, testRealm); err != nil {
		t.Fatalf("first use at the AS: %v", err)
	}
	if err := try(idp, idpAudience); err != nil {
		t.Fatalf("first use at the IdP, same client_id and jti: %v", err)
	}
	for name, a := range map[string]*Authenticator{"AS": as, "IdP": idp} {
		aud := map[string]string{"AS": testRealm, "IdP": idpAudience}[name]
		if err := try(a, aud); !errors.Is(err, store.ErrReplay) {
			t.Errorf("second use at the %s = %v, want replay", name, err)
		}
	}
	if len(spy.entries) == 0 || spy.entries[0].Issuer != "idp jwt-app" ||
		spy.entries[0].Namespace != store.NamespaceClientAssertion || spy.entries[0].JTI != jti {
		t.Errorf("replay entries = %+v, want issuer %q", spy.entries, "idp jwt-app")
	}
}

// TestFailedAssertionDoesNotBurnJTI: the jti is recorded only after the
// signature and every claim check passed, so an attacker who knows a jti
// cannot pre-empt the legitimate assertion (Keycloak #49215).
func TestFailedAssertionDoesNotBurnJTI(t *testing.T) {
	t.Parallel()
	env := newAuthEnv(t)
	a := env.authenticator(t, nil)
	now := env.clock.Now()

	good := func(jti string) string { return env.assertion(t, env.signer, "", map[string]any{"jti": jti}) }
	// Same key, same kid, payload with jti X, but the signature of another
	// token: a bad signature.
	forged := func(jti string) string {
		g := strings.Split(good(jti), ".")
		o := strings.Split(good("other"), ".")
		return g[0] + "." + g[1] + "." + o[2]
	}
	tests := []struct {
		name  string
		bad   func(jti string) string
		cause error
	}{
		{name: "bad signature", bad: forged, cause: jose.ErrSignature},
		{name: "wrong aud", bad: func(jti string) string {
			return env.assertion(t, env.signer, "", map[string]any{"jti": jti, "aud": "https://other.example"})
		}, cause: jose.ErrAudience},
		{name: "expired", bad: func(jti string) string {
			return env.assertion(t, env.signer, "", map[string]any{"jti": jti, "iat": now.Add(-5 * time.Minute).Unix(), "exp": now.Add(-2 * time.Minute).Unix()})
		}, cause: jose.ErrExpired},
		{name: "sub mismatch", bad: func(jti string) string {
			return env.assertion(t, env.signer, "", map[string]any{"jti": jti, "sub": "someone"})
		}, cause: ErrBadAssertion},
		{name: "unknown key", bad: func(jti string) string {
			return env.assertion(t, env.other, "", map[string]any{"jti": jti})
		}, cause: jose.ErrUnknownKey},
	}
	for _, tt := range tests {
		jti := "jti-" + strings.ReplaceAll(tt.name, " ", "-")
		r, f := request(t, vals("client_assertion_type", ClientAssertionTypeJWTBearer, "client_assertion", tt.bad(jti)))
		if _, err := a.Authenticate(t.Context(), r, f); !errors.Is(err, tt.cause) {
			t.Fatalf("%s: bad assertion error = %v, want %v", tt.name, err, tt.cause)
		}
		r, f = request(t, vals("client_assertion_type", ClientAssertionTypeJWTBearer, "client_assertion", good(jti)))
		if _, err := a.Authenticate(t.Context(), r, f); err != nil {
			t.Fatalf("%s: good assertion with the same jti: %v", tt.name, err)
		}
		r, f = request(t, vals("client_assertion_type", ClientAssertionTypeJWTBearer, "client_assertion", good(jti)))
		if _, err := a.Authenticate(t.Context(), r, f); !errors.Is(err, store.ErrReplay) {
			t.Fatalf("%s: third use = %v, want replay", tt.name, err)
		}
	}
}

// faultyStore fails every call with ErrUnavailable (a database that does
// not answer), which a real SQLite file cannot be made to do on demand.
type faultyStore struct{}

func (faultyStore) CreateClient(context.Context, store.Client) error { return store.ErrUnavailable }
func (faultyStore) GetClient(context.Context, string, string) (store.Client, error) {
	return store.Client{}, fmt.Errorf("sqlstore: get client: %w", store.ErrUnavailable)
}
func (faultyStore) RecordOnce(context.Context, store.ReplayEntry) error {
	return fmt.Errorf("sqlstore: record once: %w", store.ErrUnavailable)
}
func (faultyStore) PruneReplay(context.Context, time.Time) (int64, error) {
	return 0, store.ErrUnavailable
}

// TestStoreUnavailable: a database outage is a 503, never invalid_client,
// and is not charged as a failed authentication.
func TestStoreUnavailable(t *testing.T) {
	t.Parallel()
	env := newAuthEnv(t)
	build := func(clients store.Clients, replay store.Replay) *Authenticator {
		a, err := NewAuthenticator(AuthenticatorOptions{
			Realm: testRealm, Clients: clients, Replay: replay,
			Audiences: []string{testRealm}, Now: env.clock.Now,
			FailureLimit: &FailureLimit{Failures: 2},
		})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	tests := []struct {
		name string
		a    *Authenticator
		form func() url.Values
		auth []string
	}{
		{name: "client lookup (basic)", a: build(faultyStore{}, env.db), auth: []string{basic("basic-app", basicSecret)}},
		{name: "client lookup (post)", a: build(faultyStore{}, env.db), form: func() url.Values {
			return vals("client_id", "post-app", "client_secret", postSecret)
		}},
		{name: "client lookup (jwt)", a: build(faultyStore{}, env.db), form: func() url.Values {
			return vals("client_assertion_type", ClientAssertionTypeJWTBearer, "client_assertion", env.assertion(t, env.signer, "", nil))
		}},
		{name: "jti record", a: build(env.db, faultyStore{}), form: func() url.Values {
			return vals("client_assertion_type", ClientAssertionTypeJWTBearer, "client_assertion", env.assertion(t, env.signer, "", nil))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 5 { // more than Failures: outages must not lock anyone out
				form := vals()
				if tt.form != nil {
					form = tt.form()
				}
				r, f := request(t, form, tt.auth...)
				_, err := tt.a.Authenticate(t.Context(), r, f)
				if !errors.Is(err, store.ErrUnavailable) {
					t.Fatalf("error = %v, want ErrUnavailable", err)
				}
				if got, _ := render(t, r, err); got.Status != http.StatusServiceUnavailable || got.Body["error"] != CodeTemporarilyUnavailable {
					t.Fatalf("rendered %d %v, want 503 temporarily_unavailable", got.Status, got.Body)
				}
			}
		})
	}
}

func TestRateLimitAfterFailures(t *testing.T) {
	t.Parallel()
	env := newAuthEnv(t)
	a := env.authenticator(t, nil)
	try := func(ip string, form url.Values, authz ...string) error {
		r, f := request(t, form, authz...)
		r.RemoteAddr = ip + ":40000"
		_, err := a.Authenticate(t.Context(), r, f)
		return err
	}
	good := func(ip string) error { return try(ip, vals(), basic("basic-app", basicSecret)) }
	isLocked := func(err error) bool {
		e, ok := errors.AsType[*Error](err)
		return ok && e.HTTPStatus() == http.StatusTooManyRequests && errors.Is(err, ErrTooManyFailures)
	}

	// 20 wrong secrets for basic-app, each from a different IP: the
	// client_id key locks, no IP key does.
	for i := range 20 {
		if err := try(fmt.Sprintf("198.51.100.%d", i), vals(), basic("basic-app", "wrong")); isLocked(err) || err == nil {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	err := good("203.0.113.9")
	if !isLocked(err) {
		t.Fatalf("21st attempt with the right secret = %v, want 429", err)
	}
	got, _ := render(t, httptest.NewRequest(http.MethodPost, "/token", nil), err)
	if got.Status != 429 || got.Header.Get("Retry-After") != "60" || got.Body["error"] != CodeInvalidClient {
		t.Errorf("rendered %d Retry-After %q %v", got.Status, got.Header.Get("Retry-After"), got.Body)
	}
	if err := try("203.0.113.9", vals("client_id", "post-app", "client_secret", postSecret)); err != nil {
		t.Errorf("another client is unaffected: %v", err)
	}

	// Unknown client_ids are keyed too, and one IP spraying ids locks the IP.
	for i := range 20 {
		_ = try("192.0.2.7", vals("client_id", fmt.Sprintf("ghost-%d", i), "client_secret", "x"))
	}
	if err := try("192.0.2.7", vals("client_id", "post-app", "client_secret", postSecret)); !isLocked(err) {
		t.Errorf("IP after 20 failures = %v, want 429", err)
	}
	if err := try("192.0.2.8", vals("client_id", "post-app", "client_secret", postSecret)); err != nil {
		t.Errorf("neighbouring IP is unaffected: %v", err)
	}

	// invalid_request is not a guess and is not charged.
	for range 30 {
		_ = try("192.0.2.50", vals("client_secret", "x"))
	}
	if err := try("192.0.2.50", vals("client_id", "post-app", "client_secret", postSecret)); err != nil {
		t.Errorf("invalid_request was charged: %v", err)
	}

	// The lockout ends after the block.
	env.clock.Advance(61 * time.Second)
	if err := good("203.0.113.9"); err != nil {
		t.Errorf("after the block: %v", err)
	}
	if err := try("192.0.2.7", vals("client_id", "post-app", "client_secret", postSecret)); err != nil {
		t.Errorf("IP after the block: %v", err)
	}
}

func TestRateLimitIPv6Prefix(t *testing.T) {
	t.Parallel()
	env := newAuthEnv(t)
	a := env.authenticator(t, &FailureLimit{Failures: 3})
	try := func(addr string) error {
		r, f := request(t, vals("client_id", "nobody-"+addr, "client_secret", "x"))
		r.RemoteAddr = addr
		_, err := a.Authenticate(t.Context(), r, f)
		return err
	}
	for i := range 3 {
		_ = try(fmt.Sprintf("[2001:db8:1:2::%x]:443", i+1))
	}
	if err := try("[2001:db8:1:2:ffff::1]:443"); !errors.Is(err, ErrTooManyFailures) {
		t.Errorf("same /64 = %v, want locked", err)
	}
	if err := try("[2001:db8:1:3::1]:443"); errors.Is(err, ErrTooManyFailures) {
		t.Errorf("other /64 is locked: %v", err)
	}
}

func TestNewAuthenticatorValidates(t *testing.T) {
	t.Parallel()
	db := openStore(t)
	ok := AuthenticatorOptions{Realm: "idp", Clients: db, Replay: db, Audiences: []string{"https://idp.example"}}
	if _, err := NewAuthenticator(ok); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	for name, edit := range map[string]func(*AuthenticatorOptions){
		"no realm":                       func(o *AuthenticatorOptions) { o.Realm = "" },
		"no clients":                     func(o *AuthenticatorOptions) { o.Clients = nil },
		"no replay":                      func(o *AuthenticatorOptions) { o.Replay = nil },
		"no audiences":                   func(o *AuthenticatorOptions) { o.Audiences = nil },
		"empty audience":                 func(o *AuthenticatorOptions) { o.Audiences = []string{""} },
		"realm with a space":             func(o *AuthenticatorOptions) { o.Realm = "https://as.example x" },
		"realm with a control character": func(o *AuthenticatorOptions) { o.Realm = "idp\n" },
	} {
		o := ok
		edit(&o)
		if _, err := NewAuthenticator(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestGenerateSecret(t *testing.T) {
	t.Parallel()
	a, err := GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GenerateSecret()
	raw, err := base64.RawURLEncoding.DecodeString(a)
	if err != nil || len(raw) != 32 {
		t.Fatalf("secret %q: %d bytes, %v; want 32 bytes of base64url", a, len(raw), err)
	}
	if a == b {
		t.Fatal("two secrets are equal")
	}
	sum := sha256.Sum256([]byte(a))
	if !cmp.Equal(HashSecret(a), sum[:]) {
		t.Fatal("HashSecret is not SHA-256")
	}
	// A generated secret survives Basic encoding unchanged.
	id, secret, err := parseBasic(basic("app", a))
	if err != nil || id != "app" || secret != a {
		t.Fatalf("parseBasic round trip: %q %q %v", id, secret, err)
	}
}

func FuzzBasicAuth(f *testing.F) {
	for _, seed := range []string{
		basic("app", "secret"),
		basic(weirdID, weirdSecret),
		basicRaw("a:b:c"),
		basicRaw("a%3Ab:c%3Ad"),
		basicRaw(":"),
		basicRaw("a%zz:b"),
		"Basic",
		"Basic ",
		"basic    YTpi",
		"Bearer x",
		"Basic YTpi====",
		"Basic Y\nTpi",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		id, secret, err := parseBasic(header)
		if err != nil {
			if id != "" || secret != "" {
				t.Fatal("error with values")
			}
			if strings.Contains(err.Error(), header) && len(header) > 8 {
				t.Fatalf("error echoes the input: %v", err)
			}
			return
		}
		if id == "" || secret == "" || !cleanValue(id) || !cleanValue(secret) {
			t.Fatalf("accepted id %q secret %q", id, secret)
		}
		// Whatever is accepted round-trips through the RFC 6749 §2.3.1
		// encoding (when the re-encoding, which may escape raw UTF-8 the
		// input carried, still fits the size cap).
		again := basic(id, secret)
		if len(again) > len("Basic ")+maxBasicEncoded {
			return
		}
		id2, secret2, err := parseBasic(again)
		if err != nil || id2 != id || secret2 != secret {
			t.Fatalf("round trip of %q/%q = %q/%q, %v", id, secret, id2, secret2, err)
		}
	})
}

func BenchmarkAuthenticateSecretBasic(b *testing.B) {
	env := newAuthEnv(b)
	a := env.authenticator(b, nil)
	r, f := request(b, vals(), basic("basic-app", basicSecret))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(ctx, r, f); err != nil {
			b.Fatal(err)
		}
	}
}
