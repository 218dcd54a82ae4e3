// Package sqlstore is OpenXAA's database/sql storage backend for SQLite
// (embedded, the default) and PostgreSQL (shared by any number of instances).
//
// One SQL text serves both databases wherever they agree ($N placeholders,
// ON CONFLICT DO NOTHING); the differences live in a small dialect struct and
// in per-dialect migrations. Times are stored as Unix milliseconds (UTC) and
// JSON as TEXT.
//
// Durability is part of the contract: when InTx returns nil the commit is on
// disk. On SQLite that means WAL with synchronous=FULL, checked at Open; on
// PostgreSQL, synchronous_commit must not be off.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver

	"github.com/openxaa/xaa/internal/store"
)

// ErrInvalidInput means a value cannot be stored as given, for example an
// empty jti, a zero expiry, or text that is not valid UTF-8 or contains NUL.
var ErrInvalidInput = errors.New("sqlstore: invalid input")

// Options tunes Open. A nil *Options means the defaults.
type Options struct {
	// Logger receives operational messages (never values). Default: discard.
	Logger *slog.Logger
	// MaxOpenConns bounds the read pool on SQLite (the write pool always
	// has exactly one connection) and the whole pool on PostgreSQL.
	// Default: 4 on SQLite, 10 on PostgreSQL.
	MaxOpenConns int
}

// DB is a SQLite or PostgreSQL store. It implements every aggregate
// interface of package store outside a transaction (each call is its own
// short transaction) and store.Transactor for work that must commit together.
type DB struct {
	d   *dialect
	log *slog.Logger
	// write serves every write and every InTx. On SQLite it has exactly one
	// connection, so writers queue in Go instead of failing with SQLITE_BUSY.
	write *sql.DB
	// read serves reads outside transactions. On PostgreSQL it is write.
	read *sql.DB
	// gc batches InTx callers into shared commits on SQLite; nil on
	// PostgreSQL, where each InTx is its own transaction on its own
	// connection and commits already proceed in parallel.
	gc *committer
}

// Open connects to the database named by rawURL:
//
//	sqlite:///abs/path/xaa.db, sqlite:relative.db, file:/abs/path/xaa.db
//	postgres://user@host:5432/db?sslmode=verify-full (or postgresql://)
//
// Open does not migrate; call Migrate. SQLite files are created with mode
// 0600, and an existing file that group or others may read or write is
// refused.
func Open(ctx context.Context, rawURL string, opts *Options) (*DB, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxOpenConns < 0 {
		return nil, fmt.Errorf("%w: MaxOpenConns %d is negative", ErrInvalidInput, o.MaxOpenConns)
	}
	scheme, _, ok := strings.Cut(rawURL, ":")
	if !ok {
		return nil, fmt.Errorf("%w: database URL has no scheme (want sqlite:, file: or postgres:)", ErrInvalidInput)
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "file":
		path, err := sqlitePath(rawURL)
		if err != nil {
			return nil, err
		}
		return openSQLite(ctx, path, o)
	case "postgres", "postgresql":
		return openPostgres(ctx, rawURL, o)
	default:
		return nil, fmt.Errorf("%w: unsupported database URL scheme %q (want sqlite:, file: or postgres:)", ErrInvalidInput, scheme)
	}
}

// Close closes the connection pools.
func (db *DB) Close() error {
	err := db.write.Close()
	if db.read != db.write {
		err = errors.Join(err, db.read.Close())
	}
	return err
}

// Dialect returns DialectSQLite or DialectPostgres.
func (db *DB) Dialect() string { return db.d.name }

// Ping reports whether the database answers; any failure is
// store.ErrUnavailable. On SQLite it uses the read pool, so a long write
// transaction holding the single write connection does not make a
// readiness probe fail.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.read.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: ping: %w: %w", store.ErrUnavailable, err)
	}
	return nil
}

// InTx runs fn in one write transaction. If fn returns an error or panics,
// everything it wrote is rolled back and fn's error is returned as is (the
// panic continues). When InTx returns nil the commit is durable.
//
// On PostgreSQL each InTx is its own READ COMMITTED transaction. On SQLite,
// concurrent InTx calls share one BEGIN IMMEDIATE transaction and one
// COMMIT (group commit): each fn runs in its own savepoint, so a failing fn
// rolls back only its own writes, and every fn that succeeded gets nil only
// after the shared COMMIT, or the COMMIT's error. A later fn in a batch may
// read an earlier one's writes before they commit; they then commit or fail
// together. If ctx ends before fn starts, InTx returns ctx's error without
// running fn; once fn has succeeded, InTx waits for the commit.
//
// fn must use only tx, and only until it returns: on SQLite the
// transaction holds the single write connection, so calling the *DB's write
// methods from inside fn would wait for it until ctx ends.
func (db *DB) InTx(ctx context.Context, fn func(tx store.Tx) error) error {
	if db.gc != nil {
		return db.gc.inTx(ctx, fn)
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return db.d.wrap("begin", err)
	}
	// Rolls back on error, panic and runtime.Goexit; a no-op after Commit.
	defer func() { _ = tx.Rollback() }()
	if err := fn(&ops{d: db.d, w: tx, r: tx}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return db.d.wrap("commit", err)
	}
	return nil
}

