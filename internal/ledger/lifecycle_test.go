package ledger

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/store"
)

func actions(e Entry) []string {
	var out []string
	for _, h := range e.History {
		out = append(out, h.Action+":"+string(h.FromStatus)+">"+string(h.ToStatus))
	}
	return out
}

// TestLifecycle walks a connection through every state it can reach and
// checks what the ledger records at each step: status, who, why, history,
// audit, and the security events that only access-shrinking steps queue.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()

	e := h.request(h.resource)
	if e.Status != store.ConnectionPending || e.Requester != "human:dana" || e.Justification != "the assistant reads team files" ||
		e.IDJAGLifetime != store.DefaultIDJAGLifetime || e.AccessTokenLifetime != store.DefaultAccessTokenLifetime {
		t.Fatalf("requested = %+v", e.Connection)
	}
	id := e.ID
	step := func(name string, fn func() (Entry, error), status store.ConnectionStatus, reason string, sets int) Entry {
		t.Helper()
		h.clock.Add(time.Second)
		before := len(h.sets(store.SETFilter{ConnectionID: id}))
		e, err := fn()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if e.Status != status || e.StatusReason != reason || !e.UpdatedAt.Equal(h.clock.Now()) {
			t.Errorf("%s: status %s reason %q updated %v", name, e.Status, e.StatusReason, e.UpdatedAt)
		}
		if got := len(e.Deliveries) - before; got != sets {
			t.Errorf("%s queued %d security events, want %d", name, got, sets)
		}
		return e
	}
	e = step("approve", func() (Entry, error) { return h.svc.Approve(ctx, carol, id, "looks fine") }, store.ConnectionApproved, "looks fine", 0)
	if e.Approver != "human:carol" {
		t.Errorf("approver %q", e.Approver)
	}
	e = step("suspend", func() (Entry, error) { return h.svc.Suspend(ctx, carol, id, "incident 7") }, store.ConnectionSuspended, "incident 7", 1)
	e = step("resume", func() (Entry, error) { return h.svc.Resume(ctx, cli, id, "incident closed") }, store.ConnectionApproved, "incident closed", 0)
	until := h.clock.Now().Add(90 * 24 * time.Hour)
	e = step("recertify", func() (Entry, error) { return h.svc.Recertify(ctx, carol, id, until, "") }, store.ConnectionApproved, "incident closed", 0)
	if !e.ExpiresAt.Equal(until) {
		t.Errorf("expires %v, want %v", e.ExpiresAt, until)
	}
	e = step("revoke", func() (Entry, error) { return h.svc.Revoke(ctx, carol, id, "vendor offboarded") }, store.ConnectionRevoked, "vendor offboarded", 1)
	if !e.RevokedAt.Equal(h.clock.Now()) {
		t.Errorf("revoked_at %v", e.RevokedAt)
	}

	want := []string{"request:>pending", "approve:pending>approved", "suspend:approved>suspended", "resume:suspended>approved",
		"recertify:approved>approved", "revoke:approved>revoked"}
	if diff := cmp.Diff(want, actions(e)); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"human:carol", "cli:root"}, e.Approvers); diff != "" {
		t.Errorf("approvers (-want +got):\n%s", diff)
	}
	for _, ev := range e.History {
		if ev.ActorID == "" || ev.ConnectionID != id || ev.AppID != app {
			t.Errorf("history entry %+v", ev)
		}
	}
	// One audit record per change, each naming the connection.
	for _, typ := range []string{AuditRequested, AuditApproved, AuditSuspended, AuditResumed, AuditRecertified, AuditRevoked} {
		evs := h.audit(typ)
		if len(evs) != 1 || evs[0].Data["connection_id"] != id || evs[0].ClientID != app {
			t.Errorf("audit %s = %+v", typ, evs)
		}
	}
	// The security events name the app's client_id at the resource's
	// authorization server, the connection, no subject, and the
	// not-before of the change.
	sets := h.sets(store.SETFilter{ConnectionID: id})
	if len(sets) != 2 {
		t.Fatalf("sets = %+v", sets)
	}
	for _, d := range sets {
		if d.Audience != h.asIssuer || d.ClientID != appAtAS || d.Subject != "" || d.Status != store.SETPending ||
			d.NotBefore.Before(d.CreatedAt) || d.NotBefore.Sub(d.CreatedAt) > time.Second || d.LedgerSeq == 0 {
			t.Errorf("set %+v", d)
		}
	}
	if h.notified.Load() != 2 {
		t.Errorf("notified %d times, want once per change that queued events", h.notified.Load())
	}
	// The AS point shows the queued event; the IdP refuses.
	if p := e.EnforcementPoints; len(p) < 2 || p[0].Kind != PointIdP || p[0].State != StateRefusing ||
		p[1].Kind != PointAuthServer || p[1].ID != h.asIssuer || p[1].State != StatePending {
		t.Errorf("enforcement points %+v", p)
	}
}

