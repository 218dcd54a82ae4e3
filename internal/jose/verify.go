package jose

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	gojose "github.com/go-jose/go-jose/v4"
)

// TrustedIssuers binds an issuer to its key set before any key is chosen, so
// that a kid can only ever select a key of the issuer the token names.
type TrustedIssuers interface {
	// KeySet returns the keys of issuer, or an error wrapping
	// ErrUnknownIssuer if the issuer is not trusted. Other errors (a
	// database or network failure) are passed through unchanged so the
	// caller can answer 503 rather than invalid_grant.
	KeySet(ctx context.Context, issuer string) (KeySet, error)
}

// SingleIssuer trusts exactly one issuer.
type SingleIssuer struct {
	Issuer string
	Keys   KeySet
}

// KeySet implements TrustedIssuers.
func (s SingleIssuer) KeySet(_ context.Context, issuer string) (KeySet, error) {
	if s.Issuer == "" || s.Keys == nil {
		return nil, fmt.Errorf("%w: SingleIssuer needs an issuer and a key set", ErrMisconfigured)
	}
	if issuer != s.Issuer {
		return nil, rejectf(ErrUnknownIssuer, "%s", quote(issuer))
	}
	return s.Keys, nil
}

// Expectations is what the verifier knows about itself: who it is and when.
type Expectations struct {
	// Audiences are the verifier's own identifiers; aud must contain one
	// of them (be exactly one of them under SingleAudience). Required.
	Audiences []string
	// Issuer, if set, pins iss exactly, on top of TrustedIssuers.
	Issuer string
	// Now is the verification time; zero means time.Now().
	Now time.Time
}

func (w *Expectations) check() error {
	if len(w.Audiences) == 0 {
		return fmt.Errorf("%w: no expected audience", ErrMisconfigured)
	}
	for _, a := range w.Audiences {
		if a == "" {
			return fmt.Errorf("%w: empty expected audience", ErrMisconfigured)
		}
	}
	return nil
}

// Header is the verified JOSE header. Type is the typ value as sent (empty
// when absent); the profile has already matched it.
type Header struct {
	Algorithm string
	KeyID     string
	Type      string
}

// Token is a verified JWT. Verify only returns one when every check passed.
type Token struct {
	Header   Header
	Issuer   string
	Subject  string
	ID       string // jti; empty when the profile does not require it and it is absent
	Audience []string
	// IssuedAt, Expiry and NotBefore are in UTC; NotBefore is zero when the
	// token has no nbf.
	IssuedAt, Expiry, NotBefore time.Time
	// Claims holds every payload member, registered ones included, for
	// claims specific to the token kind.
	Claims map[string]json.RawMessage

	payload []byte
}

// Decode decodes the whole verified payload into v with encoding/json. The
// payload is known to have no duplicate or case-colliding member names.
func (t *Token) Decode(v any) error {
	if t == nil || t.payload == nil {
		return errors.New("jose: Decode on a token that Verify did not return")
	}
	return json.Unmarshal(t.payload, v)
}

