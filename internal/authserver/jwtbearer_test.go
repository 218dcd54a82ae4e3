package authserver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gojose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/time/rate"

	"github.com/openxaa/xaa/idjag"
	"github.com/openxaa/xaa/internal/audit"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/jwkscache"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/store"
)

// with returns a copy of h that reports to t.
func (h *harness) with(t testing.TB) *harness {
	c := *h
	c.t = t
	return &c
}

// TestJWTBearer holds one subtest per applicable item of the spec digest's
// checklist group C (xaa-protocol.md §7), named with its number. Out of
// scope here: 69-71 (DPoP-bound ID-JAGs: no cnf/DPoP support yet; an
// ID-JAG carrying cnf is redeemed as a bearer grant today), 72 (JWE: the
// jose layer refuses every JWE, which C45 covers as garbage) and 73 (SAML
// sub_id).
func TestJWTBearer(t *testing.T) {
	t.Parallel()
	base := newHarness(t, nil)

	// refused checks that the assertion is invalid_grant for the right
	// reason: its one audit record (found by the assertion's HMAC) carries
	// the rule and a reason mentioning why.
	refused := func(name, rule, why string, assertion func(h *harness) string) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := base.with(t)
			tok := assertion(h)
			wantError(t, h.post(jb(tok)), http.StatusBadRequest, "invalid_grant")
			mac := audit.TokenHMAC([]byte(auditKeyTest), tok)
			var found int
			for _, ev := range h.audit(AuditAccessTokenDenied) {
				if ev.Data["assertion_hmac"] != mac {
					continue
				}
				found++
				if ev.Rule != rule || !strings.Contains(ev.Reason, why) {
					t.Errorf("audit rule %q reason %q, want rule %q and a reason with %q", ev.Rule, ev.Reason, rule, why)
				}
			}
			if found != 1 {
				t.Errorf("%d audit records for the assertion, want 1", found)
			}
		})
	}

	t.Run("C42_good_request", func(t *testing.T) {
		t.Parallel()
		h := base.with(t)
		r := h.post(jb(h.good()))
		wantOK(t, r)
		if got := r.header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control = %q", got)
		}
		got := map[string]any{"token_type": r.body["token_type"], "expires_in": r.body["expires_in"], "scope": r.body["scope"], "resource": r.body["resource"]}
		want := map[string]any{"token_type": "Bearer", "expires_in": float64(300), "scope": "a b", "resource": resMCP}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("response (-want +got):\n%s", d)
		}
		if _, ok := r.body["refresh_token"]; ok {
			t.Error("response carries a refresh_token")
		}
		if r.str("access_token") == "" {
			t.Error("no access_token")
		}
	})

	t.Run("C43_no_assertion", func(t *testing.T) {
		t.Parallel()
		h := base.with(t)
		wantError(t, h.post(jb("")), http.StatusBadRequest, "invalid_request")
	})

	t.Run("C44_grant_type", func(t *testing.T) {
		t.Parallel()
		h := base.with(t)
		f := jb(h.good())
		f.Set("grant_type", "client_credentials")
		wantError(t, h.post(f), http.StatusBadRequest, "unsupported_grant_type")
		f.Set("grant_type", idjag.GrantTypeTokenExchange)
		wantError(t, h.post(f), http.StatusBadRequest, "unsupported_grant_type")
		f.Del("grant_type")
		wantError(t, h.post(f), http.StatusBadRequest, "invalid_request")
		// A client registered here without a policy may not use the grant.
		wantError(t, h.postAs(jb(h.good(func(c claims) { c["client_id"] = clientNoPol })), clientNoPol, clientNoSec, true),
			http.StatusBadRequest, "unauthorized_client")
	})

	for name, garbage := range map[string]string{
		"dots": "a.b.c", "word": "garbage", "two_parts": "eyJhbGciOiJFUzI1NiJ9.e30",
		"jwe": "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d",
	} {
		refused("C45_garbage_"+name, ruleAssertionInvalid, "jose: ", func(*harness) string { return garbage })
	}

	t.Run("C46_no_client_auth", func(t *testing.T) {
		t.Parallel()
		h := base.with(t)
		wantError(t, h.postAs(jb(h.good()), "", "", false), http.StatusUnauthorized, "invalid_client")
		wantError(t, h.postAs(jb(h.good()), client1, "wrong-secret", true), http.StatusUnauthorized, "invalid_client")
	})

	refused("C47_client_id_mismatch", ruleClientMismatch, "not issued to this client", func(h *harness) string { return h.good(func(c claims) { c["client_id"] = client2 }) })
	refused("C48_client_id_missing", ruleClientMismatch, "no client_id", func(h *harness) string { return h.good(func(c claims) { delete(c, "client_id") }) })
	refused("C48_client_id_not_string", ruleAssertionInvalid, "malformed", func(h *harness) string { return h.good(func(c claims) { c["client_id"] = []string{client1} }) })

	for _, typ := range []string{"", "JWT", "at+jwt", "id-jag+jwt"} {
		refused("C49_typ_"+typ, ruleAssertionInvalid, "wrong token type", func(h *harness) string { return h.a.mint(h.t, goodClaims(idpA), typ) })
	}
	t.Run("C49_typ_application_prefix_accepted", func(t *testing.T) {
		t.Parallel()
		h := base.with(t)
		wantOK(t, h.post(jb(h.a.mint(t, goodClaims(idpA), "application/oauth-id-jag+jwt"))))
	})

	for name, sig := range map[string][]byte{"empty_signature": nil, "with_signature": []byte("sig")} {
		why := "algorithm not allowed"
		if sig == nil {
			why = "malformed token" // refused even before the alg is read
		}
		refused("C50_alg_none_"+name, ruleAssertionInvalid, why, func(h *harness) string {
			hdr := mustJSON(map[string]string{"alg": "none", "typ": idjag.JWTType, "kid": h.a.signer.KeyID()})
			return compact(hdr, mustJSON(goodClaims(idpA)), sig)
		})
	}

	refused("C51_hs256_key_confusion", ruleAssertionInvalid, "algorithm not allowed", func(h *harness) string {
		der, err := x509.MarshalPKIXPublicKey(&h.rsaKey.PublicKey)
		if err != nil {
			h.t.Fatal(err)
		}
		secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		hdr := mustJSON(map[string]string{"alg": "HS256", "typ": idjag.JWTType, "kid": h.rsaKID})
		enc := base64.RawURLEncoding.EncodeToString
		input := enc([]byte(hdr)) + "." + enc([]byte(mustJSON(goodClaims(idpRSA))))
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(input))
		return input + "." + enc(m.Sum(nil))
	})

	refused("C52_tampered_payload", ruleAssertionInvalid, "signature does not verify", func(h *harness) string {
		parts := strings.Split(h.good(), ".")
		c := goodClaims(idpA)
		c["scope"] = "a b c"
		parts[1] = base64.RawURLEncoding.EncodeToString([]byte(mustJSON(c)))
		return strings.Join(parts, ".")
	})

	refused("C54_untrusted_issuer", ruleAssertionInvalid, "issuer is not trusted", func(h *harness) string {
		evil := newIdP(h.t, idpEvil, jose.ES256)
		return evil.mint(h.t, goodClaims(idpEvil))
	})
	refused("C54_disabled_issuer", ruleAssertionInvalid, "issuer is not trusted", func(h *harness) string {
		return newIdP(h.t, idpOff, jose.ES256).mint(h.t, goodClaims(idpOff))
	})
	refused("C55_issuer_A_signed_by_B", ruleAssertionInvalid, "unknown key id", func(h *harness) string { return h.b.mint(h.t, goodClaims(idpA)) })
	refused("C55_issuer_B_signed_by_A", ruleAssertionInvalid, "unknown key id", func(h *harness) string { return h.a.mint(h.t, goodClaims(idpB)) })
	refused("C56_aud_other_as", ruleAssertionInvalid, "audience mismatch", func(h *harness) string { return h.good(func(c claims) { c["aud"] = "https://as2.example.com" }) })
	refused("C57_aud_two_values", ruleAssertionInvalid, "audience mismatch", func(h *harness) string {
		return h.good(func(c claims) { c["aud"] = []string{asIssuer, "https://as2.example.com"} })
	})
	t.Run("C57_aud_one_element_array_accepted", func(t *testing.T) {
		t.Parallel()
		h := base.with(t)
		wantOK(t, h.post(jb(h.good(func(c claims) { c["aud"] = []string{asIssuer} }))))
	})
	refused("C58_aud_token_endpoint", ruleAssertionInvalid, "audience mismatch", func(h *harness) string { return h.good(func(c claims) { c["aud"] = asIssuer + "/token" }) })
	refused("C58_aud_trailing_slash", ruleAssertionInvalid, "audience mismatch", func(h *harness) string { return h.good(func(c claims) { c["aud"] = asIssuer + "/" }) })

	refused("C59_expired_61s", ruleAssertionInvalid, "token expired", func(h *harness) string {
		return h.good(func(c claims) {
			c["iat"] = testNow.Add(-200 * time.Second).Unix()
			c["exp"] = testNow.Add(-61 * time.Second).Unix()
		})
	})
	t.Run("C59_expired_30s_within_skew", func(t *testing.T) {
		t.Parallel()
		h := base.with(t)
		wantOK(t, h.post(jb(h.good(func(c claims) {
			c["iat"] = testNow.Add(-200 * time.Second).Unix()
			c["exp"] = testNow.Add(-30 * time.Second).Unix()
		}))))
	})
	for _, claim := range []string{"exp", "iat", "jti"} {
		refused("C60_missing_"+claim, ruleAssertionInvalid, "required claim missing", func(h *harness) string { return h.good(func(c claims) { delete(c, claim) }) })
	}
	refused("C60_empty_jti", ruleAssertionInvalid, "jose: ", func(h *harness) string { return h.good(func(c claims) { c["jti"] = "" }) })
	refused("C61_nbf_120s_future", ruleAssertionInvalid, "not yet valid", func(h *harness) string {
		return h.good(func(c claims) { c["nbf"] = testNow.Add(120 * time.Second).Unix() })
	})
	refused("C61_iat_120s_future", ruleAssertionInvalid, "issued in the future", func(h *harness) string {
		return h.good(func(c claims) {
			c["iat"] = testNow.Add(120 * time.Second).Unix()
			c["exp"] = testNow.Add(400 * time.Second).Unix()
		})
	})
	refused("C62_lifetime_3600", ruleAssertionInvalid, "lifetime exceeds", func(h *harness) string {
		return h.good(func(c claims) { c["exp"] = testNow.Add(3600 * time.Second).Unix() })
	})
	refused("C62_lifetime_above_issuer_cap", ruleAssertionInvalid, "this issuer's limit", func(h *harness) string {
		// 400 s passes the profile's 600 s but not issuer A's 300 s.
		return h.good(func(c claims) { c["exp"] = testNow.Add(400 * time.Second).Unix() })
	})

	t.Run("C63_replay", func(t *testing.T) {
		t.Parallel()
		h := base.with(t)
		tok := h.good()
		wantOK(t, h.post(jb(tok)))
		wantError(t, h.post(jb(tok)), http.StatusBadRequest, "invalid_grant")
	})

	refused("C64_sub_missing", ruleAssertionInvalid, "has no sub", func(h *harness) string { return h.good(func(c claims) { delete(c, "sub") }) })
	refused("C64_sub_unresolvable", ruleSubjectUnknown, "cannot be resolved", func(h *harness) string { return h.good(func(c claims) { c["sub"] = blockedSub }) })
	refused("C65_resource_not_governed", ruleResourceInvalid, "not configured", func(h *harness) string { return h.good(func(c claims) { c["resource"] = resForeign }) })
	refused("C65_resource_one_of_array_not_governed", ruleResourceInvalid, "not configured", func(h *harness) string {
		return h.good(func(c claims) { c["resource"] = []string{resMCP, resForeign} })
	})
	refused("C65_resource_malformed", ruleResourceInvalid, "fragment", func(h *harness) string { return h.good(func(c claims) { c["resource"] = resMCP + "#x" }) })
	refused("C66_resource_missing", ruleResourceInvalid, "names no resource", func(h *harness) string { return h.good(func(c claims) { delete(c, "resource") }) })

	t.Run("C67_scope_narrowed_to_intersection", func(t *testing.T) {
		t.Parallel()
		h := base.with(t)
		f := jb(h.good())
		f.Set("scope", "a c")
		r := h.post(f)
		wantOK(t, r)
		if got := r.str("scope"); got != "a" {
			t.Errorf("scope = %q, want a", got)
		}
		f = jb(h.good())
		f.Set("scope", "c")
		wantError(t, h.post(f), http.StatusBadRequest, "invalid_scope")
	})

	t.Run("C68_scope_without_request", func(t *testing.T) {
		t.Parallel()
		h := base.with(t)
		for _, tc := range []struct {
			name, client, secret, idjagScope, want string
		}{
			{"idjag_scope", client1, client1Sec, "a b", "a b"},
			{"resource_drops_unknown", client1, client1Sec, "a b zz", "a b"},
			{"client_policy_narrows", client2, client2Sec, "a b", "a"},
		} {
			r := h.postAs(jb(h.good(func(c claims) { c["client_id"] = tc.client; c["scope"] = tc.idjagScope })), tc.client, tc.secret, true)
			wantOK(t, r)
			if got := r.str("scope"); got != tc.want {
				t.Errorf("%s: scope = %q, want %q", tc.name, got, tc.want)
			}
		}
		wantError(t, h.post(jb(h.good(func(c claims) { delete(c, "scope") }))), http.StatusBadRequest, "invalid_scope")
		wantError(t, h.post(jb(h.good(func(c claims) { c["scope"] = "zz" }))), http.StatusBadRequest, "invalid_scope")
	})

	refused("C74_cross_domain_own_issuer", ruleAssertionInvalid, "issuer is not trusted", func(h *harness) string {
		c := goodClaims(asIssuer)
		tok, err := h.keys.Signer().Sign(context.Background(), idjag.JWTType, map[string]any(c))
		if err != nil {
			h.t.Fatal(err)
		}
		return tok
	})

	t.Run("C75_access_token_contents", func(t *testing.T) {
		t.Parallel()
		h := base.with(t)
		c := goodClaims(idpA)
		r := h.post(jb(h.a.mint(t, c)))
		wantOK(t, r)
		tok, got := h.accessToken(r.str("access_token"), resMCP)
		if tok.Header.Type != jose.TypeAccessToken {
			t.Errorf("typ = %q", tok.Header.Type)
		}
		if life := tok.Expiry.Sub(tok.IssuedAt); life != 300*time.Second {
			t.Errorf("exp - iat = %s", life)
		}
		delete(got, "jti")
		want := map[string]any{
			"iss": asIssuer, "aud": resMCP, "sub": idpA + "|alice", "client_id": client1, "scope": "a b",
			"iat": float64(testNow.Unix()), "exp": float64(testNow.Add(300 * time.Second).Unix()),
			"acr": c["acr"], "amr": []any{"pwd", "otp"}, "auth_time": float64(c["auth_time"].(int64)),
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("access token claims (-want +got):\n%s", d)
		}
		// The ledger row links the access token to its ID-JAG.
		row, err := h.db.GetToken(context.Background(), asIssuer, tok.ID)
		if err != nil {
			t.Fatal(err)
		}
		if row.ParentJTI != c["jti"] || row.Kind != store.TokenKindAccessToken || row.Resource != resMCP || row.Subject != idpA+"|alice" {
			t.Errorf("ledger row = %+v", row)
		}
	})

	t.Run("C76_metadata", func(t *testing.T) {
		t.Parallel()
		h := base.with(t)
		for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
			req, _ := http.NewRequest(http.MethodGet, h.hs.URL+path, nil)
			r := h.do(req)
			if r.status != http.StatusOK {
				t.Fatalf("%s: %d", path, r.status)
			}
			want := map[string]any{
				"issuer":                                 asIssuer,
				"token_endpoint":                         asIssuer + "/token",
				"response_types_supported":               []any{}, // no /authorize: no response type
				"jwks_uri":                               asIssuer + "/jwks.json",
				"grant_types_supported":                  []any{idjag.GrantTypeJWTBearer},
				"authorization_grant_profiles_supported": []any{idjag.GrantProfile},
				"token_endpoint_auth_methods_supported":  []any{"client_secret_basic", "client_secret_post", "private_key_jwt"},
				"token_endpoint_auth_signing_alg_values_supported":         []any{"ES256", "EdDSA", "RS256", "PS256"},
				"code_challenge_methods_supported":                         []any{"S256"},
				"introspection_endpoint":                                   asIssuer + "/introspect",
				"introspection_endpoint_auth_methods_supported":            []any{"client_secret_basic", "client_secret_post", "private_key_jwt"},
				"introspection_endpoint_auth_signing_alg_values_supported": []any{"ES256", "EdDSA", "RS256", "PS256"},
				"revocation_endpoint":                                      asIssuer + "/revoke",
				"revocation_endpoint_auth_methods_supported":               []any{"client_secret_basic", "client_secret_post", "private_key_jwt"},
				"revocation_endpoint_auth_signing_alg_values_supported":    []any{"ES256", "EdDSA", "RS256", "PS256"},
				"openxaa_revocation_list_endpoint":                         asIssuer + "/revocations",
				"openxaa_set_endpoint":                                     asIssuer + "/set",
				"openxaa_resource_policy_endpoint":                         asIssuer + "/resource-policy",
			}
			if d := cmp.Diff(want, r.body); d != "" {
				t.Errorf("%s (-want +got):\n%s", path, d)
			}
			for _, iss := range []string{idpA, idpB, idpRSA, idpOff, "idp-"} {
				if strings.Contains(r.raw, iss) {
					t.Errorf("%s discloses trusted issuer %q", path, iss)
				}
			}
		}
	})
}

