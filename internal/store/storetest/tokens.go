package storetest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/openxaa/xaa/internal/store"
)

func newToken() store.IssuedToken {
	iat := now()
	return store.IssuedToken{
		JTI:       newID("jti"),
		Kind:      store.TokenKindIDJAG,
		Issuer:    newID("https://idp.example"),
		ClientID:  newID("client"),
		Subject:   newID("user"),
		Audience:  "https://as.example",
		Resource:  "https://mcp.example/mcp",
		Scope:     "files.read files.write",
		ParentJTI: newID("parent"),
		IssuedAt:  iat,
		ExpiresAt: iat.Add(5 * time.Minute),
	}
}

func testTokens(t *testing.T, s store.Tokens) {
	t.Run("RecordGet", func(t *testing.T) {
		t.Parallel()
		for _, tok := range []store.IssuedToken{
			newToken(),
			func() store.IssuedToken { // minimal, already revoked
				tok := newToken()
				tok.Kind, tok.ClientID, tok.Subject, tok.Audience, tok.Resource, tok.Scope, tok.ParentJTI =
					store.TokenKindAccessToken, "", "", "", "", "", ""
				tok.RevokedAt = tok.IssuedAt.Add(time.Second)
				return tok
			}(),
		} {
			noErr(t, "RecordToken", s.RecordToken(t.Context(), tok))
			got, err := s.GetToken(t.Context(), tok.Issuer, tok.JTI)
			noErr(t, "GetToken", err)
			if diff := cmp.Diff(tok, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("GetToken mismatch (-want +got):\n%s", diff)
			}
		}
	})

	t.Run("Conflict", func(t *testing.T) {
		t.Parallel()
		tok := newToken()
		noErr(t, "RecordToken", s.RecordToken(t.Context(), tok))
		dup := tok
		dup.Subject = "someone-else"
		wantErr(t, "RecordToken duplicate", s.RecordToken(t.Context(), dup), store.ErrConflict)
		got, err := s.GetToken(t.Context(), tok.Issuer, tok.JTI)
		noErr(t, "GetToken", err)
		if got.Subject != tok.Subject {
			t.Errorf("duplicate overwrote the token: subject %q", got.Subject)
		}
		// The same jti from another issuer is a different token.
		other := tok
		other.Issuer += "/other"
		noErr(t, "RecordToken other issuer", s.RecordToken(t.Context(), other))
	})

	t.Run("RevokeIdempotent", func(t *testing.T) {
		t.Parallel()
		tok := newToken()
		noErr(t, "RecordToken", s.RecordToken(t.Context(), tok))
		first := tok.IssuedAt.Add(time.Minute)
		noErr(t, "RevokeToken", s.RevokeToken(t.Context(), tok.Issuer, tok.JTI, first))
		noErr(t, "RevokeToken again", s.RevokeToken(t.Context(), tok.Issuer, tok.JTI, first.Add(time.Minute)))
		got, err := s.GetToken(t.Context(), tok.Issuer, tok.JTI)
		noErr(t, "GetToken", err)
		if !got.RevokedAt.Equal(first) {
			t.Errorf("RevokedAt = %v, want the first revocation %v", got.RevokedAt, first)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		tok := newToken()
		_, err := s.GetToken(t.Context(), tok.Issuer, tok.JTI)
		wantErr(t, "GetToken", err, store.ErrNotFound)
		wantErr(t, "RevokeToken", s.RevokeToken(t.Context(), tok.Issuer, tok.JTI, now()), store.ErrNotFound)
		noErr(t, "RecordToken", s.RecordToken(t.Context(), tok))
		_, err = s.GetToken(t.Context(), tok.Issuer+"/other", tok.JTI)
		wantErr(t, "GetToken other issuer", err, store.ErrNotFound)
	})
}
