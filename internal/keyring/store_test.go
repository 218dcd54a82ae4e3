package keyring

import (
	"path/filepath"
	"testing"

	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
	"github.com/openxaa/xaa/internal/store/storetest"
)

// testStore is what the tests need: the manager's Store plus audit reads.
type testStore interface {
	Store
	store.Audit
}

// newTestStore returns a fresh, migrated SQLite store for one test.
func newTestStore(t testing.TB) testStore {
	t.Helper()
	return openStore(t, "sqlite:"+filepath.Join(t.TempDir(), "xaa.db"))
}

// newPostgresStore returns a store in a fresh PostgreSQL schema; the test is
// skipped when PostgreSQL is unreachable (it fails under XAA_CI=1).
func newPostgresStore(t testing.TB) (testStore, string) {
	t.Helper()
	u := storetest.PostgresURL(t)
	return openStore(t, u), u
}

// openStore opens and migrates the database at url; each call is a separate
// handle, as a separate instance would have.
func openStore(t testing.TB, url string) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(t.Context(), url, nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Migrate(t.Context()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

// backend opens a shared database and further handles on it, one per
// simulated instance.
type backend struct {
	name string
	open func(t *testing.T) (shared testStore, another func() testStore)
}

var backends = []backend{
	{"sqlite", func(t *testing.T) (testStore, func() testStore) {
		url := "sqlite:" + filepath.Join(t.TempDir(), "xaa.db")
		return openStore(t, url), func() testStore { return openStore(t, url) }
	}},
	{"postgres", func(t *testing.T) (testStore, func() testStore) {
		st, url := newPostgresStore(t)
		return st, func() testStore { return openStore(t, url) }
	}},
}
