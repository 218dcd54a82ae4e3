package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// ErrSchemaTooNew means the database holds a migration this binary does not
// know: a newer xaa migrated it. Running would risk writing rows the newer
// schema does not expect.
var ErrSchemaTooNew = errors.New("sqlstore: database schema is newer than this binary")

type migration struct {
	version int64
	name    string // file name without .sql, e.g. "0001_init"
	sql     string
}

// loadMigrations reads dir's NNNN_name.sql files in version order.
func loadMigrations(dir string) ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, dir) // sorted by name
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		base, _ := strings.CutSuffix(e.Name(), ".sql")
		num, _, _ := strings.Cut(base, "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if err != nil || len(num) != 4 || v <= 0 || (len(ms) > 0 && v <= ms[len(ms)-1].version) {
			return nil, fmt.Errorf("sqlstore: bad or duplicate migration file %s/%s", dir, e.Name())
		}
		body, err := fs.ReadFile(migrationFiles, dir+"/"+e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(body)})
	}
	return ms, nil
}

// Migrate applies the migrations the database lacks, each in its own
// transaction, and returns their names. Re-running is a no-op. On
// PostgreSQL a session advisory lock (per schema) serializes instances that
// migrate at once; on SQLite each migration's BEGIN IMMEDIATE does.
func (db *DB) Migrate(ctx context.Context) (applied []string, err error) {
	ms, err := loadMigrations(db.d.migrationsDir)
	if err != nil {
		return nil, err
	}
	conn, err := db.write.Conn(ctx)
	if err != nil {
		return nil, db.d.wrap("migrate", err)
	}
	defer conn.Close()
	if db.d.name == DialectPostgres {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1, hashtext(current_schema()))`, migrateLockKey); err != nil {
			return nil, db.d.wrap("migrate: lock", err)
		}
		defer unlockMigrations(ctx, conn)
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return nil, db.d.wrap("migrate", err)
	}
	known := map[int64]bool{}
	for _, m := range ms {
		known[m.version] = true
	}
	done := map[int64]bool{}
	rows, err := conn.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, db.d.wrap("migrate", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, db.d.wrap("migrate", err)
		}
		if !known[v] {
			return nil, fmt.Errorf("%w: it has migration %d, this binary knows up to %d; upgrade xaa before using this database",
				ErrSchemaTooNew, v, ms[len(ms)-1].version)
		}
		done[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, db.d.wrap("migrate", err)
	}
	for _, m := range ms {
		if done[m.version] {
			continue
		}
		ran, err := applyMigration(ctx, conn, m)
		if err != nil {
			return applied, db.d.wrap("migrate "+m.name, err)
		}
		if ran {
			db.log.Info("sqlstore: applied migration", "migration", m.name, "dialect", db.d.name)
			applied = append(applied, m.name)
		}
	}
	return applied, nil
}

// applyMigration runs m in one transaction unless another process applied
// it since Migrate looked.
func applyMigration(ctx context.Context, conn *sql.Conn, m migration) (bool, error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback() }()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = $1`, m.version).Scan(&n); err != nil || n > 0 {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
		m.version, m.name, time.Now().UnixMilli()); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

// migrateLockKey is the first key of the PostgreSQL advisory lock ("XAA1");
// the second is a hash of the current schema.
const migrateLockKey = 0x58414131

// unlockMigrations releases the session lock even if ctx has ended. If that
// fails the connection is discarded, never returned to the pool still
// holding the lock.
func unlockMigrations(ctx context.Context, conn *sql.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1, hashtext(current_schema()))`, migrateLockKey); err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
}

// PendingMigrations returns the names of the migrations this binary has and
// the database lacks, without changing anything. Servers refuse to start
// while it is non-empty, so a schema change is always an operator's
// deliberate `xaa migrate`. A database with a newer schema is ErrSchemaTooNew.
func (db *DB) PendingMigrations(ctx context.Context) ([]string, error) {
	ms, err := loadMigrations(db.d.migrationsDir)
	if err != nil {
		return nil, err
	}
	exists := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`
	if db.d.name == DialectPostgres {
		exists = `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_migrations'`
	}
	var n int
	if err := db.read.QueryRowContext(ctx, exists).Scan(&n); err != nil {
		return nil, db.d.wrap("pending migrations", err)
	}
	done := map[int64]bool{}
	if n > 0 {
		rows, err := db.read.QueryContext(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return nil, db.d.wrap("pending migrations", err)
		}
		defer rows.Close()
		for rows.Next() {
			var v int64
			if err := rows.Scan(&v); err != nil {
				return nil, db.d.wrap("pending migrations", err)
			}
			done[v] = true
		}
		if err := rows.Err(); err != nil {
			return nil, db.d.wrap("pending migrations", err)
		}
	}
	known := map[int64]bool{}
	var pending []string
	for _, m := range ms {
		known[m.version] = true
		if !done[m.version] {
			pending = append(pending, m.name)
		}
	}
	for v := range done {
		if !known[v] {
			return nil, fmt.Errorf("%w: it has migration %d, this binary knows up to %d; upgrade xaa before using this database",
				ErrSchemaTooNew, v, ms[len(ms)-1].version)
		}
	}
	return pending, nil
}
