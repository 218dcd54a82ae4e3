package idp

import (
	"context"
	"net/http"
	"time"

	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/oauth"
)

// Grant types the token endpoint dispatches on.
const (
	grantAuthorizationCode = "authorization_code"
	grantRefreshToken      = "refresh_token"
	grantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// tokenRequest is one authenticated token request, parsed once.
type tokenRequest struct {
	r      *http.Request
	form   oauth.Form
	client oauth.ClientAuth
	now    time.Time
}

// grant handles one grant_type (dex's one-type-per-grant shape). It returns
// the JSON body of a successful response, or an error that
// oauth.WriteError renders; it never writes to the response itself.
type grant interface {
	handle(ctx context.Context, req tokenRequest) (any, error)
}

// grantFunc adapts a function to grant.
type grantFunc func(ctx context.Context, req tokenRequest) (any, error)

func (f grantFunc) handle(ctx context.Context, req tokenRequest) (any, error) { return f(ctx, req) }

// handleToken is POST /token: parse strictly, authenticate the client, then
// dispatch. Every grant here requires a confidential client.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	form, err := oauth.ParseTokenForm(r, oauth.DefaultMaxTokenBody)
	if err != nil {
		oauth.WriteError(w, r, err, s.log)
		return
	}
	gt := form.Get("grant_type")
	if gt == "" {
		oauth.WriteError(w, r, oauth.InvalidRequest("the grant_type parameter is required"), s.log)
		return
	}
	g, ok := s.grants[gt]
	if !ok {
		oauth.WriteError(w, r, oauth.UnsupportedGrantType("this token endpoint supports authorization_code, refresh_token and token exchange"), s.log)
		return
	}
	client, err := s.auth.Authenticate(r.Context(), r, form)
	if err != nil {
		oauth.WriteError(w, r, err, s.log)
		return
	}
	// Every grant shares one budget per client and per address. Refusals
	// are not audited: a flood must not become a flood of audit writes.
	if err := s.limits.Allow(client.Client.ID, s.clientIP(r)); err != nil {
		oauth.WriteError(w, r, err, s.log)
		return
	}
	resp, err := g.handle(r.Context(), tokenRequest{r: r, form: form, client: client, now: s.now()})
	if err != nil {
		oauth.WriteError(w, r, err, s.log)
		return
	}
	w.Header().Set("Pragma", "no-cache")
	w.Header().Set("Cache-Control", "no-store")
	if err := httpserver.WriteJSON(w, http.StatusOK, resp); err != nil {
		s.log.ErrorContext(r.Context(), "write token response", "err", err)
	}
}
