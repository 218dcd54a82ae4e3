package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// issue is what a token endpoint writes for one token: the ledger row, the
// replay row of the grant it consumed, and the audit record.
type issue struct {
	tok    store.IssuedToken
	replay store.ReplayEntry
	ev     store.AuditEvent
}

func newIssue() issue {
	tok := newToken()
	return issue{
		tok: tok,
		replay: store.ReplayEntry{
			Namespace: store.NamespaceIDJAG, Issuer: tok.Issuer, JTI: tok.ParentJTI, ExpiresAt: tok.ExpiresAt,
		},
		ev: newEvent("token.issued", tok.Subject, tok.ClientID),
	}
}

func (is *issue) write(ctx context.Context, tx store.Tx) error {
	if err := tx.RecordToken(ctx, is.tok); err != nil {
		return err
	}
	if err := tx.RecordOnce(ctx, is.replay); err != nil {
		return err
	}
	return tx.AppendAudit(ctx, &is.ev)
}

// present reports which of the three writes are visible.
func (is *issue) present(t *testing.T, s Store) (tok, replay, audit bool) {
	t.Helper()
	_, err := s.GetToken(t.Context(), is.tok.Issuer, is.tok.JTI)
	switch {
	case err == nil:
		tok = true
	case !errors.Is(err, store.ErrNotFound):
		t.Fatalf("GetToken: %v", err)
	}
	evs, err := s.ListAudit(t.Context(), store.AuditFilter{Subject: is.ev.Subject})
	noErr(t, "ListAudit", err)
	audit = len(evs) > 0
	// Probing the replay row consumes it if it was absent; callers probe last.
	err = s.RecordOnce(t.Context(), is.replay)
	switch {
	case errors.Is(err, store.ErrReplay):
		replay = true
	case err != nil:
		t.Fatalf("RecordOnce: %v", err)
	}
	return tok, replay, audit
}

func testTransactions(t *testing.T, s Store) {
	t.Run("CommitIsVisible", func(t *testing.T) {
		t.Parallel()
		is := newIssue()
		noErr(t, "InTx", s.InTx(t.Context(), func(tx store.Tx) error { return is.write(t.Context(), tx) }))
		evs, err := s.ListAudit(t.Context(), store.AuditFilter{Subject: is.ev.Subject})
		noErr(t, "ListAudit", err)
		if len(evs) != 1 || evs[0].Seq != is.ev.Seq || evs[0].Hash != is.ev.Hash {
			t.Errorf("ListAudit = %+v, want the appended event %d", evs, is.ev.Seq)
		}
		if tok, replay, audit := is.present(t, s); !tok || !replay || !audit {
			t.Errorf("after commit: token %v, replay %v, audit %v; want all", tok, replay, audit)
		}
	})

	t.Run("ErrorRollsBackEverything", func(t *testing.T) {
		t.Parallel()
		is := newIssue()
		err := s.InTx(t.Context(), func(tx store.Tx) error {
			if err := is.write(t.Context(), tx); err != nil {
				return err
			}
			return errBoom
		})
		wantErr(t, "InTx", err, errBoom)
		if tok, replay, audit := is.present(t, s); tok || replay || audit {
			t.Errorf("after rollback: token %v, replay %v, audit %v; want none", tok, replay, audit)
		}
		// present recorded the jti; it is now used.
		wantErr(t, "RecordOnce after probe", s.RecordOnce(t.Context(), is.replay), store.ErrReplay)
	})

	t.Run("ReplayInsideTxRollsBackToken", func(t *testing.T) {
		t.Parallel()
		is := newIssue()
		noErr(t, "RecordOnce before", s.RecordOnce(t.Context(), is.replay))
		var inner error
		err := s.InTx(t.Context(), func(tx store.Tx) error {
			inner = is.write(t.Context(), tx)
			return inner
		})
		wantErr(t, "write in tx", inner, store.ErrReplay)
		wantErr(t, "InTx", err, store.ErrReplay)
		_, err = s.GetToken(t.Context(), is.tok.Issuer, is.tok.JTI)
		wantErr(t, "GetToken", err, store.ErrNotFound)
	})

	t.Run("ContinueAfterConflict", func(t *testing.T) {
		t.Parallel()
		// A duplicate reported inside a transaction must not poison it
		// (PostgreSQL aborts a transaction on an unhandled unique violation).
		existing, fresh := newToken(), newToken()
		noErr(t, "RecordToken", s.RecordToken(t.Context(), existing))
		replay := store.ReplayEntry{Namespace: "x", Issuer: existing.Issuer, JTI: existing.JTI, ExpiresAt: existing.ExpiresAt}
		// fn reports problems as errors: t.Fatal inside it would skip InTx's
		// rollback.
		err := s.InTx(t.Context(), func(tx store.Tx) error {
			if err := tx.RecordToken(t.Context(), existing); !errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("duplicate token: got %v, want ErrConflict", err)
			}
			if err := tx.RecordOnce(t.Context(), replay); err != nil {
				return fmt.Errorf("first RecordOnce: %w", err)
			}
			if err := tx.RecordOnce(t.Context(), replay); !errors.Is(err, store.ErrReplay) {
				return fmt.Errorf("second RecordOnce: got %v, want ErrReplay", err)
			}
			return tx.RecordToken(t.Context(), fresh)
		})
		noErr(t, "InTx", err)
		_, err = s.GetToken(t.Context(), fresh.Issuer, fresh.JTI)
		noErr(t, "GetToken fresh", err)
	})

	t.Run("ReadsSeeOwnWrites", func(t *testing.T) {
		t.Parallel()
		tok := newToken()
		err := s.InTx(t.Context(), func(tx store.Tx) error {
			if err := tx.RecordToken(t.Context(), tok); err != nil {
				return err
			}
			_, err := tx.GetToken(t.Context(), tok.Issuer, tok.JTI)
			return err
		})
		noErr(t, "InTx", err)
	})

	t.Run("PanicRollsBack", func(t *testing.T) {
		t.Parallel()
		tok := newToken()
		func() {
			defer func() {
				if p := recover(); p != errBoom {
					t.Errorf("recovered %v, want the panic value re-raised", p)
				}
			}()
			_ = s.InTx(t.Context(), func(tx store.Tx) error {
				if err := tx.RecordToken(t.Context(), tok); err != nil {
					return err
				}
				panic(errBoom)
			})
		}()
		_, err := s.GetToken(t.Context(), tok.Issuer, tok.JTI)
		wantErr(t, "GetToken", err, store.ErrNotFound)
		// The store is still usable (on SQLite: the write connection was
		// released).
		noErr(t, "RecordToken after panic", s.RecordToken(t.Context(), tok))
	})
}

