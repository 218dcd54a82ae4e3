package idp

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	zhttp "github.com/zitadel/oidc/v3/pkg/http"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/openxaa/xaa/internal/directory"
	"github.com/openxaa/xaa/internal/policy"
)

// zitadelRP is a second relying party nobody on the team wrote: zitadel/oidc
// v3's rp package, running its own HTTP handlers on its own loopback
// listener. AuthURLHandler stores state and the PKCE verifier in cookies and
// redirects to /authorize; CodeExchangeHandler checks state, redeems the
// code with the verifier and verifies the ID token (signature via JWKS,
// issuer, audience, azp, exp, iat, nonce).
type zitadelRP struct {
	rp     rp.RelyingParty
	base   string // the RP's own origin; its redirect URI is base+"/cb"
	issuer string // the IdP, for the browser's redirect policy

	mu     sync.Mutex
	tokens *zoidc.Tokens[*zoidc.IDTokenClaims]
}

type zitadelOptions struct {
	clientID, secret string
	nonce            string // sent on /authorize and required by the verifier
	pkce             bool   // false builds an RP that never sends code_challenge
	authParams       []rp.URLParamOpt
}

func newZitadelRP(t *testing.T, h *ssoHarness, o zitadelOptions) *zitadelRP {
	t.Helper()
	hs := httptest.NewUnstartedServer(nil)
	z := &zitadelRP{base: "http://" + hs.Listener.Addr().String(), issuer: h.issuer}
	// The redirect URI is http://127.0.0.1:<port>/cb; rp1 registers
	// http://127.0.0.1/cb, which matches under the RFC 8252 loopback port rule.
	redirect := z.base + "/cb"

	cookies := zhttp.NewCookieHandler(randomKey(t), randomKey(t), zhttp.WithUnsecure())
	opts := []rp.Option{
		rp.WithHTTPClient(&http.Client{Timeout: 10 * time.Second}),
		// The nonce a verification expects comes from the request being
		// handled: the callback's, or none for a refresh (OIDC Core §12.2:
		// a refreshed ID token SHOULD NOT carry the original nonce).
		rp.WithVerifierOpts(rp.WithNonce(func(ctx context.Context) string {
			n, _ := ctx.Value(nonceKey{}).(string)
			return n
		})),
	}
	if o.pkce {
		opts = append(opts, rp.WithPKCEFromDiscovery(cookies))
	} else {
		opts = append(opts, rp.WithCookieHandler(cookies))
	}
	relying, err := rp.NewRelyingPartyOIDC(t.Context(), h.issuer, o.clientID, o.secret, redirect,
		[]string{zoidc.ScopeOpenID, zoidc.ScopeProfile, zoidc.ScopeEmail, zoidc.ScopeOfflineAccess}, opts...)
	if err != nil {
		t.Fatalf("zitadel rp.NewRelyingPartyOIDC (discovery): %v", err)
	}
	if relying.IsPKCE() != o.pkce {
		t.Fatalf("zitadel IsPKCE() = %v, want %v (discovery must advertise S256)", relying.IsPKCE(), o.pkce)
	}
	z.rp = relying

	params := append([]rp.URLParamOpt{rp.WithURLParam("nonce", o.nonce)}, o.authParams...)
	state := "zst-" + randomToken()[:12]
	mux := http.NewServeMux()
	mux.Handle("GET /login", rp.AuthURLHandler(func() string { return state }, relying, params...))
	mux.Handle("GET /cb", withNonce(o.nonce, rp.CodeExchangeHandler(func(w http.ResponseWriter, _ *http.Request,
		tokens *zoidc.Tokens[*zoidc.IDTokenClaims], _ string, _ rp.RelyingParty) {
		z.mu.Lock()
		z.tokens = tokens
		z.mu.Unlock()
		_, _ = w.Write([]byte("logged in"))
	}, relying)))
	hs.Config.Handler = mux
	hs.Start()
	t.Cleanup(hs.Close)
	return z
}

// browser keeps cookies (the RP's and the IdP's share the host) and follows
// redirects only within the IdP's origin, so the test sees the redirect back.
func (z *zitadelRP) browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	idp, err := url.Parse(z.issuer)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host != idp.Host {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

// login runs the whole flow: the RP's /login, the IdP's login form, and the
// redirect back into the RP's /cb. It returns the redirect back and the
// RP's final page.
func (z *zitadelRP) login(t *testing.T, h *ssoHarness, user, otp string) (*url.URL, page) {
	t.Helper()
	b := z.browser(t)
	back := h.login(t, b, z.base+"/login", user, otp)
	if got := back.Scheme + "://" + back.Host + back.Path; got != z.base+"/cb" {
		t.Fatalf("IdP redirected to %v, want the RP's %s/cb", back, z.base)
	}
	return back, get(t, b, back.String())
}

func (z *zitadelRP) result() *zoidc.Tokens[*zoidc.IDTokenClaims] {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.tokens
}

// nonceKey carries, in a request's context, the nonce this RP sent.
type nonceKey struct{}

func withNonce(nonce string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), nonceKey{}, nonce)))
	})
}

func randomKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSSOZitadelRPPasswordLogin(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, nil)
	nonce := "zn-" + randomToken()[:12]
	z := newZitadelRP(t, h, zitadelOptions{clientID: rp1, secret: rp1Secret, nonce: nonce, pkce: true})

	back, p := z.login(t, h, "alice", "")
	if p.status != http.StatusOK {
		t.Fatalf("zitadel RP callback = %d: %s", p.status, p.body)
	}
	if got := back.Query().Get("iss"); got != h.issuer {
		t.Errorf("redirect back iss = %q, want %q (RFC 9207)", got, h.issuer)
	}
	tok := z.result()
	if tok == nil || tok.IDTokenClaims == nil {
		t.Fatal("zitadel RP accepted the callback but holds no verified ID token")
	}
	c := tok.IDTokenClaims
	type idView struct {
		Issuer, Subject, Nonce, AZP, ACR string
		Audience, AMR                    []string
	}
	want := idView{Issuer: h.issuer, Subject: h.users["alice"], Nonce: nonce, AZP: rp1, ACR: policy.ACRPassword,
		Audience: []string{rp1}, AMR: []string{"pwd"}}
	got := idView{Issuer: c.Issuer, Subject: c.Subject, Nonce: c.Nonce, AZP: c.AuthorizedParty, ACR: c.AuthenticationContextClassReference,
		Audience: c.Audience, AMR: c.AuthenticationMethodsReferences}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ID token as zitadel verified it (-want +got):\n%s", d)
	}
	if at := c.AuthTime.AsTime(); at.IsZero() || time.Since(at) > time.Minute {
		t.Errorf("auth_time = %v, want the login just now", at)
	}
	if c.Claims["sid"] == nil || c.Claims["jti"] == nil {
		t.Errorf("ID token lacks sid or jti: %v", c.Claims)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("access token %t, refresh token %t; want both (offline_access)", tok.AccessToken != "", tok.RefreshToken != "")
	}

	// userinfo through zitadel's client: it checks that sub matches.
	info, err := rp.Userinfo[*zoidc.UserInfo](t.Context(), tok.AccessToken, zoidc.BearerToken, h.users["alice"], z.rp)
	if err != nil {
		t.Fatalf("zitadel rp.Userinfo: %v", err)
	}
	if info.Email != "alice@example.com" || info.PreferredUsername != "alice" {
		t.Errorf("userinfo = email %q preferred_username %q", info.Email, info.PreferredUsername)
	}

	// Refresh through zitadel's client (client_secret_post in the body):
	// the refresh token rotates, and a new ID token, if any, verifies.
	fresh, err := rp.RefreshTokens[*zoidc.IDTokenClaims](t.Context(), z.rp, tok.RefreshToken, "", "")
	if err != nil {
		t.Fatalf("zitadel rp.RefreshTokens: %v", err)
	}
	if fresh.AccessToken == "" || fresh.RefreshToken == "" || fresh.RefreshToken == tok.RefreshToken {
		t.Errorf("refresh: access %t, refresh rotated %t; want both", fresh.AccessToken != "",
			fresh.RefreshToken != "" && fresh.RefreshToken != tok.RefreshToken)
	}
	if f := fresh.IDTokenClaims; f != nil && (f.Subject != h.users["alice"] || f.Nonce != "" ||
		!f.AuthTime.AsTime().Equal(c.AuthTime.AsTime())) {
		t.Errorf("refreshed ID token sub %q nonce %q auth_time %v; want the same sub and auth_time, no nonce",
			f.Subject, f.Nonce, f.AuthTime.AsTime())
	}
}

func TestSSOZitadelRPTOTPLogin(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, nil)
	z := newZitadelRP(t, h, zitadelOptions{clientID: rp1, secret: rp1Secret, nonce: "zn-" + randomToken()[:12], pkce: true,
		authParams: []rp.URLParamOpt{rp.WithURLParam("acr_values", policy.ACRMFA)}})
	otp := directory.TOTPCode(h.totpKey, directory.TOTPStep(time.Now()))
	_, p := z.login(t, h, "bob", otp)
	if p.status != http.StatusOK {
		t.Fatalf("zitadel RP callback = %d: %s", p.status, p.body)
	}
	c := z.result().IDTokenClaims
	if c.AuthenticationContextClassReference != policy.ACRMFA || strings.Join(c.AuthenticationMethodsReferences, " ") != "pwd otp" {
		t.Errorf("acr %q amr %v; want %q and [pwd otp]", c.AuthenticationContextClassReference, c.AuthenticationMethodsReferences, policy.ACRMFA)
	}
}

