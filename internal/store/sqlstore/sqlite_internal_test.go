package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

func TestSQLitePath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url, want string
		ok        bool
	}{
		{"sqlite:///var/lib/xaa/xaa.db", "/var/lib/xaa/xaa.db", true},
		{"sqlite://localhost/var/lib/xaa.db", "/var/lib/xaa.db", true},
		{"sqlite:xaa.db", "xaa.db", true},
		{"sqlite:data/xaa.db", "data/xaa.db", true},
		{"sqlite:my%20db.db", "my db.db", true},
		{"sqlite:///dir/my%20db.db", "/dir/my db.db", true},
		{"file:/var/lib/xaa.db", "/var/lib/xaa.db", true},
		{"file:///var/lib/xaa.db", "/var/lib/xaa.db", true},
		{"file:xaa.db", "xaa.db", true},
		{"sqlite:", "", false},
		{"sqlite://", "", false},
		{"sqlite:///", "/", true}, // a directory: Open fails later, not here
		{"sqlite::memory:", "", false},
		{"file::memory:", "", false},
		{"sqlite:xaa.db?_pragma=synchronous(OFF)", "", false},
		{"sqlite:///xaa.db?mode=memory", "", false},
		{"file:xaa.db?", "", false},
		{"sqlite:xaa.db#frag", "", false},
		{"sqlite://host/xaa.db", "", false},
		{"sqlite://user:pw@localhost/xaa.db", "", false},
		{"sqlite:bad%zz.db", "", false},
		{"sqlite:a%00b.db", "", false},
		{"sqlite:a%3Fb%23c.db", "a?b#c.db", true},
		{"sqlite:x.db#", "", false},
		{"xaa.db", "", false},
		{"postgres://h/db", "", false},
	} {
		got, err := sqlitePath(tc.url)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("sqlitePath(%q) = %q, %v; want %q, ok=%v", tc.url, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidInput) {
			t.Errorf("sqlitePath(%q) error %v is not ErrInvalidInput", tc.url, err)
		}
	}
}

func FuzzSQLitePath(f *testing.F) {
	for _, s := range []string{"sqlite:///a/b.db", "sqlite:x.db", "file:/x?mode=memory", "sqlite::memory:", "sqlite://h/x", "file:a%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		path, err := sqlitePath(raw)
		if err != nil {
			return
		}
		// Whatever is accepted names a file and cannot smuggle in SQLite
		// URI parameters or an in-memory database.
		if path == "" || strings.ContainsRune(path, 0) || strings.HasPrefix(path, ":memory:") {
			t.Fatalf("sqlitePath(%q) accepted %q", raw, path)
		}
		if strings.ContainsAny(raw, "?#") && !strings.Contains(path, "?") && !strings.Contains(path, "#") {
			t.Fatalf("sqlitePath(%q) dropped a query or fragment: %q", raw, path)
		}
	})
}

func TestOpenRejectsBadURLs(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"", "xaa.db", "mysql://localhost/xaa", "sqlite::memory:", "sqlite:x.db?_pragma=synchronous(OFF)"} {
		if db, err := Open(t.Context(), raw, nil); !errors.Is(err, ErrInvalidInput) {
			if db != nil {
				_ = db.Close()
			}
			t.Errorf("Open(%q) = %v, want ErrInvalidInput", raw, err)
		}
	}
}

func TestSQLiteFilePermissions(t *testing.T) {
	t.Parallel()

	t.Run("NewFileIs0600", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "new.db")
		db := mustOpenMigrated(t, sqliteTestURL(path))
		if err := db.RecordOnce(t.Context(), store.ReplayEntry{Namespace: "n", JTI: "j", ExpiresAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatalf("stat: %v", err)
			}
			if perm := fi.Mode().Perm(); perm != 0o600 {
				t.Errorf("%s has mode %04o, want 0600", filepath.Base(p), perm)
			}
		}
	})

	for _, tc := range []struct {
		name   string
		suffix string // which file gets the mode
		mode   os.FileMode
		ok     bool
	}{
		{"owner only", "", 0o600, true},
		{"owner read only", "", 0o400, true},
		{"group readable", "", 0o640, false},
		{"world readable", "", 0o604, false},
		{"group writable", "", 0o620, false},
		{"world writable", "", 0o602, false},
		{"typical umask", "", 0o644, false},
		{"wal world readable", "-wal", 0o644, false},
		{"shm group writable", "-shm", 0o660, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "xaa.db")
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.suffix != "" {
				if err := os.WriteFile(path+tc.suffix, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(path+tc.suffix, tc.mode); err != nil {
				t.Fatal(err)
			}
			err := prepareSQLiteFile(path)
			if tc.ok {
				if err != nil {
					t.Fatalf("prepareSQLiteFile: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInsecureFile) || !strings.Contains(err.Error(), "chmod 600") {
				t.Fatalf("prepareSQLiteFile = %v, want ErrInsecureFile telling the operator to chmod 600", err)
			}
			// Open refuses it too, and leaves the file alone.
			if db, err := Open(t.Context(), sqliteTestURL(path), nil); !errors.Is(err, ErrInsecureFile) {
				if db != nil {
					_ = db.Close()
				}
				t.Fatalf("Open = %v, want ErrInsecureFile", err)
			}
			if fi, _ := os.Stat(path + tc.suffix); fi.Mode().Perm() != tc.mode {
				t.Errorf("Open changed the mode to %04o", fi.Mode().Perm())
			}
		})
	}

	t.Run("NotARegularFile", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := prepareSQLiteFile(dir); err == nil {
			t.Fatal("prepareSQLiteFile accepted a directory")
		}
	})
}