// TestJWTBearerC53UnknownKID: an unknown kid refetches the issuer's JWKS at
// most once, then the assertion is refused.
func TestJWTBearerC53UnknownKID(t *testing.T) {
	t.Parallel()
	idpR := newIdP(t, "https://idp-remote.example.com", jose.ES256)
	jwks := httptest.NewServer(jose.JWKSHandler(func(context.Context) (gojose.JSONWebKeySet, error) {
		return jose.PublicJWKS(idpR.signer.PublicKey()), nil
	}, time.Hour))
	t.Cleanup(jwks.Close)
	var fetches atomic.Int32
	cache, err := jwkscache.New(&jwkscache.Options{AllowInsecureLoopback: true, OnFetch: func(string, error) { fetches.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	remote, err := cache.KeySet(jwks.URL + "/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, &harnessOptions{edit: func(c *Config) {
		c.TrustedIssuers = append(c.TrustedIssuers, TrustedIssuer{Issuer: idpR.issuer, Keys: remote})
	}})
	wantOK(t, h.post(jb(idpR.mint(t, goodClaims(idpR.issuer)))))
	before := fetches.Load()
	other := newIdP(t, idpR.issuer, jose.ES256) // same issuer name, a key it never published
	for range 3 {
		wantError(t, h.post(jb(other.mint(t, goodClaims(idpR.issuer)))), http.StatusBadRequest, "invalid_grant")
	}
	if n := fetches.Load() - before; n > 1 {
		t.Errorf("%d JWKS refetches for unknown kids, want at most 1", n)
	}
}

// TestNewCrossDomain: the server refuses to trust its own issuer, in any
// spelling decisions.md treats as equal.
func TestNewCrossDomain(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	for _, own := range []string{asIssuer, asIssuer + "/", "https://AS.example.com", "https://as.example.com:443"} {
		cfg := h.cfg
		cfg.TrustedIssuers = []TrustedIssuer{{Issuer: own, Keys: h.a.keys}}
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "cross-domain") {
			t.Errorf("New with trusted issuer %q: %v, want the cross-domain refusal", own, err)
		}
	}
}