// Verify checks raw against the profile and returns the verified token. Each
// rejection wraps exactly one of the sentinel errors (ErrTooLarge, ...), with
// a detail for logs; errors from issuers or key sets other than
// ErrUnknownIssuer/ErrUnknownKey are passed through. Verify never returns a
// token together with an error.
//
// The checks run cheapest first, and nothing from the payload is trusted
// before the signature verifies: size, shape and encoding; header members,
// alg and typ; claim types and presence; issuer, then the key by kid within
// that issuer's key set only, with the key's own alg; signature; finally
// audience and times.
func Verify(ctx context.Context, raw string, p Profile, issuers TrustedIssuers, want Expectations) (*Token, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	if err := want.check(); err != nil {
		return nil, err
	}
	if issuers == nil {
		return nil, fmt.Errorf("%w: no trusted issuers", ErrMisconfigured)
	}
	t, err := parse(raw, &p)
	if err != nil {
		return nil, err
	}

	if want.Issuer != "" && t.iss != want.Issuer {
		return nil, rejectf(ErrIssuer, "iss %s is not %s", quote(t.iss), quote(want.Issuer))
	}
	keys, err := issuers.KeySet(ctx, t.iss)
	if err != nil {
		return nil, fmt.Errorf("jose: key set of issuer %s: %w", quote(t.iss), err)
	}
	if keys == nil {
		return nil, fmt.Errorf("%w: no key set for trusted issuer %s", ErrMisconfigured, quote(t.iss))
	}
	key, err := keys.Key(ctx, t.header.KeyID)
	if err != nil {
		return nil, fmt.Errorf("jose: key %s of issuer %s: %w", quote(t.header.KeyID), quote(t.iss), err)
	}
	if key == nil {
		return nil, fmt.Errorf("%w: key set of %s returned no key", ErrMisconfigured, quote(t.iss))
	}
	// A KeySet may be any implementation; re-check the key so that a
	// private, symmetric or alg-less key can never verify anything.
	if err := checkVerificationKey(*key); err != nil {
		return nil, rejectf(ErrUnknownKey, "key %s is not usable for verification: %v", quote(t.header.KeyID), err)
	}
	// The key's alg decides, never the token's alone (alg confusion).
	if key.Algorithm != t.header.Algorithm {
		return nil, rejectf(ErrAlgorithm, "token alg %s does not match alg %s of key %s",
			quote(t.header.Algorithm), quote(key.Algorithm), quote(t.header.KeyID))
	}
	if err := verifySignature(raw, t, key); err != nil {
		return nil, err
	}

	// The claims are now the issuer's; check them against this verifier.
	if err := checkAudience(t.aud, &p, want.Audiences); err != nil {
		return nil, err
	}
	now := want.Now
	if now.IsZero() {
		now = time.Now()
	}
	if err := checkTimes(t, &p, now); err != nil {
		return nil, err
	}
	return &Token{
		Header:    t.header,
		Issuer:    t.iss,
		Subject:   t.sub,
		ID:        t.jti,
		Audience:  t.aud,
		IssuedAt:  t.iat,
		Expiry:    t.exp,
		NotBefore: t.nbf,
		Claims:    t.claims,
		payload:   t.payload,
	}, nil
}

// PeekIssuer returns the unverified iss of raw after the structural checks
// Verify runs before it looks at any key: size, shape, encoding, duplicate
// members, header members, alg, typ, claim types and presence. Use it only
// to route or log; the value is attacker-controlled until Verify returns.
func PeekIssuer(raw string, p Profile) (string, error) {
	if err := p.check(); err != nil {
		return "", err
	}
	t, err := parse(raw, &p)
	if err != nil {
		return "", err
	}
	return t.iss, nil
}

// parsed is a token that passed the structural checks but is not verified.
type parsed struct {
	header  Header
	payload []byte
	claims  map[string]json.RawMessage

	iss, sub, jti string
	aud           []string
	iat, exp, nbf time.Time
}

