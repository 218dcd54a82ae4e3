package storetest

import (
	"crypto/sha256"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/openxaa/xaa/internal/store"
)

func testClients(t *testing.T, s store.Clients) {
	digest := sha256.Sum256([]byte("secret"))
	secretClient := func() store.Client {
		return store.Client{
			ID:           newID("client"),
			Name:         "Agent ✓",
			Realm:        "idp",
			AuthMethod:   "client_secret_basic",
			SecretDigest: digest[:],
			RedirectURIs: []string{"https://agent.example/cb", "http://127.0.0.1:8976/cb"},
			CreatedAt:    now(),
		}
	}

	t.Run("CreateGet", func(t *testing.T) {
		t.Parallel()
		jwtClient := store.Client{
			ID:         newID("client"),
			Name:       "JWT client",
			Realm:      newID("https://as.example"),
			AuthMethod: "private_key_jwt",
			JWKS:       []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`),
			Disabled:   true,
			CreatedAt:  now(),
		}
		for _, c := range []store.Client{secretClient(), jwtClient} {
			noErr(t, "CreateClient", s.CreateClient(t.Context(), c))
			got, err := s.GetClient(t.Context(), c.Realm, c.ID)
			noErr(t, "GetClient", err)
			if diff := cmp.Diff(c, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("GetClient mismatch (-want +got):\n%s", diff)
			}
		}
	})

	t.Run("Conflict", func(t *testing.T) {
		t.Parallel()
		c := secretClient()
		noErr(t, "CreateClient", s.CreateClient(t.Context(), c))
		dup := c
		dup.Name = "impostor"
		wantErr(t, "CreateClient duplicate", s.CreateClient(t.Context(), dup), store.ErrConflict)
		got, err := s.GetClient(t.Context(), c.Realm, c.ID)
		noErr(t, "GetClient", err)
		if got.Name != c.Name {
			t.Errorf("duplicate overwrote the client: name %q", got.Name)
		}
		// The same id in another realm is another client.
		other := c
		other.Realm = newID("https://as.example")
		noErr(t, "CreateClient other realm", s.CreateClient(t.Context(), other))
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		c := secretClient()
		_, err := s.GetClient(t.Context(), c.Realm, c.ID)
		wantErr(t, "GetClient", err, store.ErrNotFound)
		noErr(t, "CreateClient", s.CreateClient(t.Context(), c))
		_, err = s.GetClient(t.Context(), "other-realm", c.ID)
		wantErr(t, "GetClient other realm", err, store.ErrNotFound)
	})
}
