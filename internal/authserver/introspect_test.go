package authserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/audit"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
)

// creds is one caller of the introspection and revocation endpoints.
type creds struct{ id, secret string }

var (
	asClient1 = creds{client1, client1Sec}
	asClient2 = creds{client2, client2Sec}
	asNoPol   = creds{clientNoPol, clientNoSec}
	anonymous = creds{}
)

// call POSTs form to path with c's credentials in HTTP Basic; the body may
// be empty (RFC 7009 responses).
func (h *harness) call(path string, c creds, form url.Values) result {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.hs.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.id != "" {
		req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	}
	return h.send(req)
}

func (h *harness) send(req *http.Request) result {
	h.t.Helper()
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			h.t.Fatalf("response %d is not JSON: %q", resp.StatusCode, raw)
		}
	}
	return r
}

// issue redeems a good ID-JAG for an access token of the client and
// resource, and returns the token and its jti.
func (h *harness) issue(c creds, resource string) (string, string) {
	h.t.Helper()
	r := h.postAs(jb(h.good(func(cl claims) { cl["client_id"] = c.id; cl["resource"] = resource })), c.id, c.secret, true)
	wantOK(h.t, r)
	tok, _ := h.accessToken(r.str("access_token"), resource)
	return r.str("access_token"), tok.ID
}

