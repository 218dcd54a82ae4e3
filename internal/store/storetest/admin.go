package storetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/store"
)

func (p perCallTx) CreateAdminSession(ctx context.Context, s store.AdminSession) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.CreateAdminSession(ctx, s) })
}

func (p perCallTx) GetAdminSessionByDigest(ctx context.Context, digest []byte) (s store.AdminSession, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { s, err = tx.GetAdminSessionByDigest(ctx, digest); return err })
	return s, err
}

func (p perCallTx) RevokeAdminSession(ctx context.Context, id string, at time.Time) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.RevokeAdminSession(ctx, id, at) })
}

func (p perCallTx) PruneAdminSessions(ctx context.Context, before time.Time) (n int64, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { n, err = tx.PruneAdminSessions(ctx, before); return err })
	return n, err
}

func (p perCallTx) CreateAdminToken(ctx context.Context, t store.AdminToken) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.CreateAdminToken(ctx, t) })
}

func (p perCallTx) GetAdminTokenByDigest(ctx context.Context, digest []byte) (t store.AdminToken, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { t, err = tx.GetAdminTokenByDigest(ctx, digest); return err })
	return t, err
}

func (p perCallTx) GetAdminToken(ctx context.Context, id string) (t store.AdminToken, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { t, err = tx.GetAdminToken(ctx, id); return err })
	return t, err
}

func (p perCallTx) ListAdminTokens(ctx context.Context, at time.Time) (ts []store.AdminToken, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { ts, err = tx.ListAdminTokens(ctx, at); return err })
	return ts, err
}

func (p perCallTx) RevokeAdminToken(ctx context.Context, id string, at time.Time) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.RevokeAdminToken(ctx, id, at) })
}

func (p perCallTx) PruneAdminTokens(ctx context.Context, before time.Time) (n int64, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { n, err = tx.PruneAdminTokens(ctx, before); return err })
	return n, err
}

func randomDigest() []byte {
	var b [32]byte
	_, _ = rand.Read(b[:])
	d := sha256.Sum256(b[:])
	return d[:]
}

func testAdminSessions(t *testing.T, s store.Tx) {
	ctx := t.Context()
	u := newUser()
	noErr(t, "CreateUser", s.CreateUser(ctx, u))
	t0 := now()
	sess := store.AdminSession{ID: newID("as"), SecretDigest: randomDigest(), UserID: u.ID, CreatedAt: t0, ExpiresAt: t0.Add(15 * time.Minute)}
	noErr(t, "CreateAdminSession", s.CreateAdminSession(ctx, sess))
	got, err := s.GetAdminSessionByDigest(ctx, sess.SecretDigest)
	noErr(t, "GetAdminSessionByDigest", err)
	if diff := cmp.Diff(sess, got); diff != "" {
		t.Errorf("GetAdminSessionByDigest (-want +got):\n%s", diff)
	}

	dup := sess
	dup.ID = newID("as")
	wantErr(t, "CreateAdminSession with a used digest", s.CreateAdminSession(ctx, dup), store.ErrConflict)
	dup = sess
	dup.SecretDigest = randomDigest()
	wantErr(t, "CreateAdminSession with a used id", s.CreateAdminSession(ctx, dup), store.ErrConflict)
	ghost := store.AdminSession{ID: newID("as"), SecretDigest: randomDigest(), UserID: newID("u"), CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}
	wantErr(t, "CreateAdminSession of an unknown user", s.CreateAdminSession(ctx, ghost), store.ErrNotFound)
	_, err = s.GetAdminSessionByDigest(ctx, randomDigest())
	wantErr(t, "GetAdminSessionByDigest unknown", err, store.ErrNotFound)

	noErr(t, "RevokeAdminSession", s.RevokeAdminSession(ctx, sess.ID, t0.Add(time.Minute)))
	noErr(t, "RevokeAdminSession again", s.RevokeAdminSession(ctx, sess.ID, t0.Add(2*time.Minute)))
	got, err = s.GetAdminSessionByDigest(ctx, sess.SecretDigest)
	noErr(t, "GetAdminSessionByDigest", err)
	if !got.RevokedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("RevokedAt = %v, want the first revocation %v", got.RevokedAt, t0.Add(time.Minute))
	}
	wantErr(t, "RevokeAdminSession unknown", s.RevokeAdminSession(ctx, newID("as"), t0), store.ErrNotFound)

	// Pruning deletes this session only once it has expired.
	_, err = s.PruneAdminSessions(ctx, sess.ExpiresAt)
	noErr(t, "PruneAdminSessions", err)
	_, err = s.GetAdminSessionByDigest(ctx, sess.SecretDigest)
	noErr(t, "GetAdminSessionByDigest after an early prune", err)
	_, err = s.PruneAdminSessions(ctx, sess.ExpiresAt.Add(time.Millisecond))
	noErr(t, "PruneAdminSessions", err)
	_, err = s.GetAdminSessionByDigest(ctx, sess.SecretDigest)
	wantErr(t, "GetAdminSessionByDigest after prune", err, store.ErrNotFound)
}

