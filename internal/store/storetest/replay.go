package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

func testReplay(t *testing.T, s store.Replay) {
	entry := func() store.ReplayEntry {
		return store.ReplayEntry{
			Namespace: store.NamespaceIDJAG,
			Issuer:    newID("https://idp.example/iss"),
			JTI:       newID("jti"),
			ExpiresAt: now().Add(time.Hour),
		}
	}

	t.Run("OnceThenReplay", func(t *testing.T) {
		t.Parallel()
		e := entry()
		noErr(t, "first RecordOnce", s.RecordOnce(t.Context(), e))
		wantErr(t, "second RecordOnce", s.RecordOnce(t.Context(), e), store.ErrReplay)
		// A later expiry does not make the same key new.
		e.ExpiresAt = e.ExpiresAt.Add(time.Hour)
		wantErr(t, "third RecordOnce", s.RecordOnce(t.Context(), e), store.ErrReplay)
	})

	t.Run("KeyIsNamespaceIssuerJTI", func(t *testing.T) {
		t.Parallel()
		e := entry()
		noErr(t, "RecordOnce", s.RecordOnce(t.Context(), e))
		for _, tc := range []struct {
			name   string
			change func(*store.ReplayEntry)
		}{
			{"other namespace", func(e *store.ReplayEntry) { e.Namespace = store.NamespaceClientAssertion }},
			{"third namespace", func(e *store.ReplayEntry) { e.Namespace = store.NamespaceAuthCode }},
			{"other issuer", func(e *store.ReplayEntry) { e.Issuer += "/other" }},
			{"other jti", func(e *store.ReplayEntry) { e.JTI += "x" }},
		} {
			e2 := e
			tc.change(&e2)
			noErr(t, tc.name, s.RecordOnce(t.Context(), e2))
			wantErr(t, tc.name+" again", s.RecordOnce(t.Context(), e2), store.ErrReplay)
		}
	})

	t.Run("ExpiredButNotPrunedStillRejected", func(t *testing.T) {
		t.Parallel()
		e := entry()
		e.ExpiresAt = now().Add(-time.Hour)
		noErr(t, "RecordOnce", s.RecordOnce(t.Context(), e))
		wantErr(t, "RecordOnce again", s.RecordOnce(t.Context(), e), store.ErrReplay)
	})

	t.Run("Prune", func(t *testing.T) {
		t.Parallel()
		// Far-past expiries, so pruning here cannot remove rows that other
		// parallel subtests rely on (they expire around now).
		cutoff := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
		old, kept := entry(), entry()
		old.ExpiresAt = cutoff.Add(-time.Hour)
		kept.ExpiresAt = cutoff.Add(time.Hour)
		noErr(t, "RecordOnce old", s.RecordOnce(t.Context(), old))
		noErr(t, "RecordOnce kept", s.RecordOnce(t.Context(), kept))
		n, err := s.PruneReplay(t.Context(), cutoff)
		noErr(t, "PruneReplay", err)
		if n < 1 {
			t.Errorf("PruneReplay deleted %d rows, want at least 1", n)
		}
		noErr(t, "RecordOnce pruned entry", s.RecordOnce(t.Context(), old))
		wantErr(t, "RecordOnce kept entry", s.RecordOnce(t.Context(), kept), store.ErrReplay)
	})

	t.Run("ConcurrentExactlyOneWins", func(t *testing.T) {
		t.Parallel()
		const n = 64
		e := entry()
		var wg sync.WaitGroup
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				errs[i] = s.RecordOnce(t.Context(), e)
			})
		}
		close(start)
		wg.Wait()
		var wins, replays int
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, store.ErrReplay):
				replays++
			default:
				t.Errorf("RecordOnce: unexpected error %v", err)
			}
		}
		if wins != 1 || replays != n-1 {
			t.Errorf("got %d wins and %d replays, want 1 and %d", wins, replays, n-1)
		}
	})
}