// TestClientAuthentication: client_secret_basic and client_secret_post both
// work whatever the client registered, and the go-sdk's empty code= is
// ignored.
func TestClientAuthentication(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	c2 := func(c claims) { c["client_id"] = client2 }
	for _, tc := range []struct {
		name   string
		id     string
		secret string
		basic  bool
		edit   func(claims)
	}{
		{"basic_registered_basic", client1, client1Sec, true, nil},
		{"post_registered_basic", client1, client1Sec, false, nil},
		{"basic_registered_post", client2, client2Sec, true, c2},
		{"post_registered_post", client2, client2Sec, false, c2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := h.with(t)
			var edits []func(claims)
			if tc.edit != nil {
				edits = append(edits, tc.edit)
			}
			f := jb(h.good(edits...))
			f.Set("code", "") // what the go-sdk sends
			wantOK(t, h.postAs(f, tc.id, tc.secret, tc.basic))
		})
	}
	t.Run("basic_challenge_on_failure", func(t *testing.T) {
		h := h.with(t)
		r := h.postAs(jb(h.good()), client1, "nope", true)
		wantError(t, r, http.StatusUnauthorized, "invalid_client")
		if got := r.header.Get("WWW-Authenticate"); !strings.Contains(got, `realm="`+asIssuer+`"`) {
			t.Errorf("WWW-Authenticate = %q, want realm %q", got, asIssuer)
		}
	})
}

