package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/openxaa/xaa/internal/store"
)

func testConnections(t *testing.T, s store.Tx) {
	t.Run("CreateGetFindList", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, s)
		c := w.connection()
		noErr(t, "CreateConnection", s.CreateConnection(t.Context(), c))
		got, err := s.GetConnection(t.Context(), c.ID)
		noErr(t, "GetConnection", err)
		if diff := cmp.Diff(c, got); diff != "" {
			t.Errorf("GetConnection (-want +got):\n%s", diff)
		}
		got, err = s.FindConnection(t.Context(), w.app, w.resource)
		noErr(t, "FindConnection", err)
		if diff := cmp.Diff(c, got); diff != "" {
			t.Errorf("FindConnection (-want +got):\n%s", diff)
		}
		list, err := s.ListConnections(t.Context(), store.ConnectionFilter{AppID: w.app})
		noErr(t, "ListConnections", err)
		if diff := cmp.Diff([]store.Connection{c}, list); diff != "" {
			t.Errorf("ListConnections (-want +got):\n%s", diff)
		}

		// A pending request with nothing granted yet, no expiry, no step-up.
		w2 := newWorld(t, s)
		p := w2.connection()
		p.GroupScopes, p.StepUp, p.Status, p.Approver, p.ExpiresAt, p.IncludeEmail = nil, nil, store.ConnectionPending, "", time.Time{}, false
		noErr(t, "CreateConnection pending", s.CreateConnection(t.Context(), p))
		got, err = s.GetConnection(t.Context(), p.ID)
		noErr(t, "GetConnection pending", err)
		if diff := cmp.Diff(p, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("GetConnection pending (-want +got):\n%s", diff)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, s)
		_, err := s.GetConnection(t.Context(), newID("c"))
		wantErr(t, "GetConnection", err, store.ErrNotFound)
		_, err = s.FindConnection(t.Context(), w.app, w.resource)
		wantErr(t, "FindConnection", err, store.ErrNotFound)
		err = s.UpdateConnection(t.Context(), newID("c"), func(c store.Connection) (store.Connection, error) { return c, nil })
		wantErr(t, "UpdateConnection", err, store.ErrNotFound)
		for _, tc := range []struct {
			name string
			mod  func(*store.Connection)
		}{
			{"unknown app", func(c *store.Connection) { c.AppID = newID("app") }},
			{"unknown resource", func(c *store.Connection) { c.ResourceURI = newIssuer("/mcp") }},
			{"unknown group", func(c *store.Connection) { c.GroupScopes[0].Group = newID("grp") }},
		} {
			c := w.connection()
			tc.mod(&c)
			wantErr(t, "CreateConnection "+tc.name, s.CreateConnection(t.Context(), c), store.ErrNotFound)
		}
		list, err := s.ListConnections(t.Context(), store.ConnectionFilter{AppID: w.app, IncludeRevoked: true})
		noErr(t, "ListConnections", err)
		if len(list) != 0 {
			t.Errorf("failed creates left %d connections", len(list))
		}
	})

	t.Run("OneLivePerAppAndResource", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, s)
		first := w.connection()
		noErr(t, "CreateConnection", s.CreateConnection(t.Context(), first))
		for _, st := range []store.ConnectionStatus{store.ConnectionApproved, store.ConnectionPending, store.ConnectionSuspended} {
			second := w.connection()
			second.Status = st
			wantErr(t, "CreateConnection second "+string(st), s.CreateConnection(t.Context(), second), store.ErrConflict)
		}
		dupID := w.connection()
		dupID.ID = first.ID
		dupID.ResourceURI = newWorldResource(t, s, w)
		wantErr(t, "CreateConnection duplicate id", s.CreateConnection(t.Context(), dupID), store.ErrConflict)

		// Suspension keeps the slot; revocation frees it.
		setStatus(t, s, first.ID, store.ConnectionSuspended)
		wantErr(t, "CreateConnection while suspended", s.CreateConnection(t.Context(), w.connection()), store.ErrConflict)
		setStatus(t, s, first.ID, store.ConnectionRevoked)
		_, err := s.FindConnection(t.Context(), w.app, w.resource)
		wantErr(t, "FindConnection after revoke", err, store.ErrNotFound)
		second := w.connection()
		second.CreatedAt = first.CreatedAt.Add(time.Millisecond)
		second.UpdatedAt = second.CreatedAt
		noErr(t, "CreateConnection after revoke", s.CreateConnection(t.Context(), second))
		got, err := s.FindConnection(t.Context(), w.app, w.resource)
		noErr(t, "FindConnection", err)
		if got.ID != second.ID {
			t.Errorf("FindConnection = %s, want the new connection %s", got.ID, second.ID)
		}
		live, err := s.ListConnections(t.Context(), store.ConnectionFilter{AppID: w.app, ResourceURI: w.resource})
		noErr(t, "ListConnections", err)
		all, err := s.ListConnections(t.Context(), store.ConnectionFilter{ResourceURI: w.resource, IncludeRevoked: true})
		noErr(t, "ListConnections with revoked", err)
		ids := func(cs []store.Connection) (out []string) {
			for _, c := range cs {
				out = append(out, c.ID)
			}
			return out
		}
		if diff := cmp.Diff([]string{second.ID}, ids(live)); diff != "" {
			t.Errorf("live connections (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{first.ID, second.ID}, ids(all)); diff != "" {
			t.Errorf("all connections, oldest first (-want +got):\n%s", diff)
		}
	})

	t.Run("OneLiveUnderConcurrency", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, s)
		const n = 4
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = s.CreateConnection(t.Context(), w.connection()) })
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("concurrent CreateConnection: %v, want nil or ErrConflict", err)
			}
		}
		if won != 1 {
			t.Errorf("%d concurrent creates succeeded, want exactly 1", won)
		}
	})

	t.Run("Update", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, s)
		c := w.connection()
		c.Status, c.Approver = store.ConnectionPending, ""
		noErr(t, "CreateConnection", s.CreateConnection(t.Context(), c))
		want := c
		want.Status, want.Approver = store.ConnectionApproved, "ciso@example.com"
		want.GroupScopes = []store.GroupScopes{{Group: w.eng, Scopes: []string{"files:admin", "files:write"}}}
		want.StepUp = []store.StepUpRule{{Scope: "files:admin", MaxAge: time.Minute}}
		want.IDJAGLifetime, want.AccessTokenLifetime = 60*time.Second, 60*time.Second
		want.IncludeEmail, want.ExpiresAt = false, time.Time{}
		want.UpdatedAt = c.UpdatedAt.Add(time.Minute)
		noErr(t, "UpdateConnection", s.UpdateConnection(t.Context(), c.ID, func(store.Connection) (store.Connection, error) { return want, nil }))
		got, err := s.GetConnection(t.Context(), c.ID)
		noErr(t, "GetConnection", err)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("after UpdateConnection (-want +got):\n%s", diff)
		}

		other := newWorld(t, s)
		for _, tc := range []struct {
			name string
			fn   func(store.Connection) (store.Connection, error)
			want error
		}{
			{"id", func(c store.Connection) (store.Connection, error) { c.ID = newID("c"); return c, nil }, store.ErrInvalid},
			{"app", func(c store.Connection) (store.Connection, error) { c.AppID = other.app; return c, nil }, store.ErrInvalid},
			{"resource", func(c store.Connection) (store.Connection, error) { c.ResourceURI = other.resource; return c, nil }, store.ErrInvalid},
			{"created", func(c store.Connection) (store.Connection, error) { c.CreatedAt = c.CreatedAt.Add(1); return c, nil }, store.ErrInvalid},
			{"scope not on resource", func(c store.Connection) (store.Connection, error) {
				c.GroupScopes[0].Scopes = append(c.GroupScopes[0].Scopes, "files:delete")
				return c, nil
			}, store.ErrInvalid},
			{"unknown group", func(c store.Connection) (store.Connection, error) {
				c.GroupScopes[0].Group = newID("grp")
				return c, nil
			}, store.ErrNotFound},
			{"fn error", func(c store.Connection) (store.Connection, error) {
				c.Status = store.ConnectionSuspended
				return c, errBoom
			}, errBoom},
		} {
			wantErr(t, "UpdateConnection "+tc.name, s.UpdateConnection(t.Context(), c.ID, tc.fn), tc.want)
		}
		got, err = s.GetConnection(t.Context(), c.ID)
		noErr(t, "GetConnection", err)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("refused updates changed the connection (-want +got):\n%s", diff)
		}

		setStatus(t, s, c.ID, store.ConnectionRevoked)
		err = s.UpdateConnection(t.Context(), c.ID, func(c store.Connection) (store.Connection, error) {
			c.Status, c.RevokedAt = store.ConnectionApproved, time.Time{}
			return c, nil
		})
		wantErr(t, "UpdateConnection un-revoke", err, store.ErrInvalid)
		noErr(t, "UpdateConnection of a revoked one's justification", s.UpdateConnection(t.Context(), c.ID,
			func(c store.Connection) (store.Connection, error) { c.Justification = "audit note"; return c, nil }))
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, s)
		for _, tc := range []struct {
			name string
			mod  func(*store.Connection)
		}{
			{"empty id", func(c *store.Connection) { c.ID = "" }},
			{"scope not on resource", func(c *store.Connection) { c.GroupScopes[0].Scopes = []string{"mail:read"} }},
			{"no groups when approved", func(c *store.Connection) { c.GroupScopes, c.StepUp = nil, nil }},
			{"group without scopes", func(c *store.Connection) { c.GroupScopes[0].Scopes = nil }},
			{"group twice", func(c *store.Connection) { c.GroupScopes[1].Group = c.GroupScopes[0].Group }},
			{"scope twice in a group", func(c *store.Connection) { c.GroupScopes[1].Scopes = []string{"files:read", "files:read"} }},
			{"step-up for a scope not granted", func(c *store.Connection) { c.StepUp[0].Scope = "files:admin" }},
			{"step-up twice", func(c *store.Connection) { c.StepUp = append(c.StepUp, c.StepUp[0]) }},
			{"step-up empty", func(c *store.Connection) { c.StepUp[0].ACR, c.StepUp[0].MaxAge = "", 0 }},
			{"step-up fractional max_age", func(c *store.Connection) { c.StepUp[0].MaxAge = 1500 * time.Millisecond }},
			{"step-up negative max_age", func(c *store.Connection) { c.StepUp[0].MaxAge = -time.Second }},
			{"step-up acr with space", func(c *store.Connection) { c.StepUp[0].ACR = "a b" }},
			{"zero ID-JAG lifetime", func(c *store.Connection) { c.IDJAGLifetime = 0 }},
			{"ID-JAG lifetime over 600 s", func(c *store.Connection) { c.IDJAGLifetime, c.AccessTokenLifetime = 601*time.Second, 900*time.Second }},
			{"access token shorter than ID-JAG", func(c *store.Connection) { c.AccessTokenLifetime = c.IDJAGLifetime - time.Second }},
			{"access token over 3600 s", func(c *store.Connection) { c.AccessTokenLifetime = 3601 * time.Second }},
			{"fractional lifetime", func(c *store.Connection) { c.IDJAGLifetime = 300500 * time.Millisecond }},
			{"unknown status", func(c *store.Connection) { c.Status = "active" }},
			{"approved without approver", func(c *store.Connection) { c.Approver = " " }},
			{"revoked without time", func(c *store.Connection) { c.Status = store.ConnectionRevoked }},
			{"revoked time while approved", func(c *store.Connection) { c.RevokedAt = now() }},
			{"expires before created", func(c *store.Connection) { c.ExpiresAt = c.CreatedAt.Add(-time.Second) }},
			{"not canonical resource", func(c *store.Connection) { c.ResourceURI = "HTTPS" + c.ResourceURI[5:] }},
			{"zero created", func(c *store.Connection) { c.CreatedAt = time.Time{} }},
		} {
			c := w.connection()
			tc.mod(&c)
			wantErr(t, "CreateConnection "+tc.name, s.CreateConnection(t.Context(), c), store.ErrInvalid)
		}
	})
}

