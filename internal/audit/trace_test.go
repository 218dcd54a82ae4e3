package audit_test

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/audit"
	"github.com/openxaa/xaa/internal/store"
)

// TestTrace writes the records of one ID-JAG's life as the roles do (the
// data keys of internal/idp, internal/authserver and internal/gateway),
// interleaved with another chain, and traces it from either end.
func TestTrace(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	base := time.Date(2026, 5, 4, 3, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	rec := func(s int, typ, outcome string, data map[string]string) store.AuditEvent {
		return appendEvent(t, db, store.AuditEvent{Time: at(s), Type: typ, Actor: "agent", ClientID: "agent", Subject: "alice",
			Outcome: outcome, Data: data})
	}
	// Written out of time order on purpose: the trace sorts by time.
	call2 := rec(50, "gateway.tool_call", "allow", map[string]string{"jti": "at-1", "tool": "export"})
	issued := rec(10, "idjag.issued", "allow", map[string]string{"jti": "idjag-1", "connection": "conn-1", "token_hmac": "aa"})
	other := rec(11, "idjag.issued", "allow", map[string]string{"jti": "idjag-2"})
	redeemed := rec(20, "accesstoken.issued", "allow", map[string]string{"idjag_jti": "idjag-1", "jti": "at-1", "token_hmac": "bb"})
	replay := rec(25, "accesstoken.denied", "deny", map[string]string{"idjag_jti": "idjag-1", "error": "invalid_grant"})
	call1 := rec(30, "gateway.tool_call", "allow", map[string]string{"jti": "at-1", "tool": "search"})
	otherAT := rec(31, "accesstoken.issued", "allow", map[string]string{"idjag_jti": "idjag-2", "jti": "at-2"})
	otherCall := rec(32, "gateway.tool_call", "deny", map[string]string{"jti": "at-2"})
	revoked := rec(40, "accesstoken.revoked", "allow", map[string]string{"jti": "at-1"})
	rec(41, "token.issued", "allow", map[string]string{"id_token_jti": "idjag-1"}) // not a link key

	want := []store.AuditEvent{issued, redeemed, replay, call1, revoked, call2}
	for _, start := range []string{"idjag-1", "at-1"} {
		got, err := audit.Trace(t.Context(), db, start)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Trace(%s) (-want +got):\n%s", start, diff)
		}
	}
	got, err := audit.Trace(t.Context(), db, "at-2")
	if err != nil || len(got) != 3 || got[0].ID != other.ID || got[1].ID != otherAT.ID || got[2].ID != otherCall.ID {
		t.Errorf("Trace(at-2) = %+v, %v", got, err)
	}
	if got, err := audit.Trace(t.Context(), db, "nobody"); err != nil || len(got) != 0 {
		t.Errorf("Trace(unknown) = %v, %v", got, err)
	}
	if _, err := audit.Trace(t.Context(), db, ""); err == nil {
		t.Error("Trace(\"\") accepted")
	}
}

// A trace pages through more records than one page holds.
func TestTracePagesAndBounds(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	err := db.InTx(t.Context(), func(tx store.Tx) error {
		for i := range 1500 {
			ev := store.AuditEvent{Type: "gateway.tool_call", Data: map[string]string{"jti": "at-many", "n": strconv.Itoa(i)}}
			if err := tx.AppendAudit(t.Context(), &ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := audit.Trace(t.Context(), db, "at-many")
	if err != nil || len(got) != 1500 {
		t.Fatalf("Trace = %d records, %v; want 1500", len(got), err)
	}
	err = db.InTx(t.Context(), func(tx store.Tx) error {
		for range audit.MaxTraceRecords {
			ev := store.AuditEvent{Type: "gateway.tool_call", Data: map[string]string{"jti": "at-many"}}
			if err := tx.AppendAudit(t.Context(), &ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Trace(t.Context(), db, "at-many"); !errors.Is(err, audit.ErrTraceTooLarge) {
		t.Errorf("Trace of %d records: %v, want ErrTraceTooLarge", 1500+audit.MaxTraceRecords, err)
	}
}
