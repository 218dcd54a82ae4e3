package sqlstore

import (
	"net/url"
	"path/filepath"
	"testing"

	"github.com/openxaa/xaa/internal/store/storetest"
)

// backend names a database for dialect-parameterised tests.
type backend struct {
	name string
	url  func(tb testing.TB) string // a fresh, empty database
}

func backends() []backend {
	return []backend{
		{DialectSQLite, func(tb testing.TB) string { return sqliteTestURL(filepath.Join(tb.TempDir(), "xaa.db")) }},
		{DialectPostgres, storetest.PostgresURL},
	}
}

func sqliteTestURL(path string) string {
	return (&url.URL{Scheme: "sqlite", Path: path}).String()
}

// mustOpen opens rawURL without migrating and closes it when tb ends.
func mustOpen(tb testing.TB, rawURL string) *DB {
	tb.Helper()
	db, err := Open(tb.Context(), rawURL, nil)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// mustOpenMigrated opens and migrates rawURL.
func mustOpenMigrated(tb testing.TB, rawURL string) *DB {
	tb.Helper()
	db := mustOpen(tb, rawURL)
	if _, err := db.Migrate(tb.Context()); err != nil {
		tb.Fatalf("Migrate: %v", err)
	}
	return db
}
