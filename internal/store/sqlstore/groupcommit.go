package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/openxaa/xaa/internal/store"
)

// maxBatch bounds how many InTx callers share one SQLite commit, so one
// batch cannot hold the write lock (and its callers' latency) for long.
const maxBatch = 64

// Each caller's fn runs inside this savepoint; it is released or rolled back
// before the next caller's opens, so one name serves the whole batch.
const (
	savepointSQL  = `SAVEPOINT xaa_intx`
	releaseSQL    = `RELEASE xaa_intx`
	rollbackToSQL = `ROLLBACK TO xaa_intx`
)

// committer implements group commit for SQLite's single writer connection.
// With synchronous=FULL every commit costs an fsync, and commits are serial,
// so one transaction per InTx caps throughput at the disk's fsync rate.
// Instead, concurrent InTx callers share one transaction: each caller's fn
// runs in its own savepoint (so a failure rolls back only that caller), and
// one COMMIT makes the whole batch durable before any caller is told it
// succeeded. Durable before visible holds: a caller sees nil only after the
// COMMIT has returned.
//
// A run goroutine, started when the first caller queues and ending when the
// queue is empty, owns the connection: it begins the transaction, claims
// whatever callers are queued, hands each its savepoint in turn and waits
// for it, then commits. A lone caller is committed at once; batches form
// only from callers that arrive while a commit is in progress. Each fn runs
// on its caller's own goroutine, so a panic or runtime.Goexit in fn unwinds
// that caller only.
type committer struct {
	d    *dialect
	pool *sql.DB // the single-connection write pool
	log  *slog.Logger

	mu      sync.Mutex
	queue   []*txRequest // waiting callers whose fn has not started
	running bool         // a run goroutine is active

	commits atomic.Int64 // COMMITs issued; lets tests see batching
}

func newCommitter(d *dialect, pool *sql.DB, log *slog.Logger) *committer {
	return &committer{d: d, pool: pool, log: log}
}

// txRequest is one InTx caller. The channels are buffered so the run
// goroutine never blocks on a caller and vice versa.
type txRequest struct {
	ctx context.Context
	fn  func(store.Tx) error
	// taken is set, under committer.mu, when a batch claims the request.
	// From then on the caller must wait for run or done even if its
	// context ends.
	taken bool
	run   chan store.Tx // the caller's savepoint is open: run fn on this
	ran   chan bool     // fn returned nil (true), or failed, panicked or exited (false)
	done  chan error    // the outcome: after the commit, or after the rollback of a failed fn
}

// inTx queues fn and waits for its batch. See DB.InTx for the contract.
func (c *committer) inTx(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return c.d.wrap("begin", err)
	}
	r := &txRequest{ctx: ctx, fn: fn, run: make(chan store.Tx, 1), ran: make(chan bool, 1), done: make(chan error, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, r)
	if !c.running {
		c.running = true
		go c.loop()
	}
	c.mu.Unlock()

	select {
	case tx := <-r.run:
		return r.execute(tx)
	case err := <-r.done:
		return err
	case <-ctx.Done():
	}
	c.mu.Lock()
	if !r.taken {
		// fn never started: leave the queue; nothing was written.
		c.queue = slices.DeleteFunc(c.queue, func(q *txRequest) bool { return q == r })
		c.mu.Unlock()
		return c.d.wrap("begin", ctx.Err())
	}
	c.mu.Unlock()
	// A batch claimed r just before the cancellation: it sees the
	// cancelled context and fails r without running fn, or (in a narrow
	// race) runs fn, whose statements then fail on the cancelled context.
	select {
	case tx := <-r.run:
		return r.execute(tx)
	case err := <-r.done:
		return err
	}
}

// execute runs fn on the caller's goroutine inside its savepoint. If fn
// fails, panics or calls runtime.Goexit, it waits until the savepoint is
// rolled back before returning fn's error or letting the panic continue,
// as a plain transaction would. If fn succeeds it waits for the commit.
func (r *txRequest) execute(tx store.Tx) error {
	ok := false
	defer func() {
		if !ok {
			r.ran <- false
			<-r.done
		}
	}()
	if err := r.fn(tx); err != nil {
		return err
	}
	ok = true
	r.ran <- true
	return <-r.done
}

// loop runs batches until no caller is waiting.
func (c *committer) loop() {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.batch()
	}
}

// claim takes up to maxBatch waiting callers, oldest first.
func (c *committer) claim() []*txRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(c.queue), maxBatch)
	reqs := slices.Clone(c.queue[:n])
	c.queue = slices.Delete(c.queue, 0, n)
	for _, r := range reqs {
		r.taken = true
	}
	return reqs
}

