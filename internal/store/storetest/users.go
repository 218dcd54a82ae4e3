package storetest

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/store"
)

func testUsers(t *testing.T, s store.Tx) {
	t.Run("CreateGet", func(t *testing.T) {
		t.Parallel()
		u := newUser()
		noErr(t, "CreateUser", s.CreateUser(t.Context(), u))
		got, err := s.GetUser(t.Context(), u.ID)
		noErr(t, "GetUser", err)
		if diff := cmp.Diff(u, got); diff != "" {
			t.Errorf("GetUser mismatch (-want +got):\n%s", diff)
		}
		for _, name := range []string{u.Username, lower(u.Username), "uSER" + u.Username[4:]} {
			got, err := s.GetUserByUsername(t.Context(), name)
			noErr(t, "GetUserByUsername "+name, err)
			if diff := cmp.Diff(u, got); diff != "" {
				t.Errorf("GetUserByUsername(%q) mismatch (-want +got):\n%s", name, diff)
			}
		}
		// Without optional fields: nil TOTP stays nil, empty strings stay empty.
		bare := newUser()
		bare.Email, bare.DisplayName, bare.PasswordHash, bare.TOTPSealed = "", "", "", nil
		noErr(t, "CreateUser bare", s.CreateUser(t.Context(), bare))
		got, err = s.GetUser(t.Context(), bare.ID)
		noErr(t, "GetUser bare", err)
		if diff := cmp.Diff(bare, got); diff != "" || got.TOTPSealed != nil {
			t.Errorf("GetUser bare mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("Conflict", func(t *testing.T) {
		t.Parallel()
		u := newUser()
		noErr(t, "CreateUser", s.CreateUser(t.Context(), u))
		sameID := newUser()
		sameID.ID = u.ID
		wantErr(t, "CreateUser same id", s.CreateUser(t.Context(), sameID), store.ErrConflict)
		sameName := newUser()
		sameName.Username = lower(u.Username) // differs only in case
		wantErr(t, "CreateUser same username in other case", s.CreateUser(t.Context(), sameName), store.ErrConflict)
		got, err := s.GetUserByUsername(t.Context(), u.Username)
		noErr(t, "GetUserByUsername", err)
		if got.ID != u.ID {
			t.Errorf("a duplicate replaced the user: id %q", got.ID)
		}
		_, err = s.GetUser(t.Context(), sameName.ID)
		wantErr(t, "GetUser of the refused duplicate", err, store.ErrNotFound)
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		u := newUser()
		_, err := s.GetUser(t.Context(), u.ID)
		wantErr(t, "GetUser", err, store.ErrNotFound)
		for _, name := range []string{u.Username, "not a username", "ünïcode", "", "a\x00b"} {
			_, err = s.GetUserByUsername(t.Context(), name)
			wantErr(t, "GetUserByUsername "+name, err, store.ErrNotFound)
		}
		err = s.UpdateUser(t.Context(), u.ID, func(u store.User) (store.User, error) { return u, nil })
		wantErr(t, "UpdateUser", err, store.ErrNotFound)
	})

	t.Run("Update", func(t *testing.T) {
		t.Parallel()
		u := newUser()
		noErr(t, "CreateUser", s.CreateUser(t.Context(), u))
		want := u
		want.Username = lower(u.Username) + "-renamed"
		want.Email, want.DisplayName = "new@example.com", "New Name"
		want.PasswordHash = "$2b$10$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234"
		want.TOTPSealed, want.Disabled = nil, true
		want.UpdatedAt = u.UpdatedAt.Add(time.Minute)
		noErr(t, "UpdateUser", s.UpdateUser(t.Context(), u.ID, func(store.User) (store.User, error) { return want, nil }))
		got, err := s.GetUser(t.Context(), u.ID)
		noErr(t, "GetUser", err)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("after UpdateUser (-want +got):\n%s", diff)
		}
		_, err = s.GetUserByUsername(t.Context(), u.Username)
		wantErr(t, "GetUserByUsername old name", err, store.ErrNotFound)
		got, err = s.GetUserByUsername(t.Context(), want.Username)
		noErr(t, "GetUserByUsername new name", err)
		if got.ID != u.ID {
			t.Errorf("new name finds %q", got.ID)
		}
		// Changing only the case of one's own username is not a clash.
		noErr(t, "UpdateUser case only", s.UpdateUser(t.Context(), u.ID, func(u store.User) (store.User, error) {
			u.Username = strings.ToUpper(u.Username)
			return u, nil
		}))
	})

	t.Run("UpdateRefused", func(t *testing.T) {
		t.Parallel()
		u, other := newUser(), newUser()
		noErr(t, "CreateUser", s.CreateUser(t.Context(), u))
		noErr(t, "CreateUser other", s.CreateUser(t.Context(), other))
		for _, tc := range []struct {
			name string
			fn   func(store.User) (store.User, error)
			want error
		}{
			{"fn error", func(u store.User) (store.User, error) { u.Email = "x@y"; return u, errBoom }, errBoom},
			{"id", func(u store.User) (store.User, error) { u.ID = newID("u"); return u, nil }, store.ErrInvalid},
			{"created", func(u store.User) (store.User, error) { u.CreatedAt = u.CreatedAt.Add(time.Second); return u, nil }, store.ErrInvalid},
			{"invalid username", func(u store.User) (store.User, error) { u.Username = "-x"; return u, nil }, store.ErrInvalid},
			{"taken username", func(u store.User) (store.User, error) { u.Username = lower(other.Username); return u, nil }, store.ErrConflict},
		} {
			err := s.UpdateUser(t.Context(), u.ID, tc.fn)
			wantErr(t, "UpdateUser "+tc.name, err, tc.want)
		}
		got, err := s.GetUser(t.Context(), u.ID)
		noErr(t, "GetUser", err)
		if diff := cmp.Diff(u, got); diff != "" {
			t.Errorf("refused updates changed the user (-want +got):\n%s", diff)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name string
			mod  func(*store.User)
		}{
			{"empty id", func(u *store.User) { u.ID = "" }},
			{"id with space", func(u *store.User) { u.ID = "a b" }},
			{"empty username", func(u *store.User) { u.Username = "" }},
			{"non-ASCII username", func(u *store.User) { u.Username = "zoë" }},
			{"username with space", func(u *store.User) { u.Username = "a b" }},
			{"username starting with dot", func(u *store.User) { u.Username = ".alice" }},
			{"bad email", func(u *store.User) { u.Email = "no-at-sign" }},
			{"email with space", func(u *store.User) { u.Email = "a b@c" }},
			{"display name with newline", func(u *store.User) { u.DisplayName = "a\nb" }},
			{"display name invalid UTF-8", func(u *store.User) { u.DisplayName = "\xff" }},
			{"password hash not PHC", func(u *store.User) { u.PasswordHash = "plaintext" }},
			{"empty sealed TOTP", func(u *store.User) { u.TOTPSealed = []byte{} }},
			{"zero created", func(u *store.User) { u.CreatedAt = time.Time{} }},
			{"zero updated", func(u *store.User) { u.UpdatedAt = time.Time{} }},
		} {
			u := newUser()
			tc.mod(&u)
			wantErr(t, "CreateUser "+tc.name, s.CreateUser(t.Context(), u), store.ErrInvalid)
		}
	})
}
