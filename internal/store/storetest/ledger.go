package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/store"
)

// --- perCallTx: the ledger aggregates ---

func (p perCallTx) LatestConnection(ctx context.Context, appID, resourceURI string) (c store.Connection, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { c, err = tx.LatestConnection(ctx, appID, resourceURI); return err })
	return c, err
}

func (p perCallTx) QueryConnections(ctx context.Context, q store.ConnectionQuery) (cs []store.Connection, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { cs, err = tx.QueryConnections(ctx, q); return err })
	return cs, err
}

func (p perCallTx) AppendLedger(ctx context.Context, e *store.LedgerEvent) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.AppendLedger(ctx, e) })
}

func (p perCallTx) ListLedger(ctx context.Context, f store.LedgerFilter) (es []store.LedgerEvent, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { es, err = tx.ListLedger(ctx, f); return err })
	return es, err
}

func (p perCallTx) LatestLedger(ctx context.Context, f store.LedgerFilter) (e store.LedgerEvent, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { e, err = tx.LatestLedger(ctx, f); return err })
	return e, err
}

func (p perCallTx) EnqueueSET(ctx context.Context, d *store.SETDelivery) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.EnqueueSET(ctx, d) })
}

func (p perCallTx) ClaimSETs(ctx context.Context, now time.Time, lease time.Duration, limit int) (ds []store.SETDelivery, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { ds, err = tx.ClaimSETs(ctx, now, lease, limit); return err })
	return ds, err
}

func (p perCallTx) UpdateSET(ctx context.Context, d store.SETDelivery) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.UpdateSET(ctx, d) })
}

func (p perCallTx) ListSETs(ctx context.Context, f store.SETFilter) (ds []store.SETDelivery, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { ds, err = tx.ListSETs(ctx, f); return err })
	return ds, err
}

func (p perCallTx) RecordRevocationPoll(ctx context.Context, r store.RevocationPoll) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.RecordRevocationPoll(ctx, r) })
}

func (p perCallTx) ListRevocationPolls(ctx context.Context, issuer string) (ps []store.RevocationPoll, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { ps, err = tx.ListRevocationPolls(ctx, issuer); return err })
	return ps, err
}

// --- fixtures ---

func newLedgerEvent(connID string) store.LedgerEvent {
	return store.LedgerEvent{
		Time: now(), Action: store.LedgerRevoke, ConnectionID: connID, AppID: newID("app"),
		FromStatus: store.ConnectionApproved, ToStatus: store.ConnectionRevoked,
		ActorID: "carol", ActorKind: "human", Reason: "the vendor contract ended\nsee ticket 42",
		Data: map[string]string{"ticket": "42"},
	}
}

func newSET(connID string) store.SETDelivery {
	t := now()
	return store.SETDelivery{
		JTI: newID("jti"), Audience: newIssuer("/as"), Subject: "", ClientID: newID("there"), ConnectionID: connID,
		Reason: "connection revoked", NotBefore: t.Add(time.Second).Truncate(time.Second), CreatedAt: t, LedgerSeq: 7,
		Status: store.SETPending, NextAttemptAt: t,
	}
}

// --- tests ---

