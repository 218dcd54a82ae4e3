package admin

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// Principal kinds.
const (
	kindHuman = "human" // an IdP user with a browser session
	kindToken = "token" // an admin token
)

// principal is who makes a request and what they may do.
type principal struct {
	kind      string
	id        string // the user id (OIDC sub) or the token id
	name      string // the username or the token's description
	roles     []Role
	sessionID string // humans
	expiresAt time.Time
}

// Admin token format: "xaa_at_" + 43 base64url characters (256 random
// bits). The prefix lets secret scanners find leaked tokens.
const (
	tokenPrefix = "xaa_at_"
	tokenLen    = len(tokenPrefix) + 43
)

// Session cookie values are 43 base64url characters (256 random bits).
const cookieValueLen = 43

// randomValue returns 256 random bits, base64url.
func randomValue() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// randomID returns prefix + 80 random bits, base32.
func randomID(prefix string) string {
	return prefix + strings.ToLower(rand.Text()[:16])
}

func digest(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
}

// wellFormed reports whether s is base64url of exactly n characters.
func wellFormed(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil
}

// authenticate identifies the caller: a Bearer admin token, else the
// session cookie. A request with an Authorization header is judged by it
// alone; a cookie it also carries is ignored.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*principal, error) {
	if hs := r.Header.Values("Authorization"); len(hs) > 0 {
		if len(hs) > 1 {
			return nil, invalidToken("send one Authorization header")
		}
		scheme, tok, ok := strings.Cut(hs[0], " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return nil, invalidToken("use the Bearer scheme with an admin token")
		}
		return s.tokenPrincipal(r.Context(), strings.TrimSpace(tok))
	}
	var values []string
	for _, c := range r.Cookies() {
		if c.Name == s.cookieName() {
			values = append(values, c.Value)
		}
	}
	switch len(values) {
	case 0:
		return nil, unauthorized(s.signInHint())
	case 1:
	default:
		// Two cookies of one name: one was planted (cookie tossing).
		s.clearCookie(w, s.cookieName(), http.SameSiteStrictMode)
		return nil, unauthorized("the request carries more than one session cookie; sign in again")
	}
	return s.sessionPrincipal(w, r.Context(), values[0])
}

func (s *Server) signInHint() string {
	if s.login != nil {
		return "sign in at " + s.origin + s.basePath + "/auth/login, or present an admin token as a Bearer token"
	}
	return "present an admin token as a Bearer token (xaa admin token create)"
}

const tokenRefused = "the admin token is not valid: unknown, expired or revoked"

func (s *Server) tokenPrincipal(ctx context.Context, tok string) (*principal, error) {
	if !strings.HasPrefix(tok, tokenPrefix) || !wellFormed(tok[len(tokenPrefix):], tokenLen-len(tokenPrefix)) {
		return nil, invalidToken(tokenRefused)
	}
	t, err := s.opts.Store.GetAdminTokenByDigest(ctx, digest(tok))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, invalidToken(tokenRefused)
	case err != nil:
		return nil, err
	}
	role, err := ParseRole(t.Role)
	if err != nil || !t.RevokedAt.IsZero() || !s.now().Before(t.ExpiresAt) {
		return nil, invalidToken(tokenRefused)
	}
	return &principal{kind: kindToken, id: t.ID, name: t.Description, roles: []Role{role}, expiresAt: t.ExpiresAt}, nil
}

func (s *Server) sessionPrincipal(w http.ResponseWriter, ctx context.Context, value string) (*principal, error) {
	ended := func() (*principal, error) {
		s.clearCookie(w, s.cookieName(), http.SameSiteStrictMode)
		return nil, unauthorized("your session has ended; sign in again")
	}
	if !wellFormed(value, cookieValueLen) {
		return ended()
	}
	sess, err := s.opts.Store.GetAdminSessionByDigest(ctx, digest(value))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return ended()
	case err != nil:
		return nil, err
	case !sess.RevokedAt.IsZero() || !s.now().Before(sess.ExpiresAt):
		return ended()
	}
	// Roles follow the user's groups now, not at sign-in: removing a
	// member or disabling a user takes effect on the next request.
	u, err := s.opts.Store.GetUser(ctx, sess.UserID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return ended()
	case err != nil:
		return nil, err
	case u.Disabled:
		return ended()
	}
	groups, err := s.opts.Store.UserGroups(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	roles := rolesOf(groups, s.roles)
	if len(roles) == 0 {
		return nil, forbidden("you are no longer in a group with an admin role")
	}
	return &principal{kind: kindHuman, id: u.ID, name: u.Username, roles: roles, sessionID: sess.ID, expiresAt: sess.ExpiresAt}, nil
}

