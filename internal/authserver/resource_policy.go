package authserver

import (
	"net/http"
	"slices"
	"time"

	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/store"
)

// resourcePolicy is the response of /resource-policy: what a gateway in
// front of the resource enforces per tool call.
type resourcePolicy struct {
	Resource            string                `json:"resource"`
	Scopes              []string              `json:"scopes"`
	AccessTokenLifetime int64                 `json:"access_token_lifetime"` // seconds
	Tools               map[string]toolPolicy `json:"tools"`                 // encoding/json sorts the names
}

type toolPolicy struct {
	Scopes    []string `json:"scopes"`
	ACRValues []string `json:"acr_values,omitempty"`
	MaxAge    int64    `json:"max_age,omitempty"` // seconds
}

// errNoPolicy is the one answer for a resource the caller may not read:
// "not governed here" and "not in your policy" are indistinguishable, so
// the endpoint does not list the governed resources to any client.
func errNoPolicy() *oauth.Error {
	return oauth.InvalidTarget("the client may not read the policy of this resource, or this authorization server does not govern it")
}

// handleResourcePolicy is GET /resource-policy?resource=<uri> (the query
// admits only resource, so client_secret_basic is the only way to
// authenticate) or POST /resource-policy with resource in the form (any
// client authentication method). The caller must be a client whose policy
// lists the resource; everyone else gets 400 invalid_target. Not audited:
// it changes nothing, and gateways refresh it periodically.
func (s *Server) handleResourcePolicy(w http.ResponseWriter, r *http.Request) {
	form, params, err := readParams(r, "resource")
	if err != nil {
		oauth.WriteError(w, r, err, s.log)
		return
	}
	caller, err := s.auth.Authenticate(r.Context(), r, form)
	if err != nil {
		oauth.WriteError(w, r, err, s.log)
		return
	}
	resp, err := s.resourcePolicy(caller.Client.ID, params.Get("resource"))
	if err != nil {
		oauth.WriteError(w, r, err, s.log)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	if err := httpserver.WriteJSON(w, http.StatusOK, resp); err != nil {
		s.log.ErrorContext(r.Context(), "write resource policy", "err", err)
	}
}

// resourcePolicy answers for the resource named by raw, compared in its
// canonical form.
func (s *Server) resourcePolicy(clientID, raw string) (*resourcePolicy, error) {
	if raw == "" {
		return nil, oauth.InvalidRequest("the resource parameter is required")
	}
	uri, err := store.CanonicalResource(raw)
	if err != nil {
		return nil, errNoPolicy().WithCause(err)
	}
	res := s.resources[uri]
	if res == nil || !s.maySeeResource(clientID, uri) {
		return nil, errNoPolicy()
	}
	out := &resourcePolicy{
		Resource:            res.uri,
		Scopes:              slices.Clone(res.scopes),
		AccessTokenLifetime: int64(res.lifetime / time.Second),
		Tools:               make(map[string]toolPolicy, len(res.tools)),
	}
	for name, t := range res.tools {
		out.Tools[name] = toolPolicy{Scopes: slices.Clone(t.Scopes), ACRValues: slices.Clone(t.ACRValues), MaxAge: int64(t.MaxAge / time.Second)}
	}
	return out, nil
}
