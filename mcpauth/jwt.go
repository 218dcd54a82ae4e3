package mcpauth

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/jwkscache"
)

// JWTOptions configure a JWTVerifier for RFC 9068 access tokens.
type JWTOptions struct {
	// Issuer is the authorization server's issuer; iss must equal it exactly.
	Issuer string
	// Resource is the canonical URI of this MCP server; aud must equal it
	// (a single value or a one-element array).
	Resource string
	// JWKSURL is fetched through OpenXAA's SSRF-guarded JWKS cache: https
	// to public addresses only, unless AllowLoopbackHTTP or AllowedCIDRs
	// say otherwise.
	JWKSURL string
	// JWKS is a static JWK Set used instead of JWKSURL.
	JWKS []byte
	// AllowLoopbackHTTP permits an http:// JWKSURL on a loopback host and
	// connections to loopback addresses (development and tests).
	AllowLoopbackHTTP bool
	// HTTPClient is not used to connect: the JWKS cache dials through its
	// own address policy. When its Transport is an *http.Transport with
	// TLSClientConfig.RootCAs, those roots verify the JWKS server.
	HTTPClient *http.Client
	// Revocations, if set, is consulted after a token verifies.
	Revocations Revocations
	// Now replaces time.Now (tests).
	Now func() time.Time

	// AllowedCIDRs are private ranges the JWKS fetch may connect to, for
	// an authorization server inside the operator's network. (Addition to
	// the contract.)
	AllowedCIDRs []netip.Prefix
	// Logger receives JWKS fetch failures. Nil discards. (Addition.)
	Logger *slog.Logger
}

// JWTVerifier verifies access tokens locally with the authorization
// server's keys. It is safe for concurrent use.
type JWTVerifier struct {
	issuer, resource string
	issuers          jose.TrustedIssuers
	profile          jose.Profile
	revocations      Revocations
	now              func() time.Time
}

// NewJWTVerifier validates opts and returns a verifier. Exactly one of
// JWKSURL and JWKS must be set.
func NewJWTVerifier(opts *JWTOptions) (*JWTVerifier, error) {
	if opts == nil {
		return nil, errors.New("mcpauth: JWTOptions are required")
	}
	if opts.Issuer == "" {
		return nil, errors.New("mcpauth: JWTOptions.Issuer is required")
	}
	if opts.Resource == "" {
		return nil, errors.New("mcpauth: JWTOptions.Resource is required")
	}
	var keys jose.KeySet
	switch {
	case opts.JWKSURL != "" && len(opts.JWKS) > 0:
		return nil, errors.New("mcpauth: set JWKSURL or JWKS, not both")
	case len(opts.JWKS) > 0:
		set, err := jose.ParseJWKS(opts.JWKS)
		if err != nil {
			return nil, fmt.Errorf("mcpauth: JWKS: %w", err)
		}
		if len(set.Keys) == 0 {
			return nil, errors.New("mcpauth: JWKS holds no usable signing key")
		}
		static, err := jose.NewStaticKeySet(set)
		if err != nil {
			return nil, fmt.Errorf("mcpauth: JWKS: %w", err)
		}
		keys = static
	case opts.JWKSURL != "":
		cache, err := jwkscache.New(&jwkscache.Options{
			AllowInsecureLoopback: opts.AllowLoopbackHTTP,
			AllowedCIDRs:          opts.AllowedCIDRs,
			RootCAs:               rootCAs(opts.HTTPClient),
			Logger:                opts.Logger,
			Now:                   opts.Now,
		})
		if err != nil {
			return nil, fmt.Errorf("mcpauth: JWKS cache: %w", err)
		}
		remote, err := cache.KeySet(opts.JWKSURL)
		if err != nil {
			return nil, fmt.Errorf("mcpauth: JWKSURL: %w", err)
		}
		keys = remote
	default:
		return nil, errors.New("mcpauth: JWKSURL or JWKS is required")
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &JWTVerifier{
		issuer:      opts.Issuer,
		resource:    opts.Resource,
		issuers:     jose.SingleIssuer{Issuer: opts.Issuer, Keys: keys},
		profile:     jose.AccessTokenProfile(),
		revocations: opts.Revocations,
		now:         now,
	}, nil
}

func rootCAs(c *http.Client) *x509.CertPool {
	if c == nil {
		return nil
	}
	if t, ok := c.Transport.(*http.Transport); ok && t.TLSClientConfig != nil {
		return t.TLSClientConfig.RootCAs
	}
	return nil
}

// Verify implements Verifier: typ at+jwt exactly, ES256 or EdDSA, iss, a
// single aud equal to the resource, exp/iat/nbf with 30 s leeway, jti,
// sub and client_id, then the optional revocation list.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (*TokenInfo, error) {
	tok, err := jose.Verify(ctx, token, v.profile, v.issuers,
		jose.Expectations{Audiences: []string{v.resource}, Issuer: v.issuer, Now: v.now()})
	if err != nil {
		if jose.IsRejection(err) {
			return nil, invalid(describeRejection(err), err)
		}
		return nil, fmt.Errorf("mcpauth: verify access token: %w", err)
	}
	ti, err := tokenInfoFromClaims(tok)
	if err != nil {
		return nil, err
	}
	if v.revocations != nil && v.revocations.Revoked(ti) {
		return nil, invalid("the access token has been revoked", nil)
	}
	return ti, nil
}

