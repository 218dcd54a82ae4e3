package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// TestOnPostgres runs the ledger's whole round on PostgreSQL: lifecycle,
// delivery to the authorization server (sharing the database), the
// enforcement points, paging, expiry and the principal changes.
func TestOnPostgres(t *testing.T) {
	t.Parallel()
	h := newHarness(t, &harnessOptions{postgres: true})
	ctx := context.Background()
	e := h.approved(h.resource)
	if _, err := h.svc.Suspend(ctx, carol, e.ID, "incident"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Resume(ctx, carol, e.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Revoke(ctx, carol, e.ID, "offboarded"); err != nil {
		t.Fatal(err)
	}
	if n := h.deliver(); n != 2 {
		t.Fatalf("delivered %d, want 2", n)
	}
	got, err := h.svc.Get(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.History) != 5 || len(got.Deliveries) != 2 || got.Deliveries[1].Status != store.SETDelivered ||
		got.EnforcementPoints[1].State != StateDelivered || h.fence(appAtAS, "").IsZero() {
		t.Errorf("after revocation: %d history, deliveries %+v, points %+v", len(got.History), got.Deliveries, got.EnforcementPoints)
	}
	page, next, err := h.svc.List(ctx, Filter{Status: store.ConnectionRevoked, Limit: 1})
	if err != nil || len(page) != 1 || page[0].ID != e.ID || next != "" {
		t.Errorf("List revoked = %v %q %v", page, next, err)
	}

	x, err := h.svc.Request(ctx, dana, RequestInput{App: app, Resource: deadRes, ExpiresAt: h.clock.Now().Add(time.Minute),
		GroupScopes: []store.GroupScopes{{Group: staff, Scopes: []string{"files:read"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Approve(ctx, carol, x.ID, ""); err != nil {
		t.Fatal(err)
	}
	h.clock.Add(2 * time.Minute)
	if n, err := h.svc.ExpireDue(ctx); err != nil || n != 1 {
		t.Errorf("ExpireDue = %d, %v", n, err)
	}
	if err := h.svc.RemoveMember(ctx, carol, staff, aliceName, "moved"); err != nil {
		t.Error(err)
	}
	if err := h.svc.DisableUser(ctx, carol, aliceName, "left"); err != nil {
		t.Error(err)
	}
	if err := h.svc.RevokeApp(ctx, carol, app, "retired"); err != nil {
		t.Error(err)
	}
	hist, err := h.db.ListLedger(ctx, store.LedgerFilter{})
	if err != nil || len(hist) < 12 {
		t.Errorf("ledger history %d rows, %v", len(hist), err)
	}
}