// TestResourceParameter: a resource parameter picks from the assertion's
// resources and must be one of them; the client's policy applies.
func TestResourceParameter(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	both := func(c claims) { c["resource"] = []string{resMCP, resOther}; c["client_id"] = client2 }
	for _, tc := range []struct {
		name, client, secret, resource string
		edit                           func(claims)
		wantCode, wantRes              string
	}{
		{"matches", client1, client1Sec, resMCP, nil, "", resMCP},
		{"not_in_assertion", client1, client1Sec, resOther, nil, "invalid_target", ""},
		{"malformed", client1, client1Sec, "https://mcp.example.com/mcp?x=1", nil, "invalid_target", ""},
		{"array_needs_choice", client2, client2Sec, "", both, "invalid_target", ""},
		{"array_choice", client2, client2Sec, resOther, both, "", resOther},
		{"policy_forbids", client1, client1Sec, "", func(c claims) { c["resource"] = resOther }, "invalid_target", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := h.with(t)
			var edits []func(claims)
			if tc.edit != nil {
				edits = append(edits, tc.edit)
			}
			f := jb(h.good(edits...))
			if tc.resource != "" {
				f.Set("resource", tc.resource)
			}
			r := h.postAs(f, tc.client, tc.secret, true)
			if tc.wantCode != "" {
				wantError(t, r, http.StatusBadRequest, tc.wantCode)
				return
			}
			wantOK(t, r)
			if r.str("resource") != tc.wantRes {
				t.Errorf("resource = %q, want %q", r.str("resource"), tc.wantRes)
			}
			if tc.wantRes == resOther && r.body["expires_in"] != float64(600) {
				t.Errorf("expires_in = %v, want the resource's 600", r.body["expires_in"])
			}
		})
	}
}

