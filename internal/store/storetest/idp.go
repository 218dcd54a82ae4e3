package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/store"
)

// RunIdP is the conformance suite of the IdP's single sign-on aggregates
// (store.Sessions, store.AuthCodes, store.RefreshTokens), direct and
// through per-call transactions.
func RunIdP(t *testing.T, s Store) {
	views := []struct {
		name string
		a    store.Tx
	}{
		{"direct", s},
		{"tx", perCallTx{s}},
	}
	// Not parallel, so it runs before the rest: its counts are exact
	// only while nothing else prunes.
	t.Run("PruneCounts", func(t *testing.T) { testPruneCounts(t, s) })
	for _, v := range views {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			t.Run("Sessions", func(t *testing.T) { t.Parallel(); testSessions(t, v.a) })
			t.Run("AuthCodes", func(t *testing.T) { t.Parallel(); testAuthCodes(t, v.a) })
			t.Run("RefreshTokens", func(t *testing.T) { t.Parallel(); testRefreshTokens(t, v.a) })
			t.Run("Prune", func(t *testing.T) { t.Parallel(); testPrune(t, v.a) })
		})
	}
	t.Run("RotateRace", func(t *testing.T) { t.Parallel(); testRotateRace(t, s) })
	t.Run("ConsumeRace", func(t *testing.T) { t.Parallel(); testConsumeRace(t, s) })
}

func digest(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }

// idpUser creates a user for the rows that reference one.
func idpUser(t *testing.T, s store.Tx) string {
	t.Helper()
	id := newID("u_")
	n := now()
	noErr(t, "CreateUser", s.CreateUser(t.Context(), store.User{
		ID: id, Username: newID("user"), CreatedAt: n, UpdatedAt: n,
	}))
	return id
}

func testSessions(t *testing.T, s store.Tx) {
	user := idpUser(t, s)
	n := now()
	sess := store.Session{
		ID: newID("sid"), SecretDigest: digest(newID("secret")), UserID: user,
		AuthTime: n, ACR: "urn:openxaa:acr:mfa", AMR: []string{"pwd", "otp"},
		CreatedAt: n, ExpiresAt: n.Add(time.Hour),
	}
	noErr(t, "CreateSession", s.CreateSession(t.Context(), sess))
	wantErr(t, "CreateSession again", s.CreateSession(t.Context(), sess), store.ErrConflict)
	got, err := s.GetSessionByDigest(t.Context(), sess.SecretDigest)
	noErr(t, "GetSessionByDigest", err)
	if diff := cmp.Diff(sess, got); diff != "" {
		t.Errorf("GetSessionByDigest (-want +got):\n%s", diff)
	}
	_, err = s.GetSessionByDigest(t.Context(), digest("unknown"))
	wantErr(t, "GetSessionByDigest unknown", err, store.ErrNotFound)

	noErr(t, "RevokeSession", s.RevokeSession(t.Context(), sess.ID, n.Add(time.Minute)))
	noErr(t, "RevokeSession again", s.RevokeSession(t.Context(), sess.ID, n.Add(2*time.Minute)))
	got, err = s.GetSessionByDigest(t.Context(), sess.SecretDigest)
	noErr(t, "GetSessionByDigest revoked", err)
	if !got.RevokedAt.Equal(n.Add(time.Minute)) {
		t.Errorf("RevokedAt = %v, want the first revocation %v", got.RevokedAt, n.Add(time.Minute))
	}
	wantErr(t, "RevokeSession unknown", s.RevokeSession(t.Context(), "nope", n), store.ErrNotFound)

	bad := sess
	bad.SecretDigest = []byte("short")
	if err := s.CreateSession(t.Context(), bad); err == nil {
		t.Error("CreateSession with a short digest succeeded")
	}
}

func newAuthCode(user string) store.AuthCode {
	n := now()
	return store.AuthCode{
		Digest: digest(newID("code")), ClientID: "app", RedirectURI: "https://app.example/cb",
		UserID: user, SessionID: newID("sid"), Scope: "openid offline_access", Nonce: "n-1",
		CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", AuthTime: n,
		ACR: "urn:openxaa:acr:pwd", AMR: []string{"pwd"}, IssuedAt: n, ExpiresAt: n.Add(time.Minute),
	}
}