func TestSQLitePragmas(t *testing.T) {
	t.Parallel()
	db := mustOpenMigrated(t, sqliteTestURL(filepath.Join(t.TempDir(), "xaa.db")))
	for _, pool := range []struct {
		name      string
		db        *sql.DB
		queryOnly int
	}{
		{"write", db.write, 0},
		{"read", db.read, 1},
	} {
		for pragma, want := range map[string]string{
			"synchronous":  "2",
			"journal_mode": "wal",
			"foreign_keys": "1",
			"busy_timeout": "5000",
			"query_only":   map[int]string{0: "0", 1: "1"}[pool.queryOnly],
		} {
			var got string
			if err := pool.db.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil {
				t.Fatalf("%s pool: PRAGMA %s: %v", pool.name, pragma, err)
			}
			if got != want {
				t.Errorf("%s pool: PRAGMA %s = %s, want %s", pool.name, pragma, got, want)
			}
		}
	}
	// The read pool cannot write even if a bug routed a write there.
	if _, err := db.read.ExecContext(t.Context(), insertReplaySQL, "n", "i", "j", int64(1)); err == nil {
		t.Error("read pool accepted a write")
	}
	if !strings.Contains(sqliteDSN("/x.db", false), "_txlock=immediate") {
		t.Error("write DSN does not ask for BEGIN IMMEDIATE")
	}
}

func TestCheckSQLitePragmasRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, query string
	}{
		{"synchronous NORMAL", "_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"},
		{"synchronous OFF", "_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)"},
		{"rollback journal", "_pragma=journal_mode(DELETE)&_pragma=synchronous(FULL)"},
		{"memory journal", "_pragma=journal_mode(MEMORY)&_pragma=synchronous(FULL)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			raw, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "x.db")+"?"+tc.query)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			if err := checkSQLitePragmas(t.Context(), raw); !errors.Is(err, ErrNotDurable) {
				t.Fatalf("checkSQLitePragmas = %v, want ErrNotDurable", err)
			}
		})
	}
}

// TestSQLiteTwoHandles opens one file twice, as two processes would, and
// writes from both at once. BEGIN IMMEDIATE plus busy_timeout must make them
// queue rather than fail with SQLITE_BUSY, and the audit chain must stay
// intact.
func TestSQLiteTwoHandles(t *testing.T) {
	t.Parallel()
	u := sqliteTestURL(filepath.Join(t.TempDir(), "xaa.db"))
	dbs := []*DB{mustOpenMigrated(t, u), mustOpenMigrated(t, u)}
	const perHandle = 16
	var wg sync.WaitGroup
	errs := make(chan error, 2*perHandle)
	for i := range 2 * perHandle {
		db := dbs[i%2]
		wg.Go(func() {
			errs <- db.InTx(t.Context(), func(tx store.Tx) error {
				if err := tx.RecordOnce(t.Context(), store.ReplayEntry{Namespace: "n", JTI: "shared", ExpiresAt: time.Now().Add(time.Hour)}); err != nil && !errors.Is(err, store.ErrReplay) {
					return err
				}
				return tx.AppendAudit(t.Context(), &store.AuditEvent{Type: "t"})
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("InTx: %v", err)
		}
	}
	n, err := dbs[0].VerifyAuditChain(t.Context())
	if err != nil || n != 2*perHandle {
		t.Errorf("VerifyAuditChain = %d, %v; want %d, nil", n, err, 2*perHandle)
	}
}

// TestSQLiteLockTimeoutIsUnavailable holds the write lock from another
// connection: a write that cannot get it before its deadline must fail
// closed with ErrUnavailable.
func TestSQLiteLockTimeoutIsUnavailable(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "xaa.db")
	db := mustOpenMigrated(t, sqliteTestURL(path))
	other, err := sql.Open("sqlite", sqliteDSN(path, false))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx, err := other.BeginTx(t.Context(), nil) // BEGIN IMMEDIATE: holds the write lock
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err = db.RecordOnce(ctx, store.ReplayEntry{Namespace: "n", JTI: "j", ExpiresAt: time.Now().Add(time.Hour)})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("RecordOnce while locked = %v, want ErrUnavailable", err)
	}
}

// TestSQLiteOddFileName checks that the file: URI built for the driver
// escapes the path: a name with URI syntax in it must open exactly that file.
func TestSQLiteOddFileName(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "my db?mode=memory#x%41.db")
	db := mustOpenMigrated(t, sqliteTestURL(path))
	if err := db.RecordOnce(t.Context(), store.ReplayEntry{Namespace: "n", JTI: "j", ExpiresAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), filepath.Base(path)) {
			t.Errorf("unexpected file %q next to the database", e.Name())
		}
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database file: %v", err)
	}
}

// TestSQLitePingDuringWrite: a readiness probe must not queue behind a
// transaction that holds the single write connection.
func TestSQLitePingDuringWrite(t *testing.T) {
	t.Parallel()
	db := mustOpenMigrated(t, sqliteTestURL(filepath.Join(t.TempDir(), "xaa.db")))
	err := db.InTx(t.Context(), func(store.Tx) error {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		return db.Ping(ctx)
	})
	if err != nil {
		t.Fatalf("Ping inside a write transaction: %v", err)
	}
}
