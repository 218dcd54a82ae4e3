package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/openxaa/xaa/internal/store"
)

func newFence(iss, clientID, sub string, nb time.Time) store.Fence {
	return store.Fence{Issuer: iss, ClientID: clientID, Subject: sub, NotBefore: nb, RaisedAt: nb, Reason: "test"}
}

func testFences(t *testing.T, s store.Tx) {
	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		iss := newID("https://as.example")
		at := now()
		for name, f := range map[string]store.Fence{
			"both wildcards":  newFence(iss, "", "", at),
			"no not_before":   newFence(iss, "c", "u", time.Time{}),
			"no raised_at":    {Issuer: iss, ClientID: "c", Subject: "u", NotBefore: at},
			"no issuer":       newFence("", "c", "u", at),
			"client_id space": newFence(iss, "a b", "u", at),
			"subject control": newFence(iss, "c", "u\x01", at),
			"subject NUL":     newFence(iss, "c", "u\x00", at),
			"reason newline":  func() store.Fence { f := newFence(iss, "c", "u", at); f.Reason = "a\nb"; return f }(),
		} {
			_, _, err := s.RaiseFence(ctx, f)
			wantErr(t, "RaiseFence "+name, err, store.ErrInvalid)
		}
		fs, _, err := s.ListFences(ctx, iss, 0, 0)
		noErr(t, "ListFences", err)
		if len(fs) != 0 {
			t.Errorf("refused fences were stored: %+v", fs)
		}
	})

	// A later fence raises not_before and takes a new cursor; an earlier
	// or equal one changes nothing, not even the reason.
	t.Run("RaiseNeverLower", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		iss := newID("https://as.example")
		t0 := now()
		first, changed, err := s.RaiseFence(ctx, newFence(iss, "app", "alice", t0))
		noErr(t, "RaiseFence", err)
		want := store.Fence{Issuer: iss, ClientID: "app", Subject: "alice", NotBefore: t0, Reason: "test", CreatedAt: t0, RaisedAt: t0}
		if d := cmp.Diff(want, first, cmpopts.IgnoreFields(store.Fence{}, "Cursor")); d != "" || !changed || first.Cursor <= 0 {
			t.Fatalf("first fence changed=%v cursor=%d (-want +got):\n%s", changed, first.Cursor, d)
		}

		for name, nb := range map[string]time.Time{"earlier": t0.Add(-time.Hour), "equal": t0} {
			f := newFence(iss, "app", "alice", nb)
			f.Reason, f.RaisedAt = "lower "+name, t0.Add(time.Minute)
			got, changed, err := s.RaiseFence(ctx, f)
			noErr(t, "RaiseFence "+name, err)
			if d := cmp.Diff(first, got); d != "" || changed {
				t.Errorf("%s fence changed=%v (-want +got):\n%s", name, changed, d)
			}
		}

		f := newFence(iss, "app", "alice", t0.Add(time.Hour))
		f.Reason, f.RaisedAt = "raised", t0.Add(2*time.Minute)
		raised, changed, err := s.RaiseFence(ctx, f)
		noErr(t, "RaiseFence later", err)
		want = store.Fence{Issuer: iss, ClientID: "app", Subject: "alice", NotBefore: t0.Add(time.Hour), Reason: "raised",
			CreatedAt: t0, RaisedAt: t0.Add(2 * time.Minute)}
		if d := cmp.Diff(want, raised, cmpopts.IgnoreFields(store.Fence{}, "Cursor")); d != "" || !changed {
			t.Errorf("raised fence changed=%v (-want +got):\n%s", changed, d)
		}
		if raised.Cursor <= first.Cursor {
			t.Errorf("raise kept cursor %d (first %d); pollers past the first would miss it", raised.Cursor, first.Cursor)
		}
		fs, _, err := s.ListFences(ctx, iss, 0, 0)
		noErr(t, "ListFences", err)
		if d := cmp.Diff([]store.Fence{raised}, fs); d != "" {
			t.Errorf("ListFences (-want +got):\n%s", d)
		}
		nb, err := s.FenceNotBefore(ctx, iss, "app", "alice")
		noErr(t, "FenceNotBefore", err)
		if !nb.Equal(t0.Add(time.Hour)) {
			t.Errorf("FenceNotBefore = %v, want the raised %v", nb, t0.Add(time.Hour))
		}
	})

	// Wildcards: "" client covers every client of the subject, "" subject
	// every subject of the client; the latest covering fence wins.
	t.Run("Wildcards", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		iss := newID("https://as.example")
		t0 := now()
		for _, f := range []store.Fence{
			newFence(iss, "app1", "alice", t0.Add(1*time.Second)),
			newFence(iss, "", "bob", t0.Add(2*time.Second)),       // bob disabled
			newFence(iss, "app2", "", t0.Add(3*time.Second)),      // app2 revoked
			newFence(iss, "app2", "carol", t0.Add(5*time.Second)), // later than app2's wildcard
			newFence(iss, "app3", "dave", t0.Add(9*time.Second)),
		} {
			_, _, err := s.RaiseFence(ctx, f)
			noErr(t, "RaiseFence", err)
		}
		other := newID("https://as.example")
		_, _, err := s.RaiseFence(ctx, newFence(other, "", "erin", t0.Add(time.Hour)))
		noErr(t, "RaiseFence other issuer", err)

		for _, tc := range []struct {
			client, sub string
			want        time.Duration // 0: no fence
		}{
			{"app1", "alice", 1 * time.Second},
			{"app1", "bob", 2 * time.Second},
			{"app9", "bob", 2 * time.Second},
			{"app2", "bob", 3 * time.Second}, // both wildcards cover; the later wins
			{"app2", "alice", 3 * time.Second},
			{"app2", "carol", 5 * time.Second},
			{"app1", "carol", 0},
			{"app3", "alice", 0},
			{"app3", "dave", 9 * time.Second},
			{"app1", "erin", 0}, // fenced at another issuer only
			{"app1", "ALICE", 0},
			{"APP1", "alice", 0},
		} {
			nb, err := s.FenceNotBefore(ctx, iss, tc.client, tc.sub)
			noErr(t, "FenceNotBefore", err)
			want := time.Time{}
			if tc.want != 0 {
				want = t0.Add(tc.want)
			}
			if !nb.Equal(want) {
				t.Errorf("FenceNotBefore(%q, %q) = %v, want %v", tc.client, tc.sub, nb, want)
			}
			// Covers agrees with the store.
			fs, _, err := s.ListFences(ctx, iss, 0, 0)
			noErr(t, "ListFences", err)
			var latest time.Time
			for _, f := range fs {
				if f.Covers(tc.client, tc.sub) && f.NotBefore.After(latest) {
					latest = f.NotBefore
				}
			}
			if !latest.Equal(want) {
				t.Errorf("Covers over ListFences(%q, %q) = %v, want %v", tc.client, tc.sub, latest, want)
			}
		}
	})

	// Revoked tokens and fences share one cursor sequence, listed merged
	// in the order they were written, and resumable from any cursor.
	t.Run("RevocationList", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		iss := newID("https://as.example")
		at := now()
		var want []store.Revocation
		revoke := func() {
			tok := newToken()
			tok.Issuer, tok.Kind = iss, store.TokenKindAccessToken
			noErr(t, "RecordToken", s.RecordToken(ctx, tok))
			noErr(t, "RevokeToken", s.RevokeToken(ctx, iss, tok.JTI, at))
			want = append(want, store.Revocation{Token: &store.RevokedToken{JTI: tok.JTI, Resource: tok.Resource, RevokedAt: at}})
		}
		fence := func(client, sub string, nb time.Time) store.Fence {
			f, changed, err := s.RaiseFence(ctx, newFence(iss, client, sub, nb))
			noErr(t, "RaiseFence", err)
			if !changed {
				t.Fatalf("fence %s/%s not changed", client, sub)
			}
			return f
		}
		revoke()
		old := fence("app", "alice", at)
		revoke()
		f2 := fence("", "bob", at)
		want = append(want, store.Revocation{Fence: &f2})
		revoke()
		// Raising alice's fence moves it to the end of the list.
		f1 := fence("app", "alice", at.Add(time.Minute))
		want = append(want, store.Revocation{Fence: &f1})
		if f1.Cursor <= old.Cursor {
			t.Fatalf("raised cursor %d <= %d", f1.Cursor, old.Cursor)
		}
		// Another issuer's entries are not listed.
		_, _, err := s.RaiseFence(ctx, newFence(newID("https://as.example"), "app", "alice", at))
		noErr(t, "RaiseFence other issuer", err)

		ignoreCursor := cmp.Options{cmpopts.IgnoreFields(store.Revocation{}, "Cursor"), cmpopts.IgnoreFields(store.RevokedToken{}, "Cursor")}
		for _, limit := range []int{0, 1, 2, 5} {
			var got []store.Revocation
			cursor := int64(0)
			for page := 0; ; page++ {
				rs, next, err := s.ListRevocations(ctx, iss, cursor, limit)
				noErr(t, "ListRevocations", err)
				if page > len(want)+1 || (limit > 0 && len(rs) > limit) {
					t.Fatalf("limit %d: page %d has %d entries", limit, page, len(rs))
				}
				if len(rs) == 0 {
					if next != cursor {
						t.Errorf("an empty page moved the cursor from %d to %d", cursor, next)
					}
					break
				}
				if next != rs[len(rs)-1].Cursor {
					t.Errorf("next = %d, want the last entry's cursor %d", next, rs[len(rs)-1].Cursor)
				}
				for _, r := range rs {
					if (r.Token == nil) == (r.Fence == nil) {
						t.Fatalf("entry %+v must hold exactly one of Token and Fence", r)
					}
					if (r.Token != nil && r.Token.Cursor != r.Cursor) || (r.Fence != nil && r.Fence.Cursor != r.Cursor) {
						t.Errorf("entry cursor %d differs from its item's", r.Cursor)
					}
				}
				got = append(got, rs...)
				cursor = next
			}
			if d := cmp.Diff(want, got, ignoreCursor); d != "" {
				t.Errorf("limit %d: revocation list (-want +got):\n%s", limit, d)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Cursor <= got[i-1].Cursor {
					t.Errorf("cursors not increasing: %d then %d", got[i-1].Cursor, got[i].Cursor)
				}
			}
		}
		// Resuming after the raised fence's old cursor still finds it.
		rs, _, err := s.ListRevocations(ctx, iss, old.Cursor, 0)
		noErr(t, "ListRevocations", err)
		if len(rs) == 0 || rs[len(rs)-1].Fence == nil || !rs[len(rs)-1].Fence.NotBefore.Equal(f1.NotBefore) {
			t.Errorf("after the old cursor: %+v", rs)
		}
	})

	// Concurrent revocations and fences never commit a smaller cursor
	// after a poller has seen a larger one.
	t.Run("RevocationListConcurrent", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		iss := newID("https://as.example")
		const n = 16
		jtis := make([]string, n)
		for i := range jtis {
			tok := newToken()
			tok.Issuer, tok.Kind = iss, store.TokenKindAccessToken
			noErr(t, "RecordToken", s.RecordToken(ctx, tok))
			jtis[i] = tok.JTI
		}
		seen := map[string]bool{}
		var cursor int64
		poll := func() error {
			rs, next, err := s.ListRevocations(ctx, iss, cursor, 5)
			if err != nil {
				return err
			}
			for _, r := range rs {
				if r.Token != nil {
					seen[r.Token.JTI] = true
				} else {
					seen["fence:"+r.Fence.Subject] = true
				}
			}
			cursor = next
			return nil
		}
		errs := make(chan error, 2*n)
		for i, jti := range jtis {
			go func() { errs <- s.RevokeToken(ctx, iss, jti, now()) }()
			go func() {
				_, _, err := s.RaiseFence(ctx, newFence(iss, "", "user"+string(rune('a'+i)), now()))
				errs <- err
			}()
		}
		for done := 0; done < 2*n; {
			select {
			case err := <-errs:
				noErr(t, "revoke or fence", err)
				done++
			default:
				noErr(t, "ListRevocations", poll())
			}
		}
		for range 4 * n {
			noErr(t, "ListRevocations", poll())
		}
		if len(seen) != 2*n {
			t.Errorf("the poller saw %d of %d revocations and fences", len(seen), 2*n)
		}
	})
}

