// Package idjag holds the wire-level vocabulary of the Identity Assertion JWT
// Authorization Grant (draft-ietf-oauth-identity-assertion-authz-grant): the
// registered URNs, the JWT type and the claim set. It is public and
// dependency-free so that third-party IdPs, authorization servers and clients
// can share exactly the names OpenXAA uses.
//
// Minting and verification arrive with the IdP and the resource
// authorization server; both go through OpenXAA's strict JWT layer.
package idjag

// Registered identifiers.
const (
	// TokenType is the RFC 8693 token type of an ID-JAG, used as
	// requested_token_type and issued_token_type.
	TokenType = "urn:ietf:params:oauth:token-type:id-jag"
	// GrantProfile is advertised in authorization_grant_profiles_supported.
	GrantProfile = "urn:ietf:params:oauth:grant-profile:id-jag"
	// JWTType is the required "typ" header of an ID-JAG (RFC 8725 §3.11).
	JWTType = "oauth-id-jag+jwt"

	// GrantTypeTokenExchange is the RFC 8693 grant type used at the IdP.
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	// GrantTypeJWTBearer is the RFC 7523 grant type used at the resource
	// authorization server.
	GrantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

	// TokenTypeIDToken is the RFC 8693 subject_token_type of an OIDC ID token.
	TokenTypeIDToken = "urn:ietf:params:oauth:token-type:id_token"
	// TokenTypeRefreshToken is the RFC 8693 subject_token_type of a refresh token.
	TokenTypeRefreshToken = "urn:ietf:params:oauth:token-type:refresh_token"
)

// Claims is the claim set of an ID-JAG. Audience is always a single value:
// the resource authorization server's issuer identifier.
type Claims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience string   `json:"aud"`
	ClientID string   `json:"client_id"` // the client's id at the authorization server
	JWTID    string   `json:"jti"`
	IssuedAt int64    `json:"iat"`
	Expiry   int64    `json:"exp"`
	Resource string   `json:"resource,omitempty"`
	Scope    string   `json:"scope,omitempty"` // space-separated, never an array
	AuthTime int64    `json:"auth_time,omitempty"`
	ACR      string   `json:"acr,omitempty"`
	AMR      []string `json:"amr,omitempty"`
	Email    string   `json:"email,omitempty"` // only when the connection asks for it
}
