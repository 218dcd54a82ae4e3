package jose

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	gojose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// sentinels are the rejection reasons; Verify wraps exactly one of them.
func sentinels() []error {
	return []error{
		ErrTooLarge, ErrMalformed, ErrEncrypted, ErrDuplicateMember, ErrForbiddenHeader, ErrAlgorithm,
		ErrType, ErrUnknownIssuer, ErrUnknownKey, ErrSignature, ErrMissingClaim, ErrInvalidClaim,
		ErrIssuer, ErrAudience, ErrExpired, ErrNotYetValid, ErrIssuedInFuture, ErrLifetimeTooLong,
	}
}

// expectFor returns what the verifier of each token kind expects.
func expectFor(p Profile) Expectations {
	var aud []string
	switch p.Kind {
	case IDJAGProfile().Kind:
		aud = []string{asIssuer}
	case AccessTokenProfile().Kind:
		aud = []string{resource}
	case IDTokenProfile().Kind:
		aud = []string{clientID}
	case ClientAssertionProfile().Kind:
		aud = []string{asIssuer + "/token", asIssuer}
	case SETProfile().Kind:
		aud = []string{asIssuer}
	}
	return Expectations{Audiences: aud, Now: testNow()}
}

// segment replaces segment i of a compact token.
func segment(raw string, i int, f func(string) string) string {
	parts := strings.Split(raw, ".")
	parts[i] = f(parts[i])
	return strings.Join(parts, ".")
}

