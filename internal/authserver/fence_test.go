package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
)

const aliceLocal = idpA + "|alice" // the access tokens' sub for IdP A's alice

// fence raises a fence as an operator would, failing the test on error.
func (h *harness) fence(clientID, sub string) store.Fence {
	h.t.Helper()
	f, err := h.srv.Fence(context.Background(), clientID, sub, "test fence", "test:operator")
	if err != nil {
		h.t.Fatalf("Fence(%q, %q): %v", clientID, sub, err)
	}
	return f
}

// burned reports whether the ID-JAG jti is in the replay store. Probing
// records it when absent, so call it last for a jti.
func (h *harness) burned(jti string) bool {
	h.t.Helper()
	err := h.db.RecordOnce(context.Background(), store.ReplayEntry{
		Namespace: store.NamespaceIDJAG, Issuer: idpA, JTI: jti, ExpiresAt: testNow.Add(time.Hour),
	})
	switch {
	case errors.Is(err, store.ErrReplay):
		return true
	case err != nil:
		h.t.Fatal(err)
	}
	return false
}

// TestFenceJWTBearer: an ID-JAG issued before a fence of its (client,
// sub) is refused with invalid_grant, audited under fence.not_before, and
// its jti is not recorded; one issued after the fence redeems.
func TestFenceJWTBearer(t *testing.T) {
	t.Parallel()
	clk := newClock(testNow)
	h := newHarness(t, &harnessOptions{edit: withClock(clk)})
	before := goodClaims(idpA) // iat = testNow, minted before the fence
	beforeTok := h.a.mint(t, before)
	f := h.fence(client1, aliceLocal)
	if want := testNow.Add(time.Second); !f.NotBefore.Equal(want) {
		t.Fatalf("not_before = %v, want the next whole second %v", f.NotBefore, want)
	}

	wantError(t, h.post(jb(beforeTok)), http.StatusBadRequest, "invalid_grant")
	denied := h.audit(AuditAccessTokenDenied)
	if len(denied) != 1 || denied[0].Rule != ruleFenceNotBefore || denied[0].Outcome != "deny" ||
		denied[0].Subject != aliceLocal || denied[0].Data["fence_not_before"] != strconv.FormatInt(testNow.Unix()+1, 10) {
		t.Errorf("denied records = %+v", denied)
	}
	if n := len(h.audit(AuditAccessTokenIssued)); n != 0 {
		t.Errorf("%d issued records", n)
	}

	// The same user through another client, and another user through
	// this client, are not fenced.
	wantOK(t, h.post(jb(h.good(func(c claims) { c["sub"] = "bob" }))))
	wantOK(t, h.postAs(jb(h.good(func(c claims) { c["client_id"] = client2; c["scope"] = "a" })), client2, client2Sec, false))

	// An ID-JAG issued at or after not_before redeems.
	clk.set(testNow.Add(2 * time.Second))
	wantOK(t, h.post(jb(h.good(func(c claims) { c["iat"] = testNow.Unix() + 1 }))))

	if h.burned(before["jti"].(string)) {
		t.Error("the fenced ID-JAG's jti was recorded; a refused assertion must burn nothing")
	}
}