func testLedger(t *testing.T, s store.Tx) {
	ctx := t.Context()
	t.Run("AppendAndList", func(t *testing.T) {
		t.Parallel()
		conn := newID("c")
		var seqs []int64
		var want []store.LedgerEvent
		for i, action := range []string{store.LedgerRequest, store.LedgerApprove, store.LedgerRevoke} {
			e := newLedgerEvent(conn)
			e.Action, e.Time = action, e.Time.Add(time.Duration(i)*time.Millisecond)
			noErr(t, "AppendLedger", s.AppendLedger(ctx, &e))
			if e.Seq <= 0 || (len(seqs) > 0 && e.Seq <= seqs[len(seqs)-1]) {
				t.Fatalf("Seq %d after %v: not increasing", e.Seq, seqs)
			}
			seqs = append(seqs, e.Seq)
			want = append(want, e)
		}
		got, err := s.ListLedger(ctx, store.LedgerFilter{ConnectionID: conn})
		noErr(t, "ListLedger", err)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ListLedger (-want +got):\n%s", diff)
		}
		got, err = s.ListLedger(ctx, store.LedgerFilter{ConnectionID: conn, Limit: 2})
		noErr(t, "ListLedger limit", err)
		if len(got) != 2 || got[0].Seq != seqs[0] {
			t.Errorf("ListLedger limit 2 = %d events, want the 2 oldest", len(got))
		}
		latest, err := s.LatestLedger(ctx, store.LedgerFilter{ConnectionID: conn})
		noErr(t, "LatestLedger", err)
		if latest.Seq != seqs[2] || latest.Action != store.LedgerRevoke {
			t.Errorf("LatestLedger = %+v, want the revoke", latest)
		}
	})
	t.Run("PrincipalEvents", func(t *testing.T) {
		t.Parallel()
		user := newID("u")
		for _, g := range []string{"eng", "staff", "eng"} {
			e := store.LedgerEvent{Time: now(), Action: store.LedgerMemberRemove, UserID: user, Group: g,
				ActorID: "cli:root", ActorKind: "cli", Reason: "left " + g}
			noErr(t, "AppendLedger", s.AppendLedger(ctx, &e))
		}
		got, err := s.LatestLedger(ctx, store.LedgerFilter{UserID: user, Group: "eng", Action: store.LedgerMemberRemove})
		noErr(t, "LatestLedger", err)
		all, err := s.ListLedger(ctx, store.LedgerFilter{UserID: user})
		noErr(t, "ListLedger", err)
		if len(all) != 3 || got.Seq != all[2].Seq {
			t.Errorf("latest eng removal %d, all %d events; want the third", got.Seq, len(all))
		}
		_, err = s.LatestLedger(ctx, store.LedgerFilter{UserID: user, Action: store.LedgerUserDisable})
		wantErr(t, "LatestLedger without a match", err, store.ErrNotFound)
	})
	t.Run("FilterValuesAreBoundParameters", func(t *testing.T) {
		t.Parallel()
		e := newLedgerEvent(newID("c"))
		noErr(t, "AppendLedger", s.AppendLedger(ctx, &e))
		for _, v := range []string{"' OR '1'='1", "%", e.ConnectionID + "' --"} {
			got, err := s.ListLedger(ctx, store.LedgerFilter{ConnectionID: v})
			noErr(t, "ListLedger", err)
			if len(got) != 0 {
				t.Errorf("filter %q matched %d events", v, len(got))
			}
		}
	})
	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		for name, mut := range map[string]func(*store.LedgerEvent){
			"unknown action":          func(e *store.LedgerEvent) { e.Action = "explode" },
			"connection action alone": func(e *store.LedgerEvent) { e.ConnectionID = "" },
			"no actor":                func(e *store.LedgerEvent) { e.ActorID = "" },
			"no actor kind":           func(e *store.LedgerEvent) { e.ActorKind = "" },
			"zero time":               func(e *store.LedgerEvent) { e.Time = time.Time{} },
			"control character":       func(e *store.LedgerEvent) { e.Reason = "a\x00b" },
			"member without group":    func(e *store.LedgerEvent) { e.Action, e.UserID = store.LedgerMemberRemove, "u_1" },
			"user without user":       func(e *store.LedgerEvent) { e.Action = store.LedgerUserDisable },
			"app revoke without app":  func(e *store.LedgerEvent) { e.Action, e.AppID = store.LedgerAppRevoke, "" },
			"bad group":               func(e *store.LedgerEvent) { e.Group = "Eng Team" },
		} {
			e := newLedgerEvent(newID("c"))
			mut(&e)
			if err := s.AppendLedger(ctx, &e); !isInvalid(err) {
				t.Errorf("%s: AppendLedger = %v, want an invalid-value error", name, err)
			}
		}
	})
}

// isInvalid reports a refusal of the value itself: store.ErrInvalid or a
// backend's own invalid-input error, never a missing row, a clash or an
// outage.
func isInvalid(err error) bool {
	return errors.Is(err, store.ErrInvalid) || (err != nil && !errors.Is(err, store.ErrNotFound) &&
		!errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrUnavailable))
}

