package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/store"
)

// holdBatch starts an InTx whose fn blocks until release is called, so the
// callers started meanwhile queue up and form the next batch together.
func holdBatch(t *testing.T, db *DB) (release func()) {
	t.Helper()
	started, unblock := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- db.InTx(t.Context(), func(tx store.Tx) error {
			close(started)
			<-unblock
			return tx.AppendAudit(t.Context(), &store.AuditEvent{Type: "blocker"})
		})
	}()
	<-started
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(unblock)
			if err := <-errc; err != nil {
				t.Errorf("blocking InTx: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

// waitQueued waits until n callers wait for the next batch.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	for {
		db.gc.mu.Lock()
		got := len(db.gc.queue)
		db.gc.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("only %d of %d callers queued", got, n)
		case <-time.After(time.Millisecond):
		}
	}
}

func openGroupCommitDB(t *testing.T) *DB {
	t.Helper()
	db := mustOpenMigrated(t, sqliteTestURL(filepath.Join(t.TempDir(), "xaa.db")))
	if db.gc == nil {
		t.Fatal("SQLite store has no group committer")
	}
	return db
}

func present(t *testing.T, db *DB, jti string) bool {
	t.Helper()
	_, err := db.GetToken(t.Context(), "iss", jti)
	switch {
	case err == nil:
		return true
	case errors.Is(err, store.ErrNotFound):
		return false
	}
	t.Fatalf("GetToken(%s): %v", jti, err)
	return false
}

// TestGroupCommitIsolatesFailures batches 64 callers of which every third
// fails in a different way after writing: its own error, a replay conflict
// and a constraint violation raised by SQLite. Exactly the others' writes
// must commit, and the audit chain must stay gapless.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	t.Parallel()
	db := openGroupCommitDB(t)
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	if err := db.RecordOnce(ctx, store.ReplayEntry{Namespace: store.NamespaceIDJAG, Issuer: "iss", JTI: "used", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []store.SigningKey{
		{KID: "a", Owner: "o", Algorithm: "ES256", State: store.KeyActive, PublicJWK: []byte(`{}`), CreatedAt: time.Now()},
		{KID: "b", Owner: "o", Algorithm: "ES256", State: store.KeyNext, PublicJWK: []byte(`{}`), CreatedAt: time.Now()},
	} {
		if err := db.CreateSigningKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	errBoom := errors.New("boom")
	const callers = 64
	want := func(i int) error {
		switch i % 9 {
		case 0:
			return errBoom
		case 3:
			return store.ErrReplay
		case 6:
			return store.ErrConflict
		}
		return nil
	}

	release := holdBatch(t, db)
	commitsBefore := db.gc.commits.Load()
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			jti := fmt.Sprintf("jti-%02d", i)
			errs[i] = db.InTx(ctx, func(tx store.Tx) error {
				tok := store.IssuedToken{Issuer: "iss", JTI: jti, Kind: store.TokenKindAccessToken, IssuedAt: time.Now(), ExpiresAt: exp}
				if err := tx.RecordToken(ctx, tok); err != nil {
					return err
				}
				if _, err := tx.GetToken(ctx, "iss", jti); err != nil {
					return fmt.Errorf("own write not visible: %w", err)
				}
				if err := tx.AppendAudit(ctx, &store.AuditEvent{Type: "token.issued", RequestID: jti}); err != nil {
					return err
				}
				switch i % 9 {
				case 0:
					return errBoom
				case 3:
					return tx.RecordOnce(ctx, store.ReplayEntry{Namespace: store.NamespaceIDJAG, Issuer: "iss", JTI: "used", ExpiresAt: exp})
				case 6: // a second active key: the unique index fails the UPDATE
					return tx.UpdateSigningKey(ctx, "o", "b", func(k store.SigningKey) (store.SigningKey, error) {
						k.State = store.KeyActive
						return k, nil
					})
				}
				return tx.RecordOnce(ctx, store.ReplayEntry{Namespace: store.NamespaceIDJAG, Issuer: "iss", JTI: jti, ExpiresAt: exp})
			})
		})
	}
	waitQueued(t, db, callers)
	release()
	wg.Wait()

	if got := db.gc.commits.Load() - commitsBefore; got != 2 {
		t.Errorf("%d commits for the blocker and %d queued callers, want 2", got, callers)
	}
	var wantIDs, gotIDs []string
	for i, err := range errs {
		jti := fmt.Sprintf("jti-%02d", i)
		if w := want(i); w == nil && err != nil || w != nil && !errors.Is(err, w) {
			t.Errorf("caller %d: InTx = %v, want %v", i, err, w)
		}
		ok := want(i) == nil
		if ok {
			wantIDs = append(wantIDs, jti)
		}
		if got := present(t, db, jti); got != ok {
			t.Errorf("caller %d: token present = %v, want %v", i, got, ok)
		}
		replayErr := db.RecordOnce(ctx, store.ReplayEntry{Namespace: store.NamespaceIDJAG, Issuer: "iss", JTI: jti, ExpiresAt: exp})
		if got := errors.Is(replayErr, store.ErrReplay); got != ok {
			t.Errorf("caller %d: replay row present = %v (%v), want %v", i, got, replayErr, ok)
		}
	}
	events, err := db.ListAudit(ctx, store.AuditFilter{Type: "token.issued", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		gotIDs = append(gotIDs, ev.RequestID)
	}
	slices.Sort(gotIDs)
	if diff := cmp.Diff(wantIDs, gotIDs); diff != "" {
		t.Errorf("audited request IDs (-want +got):\n%s", diff)
	}
	n, err := db.VerifyAuditChain(ctx)
	if err != nil || n != int64(len(wantIDs)+1) {
		t.Errorf("VerifyAuditChain = %d, %v; want %d, nil", n, err, len(wantIDs)+1)
	}
	keys, err := db.ListSigningKeys(ctx, "o")
	if err != nil || len(keys) != 2 || keys[1].State != store.KeyNext {
		t.Errorf("signing keys after failed promotions = %+v, %v", keys, err)
	}
}

