package xaaclient

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	gojose "github.com/go-jose/go-jose/v4"

	"github.com/openxaa/xaa/internal/jose"
)

// LoginOptions ask the IdP for a particular authentication (OIDC Core
// §3.1.2.1). The zero value is an ordinary sign-in that an existing IdP
// session may satisfy without a prompt.
type LoginOptions struct {
	// ACRValues are the authentication context classes wanted, in order
	// of preference.
	ACRValues []string
	// MaxAge is the oldest acceptable authentication; zero means no
	// limit (use ForceLogin to demand a fresh one).
	MaxAge time.Duration
	// ForceLogin sends prompt=login: the user authenticates again even
	// with a live IdP session.
	ForceLogin bool
	// LoginHint pre-fills the user name at the IdP.
	LoginHint string
}

// authResult is what the loopback listener received.
type authResult struct {
	code string
	err  error
}

// callbackPage is shown in the browser after the redirect.
const callbackPage = `<!doctype html><meta charset="utf-8"><title>%s</title>` +
	`<body style="font-family:sans-serif;margin:3em"><h1>%s</h1><p>%s</p></body>`

// Login signs the user in at the IdP with the authorization code flow on a
// loopback redirect (RFC 8252): PKCE S256, state, nonce, the RFC 9207 iss
// check, and a fully verified ID token. The session (ID token and refresh
// token) replaces any previous one in the cache.
func (c *Client) Login(ctx context.Context, lo *LoginOptions) error {
	if lo == nil {
		lo = &LoginOptions{}
	}
	if c.opts.IDToken != nil {
		return fmt.Errorf("%w: the application supplies the ID token (Options.IDToken); the client does not sign users in", ErrLoginFailed)
	}
	_, err := c.login(ctx, lo)
	return err
}

func (c *Client) login(ctx context.Context, lo *LoginOptions) (*session, error) {
	meta, err := c.idp(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.LoginTimeout)
	defer cancel()
	started := c.opts.Now()

	ru, _ := url.Parse(c.opts.RedirectURL)
	hostPort := net.JoinHostPort(ru.Hostname(), ru.Port())
	if ru.Port() == "" {
		hostPort = net.JoinHostPort(ru.Hostname(), "0")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", hostPort)
	if err != nil {
		return nil, fmt.Errorf("%w: listen for the redirect on %s: %v", ErrLoginFailed, hostPort, err)
	}
	redirect := *ru
	redirect.Host = ln.Addr().String()
	redirectURI := redirect.String()
	path := ru.EscapedPath()
	if path == "" {
		path = "/"
	}

	state, nonce := rand.Text(), rand.Text()
	verifier := rand.Text() + rand.Text() // 52 base32 characters, 260 bits
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {c.opts.Client.ClientID},
		"redirect_uri":          {redirectURI},
		"scope":                 {strings.Join(c.opts.LoginScopes, " ")},
		"state":                 {state},
		"nonce":                 {nonce},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	if len(lo.ACRValues) > 0 {
		q.Set("acr_values", strings.Join(lo.ACRValues, " "))
	}
	if lo.MaxAge > 0 {
		q.Set("max_age", fmt.Sprint(int64(lo.MaxAge/time.Second)))
	}
	if lo.ForceLogin {
		q.Set("prompt", "login")
	}
	if lo.LoginHint != "" {
		q.Set("login_hint", lo.LoginHint)
	}
	authURL := meta.AuthorizationEndpoint
	if strings.Contains(authURL, "?") {
		authURL += "&" + q.Encode()
	} else {
		authURL += "?" + q.Encode()
	}

	results := make(chan authResult, 1)
	var once sync.Once
	deliver := func(r authResult) { once.Do(func() { results <- r }) }
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.EscapedPath() != path || r.Method != http.MethodGet {
				http.NotFound(w, r)
				return
			}
			res, ok := c.callback(r.URL.Query(), meta, state)
			if !ok {
				// Not our response (a stale tab, another program): ignore it
				// and keep waiting for the real one.
				writeCallbackPage(w, http.StatusBadRequest, "Sign-in failed", "This response does not belong to the sign-in in progress.")
				return
			}
			if res.err != nil {
				writeCallbackPage(w, http.StatusBadRequest, "Sign-in failed", res.err.Error())
			} else {
				writeCallbackPage(w, http.StatusOK, "Signed in", "You can close this window and return to the application.")
			}
			deliver(res)
		}),
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	c.log.InfoContext(ctx, "signing in at the IdP", "issuer", c.opts.Issuer, "redirect_uri", redirectURI,
		"acr_values", strings.Join(lo.ACRValues, " "), "force", lo.ForceLogin)
	browserErr := make(chan error, 1)
	go func() { browserErr <- c.opts.Browser(ctx, authURL) }()

	var res authResult
	for res.code == "" && res.err == nil {
		select {
		case res = <-results:
		case err := <-browserErr:
			if err != nil {
				return nil, fmt.Errorf("%w: open the browser: %v", ErrLoginFailed, err)
			}
			browserErr = nil
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: no answer from the browser: %v", ErrLoginFailed, ctx.Err())
		}
	}
	if res.err != nil {
		return nil, res.err
	}

	var tr tokenResponse
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {res.code},
		"redirect_uri":  {redirectURI},
		"code_verifier": {verifier},
	}
	if err := c.postToken(ctx, meta.TokenEndpoint, "IdP token endpoint", c.opts.Issuer, c.opts.Client, form, &tr); err != nil {
		return nil, fmt.Errorf("%w: redeem the authorization code: %w", ErrLoginFailed, classifyLoginError(err))
	}
	claims, err := c.verifyIDToken(ctx, meta, tr.IDToken, nonce)
	if err != nil {
		return nil, err
	}
	if err := satisfies(claims, lo, started); err != nil {
		return nil, err
	}
	sess := &session{
		LoginID: rand.Text(), Subject: claims.Subject, IDToken: tr.IDToken, IDTokenExpiry: claims.Expiry,
		RefreshToken: tr.RefreshToken, AuthTime: claims.AuthTime, ACR: claims.ACR,
	}
	if err := c.saveSession(sess); err != nil {
		return nil, err
	}
	c.log.InfoContext(ctx, "signed in", "issuer", c.opts.Issuer, "sub", claims.Subject, "acr", claims.ACR,
		"id_token_jti", claims.JTI, "refresh_token", tr.RefreshToken != "")
	return sess, nil
}