// A zitadel RP built without PKCE gets no code: the IdP answers the
// authorization request with an error and the RP never reaches /token.
func TestSSOZitadelRPWithoutPKCERefused(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, nil)
	z := newZitadelRP(t, h, zitadelOptions{clientID: rp1, secret: rp1Secret, nonce: "zn-x", pkce: false})
	before := h.tokenCount(t)
	b := z.browser(t)
	p := get(t, b, z.base+"/login")
	loc, err := url.Parse(p.header.Get("Location"))
	if err != nil || p.status != http.StatusSeeOther && p.status != http.StatusFound {
		t.Fatalf("authorize without PKCE = %d %q; want a redirect back with an error", p.status, p.header.Get("Location"))
	}
	if q := loc.Query(); q.Get("error") != "invalid_request" || q.Get("code") != "" {
		t.Errorf("redirect back = %v; want error=invalid_request and no code", loc)
	}
	p = get(t, b, loc.String())
	if p.status == http.StatusOK || z.result() != nil {
		t.Errorf("zitadel RP callback = %d with tokens %v; want a failure", p.status, z.result() != nil)
	}
	if n := h.tokenCount(t); n != before {
		t.Errorf("token.issued events %d -> %d; want none", before, n)
	}
}

// zitadel's verifier, pointed at a real ID token from this IdP, must refuse
// it for every mismatch it is responsible for. This proves the checks in the
// happy path are live, not vacuous.
func TestSSOZitadelVerifierRejects(t *testing.T) {
	t.Parallel()
	h := newSSOHarness(t, nil)
	nonce := "zn-" + randomToken()[:12]
	z := newZitadelRP(t, h, zitadelOptions{clientID: rp1, secret: rp1Secret, nonce: nonce, pkce: true})
	if _, p := z.login(t, h, "alice", ""); p.status != http.StatusOK {
		t.Fatalf("zitadel RP callback = %d: %s", p.status, p.body)
	}
	raw := z.result().IDToken
	keys := rp.NewRemoteKeySet(http.DefaultClient, h.issuer+"/jwks.json")
	withNonce := func(n string) rp.VerifierOption {
		return rp.WithNonce(func(context.Context) string { return n })
	}
	parts := strings.Split(raw, ".")
	tampered := parts[0] + "." + parts[1] + "." + flipFirstChar(parts[2])

	tests := []struct {
		name           string
		token          string
		issuer, client string
		opts           []rp.VerifierOption
		want           error
	}{
		{"accepted as issued", raw, h.issuer, rp1, []rp.VerifierOption{withNonce(nonce)}, nil},
		{"other audience", raw, h.issuer, rp2, []rp.VerifierOption{withNonce(nonce)}, zoidc.ErrAudience},
		{"other issuer", raw, h.issuer + "/other", rp1, []rp.VerifierOption{withNonce(nonce)}, zoidc.ErrIssuerInvalid},
		{"trailing-slash issuer", raw, h.issuer + "/", rp1, []rp.VerifierOption{withNonce(nonce)}, zoidc.ErrIssuerInvalid},
		{"other nonce", raw, h.issuer, rp1, []rp.VerifierOption{withNonce("zn-other")}, zoidc.ErrNonceInvalid},
		{"no nonce expected", raw, h.issuer, rp1, nil, zoidc.ErrNonceInvalid},
		{"algorithm not allowed", raw, h.issuer, rp1, []rp.VerifierOption{withNonce(nonce), rp.WithSupportedSigningAlgorithms("RS256")},
			zoidc.ErrSignatureUnsupportedAlg},
		{"tampered signature", tampered, h.issuer, rp1, []rp.VerifierOption{withNonce(nonce)}, zoidc.ErrSignatureInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := rp.NewIDTokenVerifier(tc.issuer, tc.client, keys, tc.opts...)
			_, err := rp.VerifyIDToken[*zoidc.IDTokenClaims](t.Context(), tc.token, v)
			if !errors.Is(err, tc.want) {
				t.Errorf("VerifyIDToken = %v, want %v", err, tc.want)
			}
		})
	}
}

// flipFirstChar changes the high bits of the first decoded byte (the last
// base64url character may carry only padding bits).
func flipFirstChar(s string) string {
	if s == "" {
		return "A"
	}
	c := "A"
	if s[0] == 'A' {
		c = "B"
	}
	return c + s[1:]
}
