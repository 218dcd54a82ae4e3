package sqlstore

import "context"

// QueryRowForTest runs a raw single-row query on the write pool, for the
// external tests' integrity checks.
func QueryRowForTest(ctx context.Context, db *DB, query string, dest ...any) error {
	return db.write.QueryRowContext(ctx, query).Scan(dest...)
}