// flipUnusedBit sets an unused trailing bit of a base64url segment, which
// lenient decoders ignore; seg must not be a multiple of 4 long.
func flipUnusedBit(seg string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[last|1])
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := testNow().Unix()
	jag, at, idt, ca, set := IDJAGProfile(), AccessTokenProfile(), IDTokenProfile(), ClientAssertionProfile(), SETProfile()
	jagClaims := mustJSON(t, idJAGClaims())
	validJAG := f.es.token(t, TypeIDJAG, idJAGClaims())

	rsaPub, err := x509.MarshalPKIXPublicKey(f.rs.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPub})

	tests := []struct {
		name    string
		profile Profile
		raw     string
		want    *Expectations // nil: expectFor(profile)
		err     error
	}{
		// Security event tokens: their own typ only, one audience, a jti,
		// short-lived; sub may be absent but not empty.
		{"SET without typ", set, f.es.token(t, "", setClaims()), nil, ErrType},
		{"SET typ JWT", set, f.es.token(t, TypeJWT, setClaims()), nil, ErrType},
		{"ID-JAG as a SET", set, validJAG, nil, ErrType},
		{"SET as an ID-JAG", jag, f.es.token(t, TypeSET, setClaims()), nil, ErrType},
		{"SET as an ID token", idt, f.es.token(t, TypeSET, with(setClaims(), "sub", "user-1")), nil, ErrType},
		{"SET without jti", set, f.es.token(t, TypeSET, with(setClaims(), "jti", nil)), nil, ErrMissingClaim},
		{"SET with empty sub", set, f.es.token(t, TypeSET, with(setClaims(), "sub", "")), nil, ErrInvalidClaim},
		{"SET with two audiences", set, f.es.token(t, TypeSET, with(setClaims(), "aud", []string{asIssuer, "https://other.example"})), nil, ErrAudience},
		{"SET for another audience", set, f.es.token(t, TypeSET, with(setClaims(), "aud", "https://other.example")), nil, ErrAudience},
		{"SET living an hour", set, f.es.token(t, TypeSET, with(setClaims(), "exp", now+3600)), nil, ErrLifetimeTooLong},
		{"SET without exp", set, f.es.token(t, TypeSET, with(setClaims(), "exp", nil)), nil, ErrMissingClaim},

		// Size and shape.
		{"over size cap", jag, validJAG + strings.Repeat("A", DefaultMaxSize), nil, ErrTooLarge},
		{"over custom size cap", Profile{Kind: "x", Types: []string{TypeIDJAG}, Algorithms: []string{ES256}, MaxSize: 100},
			validJAG, &Expectations{Audiences: []string{asIssuer}, Now: testNow()}, ErrTooLarge},
		{"7000 dots", jag, strings.Repeat(".", 7000), nil, ErrMalformed},
		{"empty", jag, "", nil, ErrMalformed},
		{"one segment", jag, b64(header(ES256, "es-a", TypeIDJAG)), nil, ErrMalformed},
		{"four segments", jag, validJAG + ".AAAA", nil, ErrMalformed},
		{"trailing dot", jag, validJAG + ".", nil, ErrMalformed},
		{"JWE", jag, b64(`{"alg":"RSA-OAEP","enc":"A256GCM"}`) + ".AAAA.AAAA.AAAA.AAAA", nil, ErrEncrypted},
		{"empty signature", jag, b64(header(ES256, "es-a", TypeIDJAG)) + "." + b64(jagClaims) + ".", nil, ErrMalformed},
		{"empty header", jag, segment(validJAG, 0, func(string) string { return "" }), nil, ErrMalformed},
		{"empty payload", jag, segment(validJAG, 1, func(string) string { return "" }), nil, ErrMalformed},
		{"JSON serialization", jag, `{"payload":"e30","protected":"e30","signature":"AA"}`, nil, ErrMalformed},
		{"whitespace", jag, " " + validJAG, nil, ErrMalformed},
		{"newline inside", jag, validJAG[:10] + "\n" + validJAG[10:], nil, ErrMalformed},
		{"header not JSON", jag, segment(validJAG, 0, func(string) string { return b64("alg=ES256") }), nil, ErrMalformed},
		{"header is an array", jag, segment(validJAG, 0, func(string) string { return b64(`["alg"]`) }), nil, ErrMalformed},
		{"header has trailing data", jag, segment(validJAG, 0, func(string) string { return b64(header(ES256, "es-a", TypeIDJAG) + "{}") }), nil, ErrMalformed},
		{"header invalid UTF-8", jag, segment(validJAG, 0, func(string) string {
			return b64(`{"alg":"ES256","kid":"es-a","typ":"oauth-id-jag+jwt","x":"` + "\xff" + `"}`)
		}), nil, ErrMalformed},
		{"payload is an array", jag, f.es.jws(t, header(ES256, "es-a", TypeIDJAG), `[`+jagClaims+`]`), nil, ErrMalformed},
		{"payload nested too deep", jag, f.es.jws(t, header(ES256, "es-a", TypeIDJAG),
			`{"x":`+strings.Repeat("[", 40)+strings.Repeat("]", 40)+`}`), nil, ErrMalformed},

		// Strict base64url in each segment.
		{"padding in header", jag, segment(validJAG, 0, func(s string) string { return s + "=" }), nil, ErrMalformed},
		{"padding in payload", jag, segment(validJAG, 1, func(s string) string { return s + "==" }), nil, ErrMalformed},
		{"padding in signature", jag, segment(validJAG, 2, func(s string) string { return s + "==" }), nil, ErrMalformed},
		{"plus in header", jag, segment(validJAG, 0, func(s string) string { return "+" + s[1:] }), nil, ErrMalformed},
		{"plus in payload", jag, segment(validJAG, 1, func(s string) string { return "+" + s[1:] }), nil, ErrMalformed},
		{"plus in signature", jag, segment(validJAG, 2, func(s string) string { return "+" + s[1:] }), nil, ErrMalformed},
		{"slash in header", jag, segment(validJAG, 0, func(s string) string { return "/" + s[1:] }), nil, ErrMalformed},
		{"slash in payload", jag, segment(validJAG, 1, func(s string) string { return "/" + s[1:] }), nil, ErrMalformed},
		{"slash in signature", jag, segment(validJAG, 2, func(s string) string { return "/" + s[1:] }), nil, ErrMalformed},
		{"non-canonical header", jag, segment(validJAG, 0, func(string) string {
			return flipUnusedBit(b64(`{"alg":"ES256","kid":"es-a","typ":"oauth-id-jag+jwt"} `))
		}), nil, ErrMalformed},
		{"non-canonical signature", jag, segment(validJAG, 2, flipUnusedBit), nil, ErrMalformed},
		{"impossible segment length", jag, segment(validJAG, 2, func(s string) string { return s + "AAA" }), nil, ErrMalformed},

		// Duplicate members.
		{"duplicate alg in header", jag, f.es.jws(t, `{"alg":"ES256","alg":"ES256","kid":"es-a","typ":"oauth-id-jag+jwt"}`, jagClaims), nil, ErrDuplicateMember},
		{"duplicate typ in header, one escaped", jag, f.es.jws(t, `{"alg":"ES256","kid":"es-a","typ":"JWT","t\u0079p":"oauth-id-jag+jwt"}`, jagClaims), nil, ErrDuplicateMember},
		{"duplicate sub in payload", jag, f.es.jws(t, header(ES256, "es-a", TypeIDJAG), jagClaims[:len(jagClaims)-1]+`,"sub":"admin"}`), nil, ErrDuplicateMember},
		{"case-variant member in payload", jag, f.es.jws(t, header(ES256, "es-a", TypeIDJAG), jagClaims[:len(jagClaims)-1]+`,"SCOPE":"admin"}`), nil, ErrDuplicateMember},
		{"nested duplicate in payload", jag, f.es.jws(t, header(ES256, "es-a", TypeIDJAG), jagClaims[:len(jagClaims)-1]+`,"act":{"sub":"a","sub":"b"}}`), nil, ErrDuplicateMember},
		{"duplicate inside array element", jag, f.es.jws(t, header(ES256, "es-a", TypeIDJAG), jagClaims[:len(jagClaims)-1]+`,"x":[{"a":1},{"b":1,"b":2}]}`), nil, ErrDuplicateMember},

		// Forbidden header parameters.
		{"jku", jag, f.es.jws(t, `{"alg":"ES256","kid":"es-a","typ":"oauth-id-jag+jwt","jku":"https://evil.example/jwks"}`, jagClaims), nil, ErrForbiddenHeader},
		{"x5u", jag, f.es.jws(t, `{"alg":"ES256","kid":"es-a","typ":"oauth-id-jag+jwt","x5u":"https://evil.example/cert"}`, jagClaims), nil, ErrForbiddenHeader},
		{"embedded jwk", jag, f.es.jws(t, `{"alg":"ES256","kid":"es-a","typ":"oauth-id-jag+jwt","jwk":`+mustJSON(t, f.es.public())+`}`, jagClaims), nil, ErrForbiddenHeader},
		{"x5c", jag, f.es.jws(t, `{"alg":"ES256","kid":"es-a","typ":"oauth-id-jag+jwt","x5c":["MIIB"]}`, jagClaims), nil, ErrForbiddenHeader},
		{"x5t#S256", jag, f.es.jws(t, `{"alg":"ES256","kid":"es-a","typ":"oauth-id-jag+jwt","x5t#S256":"AAAA"}`, jagClaims), nil, ErrForbiddenHeader},
		{"crit", jag, f.es.jws(t, `{"alg":"ES256","kid":"es-a","typ":"oauth-id-jag+jwt","crit":["exp"],"exp":1}`, jagClaims), nil, ErrForbiddenHeader},
		{"crit b64", jag, f.es.jws(t, `{"alg":"ES256","kid":"es-a","typ":"oauth-id-jag+jwt","crit":["b64"],"b64":false}`, jagClaims), nil, ErrForbiddenHeader},
		{"zip", jag, f.es.jws(t, `{"alg":"ES256","kid":"es-a","typ":"oauth-id-jag+jwt","zip":"DEF"}`, jagClaims), nil, ErrForbiddenHeader},
		{"cty", jag, f.es.jws(t, `{"alg":"ES256","kid":"es-a","typ":"oauth-id-jag+jwt","cty":"JWT"}`, jagClaims), nil, ErrForbiddenHeader},
		{"enc", jag, f.es.jws(t, `{"alg":"ES256","kid":"es-a","typ":"oauth-id-jag+jwt","enc":"A128GCM"}`, jagClaims), nil, ErrForbiddenHeader},
		{"unknown member", jag, f.es.jws(t, `{"alg":"ES256","kid":"es-a","typ":"oauth-id-jag+jwt","nonce":"x"}`, jagClaims), nil, ErrForbiddenHeader},
		{"case-variant ALG", jag, f.es.jws(t, `{"ALG":"none","kid":"es-a","typ":"oauth-id-jag+jwt","alg":"ES256"}`, jagClaims), nil, ErrDuplicateMember},

		// Algorithms.
		{"alg none without signature", jag, b64(header("none", "es-a", TypeIDJAG)) + "." + b64(jagClaims) + ".", nil, ErrMalformed},
		{"alg none with a signature", jag, b64(header("none", "es-a", TypeIDJAG)) + "." + b64(jagClaims) + ".AAAA", nil, ErrAlgorithm},
		{"alg None", jag, b64(header("None", "es-a", TypeIDJAG)) + "." + b64(jagClaims) + ".AAAA", nil, ErrAlgorithm},
		{"HS256 keyed with the RSA public key PEM", jag, hs256(header("HS256", "rs-a", TypeIDJAG), jagClaims, rsaPEM), nil, ErrAlgorithm},
		{"HS256 keyed with the public JWK", jag, hs256(header("HS256", "es-a", TypeIDJAG), jagClaims, []byte(mustJSON(t, f.es.public()))), nil, ErrAlgorithm},
		{"alg missing", jag, f.es.jws(t, `{"kid":"es-a","typ":"oauth-id-jag+jwt"}`, jagClaims), nil, ErrAlgorithm},
		{"alg not a string", jag, f.es.jws(t, `{"alg":["ES256"],"kid":"es-a","typ":"oauth-id-jag+jwt"}`, jagClaims), nil, ErrAlgorithm},
		{"alg lower case", jag, f.es.jws(t, `{"alg":"es256","kid":"es-a","typ":"oauth-id-jag+jwt"}`, jagClaims), nil, ErrAlgorithm},
		{"ES384 not supported", jag, f.es.jws(t, header("ES384", "es-a", TypeIDJAG), jagClaims), nil, ErrAlgorithm},
		{"RS256 not allowed for access tokens", at, f.rs.token(t, TypeAccessToken, accessTokenClaims()), nil, ErrAlgorithm},
		{"RS256 key named by an ES256 header", jag, f.es.jws(t, header(ES256, "rs-a", TypeIDJAG), jagClaims), nil, ErrAlgorithm},
		{"PS256 header on the RS256 key", jag, f.ps.jws(t, header(PS256, "rs-a", TypeIDJAG), jagClaims), nil, ErrAlgorithm},

		// typ per profile.
		{"ID token as ID-JAG", jag, f.es.token(t, TypeJWT, idJAGClaims()), nil, ErrType},
		{"untyped token as ID-JAG", jag, f.es.token(t, "", idJAGClaims()), nil, ErrType},
		{"access token as ID-JAG", jag, f.es.token(t, TypeAccessToken, idJAGClaims()), nil, ErrType},
		{"ID-JAG with parameters in typ", jag, f.es.token(t, TypeIDJAG+"; v=1", idJAGClaims()), nil, ErrType},
		{"ID-JAG with text/ prefix", jag, f.es.token(t, "text/"+TypeIDJAG, idJAGClaims()), nil, ErrType},
		{"ID-JAG with bare application/", jag, f.es.token(t, "application/", idJAGClaims()), nil, ErrType},
		{"typ with Unicode Kelvin sign", idt, f.es.jws(t, `{"alg":"ES256","kid":"es-a","typ":"JW\u212a"}`, mustJSON(t, idTokenClaims())), nil, ErrType},
		{"typ not a string", jag, f.es.jws(t, `{"alg":"ES256","kid":"es-a","typ":1}`, jagClaims), nil, ErrType},
		{"typ null", idt, f.es.jws(t, `{"alg":"ES256","kid":"es-a","typ":null}`, mustJSON(t, idTokenClaims())), nil, ErrType},
		{"empty typ", idt, f.es.jws(t, `{"alg":"ES256","kid":"es-a","typ":""}`, mustJSON(t, idTokenClaims())), nil, ErrType},
		{"ID-JAG as access token", at, f.es.token(t, TypeIDJAG, accessTokenClaims()), nil, ErrType},
		{"ID token as access token", at, f.es.token(t, TypeJWT, accessTokenClaims()), nil, ErrType},
		{"untyped token as access token", at, f.es.token(t, "", accessTokenClaims()), nil, ErrType},
		{"ID-JAG as ID token", idt, f.es.token(t, TypeIDJAG, idTokenClaims()), nil, ErrType},
		{"access token as ID token", idt, f.es.token(t, TypeAccessToken, idTokenClaims()), nil, ErrType},
		{"logout token as ID token", idt, f.es.token(t, "logout+jwt", idTokenClaims()), nil, ErrType},
		{"ID-JAG as client assertion", ca, f.es.token(t, TypeIDJAG, clientAssertionClaims()), nil, ErrType},
		{"access token as client assertion", ca, f.es.token(t, TypeAccessToken, clientAssertionClaims()), nil, ErrType},

		// kid.
		{"kid missing", jag, f.es.jws(t, `{"alg":"ES256","typ":"oauth-id-jag+jwt"}`, jagClaims), nil, ErrMalformed},
		{"kid numeric", jag, f.es.jws(t, `{"alg":"ES256","kid":1,"typ":"oauth-id-jag+jwt"}`, jagClaims), nil, ErrMalformed},
		{"kid empty", jag, f.es.jws(t, header(ES256, "", TypeIDJAG), jagClaims), nil, ErrMalformed},
		{"kid too long", jag, f.es.jws(t, header(ES256, strings.Repeat("k", 129), TypeIDJAG), jagClaims), nil, ErrMalformed},
		{"kid with control character", jag, f.es.jws(t, header(ES256, "es-a\n", TypeIDJAG), jagClaims), nil, ErrMalformed},
		{"kid path traversal", jag, f.es.jws(t, header(ES256, "../../dev/null", TypeIDJAG), jagClaims), nil, ErrUnknownKey},
		{"unknown kid", jag, f.es.jws(t, header(ES256, "nope", TypeIDJAG), jagClaims), nil, ErrUnknownKey},
		{"kid of another issuer's key", jag, f.esB.token(t, TypeIDJAG, idJAGClaims()), nil, ErrUnknownKey},
		{"another issuer naming issuer A's kid", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "iss", issuerB)), nil, ErrUnknownKey},

		// Claims: presence.
		{"missing iss", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "iss", nil)), nil, ErrMissingClaim},
		{"missing sub", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "sub", nil)), nil, ErrMissingClaim},
		{"missing aud", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "aud", nil)), nil, ErrMissingClaim},
		{"missing exp", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "exp", nil)), nil, ErrMissingClaim},
		{"missing iat", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "iat", nil)), nil, ErrMissingClaim},
		{"missing jti in ID-JAG", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "jti", nil)), nil, ErrMissingClaim},
		{"missing jti in access token", at, f.es.token(t, TypeAccessToken, with(accessTokenClaims(), "jti", nil)), nil, ErrMissingClaim},
		{"missing jti in client assertion", ca, f.es.token(t, "", with(clientAssertionClaims(), "jti", nil)), nil, ErrMissingClaim},
		{"missing sub in ID token", idt, f.es.token(t, TypeJWT, with(idTokenClaims(), "sub", nil)), nil, ErrMissingClaim},
		{"missing exp in ID token", idt, f.es.token(t, TypeJWT, with(idTokenClaims(), "exp", nil)), nil, ErrMissingClaim},

		// Claims: types.
		{"aud number", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "aud", 42)), nil, ErrInvalidClaim},
		{"aud null", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "aud", json.RawMessage("null"))), nil, ErrInvalidClaim},
		{"aud empty array", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "aud", []string{})), nil, ErrInvalidClaim},
		{"aud empty string", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "aud", "")), nil, ErrInvalidClaim},
		{"aud array with null", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "aud", json.RawMessage(`["https://as.example.com",null]`))), nil, ErrInvalidClaim},
		{"aud array with number", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "aud", []any{asIssuer, 1})), nil, ErrInvalidClaim},
		{"aud object", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "aud", map[string]string{"a": asIssuer})), nil, ErrInvalidClaim},
		{"iss number", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "iss", 1)), nil, ErrInvalidClaim},
		{"iss null", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "iss", json.RawMessage("null"))), nil, ErrInvalidClaim},
		{"sub empty", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "sub", "")), nil, ErrInvalidClaim},
		{"sub array", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "sub", []string{"a"})), nil, ErrInvalidClaim},
		{"jti number", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "jti", 7)), nil, ErrInvalidClaim},
		{"jti of wrong type where optional", idt, f.es.token(t, TypeJWT, with(idTokenClaims(), "jti", true)), nil, ErrInvalidClaim},
		{"exp string", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "exp", "1777636890")), nil, ErrInvalidClaim},
		{"exp negative", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "exp", -1)), nil, ErrInvalidClaim},
		{"exp null", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "exp", json.RawMessage("null"))), nil, ErrInvalidClaim},
		{"exp huge", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "exp", json.RawMessage("1e300"))), nil, ErrInvalidClaim},
		{"exp beyond int64", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "exp", json.RawMessage("99999999999999999999999"))), nil, ErrInvalidClaim},
		{"exp after year 9999", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "exp", int64(maxNumericDate+1))), nil, ErrInvalidClaim},
		{"iat boolean", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "iat", true)), nil, ErrInvalidClaim},
		{"nbf string", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "nbf", "0")), nil, ErrInvalidClaim},
		{"exp equals iat", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "iat", now, "exp", now)), nil, ErrInvalidClaim},
		{"nbf after exp", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "iat", now-10, "nbf", now+5, "exp", now+5)), nil, ErrInvalidClaim},
		{"exp before iat", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "iat", now, "exp", now-1)), nil, ErrInvalidClaim},

		// Issuer.
		{"untrusted issuer", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "iss", "https://evil.example")), nil, ErrUnknownIssuer},
		{"issuer differs only by trailing slash", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "iss", issuerA+"/")), nil, ErrUnknownIssuer},
		{"issuer pin mismatch", jag, f.esB.token(t, TypeIDJAG, with(idJAGClaims(), "iss", issuerB)),
			&Expectations{Audiences: []string{asIssuer}, Issuer: issuerA, Now: testNow()}, ErrIssuer},

		// Signature.
		{"tampered payload", jag, segment(validJAG, 1, func(string) string {
			return b64(mustJSON(t, with(idJAGClaims(), "sub", "admin")))
		}), nil, ErrSignature},
		{"tampered header typ still allowed", jag, segment(validJAG, 0, func(string) string {
			return b64(header(ES256, "es-a", "application/"+TypeIDJAG))
		}), nil, ErrSignature},
		{"signature of issuer B's key under issuer A's kid", jag, f.esB.jws(t, header(ES256, "es-a", TypeIDJAG), jagClaims), nil, ErrSignature},
		{"signature truncated", jag, segment(validJAG, 2, func(s string) string { return s[:40] }), nil, ErrSignature},
		{"EdDSA signature under the ES256 key", jag, segment(validJAG, 2, func(string) string {
			return base64.RawURLEncoding.EncodeToString(f.ed.signRaw(t, "x"))
		}), nil, ErrSignature},

		// Audience.
		{"two audiences in ID-JAG", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "aud", []string{asIssuer, "https://other.example"})), nil, ErrAudience},
		{"same audience twice in ID-JAG", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "aud", []string{asIssuer, asIssuer})), nil, ErrAudience},
		{"wrong audience", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "aud", "https://other-as.example")), nil, ErrAudience},
		{"audience differs by case", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "aud", strings.ToUpper(asIssuer))), nil, ErrAudience},
		{"access token for another resource", at, f.es.token(t, TypeAccessToken, with(accessTokenClaims(), "aud", "https://mcp.example.com/other")), nil, ErrAudience},
		{"ID token for another client", idt, f.es.token(t, TypeJWT, with(idTokenClaims(), "aud", []string{"other-client"})), nil, ErrAudience},

		// Times.
		{"expired", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "iat", now-400, "exp", now-100)), nil, ErrExpired},
		{"expired 31 s ago", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "iat", now-300, "exp", now-31)), nil, ErrExpired},
		{"expired 30.001 s ago", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "iat", now-300, "exp", json.RawMessage("1777636769.999"))), nil, ErrExpired},
		{"nbf 31 s ahead", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "nbf", now+31)), nil, ErrNotYetValid},
		{"iat 31 s ahead", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "iat", now+31, "exp", now+300)), nil, ErrIssuedInFuture},
		{"ID-JAG lifetime 601 s", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "iat", now-1, "exp", now+600)), nil, ErrLifetimeTooLong},
		{"access token lifetime 3601 s", at, f.es.token(t, TypeAccessToken, with(accessTokenClaims(), "iat", now, "exp", now+3601)), nil, ErrLifetimeTooLong},
		{"client assertion lifetime 301 s", ca, f.es.token(t, "", with(clientAssertionClaims(), "iat", now, "exp", now+301)), nil, ErrLifetimeTooLong},
		{"ID-JAG valid for a century", jag, f.es.token(t, TypeIDJAG, with(idJAGClaims(), "iat", now, "exp", int64(maxNumericDate))), nil, ErrLifetimeTooLong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := expectFor(tc.profile)
			if tc.want != nil {
				want = *tc.want
			}
			tok, err := Verify(t.Context(), tc.raw, tc.profile, f.issuers, want)
			if tok != nil {
				t.Errorf("Verify returned a token with error %v", err)
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("Verify error = %v, want %v", err, tc.err)
			}
			var matched []error
			for _, s := range sentinels() {
				if errors.Is(err, s) {
					matched = append(matched, s)
				}
			}
			if len(matched) != 1 {
				t.Errorf("error %v wraps %d sentinels %v, want exactly one", err, len(matched), matched)
			}
			if strings.Contains(err.Error(), tc.raw) && len(tc.raw) > 20 {
				t.Errorf("error message contains the token")
			}
		})
	}
}