func testAuthCodes(t *testing.T, s store.Tx) {
	user := idpUser(t, s)
	c := newAuthCode(user)
	noErr(t, "CreateAuthCode", s.CreateAuthCode(t.Context(), c))
	wantErr(t, "CreateAuthCode again", s.CreateAuthCode(t.Context(), c), store.ErrConflict)

	at := now().Add(time.Second)
	got, err := s.ConsumeAuthCode(t.Context(), c.Digest, at)
	noErr(t, "ConsumeAuthCode", err)
	want := c
	want.ConsumedAt = at
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ConsumeAuthCode (-want +got):\n%s", diff)
	}
	noErr(t, "RecordAuthCodeIssue", s.RecordAuthCodeIssue(t.Context(), c.Digest, "fam-1", "jti-id", "jti-at"))

	got, err = s.ConsumeAuthCode(t.Context(), c.Digest, at.Add(time.Second))
	wantErr(t, "ConsumeAuthCode again", err, store.ErrReplay)
	want.RefreshFamily, want.IDTokenJTI, want.AccessTokenJTI = "fam-1", "jti-id", "jti-at"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ConsumeAuthCode replay returns the first redemption (-want +got):\n%s", diff)
	}

	_, err = s.ConsumeAuthCode(t.Context(), digest("unknown"), at)
	wantErr(t, "ConsumeAuthCode unknown", err, store.ErrNotFound)
	wantErr(t, "RecordAuthCodeIssue unknown",
		s.RecordAuthCodeIssue(t.Context(), digest("unknown"), "f", "i", "a"), store.ErrNotFound)
}

func newRefresh(user, family string) store.RefreshToken {
	n := now()
	return store.RefreshToken{
		Digest: digest(newID("rt")), FamilyID: family, ClientID: "app", UserID: user,
		SessionID: "sid", Scope: "openid offline_access", AuthTime: n, ACR: "urn:openxaa:acr:pwd",
		AMR: []string{"pwd"}, IssuedAt: n, ExpiresAt: n.Add(time.Hour),
	}
}

func testRefreshTokens(t *testing.T, s store.Tx) {
	user := idpUser(t, s)
	fam := newID("fam")
	first := newRefresh(user, fam)
	noErr(t, "CreateRefreshToken", s.CreateRefreshToken(t.Context(), first))
	wantErr(t, "CreateRefreshToken again", s.CreateRefreshToken(t.Context(), first), store.ErrConflict)
	got, err := s.GetRefreshToken(t.Context(), first.Digest)
	noErr(t, "GetRefreshToken", err)
	if diff := cmp.Diff(first, got); diff != "" {
		t.Errorf("GetRefreshToken (-want +got):\n%s", diff)
	}

	second := newRefresh(user, fam)
	at := now().Add(time.Second)
	noErr(t, "RotateRefreshToken", s.RotateRefreshToken(t.Context(), first.Digest, second, at))
	got, err = s.GetRefreshToken(t.Context(), first.Digest)
	noErr(t, "GetRefreshToken superseded", err)
	if !got.SupersededAt.Equal(at) {
		t.Errorf("SupersededAt = %v, want %v", got.SupersededAt, at)
	}
	third := newRefresh(user, fam)
	wantErr(t, "RotateRefreshToken superseded",
		s.RotateRefreshToken(t.Context(), first.Digest, third, at), store.ErrReplay)
	_, err = s.GetRefreshToken(t.Context(), third.Digest)
	wantErr(t, "a failed rotation inserts nothing", err, store.ErrNotFound)
	wantErr(t, "RotateRefreshToken unknown",
		s.RotateRefreshToken(t.Context(), digest("unknown"), third, at), store.ErrNotFound)

	other := newRefresh(user, newID("fam"))
	noErr(t, "CreateRefreshToken other family", s.CreateRefreshToken(t.Context(), other))

	n, err := s.RevokeRefreshFamily(t.Context(), fam, at)
	noErr(t, "RevokeRefreshFamily", err)
	if n != 2 {
		t.Errorf("RevokeRefreshFamily revoked %d, want 2", n)
	}
	n, err = s.RevokeRefreshFamily(t.Context(), fam, at.Add(time.Second))
	noErr(t, "RevokeRefreshFamily again", err)
	if n != 0 {
		t.Errorf("RevokeRefreshFamily again revoked %d, want 0", n)
	}
	got, err = s.GetRefreshToken(t.Context(), second.Digest)
	noErr(t, "GetRefreshToken revoked", err)
	if !got.RevokedAt.Equal(at) {
		t.Errorf("RevokedAt = %v, want %v", got.RevokedAt, at)
	}
	wantErr(t, "RotateRefreshToken revoked",
		s.RotateRefreshToken(t.Context(), second.Digest, third, at), store.ErrReplay)
	got, err = s.GetRefreshToken(t.Context(), other.Digest)
	noErr(t, "GetRefreshToken other family", err)
	if !got.RevokedAt.IsZero() {
		t.Error("revoking one family revoked another")
	}
}

