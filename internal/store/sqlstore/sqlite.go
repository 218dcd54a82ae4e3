package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// ErrInsecureFile means a SQLite database file (or its -wal/-shm/-journal
// companion) may be read or written by group or others. The file holds
// sealed signing keys, client secret digests and the audit trail.
var ErrInsecureFile = errors.New("sqlstore: database file permissions too open")

// ErrNotDurable means the database is not configured to make a commit
// durable before it is acknowledged.
var ErrNotDurable = errors.New("sqlstore: database is not configured for durable commits")

// sqlitePath extracts a file path from a sqlite: or file: URL. Query
// parameters are refused: the pragmas are fixed by this package, not by
// configuration, so durability cannot be weakened by a URL.
func sqlitePath(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%w: bad SQLite URL: %w", ErrInvalidInput, err)
	}
	if scheme := strings.ToLower(u.Scheme); scheme != "sqlite" && scheme != "file" {
		return "", fmt.Errorf("%w: not a sqlite: or file: URL", ErrInvalidInput)
	}
	if strings.ContainsAny(raw, "?#") { // a literal ? or # in a file name is written %3F or %23
		return "", fmt.Errorf("%w: SQLite URL must not have a query or fragment; pragmas are fixed", ErrInvalidInput)
	}
	if u.User != nil || (u.Host != "" && u.Host != "localhost") {
		return "", fmt.Errorf("%w: SQLite URL must not name a host; use sqlite:///abs/path.db or sqlite:relative.db", ErrInvalidInput)
	}
	path := u.Path
	if u.Opaque != "" {
		if path, err = url.PathUnescape(u.Opaque); err != nil {
			return "", fmt.Errorf("%w: bad SQLite URL path: %w", ErrInvalidInput, err)
		}
	}
	switch {
	case path == "":
		return "", fmt.Errorf("%w: SQLite URL has no file path", ErrInvalidInput)
	case strings.HasPrefix(path, ":memory:") || strings.Contains(path, "\x00"):
		return "", fmt.Errorf("%w: SQLite URL must name a file (in-memory databases are not durable)", ErrInvalidInput)
	}
	return path, nil
}

func openSQLite(ctx context.Context, path string, o Options) (_ *DB, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: resolve %s: %w", path, err)
	}
	if err := prepareSQLiteFile(abs); err != nil {
		return nil, err
	}
	d := newSQLiteDialect()
	db := &DB{d: d, log: o.Logger}
	defer func() {
		if err != nil {
			if db.write != nil {
				_ = db.write.Close()
			}
			if db.read != nil {
				_ = db.read.Close()
			}
		}
	}()

	if db.write, err = sql.Open("sqlite", sqliteDSN(abs, false)); err != nil {
		return nil, fmt.Errorf("sqlstore: open %s: %w", abs, err)
	}
	db.write.SetMaxOpenConns(1)
	db.write.SetMaxIdleConns(1)
	db.write.SetConnMaxLifetime(0)
	db.write.SetConnMaxIdleTime(0)
	if err := checkSQLitePragmas(ctx, db.write); err != nil {
		return nil, d.wrap("open "+abs, err)
	}

	n := o.MaxOpenConns
	if n == 0 {
		n = 4
	}
	if db.read, err = sql.Open("sqlite", sqliteDSN(abs, true)); err != nil {
		return nil, fmt.Errorf("sqlstore: open %s: %w", abs, err)
	}
	db.read.SetMaxOpenConns(n)
	db.read.SetMaxIdleConns(n)
	if err := checkSQLitePragmas(ctx, db.read); err != nil {
		return nil, d.wrap("open "+abs, err)
	}
	db.gc = newCommitter(d, db.write, o.Logger)
	o.Logger.Info("sqlstore: opened SQLite database", "path", abs, "read_conns", n)
	return db, nil
}

// prepareSQLiteFile creates the database file with mode 0600 if it does not
// exist (SQLite would use 0644 minus umask, and gives -wal and -shm the main
// file's mode), and refuses files that group or others may access.
func prepareSQLiteFile(abs string) error {
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		if err := f.Close(); err != nil {
			return fmt.Errorf("sqlstore: create %s: %w", abs, err)
		}
	case !errors.Is(err, fs.ErrExist):
		return fmt.Errorf("sqlstore: create %s: %w", abs, err)
	}
	for _, p := range []string{abs, abs + "-wal", abs + "-shm", abs + "-journal"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) && p != abs {
			continue
		}
		if err != nil {
			return fmt.Errorf("sqlstore: stat %s: %w", p, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%w: %s is not a regular file", ErrInvalidInput, p)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			return fmt.Errorf("%w: %s has mode %04o (group or others may access it); run: chmod 600 %s",
				ErrInsecureFile, p, perm, p)
		}
	}
	return nil
}

// sqliteDSN builds a file: URI for modernc.org/sqlite. The _pragma values
// run on every new connection, so no pooled connection can miss them;
// _txlock=immediate makes every write transaction take the write lock at
// BEGIN, so two transactions never deadlock upgrading from read to write.
// mode=rw stops SQLite from creating the file: prepareSQLiteFile did, with
// the right mode.
func sqliteDSN(abs string, readOnly bool) string {
	q := url.Values{}
	q.Set("mode", "rw")
	q.Set("_txlock", "immediate")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	}
	u := url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}
	return u.String()
}

// checkSQLitePragmas refuses a connection pool whose connections would not
// commit durably: for example a file system without WAL support silently
// keeps journal_mode=delete.
func checkSQLitePragmas(ctx context.Context, db *sql.DB) error {
	var sync, fk int
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return err
	}
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if err := db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return err
	}
	if sync != 2 {
		return fmt.Errorf("%w: PRAGMA synchronous is %d, want 2 (FULL)", ErrNotDurable, sync)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("%w: PRAGMA journal_mode is %q, want wal (does the file system support WAL?)", ErrNotDurable, mode)
	}
	if fk != 1 {
		return fmt.Errorf("%w: PRAGMA foreign_keys is %d, want 1", ErrInvalidInput, fk)
	}
	return nil
}