// csrfToken is bound to one session: HMAC(csrf key, session id).
func (s *Server) csrfToken(sessionID string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte(sessionID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CSRFHeader carries the session's CSRF token on cookie-authenticated
// changes.
const CSRFHeader = "X-CSRF-Token"

// checkCSRF refuses a cookie-authenticated change unless it comes from the
// admin API's own origin (Origin, or Sec-Fetch-Site when a browser sends
// no Origin) and carries the session's CSRF token. SameSite=Strict
// already keeps the cookie off cross-site requests in current browsers;
// this holds even where it does not.
func (s *Server) checkCSRF(r *http.Request, p *principal) error {
	site := r.Header.Get("Sec-Fetch-Site")
	if site != "" && site != "same-origin" {
		return forbidden("cross-site request refused (Sec-Fetch-Site: %s); changes must come from %s", quote(site), s.origin)
	}
	switch origin := r.Header.Get("Origin"); {
	case origin != "":
		if origin != s.origin {
			return forbidden("cross-origin request refused: Origin %s is not %s", quote(origin), s.origin)
		}
	case site != "same-origin":
		return forbidden("a change made with a session cookie needs an Origin header of %s", s.origin)
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" || !hmac.Equal([]byte(got), []byte(s.csrfToken(p.sessionID))) {
		return forbidden("missing or wrong %s header; read the token from GET %s/api/v1/session", CSRFHeader, s.basePath)
	}
	return nil
}

// Cookies. Over https they carry the __Host- prefix (Secure, Path=/, no
// Domain: no other host or path can set or shadow them); over loopback
// http in dev mode they cannot.
func (s *Server) cookieName() string {
	if s.secure {
		return "__Host-xaa-admin"
	}
	return "xaa-admin"
}

func (s *Server) loginCookieName() string {
	if s.secure {
		return "__Host-xaa-admin-login"
	}
	return "xaa-admin-login"
}

func (s *Server) cookiePath() string {
	if s.secure || s.basePath == "" {
		return "/"
	}
	return s.basePath + "/"
}

func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration, site http.SameSite) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: s.cookiePath(), MaxAge: int(maxAge / time.Second),
		HttpOnly: true, Secure: s.secure, SameSite: site,
	})
}

func (s *Server) clearCookie(w http.ResponseWriter, name string, site http.SameSite) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: s.cookiePath(), MaxAge: -1,
		HttpOnly: true, Secure: s.secure, SameSite: site})
}

// --- admin tokens ---

// TokenRequest asks for a new admin token.
type TokenRequest struct {
	Role        Role
	TTL         time.Duration // more than 0, at most MaxTokenTTL
	Description string
	// Actor is who creates it, e.g. "cli:alice" or an admin's user id.
	Actor string
	// ActorKind is "cli", "human" or "token".
	ActorKind string
	Now       time.Time
}

// IssuedToken is a new admin token. Value is shown once and never stored.
type IssuedToken struct {
	Value string
	store.AdminToken
}

// TokenStore is what creating an admin token needs.
type TokenStore interface {
	store.Transactor
}

// CreateToken mints an admin token: it stores only the token's SHA-256
// digest, together with an audit record naming who created it, for which
// role and until when, in one transaction. `xaa admin token create` calls
// it against the database; the API's POST /tokens too.
func CreateToken(ctx context.Context, st TokenStore, req TokenRequest) (IssuedToken, error) {
	if _, err := ParseRole(string(req.Role)); err != nil {
		return IssuedToken{}, fmt.Errorf("%w: %w", store.ErrInvalid, err)
	}
	switch {
	case req.TTL <= 0 || req.TTL > MaxTokenTTL:
		return IssuedToken{}, fmt.Errorf("%w: an admin token lives more than 0s and at most %s, not %s", store.ErrInvalid, MaxTokenTTL, req.TTL)
	case req.TTL%time.Second != 0:
		return IssuedToken{}, fmt.Errorf("%w: give the lifetime in whole seconds", store.ErrInvalid)
	case req.Actor == "" || req.ActorKind == "":
		return IssuedToken{}, fmt.Errorf("%w: a token's creator must be named", store.ErrInvalid)
	}
	now := req.Now.UTC().Truncate(time.Millisecond)
	if req.Now.IsZero() {
		now = time.Now().UTC().Truncate(time.Millisecond)
	}
	value := tokenPrefix + randomValue()
	t := store.AdminToken{
		ID: randomID("at_"), SecretDigest: digest(value), Role: string(req.Role), Description: req.Description,
		CreatedBy: req.Actor, CreatedAt: now, ExpiresAt: now.Add(req.TTL),
	}
	if err := t.Validate(); err != nil {
		return IssuedToken{}, err
	}
	err := st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateAdminToken(ctx, t); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, &store.AuditEvent{
			Time: now, Type: "admin.token_create", Actor: req.Actor, Subject: t.ID, Outcome: "allow",
			Reason: fmt.Sprintf("admin token %s created for role %s, valid until %s", t.ID, t.Role, t.ExpiresAt.Format(time.RFC3339)),
			Data: map[string]string{"actor_kind": req.ActorKind, "token_id": t.ID, "role": t.Role,
				"expires_at": t.ExpiresAt.Format(time.RFC3339), "description": clip(t.Description)},
		})
	})
	if err != nil {
		return IssuedToken{}, err
	}
	return IssuedToken{Value: value, AdminToken: t}, nil
}