// newWorldResource adds another resource under w's AS and returns its URI.
func newWorldResource(t *testing.T, s store.Tx, w world) string {
	t.Helper()
	r := newResource(w.issuer)
	noErr(t, "CreateResource", s.CreateResource(t.Context(), r))
	return r.URI
}

func setStatus(t *testing.T, s store.Tx, id string, st store.ConnectionStatus) {
	t.Helper()
	noErr(t, "UpdateConnection to "+string(st), s.UpdateConnection(t.Context(), id, func(c store.Connection) (store.Connection, error) {
		c.Status = st
		if st == store.ConnectionRevoked {
			c.RevokedAt = now()
		}
		return c, nil
	}))
}

// testDirectoryTransactions checks that directory writes commit together
// or not at all, and that a refused write does not poison the transaction.
func testDirectoryTransactions(t *testing.T, s Store) {
	// build writes a whole small organisation.
	type org struct {
		u   store.User
		g   store.Group
		w   world
		c   store.Connection
		app string
	}
	build := func(ctx context.Context, tx store.Tx, o *org) error {
		o.u, o.g = newUser(), newGroup()
		if err := tx.CreateUser(ctx, o.u); err != nil {
			return err
		}
		if err := tx.CreateGroup(ctx, o.g); err != nil {
			return err
		}
		if err := tx.AddMember(ctx, o.g.Name, o.u.ID); err != nil {
			return err
		}
		d := []byte("0123456789abcdef0123456789abcdef")
		o.app = newID("app")
		if err := tx.CreateClient(ctx, store.Client{ID: o.app, Realm: store.RealmIdP, AuthMethod: "client_secret_post", SecretDigest: d, CreatedAt: now()}); err != nil {
			return err
		}
		as := newAuthServer(map[string]string{o.app: "there"})
		if err := tx.CreateAuthServer(ctx, as); err != nil {
			return err
		}
		r := newResource(as.Issuer)
		if err := tx.CreateResource(ctx, r); err != nil {
			return err
		}
		o.w = world{app: o.app, issuer: as.Issuer, resource: r.URI, staff: o.g.Name, eng: o.g.Name}
		o.c = o.w.connection()
		o.c.GroupScopes = o.c.GroupScopes[:1]
		o.c.StepUp = nil
		return tx.CreateConnection(ctx, o.c)
	}
	// present counts which of the org's rows are visible.
	present := func(t *testing.T, o *org) int {
		t.Helper()
		n := 0
		count := func(err error) {
			t.Helper()
			switch {
			case err == nil:
				n++
			case !errors.Is(err, store.ErrNotFound):
				t.Fatalf("read: %v", err)
			}
		}
		_, err := s.GetUser(t.Context(), o.u.ID)
		count(err)
		gs, err := s.UserGroups(t.Context(), o.u.ID)
		noErr(t, "UserGroups", err)
		n += len(gs)
		_, err = s.GetClient(t.Context(), store.RealmIdP, o.app)
		count(err)
		_, err = s.GetAuthServer(t.Context(), o.w.issuer)
		count(err)
		_, err = s.GetResource(t.Context(), o.w.resource)
		count(err)
		_, err = s.GetConnection(t.Context(), o.c.ID)
		count(err)
		groups, err := s.ListGroups(t.Context())
		noErr(t, "ListGroups", err)
		for _, g := range groups {
			if g.Name == o.g.Name {
				n++
			}
		}
		return n
	}

	t.Run("CommitIsVisible", func(t *testing.T) {
		t.Parallel()
		var o org
		noErr(t, "InTx", s.InTx(t.Context(), func(tx store.Tx) error { return build(t.Context(), tx, &o) }))
		if n := present(t, &o); n != 7 {
			t.Errorf("after commit %d of 7 rows are visible", n)
		}
	})

	t.Run("ErrorRollsBackEverything", func(t *testing.T) {
		t.Parallel()
		var o org
		err := s.InTx(t.Context(), func(tx store.Tx) error {
			if err := build(t.Context(), tx, &o); err != nil {
				return err
			}
			return errBoom
		})
		wantErr(t, "InTx", err, errBoom)
		if n := present(t, &o); n != 0 {
			t.Errorf("after rollback %d rows are visible, want 0", n)
		}
	})

	t.Run("ContinueAfterRefusal", func(t *testing.T) {
		t.Parallel()
		existing := newUser()
		noErr(t, "CreateUser", s.CreateUser(t.Context(), existing))
		var o org
		err := s.InTx(t.Context(), func(tx store.Tx) error {
			if err := build(t.Context(), tx, &o); err != nil {
				return err
			}
			// Each refusal is reported and the transaction goes on.
			dup := newUser()
			dup.Username = existing.Username
			if err := tx.CreateUser(t.Context(), dup); !errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("duplicate username: got %v, want ErrConflict", err)
			}
			second := o.c
			second.ID = newID("c")
			if err := tx.CreateConnection(t.Context(), second); !errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("second live connection: got %v, want ErrConflict", err)
			}
			if err := tx.AddMember(t.Context(), o.g.Name, o.u.ID); !errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("second membership: got %v, want ErrConflict", err)
			}
			if err := tx.AddMember(t.Context(), newID("grp"), o.u.ID); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("unknown group: got %v, want ErrNotFound", err)
			}
			if err := tx.SetAppClientID(t.Context(), o.w.issuer, newID("app"), "x"); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("unknown app: got %v, want ErrNotFound", err)
			}
			if err := tx.UpdateUser(t.Context(), o.u.ID, func(u store.User) (store.User, error) {
				u.Username = existing.Username
				return u, nil
			}); !errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("rename to a taken username: got %v, want ErrConflict", err)
			}
			return nil
		})
		noErr(t, "InTx", err)
		if n := present(t, &o); n != 7 {
			t.Errorf("after commit %d of 7 rows are visible", n)
		}
	})
}