func testSETOutbox(t *testing.T, s store.Tx) {
	ctx := t.Context()
	t.Run("EnqueueListUpdate", func(t *testing.T) {
		t.Parallel()
		conn := newID("c")
		d := newSET(conn)
		noErr(t, "EnqueueSET", s.EnqueueSET(ctx, &d))
		if d.ID <= 0 {
			t.Fatalf("ID = %d", d.ID)
		}
		dup := newSET(conn)
		dup.JTI = d.JTI
		wantErr(t, "EnqueueSET duplicate jti", s.EnqueueSET(ctx, &dup), store.ErrConflict)

		got, err := s.ListSETs(ctx, store.SETFilter{ConnectionID: conn})
		noErr(t, "ListSETs", err)
		if diff := cmp.Diff([]store.SETDelivery{d}, got); diff != "" {
			t.Errorf("ListSETs (-want +got):\n%s", diff)
		}

		failed := d
		failed.Attempts, failed.LastError, failed.NextAttemptAt = 1, "HTTP 503", d.NextAttemptAt.Add(2*time.Second)
		noErr(t, "UpdateSET retry", s.UpdateSET(ctx, failed))
		done := failed
		done.Status, done.Attempts, done.DeliveredAt, done.LastError = store.SETDelivered, 2, now(), ""
		noErr(t, "UpdateSET delivered", s.UpdateSET(ctx, done))
		got, err = s.ListSETs(ctx, store.SETFilter{ConnectionID: conn, Status: store.SETDelivered})
		noErr(t, "ListSETs delivered", err)
		if diff := cmp.Diff([]store.SETDelivery{done}, got); diff != "" {
			t.Errorf("after delivery (-want +got):\n%s", diff)
		}
		again := done
		again.Status, again.DeliveredAt = store.SETFailed, time.Time{}
		wantErr(t, "UpdateSET after delivery", s.UpdateSET(ctx, again), store.ErrConflict)
		ghost := done
		ghost.ID = d.ID + 1_000_000
		wantErr(t, "UpdateSET unknown", s.UpdateSET(ctx, ghost), store.ErrNotFound)
	})
	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		for name, mut := range map[string]func(*store.SETDelivery){
			"no subject and no client": func(d *store.SETDelivery) { d.Subject, d.ClientID = "", "" },
			"no jti":                   func(d *store.SETDelivery) { d.JTI = "" },
			"no audience":              func(d *store.SETDelivery) { d.Audience = "" },
			"unknown status":           func(d *store.SETDelivery) { d.Status = "lost" },
			"delivered without time":   func(d *store.SETDelivery) { d.Status = store.SETDelivered },
			"pending with delivery":    func(d *store.SETDelivery) { d.DeliveredAt = now() },
			"zero not_before":          func(d *store.SETDelivery) { d.NotBefore = time.Time{} },
			"negative attempts":        func(d *store.SETDelivery) { d.Attempts = -1 },
		} {
			d := newSET(newID("c"))
			mut(&d)
			if err := s.EnqueueSET(ctx, &d); !isInvalid(err) {
				t.Errorf("%s: EnqueueSET = %v, want an invalid-value error", name, err)
			}
		}
	})
}

