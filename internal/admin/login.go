package admin

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/store"
)

// Sign-in: the admin API is an OpenID Connect relying party of the IdP.
// GET /auth/login sends the browser to the IdP's authorization endpoint
// (code, PKCE S256, state, nonce) and keeps the verifier, state and nonce
// in a sealed, short-lived cookie; GET /auth/callback checks state and
// iss, redeems the code with client_secret_basic, verifies the ID token
// (issuer, audience, azp, nonce, signature, times), checks the user is
// enabled and in an admin group, and starts a session.

// loginStateLifetime bounds how long a sign-in may take at the IdP.
const loginStateLifetime = 10 * time.Minute

type login struct {
	s            *Server
	issuer       string
	clientID     string
	clientSecret string
	keys         jose.KeySet
	authorizeURL string
	tokenURL     string
	client       *http.Client
	aead         cipher.AEAD
}

func newLogin(s *Server, o *LoginOptions) (*login, error) {
	switch {
	case o.Issuer == "" || o.ClientID == "" || o.ClientSecret == "" || o.Keys == nil:
		return nil, errors.New("sign-in needs the IdP issuer, a client id and secret, and the IdP's keys")
	}
	l := &login{s: s, issuer: o.Issuer, clientID: o.ClientID, clientSecret: o.ClientSecret, keys: o.Keys,
		authorizeURL: o.AuthorizationEndpoint, tokenURL: o.TokenEndpoint, client: o.HTTPClient}
	issuer := strings.TrimSuffix(o.Issuer, "/")
	if l.authorizeURL == "" {
		l.authorizeURL = issuer + "/authorize"
	}
	if l.tokenURL == "" {
		l.tokenURL = issuer + "/token"
	}
	for _, e := range []string{l.authorizeURL, l.tokenURL} {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "https" && !(u.Scheme == "http" && s.opts.DevMode && isLoopback(u.Hostname()))) || u.Host == "" {
			return nil, fmt.Errorf("IdP endpoint %q must be https (http only on loopback in dev mode)", e)
		}
	}
	if l.client == nil {
		l.client = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	block, err := aes.NewCipher(subkey(s.opts.SessionKey, "login state"))
	if err != nil {
		return nil, err
	}
	if l.aead, err = cipher.NewGCM(block); err != nil {
		return nil, err
	}
	return l, nil
}

// loginState travels in the sealed login cookie.
type loginState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	ReturnTo string `json:"r"`
	Expires  int64  `json:"e"`
}

var loginStateAAD = []byte("openxaa admin login state v1")

func (l *login) seal(st loginState) (string, error) {
	plain, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, l.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(l.aead.Seal(nonce, nonce, plain, loginStateAAD)), nil
}

func (l *login) open(v string) (loginState, bool) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(v)
	if err != nil || len(b) < l.aead.NonceSize() || len(v) > 2048 {
		return loginState{}, false
	}
	plain, err := l.aead.Open(nil, b[:l.aead.NonceSize()], b[l.aead.NonceSize():], loginStateAAD)
	if err != nil {
		return loginState{}, false
	}
	var st loginState
	if json.Unmarshal(plain, &st) != nil {
		return loginState{}, false
	}
	return st, true
}

var (
	loginQuery    = &querySpec{filters: []param{{name: "return_to", kind: kindPath, doc: "where to go after signing in: a path under the base path"}}}
	callbackQuery = &querySpec{filters: []param{
		{name: "code", kind: kindID, doc: "the authorization code"},
		{name: "state", kind: kindID, doc: "the state sent to the IdP"},
		{name: "iss", kind: kindText, doc: "the IdP's issuer (RFC 9207)"},
		{name: "error", kind: kindID, doc: "an OAuth error from the IdP"},
		{name: "error_description", kind: kindText, doc: "the IdP's error description"},
		{name: "error_uri", kind: kindText, doc: "the IdP's error page"},
	}}
)