func testAdminTokens(t *testing.T, s store.Tx) {
	ctx := t.Context()
	// Far in the future, so other subtests' tokens do not expire in between.
	t0 := now().Add(time.Duration(1000+randN(100000)) * time.Hour)
	tok := store.AdminToken{ID: newID("at"), SecretDigest: randomDigest(), Role: "approver", Description: "deploy bot",
		CreatedBy: "cli:root", CreatedAt: t0, ExpiresAt: t0.Add(15 * time.Minute)}
	noErr(t, "CreateAdminToken", s.CreateAdminToken(ctx, tok))
	got, err := s.GetAdminTokenByDigest(ctx, tok.SecretDigest)
	noErr(t, "GetAdminTokenByDigest", err)
	if diff := cmp.Diff(tok, got); diff != "" {
		t.Errorf("GetAdminTokenByDigest (-want +got):\n%s", diff)
	}
	got, err = s.GetAdminToken(ctx, tok.ID)
	noErr(t, "GetAdminToken", err)
	if diff := cmp.Diff(tok, got); diff != "" {
		t.Errorf("GetAdminToken (-want +got):\n%s", diff)
	}

	for _, c := range []struct {
		name string
		mod  func(*store.AdminToken)
		want error
	}{
		{"used digest", func(x *store.AdminToken) { x.ID = newID("at") }, store.ErrConflict},
		{"used id", func(x *store.AdminToken) { x.SecretDigest = randomDigest() }, store.ErrConflict},
		{"short digest", func(x *store.AdminToken) { x.ID, x.SecretDigest = newID("at"), []byte("secret") }, store.ErrInvalid},
		{"no role", func(x *store.AdminToken) { x.ID, x.SecretDigest, x.Role = newID("at"), randomDigest(), "" }, store.ErrInvalid},
		{"expires at creation", func(x *store.AdminToken) {
			x.ID, x.SecretDigest, x.ExpiresAt = newID("at"), randomDigest(), x.CreatedAt
		}, store.ErrInvalid},
	} {
		bad := tok
		c.mod(&bad)
		wantErr(t, "CreateAdminToken with "+c.name, s.CreateAdminToken(ctx, bad), c.want)
	}

	later := tok
	later.ID, later.SecretDigest, later.CreatedAt = newID("at"), randomDigest(), t0.Add(time.Minute)
	noErr(t, "CreateAdminToken", s.CreateAdminToken(ctx, later))
	list, err := s.ListAdminTokens(ctx, t0)
	noErr(t, "ListAdminTokens", err)
	pos := map[string]int{}
	for i, x := range list {
		pos[x.ID] = i + 1
	}
	if pos[tok.ID] == 0 || pos[later.ID] == 0 || pos[later.ID] > pos[tok.ID] {
		t.Errorf("ListAdminTokens: positions %d (later) and %d (earlier), want both listed, newest first", pos[later.ID], pos[tok.ID])
	}
	list, err = s.ListAdminTokens(ctx, tok.ExpiresAt.Add(time.Minute))
	noErr(t, "ListAdminTokens", err)
	for _, x := range list {
		if x.ID == tok.ID || x.ID == later.ID {
			t.Errorf("ListAdminTokens after expiry lists %s", x.ID)
		}
	}

	noErr(t, "RevokeAdminToken", s.RevokeAdminToken(ctx, tok.ID, t0.Add(time.Second)))
	noErr(t, "RevokeAdminToken again", s.RevokeAdminToken(ctx, tok.ID, t0.Add(time.Hour)))
	got, err = s.GetAdminToken(ctx, tok.ID)
	noErr(t, "GetAdminToken", err)
	if !got.RevokedAt.Equal(t0.Add(time.Second)) {
		t.Errorf("RevokedAt = %v, want the first revocation", got.RevokedAt)
	}
	wantErr(t, "RevokeAdminToken unknown", s.RevokeAdminToken(ctx, newID("at"), t0), store.ErrNotFound)
	_, err = s.GetAdminTokenByDigest(ctx, randomDigest())
	wantErr(t, "GetAdminTokenByDigest unknown", err, store.ErrNotFound)

	_, err = s.PruneAdminTokens(ctx, later.ExpiresAt.Add(time.Millisecond))
	noErr(t, "PruneAdminTokens", err)
	_, err = s.GetAdminToken(ctx, later.ID)
	wantErr(t, "GetAdminToken after prune", err, store.ErrNotFound)
}

