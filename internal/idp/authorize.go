package idp

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/policy"
	"github.com/openxaa/xaa/internal/store"
)

// authRequest is a validated authorization request. It travels in the
// pending-login cookie (MACed) between /authorize and the login pages.
type authRequest struct {
	ClientID      string   `json:"c"`
	RedirectURI   string   `json:"r"`
	State         string   `json:"s,omitempty"`
	Nonce         string   `json:"n,omitempty"`
	Scopes        []string `json:"sc"`
	CodeChallenge string   `json:"cc"`
	ForceLogin    bool     `json:"fl,omitempty"`
	MaxAge        int64    `json:"ma"` // seconds; -1 when absent
	RequireMFA    bool     `json:"mfa,omitempty"`
}

// Parameter caps at /authorize. Anything longer is refused, never cut.
const (
	maxStateLen   = 1024
	maxNonceLen   = 256
	maxAuthzBody  = 16 << 10
	challengeLen  = 43 // base64url of a SHA-256 digest, unpadded
	maxPromptLen  = 64
	maxACRListLen = 1024
)

// authzError is an error to send back to the client's redirect URI
// (RFC 6749 §4.1.2.1).
type authzError struct {
	code, description string
}

func (e *authzError) Error() string { return e.code + ": " + e.description }

// handleAuthorize is GET and POST /authorize. Errors that cannot be
// trusted to reach the client (unknown client, unregistered redirect URI)
// render a local page; every other error is redirected with iss (RFC 9207).
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	params, err := authorizeParams(r)
	if err != nil {
		s.renderError(w, r, http.StatusBadRequest, "The sign-in request is malformed.")
		return
	}
	clientID, redirectURI := params["client_id"], params["redirect_uri"]
	if len(clientID) != 1 || len(redirectURI) != 1 || clientID[0] == "" || redirectURI[0] == "" {
		s.renderError(w, r, http.StatusBadRequest, "The sign-in request must name exactly one client and one redirect URI.")
		return
	}
	client, err := s.cfg.Store.GetClient(r.Context(), Realm, clientID[0])
	switch {
	case errors.Is(err, store.ErrNotFound) || err == nil && client.Disabled:
		s.renderError(w, r, http.StatusBadRequest, "The application that sent you here is not registered.")
		return
	case err != nil:
		s.log.ErrorContext(r.Context(), "authorize: load client", "err", err)
		s.renderError(w, r, http.StatusServiceUnavailable, "Sign-in is temporarily unavailable. Try again later.")
		return
	}
	if !matchRedirectURI(client.RedirectURIs, redirectURI[0]) {
		s.renderError(w, r, http.StatusBadRequest, "The application's redirect URI is not registered.")
		return
	}
	req := authRequest{ClientID: client.ID, RedirectURI: redirectURI[0]}
	if st := params["state"]; len(st) == 1 && len(st[0]) <= maxStateLen {
		req.State = st[0] // echoed even on an error below
	}
	if aerr := parseAuthRequest(params, &req); aerr != nil {
		s.redirectError(w, r, req, aerr)
		return
	}

	now := s.now()
	sess, user, ok := s.currentSession(r.Context(), r, now)
	if ok && sessionSatisfies(sess, req, now) {
		if err := s.issueCode(r.Context(), w, r, req, sess, user, now, false); err != nil {
			s.log.ErrorContext(r.Context(), "authorize: issue code", "err", err)
			s.renderError(w, r, http.StatusServiceUnavailable, "Sign-in is temporarily unavailable. Try again later.")
		}
		return
	}
	if slices.Contains(params["prompt"], "none") {
		s.redirectError(w, r, req, &authzError{"login_required", "the user must sign in"})
		return
	}
	s.startLogin(w, r, req, now)
}