// TestAuditOneRecordPerOutcome: every request after client authentication
// writes exactly one record, none before it; no record holds a token.
func TestAuditOneRecordPerOutcome(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	tok := h.good()
	wantError(t, h.postAs(jb(tok), "", "", false), http.StatusUnauthorized, "invalid_client")
	if n := len(h.audit(AuditAccessTokenDenied)) + len(h.audit(AuditAccessTokenIssued)); n != 0 {
		t.Fatalf("%d audit records before client authentication, want 0", n)
	}
	r := h.post(jb(tok))
	wantOK(t, r)
	wantError(t, h.post(jb(tok)), http.StatusBadRequest, "invalid_grant")
	wantError(t, h.post(jb(h.good(func(c claims) { c["client_id"] = client2 }))), http.StatusBadRequest, "invalid_grant")
	issued, denied := h.audit(AuditAccessTokenIssued), h.audit(AuditAccessTokenDenied)
	if len(issued) != 1 || len(denied) != 2 {
		t.Fatalf("issued %d, denied %d records, want 1 and 2", len(issued), len(denied))
	}
	if got := []string{issued[0].Rule, denied[0].Rule, denied[1].Rule}; !cmp.Equal(got, []string{ruleIssued, ruleReplay, ruleClientMismatch}) {
		t.Errorf("rules = %v", got)
	}
	if issued[0].Subject != idpA+"|alice" || issued[0].Data["resource"] != resMCP || issued[0].Data["granted_scope"] != "a b" {
		t.Errorf("issued record = %+v", issued[0])
	}
	for _, ev := range append(issued, denied...) {
		for k, v := range ev.Data {
			if strings.Contains(v, tok) || strings.Contains(v, r.str("access_token")) || strings.HasPrefix(v, "eyJ") {
				t.Errorf("audit data %q holds a token", k)
			}
		}
	}
}

