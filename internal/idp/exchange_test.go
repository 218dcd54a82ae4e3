package idp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/time/rate"

	"github.com/openxaa/xaa/idjag"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/policy"
	"github.com/openxaa/xaa/internal/store"
)

// Checklist coverage (xaa-protocol.md §7). Every test below names its item.
// Out of scope here, by the issue: SAML (A25, A26, B41) and DPoP (A28,
// A29). B40 (tenant, aud_tenant, aud_sub) is out of scope too: OpenXAA's
// IdP is single-tenant, so it never emits tenant claims. B36 is covered for
// public subjects only: there is no pairwise-subject configuration, so the
// ID-JAG sub is the user's id, the same sub relying parties get.

// TestExchangeGood covers the allow path: A1-A3, A18, A30, B32-B39.
func TestExchangeGood(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	before := time.Now()
	r := h.app1(h.goodTE(h.idToken(idTokenOpts{})))
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	tok, c := h.verifyIDJAG(r.str("access_token"))

	t.Run("A1_response_shape", func(t *testing.T) {
		if r.str("issued_token_type") != idjag.TokenType || r.str("token_type") != "N_A" {
			t.Errorf("issued_token_type %q token_type %q", r.str("issued_token_type"), r.str("token_type"))
		}
		if got := r.header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control %q", got)
		}
		if strings.Count(r.str("access_token"), ".") != 2 {
			t.Error("access_token is not a compact JWS")
		}
	})
	t.Run("A2_expires_in_matches_exp_minus_iat", func(t *testing.T) {
		ei, ok := r.body["expires_in"].(float64)
		if !ok || int64(ei) != c.Expiry-c.IssuedAt {
			t.Errorf("expires_in %v, exp-iat %d", r.body["expires_in"], c.Expiry-c.IssuedAt)
		}
	})
	t.Run("A3_no_refresh_token", func(t *testing.T) {
		if _, ok := r.body["refresh_token"]; ok {
			t.Error("response carries a refresh_token")
		}
	})
	t.Run("A30_resource_echoed", func(t *testing.T) {
		// The second half of A30 (no resource, no default -> neither
		// field nor claim) cannot happen: policy always requires a
		// resource, so such a request is invalid_target (A17).
		if r.str("resource") != testResource || c.Resource != testResource {
			t.Errorf("response resource %q, claim %q", r.str("resource"), c.Resource)
		}
	})
	t.Run("B32_header", func(t *testing.T) {
		if tok.Header.Type != idjag.JWTType || tok.Header.Algorithm != jose.ES256 {
			t.Errorf("header %+v", tok.Header)
		}
		set, err := h.keys.PublicKeys(context.Background())
		if err != nil || len(set.Key(tok.Header.KeyID)) != 1 {
			t.Errorf("kid %q does not resolve in the JWKS (%v)", tok.Header.KeyID, err)
		}
	})
	t.Run("B33_iss_exact", func(t *testing.T) {
		if c.Issuer != testIssuer {
			t.Errorf("iss %q", c.Issuer)
		}
	})
	t.Run("B34_aud_single_string", func(t *testing.T) {
		if string(tok.Claims["aud"]) != strconv.Quote(testAS) {
			t.Errorf("aud %s", tok.Claims["aud"])
		}
	})
	t.Run("B35_client_id_at_AS", func(t *testing.T) {
		if c.ClientID != app1AtAS {
			t.Errorf("client_id %q, want %q", c.ClientID, app1AtAS)
		}
	})
	t.Run("B36_sub_public", func(t *testing.T) {
		if c.Subject != userAlice {
			t.Errorf("sub %q", c.Subject)
		}
	})
	t.Run("B38_iat_and_lifetime", func(t *testing.T) {
		iat := time.Unix(c.IssuedAt, 0)
		if iat.Before(before.Add(-5*time.Second)) || iat.After(time.Now().Add(5*time.Second)) {
			t.Errorf("iat %v not within 5 s of now", iat)
		}
		if c.Expiry-c.IssuedAt != 300 {
			t.Errorf("exp-iat %d, want 300", c.Expiry-c.IssuedAt)
		}
	})
	t.Run("A18_B39_scope_string_and_resource", func(t *testing.T) {
		if string(tok.Claims["scope"]) != strconv.Quote(scopeRead) || r.str("scope") != scopeRead {
			t.Errorf("scope claim %s, response %q", tok.Claims["scope"], r.str("scope"))
		}
	})
	t.Run("no_email_by_default", func(t *testing.T) {
		if c.Email != "" {
			t.Errorf("email %q leaked", c.Email)
		}
	})
	t.Run("ledger_and_audit", func(t *testing.T) {
		if n := h.tokenRows(); n != 1 {
			t.Errorf("%d ledger rows", n)
		}
		row, err := h.db.GetToken(context.Background(), testIssuer, c.JWTID)
		if err != nil || row.Subject != userAlice || row.Audience != testAS || row.Resource != testResource || row.Scope != scopeRead || row.ClientID != app1 {
			t.Errorf("ledger row %+v, %v", row, err)
		}
		evs := h.exchangeAudit()
		if len(evs) != 1 {
			t.Fatalf("%d audit records", len(evs))
		}
		e := evs[0]
		if e.Type != AuditIDJAGIssued || e.Outcome != "allow" || e.Rule != policy.RuleAllow || e.Subject != userAlice || e.ClientID != app1 {
			t.Errorf("audit %+v", e)
		}
		want := map[string]string{"jti": c.JWTID, "exp": strconv.FormatInt(c.Expiry, 10), "connection": connApp1,
			"requested_scope": scopeRead, "granted_scope": scopeRead, "client_id_at_as": app1AtAS}
		for k, v := range want {
			if e.Data[k] != v {
				t.Errorf("audit data %s = %q, want %q", k, e.Data[k], v)
			}
		}
		if e.Data["token_hmac"] == "" || strings.Contains(e.Reason+strings.Join(mapValues(e.Data), " "), r.str("access_token")) {
			t.Error("audit must reference the token by HMAC only")
		}
	})
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestExchangeA18NarrowsScope: policy allows only files:read of the
// requested "files:read admin".
func TestExchangeA18NarrowsScope(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	f := h.goodTE(h.idToken(idTokenOpts{sub: userBob}))
	f.Set("scope", scopeRead+" admin")
	r := h.app1(f)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	_, c := h.verifyIDJAG(r.str("access_token"))
	if r.str("scope") != scopeRead || c.Scope != scopeRead {
		t.Errorf("scope response %q claim %q", r.str("scope"), c.Scope)
	}
	e := h.exchangeAudit()[0]
	if e.Data["requested_scope"] != scopeRead+" admin" || e.Data["granted_scope"] != scopeRead {
		t.Errorf("audit requested %q granted %q", e.Data["requested_scope"], e.Data["granted_scope"])
	}
}