// TestFenceWildcards: "" client fences every client of the subject (the
// user is disabled), "" subject every subject of the client (the app is
// revoked); both empty is refused and writes nothing.
func TestFenceWildcards(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	asClient2Tok := func(sub string) string {
		return h.good(func(c claims) { c["client_id"], c["scope"], c["sub"] = client2, "a", sub })
	}
	h.fence("", aliceLocal)
	wantError(t, h.post(jb(h.good())), http.StatusBadRequest, "invalid_grant")
	wantError(t, h.postAs(jb(asClient2Tok("alice")), client2, client2Sec, false), http.StatusBadRequest, "invalid_grant")
	wantOK(t, h.postAs(jb(asClient2Tok("bob")), client2, client2Sec, false))

	h.fence(client2, "")
	wantError(t, h.postAs(jb(asClient2Tok("carol")), client2, client2Sec, false), http.StatusBadRequest, "invalid_grant")
	wantOK(t, h.post(jb(h.good(func(c claims) { c["sub"] = "carol" }))))

	for _, rule := range h.audit(AuditAccessTokenDenied) {
		if rule.Rule != ruleFenceNotBefore {
			t.Errorf("denial rule %q, want %q", rule.Rule, ruleFenceNotBefore)
		}
	}

	before := h.audit(AuditFenceRaised)
	for _, tc := range []struct{ name, client, sub, actor string }{
		{"both_wildcards", "", "", "test:operator"},
		{"no_actor", client1, "bob", " "},
		{"client_with_space", "a b", "bob", "test:operator"},
		{"subject_control_char", client1, "bob\n", "test:operator"},
	} {
		_, err := h.srv.Fence(context.Background(), tc.client, tc.sub, "", tc.actor)
		if !errors.Is(err, ErrInvalidFence) {
			t.Errorf("%s: Fence = %v, want ErrInvalidFence", tc.name, err)
		}
	}
	if after := h.audit(AuditFenceRaised); len(after) != len(before) {
		t.Errorf("refused fences wrote %d audit records", len(after)-len(before))
	}
	fs, _, err := h.db.ListFences(context.Background(), asIssuer, 0, 0)
	if err != nil || len(fs) != 2 {
		t.Errorf("fences = %+v, %v; want the two valid ones", fs, err)
	}
}

// TestFenceRaiseNeverLower: a later fence raises not_before; a fence asked
// for at an earlier time (a clock stepped back) leaves it, and says so in
// its audit record.
func TestFenceRaiseNeverLower(t *testing.T) {
	t.Parallel()
	clk := newClock(testNow.Add(10 * time.Second))
	h := newHarness(t, &harnessOptions{edit: withClock(clk)})
	first := h.fence(client1, aliceLocal)
	clk.set(testNow)
	lower := h.fence(client1, aliceLocal)
	if !lower.NotBefore.Equal(first.NotBefore) || lower.Cursor != first.Cursor {
		t.Errorf("an earlier fence changed it: %+v, was %+v", lower, first)
	}
	clk.set(testNow.Add(time.Minute))
	raised := h.fence(client1, aliceLocal)
	if want := testNow.Add(time.Minute + time.Second); !raised.NotBefore.Equal(want) || raised.Cursor <= first.Cursor {
		t.Errorf("raised fence %+v, want not_before %v and a new cursor", raised, want)
	}
	evs := h.audit(AuditFenceRaised)
	var got []string
	for _, ev := range evs {
		got = append(got, ev.Outcome+" "+ev.Rule+" "+ev.Data["not_before"])
		if ev.Actor != "test:operator" || ev.ClientID != client1 || ev.Subject != aliceLocal || ev.Reason != "test fence" {
			t.Errorf("audit record %+v", ev)
		}
	}
	want := []string{
		"allow fence.raised " + fmt.Sprint(testNow.Unix()+11),
		"info fence.unchanged " + fmt.Sprint(testNow.Unix()+11),
		"allow fence.raised " + fmt.Sprint(testNow.Unix()+61),
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("fence audit records (-want +got):\n%s", d)
	}
}

// TestFenceIntrospection: an access token issued before a fence of its
// (client, sub) is inactive; one issued after it is active.
func TestFenceIntrospection(t *testing.T) {
	t.Parallel()
	clk := newClock(testNow)
	h := newHarness(t, &harnessOptions{edit: withClock(clk)})
	token, _ := h.issue(asClient1, resMCP)
	other, _ := h.issue(asClient2, resMCP) // same user, another client
	clk.set(testNow.Add(500 * time.Millisecond))
	h.fence(client1, aliceLocal) // within the token's second: still kills it
	wantInactive(t, h.introspect(asClient1, token))
	wantInactive(t, h.introspect(asClient2, token))
	if r := h.introspect(asClient2, other); r.body["active"] != true {
		t.Errorf("client2's token after client1's fence: %s", r.raw)
	}

	h.fence("", aliceLocal)
	wantInactive(t, h.introspect(asClient2, other))

	clk.set(testNow.Add(2 * time.Second))
	r := h.post(jb(h.good(func(c claims) { c["iat"] = testNow.Unix() + 2 })))
	wantOK(t, r)
	if r := h.introspect(asClient1, r.str("access_token")); r.body["active"] != true {
		t.Errorf("token issued after the fence: %s", r.raw)
	}
}

