package storetest

import (
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/store"
)

func testGroups(t *testing.T, s store.Tx) {
	t.Run("CreateListUpdate", func(t *testing.T) {
		t.Parallel()
		g := newGroup()
		noErr(t, "CreateGroup", s.CreateGroup(t.Context(), g))
		wantErr(t, "CreateGroup duplicate", s.CreateGroup(t.Context(), g), store.ErrConflict)
		want := g
		want.Description, want.UpdatedAt = "Renamed", g.UpdatedAt.Add(time.Hour)
		noErr(t, "UpdateGroup", s.UpdateGroup(t.Context(), g.Name, func(store.Group) (store.Group, error) { return want, nil }))
		gs, err := s.ListGroups(t.Context())
		noErr(t, "ListGroups", err)
		if !sort.SliceIsSorted(gs, func(i, j int) bool { return gs[i].Name < gs[j].Name }) {
			t.Error("ListGroups is not sorted by name")
		}
		i := slices.IndexFunc(gs, func(x store.Group) bool { return x.Name == g.Name })
		if i < 0 {
			t.Fatalf("ListGroups lacks %s", g.Name)
		}
		if diff := cmp.Diff(want, gs[i]); diff != "" {
			t.Errorf("listed group (-want +got):\n%s", diff)
		}
		for _, tc := range []struct {
			name string
			fn   func(store.Group) (store.Group, error)
			want error
		}{
			{"rename", func(g store.Group) (store.Group, error) { g.Name = newID("grp"); return g, nil }, store.ErrInvalid},
			{"created", func(g store.Group) (store.Group, error) { g.CreatedAt = time.Time{}; return g, nil }, store.ErrInvalid},
			{"fn error", func(g store.Group) (store.Group, error) { return g, errBoom }, errBoom},
		} {
			wantErr(t, "UpdateGroup "+tc.name, s.UpdateGroup(t.Context(), g.Name, tc.fn), tc.want)
		}
		err = s.UpdateGroup(t.Context(), newID("grp"), func(g store.Group) (store.Group, error) { return g, nil })
		wantErr(t, "UpdateGroup unknown", err, store.ErrNotFound)
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		for _, name := range []string{"", "Staff", "-eng", "eng team", "ëng", "a/b", string(make([]byte, 65))} {
			g := newGroup()
			g.Name = name
			wantErr(t, "CreateGroup "+name, s.CreateGroup(t.Context(), g), store.ErrInvalid)
		}
		g := newGroup()
		g.CreatedAt = time.Time{}
		wantErr(t, "CreateGroup zero time", s.CreateGroup(t.Context(), g), store.ErrInvalid)
	})

	t.Run("Members", func(t *testing.T) {
		t.Parallel()
		u, other := newUser(), newUser()
		a, b := newGroup(), newGroup()
		a.Name, b.Name = "b-"+a.Name, "a-"+b.Name // b sorts first
		noErr(t, "CreateUser", s.CreateUser(t.Context(), u))
		noErr(t, "CreateUser", s.CreateUser(t.Context(), other))
		noErr(t, "CreateGroup", s.CreateGroup(t.Context(), a))
		noErr(t, "CreateGroup", s.CreateGroup(t.Context(), b))

		gs, err := s.UserGroups(t.Context(), u.ID)
		noErr(t, "UserGroups", err)
		if len(gs) != 0 {
			t.Errorf("UserGroups of a new user = %v", gs)
		}
		noErr(t, "AddMember a", s.AddMember(t.Context(), a.Name, u.ID))
		noErr(t, "AddMember b", s.AddMember(t.Context(), b.Name, u.ID))
		noErr(t, "AddMember other", s.AddMember(t.Context(), a.Name, other.ID))
		wantErr(t, "AddMember again", s.AddMember(t.Context(), a.Name, u.ID), store.ErrConflict)
		wantErr(t, "AddMember unknown group", s.AddMember(t.Context(), newID("grp"), u.ID), store.ErrNotFound)
		wantErr(t, "AddMember unknown user", s.AddMember(t.Context(), a.Name, newID("u")), store.ErrNotFound)

		gs, err = s.UserGroups(t.Context(), u.ID)
		noErr(t, "UserGroups", err)
		if diff := cmp.Diff([]string{b.Name, a.Name}, gs); diff != "" {
			t.Errorf("UserGroups (-want +got):\n%s", diff)
		}
		noErr(t, "RemoveMember", s.RemoveMember(t.Context(), a.Name, u.ID))
		wantErr(t, "RemoveMember again", s.RemoveMember(t.Context(), a.Name, u.ID), store.ErrNotFound)
		wantErr(t, "RemoveMember unknown", s.RemoveMember(t.Context(), newID("grp"), u.ID), store.ErrNotFound)
		gs, err = s.UserGroups(t.Context(), u.ID)
		noErr(t, "UserGroups", err)
		if diff := cmp.Diff([]string{b.Name}, gs); diff != "" {
			t.Errorf("UserGroups after remove (-want +got):\n%s", diff)
		}
		gs, err = s.UserGroups(t.Context(), other.ID)
		noErr(t, "UserGroups other", err)
		if diff := cmp.Diff([]string{a.Name}, gs); diff != "" {
			t.Errorf("removing one member touched another (-want +got):\n%s", diff)
		}
		gs, err = s.UserGroups(t.Context(), newID("u"))
		noErr(t, "UserGroups unknown user", err)
		if len(gs) != 0 {
			t.Errorf("UserGroups of an unknown user = %v", gs)
		}
	})
}