// TestExchangeB37DistinctJTI: two good exchanges get different jti.
func TestExchangeB37DistinctJTI(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	var jtis []string
	for range 2 {
		r := h.app1(h.goodTE(h.idToken(idTokenOpts{})))
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		_, c := h.verifyIDJAG(r.str("access_token"))
		if len(c.JWTID) < 22 {
			t.Errorf("jti %q has less than 128 bits", c.JWTID)
		}
		jtis = append(jtis, c.JWTID)
	}
	if jtis[0] == jtis[1] {
		t.Errorf("same jti twice: %q", jtis[0])
	}
}

// TestExchangeEmailOnlyWhenConnectionAsks: app2's connection sets
// IncludeEmail, and a 120 s lifetime.
func TestExchangeEmailOnlyWhenConnectionAsks(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	r := h.post(app2, app2Secret, h.goodTE(h.idToken(idTokenOpts{aud: app2})))
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	_, c := h.verifyIDJAG(r.str("access_token"))
	if c.Email != "alice@example.com" || c.ClientID != "as-client-2" || c.Expiry-c.IssuedAt != 120 {
		t.Errorf("claims %+v", c)
	}
}

// denialCase is one request that must fail with a decided error.
type denialCase struct {
	name   string
	client string // "" means app1; "-" means no authentication
	secret string
	body   func(h *harness) string
	status int
	code   string
	rule   string // audit rule; "" when no record is expected
}

func form(h *harness, mut func(url.Values), tok ...idTokenOpts) func(*harness) string {
	return func(h *harness) string {
		var o idTokenOpts
		if len(tok) > 0 {
			o = tok[0]
		}
		f := h.goodTE(h.idToken(o))
		if mut != nil {
			mut(f)
		}
		return f.Encode()
	}
}