// parse runs every check that needs neither keys nor time.
func parse(raw string, p *Profile) (*parsed, error) {
	// Size first, then shape by counting: a string of 7,000 dots must cost
	// nothing (go-jose and golang-jwt once allocated per dot in Split).
	if len(raw) > p.maxSize() {
		return nil, rejectf(ErrTooLarge, "%d bytes, limit %d", len(raw), p.maxSize())
	}
	switch strings.Count(raw, ".") {
	case 2:
	case 4:
		return nil, reject(ErrEncrypted, "five segments")
	default:
		return nil, reject(ErrMalformed, "a compact JWS has exactly three segments")
	}
	// One pass over the alphabet rejects padding, "+", "/", whitespace and
	// anything else before any decoding (base64 decoders skip CR and LF).
	for i := 0; i < len(raw); i++ {
		if !base64URLOrDot(raw[i]) {
			return nil, reject(ErrMalformed, "character outside the base64url alphabet")
		}
	}
	h64, rest, _ := strings.Cut(raw, ".")
	p64, s64, _ := strings.Cut(rest, ".")
	if h64 == "" || p64 == "" || s64 == "" {
		return nil, reject(ErrMalformed, "empty segment")
	}
	strict := base64.RawURLEncoding.Strict()
	headerJSON, err := strict.DecodeString(h64)
	if err != nil {
		return nil, reject(ErrMalformed, "header is not canonical base64url")
	}
	payload, err := strict.DecodeString(p64)
	if err != nil {
		return nil, reject(ErrMalformed, "payload is not canonical base64url")
	}
	// go-jose decodes the signature leniently; insist on canonical form so
	// that one signature has exactly one encoding.
	if !canonicalBase64URL(s64) {
		return nil, reject(ErrMalformed, "signature is not canonical base64url")
	}

	header, err := parseHeader(headerJSON, p)
	if err != nil {
		return nil, err
	}
	t := &parsed{header: header, payload: payload}
	if err := t.parseClaims(payload, p); err != nil {
		return nil, err
	}
	return t, nil
}

func parseHeader(data []byte, p *Profile) (Header, error) {
	members, err := scanObject(data)
	if err != nil {
		return Header{}, within("header", err)
	}
	var alg, kid, typ json.RawMessage
	for _, m := range members {
		switch m.name {
		case "alg":
			alg = m.raw
		case "kid":
			kid = m.raw
		case "typ":
			typ = m.raw
		default:
			// Everything else is either dangerous (jku, x5u, jwk, x5c: keys
			// chosen by the sender; crit, b64, zip: changed processing;
			// enc: JWE) or unneeded, and unknown members are how parser
			// differentials start.
			return Header{}, rejectf(ErrForbiddenHeader, "header parameter %s", quote(m.name))
		}
	}

	var h Header
	var ok bool
	if alg == nil {
		return Header{}, reject(ErrAlgorithm, "header has no alg")
	}
	if h.Algorithm, ok = jsonString(alg); !ok {
		return Header{}, reject(ErrAlgorithm, "alg is not a string")
	}
	if !p.allowsAlgorithm(h.Algorithm) {
		return Header{}, rejectf(ErrAlgorithm, "alg %s is not allowed for %s", quote(h.Algorithm), p.Kind)
	}
	if typ != nil {
		if h.Type, ok = jsonString(typ); !ok {
			return Header{}, reject(ErrType, "typ is not a string")
		}
	}
	if !p.allowsType(h.Type, typ != nil) {
		got := "absent"
		if typ != nil {
			got = quote(h.Type)
		}
		return Header{}, rejectf(ErrType, "typ %s is not accepted for %s (want %s)", got, p.Kind, p.typeNames())
	}
	// Keys are found by kid only, never by trying each key in turn.
	if kid == nil {
		return Header{}, reject(ErrMalformed, "header has no kid")
	}
	if h.KeyID, ok = jsonString(kid); !ok {
		return Header{}, reject(ErrMalformed, "kid is not a string")
	}
	if !validKeyID(h.KeyID) {
		return Header{}, rejectf(ErrMalformed, "kid must be 1 to %d printable ASCII characters", maxKIDLen)
	}
	return h, nil
}

// validKeyID keeps kid a bounded printable-ASCII string, fit only for a map
// lookup and a log line.
func validKeyID(kid string) bool {
	if kid == "" || len(kid) > maxKIDLen {
		return false
	}
	for i := 0; i < len(kid); i++ {
		if kid[i] < 0x20 || kid[i] > 0x7e {
			return false
		}
	}
	return true
}