// TestGroupCommitPanicAndGoexitInBatch: a fn that panics or calls
// runtime.Goexit (t.FailNow does) unwinds its own caller only; its writes
// roll back and the rest of the batch commits.
func TestGroupCommitPanicAndGoexitInBatch(t *testing.T) {
	t.Parallel()
	db := openGroupCommitDB(t)
	ctx := t.Context()
	type result struct {
		err       error
		recovered any
		exited    bool
	}
	const callers = 6
	results := make([]result, callers)
	release := holdBatch(t, db)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			returned := false
			defer func() {
				results[i].recovered = recover()
				results[i].exited = !returned && results[i].recovered == nil
			}()
			results[i].err = db.InTx(ctx, func(tx store.Tx) error {
				jti := fmt.Sprintf("jti-%d", i)
				now := time.Now()
				if err := tx.RecordToken(ctx, store.IssuedToken{Issuer: "iss", JTI: jti, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
					return err
				}
				if err := tx.AppendAudit(ctx, &store.AuditEvent{Type: "t", RequestID: jti}); err != nil {
					return err
				}
				switch i {
				case 1:
					panic("fn panicked")
				case 4:
					runtime.Goexit()
				}
				return nil
			})
			returned = true
		}()
	}
	waitQueued(t, db, callers)
	release()
	wg.Wait()

	for i, r := range results {
		wantPanic, wantExit := i == 1, i == 4
		ok := !wantPanic && !wantExit
		switch {
		case wantPanic && r.recovered != "fn panicked":
			t.Errorf("caller %d: recovered %v, want the panic", i, r.recovered)
		case wantExit && !r.exited:
			t.Errorf("caller %d: did not exit via Goexit (%+v)", i, r)
		case ok && (r.err != nil || r.recovered != nil || r.exited):
			t.Errorf("caller %d: %+v, want success", i, r)
		}
		if got := present(t, db, fmt.Sprintf("jti-%d", i)); got != ok {
			t.Errorf("caller %d: token present = %v, want %v", i, got, ok)
		}
	}
	if n, err := db.VerifyAuditChain(ctx); err != nil || n != callers-2+1 {
		t.Errorf("VerifyAuditChain = %d, %v; want %d, nil", n, err, callers-2+1)
	}
}

// TestGroupCommitCancelWhileQueued: a caller whose context ends while it
// waits for a batch leaves at once with the context's error, and its fn
// never runs.
func TestGroupCommitCancelWhileQueued(t *testing.T) {
	t.Parallel()
	db := openGroupCommitDB(t)
	release := holdBatch(t, db)

	cancelCtx, cancel := context.WithCancel(t.Context())
	deadlineCtx, cancelDeadline := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancelDeadline()
	var called sync.Map
	errc := make(chan error, 2)
	for _, ctx := range []context.Context{cancelCtx, deadlineCtx} {
		go func() {
			errc <- db.InTx(ctx, func(tx store.Tx) error {
				called.Store(ctx, true)
				return tx.AppendAudit(ctx, &store.AuditEvent{Type: "cancelled"})
			})
		}()
	}
	waitQueued(t, db, 2)
	cancel()
	// Both return while the blocker still holds the write connection.
	for range 2 {
		err := <-errc
		switch {
		case errors.Is(err, context.Canceled):
		case errors.Is(err, context.DeadlineExceeded) && errors.Is(err, store.ErrUnavailable):
		default:
			t.Errorf("queued InTx = %v, want context.Canceled or ErrUnavailable+DeadlineExceeded", err)
		}
	}
	db.gc.mu.Lock()
	left := len(db.gc.queue)
	db.gc.mu.Unlock()
	if left != 0 {
		t.Errorf("%d callers still queued after cancellation", left)
	}
	release()
	called.Range(func(k, _ any) bool {
		t.Errorf("fn ran for a caller cancelled while queued")
		return false
	})
	if n, err := db.VerifyAuditChain(t.Context()); err != nil || n != 1 {
		t.Errorf("VerifyAuditChain = %d, %v; want 1 (the blocker), nil", n, err)
	}
}

