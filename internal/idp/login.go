package idp

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/openxaa/xaa/internal/directory"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/policy"
	"github.com/openxaa/xaa/internal/store"
)

// Login policy: a user with TOTP enrolled always completes both factors,
// whatever the request asks (a second factor a user has is never
// optional, so every session of such a user is acr mfa). A request that
// needs mfa (acr_values) from a user without TOTP is refused with
// access_denied rather than silently downgraded.

const (
	maxLoginBody    = 8 << 10
	descLoginFailed = "The username or password is incorrect."
	descOTPFailed   = "The one-time code is incorrect or was already used."
	descLocked      = "Too many failed attempts. Try again later."
	descExpired     = "Your sign-in request has expired or is invalid."
)

// handleLoginPage is GET /login: the form of the pending login's stage.
func (s *Server) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	p, err := s.readPending(r, s.now())
	if err != nil {
		s.renderError(w, r, http.StatusBadRequest, descExpired)
		return
	}
	s.renderLogin(w, r, http.StatusOK, p, "", "")
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, p pendingLogin, msg, username string) {
	title := "Sign in"
	if p.Stage == stageTOTP {
		title = "Two-step verification"
	}
	s.renderPage(w, r, status, "login.html", pageData{
		Title: title, Error: msg, CSRF: p.CSRF, Action: endpoint(s.cfg.Issuer, "/login"),
		Username: username, ClientID: p.Req.ClientID, Stage: p.Stage,
	}, origin(p.Req.RedirectURI))
}

// handleLoginSubmit is POST /login (behind http.CrossOriginProtection).
func (s *Server) handleLoginSubmit(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	p, err := s.readPending(r, now)
	if err != nil {
		s.renderError(w, r, http.StatusBadRequest, descExpired)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, http.StatusBadRequest, descExpired)
		return
	}
	for _, vs := range r.PostForm {
		if len(vs) != 1 {
			s.renderError(w, r, http.StatusBadRequest, descExpired)
			return
		}
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf_token")), []byte(p.CSRF)) != 1 {
		s.renderError(w, r, http.StatusForbidden, descExpired)
		return
	}
	switch p.Stage {
	case stagePassword:
		s.passwordStep(w, r, p, now)
	case stageTOTP:
		s.totpStep(w, r, p, now)
	default:
		s.renderError(w, r, http.StatusBadRequest, descExpired)
	}
}

func (s *Server) limitKeys(r *http.Request, username string) (user, ip uint64) {
	l := s.sso.limiter
	return l.key("user", store.UsernameKey(username)), l.key("ip", s.clientIP(r))
}

// locked answers 429 with Retry-After if the username or address is
// locked. Attempts while locked are not audited one by one (a flood would
// become an audit flood); the lockout itself is.
func (s *Server) locked(w http.ResponseWriter, r *http.Request, p pendingLogin, username string, now time.Time) bool {
	uk, ik := s.limitKeys(r, username)
	wait := s.sso.limiter.blocked(now, uk, ik)
	if wait <= 0 {
		return false
	}
	w.Header().Set("Retry-After", strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10))
	s.renderLogin(w, r, http.StatusTooManyRequests, p, descLocked, "")
	return true
}

// loginFailed counts a failure, audits it (and a lockout it causes) and
// re-renders the form.
func (s *Server) loginFailed(w http.ResponseWriter, r *http.Request, p pendingLogin, username, userID, reason, msg string, now time.Time) {
	uk, ik := s.limitKeys(r, username)
	lim := s.sso.limiter
	userLocked := lim.fail(now, uk, lim.cfg.UserFailures)
	ipLocked := lim.fail(now, ik, lim.cfg.IPFailures)
	data := map[string]string{"username": oauth.Excerpt(username), "stage": p.Stage}
	err := s.cfg.Store.InTx(r.Context(), func(tx store.Tx) error {
		if err := tx.AppendAudit(r.Context(), s.auditEvent(r, "sso.login_failed", userID, p.Req.ClientID, "deny", reason, data)); err != nil {
			return err
		}
		if userLocked || ipLocked {
			which := "username"
			if !userLocked {
				which = "source address"
			}
			ld := map[string]string{"username": oauth.Excerpt(username), "locked": which}
			return tx.AppendAudit(r.Context(), s.auditEvent(r, "sso.login_locked", userID, p.Req.ClientID, "deny",
				"too many failed logins: the "+which+" is locked for "+lim.cfg.Block.String(), ld))
		}
		return nil
	})
	if err != nil {
		s.log.ErrorContext(r.Context(), "audit failed login", "err", err)
		s.renderError(w, r, http.StatusServiceUnavailable, "Sign-in is temporarily unavailable. Try again later.")
		return
	}
	if userLocked || ipLocked {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(lim.cfg.Block/time.Second), 10))
		s.renderLogin(w, r, http.StatusTooManyRequests, p, descLocked, "")
		return
	}
	s.renderLogin(w, r, http.StatusUnauthorized, p, msg, username)
}

