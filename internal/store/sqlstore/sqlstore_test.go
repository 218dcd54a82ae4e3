package sqlstore_test

import (
	"net/url"
	"path/filepath"
	"testing"

	"github.com/openxaa/xaa/internal/store/sqlstore"
	"github.com/openxaa/xaa/internal/store/storetest"
)

func sqliteURL(path string) string {
	return (&url.URL{Scheme: "sqlite", Path: path}).String()
}

// open opens and migrates the database at rawURL and closes it when tb ends.
func open(tb testing.TB, rawURL string) *sqlstore.DB {
	tb.Helper()
	db, err := sqlstore.Open(tb.Context(), rawURL, nil)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	if _, err := db.Migrate(tb.Context()); err != nil {
		tb.Fatalf("Migrate: %v", err)
	}
	return db
}

func openSQLite(tb testing.TB) *sqlstore.DB {
	return open(tb, sqliteURL(filepath.Join(tb.TempDir(), "xaa.db")))
}

func openPostgres(tb testing.TB) *sqlstore.DB {
	return open(tb, storetest.PostgresURL(tb))
}

func TestConformanceSQLite(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) storetest.Store { return openSQLite(t) })
}

func TestConformancePostgres(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) storetest.Store { return openPostgres(t) })
}
