package ledger

import (
	"context"
	"errors"
	"testing"

	"github.com/openxaa/xaa/internal/store"
)

// TestDisableUser: the user is disabled, the change is in the history and
// the audit trail, and every authorization server is told to void the
// user's tokens (subject set, client wildcard).
func TestDisableUser(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	if err := h.svc.DisableUser(ctx, carol, aliceName, "left the company"); err != nil {
		t.Fatal(err)
	}
	u, err := h.db.GetUser(ctx, aliceID)
	if err != nil || !u.Disabled {
		t.Fatalf("user %+v, %v", u, err)
	}
	e, err := h.db.LatestLedger(ctx, store.LedgerFilter{UserID: aliceID, Action: store.LedgerUserDisable})
	if err != nil || e.Reason != "left the company" || e.ActorID != "human:carol" {
		t.Errorf("ledger %+v, %v", e, err)
	}
	sets := h.sets(store.SETFilter{Subject: aliceID})
	auds := map[string]bool{}
	for _, d := range sets {
		if d.ClientID != "" || d.ConnectionID != "" || d.Reason != "left the company" {
			t.Errorf("set %+v", d)
		}
		auds[d.Audience] = true
	}
	if len(sets) != 2 || !auds[h.asIssuer] || !auds[deadAS] {
		t.Errorf("sets to %v, want both authorization servers", auds)
	}
	if evs := h.audit(AuditUserDisabled); len(evs) != 1 || evs[0].Subject != aliceID {
		t.Errorf("audit %+v", evs)
	}
	if h.notified.Load() != 1 {
		t.Errorf("notified %d", h.notified.Load())
	}
	for name, tc := range map[string]struct {
		user, reason string
		want         error
	}{
		"again":          {aliceName, "x", ErrConflict},
		"unknown user":   {"ghost", "x", ErrNotFound},
		"without reason": {"bob", "", ErrInvalid},
	} {
		if err := h.svc.DisableUser(ctx, carol, tc.user, tc.reason); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	// By id works too.
	if err := h.svc.DisableUser(ctx, carol, "u_bob", "contract ended"); err != nil {
		t.Errorf("by id: %v", err)
	}
}

// TestRemoveMember: the membership ends, and only the connections that
// granted that group queue an event, naming the user and the app's
// client_id at their authorization server.
func TestRemoveMember(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	staffConn := h.approved(h.resource) // grants staff
	eng, err := h.svc.Request(ctx, dana, RequestInput{App: app, Resource: deadRes,
		GroupScopes: []store.GroupScopes{{Group: "eng", Scopes: []string{"files:read"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Approve(ctx, carol, eng.ID, ""); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.RemoveMember(ctx, cli, staff, aliceName, "moved to sales"); err != nil {
		t.Fatal(err)
	}
	groups, _ := h.db.UserGroups(ctx, aliceID)
	if len(groups) != 1 || groups[0] != "eng" {
		t.Errorf("groups %v", groups)
	}
	sets := h.sets(store.SETFilter{Subject: aliceID})
	if len(sets) != 1 || sets[0].ConnectionID != staffConn.ID || sets[0].ClientID != appAtAS || sets[0].Audience != h.asIssuer {
		t.Errorf("sets %+v, want one for %s", sets, staffConn.ID)
	}
	e, err := h.db.LatestLedger(ctx, store.LedgerFilter{UserID: aliceID, Group: staff, Action: store.LedgerMemberRemove})
	if err != nil || e.Reason != "moved to sales" {
		t.Errorf("ledger %+v, %v", e, err)
	}
	if evs := h.audit(AuditMemberRemoved); len(evs) != 1 || evs[0].Data["group"] != staff {
		t.Errorf("audit %+v", evs)
	}
	if err := h.svc.RemoveMember(ctx, cli, staff, aliceName, "again"); !errors.Is(err, ErrNotFound) {
		t.Errorf("removing a non-member: %v", err)
	}
	if err := h.svc.RemoveMember(ctx, cli, "Not A Group", aliceName, "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("removing from a malformed group: %v", err)
	}
}

// TestRevokeApp: the app's client is disabled, each of its live
// connections is revoked with the app's reason, and each authorization
// server where it holds a client_id is told once.
func TestRevokeApp(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	live := h.approved(h.resource)
	pending, err := h.svc.Request(ctx, dana, RequestInput{App: app, Resource: deadRes})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.svc.RevokeApp(ctx, carol, app, "credentials leaked"); err != nil {
		t.Fatal(err)
	}
	c, err := h.db.GetClient(ctx, store.RealmIdP, app)
	if err != nil || !c.Disabled {
		t.Fatalf("client %+v, %v", c, err)
	}
	for _, id := range []string{live.ID, pending.ID} {
		e, err := h.svc.Get(ctx, id)
		if err != nil || e.Status != store.ConnectionRevoked || e.StatusReason != "the app was revoked: credentials leaked" {
			t.Errorf("%s = %+v, %v", id, e.Connection, err)
		}
	}
	byAud := map[string]store.SETDelivery{}
	for _, d := range h.sets(store.SETFilter{}) {
		byAud[d.Audience] = d
	}
	if d := byAud[h.asIssuer]; len(byAud) != 2 || d.ConnectionID != live.ID || d.ClientID != appAtAS {
		t.Errorf("sets %+v", byAud)
	}
	if d := byAud[deadAS]; d.ConnectionID != "" || d.ClientID != appAtDead || d.Subject != "" {
		t.Errorf("app-wide set %+v", d)
	}
	if evs := h.audit(AuditAppRevoked); len(evs) != 1 || len(h.audit(AuditRevoked)) != 2 {
		t.Errorf("audit: %d app.revoked, %d connection.revoked", len(evs), len(h.audit(AuditRevoked)))
	}
	if err := h.svc.RevokeApp(ctx, carol, app, "again"); !errors.Is(err, ErrConflict) {
		t.Errorf("again: %v", err)
	}
	if err := h.svc.RevokeApp(ctx, carol, "ghost", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown app: %v", err)
	}
}