func TestVerifyAccepts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := testNow()
	unix := now.Unix()
	claimsOf := func(m map[string]any) map[string]json.RawMessage {
		out := make(map[string]json.RawMessage, len(m))
		for k, v := range m {
			out[k] = json.RawMessage(mustJSON(t, v))
		}
		return out
	}

	tests := []struct {
		name    string
		profile Profile
		key     *testKey
		typ     string
		claims  map[string]any
		want    Token // Claims and Header.Algorithm/KeyID are filled in
	}{
		{"ID-JAG ES256", IDJAGProfile(), f.es, TypeIDJAG, idJAGClaims(), Token{
			Issuer: issuerA, Subject: "user-1", ID: "jag-1", Audience: []string{asIssuer},
			IssuedAt: time.Unix(unix-10, 0).UTC(), Expiry: time.Unix(unix+290, 0).UTC(),
		}},
		{"ID-JAG EdDSA with application/ prefix", IDJAGProfile(), f.ed, "application/" + TypeIDJAG, idJAGClaims(), Token{
			Issuer: issuerA, Subject: "user-1", ID: "jag-1", Audience: []string{asIssuer},
			IssuedAt: time.Unix(unix-10, 0).UTC(), Expiry: time.Unix(unix+290, 0).UTC(),
		}},
		{"ID-JAG typ in upper case, aud as one-element array, nbf", IDJAGProfile(), f.es, "Application/OAUTH-ID-JAG+JWT",
			with(idJAGClaims(), "aud", []string{asIssuer}, "nbf", unix-10), Token{
				Issuer: issuerA, Subject: "user-1", ID: "jag-1", Audience: []string{asIssuer},
				IssuedAt: time.Unix(unix-10, 0).UTC(), Expiry: time.Unix(unix+290, 0).UTC(), NotBefore: time.Unix(unix-10, 0).UTC(),
			}},
		{"ID-JAG RS256 from an external issuer", IDJAGProfile(), f.rs, TypeIDJAG, idJAGClaims(), Token{
			Issuer: issuerA, Subject: "user-1", ID: "jag-1", Audience: []string{asIssuer},
			IssuedAt: time.Unix(unix-10, 0).UTC(), Expiry: time.Unix(unix+290, 0).UTC(),
		}},
		{"ID-JAG of issuer B", IDJAGProfile(), f.esB, TypeIDJAG, with(idJAGClaims(), "iss", issuerB), Token{
			Issuer: issuerB, Subject: "user-1", ID: "jag-1", Audience: []string{asIssuer},
			IssuedAt: time.Unix(unix-10, 0).UTC(), Expiry: time.Unix(unix+290, 0).UTC(),
		}},
		{"ID-JAG lifetime exactly 600 s", IDJAGProfile(), f.es, TypeIDJAG, with(idJAGClaims(), "iat", unix, "exp", unix+600), Token{
			Issuer: issuerA, Subject: "user-1", ID: "jag-1", Audience: []string{asIssuer},
			IssuedAt: now, Expiry: time.Unix(unix+600, 0).UTC(),
		}},
		{"ID-JAG expired 29 s ago", IDJAGProfile(), f.es, TypeIDJAG, with(idJAGClaims(), "iat", unix-300, "exp", unix-29), Token{
			Issuer: issuerA, Subject: "user-1", ID: "jag-1", Audience: []string{asIssuer},
			IssuedAt: time.Unix(unix-300, 0).UTC(), Expiry: time.Unix(unix-29, 0).UTC(),
		}},
		{"ID-JAG expired exactly 30 s ago", IDJAGProfile(), f.es, TypeIDJAG, with(idJAGClaims(), "iat", unix-300, "exp", unix-30), Token{
			Issuer: issuerA, Subject: "user-1", ID: "jag-1", Audience: []string{asIssuer},
			IssuedAt: time.Unix(unix-300, 0).UTC(), Expiry: time.Unix(unix-30, 0).UTC(),
		}},
		{"ID-JAG issued 29 s ahead, nbf 29 s ahead", IDJAGProfile(), f.es, TypeIDJAG,
			with(idJAGClaims(), "iat", unix+29, "nbf", unix+29, "exp", unix+300), Token{
				Issuer: issuerA, Subject: "user-1", ID: "jag-1", Audience: []string{asIssuer},
				IssuedAt: time.Unix(unix+29, 0).UTC(), Expiry: time.Unix(unix+300, 0).UTC(), NotBefore: time.Unix(unix+29, 0).UTC(),
			}},
		{"ID-JAG with fractional times", IDJAGProfile(), f.es, TypeIDJAG,
			with(idJAGClaims(), "iat", json.RawMessage("1777636790.25"), "exp", json.RawMessage("1.7776370905e9")), Token{
				Issuer: issuerA, Subject: "user-1", ID: "jag-1", Audience: []string{asIssuer},
				IssuedAt: time.Unix(unix-10, 250_000_000).UTC(), Expiry: time.Unix(unix+290, 500_000_000).UTC(),
			}},
		{"access token EdDSA", AccessTokenProfile(), f.ed, TypeAccessToken, accessTokenClaims(), Token{
			Issuer: asIssuer, Subject: "user-1", ID: "at-1", Audience: []string{resource},
			IssuedAt: time.Unix(unix-10, 0).UTC(), Expiry: time.Unix(unix+290, 0).UTC(),
		}},
		{"access token ES256 typ AT+JWT", AccessTokenProfile(), f.es, "AT+JWT", accessTokenClaims(), Token{
			Issuer: asIssuer, Subject: "user-1", ID: "at-1", Audience: []string{resource},
			IssuedAt: time.Unix(unix-10, 0).UTC(), Expiry: time.Unix(unix+290, 0).UTC(),
		}},
		{"ID token RS256 typ JWT, two audiences", IDTokenProfile(), f.rs, TypeJWT, idTokenClaims(), Token{
			Issuer: issuerA, Subject: "user-1", Audience: []string{clientID, "other-client"},
			IssuedAt: time.Unix(unix-10, 0).UTC(), Expiry: time.Unix(unix+3590, 0).UTC(),
		}},
		{"ID token PS256 without typ", IDTokenProfile(), f.ps, "", idTokenClaims(), Token{
			Issuer: issuerA, Subject: "user-1", Audience: []string{clientID, "other-client"},
			IssuedAt: time.Unix(unix-10, 0).UTC(), Expiry: time.Unix(unix+3590, 0).UTC(),
		}},
		{"ID token typ application/jwt", IDTokenProfile(), f.es, "application/jwt", idTokenClaims(), Token{
			Issuer: issuerA, Subject: "user-1", Audience: []string{clientID, "other-client"},
			IssuedAt: time.Unix(unix-10, 0).UTC(), Expiry: time.Unix(unix+3590, 0).UTC(),
		}},
		{"client assertion without typ", ClientAssertionProfile(), f.es, "", clientAssertionClaims(), Token{
			Issuer: clientID, Subject: clientID, ID: "ca-1", Audience: []string{asIssuer + "/token"},
			IssuedAt: time.Unix(unix-5, 0).UTC(), Expiry: time.Unix(unix+55, 0).UTC(),
		}},
		{"SET without sub", SETProfile(), f.es, TypeSET, setClaims(), Token{
			Issuer: issuerA, ID: "set-1", Audience: []string{asIssuer},
			IssuedAt: time.Unix(unix-10, 0).UTC(), Expiry: time.Unix(unix+290, 0).UTC(),
		}},
		{"SET with sub, typ application/secevent+jwt", SETProfile(), f.ed, "application/" + TypeSET, with(setClaims(), "sub", "user-1"), Token{
			Issuer: issuerA, Subject: "user-1", ID: "set-1", Audience: []string{asIssuer},
			IssuedAt: time.Unix(unix-10, 0).UTC(), Expiry: time.Unix(unix+290, 0).UTC(),
		}},
		{"client assertion typ client-authentication+jwt", ClientAssertionProfile(), f.ed, "client-authentication+jwt",
			with(clientAssertionClaims(), "aud", []string{asIssuer, "https://elsewhere.example"}), Token{
				Issuer: clientID, Subject: clientID, ID: "ca-1", Audience: []string{asIssuer, "https://elsewhere.example"},
				IssuedAt: time.Unix(unix-5, 0).UTC(), Expiry: time.Unix(unix+55, 0).UTC(),
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			raw := tc.key.token(t, tc.typ, tc.claims)
			got, err := Verify(t.Context(), raw, tc.profile, f.issuers, expectFor(tc.profile))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := tc.want
			want.Header = Header{Algorithm: tc.key.alg, KeyID: tc.key.kid, Type: tc.typ}
			want.Claims = claimsOf(tc.claims)
			if diff := cmp.Diff(want, *got, cmpopts.IgnoreUnexported(Token{})); diff != "" {
				t.Errorf("Verify token mismatch (-want +got):\n%s", diff)
			}
			iss, err := PeekIssuer(raw, tc.profile)
			if err != nil || iss != want.Issuer {
				t.Errorf("PeekIssuer = %q, %v; want %q", iss, err, want.Issuer)
			}
		})
	}
}

