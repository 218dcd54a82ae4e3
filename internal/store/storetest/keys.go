package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/openxaa/xaa/internal/store"
)

func newKey(owner string, state store.KeyState, created time.Time) store.SigningKey {
	kid := newID("kid")
	return store.SigningKey{
		KID:           kid,
		Owner:         owner,
		Algorithm:     "ES256",
		State:         state,
		PublicJWK:     []byte(`{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"` + kid + `"}`),
		SealedPrivate: []byte{0x01, 0x00, 0xff, 0x7f, 0x80},
		CreatedAt:     created,
	}
}

func testSigningKeys(t *testing.T, s store.SigningKeys) {
	t.Run("CreateList", func(t *testing.T) {
		t.Parallel()
		owner := newID("https://idp.example")
		base := now()
		active := newKey(owner, store.KeyActive, base.Add(-2*time.Hour))
		active.ActivatedAt = base.Add(-time.Hour)
		retiring := newKey(owner, store.KeyRetiring, base.Add(-3*time.Hour))
		retiring.ActivatedAt = base.Add(-3 * time.Hour)
		retiring.RetireAfter = base.Add(time.Hour)
		next := newKey(owner, store.KeyNext, base)
		next.SealedPrivate = nil // e.g. a key held by a KMS
		other := newKey(newID("https://as.example"), store.KeyActive, base)

		for _, k := range []store.SigningKey{next, active, retiring, other} {
			noErr(t, "CreateSigningKey", s.CreateSigningKey(t.Context(), k))
		}
		got, err := s.ListSigningKeys(t.Context(), owner)
		noErr(t, "ListSigningKeys", err)
		want := []store.SigningKey{retiring, active, next} // oldest first
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("ListSigningKeys mismatch (-want +got):\n%s", diff)
		}
		got, err = s.ListSigningKeys(t.Context(), newID("nobody"))
		noErr(t, "ListSigningKeys unknown owner", err)
		if len(got) != 0 {
			t.Errorf("unknown owner has %d keys", len(got))
		}
	})

	t.Run("Conflict", func(t *testing.T) {
		t.Parallel()
		k := newKey(newID("owner"), store.KeyNext, now())
		noErr(t, "CreateSigningKey", s.CreateSigningKey(t.Context(), k))
		wantErr(t, "same kid", s.CreateSigningKey(t.Context(), k), store.ErrConflict)
		k.Owner = newID("other-owner")
		wantErr(t, "same kid, other owner", s.CreateSigningKey(t.Context(), k), store.ErrConflict)
	})

	t.Run("Update", func(t *testing.T) {
		t.Parallel()
		owner := newID("owner")
		k := newKey(owner, store.KeyNext, now())
		noErr(t, "CreateSigningKey", s.CreateSigningKey(t.Context(), k))
		activated := now().Add(time.Minute)
		var seen store.SigningKey
		err := s.UpdateSigningKey(t.Context(), owner, k.KID, func(cur store.SigningKey) (store.SigningKey, error) {
			seen = cur
			cur.State = store.KeyActive
			cur.ActivatedAt = activated
			return cur, nil
		})
		noErr(t, "UpdateSigningKey", err)
		if diff := cmp.Diff(k, seen, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("fn saw (-stored +seen):\n%s", diff)
		}
		want := k
		want.State, want.ActivatedAt = store.KeyActive, activated
		got, err := s.ListSigningKeys(t.Context(), owner)
		noErr(t, "ListSigningKeys", err)
		if diff := cmp.Diff([]store.SigningKey{want}, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("after update (-want +got):\n%s", diff)
		}
	})

	t.Run("UpdateNotFound", func(t *testing.T) {
		t.Parallel()
		called := false
		err := s.UpdateSigningKey(t.Context(), newID("owner"), newID("kid"), func(k store.SigningKey) (store.SigningKey, error) {
			called = true
			return k, nil
		})
		wantErr(t, "UpdateSigningKey", err, store.ErrNotFound)
		if called {
			t.Error("fn was called for a missing key")
		}
		// The kid exists, but for another owner.
		k := newKey(newID("owner"), store.KeyNext, now())
		noErr(t, "CreateSigningKey", s.CreateSigningKey(t.Context(), k))
		err = s.UpdateSigningKey(t.Context(), newID("owner"), k.KID, func(k store.SigningKey) (store.SigningKey, error) { return k, nil })
		wantErr(t, "UpdateSigningKey other owner", err, store.ErrNotFound)
	})

	t.Run("UpdateErrorLeavesRowUnchanged", func(t *testing.T) {
		t.Parallel()
		owner := newID("owner")
		k := newKey(owner, store.KeyNext, now())
		noErr(t, "CreateSigningKey", s.CreateSigningKey(t.Context(), k))
		for _, tc := range []struct {
			name string
			fn   func(store.SigningKey) (store.SigningKey, error)
			want error // nil: any error
		}{
			{"fn error", func(cur store.SigningKey) (store.SigningKey, error) {
				cur.State = store.KeyRetired
				return cur, errBoom
			}, errBoom},
			{"kid changed", func(cur store.SigningKey) (store.SigningKey, error) {
				cur.KID += "x"
				cur.State = store.KeyRetired
				return cur, nil
			}, nil},
			{"owner changed", func(cur store.SigningKey) (store.SigningKey, error) {
				cur.Owner += "x"
				cur.State = store.KeyRetired
				return cur, nil
			}, nil},
		} {
			err := s.UpdateSigningKey(t.Context(), owner, k.KID, tc.fn)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("%s: UpdateSigningKey = %v, want error %v", tc.name, err, tc.want)
			}
			got, err := s.ListSigningKeys(t.Context(), owner)
			noErr(t, "ListSigningKeys", err)
			if diff := cmp.Diff([]store.SigningKey{k}, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s: row changed (-want +got):\n%s", tc.name, diff)
			}
		}
	})
}
