package jose

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math"
	"math/big"
	"strings"
	"testing"

	gojose "github.com/go-jose/go-jose/v4"
)

// Each Verify fuzz target runs the same invariants with a different profile:
//   - Verify never panics, and returns either a token or an error;
//   - every error wraps exactly one rejection sentinel (the issuers and key
//     sets here never fail for other reasons);
//   - an accepted token's signature verifies over header.payload with the
//     pinned test key of its issuer and kid, checked with crypto/* directly;
//   - an accepted token's header and claims satisfy the profile, checked
//     again by independent code.

func FuzzVerifyIDJAG(f *testing.F)           { fuzzVerify(f, IDJAGProfile()) }
func FuzzVerifyAccessToken(f *testing.F)     { fuzzVerify(f, AccessTokenProfile()) }
func FuzzVerifyIDToken(f *testing.F)         { fuzzVerify(f, IDTokenProfile()) }
func FuzzVerifyClientAssertion(f *testing.F) { fuzzVerify(f, ClientAssertionProfile()) }
func FuzzVerifySET(f *testing.F)             { fuzzVerify(f, SETProfile()) }

func fuzzVerify(f *testing.F, p Profile) {
	fx := newFixture(f)
	for _, s := range verifySeeds(f, fx) {
		f.Add(s)
	}
	want := expectFor(p)
	pinned := map[string]map[string]*testKey{}
	for _, iss := range []string{issuerA, asIssuer, clientID} {
		pinned[iss] = map[string]*testKey{"es-a": fx.es, "ed-a": fx.ed, "rs-a": fx.rs, "ps-a": fx.ps}
	}
	pinned[issuerB] = map[string]*testKey{"es-b": fx.esB}

	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := Verify(t.Context(), raw, p, fx.issuers, want)
		if err != nil {
			if tok != nil {
				t.Fatalf("token returned with error %v", err)
			}
			n := 0
			for _, s := range sentinels() {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("error %v wraps %d sentinels", err, n)
			}
			return
		}
		if tok == nil {
			t.Fatal("no token and no error")
		}
		checkAccepted(t, raw, tok, p, want, pinned)
	})
}

// checkAccepted re-derives, without the code under test, that an accepted
// token deserved it.
func checkAccepted(t *testing.T, raw string, tok *Token, p Profile, want Expectations, pinned map[string]map[string]*testKey) {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("accepted a token with %d parts", len(parts))
	}
	dec := base64.RawURLEncoding.Strict()
	headerJSON, err1 := dec.DecodeString(parts[0])
	payload, err2 := dec.DecodeString(parts[1])
	sig, err3 := dec.DecodeString(parts[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatalf("accepted non-canonical base64url: %v", err)
	}

	// Header: only alg, kid, typ; alg allowed; typ allowed.
	var h map[string]any
	if err := json.Unmarshal(headerJSON, &h); err != nil {
		t.Fatalf("accepted a header encoding/json rejects: %v", err)
	}
	for k := range h {
		if k != "alg" && k != "kid" && k != "typ" {
			t.Fatalf("accepted header member %q", k)
		}
	}
	alg, _ := h["alg"].(string)
	kid, _ := h["kid"].(string)
	if alg != tok.Header.Algorithm || kid != tok.Header.KeyID {
		t.Fatalf("header alg/kid %q/%q, token says %q/%q", alg, kid, tok.Header.Algorithm, tok.Header.KeyID)
	}
	if !contains(p.Algorithms, alg) || alg == "none" || strings.HasPrefix(strings.ToUpper(alg), "HS") {
		t.Fatalf("accepted alg %q", alg)
	}
	typ, hasTyp := h["typ"]
	if !hasTyp {
		if !contains(p.Types, "") {
			t.Fatal("accepted a token without typ")
		}
	} else {
		s, ok := typ.(string)
		if !ok || !typeAllowedIndependently(p.Types, s) {
			t.Fatalf("accepted typ %v for %s", typ, p.Kind)
		}
	}

	// Signature with the pinned key of the token's issuer.
	key, ok := pinned[tok.Issuer][kid]
	if !ok {
		t.Fatalf("accepted kid %q for issuer %q, which has no such key", kid, tok.Issuer)
	}
	if key.alg != alg {
		t.Fatalf("accepted alg %q with a %s key", alg, key.alg)
	}
	if !verifyIndependently(key, parts[0]+"."+parts[1], sig) {
		t.Fatal("accepted a signature that crypto/* does not verify")
	}

	// Claims.
	var c map[string]any
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	if err := d.Decode(&c); err != nil {
		t.Fatalf("accepted a payload encoding/json rejects: %v", err)
	}
	str := func(name string) string {
		s, ok := c[name].(string)
		if !ok || s == "" {
			t.Fatalf("accepted %s = %v", name, c[name])
		}
		return s
	}
	num := func(name string) float64 {
		n, ok := c[name].(json.Number)
		if !ok {
			t.Fatalf("accepted %s = %v", name, c[name])
		}
		v, err := n.Float64()
		if err != nil || v < 0 || math.IsInf(v, 0) {
			t.Fatalf("accepted %s = %v", name, n)
		}
		return v
	}
	if str("iss") != tok.Issuer {
		t.Fatal("iss differs from the token")
	}
	if _, has := c["sub"]; has || !p.OptionalSubject {
		if str("sub") != tok.Subject {
			t.Fatal("sub differs from the token")
		}
	} else if tok.Subject != "" {
		t.Fatal("a token without sub has a subject")
	}
	if p.RequireJTI && str("jti") != tok.ID {
		t.Fatal("jti differs from the token")
	}
	var aud []string
	switch a := c["aud"].(type) {
	case string:
		aud = []string{a}
	case []any:
		for _, v := range a {
			s, ok := v.(string)
			if !ok || s == "" {
				t.Fatalf("accepted aud %v", c["aud"])
			}
			aud = append(aud, s)
		}
	default:
		t.Fatalf("accepted aud %v", c["aud"])
	}
	if len(aud) == 0 || (p.SingleAudience && len(aud) != 1) || !intersects(aud, want.Audiences) {
		t.Fatalf("accepted aud %v for %v", aud, want.Audiences)
	}
	now := float64(want.Now.Unix())
	leeway := p.leeway().Seconds()
	exp, iat := num("exp"), num("iat")
	if now > exp+leeway || iat > now+leeway || exp <= iat {
		t.Fatalf("accepted iat %v exp %v at %v", iat, exp, now)
	}
	if p.MaxLifetime > 0 && exp-iat > p.MaxLifetime.Seconds()+1e-6 {
		t.Fatalf("accepted lifetime %v s", exp-iat)
	}
	if _, ok := c["nbf"]; ok && num("nbf") > now+leeway {
		t.Fatal("accepted a future nbf")
	}
}