// auto returns the aggregate operations in autocommit mode.
func (db *DB) auto() *ops { return &ops{d: db.d, w: db.write, r: db.read} }

// RecordOnce implements store.Replay.
func (db *DB) RecordOnce(ctx context.Context, e store.ReplayEntry) error {
	return db.auto().RecordOnce(ctx, e)
}

// PruneReplay implements store.Replay.
func (db *DB) PruneReplay(ctx context.Context, before time.Time) (int64, error) {
	return db.auto().PruneReplay(ctx, before)
}

// RecordToken implements store.Tokens.
func (db *DB) RecordToken(ctx context.Context, t store.IssuedToken) error {
	return db.auto().RecordToken(ctx, t)
}

// GetToken implements store.Tokens.
func (db *DB) GetToken(ctx context.Context, issuer, jti string) (store.IssuedToken, error) {
	return db.auto().GetToken(ctx, issuer, jti)
}

// RevokeToken implements store.Tokens.
func (db *DB) RevokeToken(ctx context.Context, issuer, jti string, at time.Time) error {
	return db.auto().RevokeToken(ctx, issuer, jti, at)
}

// ListRevokedTokens implements store.Tokens.
func (db *DB) ListRevokedTokens(ctx context.Context, issuer string, afterCursor int64, limit int) ([]store.RevokedToken, int64, error) {
	return db.auto().ListRevokedTokens(ctx, issuer, afterCursor, limit)
}

// RaiseFence implements store.Fences in its own write transaction.
func (db *DB) RaiseFence(ctx context.Context, f store.Fence) (out store.Fence, changed bool, err error) {
	err = db.InTx(ctx, func(tx store.Tx) (err error) {
		out, changed, err = tx.RaiseFence(ctx, f)
		return err
	})
	if err != nil {
		return store.Fence{}, false, err
	}
	return out, changed, nil
}

// FenceNotBefore implements store.Fences.
func (db *DB) FenceNotBefore(ctx context.Context, issuer, clientID, subject string) (time.Time, error) {
	return db.auto().FenceNotBefore(ctx, issuer, clientID, subject)
}

// ListFences implements store.Fences.
func (db *DB) ListFences(ctx context.Context, issuer string, afterCursor int64, limit int) ([]store.Fence, int64, error) {
	return db.auto().ListFences(ctx, issuer, afterCursor, limit)
}

// ListRevocations implements store.Fences.
func (db *DB) ListRevocations(ctx context.Context, issuer string, afterCursor int64, limit int) ([]store.Revocation, int64, error) {
	return db.auto().ListRevocations(ctx, issuer, afterCursor, limit)
}

// AppendAudit implements store.Audit. e is updated only if the event
// committed.
func (db *DB) AppendAudit(ctx context.Context, e *store.AuditEvent) error {
	if e == nil {
		return fmt.Errorf("%w: nil audit event", ErrInvalidInput)
	}
	ev := *e
	if err := db.InTx(ctx, func(tx store.Tx) error { return tx.AppendAudit(ctx, &ev) }); err != nil {
		return err
	}
	*e = ev
	return nil
}

// ListAudit implements store.Audit.
func (db *DB) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	return db.auto().ListAudit(ctx, f)
}

// AuditHeads returns every audit stream's head, in stream name order
// (audit.HeadReader).
func (db *DB) AuditHeads(ctx context.Context) ([]store.AuditHead, error) {
	return db.auto().AuditHeads(ctx)
}

// CreateSigningKey implements store.SigningKeys.
func (db *DB) CreateSigningKey(ctx context.Context, k store.SigningKey) error {
	return db.auto().CreateSigningKey(ctx, k)
}

// ListSigningKeys implements store.SigningKeys.
func (db *DB) ListSigningKeys(ctx context.Context, owner string) ([]store.SigningKey, error) {
	return db.auto().ListSigningKeys(ctx, owner)
}

// UpdateSigningKey implements store.SigningKeys in its own write
// transaction.
func (db *DB) UpdateSigningKey(ctx context.Context, owner, kid string, fn func(store.SigningKey) (store.SigningKey, error)) error {
	return db.InTx(ctx, func(tx store.Tx) error { return tx.UpdateSigningKey(ctx, owner, kid, fn) })
}

// CreateClient implements store.Clients.
func (db *DB) CreateClient(ctx context.Context, c store.Client) error {
	return db.auto().CreateClient(ctx, c)
}

// GetClient implements store.Clients.
func (db *DB) GetClient(ctx context.Context, realm, id string) (store.Client, error) {
	return db.auto().GetClient(ctx, realm, id)
}

// redactURL hides a password in a URL meant for a log or an error.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

var (
	_ store.Tx         = (*DB)(nil)
	_ store.Transactor = (*DB)(nil)
	_ store.Pinger     = (*DB)(nil)
	_ store.Tx         = (*ops)(nil)
)