// TestAllowReuse: with the compatibility switch, the same client may
// present the same bytes again (audited as a reuse); a different
// presentation of a used jti is still refused.
func TestAllowReuse(t *testing.T) {
	t.Parallel()
	h := newHarness(t, &harnessOptions{edit: func(c *Config) { c.TrustedIssuers[0].AllowReuse = true }})
	c := goodClaims(idpA)
	tok := h.a.mint(t, c)
	wantOK(t, h.post(jb(tok)))
	wantOK(t, h.post(jb(tok)))
	c["iat"] = testNow.Add(-time.Second).Unix() // same jti, other bytes
	wantError(t, h.post(jb(h.a.mint(t, c))), http.StatusBadRequest, "invalid_grant")
	issued := h.audit(AuditAccessTokenIssued)
	if len(issued) != 2 || issued[0].Rule != ruleIssued || issued[1].Rule != ruleReused {
		t.Errorf("issued records = %+v", issued)
	}
}

// TestServerDisabled: the server-wide switch refuses good assertions.
func TestServerDisabled(t *testing.T) {
	t.Parallel()
	h := newHarness(t, &harnessOptions{edit: func(c *Config) { c.Disabled = true }})
	wantError(t, h.post(jb(h.good())), http.StatusBadRequest, "invalid_grant")
	if d := h.audit(AuditAccessTokenDenied); len(d) != 1 || d[0].Rule != ruleServerDisabled {
		t.Errorf("denied records = %+v", d)
	}
}

// TestReplayBadSignatureDoesNotBurn: a forged token carrying a fresh jti is
// refused before the jti is recorded, so the genuine token with that jti
// still redeems once; then it is a replay. On SQLite and PostgreSQL.
func TestReplayBadSignatureDoesNotBurn(t *testing.T) {
	t.Parallel()
	for _, pg := range []bool{false, true} {
		name := map[bool]string{false: "sqlite", true: "postgres"}[pg]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, &harnessOptions{postgres: pg})
			c := goodClaims(idpA)
			genuine := h.a.mint(t, c)
			forged := h.b.mint(t, c) // B's key under A's name: bad signature
			parts := strings.Split(genuine, ".")
			tampered := parts[0] + "." + parts[1] + "." + strings.Split(forged, ".")[2]
			wantError(t, h.post(jb(tampered)), http.StatusBadRequest, "invalid_grant")
			wantError(t, h.post(jb(forged)), http.StatusBadRequest, "invalid_grant")
			wantOK(t, h.post(jb(genuine)))
			wantError(t, h.post(jb(genuine)), http.StatusBadRequest, "invalid_grant")
		})
	}
}