// batch runs one transaction for the callers queued once it holds the
// write lock. Its statements use a context no caller can cancel: a
// cancelled statement makes SQLite interrupt it, and an interrupted write
// rolls back the whole transaction, other callers' work included.
func (c *committer) batch() {
	ctx := context.Background()
	conn, err := c.pool.Conn(ctx)
	var tx *sql.Tx
	if err == nil {
		// BEGIN IMMEDIATE (the DSN's _txlock): waits up to busy_timeout
		// for another process's write lock. Callers may leave the queue
		// meanwhile.
		if tx, err = conn.BeginTx(ctx, nil); err != nil {
			_ = conn.Close()
		}
	}
	reqs := c.claim()
	if err != nil {
		err = c.d.wrap("begin", err)
		for _, r := range reqs {
			r.done <- err
		}
		return
	}

	// One batch runs the same few statements once per caller: prepare
	// each once per transaction (SQLite re-parses every unprepared one).
	stmts := &stmtCache{tx: tx}
	var (
		succeeded []*txRequest // fn returned nil and its savepoint was released
		batchErr  error        // the transaction is unusable: fail everyone in it
		// A lone caller needs no savepoint: if its fn fails, the whole
		// transaction rolls back below.
		savepoints = len(reqs) > 1
		failed     *txRequest // the lone caller, if its fn failed
		failedErr  error
	)
	for _, r := range reqs {
		if batchErr != nil {
			r.done <- batchErr
			continue
		}
		if err := r.ctx.Err(); err != nil {
			r.done <- c.d.wrap("begin", err)
			continue
		}
		if savepoints {
			if _, err := tx.ExecContext(ctx, savepointSQL); err != nil {
				batchErr = c.d.wrap("savepoint", err)
				r.done <- batchErr
				continue
			}
		}
		q := &txQuerier{tx: tx, ctx: ctx, stmts: stmts}
		r.run <- &ops{d: c.d, w: q, r: q}
		ok := <-r.ran
		q.closed.Store(true)
		var ackErr error // nil: the caller returns fn's own error (or panics)
		if ok && r.ctx.Err() != nil {
			// Cancelled before its commit: like a plain transaction, it
			// must not commit. Once released below, it waits for COMMIT.
			ok, ackErr = false, c.d.wrap("commit", r.ctx.Err())
		}
		if ok && !savepoints {
			succeeded = append(succeeded, r)
			continue
		}
		if !savepoints {
			// Answered once the transaction has rolled back, below.
			failed, failedErr = r, ackErr
			continue
		}
		if ok {
			if _, err := tx.ExecContext(ctx, releaseSQL); err != nil {
				// For example fn swallowed an error after which SQLite
				// had rolled back the whole transaction.
				batchErr = c.d.wrap("release savepoint", err)
				r.done <- batchErr
				continue
			}
			succeeded = append(succeeded, r)
			continue
		}
		_, err := tx.ExecContext(ctx, rollbackToSQL)
		if err == nil {
			_, err = tx.ExecContext(ctx, releaseSQL)
		}
		if err != nil {
			batchErr = c.d.wrap("rollback to savepoint", err)
		}
		r.done <- ackErr
	}

	switch {
	case batchErr != nil:
		_ = tx.Rollback()
		c.discard(conn)
	case len(succeeded) == 0:
		if err := tx.Rollback(); err != nil {
			c.discard(conn)
		}
	default:
		c.commits.Add(1)
		if err := tx.Commit(); err != nil {
			batchErr = c.d.wrap("commit", err)
			c.discard(conn)
		}
	}
	_ = conn.Close()
	if batchErr != nil {
		c.log.Error("sqlstore: group commit failed; every caller in the batch gets the error",
			"callers", len(reqs), "err", batchErr)
	}
	for _, r := range succeeded {
		r.done <- batchErr
	}
	if failed != nil {
		failed.done <- failedErr
	}
}

// discard closes the connection instead of returning it to the pool: after
// a failed COMMIT or savepoint rollback SQLite may still have a transaction
// open on it, and the next writer must not inherit that. A new connection
// gets the DSN's pragmas.
func (c *committer) discard(conn *sql.Conn) {
	if err := conn.Raw(func(any) error { return driver.ErrBadConn }); err != nil && !errors.Is(err, driver.ErrBadConn) {
		c.log.Warn("sqlstore: discarding write connection", "err", err)
	}
}

// txQuerier is what one caller's fn sees of the batch transaction. It runs
// statements under the batch's uncancellable context, checking the
// caller's context before each one instead (see batch), and refuses use
// after fn has returned, when the transaction belongs to other callers.
type txQuerier struct {
	tx     *sql.Tx
	ctx    context.Context
	stmts  *stmtCache
	closed atomic.Bool
}

// stmtCache holds the statements prepared on one batch transaction; they
// close with it. Callers of a batch run one at a time, but a caller may
// use its querier from several goroutines, hence the lock.
type stmtCache struct {
	tx *sql.Tx
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// get returns query prepared on the transaction, or nil when preparing
// fails (the caller then runs it unprepared and gets the real error).
func (c *stmtCache) get(ctx context.Context, query string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st
	}
	st, err := c.tx.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	if c.m == nil {
		c.m = make(map[string]*sql.Stmt)
	}
	c.m[query] = st
	return st
}

func (q *txQuerier) check(ctx context.Context) error {
	if q.closed.Load() {
		return sql.ErrTxDone
	}
	return ctx.Err()
}

func (q *txQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := q.check(ctx); err != nil {
		return nil, err
	}
	if st := q.stmts.get(q.ctx, query); st != nil {
		return st.ExecContext(q.ctx, args...)
	}
	return q.tx.ExecContext(q.ctx, query, args...)
}

func (q *txQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if err := q.check(ctx); err != nil {
		return nil, err
	}
	if st := q.stmts.get(q.ctx, query); st != nil {
		return st.QueryContext(q.ctx, args...)
	}
	return q.tx.QueryContext(q.ctx, query, args...)
}

// QueryRowContext cannot return its own error in a *sql.Row. Given a done
// context, database/sql returns a Row holding ctx.Err() without reaching
// the driver, so a refused call passes one.
func (q *txQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if err := q.check(ctx); err != nil {
		if ctx.Err() == nil { // used after fn returned
			done, cancel := context.WithCancel(context.Background())
			cancel()
			ctx = done
		}
		return q.tx.QueryRowContext(ctx, query, args...)
	}
	if st := q.stmts.get(q.ctx, query); st != nil {
		return st.QueryRowContext(q.ctx, args...)
	}
	return q.tx.QueryRowContext(q.ctx, query, args...)
}