// passwordStep checks the username and password. An unknown user, a wrong
// password, a user without a password and a disabled user all get the same
// answer after the same password-hash work.
func (s *Server) passwordStep(w http.ResponseWriter, r *http.Request, p pendingLogin, now time.Time) {
	username, password := r.PostForm.Get("username"), r.PostForm.Get("password")
	if s.locked(w, r, p, username, now) {
		return
	}
	if store.CheckUsername(username) != nil || password == "" {
		s.sso.hasher.DummyCheck(password)
		s.loginFailed(w, r, p, username, "", "malformed username or empty password", descLoginFailed, now)
		return
	}
	u, err := s.cfg.Store.GetUserByUsername(r.Context(), username)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.sso.hasher.DummyCheck(password)
		s.loginFailed(w, r, p, username, "", "unknown username", descLoginFailed, now)
		return
	case err != nil:
		s.log.ErrorContext(r.Context(), "login: load user", "err", err)
		s.renderError(w, r, http.StatusServiceUnavailable, "Sign-in is temporarily unavailable. Try again later.")
		return
	}
	if err := directory.CheckPassword(u.PasswordHash, password); err != nil {
		if u.PasswordHash == "" {
			s.sso.hasher.DummyCheck(password)
		}
		s.loginFailed(w, r, p, username, u.ID, "wrong password", descLoginFailed, now)
		return
	}
	if u.Disabled {
		s.loginFailed(w, r, p, username, u.ID, "the user is disabled", descLoginFailed, now)
		return
	}
	if u.TOTPSealed != nil && (p.Req.RequireMFA || !s.cfg.MFAOnDemand) {
		p.Stage, p.UserID, p.CSRF = stageTOTP, u.ID, randomToken()
		s.writePending(w, p)
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, endpoint(s.cfg.Issuer, "/login"), http.StatusSeeOther)
		return
	}
	if p.Req.RequireMFA {
		s.deniedMFA(w, r, p, u)
		return
	}
	s.completeLogin(w, r, p, u, policy.ACRPassword, []string{"pwd"}, nil, now)
}

func (s *Server) deniedMFA(w http.ResponseWriter, r *http.Request, p pendingLogin, u store.User) {
	err := s.cfg.Store.AppendAudit(r.Context(), s.auditEvent(r, "sso.login_denied", u.ID, p.Req.ClientID, "deny",
		"the client requires a second factor and the user has none enrolled", nil))
	if err != nil {
		s.log.ErrorContext(r.Context(), "audit denied login", "err", err)
	}
	s.setCookie(w, pendingCookie, "", -1)
	s.redirectError(w, r, p.Req, &authzError{oauth.CodeAccessDenied, "the request requires a second factor the user has not enrolled"})
}

// totpStep checks the one-time code of the user who passed the password
// step. The code's time step is recorded in the transaction that creates
// the session, so a code logs in at most once.
func (s *Server) totpStep(w http.ResponseWriter, r *http.Request, p pendingLogin, now time.Time) {
	u, err := s.cfg.Store.GetUser(r.Context(), p.UserID)
	if err != nil || u.Disabled || u.TOTPSealed == nil {
		s.setCookie(w, pendingCookie, "", -1)
		s.renderError(w, r, http.StatusBadRequest, descExpired)
		return
	}
	if s.locked(w, r, p, u.Username, now) {
		return
	}
	if s.cfg.TOTP == nil {
		s.log.ErrorContext(r.Context(), "login: user has TOTP but no TOTP secret box is configured")
		s.renderError(w, r, http.StatusServiceUnavailable, "Sign-in is temporarily unavailable. Try again later.")
		return
	}
	secret, err := directory.OpenTOTPSecret(s.cfg.TOTP, u)
	if err != nil {
		s.log.ErrorContext(r.Context(), "login: open TOTP secret", "user", u.ID, "err", err)
		s.renderError(w, r, http.StatusServiceUnavailable, "Sign-in is temporarily unavailable. Try again later.")
		return
	}
	step, err := directory.ValidateTOTP(secret, r.PostForm.Get("otp"), now)
	clear(secret)
	if err != nil {
		s.loginFailed(w, r, p, u.Username, u.ID, "wrong one-time code", descOTPFailed, now)
		return
	}
	replay := directory.TOTPReplayEntry(u.ID, step)
	s.completeLogin(w, r, p, u, policy.ACRMFA, []string{"pwd", "otp"}, &replay, now)
}

// completeLogin creates the session, records the TOTP step and the audit
// event, and issues the code, all in one transaction.
func (s *Server) completeLogin(w http.ResponseWriter, r *http.Request, p pendingLogin, u store.User, acr string, amr []string, replay *store.ReplayEntry, now time.Time) {
	ctx := r.Context()
	secret := randomToken()
	sess := store.Session{
		ID: randomToken()[:22], SecretDigest: digestOf(secret), UserID: u.ID, AuthTime: now.Truncate(time.Second),
		ACR: acr, AMR: amr, CreatedAt: now, ExpiresAt: now.Add(s.cfg.SessionLifetime),
	}
	code := randomToken()
	err := s.cfg.Store.InTx(ctx, func(tx store.Tx) error {
		if replay != nil {
			if err := tx.RecordOnce(ctx, *replay); err != nil {
				return err
			}
		}
		if err := tx.CreateSession(ctx, sess); err != nil {
			return err
		}
		if err := tx.CreateAuthCode(ctx, s.authCode(code, p.Req, sess, u, now)); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, s.auditEvent(r, "sso.login", u.ID, p.Req.ClientID, "allow", "the user signed in",
			map[string]string{"sid": sess.ID, "acr": acr, "amr": oauth.ScopeString(amr)}))
	})
	if errors.Is(err, store.ErrReplay) {
		s.loginFailed(w, r, p, u.Username, u.ID, "one-time code already used", descOTPFailed, now)
		return
	}
	if err != nil {
		s.log.ErrorContext(ctx, "login: complete", "err", err)
		s.renderError(w, r, http.StatusServiceUnavailable, "Sign-in is temporarily unavailable. Try again later.")
		return
	}
	s.setCookie(w, pendingCookie, "", -1)
	s.setCookie(w, sessionCookie, secret, s.cfg.SessionLifetime)
	s.redirectCode(w, r, p.Req, code)
}