// testRotateRace: of concurrent rotations of one token exactly one wins.
func testRotateRace(t *testing.T, s Store) {
	user := idpUser(t, s)
	fam := newID("fam")
	first := newRefresh(user, fam)
	noErr(t, "CreateRefreshToken", s.CreateRefreshToken(t.Context(), first))
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = s.RotateRefreshToken(t.Context(), first.Digest, newRefresh(user, fam), now()) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrReplay):
			t.Errorf("RotateRefreshToken = %v, want nil or ErrReplay", err)
		}
	}
	if won != 1 {
		t.Errorf("%d rotations won, want exactly 1", won)
	}
}

// testConsumeRace: of concurrent redemptions of one code exactly one wins.
func testConsumeRace(t *testing.T, s Store) {
	c := newAuthCode(idpUser(t, s))
	noErr(t, "CreateAuthCode", s.CreateAuthCode(t.Context(), c))
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = s.ConsumeAuthCode(t.Context(), c.Digest, now()) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrReplay):
			t.Errorf("ConsumeAuthCode = %v, want nil or ErrReplay", err)
		}
	}
	if won != 1 {
		t.Errorf("%d redemptions won, want exactly 1", won)
	}
}

// pruneCutoff is far in the past, so that pruning cannot remove rows that
// parallel subtests rely on (they expire around now). Every parallel prune
// uses this one cutoff, so none deletes a row another expects to stay.
func pruneCutoff() time.Time { return time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC) }

