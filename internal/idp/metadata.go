package idp

import (
	"net/http"

	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/policy"
)

// tokenTypeIDJAGURN is the RFC 8693 token type identifier of an ID-JAG.
const tokenTypeIDJAGURN = "urn:ietf:params:oauth:token-type:id-jag"

// Scopes this IdP understands at /authorize.
var supportedScopes = []string{"openid", "profile", "email", "offline_access"}

// metadata is the OpenID Provider / RFC 8414 discovery document.
type metadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	ResponseTypes                     []string `json:"response_types_supported"`
	ResponseModes                     []string `json:"response_modes_supported"`
	GrantTypes                        []string `json:"grant_types_supported"`
	CodeChallengeMethods              []string `json:"code_challenge_methods_supported"`
	TokenAuthMethods                  []string `json:"token_endpoint_auth_methods_supported"`
	TokenAuthSigningAlgs              []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	IDTokenSigningAlgs                []string `json:"id_token_signing_alg_values_supported"`
	SubjectTypes                      []string `json:"subject_types_supported"`
	Scopes                            []string `json:"scopes_supported"`
	Claims                            []string `json:"claims_supported"`
	ACRValues                         []string `json:"acr_values_supported"`
	PromptValues                      []string `json:"prompt_values_supported"`
	ISSParameter                      bool     `json:"authorization_response_iss_parameter_supported"`
	ClaimsParameter                   bool     `json:"claims_parameter_supported"`
	RequestParameter                  bool     `json:"request_parameter_supported"`
	RequestURIParameter               bool     `json:"request_uri_parameter_supported"`
	IdentityChainingRequestedTokTypes []string `json:"identity_chaining_requested_token_types_supported"`
}

// MetadataHandler serves the IdP's discovery document, at both
// /.well-known/openid-configuration and the RFC 8414 location. Everything
// in it comes from configuration, never from the request.
func (s *Server) MetadataHandler() http.Handler {
	iss := s.cfg.Issuer
	m := metadata{
		Issuer:                iss,
		AuthorizationEndpoint: endpoint(iss, "/authorize"),
		TokenEndpoint:         endpoint(iss, "/token"),
		JWKSURI:               endpoint(iss, "/jwks.json"),
		UserinfoEndpoint:      endpoint(iss, "/userinfo"),
		ResponseTypes:         []string{"code"},
		ResponseModes:         []string{"query"},
		GrantTypes:            []string{grantAuthorizationCode, grantRefreshToken, grantTokenExchange},
		CodeChallengeMethods:  []string{"S256"},
		TokenAuthMethods:      []string{oauth.AuthMethodSecretBasic, oauth.AuthMethodSecretPost, oauth.AuthMethodPrivateKeyJWT},
		TokenAuthSigningAlgs:  []string{"ES256", "EdDSA", "RS256", "PS256"},
		IDTokenSigningAlgs:    []string{s.cfg.Keys.Signer().Algorithm()},
		SubjectTypes:          []string{"public"},
		Scopes:                supportedScopes,
		Claims: []string{"iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "jti",
			"name", "email", "preferred_username", "groups"},
		ACRValues:                         []string{policy.ACRPassword, policy.ACRMFA},
		PromptValues:                      []string{"none", "login"},
		ISSParameter:                      true,
		IdentityChainingRequestedTokTypes: []string{tokenTypeIDJAGURN},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if err := httpserver.WriteJSON(w, http.StatusOK, m); err != nil {
			s.log.ErrorContext(r.Context(), "write metadata", "err", err)
		}
	})
}