func TestExchangeDenials(t *testing.T) {
	t.Parallel()
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherSigner, err := jose.NewLocalSigner(otherKey, jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	set := func(k, v string) func(url.Values) { return func(f url.Values) { f.Set(k, v) } }
	del := func(k string) func(url.Values) { return func(f url.Values) { f.Del(k) } }
	const (
		invReq    = oauth.CodeInvalidRequest
		invGrant  = oauth.CodeInvalidGrant
		invTarget = oauth.CodeInvalidTarget
	)
	cases := []denialCase{
		{name: "A4_no_client_authentication", client: "-", body: form(nil, nil), status: 401, code: oauth.CodeInvalidClient},
		{name: "A5_wrong_client_secret", secret: "wrong", body: form(nil, nil), status: 401, code: oauth.CodeInvalidClient},
		{name: "A5_private_key_jwt_unregistered_key", client: "-", body: func(h *harness) string {
			f := h.goodTE(h.idToken(idTokenOpts{aud: appJWT}))
			f.Set("client_assertion_type", oauth.ClientAssertionTypeJWTBearer)
			f.Set("client_assertion", clientAssertion(t, otherSignerFresh(t), appJWT))
			return f.Encode()
		}, status: 401, code: oauth.CodeInvalidClient},
		{name: "A6_id_token_aud_other_client", body: form(h0, nil, idTokenOpts{aud: app2}), status: 400, code: invGrant, rule: ruleSubjectInvalid},
		{name: "A6_id_token_multi_aud_without_azp", body: form(h0, nil, idTokenOpts{extra: map[string]any{"aud": []string{app1, app2}}}), status: 400, code: invGrant, rule: ruleSubjectInvalid},
		{name: "A6_id_token_azp_other_client", body: form(h0, nil, idTokenOpts{extra: map[string]any{"azp": app2}}), status: 400, code: invGrant, rule: ruleSubjectInvalid},
		{name: "A7_expired_id_token", body: form(h0, nil, idTokenOpts{exp: -2 * time.Minute}), status: 400, code: invGrant, rule: ruleSubjectInvalid},
		{name: "A8_tampered_id_token", body: func(h *harness) string {
			f := h.goodTE(tamper(h.idToken(idTokenOpts{})))
			return f.Encode()
		}, status: 400, code: invGrant, rule: ruleSubjectInvalid},
		{name: "A9_other_issuer", body: form(h0, nil, idTokenOpts{iss: "https://evil.example.com"}), status: 400, code: invGrant, rule: ruleSubjectInvalid},
		{name: "A9_other_issuers_key", body: form(h0, nil, idTokenOpts{signer: otherSigner}), status: 400, code: invGrant, rule: ruleSubjectInvalid},
		{name: "A10_no_subject_token", body: form(h0, del("subject_token")), status: 400, code: invReq, rule: ruleRequestInvalid},
		{name: "A10_no_subject_token_type", body: form(h0, del("subject_token_type")), status: 400, code: invReq, rule: ruleRequestInvalid},
		{name: "A11_access_token_type", body: form(h0, set("subject_token_type", "urn:ietf:params:oauth:token-type:access_token")), status: 400, code: invReq, rule: ruleRequestInvalid},
		{name: "A11_saml2_type_out_of_scope", body: form(h0, set("subject_token_type", "urn:ietf:params:oauth:token-type:saml2")), status: 400, code: invReq, rule: ruleRequestInvalid},
		{name: "A12_no_audience", body: form(h0, del("audience")), status: 400, code: invReq, rule: ruleRequestInvalid},
		{name: "A13_unknown_audience", body: form(h0, set("audience", "https://unknown.example.com")), status: 400, code: invTarget, rule: policy.RuleAudienceUnknown},
		// A14: the checklist wants invalid_target for two audiences. A
		// repeated parameter is invalid_request before the grant runs
		// (decisions.md "Form parsing", binding), so that form deviates
		// and leaves no audit record (the client is not yet
		// authenticated). Two audiences in one value are invalid_target.
		{name: "A14_two_audience_params_invalid_request", body: func(h *harness) string {
			return h.goodTE(h.idToken(idTokenOpts{})).Encode() + "&audience=" + url.QueryEscape(testAS2)
		}, status: 400, code: invReq},
		{name: "A14_two_audiences_in_one_value", body: form(h0, set("audience", testAS+" "+testAS2)), status: 400, code: invTarget, rule: policy.RuleAudienceUnknown},
		{name: "A15_resource_not_governed_by_audience", body: form(h0, set("resource", testRes2)), status: 400, code: invTarget, rule: policy.RuleResourceNotGoverned},
		{name: "A15_unknown_resource", body: form(h0, set("resource", "https://nowhere.example.com/mcp")), status: 400, code: invTarget, rule: policy.RuleResourceUnknown},
		{name: "A16_resource_fragment", body: form(h0, set("resource", testResource+"#x")), status: 400, code: invTarget, rule: ruleRequestInvalid},
		{name: "A16_resource_query", body: form(h0, set("resource", testResource+"?x=1")), status: 400, code: invTarget, rule: ruleRequestInvalid},
		{name: "A17_no_resource_mcp_mode", body: form(h0, del("resource")), status: 400, code: invTarget, rule: policy.RuleResourceMissing},
		{name: "A19_no_requested_scope_allowed", body: form(h0, set("scope", "admin")), status: 400, code: oauth.CodeInvalidScope, rule: policy.RuleScopeNoneAllowed},
		{name: "A19_scope_not_on_resource", body: form(h0, set("scope", "email")), status: 400, code: oauth.CodeInvalidScope, rule: policy.RuleScopeNoneAllowed},
		{name: "A19_malformed_scope", body: form(h0, set("scope", "a  b")), status: 400, code: oauth.CodeInvalidScope, rule: ruleRequestInvalid},
		{name: "A20_user_not_in_group", body: form(h0, nil, idTokenOpts{sub: userDave}), status: 400, code: oauth.CodeAccessDenied, rule: policy.RuleUserNotInGroup},
		{name: "A20_disabled_user", body: form(h0, nil, idTokenOpts{sub: userCarol}), status: 400, code: oauth.CodeAccessDenied, rule: policy.RuleUserDisabled},
		{name: "A20_client_without_connection", client: appJWT, body: nil, status: 0},
		{name: "A20_unknown_user", body: form(h0, nil, idTokenOpts{sub: "u_ghost"}), status: 400, code: invGrant, rule: ruleSubjectUnknown},
		// EMA forbids audience aliases and decisions.md registers none:
		// an alias is just an unknown audience.
		{name: "A21_alias_audience_refused", body: form(h0, set("audience", "urn:example:idp:saas-tool")), status: 400, code: invTarget, rule: policy.RuleAudienceUnknown},
		{name: "A21_trailing_slash_is_not_an_alias", body: form(h0, set("audience", testAS+"/")), status: 400, code: invTarget, rule: policy.RuleAudienceUnknown},
		{name: "A23_unknown_refresh_token", body: form(h0, func(f url.Values) {
			f.Set("subject_token_type", idjag.TokenTypeRefreshToken)
			f.Set("subject_token", "rt-of-another-client")
		}), status: 400, code: invGrant, rule: ruleSubjectInvalid},
		{name: "A24_garbage_refresh_token", body: form(h0, func(f url.Values) {
			f.Set("subject_token_type", idjag.TokenTypeRefreshToken)
			f.Set("subject_token", "revoked-refresh-token")
		}), status: 400, code: invGrant, rule: ruleSubjectInvalid},
		{name: "wrong_kind_access_token_as_id_token", body: form(h0, nil, idTokenOpts{typ: jose.TypeAccessToken}), status: 400, code: invGrant, rule: ruleSubjectInvalid},
		{name: "wrong_kind_idjag_as_id_token", body: form(h0, nil, idTokenOpts{typ: idjag.JWTType}), status: 400, code: invGrant, rule: ruleSubjectInvalid},
		{name: "requested_token_type_missing", body: form(h0, del("requested_token_type")), status: 400, code: invReq, rule: ruleRequestInvalid},
		{name: "requested_token_type_unsupported", body: form(h0, set("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token")), status: 400, code: invReq, rule: ruleRequestInvalid},
		{name: "actor_token_unsupported", body: form(h0, func(f url.Values) {
			f.Set("actor_token", "x")
			f.Set("actor_token_type", idjag.TokenTypeIDToken)
		}), status: 400, code: invReq, rule: ruleRequestInvalid},
		{name: "authorization_details_unsupported", body: form(h0, set("authorization_details", `[{"type":"x"}]`)), status: 400, code: invReq, rule: ruleRequestInvalid},
		{name: "garbage_subject_token", body: form(h0, set("subject_token", "not.a.jwt")), status: 400, code: invGrant, rule: ruleSubjectInvalid},
		// Oversized subject_token: the form cap (16 KiB) answers
		// invalid_request before the grant; it is never dropped.
		{name: "oversized_subject_token", body: form(h0, set("subject_token", strings.Repeat("a", 16<<10+1))), status: 400, code: invReq},
		// The token ledger: an ID token that verifies must also be one the
		// code or refresh grant recorded, and not revoked since.
		{name: "subject_id_token_revoked", body: func(h *harness) string {
			tok, jti := h.idTokenJTI(idTokenOpts{})
			if err := h.db.RevokeToken(context.Background(), testIssuer, jti, time.Now()); err != nil {
				h.t.Fatal(err)
			}
			return h.goodTE(tok).Encode()
		}, status: 400, code: invGrant, rule: ruleSubjectRevoked},
		{name: "subject_id_token_never_recorded", body: form(h0, nil, idTokenOpts{unrecorded: true}), status: 400, code: invGrant, rule: ruleSubjectUnknownToken},
		{name: "subject_id_token_without_jti", body: form(h0, nil, idTokenOpts{noJTI: true}), status: 400, code: invGrant, rule: ruleSubjectUnknownToken},
		{name: "subject_jti_recorded_as_access_token", body: func(h *harness) string {
			return h.goodTE(h.idTokenLedgerRow(func(t *store.IssuedToken) { t.Kind = store.TokenKindAccessToken })).Encode()
		}, status: 400, code: invGrant, rule: ruleSubjectUnknownToken},
		{name: "subject_jti_recorded_for_another_client", body: func(h *harness) string {
			return h.goodTE(h.idTokenLedgerRow(func(t *store.IssuedToken) { t.ClientID = app2 })).Encode()
		}, status: 400, code: invGrant, rule: ruleSubjectUnknownToken},
		{name: "subject_jti_recorded_for_another_user", body: func(h *harness) string {
			return h.goodTE(h.idTokenLedgerRow(func(t *store.IssuedToken) { t.Subject = userBob })).Encode()
		}, status: 400, code: invGrant, rule: ruleSubjectUnknownToken},
		{name: "repeated_subject_token", body: func(h *harness) string {
			return h.goodTE(h.idToken(idTokenOpts{})).Encode() + "&subject_token=x"
		}, status: 400, code: invReq},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			if tc.name == "A20_client_without_connection" {
				// appJWT authenticates with private_key_jwt and has
				// no connection to the resource.
				tc = denialCase{status: 400, code: invTarget, rule: policy.RuleConnectionMissing}
				f := h.goodTE(h.idToken(idTokenOpts{aud: appJWT}))
				f.Set("client_assertion_type", oauth.ClientAssertionTypeJWTBearer)
				f.Set("client_assertion", clientAssertion(t, h.jwtAppSigner(t), appJWT))
				assertDenial(t, h, h.postRaw("", "", f.Encode()), tc)
				return
			}
			client, secret := app1, app1Secret
			switch tc.client {
			case "-":
				client, secret = "", ""
			case "":
			default:
				client = tc.client
			}
			if tc.secret != "" {
				secret = tc.secret
			}
			assertDenial(t, h, h.postRaw(client, secret, tc.body(h)), tc)
		})
	}
}