func testRevocationPolls(t *testing.T, s store.Tx) {
	ctx := t.Context()
	iss := newIssuer("/as")
	t0 := now()
	noErr(t, "record gw-b", s.RecordRevocationPoll(ctx, store.RevocationPoll{Issuer: iss, ClientID: "gw-b", PolledAt: t0, Cursor: 3}))
	noErr(t, "record gw-a", s.RecordRevocationPoll(ctx, store.RevocationPoll{Issuer: iss, ClientID: "gw-a",
		Resources: []string{"https://x.example/mcp"}, PolledAt: t0, Cursor: 5}))
	noErr(t, "record gw-a later", s.RecordRevocationPoll(ctx, store.RevocationPoll{Issuer: iss, ClientID: "gw-a",
		Resources: []string{"https://x.example/mcp"}, PolledAt: t0.Add(time.Second), Cursor: 9}))
	noErr(t, "record gw-a earlier", s.RecordRevocationPoll(ctx, store.RevocationPoll{Issuer: iss, ClientID: "gw-a",
		PolledAt: t0.Add(-time.Second), Cursor: 1}))
	got, err := s.ListRevocationPolls(ctx, iss)
	noErr(t, "ListRevocationPolls", err)
	want := []store.RevocationPoll{
		{Issuer: iss, ClientID: "gw-a", Resources: []string{"https://x.example/mcp"}, PolledAt: t0.Add(time.Second), Cursor: 9},
		{Issuer: iss, ClientID: "gw-b", Resources: []string{}, PolledAt: t0, Cursor: 3},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListRevocationPolls (-want +got):\n%s", diff)
	}
	if err := s.RecordRevocationPoll(ctx, store.RevocationPoll{Issuer: iss, PolledAt: t0}); err == nil {
		t.Error("a poll without a client_id was recorded")
	}
}