func TestTokenDecode(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	raw := f.es.token(t, TypeIDJAG, idJAGClaims())
	tok, err := Verify(t.Context(), raw, IDJAGProfile(), f.issuers, expectFor(IDJAGProfile()))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		ClientID string `json:"client_id"`
		Resource string `json:"resource"`
		Scope    string `json:"scope"`
	}
	if err := tok.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.ClientID != clientID || got.Resource != resource || got.Scope != "tools.read" {
		t.Errorf("Decode = %+v", got)
	}
	if err := (&Token{}).Decode(&got); err == nil {
		t.Error("Decode on a zero Token succeeded")
	}
}

func TestVerifyDefaultNow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := time.Now().Unix()
	raw := f.es.token(t, TypeIDJAG, with(idJAGClaims(), "iat", now, "exp", now+300))
	want := Expectations{Audiences: []string{asIssuer}} // Now left zero
	if _, err := Verify(t.Context(), raw, IDJAGProfile(), f.issuers, want); err != nil {
		t.Fatalf("Verify at the real time: %v", err)
	}
}

// TestVerifyLeewayProfile checks that a profile's own leeway replaces the
// default for exp, nbf and iat alike.
func TestVerifyLeewayProfile(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := testNow().Unix()
	p := IDJAGProfile()
	p.Leeway = 5 * time.Second
	tests := []struct {
		name   string
		claims map[string]any
		err    error
	}{
		{"exp 5 s ago", with(idJAGClaims(), "iat", now-100, "exp", now-5), nil},
		{"exp 6 s ago", with(idJAGClaims(), "iat", now-100, "exp", now-6), ErrExpired},
		{"nbf 6 s ahead", with(idJAGClaims(), "nbf", now+6), ErrNotYetValid},
		{"iat 6 s ahead", with(idJAGClaims(), "iat", now+6, "exp", now+100), ErrIssuedInFuture},
	}
	for _, tc := range tests {
		_, err := Verify(t.Context(), f.es.token(t, TypeIDJAG, tc.claims), p, f.issuers, expectFor(p))
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: Verify error = %v, want %v", tc.name, err, tc.err)
		}
	}
}