// TestConcurrentPresentations: 64 concurrent presentations of one ID-JAG
// yield exactly one access token, one ledger row and one issued record.
func TestConcurrentPresentations(t *testing.T) {
	t.Parallel()
	for _, pg := range []bool{false, true} {
		name := map[bool]string{false: "sqlite", true: "postgres"}[pg]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, &harnessOptions{postgres: pg})
			tok := h.good()
			const n = 64
			var ok, grantErr atomic.Int32
			var wg sync.WaitGroup
			start := make(chan struct{})
			for range n {
				wg.Go(func() {
					<-start
					f := url.Values{"grant_type": {idjag.GrantTypeJWTBearer}, "assertion": {tok}}
					req, _ := http.NewRequest(http.MethodPost, h.hs.URL+"/token", strings.NewReader(f.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.SetBasicAuth(client1, client1Sec)
					resp, err := h.client.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					resp.Body.Close()
					switch resp.StatusCode {
					case http.StatusOK:
						ok.Add(1)
					case http.StatusBadRequest:
						grantErr.Add(1)
					default:
						t.Errorf("status %d", resp.StatusCode)
					}
				})
			}
			close(start)
			wg.Wait()
			if ok.Load() != 1 || grantErr.Load() != n-1 {
				t.Fatalf("%d successes and %d invalid_grant, want 1 and %d", ok.Load(), grantErr.Load(), n-1)
			}
			if got := len(h.audit(AuditAccessTokenIssued)); got != 1 {
				t.Errorf("%d issued records, want 1", got)
			}
			if got := len(h.audit(AuditAccessTokenDenied)); got != n-1 {
				t.Errorf("%d denied records, want %d", got, n-1)
			}
		})
	}
}

// TestNewValidation: New refuses every configuration it cannot run safely.
func TestNewValidation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"no_store", func(c *Config) { c.Store = nil }},
		{"no_keys", func(c *Config) { c.Keys = nil }},
		{"http_issuer", func(c *Config) { c.Issuer = "http://as.example.com" }},
		{"issuer_query", func(c *Config) { c.Issuer = asIssuer + "?x=1" }},
		{"short_audit_key", func(c *Config) { c.AuditKey = []byte("short") }},
		{"no_resources", func(c *Config) { c.Resources = nil }},
		{"resource_not_canonical", func(c *Config) { c.Resources[0].URI = "https://MCP.example.com/mcp" }},
		{"resource_no_scopes", func(c *Config) { c.Resources[0].Scopes = nil }},
		{"resource_bad_scope", func(c *Config) { c.Resources[0].Scopes = []string{"a b"} }},
		{"resource_lifetime_too_long", func(c *Config) { c.Resources[0].AccessTokenLifetime = 2 * time.Hour }},
		{"resource_lifetime_fraction", func(c *Config) { c.Resources[0].AccessTokenLifetime = 1500 * time.Millisecond }},
		{"resource_twice", func(c *Config) { c.Resources = append(c.Resources, c.Resources[0]) }},
		{"client_unknown_resource", func(c *Config) { c.Clients = map[string]ClientPolicy{"x": {Resources: []string{resForeign}}} }},
		{"client_no_resources", func(c *Config) { c.Clients = map[string]ClientPolicy{"x": {}} }},
		{"client_empty_scopes", func(c *Config) {
			c.Clients = map[string]ClientPolicy{"x": {Resources: []string{resMCP}, Scopes: []string{}}}
		}},
		{"issuer_no_keys", func(c *Config) { c.TrustedIssuers[0].Keys = nil }},
		{"issuer_twice", func(c *Config) { c.TrustedIssuers = append(c.TrustedIssuers, c.TrustedIssuers[0]) }},
		{"issuer_hs256", func(c *Config) { c.TrustedIssuers[0].Algorithms = []string{"HS256"} }},
		{"issuer_none", func(c *Config) { c.TrustedIssuers[0].Algorithms = []string{"none"} }},
		{"issuer_lifetime_cap", func(c *Config) { c.TrustedIssuers[0].MaxAssertionLifetime = 601 * time.Second }},
		{"issuer_pipe", func(c *Config) { c.TrustedIssuers[0].Issuer = "https://a|b.example.com" }},
		{"tool_name_empty", tools(map[string]ToolRule{"": {Scopes: []string{"a"}}})},
		{"tool_name_space", tools(map[string]ToolRule{"a b": {Scopes: []string{"a"}}})},
		{"tool_name_unicode", tools(map[string]ToolRule{"séarch": {Scopes: []string{"a"}}})},
		{"tool_name_too_long", tools(map[string]ToolRule{strings.Repeat("t", 129): {Scopes: []string{"a"}}})},
		{"tool_no_scopes", tools(map[string]ToolRule{"t": {}})},
		{"tool_scope_not_resource", tools(map[string]ToolRule{"t": {Scopes: []string{"x"}}})},
		{"tool_scope_twice", tools(map[string]ToolRule{"t": {Scopes: []string{"a", "a"}}})},
		{"tool_acr_empty", tools(map[string]ToolRule{"t": {Scopes: []string{"a"}, ACRValues: []string{""}}})},
		{"tool_acr_space", tools(map[string]ToolRule{"t": {Scopes: []string{"a"}, ACRValues: []string{"a b"}}})},
		{"tool_acr_quote", tools(map[string]ToolRule{"t": {Scopes: []string{"a"}, ACRValues: []string{`a"b`}}})},
		{"tool_acr_twice", tools(map[string]ToolRule{"t": {Scopes: []string{"a"}, ACRValues: []string{"x", "x"}}})},
		{"tool_max_age_negative", tools(map[string]ToolRule{"t": {Scopes: []string{"a"}, MaxAge: -time.Second}})},
		{"tool_max_age_over_a_day", tools(map[string]ToolRule{"t": {Scopes: []string{"a"}, MaxAge: 24*time.Hour + time.Second}})},
		{"tool_max_age_fraction", tools(map[string]ToolRule{"t": {Scopes: []string{"a"}, MaxAge: 1500 * time.Millisecond}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := h.cfg
			cfg.Resources = append([]Resource(nil), h.cfg.Resources...)
			cfg.TrustedIssuers = append([]TrustedIssuer(nil), h.cfg.TrustedIssuers...)
			tc.edit(&cfg)
			if _, err := New(cfg); err == nil {
				t.Error("New accepted the config")
			}
		})
	}
}

