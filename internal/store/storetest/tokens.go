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

	t.Run("RevokedList", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		iss := newID("https://as.example")
		var toks []store.IssuedToken
		for range 4 {
			tok := newToken()
			tok.Issuer, tok.Kind, tok.Resource = iss, store.TokenKindAccessToken, newID("https://mcp.example/")
			noErr(t, "RecordToken", s.RecordToken(ctx, tok))
			toks = append(toks, tok)
		}
		// Neither another kind nor another issuer is listed.
		other := newToken()
		other.Issuer = iss
		noErr(t, "RecordToken id-jag", s.RecordToken(ctx, other))
		foreign := newToken()
		foreign.Kind = store.TokenKindAccessToken
		noErr(t, "RecordToken foreign", s.RecordToken(ctx, foreign))
		_, start, err := s.ListRevokedTokens(ctx, iss, 0, 0)
		noErr(t, "ListRevokedTokens empty", err)
		if start != 0 {
			t.Fatalf("empty list cursor = %d, want 0", start)
		}
		at := now()
		order := []int{2, 0, 3}
		for i, k := range order {
			noErr(t, "RevokeToken", s.RevokeToken(ctx, iss, toks[k].JTI, at.Add(time.Duration(i)*time.Second)))
		}
		noErr(t, "RevokeToken id-jag", s.RevokeToken(ctx, iss, other.JTI, at))
		noErr(t, "RevokeToken foreign", s.RevokeToken(ctx, foreign.Issuer, foreign.JTI, at))
		// A second revocation keeps the first cursor and time.
		noErr(t, "RevokeToken again", s.RevokeToken(ctx, iss, toks[2].JTI, at.Add(time.Hour)))

		var got []store.RevokedToken
		cursor := int64(0)
		for page := 0; ; page++ {
			ts, next, err := s.ListRevokedTokens(ctx, iss, cursor, 2)
			noErr(t, "ListRevokedTokens", err)
			if len(ts) > 2 || page > 3 {
				t.Fatalf("page %d has %d entries (limit 2)", page, len(ts))
			}
			if len(ts) == 0 {
				if next != cursor {
					t.Errorf("an empty page moved the cursor from %d to %d", cursor, next)
				}
				break
			}
			if next != ts[len(ts)-1].Cursor {
				t.Errorf("next = %d, want the last entry's cursor %d", next, ts[len(ts)-1].Cursor)
			}
			got = append(got, ts...)
			cursor = next
		}
		var want []store.RevokedToken
		for i, k := range order {
			want = append(want, store.RevokedToken{JTI: toks[k].JTI, Resource: toks[k].Resource, RevokedAt: at.Add(time.Duration(i) * time.Second)})
		}
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(store.RevokedToken{}, "Cursor")); diff != "" {
			t.Errorf("revocation list (-want +got):\n%s", diff)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Cursor <= got[i-1].Cursor {
				t.Errorf("cursors not increasing: %d then %d", got[i-1].Cursor, got[i].Cursor)
			}
		}
	})

	// Concurrent revocations must never commit a smaller cursor after a
	// poller has seen a larger one, or the poller would miss it.
	t.Run("RevokedListConcurrent", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		iss := newID("https://as.example")
		const n = 32
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
			ts, next, err := s.ListRevokedTokens(ctx, iss, cursor, 5)
			if err != nil {
				return err
			}
			for _, r := range ts {
				seen[r.JTI] = true
			}
			cursor = next
			return nil
		}
		errs := make(chan error, n)
		for _, jti := range jtis {
			go func() { errs <- s.RevokeToken(ctx, iss, jti, now()) }()
		}
		for done := 0; done < n; {
			select {
			case err := <-errs:
				noErr(t, "RevokeToken", err)
				done++
			default:
				noErr(t, "ListRevokedTokens", poll())
			}
		}
		for range 2 * n {
			noErr(t, "ListRevokedTokens", poll())
		}
		if len(seen) != n {
			t.Errorf("the poller saw %d of %d revocations", len(seen), n)
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