// authorizeParams returns the request's parameters: the query for GET, the
// form body for POST (RFC 6749 §3.1, OIDC Core §3.1.2.1).
func authorizeParams(r *http.Request) (url.Values, error) {
	if r.Method == http.MethodGet {
		return url.ParseQuery(r.URL.RawQuery)
	}
	ct := r.Header.Get("Content-Type")
	if mt, _, _ := strings.Cut(ct, ";"); !strings.EqualFold(strings.TrimSpace(mt), "application/x-www-form-urlencoded") {
		return nil, errors.New("authorize: POST body must be form-encoded")
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxAuthzBody)
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	return r.PostForm, nil
}

// parseAuthRequest checks everything but the client and redirect URI.
func parseAuthRequest(p url.Values, req *authRequest) *authzError {
	for name, vs := range p {
		if len(vs) > 1 {
			return &authzError{oauth.CodeInvalidRequest, "parameter " + oauth.Excerpt(name) + " is repeated"}
		}
	}
	get := func(name string) string { return p.Get(name) }
	if get("request") != "" {
		return &authzError{"request_not_supported", "request objects are not supported"}
	}
	if get("request_uri") != "" {
		return &authzError{"request_uri_not_supported", "request_uri is not supported"}
	}
	if rt := get("response_type"); rt != "code" {
		return &authzError{"unsupported_response_type", "only response_type=code is supported"}
	}
	if rm := get("response_mode"); rm != "" && rm != "query" {
		return &authzError{oauth.CodeInvalidRequest, "only response_mode=query is supported"}
	}
	if len(get("state")) > maxStateLen {
		return &authzError{oauth.CodeInvalidRequest, "state is too long"}
	}
	scopes, err := oauth.ParseScope(get("scope"))
	if err != nil || !slices.Contains(scopes, "openid") {
		return &authzError{oauth.CodeInvalidScope, "scope must include openid"}
	}
	for _, sc := range scopes {
		if !slices.Contains(supportedScopes, sc) {
			return &authzError{oauth.CodeInvalidScope, "scope " + oauth.Excerpt(sc) + " is not supported"}
		}
	}
	req.Scopes = scopes
	switch m := get("code_challenge_method"); {
	case get("code_challenge") == "":
		return &authzError{oauth.CodeInvalidRequest, "PKCE is required: send code_challenge with code_challenge_method=S256"}
	case m != "S256":
		return &authzError{oauth.CodeInvalidRequest, "code_challenge_method must be S256"}
	case !isBase64URL(get("code_challenge"), challengeLen, challengeLen):
		return &authzError{oauth.CodeInvalidRequest, "code_challenge must be 43 base64url characters"}
	}
	req.CodeChallenge = get("code_challenge")
	if n := get("nonce"); len(n) > maxNonceLen {
		return &authzError{oauth.CodeInvalidRequest, "nonce is too long"}
	} else {
		req.Nonce = n
	}
	req.MaxAge = -1
	if ma := get("max_age"); ma != "" {
		v, err := strconv.ParseInt(ma, 10, 64)
		if err != nil || v < 0 || v > 1<<31 {
			return &authzError{oauth.CodeInvalidRequest, "max_age must be a non-negative integer"}
		}
		req.MaxAge = v
	}
	if pr := get("prompt"); pr != "" {
		if len(pr) > maxPromptLen {
			return &authzError{oauth.CodeInvalidRequest, "prompt is too long"}
		}
		vals := strings.Split(pr, " ")
		for _, v := range vals {
			switch v {
			case "login":
				req.ForceLogin = true
			case "none", "consent", "select_account":
			default:
				return &authzError{oauth.CodeInvalidRequest, "prompt value " + oauth.Excerpt(v) + " is not supported"}
			}
		}
		if slices.Contains(vals, "none") && len(vals) > 1 {
			return &authzError{oauth.CodeInvalidRequest, "prompt=none cannot be combined with other values"}
		}
	}
	if acr := get("acr_values"); acr != "" {
		if len(acr) > maxACRListLen {
			return &authzError{oauth.CodeInvalidRequest, "acr_values is too long"}
		}
		// acr_values are voluntary (OIDC Core §3.1.2.1); ours that we can
		// meet are honoured, others ignored.
		req.RequireMFA = slices.Contains(strings.Fields(acr), policy.ACRMFA)
	}
	return nil
}

