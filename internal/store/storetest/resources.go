package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/store"
)

func testResources(t *testing.T, s store.Tx) {
	t.Run("CreateGetList", func(t *testing.T) {
		t.Parallel()
		as := newAuthServer(nil)
		noErr(t, "CreateAuthServer", s.CreateAuthServer(t.Context(), as))
		r1, r2 := newResource(as.Issuer), newResource(as.Issuer)
		for _, r := range []store.Resource{r1, r2} {
			noErr(t, "CreateResource", s.CreateResource(t.Context(), r))
			got, err := s.GetResource(t.Context(), r.URI)
			noErr(t, "GetResource", err)
			if diff := cmp.Diff(r, got); diff != "" {
				t.Errorf("GetResource (-want +got):\n%s", diff)
			}
		}
		list, err := s.ListResourcesByAuthServer(t.Context(), as.Issuer)
		noErr(t, "ListResourcesByAuthServer", err)
		want := []store.Resource{r1, r2}
		slices.SortFunc(want, func(x, y store.Resource) int { return compareStrings(x.URI, y.URI) })
		if diff := cmp.Diff(want, list); diff != "" {
			t.Errorf("ListResourcesByAuthServer (-want +got):\n%s", diff)
		}
		list, err = s.ListResourcesByAuthServer(t.Context(), newIssuer("/as"))
		noErr(t, "ListResourcesByAuthServer unknown", err)
		if len(list) != 0 {
			t.Errorf("resources of an unknown AS: %v", list)
		}
	})

	t.Run("ConflictAndNotFound", func(t *testing.T) {
		t.Parallel()
		as := newAuthServer(nil)
		noErr(t, "CreateAuthServer", s.CreateAuthServer(t.Context(), as))
		r := newResource(as.Issuer)
		noErr(t, "CreateResource", s.CreateResource(t.Context(), r))
		dup := r
		dup.Name = "impostor"
		wantErr(t, "CreateResource duplicate", s.CreateResource(t.Context(), dup), store.ErrConflict)
		orphan := newResource(newIssuer("/as"))
		wantErr(t, "CreateResource unknown AS", s.CreateResource(t.Context(), orphan), store.ErrNotFound)
		_, err := s.GetResource(t.Context(), orphan.URI)
		wantErr(t, "GetResource unknown", err, store.ErrNotFound)
		err = s.UpdateResource(t.Context(), orphan.URI, func(r store.Resource) (store.Resource, error) { return r, nil })
		wantErr(t, "UpdateResource unknown", err, store.ErrNotFound)
	})

	t.Run("Update", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, s)
		other := newAuthServer(nil)
		noErr(t, "CreateAuthServer", s.CreateAuthServer(t.Context(), other))
		cur, err := s.GetResource(t.Context(), w.resource)
		noErr(t, "GetResource", err)
		want := cur
		want.Name, want.AuthServerIssuer = "Renamed", other.Issuer
		want.Scopes = append(slices.Clone(cur.Scopes), store.ResourceScope{Name: "files:share"})
		want.UpdatedAt = cur.UpdatedAt.Add(time.Minute)
		noErr(t, "UpdateResource", s.UpdateResource(t.Context(), w.resource, func(store.Resource) (store.Resource, error) { return want, nil }))
		got, err := s.GetResource(t.Context(), w.resource)
		noErr(t, "GetResource", err)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("after UpdateResource (-want +got):\n%s", diff)
		}

		// Scopes a live connection grants cannot go; unused ones can.
		c := w.connection()
		noErr(t, "CreateConnection", s.CreateConnection(t.Context(), c))
		drop := func(name string) func(store.Resource) (store.Resource, error) {
			return func(r store.Resource) (store.Resource, error) {
				r.Scopes = slices.DeleteFunc(r.Scopes, func(s store.ResourceScope) bool { return s.Name == name })
				return r, nil
			}
		}
		wantErr(t, "UpdateResource dropping a granted scope", s.UpdateResource(t.Context(), w.resource, drop("files:write")), store.ErrConflict)
		noErr(t, "UpdateResource dropping an unused scope", s.UpdateResource(t.Context(), w.resource, drop("files:admin")))
		noErr(t, "revoke", s.UpdateConnection(t.Context(), c.ID, func(c store.Connection) (store.Connection, error) {
			c.Status, c.RevokedAt = store.ConnectionRevoked, now()
			return c, nil
		}))
		noErr(t, "UpdateResource dropping a scope only a revoked connection grants", s.UpdateResource(t.Context(), w.resource, drop("files:write")))

		for _, tc := range []struct {
			name string
			fn   func(store.Resource) (store.Resource, error)
			want error
		}{
			{"uri", func(r store.Resource) (store.Resource, error) { r.URI = newIssuer("/mcp"); return r, nil }, store.ErrInvalid},
			{"created", func(r store.Resource) (store.Resource, error) { r.CreatedAt = r.CreatedAt.Add(1); return r, nil }, store.ErrInvalid},
			{"unknown AS", func(r store.Resource) (store.Resource, error) { r.AuthServerIssuer = newIssuer("/as"); return r, nil }, store.ErrNotFound},
			{"no scopes", func(r store.Resource) (store.Resource, error) { r.Scopes = nil; return r, nil }, store.ErrInvalid},
			{"fn error", func(r store.Resource) (store.Resource, error) { return r, errBoom }, errBoom},
		} {
			wantErr(t, "UpdateResource "+tc.name, s.UpdateResource(t.Context(), w.resource, tc.fn), tc.want)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		as := newAuthServer(nil)
		noErr(t, "CreateAuthServer", s.CreateAuthServer(t.Context(), as))
		for _, tc := range []struct {
			name string
			mod  func(*store.Resource)
		}{
			{"not canonical", func(r *store.Resource) { r.URI = "HTTPS://files.example.com/mcp" }},
			{"fragment", func(r *store.Resource) { r.URI = "https://files.example.com/mcp#x" }},
			{"userinfo", func(r *store.Resource) { r.URI = "https://u@files.example.com/mcp" }},
			{"no scopes", func(r *store.Resource) { r.Scopes = nil }},
			{"duplicate scope", func(r *store.Resource) { r.Scopes = append(r.Scopes, r.Scopes[0]) }},
			{"scope with space", func(r *store.Resource) { r.Scopes[0].Name = "files read" }},
			{"scope with quote", func(r *store.Resource) { r.Scopes[0].Name = `files"read` }},
			{"zero time", func(r *store.Resource) { r.UpdatedAt = time.Time{} }},
		} {
			r := newResource(as.Issuer)
			tc.mod(&r)
			wantErr(t, "CreateResource "+tc.name, s.CreateResource(t.Context(), r), store.ErrInvalid)
		}
	})
}