// describeRejection maps a jose rejection to a fixed sentence: the error
// text itself may quote attacker-chosen claim values.
func describeRejection(err error) string {
	switch {
	case errors.Is(err, jose.ErrExpired):
		return "the access token has expired"
	case errors.Is(err, jose.ErrNotYetValid), errors.Is(err, jose.ErrIssuedInFuture):
		return "the access token is not valid yet"
	case errors.Is(err, jose.ErrAudience):
		return "the access token was issued for another resource"
	case errors.Is(err, jose.ErrType):
		return "the bearer token is not an access token (typ must be at+jwt)"
	case errors.Is(err, jose.ErrIssuer), errors.Is(err, jose.ErrUnknownIssuer):
		return "the access token was issued by an untrusted issuer"
	case errors.Is(err, jose.ErrSignature), errors.Is(err, jose.ErrUnknownKey):
		return "the access token signature does not verify"
	case errors.Is(err, jose.ErrAlgorithm):
		return "the access token is signed with an algorithm that is not accepted"
	case errors.Is(err, jose.ErrLifetimeTooLong):
		return "the access token lifetime exceeds the maximum"
	case errors.Is(err, jose.ErrMissingClaim), errors.Is(err, jose.ErrInvalidClaim):
		return "the access token lacks a required claim or has a malformed one"
	}
	return "the access token is malformed"
}

// tokenInfoFromClaims reads the RFC 9068 claims beyond the registered ones
// jose checked. Types are strict: a claim of the wrong type refuses the
// token rather than being read as absent.
func tokenInfoFromClaims(tok *jose.Token) (*TokenInfo, error) {
	bad := func(what string) error {
		return invalid("the access token lacks a required claim or has a malformed one", errors.New(what))
	}
	ti := &TokenInfo{
		Issuer:     tok.Issuer,
		Subject:    tok.Subject,
		JTI:        tok.ID,
		IssuedAt:   tok.IssuedAt,
		Expiration: tok.Expiry,
	}
	if len(tok.Audience) != 1 {
		return nil, bad("aud must hold one value")
	}
	ti.Audience = tok.Audience[0]
	c := tok.Claims
	var ok bool
	if ti.ClientID, ok = claimString(c, "client_id"); !ok || ti.ClientID == "" {
		return nil, bad("client_id must be a non-empty string")
	}
	if raw, present := c["scope"]; present {
		s, ok := rawString(raw)
		if !ok {
			return nil, bad("scope must be a string")
		}
		ti.Scopes = splitScope(s)
	}
	if raw, present := c["acr"]; present {
		if ti.ACR, ok = rawString(raw); !ok {
			return nil, bad("acr must be a string")
		}
	}
	if raw, present := c["amr"]; present {
		if err := json.Unmarshal(raw, &ti.AMR); err != nil || len(raw) == 0 || raw[0] != '[' {
			return nil, bad("amr must be an array of strings")
		}
	}
	if raw, present := c["auth_time"]; present {
		t, ok := numericDate(raw)
		if !ok {
			return nil, bad("auth_time must be a non-negative number of seconds")
		}
		ti.AuthTime = t
	}
	return ti, nil
}

func claimString(c map[string]json.RawMessage, name string) (string, bool) {
	raw, present := c[name]
	if !present {
		return "", false
	}
	return rawString(raw)
}

// rawString decodes raw if it is a JSON string (null is not).
func rawString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// numericDate decodes an RFC 7519 NumericDate, truncated to whole seconds.
func numericDate(raw json.RawMessage) (time.Time, bool) {
	if len(raw) == 0 || raw[0] == '"' || raw[0] == 'n' || raw[0] == 't' || raw[0] == 'f' ||
		raw[0] == '{' || raw[0] == '[' {
		return time.Time{}, false
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return time.Time{}, false
	}
	return unixDate(f)
}

// unixDate converts seconds since the epoch, refusing negative values,
// NaN and anything past year 9999.
func unixDate(f float64) (time.Time, bool) {
	const maxSeconds = 253402300799 // 9999-12-31T23:59:59Z
	if !(f >= 0 && f <= maxSeconds) || math.IsNaN(f) {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0).UTC(), true
}

// splitScope splits an RFC 6749 scope string on single spaces. Other
// whitespace stays inside a token, so "a\tb" never grants "a" or "b".
func splitScope(s string) []string {
	var out []string
	for _, p := range strings.Split(s, " ") {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}
