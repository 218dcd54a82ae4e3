package idp

import (
	"errors"
	"net/http"
	"strings"

	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/store"
)

type userinfoResponse struct {
	Subject           string   `json:"sub"`
	Name              string   `json:"name,omitempty"`
	PreferredUsername string   `json:"preferred_username,omitempty"`
	Email             string   `json:"email,omitempty"`
	Groups            []string `json:"groups,omitempty"`
}

// handleUserinfo is OIDC Core §5.3 with the bearer token in the
// Authorization header only (RFC 6750 §2.1): never in a query or form,
// where it would be logged. Claims follow the token's scope: profile gives
// name, preferred_username and groups, email the email.
func (s *Server) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	challenge := func(code, desc string) {
		w.Header().Set("WWW-Authenticate", `Bearer error="`+code+`"`)
		w.Header().Set("Cache-Control", "no-store")
		status := http.StatusUnauthorized
		if code == "invalid_request" {
			status = http.StatusBadRequest
		}
		http.Error(w, desc, status)
	}
	auth := r.Header.Get("Authorization")
	scheme, raw, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || raw == "" {
		w.Header().Set("WWW-Authenticate", `Bearer`)
		http.Error(w, "a bearer token is required", http.StatusUnauthorized)
		return
	}
	now := s.now()
	tok, err := jose.Verify(r.Context(), raw, jose.AccessTokenProfile(),
		jose.SingleIssuer{Issuer: s.cfg.Issuer, Keys: s.cfg.Keys.KeySet()},
		jose.Expectations{Audiences: []string{endpoint(s.cfg.Issuer, "/userinfo")}, Issuer: s.cfg.Issuer, Now: now})
	if err != nil {
		if !jose.IsRejection(err) {
			oauth.WriteError(w, r, err, s.log)
			return
		}
		challenge("invalid_token", "the access token is invalid")
		return
	}
	led, err := s.cfg.Store.GetToken(r.Context(), s.cfg.Issuer, tok.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		challenge("invalid_token", "the access token is invalid")
		return
	case err != nil:
		oauth.WriteError(w, r, err, s.log)
		return
	case led.Kind != store.TokenKindAccessToken || !led.RevokedAt.IsZero():
		challenge("invalid_token", "the access token is revoked")
		return
	}
	u, err := s.cfg.Store.GetUser(r.Context(), tok.Subject)
	if err != nil || u.Disabled {
		challenge("invalid_token", "the access token is invalid")
		return
	}
	scopes, _ := oauth.ParseScope(led.Scope)
	resp := userinfoResponse{Subject: u.ID}
	if oauth.Contains(scopes, "profile") {
		resp.Name, resp.PreferredUsername = u.DisplayName, u.Username
		if resp.Groups, err = s.cfg.Store.UserGroups(r.Context(), u.ID); err != nil {
			oauth.WriteError(w, r, err, s.log)
			return
		}
	}
	if oauth.Contains(scopes, "email") {
		resp.Email = u.Email
	}
	w.Header().Set("Cache-Control", "no-store")
	if err := httpserver.WriteJSON(w, http.StatusOK, resp); err != nil {
		s.log.ErrorContext(r.Context(), "write userinfo", "err", err)
	}
}
