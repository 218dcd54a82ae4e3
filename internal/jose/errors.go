// Package jose is OpenXAA's strict JWT layer. Every token OpenXAA reads goes
// through Verify with the profile of its kind; no other package calls
// go-jose to verify a token.
package jose

import "errors"

// Rejection reasons. Verify wraps exactly one of them so callers (and tests)
// can tell why a token was refused; the token edge maps all of them to one
// OAuth error code such as invalid_grant.
var (
	ErrTooLarge        = errors.New("jose: token exceeds the size limit")
	ErrMalformed       = errors.New("jose: malformed token")
	ErrEncrypted       = errors.New("jose: encrypted tokens (JWE) are not accepted")
	ErrDuplicateMember = errors.New("jose: duplicate JSON member name")
	ErrForbiddenHeader = errors.New("jose: forbidden header parameter")
	ErrAlgorithm       = errors.New("jose: algorithm not allowed")
	ErrType            = errors.New("jose: wrong token type (typ)")
	ErrUnknownIssuer   = errors.New("jose: issuer is not trusted")
	ErrUnknownKey      = errors.New("jose: unknown key id")
	ErrSignature       = errors.New("jose: signature does not verify")
	ErrMissingClaim    = errors.New("jose: required claim missing")
	ErrInvalidClaim    = errors.New("jose: claim has the wrong type or value")
	ErrIssuer          = errors.New("jose: issuer mismatch")
	ErrAudience        = errors.New("jose: audience mismatch")
	ErrExpired         = errors.New("jose: token expired")
	ErrNotYetValid     = errors.New("jose: token not yet valid")
	ErrIssuedInFuture  = errors.New("jose: token issued in the future")
	ErrLifetimeTooLong = errors.New("jose: token lifetime exceeds the maximum")
)

// Errors that are not token rejections.
var (
	// ErrMisconfigured reports a Profile, Expectations or TrustedIssuers
	// that the caller built wrongly (HS256 in an allowlist, no audience).
	// It is a programming error: map it to a server error, not to
	// invalid_grant.
	ErrMisconfigured = errors.New("jose: invalid verification configuration")
	// ErrInvalidKeySet reports a JWK Set document that ParseJWKS refuses.
	ErrInvalidKeySet = errors.New("jose: invalid JWK set")
)