func TestVerifyMisconfigured(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	valid := f.es.token(t, TypeIDJAG, idJAGClaims())
	hsToken := hs256(header("HS256", "es-a", TypeIDJAG), mustJSON(t, idJAGClaims()), []byte("secret"))
	profile := func(mod func(*Profile)) Profile {
		p := IDJAGProfile()
		mod(&p)
		return p
	}
	tests := []struct {
		name    string
		raw     string
		p       Profile
		issuers TrustedIssuers
		want    Expectations
	}{
		{"HS256 listed", valid, profile(func(p *Profile) { p.Algorithms = append(p.Algorithms, "HS256") }), f.issuers, expectFor(IDJAGProfile())},
		{"HS256 listed, HS256 token", hsToken, profile(func(p *Profile) { p.Algorithms = []string{"HS256"} }), f.issuers, expectFor(IDJAGProfile())},
		{"none listed", valid, profile(func(p *Profile) { p.Algorithms = []string{"none", ES256} }), f.issuers, expectFor(IDJAGProfile())},
		{"no algorithms", valid, profile(func(p *Profile) { p.Algorithms = nil }), f.issuers, expectFor(IDJAGProfile())},
		{"no types", valid, profile(func(p *Profile) { p.Types = nil }), f.issuers, expectFor(IDJAGProfile())},
		{"negative leeway", valid, profile(func(p *Profile) { p.Leeway = -time.Second }), f.issuers, expectFor(IDJAGProfile())},
		{"leeway of an hour", valid, profile(func(p *Profile) { p.Leeway = time.Hour }), f.issuers, expectFor(IDJAGProfile())},
		{"negative lifetime", valid, profile(func(p *Profile) { p.MaxLifetime = -1 }), f.issuers, expectFor(IDJAGProfile())},
		{"negative size", valid, profile(func(p *Profile) { p.MaxSize = -1 }), f.issuers, expectFor(IDJAGProfile())},
		{"no audiences", valid, IDJAGProfile(), f.issuers, Expectations{Now: testNow()}},
		{"empty audience", valid, IDJAGProfile(), f.issuers, Expectations{Audiences: []string{""}, Now: testNow()}},
		{"nil issuers", valid, IDJAGProfile(), nil, expectFor(IDJAGProfile())},
		{"SingleIssuer without keys", valid, IDJAGProfile(), SingleIssuer{Issuer: issuerA}, expectFor(IDJAGProfile())},
		{"issuer with nil key set", valid, IDJAGProfile(), mapIssuers{issuerA: nil}, expectFor(IDJAGProfile())},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok, err := Verify(t.Context(), tc.raw, tc.p, tc.issuers, tc.want)
			if tok != nil || !errors.Is(err, ErrMisconfigured) {
				t.Fatalf("Verify = %v, %v; want ErrMisconfigured", tok, err)
			}
			for _, s := range sentinels() {
				if errors.Is(err, s) {
					t.Errorf("configuration error %v also wraps rejection %v", err, s)
				}
			}
		})
	}
}

