package jose

import "errors"

// IsRejection reports whether err says the token itself is bad: it wraps
// one of the rejection sentinels (ErrTooLarge ... ErrLifetimeTooLong). It
// is false for nil, for ErrMisconfigured and ErrInvalidKeySet, and for
// errors a TrustedIssuers or KeySet passed through (a database or JWKS
// endpoint that is down), which callers must answer as a server or
// dependency failure, never as invalid_grant or invalid_client.
func IsRejection(err error) bool {
	if err == nil {
		return false
	}
	// The same list, in the same order, as the first var block of errors.go;
	// TestIsRejectionCoversErrorsGo fails when the two drift apart.
	for _, reason := range [...]error{
		ErrTooLarge, ErrMalformed, ErrEncrypted, ErrDuplicateMember, ErrForbiddenHeader, ErrAlgorithm,
		ErrType, ErrUnknownIssuer, ErrUnknownKey, ErrSignature, ErrMissingClaim, ErrInvalidClaim,
		ErrIssuer, ErrAudience, ErrExpired, ErrNotYetValid, ErrIssuedInFuture, ErrLifetimeTooLong,
	} {
		if errors.Is(err, reason) {
			return true
		}
	}
	return false
}