// TestTransitionsRefused: every step the lifecycle does not have is a
// conflict, and changes nothing.
func TestTransitionsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	until := time.Now().Add(time.Hour)
	ops := map[string]func(id string) (Entry, error){
		"approve":   func(id string) (Entry, error) { return h.svc.Approve(ctx, carol, id, "") },
		"deny":      func(id string) (Entry, error) { return h.svc.Deny(ctx, carol, id, "no") },
		"suspend":   func(id string) (Entry, error) { return h.svc.Suspend(ctx, carol, id, "no") },
		"resume":    func(id string) (Entry, error) { return h.svc.Resume(ctx, carol, id, "") },
		"revoke":    func(id string) (Entry, error) { return h.svc.Revoke(ctx, carol, id, "no") },
		"recertify": func(id string) (Entry, error) { return h.svc.Recertify(ctx, carol, id, until, "") },
	}
	allowed := map[store.ConnectionStatus][]string{
		store.ConnectionPending:   {"approve", "deny", "revoke", "recertify"},
		store.ConnectionApproved:  {"suspend", "revoke", "recertify"},
		store.ConnectionSuspended: {"resume", "revoke", "recertify"},
		store.ConnectionDenied:    nil,
		store.ConnectionRevoked:   nil,
	}
	// One connection per status, each to its own resource.
	at := map[store.ConnectionStatus]string{}
	for i, st := range []store.ConnectionStatus{store.ConnectionPending, store.ConnectionApproved, store.ConnectionSuspended, store.ConnectionDenied, store.ConnectionRevoked} {
		res := h.resource + "/" + string(rune('a'+i))
		now := time.Now().UTC()
		if err := h.db.CreateResource(ctx, store.Resource{URI: res, Name: "R", AuthServerIssuer: h.asIssuer,
			Scopes: []store.ResourceScope{{Name: "files:read"}}, CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		e := h.request(res)
		switch st {
		case store.ConnectionApproved:
			e, _ = h.svc.Approve(ctx, carol, e.ID, "")
		case store.ConnectionSuspended:
			e, _ = h.svc.Approve(ctx, carol, e.ID, "")
			e, _ = h.svc.Suspend(ctx, carol, e.ID, "x")
		case store.ConnectionDenied:
			e, _ = h.svc.Deny(ctx, carol, e.ID, "x")
		case store.ConnectionRevoked:
			e, _ = h.svc.Revoke(ctx, carol, e.ID, "x")
		}
		if e.Status != st {
			t.Fatalf("setup %s: got %s", st, e.Status)
		}
		at[st] = e.ID
	}
	for st, id := range at {
		for name, op := range ops {
			if slices.Contains(allowed[st], name) {
				continue
			}
			before, _ := h.svc.Get(ctx, id)
			_, err := op(id)
			if !errors.Is(err, ErrConflict) {
				t.Errorf("%s on a %s connection: %v, want ErrConflict", name, st, err)
			}
			after, _ := h.svc.Get(ctx, id)
			if diff := cmp.Diff(before, after); diff != "" {
				t.Errorf("%s on a %s connection changed it:\n%s", name, st, diff)
			}
		}
	}
}

// TestBadInput: refusals for input, not state, say so and change nothing.
func TestBadInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	e := h.request(h.resource)
	past := time.Now().Add(-time.Hour)
	tests := []struct {
		name string
		fn   func() error
		want error
	}{
		{"deny without a reason", func() error { _, err := h.svc.Deny(ctx, carol, e.ID, "  "); return err }, ErrInvalid},
		{"revoke without a reason", func() error { _, err := h.svc.Revoke(ctx, carol, e.ID, ""); return err }, ErrInvalid},
		{"reason with a control character", func() error { _, err := h.svc.Revoke(ctx, carol, e.ID, "a\x00b"); return err }, ErrInvalid},
		{"reason too long", func() error { _, err := h.svc.Revoke(ctx, carol, e.ID, strings.Repeat("x", 2000)); return err }, ErrInvalid},
		{"recertify into the past", func() error { _, err := h.svc.Recertify(ctx, carol, e.ID, past, ""); return err }, ErrInvalid},
		{"actor without kind", func() error { _, err := h.svc.Approve(ctx, Actor{ID: "x"}, e.ID, ""); return err }, ErrInvalid},
		{"actor of unknown kind", func() error { _, err := h.svc.Approve(ctx, Actor{ID: "x", Kind: "root"}, e.ID, ""); return err }, ErrInvalid},
		{"actor without id", func() error { _, err := h.svc.Approve(ctx, Actor{Kind: ActorHuman}, e.ID, ""); return err }, ErrInvalid},
		{"unknown connection", func() error { _, err := h.svc.Approve(ctx, carol, "c_nope", ""); return err }, ErrNotFound},
		{"connection id with SQL", func() error { _, err := h.svc.Get(ctx, "c' OR '1'='1"); return err }, ErrNotFound},
		{"request for an unknown app", func() error {
			_, err := h.svc.Request(ctx, dana, RequestInput{App: "ghost", Resource: deadRes})
			return err
		}, ErrNotFound},
		{"request for an unknown resource", func() error {
			_, err := h.svc.Request(ctx, dana, RequestInput{App: app, Resource: "https://nowhere.example.com/mcp"})
			return err
		}, ErrNotFound},
		{"request with a bad resource URI", func() error {
			_, err := h.svc.Request(ctx, dana, RequestInput{App: app, Resource: "https://x.example.com/mcp?q=1"})
			return err
		}, ErrInvalid},
		{"request for a scope the resource lacks", func() error {
			_, err := h.svc.Request(ctx, dana, RequestInput{App: app, Resource: deadRes,
				GroupScopes: []store.GroupScopes{{Group: staff, Scopes: []string{"files:delete"}}}})
			return err
		}, ErrInvalid},
		{"request with an expiry in the past", func() error {
			_, err := h.svc.Request(ctx, dana, RequestInput{App: app, Resource: deadRes, ExpiresAt: past})
			return err
		}, ErrInvalid},
		{"a second live request", func() error {
			_, err := h.svc.Request(ctx, dana, RequestInput{App: app, Resource: h.resource})
			return err
		}, ErrConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.fn(); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	got, err := h.svc.Get(ctx, e.ID)
	if err != nil || got.Status != store.ConnectionPending || len(got.History) != 1 {
		t.Errorf("after refusals: %+v, %v", got.Connection, err)
	}
	list, _, err := h.svc.List(ctx, Filter{App: app})
	if err != nil || len(list) != 1 {
		t.Errorf("connections after refusals: %d, %v", len(list), err)
	}
	// Approving a request that grants no group anything is refused.
	empty, err := h.svc.Request(ctx, dana, RequestInput{App: app, Resource: deadRes})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Approve(ctx, carol, empty.ID, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("approving a connection without scopes: %v", err)
	}
}

// TestDenyThenRequestAgain: a denied request is final but does not block
// a new one.
func TestDenyThenRequestAgain(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	e := h.request(h.resource)
	d, err := h.svc.Deny(ctx, carol, e.ID, "not needed")
	if err != nil || d.Status != store.ConnectionDenied || d.StatusReason != "not needed" || len(d.Deliveries) != 0 {
		t.Fatalf("deny: %+v, %v", d.Connection, err)
	}
	again := h.request(h.resource)
	if again.ID == e.ID || again.Status != store.ConnectionPending {
		t.Errorf("second request %+v", again.Connection)
	}
}

// TestExpiry: a connection past its recertification date expires (with
// its history, audit record and security event); recertifying approves
// it again.
func TestExpiry(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	e := h.approved(h.resource)
	if _, err := h.svc.Recertify(ctx, carol, e.ID, h.clock.Now().Add(time.Hour), "quarterly"); err != nil {
		t.Fatal(err)
	}
	if n, err := h.svc.ExpireDue(ctx); err != nil || n != 0 {
		t.Fatalf("ExpireDue before the date: %d, %v", n, err)
	}
	h.clock.Add(time.Hour)
	n, err := h.svc.ExpireDue(ctx)
	if err != nil || n != 1 {
		t.Fatalf("ExpireDue after the date: %d, %v", n, err)
	}
	got, _ := h.svc.Get(ctx, e.ID)
	last := got.History[len(got.History)-1]
	if got.Status != store.ConnectionExpired || last.Action != store.LedgerExpire || last.ActorID != "system:ledger" ||
		!strings.Contains(got.StatusReason, "recertification date") || len(got.Deliveries) != 1 || len(h.audit(AuditExpired)) != 1 {
		t.Errorf("expired = %+v, last %+v", got.Connection, last)
	}
	if n, _ := h.svc.ExpireDue(ctx); n != 0 {
		t.Errorf("ExpireDue again expired %d", n)
	}
	if _, err := h.svc.Resume(ctx, carol, e.ID, ""); !errors.Is(err, ErrConflict) {
		t.Errorf("resuming an expired connection: %v", err)
	}
	got, err = h.svc.Recertify(ctx, cli, e.ID, h.clock.Now().Add(24*time.Hour), "renewed")
	if err != nil || got.Status != store.ConnectionApproved || got.Approver != "cli:root" {
		t.Errorf("recertify an expired connection: %+v, %v", got.Connection, err)
	}
}

// TestList: typed filters, allowlisted sorts, opaque cursors that belong
// to one listing.
func TestList(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	var ids []string
	for i := range 5 {
		res := h.resource + "/" + string(rune('a'+i))
		now := time.Now().UTC()
		if err := h.db.CreateResource(ctx, store.Resource{URI: res, Name: "R", AuthServerIssuer: h.asIssuer,
			Scopes: []store.ResourceScope{{Name: "files:read"}}, CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		h.clock.Add(time.Second)
		ids = append(ids, h.request(res).ID)
	}
	var got []string
	cursor := ""
	for range 10 {
		page, next, err := h.svc.List(ctx, Filter{App: app, Limit: 2, After: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			got = append(got, e.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if !slices.Equal(got, ids) {
		t.Errorf("paged = %v, want %v", got, ids)
	}
	desc, _, err := h.svc.List(ctx, Filter{App: app, Desc: true, Limit: 1})
	if err != nil || len(desc) != 1 || desc[0].ID != ids[4] {
		t.Errorf("newest first = %v, %v", desc, err)
	}
	_, next, _ := h.svc.List(ctx, Filter{App: app, Limit: 2})
	for name, f := range map[string]Filter{
		"unknown sort":            {Sort: "id; DROP TABLE connections"},
		"unknown status":          {Status: "approved' OR '1'='1"},
		"negative limit":          {Limit: -1},
		"limit too large":         {Limit: 5000},
		"garbage cursor":          {After: "not a cursor"},
		"cursor of another sort":  {After: next, Sort: SortUpdated},
		"cursor of another order": {After: next, Desc: true},
		"forged cursor":           {After: encodeCursor(SortCreated, false, store.ConnectionCursor{Key: 1, ID: "x' OR '1'='1"})},
	} {
		if _, _, err := h.svc.List(ctx, f); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	none, _, err := h.svc.List(ctx, Filter{App: "ghost"})
	if err != nil || len(none) != 0 {
		t.Errorf("unknown app: %v, %v", none, err)
	}
}
