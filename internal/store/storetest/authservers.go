package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/openxaa/xaa/internal/store"
)

func testAuthServers(t *testing.T, s store.Tx) {
	t.Run("CreateGetList", func(t *testing.T) {
		t.Parallel()
		a1, a2 := newApp(t, s), newApp(t, s)
		as := newAuthServer(map[string]string{a1: "one-there", a2: "two-there"})
		noErr(t, "CreateAuthServer", s.CreateAuthServer(t.Context(), as))
		got, err := s.GetAuthServer(t.Context(), as.Issuer)
		noErr(t, "GetAuthServer", err)
		if diff := cmp.Diff(as, got); diff != "" {
			t.Errorf("GetAuthServer (-want +got):\n%s", diff)
		}
		there, err := s.AppClientID(t.Context(), as.Issuer, a2)
		noErr(t, "AppClientID", err)
		if there != "two-there" {
			t.Errorf("AppClientID = %q, want two-there", there)
		}
		bare := newAuthServer(nil)
		noErr(t, "CreateAuthServer without apps", s.CreateAuthServer(t.Context(), bare))
		all, err := s.ListAuthServers(t.Context())
		noErr(t, "ListAuthServers", err)
		if !slices.IsSortedFunc(all, func(x, y store.AuthServer) int { return compareStrings(x.Issuer, y.Issuer) }) {
			t.Error("ListAuthServers is not sorted by issuer")
		}
		for _, want := range []store.AuthServer{as, bare} {
			i := slices.IndexFunc(all, func(x store.AuthServer) bool { return x.Issuer == want.Issuer })
			if i < 0 {
				t.Fatalf("ListAuthServers lacks %s", want.Issuer)
			}
			if diff := cmp.Diff(want, all[i], cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("listed AS (-want +got):\n%s", diff)
			}
		}
	})

	t.Run("ConflictAndNotFound", func(t *testing.T) {
		t.Parallel()
		app, other := newApp(t, s), newApp(t, s)
		as := newAuthServer(map[string]string{app: "taken"})
		noErr(t, "CreateAuthServer", s.CreateAuthServer(t.Context(), as))
		dup := as
		dup.Name = "impostor"
		wantErr(t, "CreateAuthServer duplicate", s.CreateAuthServer(t.Context(), dup), store.ErrConflict)
		wantErr(t, "SetAppClientID taken client_id", s.SetAppClientID(t.Context(), as.Issuer, other, "taken"), store.ErrConflict)
		wantErr(t, "SetAppClientID unknown AS", s.SetAppClientID(t.Context(), newIssuer("/as"), app, "x"), store.ErrNotFound)
		wantErr(t, "SetAppClientID unknown app", s.SetAppClientID(t.Context(), as.Issuer, newID("app"), "x"), store.ErrNotFound)
		_, err := s.AppClientID(t.Context(), as.Issuer, other)
		wantErr(t, "AppClientID without mapping", err, store.ErrNotFound)
		_, err = s.GetAuthServer(t.Context(), newIssuer("/as"))
		wantErr(t, "GetAuthServer unknown", err, store.ErrNotFound)

		// A failed create writes nothing.
		orphan := newAuthServer(map[string]string{newID("app"): "x"})
		wantErr(t, "CreateAuthServer unknown app", s.CreateAuthServer(t.Context(), orphan), store.ErrNotFound)
		_, err = s.GetAuthServer(t.Context(), orphan.Issuer)
		wantErr(t, "GetAuthServer after failed create", err, store.ErrNotFound)

		err = s.UpdateAuthServer(t.Context(), newIssuer("/as"), func(a store.AuthServer) (store.AuthServer, error) { return a, nil })
		wantErr(t, "UpdateAuthServer unknown", err, store.ErrNotFound)
	})

	t.Run("SetAppClientID", func(t *testing.T) {
		t.Parallel()
		app := newApp(t, s)
		as := newAuthServer(nil)
		noErr(t, "CreateAuthServer", s.CreateAuthServer(t.Context(), as))
		for _, there := range []string{"first", "second", "second"} {
			noErr(t, "SetAppClientID "+there, s.SetAppClientID(t.Context(), as.Issuer, app, there))
			got, err := s.AppClientID(t.Context(), as.Issuer, app)
			noErr(t, "AppClientID", err)
			if got != there {
				t.Errorf("AppClientID = %q, want %q", got, there)
			}
		}
		wantErr(t, "SetAppClientID empty", s.SetAppClientID(t.Context(), as.Issuer, app, ""), store.ErrInvalid)
	})

	t.Run("Update", func(t *testing.T) {
		t.Parallel()
		a1, a2, a3 := newApp(t, s), newApp(t, s), newApp(t, s)
		as := newAuthServer(map[string]string{a1: "x", a2: "y", a3: "z"})
		noErr(t, "CreateAuthServer", s.CreateAuthServer(t.Context(), as))
		want := as
		want.Name = "Renamed"
		want.UpdatedAt = as.UpdatedAt.Add(time.Minute)
		want.ClientIDs = map[string]string{a1: "y", a2: "x"} // swapped, a3 removed
		noErr(t, "UpdateAuthServer", s.UpdateAuthServer(t.Context(), as.Issuer, func(store.AuthServer) (store.AuthServer, error) {
			return want, nil
		}))
		got, err := s.GetAuthServer(t.Context(), as.Issuer)
		noErr(t, "GetAuthServer", err)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("after UpdateAuthServer (-want +got):\n%s", diff)
		}
		for _, tc := range []struct {
			name string
			fn   func(store.AuthServer) (store.AuthServer, error)
			want error
		}{
			{"issuer", func(a store.AuthServer) (store.AuthServer, error) { a.Issuer = newIssuer("/as"); return a, nil }, store.ErrInvalid},
			{"created", func(a store.AuthServer) (store.AuthServer, error) { a.CreatedAt = a.CreatedAt.Add(1); return a, nil }, store.ErrInvalid},
			{"shared client_id", func(a store.AuthServer) (store.AuthServer, error) { a.ClientIDs[a1] = "x"; return a, nil }, store.ErrInvalid},
			{"unknown app", func(a store.AuthServer) (store.AuthServer, error) { a.ClientIDs[newID("app")] = "w"; return a, nil }, store.ErrNotFound},
			{"fn error", func(a store.AuthServer) (store.AuthServer, error) { delete(a.ClientIDs, a1); return a, errBoom }, errBoom},
		} {
			wantErr(t, "UpdateAuthServer "+tc.name, s.UpdateAuthServer(t.Context(), as.Issuer, tc.fn), tc.want)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		app := newApp(t, s)
		for _, tc := range []struct {
			name string
			mod  func(*store.AuthServer)
		}{
			{"not canonical", func(a *store.AuthServer) { a.Issuer = "https://AS.example.com/as" }},
			{"default port", func(a *store.AuthServer) { a.Issuer = "https://as.example.com:443/as" }},
			{"http not loopback", func(a *store.AuthServer) { a.Issuer = "http://as.example.com/as" }},
			{"query", func(a *store.AuthServer) { a.Issuer = "https://as.example.com/as?x=1" }},
			{"empty client_id there", func(a *store.AuthServer) { a.ClientIDs = map[string]string{app: ""} }},
			{"zero time", func(a *store.AuthServer) { a.CreatedAt = time.Time{} }},
		} {
			a := newAuthServer(nil)
			tc.mod(&a)
			wantErr(t, "CreateAuthServer "+tc.name, s.CreateAuthServer(t.Context(), a), store.ErrInvalid)
		}
	})
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