// h0 is a nil harness placeholder for form's unused parameter.
var h0 *harness

// idTokenLedgerRow mints a good ID token for alice and app1 and records a
// ledger row for its jti that mut has altered.
func (h *harness) idTokenLedgerRow(mut func(*store.IssuedToken)) string {
	h.t.Helper()
	tok, jti := h.idTokenJTI(idTokenOpts{unrecorded: true})
	now := time.Now()
	row := store.IssuedToken{JTI: jti, Kind: store.TokenKindIDToken, Issuer: testIssuer, ClientID: app1, Subject: userAlice,
		Audience: app1, IssuedAt: now, ExpiresAt: now.Add(5 * time.Minute)}
	mut(&row)
	if err := h.db.RecordToken(context.Background(), row); err != nil {
		h.t.Fatal(err)
	}
	return tok
}

func assertDenial(t *testing.T, h *harness, r response, tc denialCase) {
	t.Helper()
	if r.status != tc.status || r.str("error") != tc.code {
		t.Fatalf("got %d %q (%s), want %d %q", r.status, r.str("error"), r.str("error_description"), tc.status, tc.code)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
	}
	if _, ok := r.body["access_token"]; ok {
		t.Error("error response carries an access_token")
	}
	if n := h.tokenRows(); n != 0 {
		t.Errorf("%d ledger rows after a denial", n)
	}
	evs := h.exchangeAudit()
	if tc.rule == "" {
		if len(evs) != 0 {
			t.Errorf("want no audit record, got %+v", evs)
		}
		return
	}
	if len(evs) != 1 {
		t.Fatalf("want exactly one audit record, got %d: %+v", len(evs), evs)
	}
	e := evs[0]
	if e.Type != AuditIDJAGDenied || e.Outcome != "deny" || e.Rule != tc.rule || e.ClientID == "" || e.Reason == "" {
		t.Errorf("audit record %+v, want rule %q", e, tc.rule)
	}
	if desc := r.str("error_description"); strings.Contains(desc, "secops") || strings.Contains(desc, "staff") || strings.Contains(desc, connApp1) {
		t.Errorf("error_description leaks policy internals: %q", desc)
	}
}