// callback checks an authorization response. ok is false for a response
// that does not belong to this login (wrong state), which the listener
// ignores. The RFC 9207 check comes first and decides over everything,
// error fields included (spec digest §2.6).
func (c *Client) callback(q url.Values, meta *serverMetadata, state string) (authResult, bool) {
	for _, k := range []string{"state", "code", "iss", "error"} {
		if len(q[k]) > 1 {
			return authResult{}, false
		}
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1 {
		return authResult{}, false
	}
	iss, hasIss := q.Get("iss"), q.Has("iss")
	switch {
	case hasIss && iss != c.opts.Issuer:
		return authResult{err: fmt.Errorf("%w: the authorization response comes from issuer %q, not %q (possible mix-up attack)",
			ErrIssuerMismatch, clip(iss), c.opts.Issuer)}, true
	case !hasIss && meta.ResponseIssParameterSupported:
		return authResult{err: fmt.Errorf("%w: the IdP advertises RFC 9207 but its authorization response has no iss",
			ErrIssuerMismatch)}, true
	}
	if e := q.Get("error"); e != "" {
		desc := clip(q.Get("error_description"))
		if e == "access_denied" {
			return authResult{err: &DeniedError{Code: e, Description: desc}}, true
		}
		return authResult{err: fmt.Errorf("%w: the IdP answered %s: %s", ErrLoginFailed, clip(e), desc)}, true
	}
	code := q.Get("code")
	if code == "" {
		return authResult{err: fmt.Errorf("%w: the authorization response has no code", ErrLoginFailed)}, true
	}
	return authResult{code: code}, true
}

func writeCallbackPage(w http.ResponseWriter, status int, title, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(status)
	t := html.EscapeString(title)
	fmt.Fprintf(w, callbackPage, t, t, html.EscapeString(msg))
}

// classifyLoginError turns an IdP denial at the token endpoint into a
// *DeniedError and leaves everything else as it is.
func classifyLoginError(err error) error {
	var te *tokenError
	if errors.As(err, &te) {
		if isDenial(te.body.Error) {
			return &DeniedError{Code: te.body.Error, Description: clip(te.body.Description)}
		}
		return te.oauth()
	}
	return err
}

// tokenResponse is the IdP's answer to the code and refresh grants.
type tokenResponse struct {
	IDToken      string          `json:"id_token"`
	RefreshToken string          `json:"refresh_token"`
	TokenType    string          `json:"token_type"`
	ExpiresIn    json.RawMessage `json:"expires_in"`
}

// idClaims are the ID token claims the client relies on.
type idClaims struct {
	Subject  string
	JTI      string
	Expiry   time.Time
	AuthTime time.Time
	ACR      string
}

// verifyIDToken checks an ID token from the IdP for this client: the
// signature with a key from the IdP's JWKS, iss, aud (azp when there are
// several), exp and iat (jose.Verify with the ID-token profile), and the
// nonce of the login that asked for it ("" for a refresh, where OIDC Core
// §12.2 says the nonce is not checked).
func (c *Client) verifyIDToken(ctx context.Context, meta *serverMetadata, raw, nonce string) (*idClaims, error) {
	if raw == "" {
		return nil, fmt.Errorf("%w: the IdP returned no id_token", ErrLoginFailed)
	}
	keys, err := c.idpKeys(ctx, meta)
	if err != nil {
		return nil, err
	}
	tok, err := jose.Verify(ctx, raw, jose.IDTokenProfile(), jose.SingleIssuer{Issuer: c.opts.Issuer, Keys: keys},
		jose.Expectations{Audiences: []string{c.opts.Client.ClientID}, Issuer: c.opts.Issuer, Now: c.opts.Now()})
	if err != nil {
		return nil, fmt.Errorf("%w: the ID token does not verify: %w", ErrLoginFailed, err)
	}
	var cl struct {
		Nonce    *string  `json:"nonce"`
		AZP      string   `json:"azp"`
		AuthTime *float64 `json:"auth_time"`
		ACR      string   `json:"acr"`
	}
	if err := tok.Decode(&cl); err != nil {
		return nil, fmt.Errorf("%w: the ID token has a malformed nonce, azp, auth_time or acr: %v", ErrLoginFailed, err)
	}
	if nonce != "" && (cl.Nonce == nil || subtle.ConstantTimeCompare([]byte(*cl.Nonce), []byte(nonce)) != 1) {
		return nil, fmt.Errorf("%w: the ID token's nonce does not match the login (replayed token?)", ErrLoginFailed)
	}
	if (cl.AZP != "" && cl.AZP != c.opts.Client.ClientID) || (len(tok.Audience) > 1 && cl.AZP == "") {
		return nil, fmt.Errorf("%w: the ID token was issued to another party (azp)", ErrLoginFailed)
	}
	if tok.Subject == "" {
		return nil, fmt.Errorf("%w: the ID token has no sub", ErrLoginFailed)
	}
	out := &idClaims{Subject: tok.Subject, JTI: tok.ID, Expiry: tok.Expiry, ACR: cl.ACR}
	if cl.AuthTime != nil {
		at := *cl.AuthTime
		if at < 0 || at > 253402300799 || math.IsNaN(at) {
			return nil, fmt.Errorf("%w: the ID token's auth_time is out of range", ErrLoginFailed)
		}
		out.AuthTime = time.Unix(int64(at), 0).UTC()
	}
	return out, nil
}

// satisfies checks that a login produced what was asked for, so that a
// step-up the IdP silently did not perform is reported instead of looping:
// a fresh authentication for prompt=login or max_age, and one of the
// requested acr values.
func satisfies(cl *idClaims, lo *LoginOptions, started time.Time) error {
	fail := func(reason string) error {
		return &StepUpError{ACRValues: lo.ACRValues, MaxAge: maxAgeOrNone(lo), Reason: reason}
	}
	if lo.ForceLogin || lo.MaxAge > 0 {
		switch {
		case cl.AuthTime.IsZero():
			return fail("the IdP's ID token has no auth_time")
		case lo.ForceLogin && cl.AuthTime.Before(started.Add(-jose.DefaultLeeway).Truncate(time.Second)):
			return fail("the IdP did not authenticate the user again")
		case lo.MaxAge > 0 && started.Sub(cl.AuthTime) > lo.MaxAge+jose.DefaultLeeway:
			return fail("the IdP's authentication is older than max_age")
		}
	}
	if len(lo.ACRValues) > 0 && !slices.Contains(lo.ACRValues, cl.ACR) {
		return fail(fmt.Sprintf("the IdP authenticated the user at %q, not at a requested level", clip(cl.ACR)))
	}
	return nil
}

func maxAgeOrNone(lo *LoginOptions) time.Duration {
	if lo.MaxAge > 0 {
		return lo.MaxAge
	}
	return NoMaxAge
}

// idpKeys returns the IdP's verification keys, fetched from its jwks_uri
// and refetched (at most once a minute) when a token names an unknown
// key, which is how a key rotation shows.
func (c *Client) idpKeys(ctx context.Context, meta *serverMetadata) (jose.KeySet, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil {
		c.keys = &remoteKeys{c: c, url: meta.JWKSURI}
	}
	return c.keys, nil
}

// remoteKeys is a jose.KeySet backed by a JWKS URL.
type remoteKeys struct {
	c   *Client
	url string

	mu      sync.Mutex
	set     *jose.StaticKeySet
	fetched time.Time
}

func (k *remoteKeys) Key(ctx context.Context, kid string) (*gojose.JSONWebKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.set != nil {
		key, err := k.set.Key(ctx, kid)
		if err == nil || k.c.opts.Now().Sub(k.fetched) < time.Minute {
			return key, err
		}
	}
	var raw json.RawMessage
	if err := k.c.getJSON(ctx, "IdP JWKS", k.url, &raw); err != nil {
		return nil, err
	}
	set, err := jose.ParseJWKS(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: IdP JWKS: %v", ErrDiscovery, err)
	}
	ks, err := jose.NewStaticKeySet(set)
	if err != nil {
		return nil, fmt.Errorf("%w: IdP JWKS: %v", ErrDiscovery, err)
	}
	k.set, k.fetched = ks, k.c.opts.Now()
	return ks.Key(ctx, kid)
}

// refresh renews the ID token with the IdP refresh token (OIDC Core §12),
// storing the rotated refresh token. The new ID token must name the same
// user. It runs under the cache file lock, after re-reading the file: if
// another process already refreshed, its result is used instead, so a
// refresh token is never presented twice.
func (c *Client) refresh(ctx context.Context, rejected string) (*session, error) {
	meta, err := c.idp(ctx)
	if err != nil {
		return nil, err
	}
	var out *session
	var refreshErr error
	err = c.updateState(func(st *cacheState) error {
		s := st.Session
		if s == nil || s.RefreshToken == "" {
			refreshErr = ErrLoginRequired
			return nil
		}
		if c.idTokenFresh(s) && s.IDToken != rejected {
			out = s // another process refreshed meanwhile
			return nil
		}
		var tr tokenResponse
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {s.RefreshToken}}
		if err := c.postToken(ctx, meta.TokenEndpoint, "IdP token endpoint", c.opts.Issuer, c.opts.Client, form, &tr); err != nil {
			var te *tokenError
			if errors.As(err, &te) && (te.body.Error == "invalid_grant" || te.body.Error == "invalid_request") {
				// The family is dead (revoked, expired, reused): forget
				// it, so no one presents it again.
				st.Session.RefreshToken = ""
				refreshErr = fmt.Errorf("%w: the IdP refused the refresh token (%s)", ErrLoginRequired, te.body.Error)
				return nil
			}
			return classifyLoginError(err)
		}
		if tr.IDToken == "" {
			// OIDC Core §12.2 lets the IdP omit it; then only a login
			// renews the ID token. Keep the rotated refresh token.
			if tr.RefreshToken != "" {
				st.Session.RefreshToken = tr.RefreshToken
			}
			refreshErr = fmt.Errorf("%w: the IdP's refresh response has no ID token", ErrLoginRequired)
			return nil
		}
		claims, err := c.verifyIDToken(ctx, meta, tr.IDToken, "")
		if err != nil {
			return err
		}
		if claims.Subject != s.Subject {
			return fmt.Errorf("%w: the refreshed ID token names another user", ErrLoginFailed)
		}
		ns := *s
		ns.IDToken, ns.IDTokenExpiry = tr.IDToken, claims.Expiry
		ns.AuthTime, ns.ACR = claims.AuthTime, claims.ACR
		if tr.RefreshToken != "" {
			ns.RefreshToken = tr.RefreshToken
		}
		st.Session = &ns
		out = &ns
		c.log.InfoContext(ctx, "renewed the ID token with the refresh token", "sub", claims.Subject, "id_token_jti", claims.JTI,
			"rotated", tr.RefreshToken != "")
		return nil
	})
	if err != nil {
		return nil, err
	}
	if refreshErr != nil {
		return nil, refreshErr
	}
	return out, nil
}