// parseClaims decodes the registered claims with strict types. Every
// profile requires iss, sub, aud, exp and iat.
func (t *parsed) parseClaims(data []byte, p *Profile) error {
	members, err := scanObject(data)
	if err != nil {
		return within("payload", err)
	}
	t.claims = make(map[string]json.RawMessage, len(members))
	for _, m := range members {
		t.claims[m.name] = m.raw
	}

	var ok bool
	str := func(name string, required bool, dst *string) error {
		raw, present := t.claims[name]
		if !present {
			if required {
				return rejectf(ErrMissingClaim, "%s has no %s", p.Kind, name)
			}
			return nil
		}
		if *dst, ok = jsonString(raw); !ok || *dst == "" {
			return rejectf(ErrInvalidClaim, "%s must be a non-empty string", name)
		}
		return nil
	}
	date := func(name string, required bool, dst *time.Time) error {
		raw, present := t.claims[name]
		if !present {
			if required {
				return rejectf(ErrMissingClaim, "%s has no %s", p.Kind, name)
			}
			return nil
		}
		if *dst, ok = numericDate(raw); !ok {
			return rejectf(ErrInvalidClaim, "%s must be a non-negative number of seconds before year 10000", name)
		}
		return nil
	}

	if err := str("iss", true, &t.iss); err != nil {
		return err
	}
	if err := str("sub", !p.OptionalSubject, &t.sub); err != nil {
		return err
	}
	raw, present := t.claims["aud"]
	if !present {
		return rejectf(ErrMissingClaim, "%s has no aud", p.Kind)
	}
	if t.aud, ok = audience(raw); !ok {
		return reject(ErrInvalidClaim, "aud must be a non-empty string or a non-empty array of them")
	}
	if err := date("exp", true, &t.exp); err != nil {
		return err
	}
	if err := date("iat", true, &t.iat); err != nil {
		return err
	}
	if err := date("nbf", false, &t.nbf); err != nil {
		return err
	}
	return str("jti", p.RequireJTI, &t.jti)
}