// tamper flips a byte of the signature.
func tamper(tok string) string {
	i := strings.LastIndexByte(tok, '.')
	sig, _ := base64.RawURLEncoding.DecodeString(tok[i+1:])
	sig[0] ^= 1
	return tok[:i+1] + base64.RawURLEncoding.EncodeToString(sig)
}

func otherSignerFresh(t *testing.T) jose.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jose.NewLocalSigner(k, jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func clientAssertion(t *testing.T, s jose.Signer, client string) string {
	t.Helper()
	now := time.Now()
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	tok, err := s.Sign(context.Background(), jose.TypeJWT, map[string]any{
		"iss": client, "sub": client, "aud": testIssuer + "/token",
		"jti": base64.RawURLEncoding.EncodeToString(jti[:]), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestExchangeStepUp covers A27 and the step-up acceptance: a
// password-only login cannot get files:write; an MFA login can, and the
// ID-JAG carries acr, amr and auth_time.
func TestExchangeStepUp(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	f := h.goodTE(h.idToken(idTokenOpts{}))
	f.Set("scope", scopeRead+" "+scopeWrite)
	r := h.app1(f)
	t.Run("A27_pwd_token_needs_step_up", func(t *testing.T) {
		assertDenial(t, h, r, denialCase{status: 400, code: oauth.CodeInsufficientUserAuthentication, rule: policy.RuleStepUpACR})
		if r.str("acr_values") != policy.ACRMFA {
			t.Errorf("acr_values %q", r.str("acr_values"))
		}
	})
	authAt := time.Now().Add(-30 * time.Second).Unix()
	f = h.goodTE(h.idToken(idTokenOpts{acr: policy.ACRMFA, amr: []string{"pwd", "otp"}, authAge: 30 * time.Second}))
	f.Set("scope", scopeRead+" "+scopeWrite)
	r = h.app1(f)
	t.Run("mfa_token_succeeds_with_acr_amr_auth_time", func(t *testing.T) {
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		_, c := h.verifyIDJAG(r.str("access_token"))
		if c.Scope != scopeRead+" "+scopeWrite || c.ACR != policy.ACRMFA || !cmp.Equal(c.AMR, []string{"pwd", "otp"}) || c.AuthTime < authAt-1 || c.AuthTime > authAt+1 {
			t.Errorf("claims %+v", c)
		}
	})
}

// TestExchangeStepUpMaxAge: a max_age rule yields max_age in the error.
func TestExchangeStepUpMaxAge(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.updateConn(t, func(c store.Connection) store.Connection {
		c.StepUp = []store.StepUpRule{{Scope: scopeWrite, ACR: policy.ACRMFA, MaxAge: 10 * time.Minute}}
		return c
	})
	f := h.goodTE(h.idToken(idTokenOpts{acr: policy.ACRMFA, authAge: time.Hour}))
	f.Set("scope", scopeWrite)
	r := h.app1(f)
	assertDenial(t, h, r, denialCase{status: 400, code: oauth.CodeInsufficientUserAuthentication, rule: policy.RuleStepUpMaxAge})
	if r.body["max_age"] != float64(600) || r.str("acr_values") != policy.ACRMFA {
		t.Errorf("max_age %v acr_values %q", r.body["max_age"], r.str("acr_values"))
	}
}

func (h *harness) updateConn(t *testing.T, fn func(store.Connection) store.Connection) {
	t.Helper()
	if err := h.db.UpdateConnection(context.Background(), connApp1, func(c store.Connection) (store.Connection, error) {
		c = fn(c)
		c.UpdatedAt = time.Now().UTC().Truncate(time.Second)
		return c, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestExchangeNoStaleCache: each change to the directory takes effect on
// the very next exchange.
func TestExchangeNoStaleCache(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		change func(t *testing.T, h *harness)
		rule   string
	}{
		{"connection_revoked", func(t *testing.T, h *harness) {
			h.updateConn(t, func(c store.Connection) store.Connection {
				c.Status, c.RevokedAt = store.ConnectionRevoked, time.Now().UTC().Truncate(time.Second)
				return c
			})
		}, policy.RuleConnectionRevoked}, // the newest ended connection is reported, not "no connection"
		{"connection_suspended", func(t *testing.T, h *harness) {
			h.updateConn(t, func(c store.Connection) store.Connection { c.Status = store.ConnectionSuspended; return c })
		}, policy.RuleConnectionSuspended},
		{"connection_expired", func(t *testing.T, h *harness) {
			h.updateConn(t, func(c store.Connection) store.Connection {
				c.ExpiresAt = time.Now().UTC().Truncate(time.Second).Add(time.Second)
				return c
			})
			time.Sleep(1100 * time.Millisecond)
		}, policy.RuleConnectionExpired},
		{"user_removed_from_group", func(t *testing.T, h *harness) {
			for _, g := range []string{"staff", "eng"} {
				if err := h.db.RemoveMember(context.Background(), g, userAlice); err != nil {
					t.Fatal(err)
				}
			}
		}, policy.RuleUserNotInGroup},
		{"user_disabled", func(t *testing.T, h *harness) {
			if err := h.db.UpdateUser(context.Background(), userAlice, func(u store.User) (store.User, error) {
				u.Disabled, u.UpdatedAt = true, time.Now().UTC()
				return u, nil
			}); err != nil {
				t.Fatal(err)
			}
		}, policy.RuleUserDisabled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			tok := h.idToken(idTokenOpts{})
			if r := h.app1(h.goodTE(tok)); r.status != http.StatusOK {
				t.Fatalf("first exchange: %d %s", r.status, r.raw)
			}
			tc.change(t, h)
			r := h.app1(h.goodTE(tok))
			if r.status == http.StatusOK {
				t.Fatal("exchange after the change succeeded")
			}
			evs := h.exchangeAudit()
			if last := evs[len(evs)-1]; last.Type != AuditIDJAGDenied || last.Rule != tc.rule {
				t.Errorf("last audit %s %s, want denial %s (%s)", last.Type, last.Rule, tc.rule, r.raw)
			}
			if n := h.tokenRows(); n != 1 {
				t.Errorf("%d ledger rows, want 1", n)
			}
		})
	}
}

// refreshToken stores a refresh token as the SSO half would issue it.
func (h *harness) refreshToken(t *testing.T, client, scope string, life time.Duration) (string, store.RefreshToken) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	rt := randomToken()
	row := store.RefreshToken{
		Digest: digestOf(rt), FamilyID: randomToken()[:22], ClientID: client, UserID: userAlice, SessionID: "s_1",
		Scope: scope, AuthTime: now.Add(-time.Minute), ACR: policy.ACRPassword, AMR: []string{"pwd"},
		IssuedAt: now.Add(-2 * time.Minute), ExpiresAt: now.Add(life),
	}
	if err := h.db.CreateRefreshToken(context.Background(), row); err != nil {
		t.Fatal(err)
	}
	return rt, row
}

func refreshTE(h *harness, rt string) url.Values {
	f := h.goodTE(rt)
	f.Set("subject_token_type", idjag.TokenTypeRefreshToken)
	return f
}

// TestExchangeRefreshSubject covers A22-A24 with refresh tokens in the
// SSO half's store.
func TestExchangeRefreshSubject(t *testing.T) {
	t.Parallel()
	t.Run("A22_refresh_token_same_client", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil)
		// The refresh token's authorization ends in 100 s: the ID-JAG
		// must not outlive it, and may carry only its scopes.
		rt, _ := h.refreshToken(t, app1, "openid "+scopeRead, 100*time.Second)
		f := refreshTE(h, rt)
		f.Del("scope")
		r := h.app1(f)
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		_, c := h.verifyIDJAG(r.str("access_token"))
		if c.Subject != userAlice || c.Scope != scopeRead || c.Expiry-c.IssuedAt > 100 || c.ACR != policy.ACRPassword {
			t.Errorf("claims %+v", c)
		}
		// A second use works too: the refresh token is not redeemed.
		if r := h.app1(refreshTE(h, rt)); r.status != http.StatusOK {
			t.Errorf("second use: %d %s", r.status, r.raw)
		}
	})
	t.Run("A22_refresh_scope_narrows", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil)
		rt, _ := h.refreshToken(t, app1, "openid "+scopeRead, time.Hour)
		f := refreshTE(h, rt)
		f.Set("scope", "files:write")
		assertDenial(t, h, h.app1(f), denialCase{status: 400, code: oauth.CodeInvalidScope, rule: policy.RuleScopeNoneAllowed})
	})
	t.Run("A23_refresh_token_of_other_client", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil)
		rt, _ := h.refreshToken(t, app2, "openid "+scopeRead, time.Hour)
		assertDenial(t, h, h.app1(refreshTE(h, rt)), denialCase{status: 400, code: oauth.CodeInvalidGrant, rule: ruleSubjectInvalid})
	})
	t.Run("A24_revoked_refresh_token", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil)
		rt, row := h.refreshToken(t, app1, "openid "+scopeRead, time.Hour)
		if _, err := h.db.RevokeRefreshFamily(context.Background(), row.FamilyID, time.Now()); err != nil {
			t.Fatal(err)
		}
		assertDenial(t, h, h.app1(refreshTE(h, rt)), denialCase{status: 400, code: oauth.CodeInvalidGrant, rule: ruleSubjectInvalid})
	})
	t.Run("A24_expired_refresh_token", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil)
		rt, _ := h.refreshToken(t, app1, "openid "+scopeRead, time.Second)
		time.Sleep(1100 * time.Millisecond)
		assertDenial(t, h, h.app1(refreshTE(h, rt)), denialCase{status: 400, code: oauth.CodeInvalidGrant, rule: ruleSubjectInvalid})
	})
}

