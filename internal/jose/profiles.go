package jose

import (
	"fmt"
	"strings"
	"time"
)

// Limits shared by all profiles unless a profile overrides them.
const (
	// DefaultLeeway absorbs clock skew between issuer and verifier for exp,
	// nbf and iat alike (go-jose's own default of 60 s is looser).
	DefaultLeeway = 30 * time.Second
	// DefaultMaxSize caps the compact token before any decoding, so a hostile
	// token costs at most this much work.
	DefaultMaxSize = 16 << 10

	// maxLeeway bounds a configured leeway: more than this is no longer
	// skew tolerance but an extension of the token lifetime.
	maxLeeway = 5 * time.Minute
)

// Token types (JOSE "typ" values) of the tokens OpenXAA reads.
const (
	// TypeIDJAG is the typ of an Identity Assertion JWT Authorization Grant.
	TypeIDJAG = "oauth-id-jag+jwt"
	// TypeAccessToken is the RFC 9068 typ of a JWT access token.
	TypeAccessToken = "at+jwt"
	// TypeJWT is the generic typ that ID tokens and client assertions carry,
	// when they carry one at all.
	TypeJWT = "JWT"
	// TypeSET is the explicit typ of a Security Event Token (RFC 8417
	// §2.3), which keeps a SET from passing as any other kind of JWT.
	TypeSET = "secevent+jwt"
	// typeClientAuthentication is the explicit typ of a client assertion
	// proposed by draft-ietf-oauth-rfc7523bis.
	typeClientAuthentication = "client-authentication+jwt"
)

// Profile is the verification policy of one token kind. Build one with the
// constructors below; every kind has its own so that a token of one kind can
// never pass as another (the Keycloak logout-token-as-access-token bug).
type Profile struct {
	// Kind names the token in error messages: "ID token", "ID-JAG", ...
	Kind string
	// Types lists the accepted typ values, compared as media types per
	// RFC 7515 §4.1.9 (ASCII case-insensitive, "application/" optional).
	// An empty string in the list means typ may be absent.
	Types []string
	// Algorithms is the alg allowlist. Only ES256, EdDSA, RS256 and PS256
	// are supported; a profile listing anything else (none, HS256, ...)
	// is refused as a whole.
	Algorithms []string
	// RequireJTI makes jti mandatory, for tokens that are replay-checked.
	RequireJTI bool
	// OptionalSubject lets sub be absent, for tokens whose subject lives
	// elsewhere (a SET names it inside its event). A present sub must
	// still be a non-empty string.
	OptionalSubject bool
	// SingleAudience requires aud to hold exactly one value.
	SingleAudience bool
	// MaxLifetime caps exp - iat; 0 means no cap.
	MaxLifetime time.Duration
	// Leeway is the clock-skew allowance; 0 means DefaultLeeway.
	Leeway time.Duration
	// MaxSize caps the compact token in bytes; 0 means DefaultMaxSize.
	MaxSize int
}

// IDTokenProfile verifies OpenID Connect ID tokens, from our own IdP or an
// upstream one. aud may hold several values; checking azp is the caller's job.
func IDTokenProfile() Profile {
	return Profile{
		Kind:       "ID token",
		Types:      []string{TypeJWT, ""},
		Algorithms: []string{ES256, EdDSA, RS256, PS256},
	}
}

// IDJAGProfile verifies ID-JAGs at a resource authorization server. They are
// single-use grants for exactly one audience, so jti and a single aud are
// required, and their lifetime is capped at 10 minutes.
func IDJAGProfile() Profile {
	return Profile{
		Kind:           "ID-JAG",
		Types:          []string{TypeIDJAG},
		Algorithms:     []string{ES256, EdDSA, RS256, PS256},
		RequireJTI:     true,
		SingleAudience: true,
		MaxLifetime:    600 * time.Second,
	}
}

// AccessTokenProfile verifies RFC 9068 access tokens. OpenXAA issues them
// itself, never with RSA, so only ES256 and EdDSA are accepted.
func AccessTokenProfile() Profile {
	return Profile{
		Kind:           "access token",
		Types:          []string{TypeAccessToken},
		Algorithms:     []string{ES256, EdDSA},
		RequireJTI:     true,
		SingleAudience: true,
		MaxLifetime:    3600 * time.Second,
	}
}

