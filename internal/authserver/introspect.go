package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/store"
)

// retryAfterSeconds is the Retry-After sent with every 503 of the
// introspection, revocation and revocation-list endpoints.
const retryAfterSeconds = "1"

// introspection is the RFC 7662 §2.2 response. An inactive token is
// {"active":false} and nothing else: why it is inactive is never told.
type introspection struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Subject   string   `json:"sub,omitempty"`
	Audience  string   `json:"aud,omitempty"`
	Issuer    string   `json:"iss,omitempty"`
	Expiry    int64    `json:"exp,omitempty"`
	IssuedAt  int64    `json:"iat,omitempty"`
	JWTID     string   `json:"jti,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	AuthTime  int64    `json:"auth_time,omitempty"`
	ACR       string   `json:"acr,omitempty"`
	AMR       []string `json:"amr,omitempty"`
}

// issuedToken is a verified access token of this server and its ledger row.
type issuedToken struct {
	claims accessTokenClaims
	row    store.IssuedToken
}

// errUnavailable answers a failed read or write of the token ledger or of
// the server's own keys: 503, never a verdict on the token. The cause is
// kept as text so that oauth.WriteError keeps this error (and its
// Retry-After) instead of substituting its own for store.ErrUnavailable.
func errUnavailable(what string, err error) *oauth.Error {
	e := oauth.TemporarilyUnavailable(what + " is unavailable; retry later").WithCause(errors.New(err.Error()))
	e.Header = http.Header{"Retry-After": {retryAfterSeconds}}
	return e
}

// handleIntrospect is POST /introspect (RFC 7662). Only clients registered
// here may ask (401 otherwise), and a caller learns about a token only if
// it may see the token's audience (see visibleTo); for everyone else, and
// for every token that is revoked, fenced, expired, unknown, not this
// server's or not a token at all, the answer is {"active":false}, never an
// error.
// Introspection is not audited: it changes nothing, and a gateway may ask
// for every request it serves.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	form, err := oauth.ParseTokenForm(r, oauth.DefaultMaxTokenBody)
	if err != nil {
		oauth.WriteError(w, r, err, s.log)
		return
	}
	caller, err := s.auth.Authenticate(r.Context(), r, form)
	if err != nil {
		oauth.WriteError(w, r, err, s.log)
		return
	}
	raw := form.Get("token")
	if raw == "" {
		oauth.WriteError(w, r, oauth.InvalidRequest("the token parameter is required"), s.log)
		return
	}
	// token_type_hint is ignored: access tokens are all this server issues.
	resp := introspection{}
	now := s.now()
	it, err := s.lookupToken(r.Context(), raw, now)
	live := err == nil && it != nil && it.active(now) && s.visibleTo(caller.Client.ID, it.row)
	if live {
		// A not-before fence of (client, sub) kills tokens issued before
		// it, like a revocation of each.
		var dead bool
		dead, _, err = s.fenced(r.Context(), it.claims.ClientID, it.claims.Subject, time.Unix(it.claims.IssuedAt, 0))
		if err != nil {
			err = errUnavailable("the fence list", err)
		}
		live = err == nil && !dead
	}
	switch {
	case err != nil:
		oauth.WriteError(w, r, err, s.log)
		return
	case live:
		c := it.claims
		resp = introspection{
			Active:    true,
			Scope:     c.Scope,
			ClientID:  c.ClientID,
			Subject:   c.Subject,
			Audience:  c.Audience,
			Issuer:    c.Issuer,
			Expiry:    c.Expiry,
			IssuedAt:  c.IssuedAt,
			JWTID:     c.JWTID,
			TokenType: "Bearer",
			AuthTime:  c.AuthTime,
			ACR:       c.ACR,
			AMR:       c.AMR,
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	if err := httpserver.WriteJSON(w, http.StatusOK, resp); err != nil {
		s.log.ErrorContext(r.Context(), "write introspection response", "err", err)
	}
}

// lookupToken verifies raw as an access token this server issued (its own
// issuer and keys, an audience it governs, the RFC 9068 profile) and reads
// its ledger row. It returns nil, nil for anything that is not such a
// token with a row that matches it: the caller treats that as unknown.
// Only a failure to read the keys or the ledger is an error.
func (s *Server) lookupToken(ctx context.Context, raw string, now time.Time) (*issuedToken, error) {
	tok, err := jose.Verify(ctx, raw, jose.AccessTokenProfile(),
		jose.SingleIssuer{Issuer: s.cfg.Issuer, Keys: s.cfg.Keys.KeySet()},
		jose.Expectations{Audiences: s.governed(), Issuer: s.cfg.Issuer, Now: now})
	switch {
	case err == nil:
	case jose.IsRejection(err):
		return nil, nil
	case errors.Is(err, jose.ErrMisconfigured):
		return nil, fmt.Errorf("authserver: verify access token: %w", err)
	default:
		return nil, errUnavailable("the signing key set", err)
	}
	var c accessTokenClaims
	if err := tok.Decode(&c); err != nil {
		return nil, nil
	}
	row, err := s.getToken(ctx, tok.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, errUnavailable("the token ledger", err)
	}
	// The ledger is the authority; a signed token it does not describe
	// exactly (another kind, client, subject, audience or scope) is not
	// one this server issued as such.
	if row.Kind != store.TokenKindAccessToken || row.ClientID != c.ClientID || row.Subject != c.Subject ||
		row.Audience != c.Audience || row.Scope != c.Scope || c.ClientID == "" {
		return nil, nil
	}
	return &issuedToken{claims: c, row: row}, nil
}

// active: not revoked and not expired by the ledger's clock, with no
// leeway (the verifier's leeway is for other parties' clocks).
func (it *issuedToken) active(now time.Time) bool {
	return it.row.RevokedAt.IsZero() && now.Before(it.row.ExpiresAt)
}

// visibleTo is the introspection and revocation-list rule: a caller sees a
// token if it is the client the token was issued to, or if its policy
// lists the token's resource (a gateway or resource server is registered
// here as a client whose policy names the resources it fronts). Anyone
// else learns nothing, not even that the token exists.
func (s *Server) visibleTo(clientID string, row store.IssuedToken) bool {
	if clientID == row.ClientID {
		return true
	}
	return s.maySeeResource(clientID, row.Resource)
}

func (s *Server) maySeeResource(clientID, resource string) bool {
	p := s.clients[clientID]
	return p != nil && slices.Contains(p.resources, resource)
}

// governed lists the resources of this server: the only audiences its
// access tokens carry.
func (s *Server) governed() []string {
	out := make([]string, 0, len(s.resources))
	for uri := range s.resources {
		out = append(out, uri)
	}
	slices.Sort(out)
	return out
}

func (s *Server) getToken(ctx context.Context, jti string) (store.IssuedToken, error) {
	return s.cfg.Store.GetToken(ctx, s.cfg.Issuer, jti)
}