// tools replaces the first resource's tool map.
func tools(m map[string]ToolRule) func(*Config) {
	return func(c *Config) { c.Resources[0].Tools = m }
}

// TestIssuerAlgorithmAllowlist: a key whose alg the issuer's allowlist
// omits verifies nothing, although the ID-JAG profile allows that alg.
func TestIssuerAlgorithmAllowlist(t *testing.T) {
	t.Parallel()
	const iss = "https://idp-alg.example.com"
	p := newIdP(t, iss, jose.ES256)
	h := newHarness(t, &harnessOptions{edit: func(c *Config) {
		c.TrustedIssuers = append(c.TrustedIssuers, TrustedIssuer{Issuer: iss, Keys: p.keys, Algorithms: []string{jose.EdDSA}})
	}})
	wantError(t, h.post(jb(p.mint(t, goodClaims(iss)))), http.StatusBadRequest, "invalid_grant")
}

// TestIssuerKeysUnavailable: when an issuer's JWKS cannot be fetched the
// answer is 503 temporarily_unavailable, never invalid_grant, and the jti
// is not burnt: the same ID-JAG redeems once the keys are back.
func TestIssuerKeysUnavailable(t *testing.T) {
	t.Parallel()
	idpR := newIdP(t, "https://idp-down.example.com", jose.ES256)
	var up atomic.Bool
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		jose.JWKSHandler(func(context.Context) (gojose.JSONWebKeySet, error) {
			return jose.PublicJWKS(idpR.signer.PublicKey()), nil
		}, time.Hour).ServeHTTP(w, r)
	}))
	t.Cleanup(jwks.Close)
	cache, err := jwkscache.New(&jwkscache.Options{AllowInsecureLoopback: true, RefreshInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	remote, err := cache.KeySet(jwks.URL + "/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, &harnessOptions{edit: func(c *Config) {
		c.TrustedIssuers = append(c.TrustedIssuers, TrustedIssuer{Issuer: idpR.issuer, Keys: remote})
	}})
	tok := idpR.mint(t, goodClaims(idpR.issuer))
	wantError(t, h.post(jb(tok)), http.StatusServiceUnavailable, "temporarily_unavailable")
	up.Store(true)
	wantOK(t, h.post(jb(tok)))
}

// TestRateLimitNotAudited: a request over the client's budget is 429 and
// writes no audit record.
func TestRateLimitNotAudited(t *testing.T) {
	t.Parallel()
	h := newHarness(t, &harnessOptions{edit: func(c *Config) { c.RateLimit = &oauth.TokenLimit{PerClient: 0.001, PerAddress: rate.Inf, Burst: 1} }})
	wantOK(t, h.post(jb(h.good())))
	r := h.post(jb(h.good()))
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("got %d %s (Retry-After %q), want 429 with Retry-After", r.status, r.raw, r.header.Get("Retry-After"))
	}
	if n := len(h.audit(AuditAccessTokenDenied)); n != 0 {
		t.Errorf("%d denial records for a rate-limited request, want 0", n)
	}
}

// TestPublishedJWKSVerifiesAccessToken: a resource server that knows only
// the published jwks_uri can verify what the token endpoint issues.
func TestPublishedJWKSVerifiesAccessToken(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	r := h.post(jb(h.good()))
	wantOK(t, r)
	resp, err := h.client.Get(h.hs.URL + "/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /jwks.json: %d %v", resp.StatusCode, err)
	}
	set, err := jose.ParseJWKS(raw)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := jose.NewStaticKeySet(set)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jose.Verify(context.Background(), r.str("access_token"), jose.AccessTokenProfile(),
		jose.SingleIssuer{Issuer: asIssuer, Keys: ks},
		jose.Expectations{Audiences: []string{resMCP}, Issuer: asIssuer, Now: testNow}); err != nil {
		t.Errorf("access token does not verify against the published JWKS: %v", err)
	}
}
