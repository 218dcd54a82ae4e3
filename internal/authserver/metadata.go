package authserver

import (
	"net/http"

	"github.com/openxaa/xaa/idjag"
	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/oauth"
)

// metadata is the RFC 8414 document. authorization_endpoint is absent and
// response_types_supported (REQUIRED by RFC 8414 §2) is empty on purpose:
// this server has no /authorize, and advertising "code" would promise a
// flow it does not run.
// Trusted issuers never appear: listing the id-jag profile promises the
// processing rules only (spec digest §1.10).
type metadata struct {
	Issuer               string   `json:"issuer"`
	TokenEndpoint        string   `json:"token_endpoint"`
	ResponseTypes        []string `json:"response_types_supported"`
	JWKSURI              string   `json:"jwks_uri"`
	GrantTypes           []string `json:"grant_types_supported"`
	GrantProfiles        []string `json:"authorization_grant_profiles_supported"`
	TokenAuthMethods     []string `json:"token_endpoint_auth_methods_supported"`
	TokenAuthSigningAlgs []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	CodeChallengeMethods []string `json:"code_challenge_methods_supported"`
	// Introspection and revocation authenticate callers exactly as the
	// token endpoint does.
	IntrospectionEndpoint        string   `json:"introspection_endpoint"`
	IntrospectionAuthMethods     []string `json:"introspection_endpoint_auth_methods_supported"`
	IntrospectionAuthSigningAlgs []string `json:"introspection_endpoint_auth_signing_alg_values_supported"`
	RevocationEndpoint           string   `json:"revocation_endpoint"`
	RevocationAuthMethods        []string `json:"revocation_endpoint_auth_methods_supported"`
	RevocationAuthSigningAlgs    []string `json:"revocation_endpoint_auth_signing_alg_values_supported"`
	// Non-standard, for gateways: where they poll revoked jtis and
	// not-before fences, and fetch a resource's tool policy. Both
	// authenticate callers like the token endpoint.
	RevocationListEndpoint string `json:"openxaa_revocation_list_endpoint"`
	ResourcePolicyEndpoint string `json:"openxaa_resource_policy_endpoint"`
	// Non-standard, for trusted identity providers: where they push
	// Security Event Tokens (RFC 8935); the SET's signature authenticates
	// the sender.
	SETEndpoint string `json:"openxaa_set_endpoint"`
}

// MetadataHandler serves the discovery document, at both
// /.well-known/oauth-authorization-server and the OpenID alias. Everything
// in it comes from configuration, never from the request.
func (s *Server) MetadataHandler() http.Handler {
	iss := s.cfg.Issuer
	authMethods := []string{oauth.AuthMethodSecretBasic, oauth.AuthMethodSecretPost, oauth.AuthMethodPrivateKeyJWT}
	algs := jose.ClientAssertionProfile().Algorithms
	m := metadata{
		Issuer:               iss,
		TokenEndpoint:        endpoint(iss, "/token"),
		ResponseTypes:        []string{},
		JWKSURI:              endpoint(iss, "/jwks.json"),
		GrantTypes:           []string{idjag.GrantTypeJWTBearer},
		GrantProfiles:        []string{idjag.GrantProfile},
		TokenAuthMethods:     authMethods,
		TokenAuthSigningAlgs: algs,
		// Strict clients (the go-sdk) refuse metadata without it.
		CodeChallengeMethods: []string{"S256"},

		IntrospectionEndpoint:        endpoint(iss, "/introspect"),
		IntrospectionAuthMethods:     authMethods,
		IntrospectionAuthSigningAlgs: algs,
		RevocationEndpoint:           endpoint(iss, "/revoke"),
		RevocationAuthMethods:        authMethods,
		RevocationAuthSigningAlgs:    algs,
		RevocationListEndpoint:       endpoint(iss, "/revocations"),
		ResourcePolicyEndpoint:       endpoint(iss, "/resource-policy"),
		SETEndpoint:                  endpoint(iss, "/set"),
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if err := httpserver.WriteJSON(w, http.StatusOK, m); err != nil {
			s.log.ErrorContext(r.Context(), "write metadata", "err", err)
		}
	})
}