// testFenceTransactions: a fence and its audit record commit together or
// not at all.
func testFenceTransactions(t *testing.T, s Store) {
	ctx := t.Context()
	iss := newID("https://as.example")
	sub := newID("user")
	ev := newEvent("fence.raised", sub, "app")
	err := s.InTx(ctx, func(tx store.Tx) error {
		if _, _, err := tx.RaiseFence(ctx, newFence(iss, "app", sub, now())); err != nil {
			return err
		}
		if err := tx.AppendAudit(ctx, &ev); err != nil {
			return err
		}
		return errBoom
	})
	wantErr(t, "InTx", err, errBoom)
	nb, err := s.FenceNotBefore(ctx, iss, "app", sub)
	noErr(t, "FenceNotBefore", err)
	evs, err := s.ListAudit(ctx, store.AuditFilter{Subject: sub})
	noErr(t, "ListAudit", err)
	if !nb.IsZero() || len(evs) != 0 {
		t.Errorf("rolled back fence left not_before %v and %d audit records", nb, len(evs))
	}

	ev = newEvent("fence.raised", sub, "app")
	var got store.Fence
	err = s.InTx(ctx, func(tx store.Tx) (err error) {
		if got, _, err = tx.RaiseFence(ctx, newFence(iss, "app", sub, now())); err != nil {
			return err
		}
		// Inside the transaction the fence is already in force.
		nb, err := tx.FenceNotBefore(ctx, iss, "app", sub)
		if err != nil {
			return err
		}
		if !nb.Equal(got.NotBefore) {
			return errors.New("the fence is not visible inside its own transaction")
		}
		return tx.AppendAudit(ctx, &ev)
	})
	noErr(t, "InTx", err)
	nb, err = s.FenceNotBefore(ctx, iss, "app", sub)
	noErr(t, "FenceNotBefore", err)
	evs, err = s.ListAudit(ctx, store.AuditFilter{Subject: sub})
	noErr(t, "ListAudit", err)
	if !nb.Equal(got.NotBefore) || len(evs) != 1 {
		t.Errorf("committed fence: not_before %v (want %v), %d audit records", nb, got.NotBefore, len(evs))
	}
}

func (p perCallTx) RaiseFence(ctx context.Context, f store.Fence) (out store.Fence, changed bool, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { out, changed, err = tx.RaiseFence(ctx, f); return err })
	return out, changed, err
}

func (p perCallTx) FenceNotBefore(ctx context.Context, issuer, clientID, subject string) (nb time.Time, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { nb, err = tx.FenceNotBefore(ctx, issuer, clientID, subject); return err })
	return nb, err
}

func (p perCallTx) ListFences(ctx context.Context, issuer string, after int64, limit int) (fs []store.Fence, next int64, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { fs, next, err = tx.ListFences(ctx, issuer, after, limit); return err })
	return fs, next, err
}

func (p perCallTx) ListRevocations(ctx context.Context, issuer string, after int64, limit int) (rs []store.Revocation, next int64, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) {
		rs, next, err = tx.ListRevocations(ctx, issuer, after, limit)
		return err
	})
	return rs, next, err
}