// SETProfile verifies Security Event Tokens (RFC 8417) pushed to an
// authorization server (RFC 8935). The typ is explicit and required, a SET
// is single-use (jti) for exactly one audience, its subject lives in its
// event (sub is optional), and it must be fresh: exp - iat is at most five
// minutes, so a transmitter re-signs each delivery attempt.
func SETProfile() Profile {
	return Profile{
		Kind:            "security event token",
		Types:           []string{TypeSET},
		Algorithms:      []string{ES256, EdDSA, RS256, PS256},
		RequireJTI:      true,
		OptionalSubject: true,
		SingleAudience:  true,
		MaxLifetime:     300 * time.Second,
	}
}

// ClientAssertionProfile verifies RFC 7523 private_key_jwt client
// assertions. Most clients send no typ or "JWT"; the explicit
// "client-authentication+jwt" of RFC 7523bis is accepted too. Assertions
// are replay-checked and must be short-lived.
func ClientAssertionProfile() Profile {
	return Profile{
		Kind:        "client assertion",
		Types:       []string{TypeJWT, "", typeClientAuthentication},
		Algorithms:  []string{ES256, EdDSA, RS256, PS256},
		RequireJTI:  true,
		MaxLifetime: 300 * time.Second,
	}
}

// check reports a profile that must not be used to verify anything. It is
// called on every Verify: a profile is a plain struct that callers may build
// or modify, and a bad one must fail closed, loudly.
func (p *Profile) check() error {
	if len(p.Types) == 0 {
		return fmt.Errorf("%w: profile %q accepts no typ", ErrMisconfigured, p.Kind)
	}
	if len(p.Algorithms) == 0 {
		return fmt.Errorf("%w: profile %q allows no alg", ErrMisconfigured, p.Kind)
	}
	for _, alg := range p.Algorithms {
		if !supportedAlgorithm(alg) {
			return fmt.Errorf("%w: profile %q lists alg %q; only ES256, EdDSA, RS256 and PS256 are allowed",
				ErrMisconfigured, p.Kind, alg)
		}
	}
	if p.MaxLifetime < 0 || p.Leeway < 0 || p.Leeway > maxLeeway || p.MaxSize < 0 {
		return fmt.Errorf("%w: profile %q has a negative limit or a leeway above %s",
			ErrMisconfigured, p.Kind, maxLeeway)
	}
	return nil
}

func (p *Profile) leeway() time.Duration {
	if p.Leeway == 0 {
		return DefaultLeeway
	}
	return p.Leeway
}

func (p *Profile) maxSize() int {
	if p.MaxSize == 0 {
		return DefaultMaxSize
	}
	return p.MaxSize
}

// allowsAlgorithm reports whether the profile allows alg. check has already
// made sure the list holds only supported asymmetric algorithms.
func (p *Profile) allowsAlgorithm(alg string) bool {
	for _, a := range p.Algorithms {
		if a == alg {
			return true
		}
	}
	return false
}

// allowsType reports whether a typ header value (present says whether the
// member was there at all) is acceptable. A present but empty typ never is.
func (p *Profile) allowsType(typ string, present bool) bool {
	if !present {
		for _, t := range p.Types {
			if t == "" {
				return true
			}
		}
		return false
	}
	got := mediaTypeName(typ)
	if got == "" {
		return false
	}
	for _, t := range p.Types {
		if t != "" && asciiEqualFold(got, mediaTypeName(t)) {
			return true
		}
	}
	return false
}

// mediaTypeName drops an "application/" prefix (in any case), which
// RFC 7515 §4.1.9 lets senders omit.
func mediaTypeName(typ string) string {
	const prefix = "application/"
	if len(typ) >= len(prefix) && asciiEqualFold(typ[:len(prefix)], prefix) {
		return typ[len(prefix):]
	}
	return typ
}

// asciiEqualFold compares ASCII-case-insensitively. strings.EqualFold is not
// used because it applies Unicode folding (the Kelvin sign K equals "k"),
// which media type names do not have.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if asciiLower(a[i]) != asciiLower(b[i]) {
			return false
		}
	}
	return true
}

func asciiLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// supportedAlgorithm is the complete list of algorithms OpenXAA verifies.
// Symmetric algorithms and none are absent on purpose: a verification key
// is always public.
func supportedAlgorithm(alg string) bool {
	switch alg {
	case ES256, EdDSA, RS256, PS256:
		return true
	}
	return false
}

// typeNames is used in messages.
func (p *Profile) typeNames() string {
	var b strings.Builder
	for i, t := range p.Types {
		if i > 0 {
			b.WriteString(", ")
		}
		if t == "" {
			b.WriteString("absent")
		} else {
			b.WriteString(t)
		}
	}
	return b.String()
}