// failingFences is the real store whose fence reads fail, directly and
// inside transactions.
type failingFences struct{ *sqlstore.DB }

func (failingFences) FenceNotBefore(context.Context, string, string, string) (time.Time, error) {
	return time.Time{}, fmt.Errorf("%w: disk on fire", store.ErrUnavailable)
}

func (f failingFences) InTx(ctx context.Context, fn func(store.Tx) error) error {
	return f.DB.InTx(ctx, func(tx store.Tx) error { return fn(failingFenceTx{tx}) })
}

type failingFenceTx struct{ store.Tx }

func (failingFenceTx) FenceNotBefore(context.Context, string, string, string) (time.Time, error) {
	return time.Time{}, fmt.Errorf("%w: disk on fire", store.ErrUnavailable)
}

// TestFenceStoreFailure: when fences cannot be read, the token endpoint
// and introspection answer 503 with Retry-After (fail closed), and the
// ID-JAG's jti is not burned.
func TestFenceStoreFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t, &harnessOptions{edit: func(c *Config) { c.Store = failingFences{c.Store.(*sqlstore.DB)} }})
	c := goodClaims(idpA)
	r := h.post(jb(h.a.mint(t, c)))
	wantError(t, r, http.StatusServiceUnavailable, "temporarily_unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if d := h.audit(AuditAccessTokenDenied); len(d) != 1 || d[0].Outcome != "error" || d[0].Rule != ruleStoreUnavailable {
		t.Errorf("denied records = %+v", d)
	}
	jti := randomJTI()
	token := h.forge(resMCP, jti)
	if err := h.db.RecordToken(context.Background(), store.IssuedToken{
		JTI: jti, Kind: store.TokenKindAccessToken, Issuer: asIssuer, ClientID: client1,
		Subject: aliceLocal, Audience: resMCP, Resource: resMCP, Scope: "a", IssuedAt: testNow, ExpiresAt: testNow.Add(5 * time.Minute),
	}); err != nil {
		t.Fatal(err)
	}
	wantError(t, h.introspect(asClient1, token), http.StatusServiceUnavailable, "temporarily_unavailable")
	if h.burned(c["jti"].(string)) {
		t.Error("a redemption refused for a store failure burned the jti")
	}
}

