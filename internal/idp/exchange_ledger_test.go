package idp

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/policy"
	"github.com/openxaa/xaa/internal/store"
)

// TestExchangeDenialNamesTheLedger: each way the connection ledger takes
// access away refuses the next exchange with access_denied whose
// error_description says what happened, when and why (issue 7), and the
// audit record keeps the rule.
func TestExchangeDenialNamesTheLedger(t *testing.T) {
	t.Parallel()
	at := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	stamp := at.Format(time.RFC3339)
	ledger := func(t *testing.T, h *harness, e store.LedgerEvent) {
		t.Helper()
		e.Time, e.ActorID, e.ActorKind = at, "carol", "human"
		if err := h.db.AppendLedger(context.Background(), &e); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		change func(t *testing.T, h *harness)
		rule   string
		desc   string
	}{
		{"connection revoked", func(t *testing.T, h *harness) {
			h.updateConn(t, func(c store.Connection) store.Connection {
				c.Status, c.RevokedAt, c.StatusReason = store.ConnectionRevoked, at, "vendor offboarded"
				return c
			})
		}, policy.RuleConnectionRevoked, "the connection " + connApp1 + " was revoked at " + stamp + ": vendor offboarded"},
		{"connection revoked and a new one pending", func(t *testing.T, h *harness) {
			h.updateConn(t, func(c store.Connection) store.Connection {
				c.Status, c.RevokedAt, c.StatusReason = store.ConnectionRevoked, at, "replaced"
				return c
			})
			now := time.Now().UTC()
			if err := h.db.CreateConnection(context.Background(), store.Connection{ID: "c_next", AppID: app1, ResourceURI: testResource,
				IDJAGLifetime: 300 * time.Second, AccessTokenLifetime: 300 * time.Second, Status: store.ConnectionPending,
				CreatedAt: now, UpdatedAt: now}); err != nil {
				t.Fatal(err)
			}
		}, policy.RuleConnectionPending, "the connection c_next from this client to the resource awaits approval"},
		{"connection expired", func(t *testing.T, h *harness) {
			h.updateConn(t, func(c store.Connection) store.Connection {
				c.Status, c.ExpiresAt, c.StatusReason = store.ConnectionExpired, c.CreatedAt.Add(time.Millisecond), "recertification date passed"
				return c
			})
		}, policy.RuleConnectionExpired, "the connection " + connApp1 + " expired at "},
		{"user disabled", func(t *testing.T, h *harness) {
			if err := h.db.UpdateUser(context.Background(), userAlice, func(u store.User) (store.User, error) {
				u.Disabled = true
				return u, nil
			}); err != nil {
				t.Fatal(err)
			}
			ledger(t, h, store.LedgerEvent{Action: store.LedgerUserDisable, UserID: userAlice, Reason: "left the company"})
		}, policy.RuleUserDisabled, "the user's account was disabled at " + stamp + ": left the company"},
		{"member removed", func(t *testing.T, h *harness) {
			for _, g := range []string{"staff", "eng"} {
				if err := h.db.RemoveMember(context.Background(), g, userAlice); err != nil {
					t.Fatal(err)
				}
			}
			ledger(t, h, store.LedgerEvent{Action: store.LedgerMemberRemove, UserID: userAlice, Group: "eng", Reason: "changed team"})
		}, policy.RuleUserNotInGroup, "the user was removed at " + stamp + " from a group allowed to use this resource: changed team"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			tok := h.idToken(idTokenOpts{})
			if r := h.app1(h.goodTE(tok)); r.status != http.StatusOK {
				t.Fatalf("exchange before the change: %d %s", r.status, r.raw)
			}
			tc.change(t, h)
			r := h.app1(h.goodTE(tok))
			if r.status != http.StatusBadRequest || r.str("error") != oauth.CodeAccessDenied || !strings.HasPrefix(r.str("error_description"), tc.desc) {
				t.Fatalf("got %d %s %q, want access_denied %q", r.status, r.str("error"), r.str("error_description"), tc.desc)
			}
			evs := h.exchangeAudit()
			if last := evs[len(evs)-1]; last.Type != AuditIDJAGDenied || last.Rule != tc.rule {
				t.Errorf("last audit %s %s, want denial %s", last.Type, last.Rule, tc.rule)
			}
		})
	}
}

// TestExplainNamesAppRevocation: a revoked app cannot authenticate at the
// token endpoint at all (invalid_client), so the ledger's reason for its
// revocation shows where its decision is still evaluated: policy explain.
func TestExplainNamesAppRevocation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	at := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	if err := h.db.UpdateClient(ctx, Realm, app1, func(c store.Client) (store.Client, error) {
		c.Disabled = true
		return c, nil
	}); err != nil {
		t.Fatal(err)
	}
	e := store.LedgerEvent{Time: at, Action: store.LedgerAppRevoke, AppID: app1, ActorID: "carol", ActorKind: "human", Reason: "compromised"}
	if err := h.db.AppendLedger(ctx, &e); err != nil {
		t.Fatal(err)
	}
	d, err := Explain(ctx, h.db, ExplainInput{User: userAlice, App: app1, Resource: testResource})
	if err != nil {
		t.Fatal(err)
	}
	want := "the client was revoked at " + at.Format(time.RFC3339) + ": compromised"
	if d.Rule != policy.RuleAppDisabled || d.ClientMessage != want {
		t.Errorf("Explain = %s %q, want %s %q", d.Rule, d.ClientMessage, policy.RuleAppDisabled, want)
	}
	r := h.app1(h.goodTE(h.idToken(idTokenOpts{})))
	if r.status != http.StatusUnauthorized || r.str("error") != oauth.CodeInvalidClient {
		t.Errorf("exchange by the revoked app: %d %s, want 401 invalid_client", r.status, r.str("error"))
	}
}