func isBase64URL(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// sessionSatisfies reports whether an existing session may answer req
// without a new login.
func sessionSatisfies(sess store.Session, req authRequest, now time.Time) bool {
	if req.ForceLogin {
		return false
	}
	if req.MaxAge >= 0 && now.Sub(sess.AuthTime) > time.Duration(req.MaxAge)*time.Second {
		return false
	}
	if req.RequireMFA && !policy.ACRSatisfies(sess.ACR, policy.ACRMFA) {
		return false
	}
	return true
}

// issueCode creates an authorization code for the session and redirects to
// the client. There is no consent screen: requesting apps are registered
// by an administrator, whose registration is the consent (for now).
func (s *Server) issueCode(ctx context.Context, w http.ResponseWriter, r *http.Request, req authRequest, sess store.Session, user store.User, now time.Time, fresh bool) error {
	code := randomToken()
	ac := s.authCode(code, req, sess, user, now)
	err := s.cfg.Store.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateAuthCode(ctx, ac); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, s.auditEvent(r, "sso.code_issued", user.ID, req.ClientID, "allow",
			"an authorization code was issued from an existing session", map[string]string{"sid": sess.ID}))
	})
	if err != nil {
		return err
	}
	s.redirectCode(w, r, req, code)
	return nil
}

func (s *Server) authCode(code string, req authRequest, sess store.Session, user store.User, now time.Time) store.AuthCode {
	return store.AuthCode{
		Digest: digestOf(code), ClientID: req.ClientID, RedirectURI: req.RedirectURI, UserID: user.ID,
		SessionID: sess.ID, Scope: oauth.ScopeString(req.Scopes), Nonce: req.Nonce, CodeChallenge: req.CodeChallenge,
		AuthTime: sess.AuthTime, ACR: sess.ACR, AMR: sess.AMR, IssuedAt: now, ExpiresAt: now.Add(s.cfg.CodeLifetime),
	}
}

// redirectCode sends the browser back with code, state and iss.
func (s *Server) redirectCode(w http.ResponseWriter, r *http.Request, req authRequest, code string) {
	v := url.Values{"code": {code}, "iss": {s.cfg.Issuer}}
	if req.State != "" {
		v.Set("state", req.State)
	}
	s.redirectTo(w, r, req.RedirectURI, v)
}

func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, req authRequest, e *authzError) {
	v := url.Values{"error": {e.code}, "error_description": {e.description}, "iss": {s.cfg.Issuer}}
	if req.State != "" {
		v.Set("state", req.State)
	}
	s.redirectTo(w, r, req.RedirectURI, v)
}

// redirectTo appends v to the (already validated) redirect URI's query.
func (s *Server) redirectTo(w http.ResponseWriter, r *http.Request, redirectURI string, v url.Values) {
	sep := "?"
	if strings.Contains(redirectURI, "?") {
		sep = "&"
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, redirectURI+sep+v.Encode(), http.StatusSeeOther)
}

// auditEvent builds an audit record of the browser flow or token endpoint.
func (s *Server) auditEvent(r *http.Request, typ, subject, clientID, outcome, reason string, data map[string]string) *store.AuditEvent {
	if data == nil {
		data = map[string]string{}
	}
	if r != nil {
		data["ip"] = s.clientIP(r)
	}
	actor := clientID
	if actor == "" {
		actor = "anonymous"
	}
	return &store.AuditEvent{
		Time: s.now(), Type: typ, Actor: actor, Subject: subject, ClientID: clientID,
		Outcome: outcome, Reason: reason, Data: data, RequestID: requestID(r),
	}
}

func requestID(r *http.Request) string {
	if r == nil {
		return ""
	}
	return httpserver.RequestIDFrom(r.Context())
}