func typeAllowedIndependently(types []string, typ string) bool {
	for i := 0; i < len(typ); i++ {
		if typ[i] >= 0x80 {
			return false
		}
	}
	norm := func(s string) string { return strings.TrimPrefix(strings.ToLower(s), "application/") }
	for _, t := range types {
		if t != "" && norm(t) == norm(typ) {
			return true
		}
	}
	return false
}

func verifyIndependently(k *testKey, input string, sig []byte) bool {
	digest := sha256.Sum256([]byte(input))
	switch k.alg {
	case ES256:
		if len(sig) != 64 {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(k.priv.Public().(*ecdsa.PublicKey), digest[:], r, s)
	case EdDSA:
		return ed25519.Verify(k.priv.Public().(ed25519.PublicKey), []byte(input), sig)
	case RS256:
		return rsa.VerifyPKCS1v15(k.priv.Public().(*rsa.PublicKey), crypto.SHA256, digest[:], sig) == nil
	case PS256:
		return rsa.VerifyPSS(k.priv.Public().(*rsa.PublicKey), crypto.SHA256, digest[:], sig, nil) == nil
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func intersects(a, b []string) bool {
	for _, v := range a {
		if contains(b, v) {
			return true
		}
	}
	return false
}

// verifySeeds are valid tokens of every kind (so each target also sees the
// other kinds) and the classic attacks, after go-jose's fuzz/jws_test.go.
func verifySeeds(tb testing.TB, fx *fixture) []string {
	now := testNow().Unix()
	jag := mustJSON(tb, idJAGClaims())
	rsaPub, err := x509.MarshalPKIXPublicKey(fx.rs.priv.Public())
	if err != nil {
		tb.Fatal(err)
	}
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPub})
	validJAG := fx.es.token(tb, TypeIDJAG, idJAGClaims())
	seeds := []string{
		// Valid tokens of each profile and algorithm.
		validJAG,
		fx.ed.token(tb, TypeIDJAG, idJAGClaims()),
		fx.rs.token(tb, "application/"+TypeIDJAG, idJAGClaims()),
		fx.esB.token(tb, TypeIDJAG, with(idJAGClaims(), "iss", issuerB)),
		fx.es.token(tb, TypeAccessToken, accessTokenClaims()),
		fx.ed.token(tb, TypeAccessToken, accessTokenClaims()),
		fx.rs.token(tb, TypeJWT, idTokenClaims()),
		fx.ps.token(tb, "", idTokenClaims()),
		fx.es.token(tb, "", clientAssertionClaims()),
		fx.ed.token(tb, "client-authentication+jwt", clientAssertionClaims()),
		fx.es.token(tb, TypeIDJAG, with(idJAGClaims(), "iat", json.RawMessage("1777636790.25"), "nbf", now-5)),
		fx.es.token(tb, TypeSET, setClaims()),
		fx.ed.token(tb, "application/"+TypeSET, with(setClaims(), "sub", "user-1")),
		fx.es.token(tb, TypeSET, with(setClaims(), "sub", "")),
		fx.es.token(tb, TypeSET, with(setClaims(), "exp", now+3600)),
		fx.es.token(tb, TypeIDJAG, setClaims()),
		// alg none and HMAC confusion.
		b64(header("none", "es-a", TypeIDJAG)) + "." + b64(jag) + ".",
		b64(header("none", "es-a", TypeIDJAG)) + "." + b64(jag) + ".AAAA",
		b64(`{"alg":"none"}`) + "." + b64(jag) + ".",
		hs256(header("HS256", "rs-a", TypeIDJAG), jag, rsaPEM),
		hs256(header("HS256", "es-a", TypeIDJAG), jag, []byte(mustJSON(tb, fx.es.public()))),
		// Header parameters that must be refused.
		fx.es.jws(tb, `{"alg":"ES256","kid":"es-a","typ":"oauth-id-jag+jwt","crit":["b64"],"b64":false}`, jag),
		fx.es.jws(tb, `{"alg":"ES256","kid":"es-a","typ":"oauth-id-jag+jwt","crit":["exp"]}`, jag),
		fx.es.jws(tb, `{"alg":"ES256","kid":"es-a","typ":"oauth-id-jag+jwt","jku":"https://evil.example/jwks"}`, jag),
		fx.es.jws(tb, `{"alg":"ES256","kid":"es-a","typ":"oauth-id-jag+jwt","x5u":"https://evil.example/x"}`, jag),
		fx.es.jws(tb, `{"alg":"ES256","kid":"es-a","typ":"oauth-id-jag+jwt","jwk":`+mustJSON(tb, fx.es.public())+`}`, jag),
		fx.es.jws(tb, `{"alg":"ES256","kid":"es-a","typ":"oauth-id-jag+jwt","zip":"DEF"}`, jag),
		fx.es.jws(tb, `{"alg":"ES256","kid":1,"typ":"oauth-id-jag+jwt"}`, jag),
		fx.es.jws(tb, `{"alg":"ES256","kid":"rs-a","typ":"oauth-id-jag+jwt"}`, jag),
		// Duplicates, at the top and nested.
		fx.es.jws(tb, `{"alg":"ES256","alg":"none","kid":"es-a","typ":"oauth-id-jag+jwt"}`, jag),
		fx.es.jws(tb, header(ES256, "es-a", TypeIDJAG), jag[:len(jag)-1]+`,"sub":"admin"}`),
		fx.es.jws(tb, header(ES256, "es-a", TypeIDJAG), jag[:len(jag)-1]+`,"act":{"sub":"a","Sub":"b"}}`),
		// Shapes: trailing dots, JWE, padding, whitespace, JSON serialization.
		validJAG + ".",
		validJAG + "..",
		"..",
		"a.b.c",
		b64(`{"alg":"RSA-OAEP","enc":"A256GCM"}`) + ".AAAA.AAAA.AAAA.AAAA",
		segment(validJAG, 0, func(s string) string { return s + "=" }),
		segment(validJAG, 1, func(s string) string { return "+" + s[1:] }),
		segment(validJAG, 2, func(s string) string { return "/" + s[1:] + "==" }),
		" " + validJAG + "\n",
		`{"payload":"e30","protected":"e30","signature":"AA"}`,
		strings.Repeat(".", 7000),
	}
	return seeds
}

func FuzzParseJWKS(f *testing.F) {
	fx := newFixture(f)
	es, ed, rs := fx.es.public(), fx.ed.public(), fx.rs.public()
	js := func(v any) string { return mustJSON(f, v) }
	own, err := json.Marshal(PublicJWKS(es, ed, rs))
	if err != nil {
		f.Fatal(err)
	}
	seeds := []string{
		string(own),
		`{"keys":[` + js(rs) + `,` + strings.Replace(js(fx.ps.public()), `"PS256"`, `"RSA-OAEP"`, 1) + `]}`,
		`{"keys":[` + js(gojose.JSONWebKey{Key: fx.es.priv, KeyID: "p", Algorithm: ES256}) + `]}`,
		`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"hs","alg":"HS256"}]}`,
		`{"keys":[` + js(es) + `],"keys":[]}`,
		`{"keys":[` + strings.TrimSuffix(js(es), "}") + `,"KID":"x"}]}`,
		`{"keys":[` + js(es) + `,` + js(es) + `]}`,
		`{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA","kid":"bad","alg":"ES256"}]}`,
		`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"tiny","alg":"RS256"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + strings.Repeat("A", 43) + `","kid":"ed","alg":"EdDSA","key_ops":["verify"]}]}`,
		`{"keys":[{"x":{"y":{"z":[[[[[[]]]]]]}}}]}`,
		`{"keys":null}`,
		`{"keys":[]}`,
		`{"keys":[` + js(gojose.JSONWebKey{Key: rs.Key, KeyID: "enc", Algorithm: "RSA-OAEP", Use: "enc"}) + `]}`,
		`{"keys":[` + js(gojose.JSONWebKey{Key: es.Key, KeyID: "no-alg"}) + `]}`,
		`[]`,
		``,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := ParseJWKS(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidKeySet) || len(set.Keys) != 0 {
				t.Fatalf("ParseJWKS = %d keys, %v", len(set.Keys), err)
			}
			return
		}
		// Zero keys is a valid answer (the issuer withdrew them all), but
		// Keys is never nil: it must marshal as an array, not null.
		if set.Keys == nil || len(set.Keys) > maxJWKSKeys {
			t.Fatalf("%d keys (nil: %v)", len(set.Keys), set.Keys == nil)
		}
		kids := map[string]bool{}
		for _, k := range set.Keys {
			if err := checkVerificationKey(k); err != nil {
				t.Fatalf("key %q: %v", k.KeyID, err)
			}
			if kids[k.KeyID] {
				t.Fatalf("duplicate kid %q", k.KeyID)
			}
			kids[k.KeyID] = true
		}
		if _, err := NewStaticKeySet(set); err != nil {
			t.Fatal(err)
		}
		out, err := json.Marshal(set)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range privateMembers() {
			if bytes.Contains(out, []byte(`"`+m+`":`)) {
				t.Fatalf("parsed set publishes %q", m)
			}
		}
		again, err := ParseJWKS(out)
		if err != nil || len(again.Keys) != len(set.Keys) {
			t.Fatalf("re-parse of the parsed set: %d keys, %v", len(again.Keys), err)
		}
	})
}