// TestExchangeA31Metadata: discovery advertises token exchange and the
// ID-JAG token type.
func TestExchangeA31Metadata(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		resp, err := h.client.Get(h.hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			GrantTypes []string `json:"grant_types_supported"`
			Chaining   []string `json:"identity_chaining_requested_token_types_supported"`
		}
		err = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if err != nil || !slices.Contains(m.GrantTypes, idjag.GrantTypeTokenExchange) || !slices.Contains(m.Chaining, idjag.TokenType) {
			t.Errorf("%s: %+v (%v)", path, m, err)
		}
	}
}

// TestTokenRateLimit: per client and per address, 429 + Retry-After,
// no ledger row and no audit record for the refused request.
func TestTokenRateLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		limits oauth.TokenLimit
	}{
		{"per_client", oauth.TokenLimit{PerClient: 0.001, PerAddress: rate.Inf, Burst: 1}},
		{"per_address", oauth.TokenLimit{PerClient: rate.Inf, PerAddress: 0.001, Burst: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, &harnessOptions{limits: &tc.limits})
			if r := h.app1(h.goodTE(h.idToken(idTokenOpts{}))); r.status != http.StatusOK {
				t.Fatalf("first: %d %s", r.status, r.raw)
			}
			r := h.post(app2, app2Secret, h.goodTE(h.idToken(idTokenOpts{aud: app2})))
			if tc.name == "per_client" {
				if r.status != http.StatusOK {
					t.Fatalf("another client was limited: %d %s", r.status, r.raw)
				}
				r = h.app1(h.goodTE(h.idToken(idTokenOpts{})))
			}
			if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
				t.Fatalf("got %d Retry-After %q: %s", r.status, r.header.Get("Retry-After"), r.raw)
			}
			if n, a := h.tokenRows(), len(h.exchangeAudit()); a != n {
				t.Errorf("%d ledger rows, %d audit records: the refused request was recorded", n, a)
			}
			// The budget covers the whole token endpoint, not one grant.
			other := url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {"http://127.0.0.1/cb"}, "code_verifier": {strings.Repeat("v", 43)}}
			if r := h.app1(other); r.status != http.StatusTooManyRequests {
				t.Fatalf("authorization_code grant after the budget was spent: %d %s", r.status, r.raw)
			}
		})
	}
}

// jwtAppSigner re-registers appJWT with a fresh key and returns its signer.
func (h *harness) jwtAppSigner(t *testing.T) jose.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jose.NewLocalSigner(k, jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(jose.PublicJWKS(s.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.db.UpdateClient(context.Background(), Realm, appJWT, func(c store.Client) (store.Client, error) {
		c.JWKS = jwks
		return c, nil
	}); err != nil {
		t.Fatal(err)
	}
	return s
}
