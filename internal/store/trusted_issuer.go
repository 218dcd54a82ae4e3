package store

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// TrustedIssuer is an identity provider whose ID-JAGs an authorization
// server redeems. Configuration is synced into these rows at startup, and
// every instance of the authorization server reads them (with a short
// cache), so that a change, an issuer disabled above all, reaches every
// instance sharing the database.
type TrustedIssuer struct {
	// Realm is the issuer of the authorization server that trusts it.
	Realm string
	// Issuer is the IdP's iss, compared exactly. It differs from Realm
	// (the cross-domain rule) and holds no "|".
	Issuer string
	// JWKSURI is where the IdP publishes its keys: an absolute http(s)
	// URL; the authorization server decides which schemes and hosts it
	// will fetch.
	JWKSURI string
	// Algorithms narrows the ID-JAG profile's (ES256, EdDSA, RS256,
	// PS256); empty means all four.
	Algorithms []string
	// MaxAssertionLifetime caps exp - iat: 0 (the server's default) or
	// whole seconds from 1s to MaxIDJAGLifetime.
	MaxAssertionLifetime time.Duration
	// AllowReuse lets the same client redeem the same ID-JAG bytes again
	// before they expire.
	AllowReuse bool
	// Disabled refuses every ID-JAG of the issuer.
	Disabled  bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// IDJAGAlgorithms are the signing algorithms of the ID-JAG profile.
var IDJAGAlgorithms = []string{"ES256", "EdDSA", "RS256", "PS256"}

const maxURLLen = 2048

// Validate checks t's invariants.
func (t TrustedIssuer) Validate() error {
	if err := checkID("trusted issuer realm", t.Realm); err != nil {
		return err
	}
	if err := checkID("trusted issuer", t.Issuer); err != nil {
		return err
	}
	switch {
	case strings.Contains(t.Issuer, "|"):
		return fmt.Errorf("%w: trusted issuer %q holds \"|\"", ErrInvalid, truncate(t.Issuer))
	case t.Issuer == t.Realm:
		return fmt.Errorf("%w: an authorization server cannot trust its own issuer (cross-domain rule)", ErrInvalid)
	case t.MaxAssertionLifetime != 0 && (t.MaxAssertionLifetime < time.Second || t.MaxAssertionLifetime > MaxIDJAGLifetime || t.MaxAssertionLifetime%time.Second != 0):
		return fmt.Errorf("%w: trusted issuer %q: maximum assertion lifetime %s must be 0 or whole seconds from 1s to %s", ErrInvalid, truncate(t.Issuer), t.MaxAssertionLifetime, MaxIDJAGLifetime)
	case t.CreatedAt.IsZero() || t.UpdatedAt.IsZero():
		return fmt.Errorf("%w: trusted issuer needs creation and update times", ErrInvalid)
	}
	u, err := url.Parse(t.JWKSURI)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" ||
		len(t.JWKSURI) > maxURLLen || !printableASCII(t.JWKSURI) {
		return fmt.Errorf("%w: trusted issuer %q: jwks_uri %q is not an absolute http(s) URL", ErrInvalid, truncate(t.Issuer), truncate(t.JWKSURI))
	}
	for i, a := range t.Algorithms {
		if !slices.Contains(IDJAGAlgorithms, a) {
			return fmt.Errorf("%w: trusted issuer %q: alg %q is not one of the ID-JAG profile's (%s)", ErrInvalid, truncate(t.Issuer), truncate(a), strings.Join(IDJAGAlgorithms, ", "))
		}
		if slices.Contains(t.Algorithms[:i], a) {
			return fmt.Errorf("%w: trusted issuer %q lists alg %q twice", ErrInvalid, truncate(t.Issuer), a)
		}
	}
	return nil
}

// TrustedIssuers stores the trusted issuers of authorization servers.
// There is no delete: an issuer no longer trusted is disabled, and its row
// records that it once was.
type TrustedIssuers interface {
	// CreateTrustedIssuer inserts t after Validate; ErrConflict if
	// (Realm, Issuer) exists.
	CreateTrustedIssuer(ctx context.Context, t TrustedIssuer) error
	// GetTrustedIssuer returns the row, or ErrNotFound.
	GetTrustedIssuer(ctx context.Context, realm, issuer string) (TrustedIssuer, error)
	// ListTrustedIssuers returns the realm's trusted issuers, disabled
	// ones included, by issuer.
	ListTrustedIssuers(ctx context.Context, realm string) ([]TrustedIssuer, error)
	// UpdateTrustedIssuer atomically reads the row, applies fn and writes
	// the result after Validate; ErrNotFound if absent. Realm, Issuer and
	// CreatedAt cannot change.
	UpdateTrustedIssuer(ctx context.Context, realm, issuer string, fn func(TrustedIssuer) (TrustedIssuer, error)) error
}
