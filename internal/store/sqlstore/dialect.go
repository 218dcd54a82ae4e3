package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/openxaa/xaa/internal/store"
)

// Dialect names returned by (*DB).Dialect.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// dialect is everything that differs between SQLite and PostgreSQL. The DML
// is shared: both accept $N placeholders, ON CONFLICT DO NOTHING and
// RETURNING. Only DDL (in the per-dialect migrations directory), row locking
// and error codes differ.
type dialect struct {
	name          string
	migrationsDir string

	// Queries that read a row the transaction writes back. PostgreSQL takes
	// a row lock (FOR UPDATE); SQLite needs none because BEGIN IMMEDIATE
	// already holds the database's single write lock.
	selectKeyForUpdate string

	// revokeToken revokes one token and gives it the next revocation
	// cursor, keeping both from its first revocation. The cursor must
	// become visible in increasing order; see the 0004 migrations.
	revokeToken string
	// raiseFence inserts or raises a fence and gives a change the next
	// cursor of the same sequence as revokeToken.
	raiseFence string

	// snapshot is how VerifyAudit and ScanAudit read the records and the
	// chain heads consistently.
	snapshot *sql.TxOptions

	// classify maps a driver error to a store sentinel, or returns nil.
	classify func(error) error
}

func newSQLiteDialect() *dialect {
	return &dialect{
		name:               DialectSQLite,
		migrationsDir:      "migrations/sqlite",
		selectKeyForUpdate: selectKeySQL,
		revokeToken:        revokeTokenSQLite,
		raiseFence:         raiseFenceSQLite,
		snapshot:           &sql.TxOptions{ReadOnly: true},
		classify:           classifySQLite,
	}
}

func newPostgresDialect() *dialect {
	return &dialect{
		name:               DialectPostgres,
		migrationsDir:      "migrations/postgres",
		selectKeyForUpdate: selectKeySQL + " FOR UPDATE",
		revokeToken:        revokeTokenPostgres,
		raiseFence:         raiseFencePostgres,
		snapshot:           &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true},
		classify:           classifyPostgres,
	}
}

// wrap annotates err with the operation and, where it can tell, with the
// store sentinel that callers match with errors.Is. The driver error stays
// in the chain for logs.
func (d *dialect) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlstore: %s: %w", op, store.ErrNotFound)
	}
	if s := classifyCommon(err); s != nil {
		return fmt.Errorf("sqlstore: %s: %w: %w", op, s, err)
	}
	if s := d.classify(err); s != nil {
		return fmt.Errorf("sqlstore: %s: %w: %w", op, s, err)
	}
	return fmt.Errorf("sqlstore: %s: %w", op, err)
}

// classifyCommon recognises failures that mean "the database did not
// answer" whatever the driver. A cancelled context is the caller's choice,
// not an outage, so it is left alone (errors.Is(err, context.Canceled)
// still holds).
func classifyCommon(err error) error {
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.As(err, &netErr):
		return store.ErrUnavailable
	}
	return nil
}

func classifySQLite(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return nil
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return store.ErrConflict
	}
	switch se.Code() & 0xff { // primary result code
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN,
		sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL:
		return store.ErrUnavailable
	}
	return nil
}

func classifyPostgres(err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || pgconn.Timeout(err) {
		return store.ErrUnavailable
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return nil
	}
	switch {
	case pe.Code == "23505": // unique_violation
		return store.ErrConflict
	case strings.HasPrefix(pe.Code, "08"), // connection exception
		strings.HasPrefix(pe.Code, "53"), // insufficient resources
		pe.Code == "40001",               // serialization_failure
		pe.Code == "40P01",               // deadlock_detected
		pe.Code == "57P01",               // admin_shutdown
		pe.Code == "57P02",               // crash_shutdown
		pe.Code == "57P03":               // cannot_connect_now
		// Retryable: the caller fails closed with a retryable error.
		return store.ErrUnavailable
	}
	return nil
}