// forge signs an access token with the server's own keys that the ledger
// may not know.
func (h *harness) forge(aud, jti string) string {
	h.t.Helper()
	tok, err := h.keys.Signer().Sign(context.Background(), jose.TypeAccessToken, accessTokenClaims{
		Issuer: asIssuer, Subject: idpA + "|alice", Audience: aud, ClientID: client1, Scope: "a",
		JWTID: jti, IssuedAt: testNow.Unix(), Expiry: testNow.Add(5 * time.Minute).Unix(),
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

func (h *harness) introspect(c creds, token string) result {
	h.t.Helper()
	r := h.call("/introspect", c, url.Values{"token": {token}})
	if r.status == http.StatusOK && r.header.Get("Cache-Control") != "no-store" {
		h.t.Errorf("introspection Cache-Control = %q, want no-store", r.header.Get("Cache-Control"))
	}
	return r
}

func wantInactive(t testing.TB, r result) {
	t.Helper()
	if r.status != http.StatusOK || r.raw != `{"active":false}` {
		t.Errorf("got %d %s, want 200 {\"active\":false}", r.status, r.raw)
	}
}

// clock is a settable test clock.
type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Time        { return time.Unix(0, c.t.Load()).UTC() }
func (c *clock) set(t time.Time)       { c.t.Store(t.UnixNano()) }
func newClock(t time.Time) *clock      { c := &clock{}; c.set(t); return c }
func withClock(c *clock) func(*Config) { return func(cfg *Config) { cfg.Now = c.now } }

func TestIntrospect(t *testing.T) {
	t.Parallel()
	base := newHarness(t, nil)
	token, jti := base.issue(asClient1, resMCP)

	t.Run("active_owner", func(t *testing.T) {
		t.Parallel()
		h := base.with(t)
		r := h.introspect(asClient1, token)
		want := map[string]any{
			"active": true, "scope": "a b", "client_id": client1, "sub": idpA + "|alice", "aud": resMCP,
			"iss": asIssuer, "exp": float64(testNow.Add(DefaultAccessTokenLifetime).Unix()), "iat": float64(testNow.Unix()),
			"jti": jti, "token_type": "Bearer", "acr": "urn:openxaa:acr:mfa", "amr": []any{"pwd", "otp"},
			"auth_time": float64(testNow.Add(-time.Minute).Unix()),
		}
		if d := cmp.Diff(want, r.body); r.status != http.StatusOK || d != "" {
			t.Errorf("status %d (-want +got):\n%s", r.status, d)
		}
	})
	t.Run("active_resource_in_caller_policy", func(t *testing.T) {
		t.Parallel()
		h := base.with(t)
		if r := h.introspect(asClient2, token); r.body["active"] != true || r.str("jti") != jti {
			t.Errorf("client2 (policy lists %s) got %s", resMCP, r.raw)
		}
	})
	t.Run("caller_not_allowed", func(t *testing.T) {
		t.Parallel()
		wantInactive(t, base.with(t).introspect(asNoPol, token))
	})
	for name, tok := range map[string]string{
		"unknown_jti":   base.forge(resMCP, randomJTI()),
		"foreign_aud":   base.forge(resForeign, jti),
		"id_jag":        base.good(),
		"garbage":       "not.a.token",
		"tampered":      token[:len(token)-4] + "AAAA",
		"other_claims":  base.forge(resMCP, jti), // the ledger row names other scopes
		"empty_segment": "..",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			wantInactive(t, base.with(t).introspect(asClient1, tok))
		})
	}
	t.Run("unauthenticated", func(t *testing.T) {
		t.Parallel()
		h := base.with(t)
		wantError(t, h.introspect(anonymous, token), http.StatusUnauthorized, "invalid_client")
		wantError(t, h.introspect(creds{client1, "wrong"}, token), http.StatusUnauthorized, "invalid_client")
	})
	t.Run("no_token", func(t *testing.T) {
		t.Parallel()
		wantError(t, base.with(t).call("/introspect", asClient1, url.Values{}), http.StatusBadRequest, "invalid_request")
	})
}

func TestIntrospectExpired(t *testing.T) {
	t.Parallel()
	clk := newClock(testNow)
	h := newHarness(t, &harnessOptions{edit: withClock(clk)})
	token, _ := h.issue(asClient1, resMCP)
	if r := h.introspect(asClient1, token); r.body["active"] != true {
		t.Fatalf("fresh token: %s", r.raw)
	}
	// Past exp but within the verifier's leeway: the ledger decides.
	clk.set(testNow.Add(DefaultAccessTokenLifetime))
	wantInactive(t, h.introspect(asClient1, token))
	clk.set(testNow.Add(DefaultAccessTokenLifetime + time.Hour))
	wantInactive(t, h.introspect(asClient1, token))
	// Revoking an expired token is a no-op 200.
	if r := h.call("/revoke", asClient1, url.Values{"token": {token}}); r.status != http.StatusOK {
		t.Errorf("revoke expired: %d %s", r.status, r.raw)
	}
	if evs := h.audit(AuditAccessTokenRevoked); len(evs) != 0 {
		t.Errorf("revoking an expired token wrote %d records", len(evs))
	}
}

func TestRevoke(t *testing.T) {
	t.Parallel()

	t.Run("owner", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil)
		token, jti := h.issue(asClient1, resMCP)
		for range 2 { // idempotent
			r := h.call("/revoke", asClient1, url.Values{"token": {token}, "token_type_hint": {"access_token"}})
			if r.status != http.StatusOK || r.header.Get("Cache-Control") != "no-store" {
				t.Fatalf("revoke: %d %s %v", r.status, r.raw, r.header)
			}
		}
		wantInactive(t, h.introspect(asClient1, token))
		wantInactive(t, h.introspect(asClient2, token))
		row, err := h.db.GetToken(context.Background(), asIssuer, jti)
		if err != nil || !row.RevokedAt.Equal(testNow) {
			t.Errorf("ledger row %+v, %v", row, err)
		}
		evs := h.audit(AuditAccessTokenRevoked)
		if len(evs) != 2 || evs[0].Data["jti"] != jti || evs[0].Outcome != "allow" || evs[0].ClientID != client1 ||
			evs[0].Data["token_hmac"] != audit.TokenHMAC([]byte(auditKeyTest), token) {
			t.Errorf("audit records %+v", evs)
		}
		l := h.call("/revocations", asClient1, url.Values{})
		if got := l.body["revoked"].([]any); len(got) != 1 || got[0].(map[string]any)["jti"] != jti {
			t.Errorf("revocation list %s", l.raw)
		}
	})

	t.Run("other_client_refused", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil)
		token, jti := h.issue(asClient1, resMCP)
		wantError(t, h.call("/revoke", asClient2, url.Values{"token": {token}}), http.StatusBadRequest, "unauthorized_client")
		if r := h.introspect(asClient1, token); r.body["active"] != true {
			t.Errorf("token revoked by another client: %s", r.raw)
		}
		evs := h.audit(AuditAccessTokenRevocationDenied)
		if len(evs) != 1 || evs[0].ClientID != client2 || evs[0].Rule != ruleRevokeNotOwner || evs[0].Data["jti"] != jti {
			t.Errorf("audit records %+v", evs)
		}
	})

	t.Run("invalid_tokens_200", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil)
		for _, tok := range []string{"garbage", h.forge(resMCP, randomJTI()), h.forge(resForeign, randomJTI()), h.good()} {
			if r := h.call("/revoke", asClient1, url.Values{"token": {tok}}); r.status != http.StatusOK {
				t.Errorf("revoke %.20q: %d %s", tok, r.status, r.raw)
			}
		}
		if evs := h.audit(AuditAccessTokenRevoked); len(evs) != 0 {
			t.Errorf("%d revocation records for invalid tokens", len(evs))
		}
	})

	t.Run("request_errors", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil)
		token, _ := h.issue(asClient1, resMCP)
		wantError(t, h.call("/revoke", anonymous, url.Values{"token": {token}}), http.StatusUnauthorized, "invalid_client")
		wantError(t, h.call("/revoke", asClient1, url.Values{}), http.StatusBadRequest, "invalid_request")
		if r := h.introspect(asClient1, token); r.body["active"] != true {
			t.Errorf("token revoked by a refused request: %s", r.raw)
		}
	})

	t.Run("store_failure_503", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, &harnessOptions{edit: func(c *Config) { c.Store = failingRevokes{c.Store.(*sqlstore.DB)} }})
		token, _ := h.issue(asClient1, resMCP)
		r := h.call("/revoke", asClient1, url.Values{"token": {token}})
		wantError(t, r, http.StatusServiceUnavailable, "temporarily_unavailable")
		if ra := r.header.Get("Retry-After"); ra == "" {
			t.Error("503 without Retry-After")
		}
		if r := h.introspect(asClient1, token); r.body["active"] != true {
			t.Errorf("after a failed revocation: %s", r.raw)
		}
		if evs := h.audit(AuditAccessTokenRevoked); len(evs) != 0 {
			t.Errorf("a failed revocation left %d audit records", len(evs))
		}
	})
}