func testConnectionLedgerStatuses(t *testing.T, s store.Tx) {
	ctx := t.Context()
	t.Run("DeniedAndExpired", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, s)
		c := w.connection()
		c.Status, c.Approver, c.Requester, c.StatusReason = store.ConnectionPending, "", "human:dana", ""
		noErr(t, "CreateConnection", s.CreateConnection(ctx, c))
		deny := func(x store.Connection) (store.Connection, error) {
			x.Status, x.StatusReason, x.UpdatedAt = store.ConnectionDenied, "not needed", now()
			return x, nil
		}
		noErr(t, "deny", s.UpdateConnection(ctx, c.ID, deny))
		got, err := s.GetConnection(ctx, c.ID)
		noErr(t, "GetConnection", err)
		if got.Status != store.ConnectionDenied || got.Requester != "human:dana" || got.StatusReason != "not needed" {
			t.Errorf("denied connection = %+v", got)
		}
		_, err = s.FindConnection(ctx, w.app, w.resource)
		wantErr(t, "FindConnection of a denied request", err, store.ErrNotFound)
		latest, err := s.LatestConnection(ctx, w.app, w.resource)
		noErr(t, "LatestConnection", err)
		if latest.ID != c.ID {
			t.Errorf("LatestConnection = %s, want the denied %s", latest.ID, c.ID)
		}
		err = s.UpdateConnection(ctx, c.ID, func(x store.Connection) (store.Connection, error) {
			x.Status, x.Approver = store.ConnectionApproved, "carol"
			return x, nil
		})
		wantErr(t, "approving a denied connection", err, store.ErrInvalid)

		// A denied request does not block a new one; the new one is live.
		c2 := w.connection()
		noErr(t, "CreateConnection after a denial", s.CreateConnection(ctx, c2))
		noErr(t, "expire", s.UpdateConnection(ctx, c2.ID, func(x store.Connection) (store.Connection, error) {
			x.Status, x.StatusReason = store.ConnectionExpired, "recertification date passed"
			return x, nil
		}))
		live, err := s.FindConnection(ctx, w.app, w.resource)
		noErr(t, "FindConnection of an expired connection", err)
		latest, err = s.LatestConnection(ctx, w.app, w.resource)
		noErr(t, "LatestConnection", err)
		if live.ID != c2.ID || latest.ID != c2.ID || live.Status != store.ConnectionExpired {
			t.Errorf("live %s (%s), latest %s; want the expired %s", live.ID, live.Status, latest.ID, c2.ID)
		}
		// An expired connection is live: a third one conflicts.
		wantErr(t, "CreateConnection beside an expired one", s.CreateConnection(ctx, w.connection()), store.ErrConflict)
		noErr(t, "recertify", s.UpdateConnection(ctx, c2.ID, func(x store.Connection) (store.Connection, error) {
			x.Status, x.ExpiresAt = store.ConnectionApproved, x.ExpiresAt.Add(time.Hour)
			return x, nil
		}))
	})
	t.Run("LatestConnectionPrefersLive", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, s)
		_, err := s.LatestConnection(ctx, w.app, w.resource)
		wantErr(t, "LatestConnection of none", err, store.ErrNotFound)
		var ended []string
		for range 2 {
			c := w.connection()
			noErr(t, "CreateConnection", s.CreateConnection(ctx, c))
			noErr(t, "revoke", s.UpdateConnection(ctx, c.ID, func(x store.Connection) (store.Connection, error) {
				x.Status, x.RevokedAt, x.UpdatedAt = store.ConnectionRevoked, now(), now().Add(time.Duration(len(ended))*time.Second)
				return x, nil
			}))
			ended = append(ended, c.ID)
		}
		latest, err := s.LatestConnection(ctx, w.app, w.resource)
		noErr(t, "LatestConnection", err)
		if latest.ID != ended[1] || latest.Status != store.ConnectionRevoked {
			t.Errorf("LatestConnection = %s, want the last revoked %s", latest.ID, ended[1])
		}
		live := w.connection()
		live.CreatedAt = live.CreatedAt.Add(-time.Hour)
		live.UpdatedAt = live.CreatedAt
		noErr(t, "CreateConnection", s.CreateConnection(ctx, live))
		latest, err = s.LatestConnection(ctx, w.app, w.resource)
		noErr(t, "LatestConnection", err)
		if latest.ID != live.ID {
			t.Errorf("LatestConnection = %s, want the live %s even though it changed earlier", latest.ID, live.ID)
		}
	})
	t.Run("QueryConnections", func(t *testing.T) {
		t.Parallel()
		// Three resources of one app, so the app filter isolates them.
		w := newWorld(t, s)
		base := now()
		var ids []string
		for i := range 3 {
			r := newResource(w.issuer)
			noErr(t, "CreateResource", s.CreateResource(ctx, r))
			c := w.connection()
			c.ResourceURI = r.URI
			c.CreatedAt = base.Add(time.Duration(i) * time.Second)
			c.UpdatedAt = base.Add(time.Duration(10-i) * time.Second)
			c.ExpiresAt = time.Time{}
			if i != 1 {
				c.ExpiresAt = base.Add(time.Duration(100+i) * time.Hour)
			}
			noErr(t, "CreateConnection", s.CreateConnection(ctx, c))
			ids = append(ids, c.ID)
		}
		ids2 := func(cs []store.Connection) (out []string) {
			for _, c := range cs {
				out = append(out, c.ID)
			}
			return out
		}
		for _, tc := range []struct {
			sort string
			desc bool
			want []string
		}{
			{"", false, ids},
			{store.ConnectionSortCreated, true, []string{ids[2], ids[1], ids[0]}},
			{store.ConnectionSortUpdated, false, []string{ids[2], ids[1], ids[0]}},
			{store.ConnectionSortExpires, false, []string{ids[0], ids[2], ids[1]}}, // no date sorts last
			{store.ConnectionSortExpires, true, []string{ids[1], ids[2], ids[0]}},
		} {
			got, err := s.QueryConnections(ctx, store.ConnectionQuery{AppID: w.app, Sort: tc.sort, Desc: tc.desc})
			noErr(t, "QueryConnections", err)
			if !slices.Equal(ids2(got), tc.want) {
				t.Errorf("sort %q desc %v = %v, want %v", tc.sort, tc.desc, ids2(got), tc.want)
			}
			// Page by one: the cursor resumes exactly after each row.
			var paged []string
			var after *store.ConnectionCursor
			for range 4 {
				page, err := s.QueryConnections(ctx, store.ConnectionQuery{AppID: w.app, Sort: tc.sort, Desc: tc.desc, Limit: 1, After: after})
				noErr(t, "QueryConnections page", err)
				if len(page) == 0 {
					break
				}
				paged = append(paged, page[0].ID)
				after = &store.ConnectionCursor{Key: store.ConnectionSortKey(page[0], tc.sort), ID: page[0].ID}
			}
			if !slices.Equal(paged, tc.want) {
				t.Errorf("sort %q desc %v paged = %v, want %v", tc.sort, tc.desc, paged, tc.want)
			}
		}
		got, err := s.QueryConnections(ctx, store.ConnectionQuery{AppID: w.app, Status: store.ConnectionRevoked})
		noErr(t, "QueryConnections status", err)
		if len(got) != 0 {
			t.Errorf("status filter revoked = %v", ids2(got))
		}
		for _, q := range []store.ConnectionQuery{{Sort: "created_at; DROP TABLE connections"}, {Status: "approved' OR '1'='1"}} {
			if _, err := s.QueryConnections(ctx, q); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("QueryConnections(%+v) = %v, want ErrInvalid", q, err)
			}
		}
	})
}