// handleLogin is GET /auth/login.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request, c *call) {
	l := s.login
	if l == nil {
		s.writeError(w, r, notFound("sign-in at the IdP is not configured; use an admin token"))
		return
	}
	returnTo := c.q.str("return_to")
	switch {
	case returnTo == "":
		returnTo = s.basePath + "/api/v1/session"
	case !strings.HasPrefix(returnTo, s.basePath+"/"):
		s.writeError(w, r, badRequest("return_to must be a path under %s/", s.basePath))
		return
	}
	verifier := randomValue() // 43 characters of the RFC 7636 alphabet
	sum := sha256.Sum256([]byte(verifier))
	st := loginState{State: randomValue(), Nonce: randomValue(), Verifier: verifier, ReturnTo: returnTo,
		Expires: s.now().Add(loginStateLifetime).Unix()}
	sealed, err := l.seal(st)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Lax, not Strict: the IdP's redirect back is a cross-site navigation
	// whenever the IdP lives on another site, and must carry this cookie.
	s.setCookie(w, s.loginCookieName(), sealed, loginStateLifetime, http.SameSiteLaxMode)
	q := url.Values{
		"response_type": {"code"}, "client_id": {l.clientID}, "redirect_uri": {s.RedirectURI()},
		"scope": {"openid"}, "state": {st.State}, "nonce": {st.Nonce},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	sep := "?"
	if strings.Contains(l.authorizeURL, "?") {
		sep = "&"
	}
	http.Redirect(w, r, l.authorizeURL+sep+q.Encode(), http.StatusSeeOther)
}

// handleCallback is GET /auth/callback.
func (s *Server) handleCallback(w http.ResponseWriter, r *http.Request, c *call) {
	l := s.login
	if l == nil {
		s.writeError(w, r, notFound("sign-in at the IdP is not configured; use an admin token"))
		return
	}
	ck, err := r.Cookie(s.loginCookieName())
	if err != nil {
		s.writeError(w, r, badRequest("no sign-in is in progress in this browser; start again at %s/auth/login", s.basePath))
		return
	}
	// The state is single use: whatever happens next, forget it.
	s.clearCookie(w, s.loginCookieName(), http.SameSiteLaxMode)
	st, ok := l.open(ck.Value)
	if !ok || s.now().Unix() > st.Expires {
		s.writeError(w, r, badRequest("the sign-in expired or its cookie was changed; start again at %s/auth/login", s.basePath))
		return
	}
	if !hmac.Equal([]byte(c.q.str("state")), []byte(st.State)) {
		s.writeError(w, r, badRequest("the state returned by the IdP does not match this browser's sign-in; start again"))
		return
	}
	if iss := c.q.str("iss"); iss != l.issuer {
		s.writeError(w, r, badRequest("the authorization response comes from %s, not the IdP %s", quote(iss), l.issuer))
		return
	}
	if e := c.q.str("error"); e != "" {
		s.writeError(w, r, unauthorized(fmt.Sprintf("the IdP refused the sign-in: %s %s", e, c.q.str("error_description"))))
		return
	}
	code := c.q.str("code")
	if code == "" {
		s.writeError(w, r, badRequest("the IdP's answer carries no code"))
		return
	}
	sub, err := l.redeem(r.Context(), code, st)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	value, p, err := s.startSession(r, sub)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.setCookie(w, s.cookieName(), value, time.Until(p.expiresAt).Round(time.Second), http.SameSiteStrictMode)
	// A page, not a redirect: the Strict cookie is sent only on a
	// navigation that starts on this site, and the IdP's redirect did not.
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	w.WriteHeader(http.StatusOK)
	_ = signedInPage.Execute(w, struct{ Name, ReturnTo string }{p.name, st.ReturnTo})
}