// failingRevokes is the real store whose transactions cannot revoke.
type failingRevokes struct{ *sqlstore.DB }

func (f failingRevokes) InTx(ctx context.Context, fn func(store.Tx) error) error {
	return f.DB.InTx(ctx, func(tx store.Tx) error { return fn(failingTx{tx}) })
}

type failingTx struct{ store.Tx }

func (failingTx) RevokeToken(context.Context, string, string, time.Time) error {
	return fmt.Errorf("%w: disk on fire", store.ErrUnavailable)
}

func TestRevocationList(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	var mcp []string // client1's tokens for resMCP, in revocation order
	for range 3 {
		token, jti := h.issue(asClient1, resMCP)
		wantOK(t, h.call("/revoke", asClient1, url.Values{"token": {token}}))
		mcp = append(mcp, jti)
	}
	other, otherJTI := h.issue(asClient2, resOther)
	wantOK(t, h.call("/revoke", asClient2, url.Values{"token": {other}}))
	h.issue(asClient1, resMCP) // not revoked, never listed

	// poll pages through the list as c, by GET (Basic) or POST.
	poll := func(c creds, get bool, limit int) (jtis []string, pages int) {
		t.Helper()
		cursor := "0"
		for pages = 1; pages < 10; pages++ {
			v := url.Values{"cursor": {cursor}, "limit": {fmt.Sprint(limit)}}
			var r result
			if get {
				req, _ := http.NewRequest(http.MethodGet, h.hs.URL+"/revocations?"+v.Encode(), nil)
				req.SetBasicAuth(c.id, c.secret)
				r = h.send(req)
			} else {
				r = h.call("/revocations", c, v)
			}
			if r.status != http.StatusOK || r.header.Get("Cache-Control") != "no-store" {
				t.Fatalf("list: %d %s", r.status, r.raw)
			}
			for _, e := range r.body["revoked"].([]any) {
				m := e.(map[string]any)
				if m["revoked_at"] != float64(testNow.Unix()) || m["resource"] == "" {
					t.Errorf("entry %v", m)
				}
				jtis = append(jtis, m["jti"].(string))
			}
			cursor = fmt.Sprint(r.body["cursor"])
			if r.body["has_more"] != true {
				return jtis, pages
			}
		}
		t.Fatal("the list does not end")
		return nil, 0
	}
	all := append(append([]string{}, mcp...), otherJTI)
	for _, tc := range []struct {
		name      string
		c         creds
		get       bool
		limit     int
		want      []string
		wantPages int
	}{
		{"client2_sees_both_resources", asClient2, false, 100, all, 1},
		{"client2_pages", asClient2, true, 1, all, 5},
		{"client1_sees_its_resource", asClient1, true, 2, mcp, 3},
		{"no_policy_sees_nothing", asNoPol, false, 3, nil, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, pages := poll(tc.c, tc.get, tc.limit)
			if d := cmp.Diff(tc.want, got); d != "" || pages != tc.wantPages {
				t.Errorf("pages %d, want %d (-want +got):\n%s", pages, tc.wantPages, d)
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		wantError(t, h.call("/revocations", anonymous, url.Values{}), http.StatusUnauthorized, "invalid_client")
		for _, v := range []url.Values{{"limit": {"0"}}, {"limit": {"1001"}}, {"cursor": {"-1"}}, {"cursor": {"x"}}} {
			wantError(t, h.call("/revocations", asClient1, v), http.StatusBadRequest, "invalid_request")
		}
		req, _ := http.NewRequest(http.MethodGet, h.hs.URL+"/revocations?client_secret=x", nil)
		req.SetBasicAuth(client1, client1Sec)
		wantError(t, h.send(req), http.StatusBadRequest, "invalid_request")
	})
}

// TestRevokePostgres runs revocation, introspection and the list against
// PostgreSQL, where the revocation cursor comes from the counter row.
func TestRevokePostgres(t *testing.T) {
	t.Parallel()
	h := newHarness(t, &harnessOptions{postgres: true})
	token, jti := h.issue(asClient1, resMCP)
	if r := h.introspect(asClient2, token); r.body["active"] != true {
		t.Fatalf("fresh token: %s", r.raw)
	}
	wantError(t, h.call("/revoke", asClient2, url.Values{"token": {token}}), http.StatusBadRequest, "unauthorized_client")
	wantOK(t, h.call("/revoke", asClient1, url.Values{"token": {token}}))
	wantInactive(t, h.introspect(asClient1, token))
	r := h.call("/revocations", asClient1, url.Values{"cursor": {"0"}})
	if got := r.body["revoked"].([]any); len(got) != 1 || got[0].(map[string]any)["jti"] != jti || r.body["has_more"] != false {
		t.Errorf("revocation list %s", r.raw)
	}
	r = h.call("/revocations", asClient1, url.Values{"cursor": {fmt.Sprint(r.body["cursor"])}})
	if got := r.body["revoked"].([]any); len(got) != 0 {
		t.Errorf("after the cursor: %s", r.raw)
	}
}