func testCancellation(t *testing.T, s Store) {
	t.Run("CancelledBeforeCall", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		tok := newToken()
		wantErr(t, "RecordToken", s.RecordToken(ctx, tok), context.Canceled)
		wantErr(t, "RecordOnce", s.RecordOnce(ctx, newIssue().replay), context.Canceled)
		_, err := s.GetToken(ctx, tok.Issuer, tok.JTI)
		wantErr(t, "GetToken", err, context.Canceled)
		ev := newEvent("x", newID("user"), "c")
		wantErr(t, "AppendAudit", s.AppendAudit(ctx, &ev), context.Canceled)
		if ev.Seq != 0 {
			t.Errorf("failed AppendAudit set Seq %d", ev.Seq)
		}
		called := false
		err = s.InTx(ctx, func(store.Tx) error { called = true; return nil })
		wantErr(t, "InTx", err, context.Canceled)
		if called {
			t.Error("InTx ran fn with a cancelled context")
		}
		_, err = s.GetToken(t.Context(), tok.Issuer, tok.JTI)
		wantErr(t, "GetToken after cancelled RecordToken", err, store.ErrNotFound)
	})

	t.Run("CancelledInsideTx", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		is := newIssue()
		err := s.InTx(ctx, func(tx store.Tx) error {
			if err := is.write(ctx, tx); err != nil {
				return err
			}
			cancel()
			return nil
		})
		if err == nil {
			t.Fatal("InTx committed although its context was cancelled before the commit")
		}
		if tok, replay, audit := is.present(t, s); tok || replay || audit {
			t.Errorf("after cancelled tx: token %v, replay %v, audit %v; want none", tok, replay, audit)
		}
	})

	t.Run("DeadlineExceeded", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
		defer cancel()
		_, err := s.GetToken(ctx, "iss", "jti")
		wantErr(t, "GetToken", err, context.DeadlineExceeded)
	})
}