// failingIssuers and failingKeys stand for a store or JWKS endpoint that is
// down: their errors must reach the caller unchanged, not as a rejection.
type failingIssuers struct{ err error }

func (f failingIssuers) KeySet(context.Context, string) (KeySet, error) { return nil, f.err }

type failingKeys struct{ err error }

func (f failingKeys) Key(context.Context, string) (*gojose.JSONWebKey, error) { return nil, f.err }

// badKeys hands out a key that must never verify anything.
type badKeys struct{ key *gojose.JSONWebKey }

func (b badKeys) Key(context.Context, string) (*gojose.JSONWebKey, error) { return b.key, nil }

func TestVerifyKeySetFailures(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	raw := f.es.token(t, TypeIDJAG, idJAGClaims())
	outage := errors.New("database is down")

	_, err := Verify(t.Context(), raw, IDJAGProfile(), failingIssuers{outage}, expectFor(IDJAGProfile()))
	if !errors.Is(err, outage) {
		t.Errorf("issuer outage: error = %v, want it wrapped", err)
	}
	_, err = Verify(t.Context(), raw, IDJAGProfile(), SingleIssuer{Issuer: issuerA, Keys: failingKeys{outage}}, expectFor(IDJAGProfile()))
	if !errors.Is(err, outage) {
		t.Errorf("key set outage: error = %v, want it wrapped", err)
	}

	private := f.es.public()
	private.Key = f.es.priv
	hmacKey := f.es.public()
	hmacKey.Key = []byte("0123456789abcdef0123456789abcdef")
	noAlg := f.es.public()
	noAlg.Algorithm = ""
	for name, k := range map[string]*gojose.JSONWebKey{"private key": &private, "symmetric key": &hmacKey, "key without alg": &noAlg, "nil key": nil} {
		tok, err := Verify(t.Context(), raw, IDJAGProfile(), SingleIssuer{Issuer: issuerA, Keys: badKeys{k}}, expectFor(IDJAGProfile()))
		if tok != nil || err == nil {
			t.Errorf("%s: Verify accepted", name)
		}
	}

	// SingleIssuer refuses every other issuer.
	_, err = Verify(t.Context(), f.esB.token(t, TypeIDJAG, with(idJAGClaims(), "iss", issuerB)), IDJAGProfile(),
		SingleIssuer{Issuer: issuerA, Keys: f.issuers[issuerA]}, expectFor(IDJAGProfile()))
	if !errors.Is(err, ErrUnknownIssuer) {
		t.Errorf("SingleIssuer with another issuer: error = %v, want ErrUnknownIssuer", err)
	}
}

