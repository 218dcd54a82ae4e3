package idp

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// Cookie names. With Secure cookies (every https issuer) they carry the
// __Host- prefix: host-only, Path=/, Secure, so no sibling domain or path
// can plant or shadow them.
const (
	sessionCookie = "xaa-session"
	pendingCookie = "xaa-login"
)

// pendingLoginTTL bounds how long a user may take to sign in.
const pendingLoginTTL = 10 * time.Minute

func (s *Server) cookieName(base string) string {
	if s.sso.secure {
		return "__Host-" + base
	}
	return base
}

func (s *Server) setCookie(w http.ResponseWriter, base, value string, maxAge time.Duration) {
	c := &http.Cookie{
		Name: s.cookieName(base), Value: value, Path: "/",
		Secure: s.sso.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	}
	if maxAge < 0 {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(maxAge / time.Second)
	}
	http.SetCookie(w, c)
}

// currentSession returns the browser's valid session and its (enabled)
// user.
func (s *Server) currentSession(ctx context.Context, r *http.Request, now time.Time) (store.Session, store.User, bool) {
	c, err := r.Cookie(s.cookieName(sessionCookie))
	if err != nil || len(c.Value) != 43 {
		return store.Session{}, store.User{}, false
	}
	sess, err := s.cfg.Store.GetSessionByDigest(ctx, digestOf(c.Value))
	if err != nil || !sess.RevokedAt.IsZero() || !now.Before(sess.ExpiresAt) {
		return store.Session{}, store.User{}, false
	}
	u, err := s.cfg.Store.GetUser(ctx, sess.UserID)
	if err != nil || u.Disabled {
		return store.Session{}, store.User{}, false
	}
	return sess, u, true
}

// Stages of a pending login.
const (
	stagePassword = "password"
	stageTOTP     = "totp"
)

// pendingLogin is the state of a login in progress: the authorization
// request, the CSRF token of its forms and, after the password step, who
// proved it. It lives in a cookie MACed under a key derived from AuditKey,
// so the server keeps nothing for abandoned logins and any instance can
// continue one.
type pendingLogin struct {
	Req     authRequest `json:"q"`
	CSRF    string      `json:"x"`
	Stage   string      `json:"st"`
	UserID  string      `json:"u,omitempty"`
	Expires int64       `json:"e"`
}

func (s *Server) writePending(w http.ResponseWriter, p pendingLogin) {
	body, _ := json.Marshal(p) // plain struct: cannot fail
	enc := base64.RawURLEncoding.EncodeToString(body)
	s.setCookie(w, pendingCookie, enc+"."+s.pendingMAC(enc), pendingLoginTTL)
}

func (s *Server) pendingMAC(enc string) string {
	m := hmac.New(sha256.New, s.sso.pendingKey)
	m.Write([]byte(enc))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

var errNoPending = errors.New("idp: no valid pending login")

func (s *Server) readPending(r *http.Request, now time.Time) (pendingLogin, error) {
	c, err := r.Cookie(s.cookieName(pendingCookie))
	if err != nil || len(c.Value) > 8<<10 {
		return pendingLogin{}, errNoPending
	}
	enc, mac, ok := strings.Cut(c.Value, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(s.pendingMAC(enc))) {
		return pendingLogin{}, errNoPending
	}
	body, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return pendingLogin{}, errNoPending
	}
	var p pendingLogin
	if err := json.Unmarshal(body, &p); err != nil || now.Unix() >= p.Expires || p.CSRF == "" {
		return pendingLogin{}, errNoPending
	}
	return p, nil
}

// startLogin begins a login for req and sends the browser to the form.
func (s *Server) startLogin(w http.ResponseWriter, r *http.Request, req authRequest, now time.Time) {
	s.writePending(w, pendingLogin{
		Req: req, CSRF: randomToken(), Stage: stagePassword,
		Expires: now.Add(pendingLoginTTL).Unix(),
	})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, endpoint(s.cfg.Issuer, "/login"), http.StatusSeeOther)
}