// TestFenceRevocationList: fences are listed with revoked tokens under one
// resumable cursor, to the callers that may see them.
func TestFenceRevocationList(t *testing.T) {
	t.Parallel()
	const client3 = "client3" // a policy on resOther only; no credentials needed
	h := newHarness(t, &harnessOptions{edit: func(c *Config) {
		c.Clients[client3] = ClientPolicy{Resources: []string{resOther}}
	}})
	token, jti := h.issue(asClient1, resMCP)
	h.fence(client1, aliceLocal)
	wantOK(t, h.call("/revoke", asClient1, url.Values{"token": {token}}))
	h.fence("", "https://idp-a.example.com|bob")
	h.fence(client3, "")

	type entry struct{ Kind, A, B string }
	poll := func(c creds, limit int) (got []entry, pages int) {
		t.Helper()
		cursor := "0"
		for pages = 1; pages < 20; pages++ {
			r := h.call("/revocations", c, url.Values{"cursor": {cursor}, "limit": {strconv.Itoa(limit)}})
			if r.status != http.StatusOK {
				t.Fatalf("list: %d %s", r.status, r.raw)
			}
			for _, e := range r.body["revoked"].([]any) {
				m := e.(map[string]any)
				got = append(got, entry{"revoked", m["jti"].(string), m["resource"].(string)})
			}
			for _, e := range r.body["fences"].([]any) {
				m := e.(map[string]any)
				if m["not_before"] != float64(testNow.Unix()+1) {
					t.Errorf("fence %v: not_before %v", m, m["not_before"])
				}
				got = append(got, entry{"fence", m["client_id"].(string), m["sub"].(string)})
			}
			cursor = fmt.Sprint(r.body["cursor"])
			if r.body["has_more"] != true {
				return got, pages
			}
		}
		t.Fatal("the list does not end")
		return nil, 0
	}
	for _, tc := range []struct {
		name  string
		c     creds
		limit int
		want  []entry
	}{
		{"client1_one_page", asClient1, 100, []entry{
			{"revoked", jti, resMCP}, {"fence", client1, aliceLocal}, {"fence", "", idpA + "|bob"},
		}},
		// client2's policy lists resOther, so it also sees client3's fence.
		{"client2_paged", asClient2, 1, []entry{
			{"fence", client1, aliceLocal}, {"revoked", jti, resMCP}, {"fence", "", idpA + "|bob"}, {"fence", client3, ""},
		}},
		{"no_policy_sees_nothing", asNoPol, 100, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := poll(tc.c, tc.limit)
			// Within one page the list is grouped by kind; across pages
			// (limit 1) it is in cursor order.
			if tc.limit == 100 {
				d := cmp.Diff(tc.want, got, cmp.Transformer("sort", func(es []entry) map[entry]bool {
					m := map[entry]bool{}
					for _, e := range es {
						m[e] = true
					}
					return m
				}))
				if d != "" || len(got) != len(tc.want) {
					t.Errorf("entries (-want +got):\n%s", d)
				}
				return
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("entries in cursor order (-want +got):\n%s", d)
			}
		})
	}

	// A poller that resumes from the cursor sees a fence raised later.
	r := h.call("/revocations", asClient1, url.Values{})
	cursor := fmt.Sprint(r.body["cursor"])
	if r.body["has_more"] != false {
		t.Fatalf("first poll: %s", r.raw)
	}
	h.fence("", idpA+"|carol")
	r = h.call("/revocations", asClient1, url.Values{"cursor": {cursor}})
	want := []any{map[string]any{"client_id": "", "sub": idpA + "|carol", "not_before": float64(testNow.Unix() + 1)}}
	if d := cmp.Diff(want, r.body["fences"]); d != "" || len(r.body["revoked"].([]any)) != 0 {
		t.Errorf("after the cursor (-want +got):\n%s\n%s", d, r.raw)
	}
}

// TestFencePostgres runs fence enforcement and the merged revocation list
// against PostgreSQL, where the fence cursor comes from the counter row
// shared with token revocations.
func TestFencePostgres(t *testing.T) {
	t.Parallel()
	h := newHarness(t, &harnessOptions{postgres: true})
	token, jti := h.issue(asClient1, resMCP)
	c := goodClaims(idpA)
	tok := h.a.mint(t, c)
	h.fence(client1, aliceLocal)
	wantError(t, h.post(jb(tok)), http.StatusBadRequest, "invalid_grant")
	wantInactive(t, h.introspect(asClient1, token))
	wantOK(t, h.call("/revoke", asClient1, url.Values{"token": {token}}))
	r1 := h.call("/revocations", asClient1, url.Values{"limit": {"1"}})
	r2 := h.call("/revocations", asClient1, url.Values{"cursor": {fmt.Sprint(r1.body["cursor"])}})
	fences, revoked := r1.body["fences"].([]any), r2.body["revoked"].([]any)
	if len(fences) != 1 || r1.body["has_more"] != true || len(revoked) != 1 || revoked[0].(map[string]any)["jti"] != jti || r2.body["has_more"] != false {
		t.Errorf("pages:\n%s\n%s", r1.raw, r2.raw)
	}
	if h.burned(c["jti"].(string)) {
		t.Error("the fenced ID-JAG's jti was recorded")
	}
}