func TestPeekIssuer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name string
		raw  string
		p    Profile
		want string
		err  error
	}{
		{"ID-JAG", f.es.token(t, TypeIDJAG, idJAGClaims()), IDJAGProfile(), issuerA, nil},
		{"untrusted issuer, bad signature", segment(f.es.token(t, TypeIDJAG, with(idJAGClaims(), "iss", "https://x.example")), 2,
			func(s string) string { return "AAAA" + s[4:] }), IDJAGProfile(), "https://x.example", nil},
		{"wrong typ", f.es.token(t, TypeIDJAG, idJAGClaims()), AccessTokenProfile(), "", ErrType},
		{"alg none", b64(header("none", "k", TypeIDJAG)) + "." + b64(mustJSON(t, idJAGClaims())) + ".AA", IDJAGProfile(), "", ErrAlgorithm},
		{"jku", f.es.jws(t, `{"alg":"ES256","kid":"k","typ":"oauth-id-jag+jwt","jku":"https://x"}`, mustJSON(t, idJAGClaims())), IDJAGProfile(), "", ErrForbiddenHeader},
		{"iss missing", f.es.token(t, TypeIDJAG, with(idJAGClaims(), "iss", nil)), IDJAGProfile(), "", ErrMissingClaim},
		{"dots", strings.Repeat(".", 7000), IDJAGProfile(), "", ErrMalformed},
		{"misconfigured profile", f.es.token(t, TypeIDJAG, idJAGClaims()), Profile{Types: []string{""}, Algorithms: []string{"HS256"}}, "", ErrMisconfigured},
	}
	for _, tc := range tests {
		got, err := PeekIssuer(tc.raw, tc.p)
		if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("%s: PeekIssuer = %q, %v; want %q, %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

func TestTypeMatching(t *testing.T) {
	t.Parallel()
	p := Profile{Types: []string{TypeIDJAG, "application/Foo"}}
	tests := []struct {
		typ     string
		present bool
		want    bool
	}{
		{"oauth-id-jag+jwt", true, true},
		{"OAUTH-ID-JAG+JWT", true, true},
		{"application/oauth-id-jag+jwt", true, true},
		{"APPLICATION/oauth-id-jag+jwt", true, true},
		{"foo", true, true},
		{"application/foo", true, true},
		{"", false, false},
		{"", true, false},
		{"application/", true, false},
		{"application/application/oauth-id-jag+jwt", true, false},
		{" oauth-id-jag+jwt", true, false},
		{"oauth-id-jag+jwt ", true, false},
		{"text/oauth-id-jag+jwt", true, false},
		{"id-jag+jwt", true, false},
		{"fo\u212a", true, false},
	}
	for _, tc := range tests {
		if got := p.allowsType(tc.typ, tc.present); got != tc.want {
			t.Errorf("allowsType(%q, %v) = %v, want %v", tc.typ, tc.present, got, tc.want)
		}
	}
}

func TestCanonicalBase64URL(t *testing.T) {
	t.Parallel()
	strict := base64.RawURLEncoding.Strict()
	for n := range 70 {
		seg := base64.RawURLEncoding.EncodeToString(make([]byte, n))
		for _, s := range []string{seg, seg + "A", seg + "B", seg + "_"} {
			for _, v := range []string{s, flipLast(s)} {
				if v == "" {
					continue
				}
				_, err := strict.DecodeString(v)
				if got := canonicalBase64URL(v); got != (err == nil) {
					t.Errorf("canonicalBase64URL(%q) = %v, strict decoder error %v", v, got, err)
				}
			}
		}
	}
}

func flipLast(s string) string {
	if s == "" {
		return s
	}
	return s[:len(s)-1] + "x"
}

func TestFoldName(t *testing.T) {
	t.Parallel()
	pairs := [][2]string{
		{"scope", "SCOPE"}, {"Scope", "sCoPe"}, {"k", "\u212a"}, {"s", "\u017f"}, {"straße", "STRASSE"}, {"é", "É"},
	}
	for _, p := range pairs {
		if got, want := foldName(p[0]) == foldName(p[1]), strings.EqualFold(p[0], p[1]); got != want {
			t.Errorf("foldName(%q) == foldName(%q) is %v, EqualFold says %v", p[0], p[1], got, want)
		}
	}
}