// testPrune: rows whose expiry is before the cutoff go, whatever their
// state; rows expiring at or after it stay, revoked or superseded ones
// too (a superseded refresh token must outlive its use to reveal reuse).
func testPrune(t *testing.T, s store.Tx) {
	ctx := t.Context()
	user := idpUser(t, s)
	cut := pruneCutoff()
	rows := []struct {
		name string
		exp  time.Duration // relative to the cutoff
		gone bool
	}{
		{"expired", -time.Hour, true},
		{"expired a millisecond before", -time.Millisecond, true},
		{"expiring at the cutoff", 0, false},
		{"live", time.Hour, false},
	}
	type made struct {
		session, code []byte
		refresh       [2][]byte // superseded, current
	}
	var all []made
	for _, r := range rows {
		exp := cut.Add(r.exp)
		start := exp.Add(-time.Minute)
		var m made
		sess := store.Session{ID: newID("sid"), SecretDigest: digest(newID("secret")), UserID: user,
			AuthTime: start, ACR: "urn:openxaa:acr:pwd", CreatedAt: start, ExpiresAt: exp}
		noErr(t, "CreateSession "+r.name, s.CreateSession(ctx, sess))
		noErr(t, "RevokeSession "+r.name, s.RevokeSession(ctx, sess.ID, start))
		m.session = sess.SecretDigest

		c := newAuthCode(user)
		c.AuthTime, c.IssuedAt, c.ExpiresAt = start, start, exp
		noErr(t, "CreateAuthCode "+r.name, s.CreateAuthCode(ctx, c))
		m.code = c.Digest

		fam := newID("fam")
		first, second := newRefresh(user, fam), newRefresh(user, fam)
		for _, rt := range []*store.RefreshToken{&first, &second} {
			rt.AuthTime, rt.IssuedAt, rt.ExpiresAt = start, start, exp
		}
		noErr(t, "CreateRefreshToken "+r.name, s.CreateRefreshToken(ctx, first))
		noErr(t, "RotateRefreshToken "+r.name, s.RotateRefreshToken(ctx, first.Digest, second, start))
		_, err := s.RevokeRefreshFamily(ctx, fam, start)
		noErr(t, "RevokeRefreshFamily "+r.name, err)
		m.refresh = [2][]byte{first.Digest, second.Digest}
		all = append(all, m)
	}

	for _, prune := range []struct {
		name string
		fn   func(context.Context, time.Time) (int64, error)
	}{{"PruneSessions", s.PruneSessions}, {"PruneAuthCodes", s.PruneAuthCodes}, {"PruneRefreshTokens", s.PruneRefreshTokens}} {
		if _, err := prune.fn(ctx, cut); err != nil {
			t.Fatalf("%s: %v", prune.name, err)
		}
	}

	for i, r := range rows {
		m := all[i]
		check := func(what string, err error) {
			t.Helper()
			switch {
			case r.gone && !errors.Is(err, store.ErrNotFound):
				t.Errorf("%s %s after pruning: %v, want ErrNotFound", r.name, what, err)
			case !r.gone && err != nil:
				t.Errorf("%s %s after pruning: %v, want it kept", r.name, what, err)
			}
		}
		_, err := s.GetSessionByDigest(ctx, m.session)
		check("session", err)
		_, err = s.ConsumeAuthCode(ctx, m.code, cut)
		check("authorization code", err)
		_, err = s.GetRefreshToken(ctx, m.refresh[0])
		check("superseded refresh token", err)
		_, err = s.GetRefreshToken(ctx, m.refresh[1])
		check("current refresh token", err)
	}
}

// testPruneCounts: the counts are how many rows went, also when there are
// more than a backend deletes in one statement.
func testPruneCounts(t *testing.T, s Store) {
	ctx := t.Context()
	cut := pruneCutoff().AddDate(-1, 0, 0)
	exp, start := cut.Add(-time.Hour), cut.Add(-2*time.Hour)
	const sessions, codes, refresh = 3, 4, 2500
	noErr(t, "seed", s.InTx(ctx, func(tx store.Tx) error {
		user := idpUser(t, tx)
		for range sessions {
			if err := tx.CreateSession(ctx, store.Session{ID: newID("sid"), SecretDigest: digest(newID("secret")),
				UserID: user, AuthTime: start, CreatedAt: start, ExpiresAt: exp}); err != nil {
				return err
			}
		}
		for range codes {
			c := newAuthCode(user)
			c.AuthTime, c.IssuedAt, c.ExpiresAt = start, start, exp
			if err := tx.CreateAuthCode(ctx, c); err != nil {
				return err
			}
		}
		for i := range refresh {
			rt := newRefresh(user, fmt.Sprintf("fam-%d", i%7))
			rt.AuthTime, rt.IssuedAt, rt.ExpiresAt = start, start, exp
			if err := tx.CreateRefreshToken(ctx, rt); err != nil {
				return err
			}
		}
		return nil
	}))
	for _, tc := range []struct {
		name string
		fn   func(context.Context, time.Time) (int64, error)
		want int64
	}{
		{"PruneSessions", s.PruneSessions, sessions},
		{"PruneAuthCodes", perCallTx{s}.PruneAuthCodes, codes},
		{"PruneRefreshTokens", s.PruneRefreshTokens, refresh},
	} {
		n, err := tc.fn(ctx, cut)
		noErr(t, tc.name, err)
		if n != tc.want {
			t.Errorf("%s deleted %d rows, want %d", tc.name, n, tc.want)
		}
		if n, err := tc.fn(ctx, cut); err != nil || n != 0 {
			t.Errorf("%s again = %d, %v; want 0, nil", tc.name, n, err)
		}
	}
}
