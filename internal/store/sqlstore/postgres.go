package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

func openPostgres(ctx context.Context, rawURL string, o Options) (_ *DB, err error) {
	pool, err := sql.Open("pgx", rawURL)
	if err != nil {
		// pgx redacts the password in its own parse errors.
		return nil, fmt.Errorf("%w: PostgreSQL URL: %w", ErrInvalidInput, err)
	}
	defer func() {
		if err != nil {
			_ = pool.Close()
		}
	}()
	n := o.MaxOpenConns
	if n == 0 {
		n = 10
	}
	pool.SetMaxOpenConns(n)
	pool.SetMaxIdleConns(n)
	pool.SetConnMaxIdleTime(5 * time.Minute)

	d := newPostgresDialect()
	if err := pool.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("sqlstore: connect to %s: %w: %w", redactURL(rawURL), store.ErrUnavailable, err)
	}
	// A commit must be durable before InTx returns. synchronous_commit=off
	// (settable per role, database or URL) acknowledges before the WAL flush.
	var syncCommit, fsync string
	if err := pool.QueryRowContext(ctx, "SELECT current_setting('synchronous_commit'), current_setting('fsync')").Scan(&syncCommit, &fsync); err != nil {
		return nil, d.wrap("read settings", err)
	}
	if syncCommit == "off" {
		return nil, fmt.Errorf("%w: PostgreSQL synchronous_commit is off; set it to on", ErrNotDurable)
	}
	if fsync == "off" {
		// A server-wide choice of the operator (common on throwaway test
		// servers); warn rather than refuse.
		o.Logger.Warn("sqlstore: PostgreSQL runs with fsync=off; commits are not crash-safe")
	}
	o.Logger.Info("sqlstore: opened PostgreSQL database", "url", redactURL(rawURL), "max_conns", n)
	return &DB{d: d, log: o.Logger, write: pool, read: pool}, nil
}