var signedInPage = template.Must(template.New("signed-in").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={{.ReturnTo}}">
<title>Signed in</title></head>
<body><p>Signed in as {{.Name}}. <a href="{{.ReturnTo}}">Continue</a>.</p></body></html>
`))

// tokenAnswer is the part of the IdP's token response sign-in uses.
type tokenAnswer struct {
	IDToken string `json:"id_token"`
	Error   string `json:"error"`
	Desc    string `json:"error_description"`
}

// idClaims are the ID token claims sign-in checks beyond jose.Verify's.
type idClaims struct {
	Nonce string `json:"nonce"`
	AZP   string `json:"azp"`
}

// redeem trades the code for an ID token and returns its verified sub.
func (l *login) redeem(ctx context.Context, code string, st loginState) (string, error) {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {l.s.RedirectURI()},
		"code_verifier": {st.Verifier}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(l.clientID), url.QueryEscape(l.clientSecret))
	resp, err := l.client.Do(req)
	if err != nil {
		return "", &apiError{status: http.StatusBadGateway, code: codeUnavailable, desc: "the IdP's token endpoint did not answer; try again"}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", &apiError{status: http.StatusBadGateway, code: codeUnavailable, desc: "the IdP's token answer could not be read"}
	}
	var ans tokenAnswer
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "application/json" || json.Unmarshal(body, &ans) != nil {
		return "", &apiError{status: http.StatusBadGateway, code: codeUnavailable, desc: "the IdP's token answer is not JSON"}
	}
	if resp.StatusCode != http.StatusOK || ans.IDToken == "" {
		return "", unauthorized(fmt.Sprintf("the IdP refused the code: %s", clip(ans.Error+" "+ans.Desc)))
	}
	tok, err := jose.Verify(ctx, ans.IDToken, jose.IDTokenProfile(), jose.SingleIssuer{Issuer: l.issuer, Keys: l.keys},
		jose.Expectations{Audiences: []string{l.clientID}, Issuer: l.issuer, Now: l.s.now()})
	if err != nil {
		if jose.IsRejection(err) {
			return "", unauthorized("the IdP's ID token did not verify")
		}
		return "", err
	}
	var cl idClaims
	if err := tok.Decode(&cl); err != nil {
		return "", unauthorized("the IdP's ID token did not verify")
	}
	switch {
	case !hmac.Equal([]byte(cl.Nonce), []byte(st.Nonce)):
		return "", unauthorized("the ID token's nonce does not match this sign-in")
	case len(tok.Audience) > 1 && cl.AZP != l.clientID, cl.AZP != "" && cl.AZP != l.clientID:
		return "", unauthorized("the ID token was issued to another client")
	case tok.Subject == "":
		return "", unauthorized("the ID token names no user")
	}
	return tok.Subject, nil
}

// startSession checks that the user may administer and creates the
// session and its audit record in one transaction. It returns the cookie
// value.
func (s *Server) startSession(r *http.Request, sub string) (string, *principal, error) {
	ctx := r.Context()
	now := s.now()
	var p *principal
	value := randomValue()
	var denial error
	err := s.opts.Store.InTx(ctx, func(tx store.Tx) error {
		denial = nil
		u, err := tx.GetUser(ctx, sub)
		switch {
		case errors.Is(err, store.ErrNotFound):
			denial = forbidden("the IdP user is not in the directory")
		case err != nil:
			return err
		case u.Disabled:
			denial = forbidden("your account is disabled")
		}
		var roles []Role
		if denial == nil {
			groups, err := tx.UserGroups(ctx, sub)
			if err != nil {
				return err
			}
			if roles = rolesOf(groups, s.roles); len(roles) == 0 {
				denial = forbidden("you are not in a group with an admin role")
			}
		}
		ev := &store.AuditEvent{Time: now, Type: "admin.login", Actor: sub, Subject: sub,
			RequestID: httpserver.RequestIDFrom(ctx), Data: map[string]string{"actor_kind": kindHuman}}
		if denial != nil {
			ev.Outcome, ev.Rule, ev.Reason = "deny", "admin.role", "signed in at the IdP but may not administer: "+denial.(*apiError).desc
			return tx.AppendAudit(ctx, ev)
		}
		sess := store.AdminSession{ID: randomID("as_"), SecretDigest: digest(value), UserID: sub,
			CreatedAt: now, ExpiresAt: now.Add(s.opts.SessionLifetime)}
		if err := tx.CreateAdminSession(ctx, sess); err != nil {
			return err
		}
		p = &principal{kind: kindHuman, id: sub, name: u.Username, roles: roles, sessionID: sess.ID, expiresAt: sess.ExpiresAt}
		ev.Outcome, ev.Reason = "allow", "administrator signed in"
		ev.Data["actor_name"], ev.Data["roles"], ev.Data["session"] = u.Username, roleNames(roles), sess.ID
		return tx.AppendAudit(ctx, ev)
	})
	if err != nil {
		return "", nil, err
	}
	if denial != nil {
		return "", nil, denial
	}
	return value, p, nil
}