// testLedgerTransactions: a ledger change, its history and its queued
// tokens commit together or not at all; claims lease tokens.
func testLedgerTransactions(t *testing.T, s Store) {
	ctx := t.Context()
	t.Run("RollbackKeepsNothing", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, s)
		c := w.connection()
		noErr(t, "CreateConnection", s.CreateConnection(ctx, c))
		err := s.InTx(ctx, func(tx store.Tx) error {
			if err := tx.UpdateConnection(ctx, c.ID, func(x store.Connection) (store.Connection, error) {
				x.Status, x.RevokedAt = store.ConnectionRevoked, now()
				return x, nil
			}); err != nil {
				return err
			}
			e := newLedgerEvent(c.ID)
			if err := tx.AppendLedger(ctx, &e); err != nil {
				return err
			}
			d := newSET(c.ID)
			if err := tx.EnqueueSET(ctx, &d); err != nil {
				return err
			}
			return errBoom
		})
		wantErr(t, "InTx", err, errBoom)
		got, err := s.GetConnection(ctx, c.ID)
		noErr(t, "GetConnection", err)
		hist, err := s.ListLedger(ctx, store.LedgerFilter{ConnectionID: c.ID})
		noErr(t, "ListLedger", err)
		sets, err := s.ListSETs(ctx, store.SETFilter{ConnectionID: c.ID})
		noErr(t, "ListSETs", err)
		if got.Status != store.ConnectionApproved || len(hist) != 0 || len(sets) != 0 {
			t.Errorf("after rollback: status %s, %d history rows, %d tokens", got.Status, len(hist), len(sets))
		}
	})
	t.Run("ClaimLeases", func(t *testing.T) {
		t.Parallel()
		conn := newID("c")
		t0 := now()
		due, later := newSET(conn), newSET(conn)
		due.NextAttemptAt, later.NextAttemptAt = t0.Add(-time.Second), t0.Add(time.Hour)
		noErr(t, "EnqueueSET", s.EnqueueSET(ctx, &due))
		noErr(t, "EnqueueSET", s.EnqueueSET(ctx, &later))
		mine := func(ds []store.SETDelivery) (ids []int64) {
			for _, d := range ds {
				if d.ConnectionID == conn {
					ids = append(ids, d.ID)
				}
			}
			return ids
		}
		got, err := s.ClaimSETs(ctx, t0, time.Minute, 1000)
		noErr(t, "ClaimSETs", err)
		if !slices.Equal(mine(got), []int64{due.ID}) {
			t.Fatalf("first claim took %v of mine, want only the due %d", mine(got), due.ID)
		}
		got, err = s.ClaimSETs(ctx, t0.Add(30*time.Second), time.Minute, 1000)
		noErr(t, "ClaimSETs", err)
		if len(mine(got)) != 0 {
			t.Errorf("a claimed token was claimed again within its lease: %v", mine(got))
		}
		got, err = s.ClaimSETs(ctx, t0.Add(2*time.Minute), time.Minute, 1000)
		noErr(t, "ClaimSETs", err)
		if !slices.Equal(mine(got), []int64{due.ID}) {
			t.Errorf("after the lease: %v, want the due token again", mine(got))
		}
		if _, err := s.ClaimSETs(ctx, t0, 0, 10); err == nil {
			t.Error("a claim without a lease succeeded")
		}
	})
}