func randN(n int64) int64 {
	v, _ := rand.Int(rand.Reader, big.NewInt(n))
	return v.Int64()
}

// directoryListStore is what the listing tests need.
type directoryListStore interface {
	store.Tx
	store.DirectoryLists
}

func testDirectoryLists(t *testing.T, s directoryListStore) {
	ctx := t.Context()
	// Rows of this test sort among themselves: a unique name prefix, and
	// creation times in a unique window far in the future. Positions just
	// before the window make pages independent of other subtests' rows.
	prefix := lower(newID("lst")) + "-"
	base := now().Add(time.Duration(100000+randN(1000000)) * time.Hour)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Millisecond) }
	before := &store.Position{Time: base.Add(-time.Millisecond), Text: prefix, ID: ""}
	after := &store.Position{Time: base.Add(time.Hour), Text: prefix + "~", ID: "~"}

	// Users: three in a group, one of them disabled; created in the order
	// c, a, b, so name and creation orders differ.
	grp := newGroup()
	noErr(t, "CreateGroup", s.CreateGroup(ctx, grp))
	users := map[string]store.User{}
	for i, n := range []string{"c", "a", "b"} {
		u := newUser()
		u.Username, u.CreatedAt, u.UpdatedAt, u.Disabled = prefix+n, at(i), at(10-i), n == "b"
		noErr(t, "CreateUser", s.CreateUser(ctx, u))
		noErr(t, "AddMember", s.AddMember(ctx, grp.Name, u.ID))
		users[n] = u
	}
	names := func(us []store.User) string {
		out := ""
		for _, u := range us {
			out += u.Username[len(prefix):]
		}
		return out
	}
	for _, c := range []struct {
		name string
		q    store.UserQuery
		want string
	}{
		{"by name", store.UserQuery{Group: grp.Name}, "abc"},
		{"by name, descending", store.UserQuery{Group: grp.Name, Page: store.Page{Desc: true}}, "cba"},
		{"by creation", store.UserQuery{Group: grp.Name, Page: store.Page{Sort: store.SortCreated}}, "cab"},
		{"by update, descending", store.UserQuery{Group: grp.Name, Page: store.Page{Sort: store.SortUpdated, Desc: true}}, "cab"},
		{"enabled only", store.UserQuery{Group: grp.Name, Disabled: store.No}, "ac"},
		{"disabled only", store.UserQuery{Group: grp.Name, Disabled: store.Yes}, "b"},
		{"limit", store.UserQuery{Group: grp.Name, Page: store.Page{Limit: 2}}, "ab"},
		{"after a", store.UserQuery{Group: grp.Name, Page: store.Page{After: &store.Position{Text: lower(prefix + "a"), ID: users["a"].ID}}}, "bc"},
		{"after b by creation", store.UserQuery{Group: grp.Name, Page: store.Page{Sort: store.SortCreated, After: &store.Position{Time: at(2), ID: users["b"].ID}}}, ""},
		{"after c by creation", store.UserQuery{Group: grp.Name, Page: store.Page{Sort: store.SortCreated, After: &store.Position{Time: at(0), ID: users["c"].ID}}}, "ab"},
		{"before the window", store.UserQuery{Page: store.Page{Sort: store.SortCreated, After: before, Limit: 3}}, "cab"},
		{"after the window, descending", store.UserQuery{Page: store.Page{Sort: store.SortCreated, Desc: true, After: after, Limit: 3}}, "bac"},
		{"empty group", store.UserQuery{Group: newGroup().Name}, ""},
	} {
		got, err := s.ListUsers(ctx, c.q)
		noErr(t, "ListUsers "+c.name, err)
		if n := names(got); n != c.want {
			t.Errorf("ListUsers %s = %q, want %q", c.name, n, c.want)
		}
	}
	got, err := s.ListUsers(ctx, store.UserQuery{Group: grp.Name, Page: store.Page{Limit: 1}})
	noErr(t, "ListUsers", err)
	if len(got) != 1 || cmp.Diff(users["a"], got[0]) != "" {
		t.Errorf("ListUsers returns %+v, want the stored user %+v", got, users["a"])
	}

	// Apps (clients of the IdP realm), groups and resources.
	var appIDs []string
	for i, n := range []string{"c", "a", "b"} {
		c := store.Client{ID: prefix + n, Name: "App " + fmt.Sprint(2-i), Realm: store.RealmIdP, AuthMethod: "client_secret_basic",
			SecretDigest: randomDigest(), RedirectURIs: []string{"https://app.example/cb"}, Disabled: n == "a", CreatedAt: at(i)}
		noErr(t, "CreateClient", s.CreateClient(ctx, c))
		appIDs = append(appIDs, c.ID)
	}
	// A client of another realm is not an app.
	noErr(t, "CreateClient", s.CreateClient(ctx, store.Client{ID: prefix + "aa", Realm: "https://as.example", AuthMethod: "client_secret_basic",
		SecretDigest: randomDigest(), CreatedAt: at(1)}))
	appNames := func(cs []store.Client) string {
		out := ""
		for _, c := range cs {
			out += c.ID[len(prefix):]
		}
		return out
	}
	for _, c := range []struct {
		name string
		q    store.AppQuery
		want string
	}{
		{"by id", store.AppQuery{Page: store.Page{After: before, Limit: 3}}, "abc"},
		{"by creation", store.AppQuery{Page: store.Page{Sort: store.SortCreated, After: before, Limit: 3}}, "cab"},
		{"by id, descending", store.AppQuery{Page: store.Page{Desc: true, After: &store.Position{Text: prefix + "d", ID: prefix + "d"}, Limit: 3}}, "cba"},
		{"enabled, by id", store.AppQuery{Disabled: store.No, Page: store.Page{After: before, Limit: 2}}, "bc"},
	} {
		got, err := s.ListApps(ctx, c.q)
		noErr(t, "ListApps "+c.name, err)
		if n := appNames(got); n != c.want {
			t.Errorf("ListApps %s = %q, want %q", c.name, n, c.want)
		}
	}
	apps, err := s.ListApps(ctx, store.AppQuery{Page: store.Page{After: before, Limit: 1}})
	noErr(t, "ListApps", err)
	if len(apps) != 1 || apps[0].ID != prefix+"a" || !apps[0].Disabled || apps[0].RedirectURIs[0] != "https://app.example/cb" {
		t.Errorf("ListApps = %+v, want app a as stored", apps)
	}

	for i, n := range []string{"c", "a", "b"} {
		g := store.Group{Name: prefix + n, Description: n, CreatedAt: at(i), UpdatedAt: at(i)}
		noErr(t, "CreateGroup", s.CreateGroup(ctx, g))
	}
	groups, err := s.ListGroupsPage(ctx, store.GroupQuery{Page: store.Page{After: before, Limit: 3}})
	noErr(t, "ListGroupsPage", err)
	gotGroups := ""
	for _, g := range groups {
		gotGroups += g.Description
	}
	if gotGroups != "abc" {
		t.Errorf("ListGroupsPage by name = %q, want abc", gotGroups)
	}

	as := newAuthServer(map[string]string{appIDs[0]: prefix + "there"})
	noErr(t, "CreateAuthServer", s.CreateAuthServer(ctx, as))
	for i, n := range []string{"b", "a"} {
		r := newResource(as.Issuer)
		r.Name, r.CreatedAt, r.UpdatedAt = n, at(i), at(i)
		noErr(t, "CreateResource", s.CreateResource(ctx, r))
	}
	for _, c := range []struct {
		sort string
		desc bool
		want string
	}{
		{store.SortName, false, "ab"},
		{store.SortName, true, "ba"},
		{store.SortCreated, false, "ba"},
		{store.SortUpdated, true, "ab"},
	} {
		rs, err := s.ListResources(ctx, store.ResourceQuery{AuthServer: as.Issuer, Page: store.Page{Sort: c.sort, Desc: c.desc}})
		noErr(t, "ListResources", err)
		got := ""
		for _, r := range rs {
			got += r.Name
		}
		if got != c.want {
			t.Errorf("ListResources by %s (desc %v) = %q, want %q", c.sort, c.desc, got, c.want)
		}
	}
	ids, err := s.AppClientIDs(ctx, appIDs[0])
	noErr(t, "AppClientIDs", err)
	if diff := cmp.Diff(map[string]string{as.Issuer: prefix + "there"}, ids); diff != "" {
		t.Errorf("AppClientIDs (-want +got):\n%s", diff)
	}

	// Bad pages are refused before any query runs.
	for _, p := range []store.Page{{Sort: "name; DROP TABLE users"}, {Sort: store.SortID}, {Limit: -1}, {Limit: 1001}} {
		if _, err := s.ListUsers(ctx, store.UserQuery{Page: p}); err == nil {
			t.Errorf("ListUsers with page %+v succeeded, want ErrInvalid", p)
		} else {
			wantErr(t, "ListUsers bad page", err, store.ErrInvalid)
		}
	}
	_, err = s.ListUsers(ctx, store.UserQuery{Disabled: 7})
	wantErr(t, "ListUsers bad tristate", err, store.ErrInvalid)
}