// FuzzScanObject pins the duplicate scanner against encoding/json: whatever
// it accepts is valid JSON, and its members are unique even under the case
// folding encoding/json applies to struct fields.
func FuzzScanObject(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"a":1,"a":2}`, `{"a":1,"A":2}`, `{"k":1,"\u212a":2}`, `{"a":{"b":[1,{"c":null,"c":true}]}}`,
		`{"a" : "b" , "c":[ ] }`, `{"a":1}{}`, `{"a":1,}`, `{"a" 1}`, `[1]`, ` {"x":"\ud800"} `, "{\"\xff\":1}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		members, err := scanObject(data)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("accepted %q that does not decode as an object: %v", data, err)
		}
		if len(m) != len(members) {
			t.Fatalf("%d members, encoding/json sees %d", len(members), len(m))
		}
		for i, a := range members {
			if !bytes.Equal(m[a.name], a.raw) {
				t.Fatalf("member %q raw %q, encoding/json has %q", a.name, a.raw, m[a.name])
			}
			for _, b := range members[i+1:] {
				if strings.EqualFold(a.name, b.name) {
					t.Fatalf("accepted members %q and %q", a.name, b.name)
				}
			}
		}
	})
}

// Sanity check that the seeds include accepted tokens, so the accepted-path
// invariants actually run in plain `go test`.
func TestFuzzSeedsAccepted(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	accepted := map[string]int{}
	for _, p := range []Profile{IDJAGProfile(), AccessTokenProfile(), IDTokenProfile(), ClientAssertionProfile(), SETProfile()} {
		for _, s := range verifySeeds(t, fx) {
			if _, err := Verify(t.Context(), s, p, fx.issuers, expectFor(p)); err == nil {
				accepted[p.Kind]++
			}
		}
	}
	for _, kind := range []string{"ID-JAG", "access token", "ID token", "client assertion", "security event token"} {
		if accepted[kind] == 0 {
			t.Errorf("no seed is a valid %s", kind)
		}
	}
}