// audience decodes aud: a string or an array of strings, none of them empty.
// null, numbers, objects and [] are refused; dgrijalva/jwt-go once turned an
// unexpected aud type into "" and skipped the check (CVE-2020-26160).
func audience(raw json.RawMessage) ([]string, bool) {
	if s, ok := jsonString(raw); ok {
		return []string{s}, s != ""
	}
	if len(raw) == 0 || raw[0] != '[' {
		return nil, false
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil || len(elems) == 0 {
		return nil, false
	}
	aud := make([]string, len(elems))
	for i, e := range elems {
		s, ok := jsonString(e)
		if !ok || s == "" {
			return nil, false
		}
		aud[i] = s
	}
	return aud, true
}

// maxNumericDate is 9999-12-31T23:59:59Z; later dates are garbage or attacks
// on arithmetic.
const maxNumericDate = 253402300799

// numericDate decodes an RFC 7519 NumericDate: a non-negative JSON number,
// integer or not. Strings, null and negative values are refused.
func numericDate(raw json.RawMessage) (time.Time, bool) {
	// The scanner has validated the number's syntax; a leading digit rules
	// out strings, null, booleans, objects, arrays and negatives.
	if len(raw) == 0 || raw[0] < '0' || raw[0] > '9' {
		return time.Time{}, false
	}
	s := string(raw)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > maxNumericDate {
			return time.Time{}, false
		}
		return time.Unix(n, 0).UTC(), true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f > maxNumericDate {
		return time.Time{}, false
	}
	sec := math.Floor(f)
	nsec := math.Round((f - sec) * 1e9)
	return time.Unix(int64(sec), int64(nsec)).UTC(), true
}

// verifySignature has go-jose check the signature with the pinned key and
// alg, then makes sure go-jose saw the same token the checks above saw.
func verifySignature(raw string, t *parsed, key *gojose.JSONWebKey) error {
	alg := gojose.SignatureAlgorithm(t.header.Algorithm)
	jws, err := gojose.ParseSignedCompact(raw, []gojose.SignatureAlgorithm{alg})
	if err != nil {
		return rejectf(ErrMalformed, "go-jose: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return reject(ErrMalformed, "not exactly one signature")
	}
	if h := jws.Signatures[0].Protected; h.Algorithm != t.header.Algorithm || h.KeyID != t.header.KeyID {
		return reject(ErrMalformed, "go-jose read a different header")
	}
	payload, err := jws.Verify(key.Key)
	if err != nil {
		return rejectf(ErrSignature, "key %s", quote(t.header.KeyID))
	}
	if !bytes.Equal(payload, t.payload) {
		return reject(ErrSignature, "verified payload differs from the parsed payload")
	}
	return nil
}

func checkAudience(aud []string, p *Profile, want []string) error {
	if p.SingleAudience && len(aud) != 1 {
		return rejectf(ErrAudience, "%s must have exactly one aud, has %d", p.Kind, len(aud))
	}
	for _, a := range aud {
		for _, w := range want {
			if a == w {
				return nil
			}
		}
	}
	return rejectf(ErrAudience, "aud %s does not name this recipient", quote(aud[0]))
}

// checkTimes applies the profile's leeway to exp, nbf and iat alike.
func checkTimes(t *parsed, p *Profile, now time.Time) error {
	leeway := p.leeway()
	if !t.exp.After(t.iat) {
		return reject(ErrInvalidClaim, "exp is not after iat")
	}
	if !t.nbf.IsZero() && !t.exp.After(t.nbf) {
		return reject(ErrInvalidClaim, "exp is not after nbf")
	}
	if p.MaxLifetime > 0 && t.exp.Sub(t.iat) > p.MaxLifetime {
		return rejectf(ErrLifetimeTooLong, "%s lives %s, limit %s", p.Kind, t.exp.Sub(t.iat), p.MaxLifetime)
	}
	if now.After(t.exp.Add(leeway)) {
		return rejectf(ErrExpired, "%s expired at %s", p.Kind, t.exp.Format(time.RFC3339))
	}
	if !t.nbf.IsZero() && t.nbf.After(now.Add(leeway)) {
		return rejectf(ErrNotYetValid, "nbf is %s", t.nbf.Format(time.RFC3339))
	}
	if t.iat.After(now.Add(leeway)) {
		return rejectf(ErrIssuedInFuture, "iat is %s", t.iat.Format(time.RFC3339))
	}
	return nil
}

func base64URLOrDot(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}

// canonicalBase64URL reports whether s (already known to use only the
// base64url alphabet) decodes without padding and with zero unused trailing
// bits, as base64.RawURLEncoding.Strict() requires, without decoding it.
func canonicalBase64URL(s string) bool {
	var mask byte
	switch len(s) % 4 {
	case 0:
		return true
	case 1:
		return false
	case 2:
		mask = 0x0f // the last character carries 2 bits
	case 3:
		mask = 0x03 // the last character carries 4 bits
	}
	return base64URLValue(s[len(s)-1])&mask == 0
}

func base64URLValue(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c - 'A'
	case 'a' <= c && c <= 'z':
		return c - 'a' + 26
	case '0' <= c && c <= '9':
		return c - '0' + 52
	case c == '-':
		return 62
	default: // '_'
		return 63
	}
}

// rejection is a refused token: one sentinel reason plus a detail for logs.
// It is a small struct rather than fmt.Errorf so the cheap early rejections
// cost a single allocation.
type rejection struct {
	reason error
	detail string
}

func (e *rejection) Error() string { return e.reason.Error() + ": " + e.detail }
func (e *rejection) Unwrap() error { return e.reason }

func reject(reason error, detail string) error { return &rejection{reason: reason, detail: detail} }

func rejectf(reason error, format string, args ...any) error {
	return &rejection{reason: reason, detail: fmt.Sprintf(format, args...)}
}

// within prefixes the detail of a rejection with where it happened.
func within(where string, err error) error {
	var r *rejection
	if errors.As(err, &r) {
		return &rejection{reason: r.reason, detail: where + ": " + r.detail}
	}
	return err
}

// quote renders attacker-controlled text for an error message: quoted,
// escaped and truncated, so it can neither forge log lines nor flood them.
func quote(s string) string {
	const limit = 64
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "..."
	}
	return strconv.Quote(s)
}