// TestGroupCommitBusyFailsBatch: when another process holds the write lock
// past busy_timeout, BEGIN fails with SQLITE_BUSY and every caller of the
// batch gets ErrUnavailable with nothing written; the store then recovers.
func TestGroupCommitBusyFailsBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for SQLite's 5 s busy_timeout")
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "xaa.db")
	db := mustOpenMigrated(t, sqliteTestURL(path))
	other, err := sql.Open("sqlite", sqliteDSN(path, false))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	otherTx, err := other.BeginTx(t.Context(), nil) // BEGIN IMMEDIATE: holds the write lock
	if err != nil {
		t.Fatal(err)
	}
	defer otherTx.Rollback()

	const callers = 8
	errc := make(chan error, callers)
	for range callers {
		go func() {
			errc <- db.InTx(t.Context(), func(tx store.Tx) error {
				return tx.AppendAudit(t.Context(), &store.AuditEvent{Type: "busy"})
			})
		}()
	}
	for range callers {
		if err := <-errc; !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("InTx while another process holds the lock = %v, want ErrUnavailable", err)
		}
	}
	if err := otherTx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := db.InTx(t.Context(), func(tx store.Tx) error {
		return tx.AppendAudit(t.Context(), &store.AuditEvent{Type: "after"})
	}); err != nil {
		t.Fatalf("InTx after the lock was released: %v", err)
	}
	if n, err := db.VerifyAuditChain(t.Context()); err != nil || n != 1 {
		t.Errorf("VerifyAuditChain = %d, %v; want 1, nil", n, err)
	}
}

// TestGroupCommitTxUnusableAfterFn: a tx kept past fn's return must not
// write into a later caller's part of a batch.
func TestGroupCommitTxUnusableAfterFn(t *testing.T) {
	t.Parallel()
	db := openGroupCommitDB(t)
	ctx := t.Context()
	var kept store.Tx
	if err := db.InTx(ctx, func(tx store.Tx) error { kept = tx; return nil }); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := kept.RecordToken(ctx, store.IssuedToken{Issuer: "iss", JTI: "late", IssuedAt: now, ExpiresAt: now.Add(time.Hour)}); !errors.Is(err, sql.ErrTxDone) {
		t.Errorf("RecordToken on a kept tx = %v, want sql.ErrTxDone", err)
	}
	if _, err := kept.GetToken(ctx, "iss", "late"); err == nil {
		t.Error("GetToken on a kept tx succeeded")
	}
	if present(t, db, "late") {
		t.Error("write through a kept tx was stored")
	}
}

// TestStmtCache: within one batch transaction a statement is prepared once
// and reused; a statement that cannot be prepared yields nil, so the caller
// runs it unprepared and reports the real error.
func TestStmtCache(t *testing.T) {
	t.Parallel()
	db := mustOpenMigrated(t, sqliteTestURL(filepath.Join(t.TempDir(), "xaa.db")))
	ctx := t.Context()
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	c := &stmtCache{tx: tx}
	a1, a2 := c.get(ctx, "SELECT 1"), c.get(ctx, "SELECT 1")
	if a1 == nil || a1 != a2 {
		t.Fatalf("same query: %p then %p, want one prepared statement", a1, a2)
	}
	if b := c.get(ctx, "SELECT 2"); b == nil || b == a1 {
		t.Fatalf("another query got %p", b)
	}
	if bad := c.get(ctx, "SELEKT nonsense"); bad != nil {
		t.Fatal("a statement that cannot be prepared was cached")
	}
	if len(c.m) != 2 {
		t.Fatalf("cache holds %d statements, want 2", len(c.m))
	}
	q := &txQuerier{tx: tx, ctx: ctx, stmts: c}
	if _, err := q.ExecContext(ctx, "SELEKT nonsense"); err == nil {
		t.Fatal("a broken statement ran")
	}
	var n int
	if err := q.QueryRowContext(ctx, "SELECT 1").Scan(&n); err != nil || n != 1 {
		t.Fatalf("cached query: %d %v", n, err)
	}
	var nilCache *stmtCache
	if nilCache.get(ctx, "SELECT 1") != nil {
		t.Fatal("a nil cache returned a statement")
	}
}
