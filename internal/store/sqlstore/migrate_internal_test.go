package sqlstore

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoadMigrations(t *testing.T) {
	t.Parallel()
	for _, d := range []*dialect{newSQLiteDialect(), newPostgresDialect()} {
		ms, err := loadMigrations(d.migrationsDir)
		if err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		if len(ms) == 0 || ms[0].version != 1 || ms[0].name != "0001_init" {
			t.Fatalf("%s: migrations start with %+v, want 0001_init", d.name, ms[0])
		}
	}
	// Both dialects must evolve in lock step.
	sq, _ := loadMigrations(newSQLiteDialect().migrationsDir)
	pg, _ := loadMigrations(newPostgresDialect().migrationsDir)
	names := func(ms []migration) (out []string) {
		for _, m := range ms {
			out = append(out, m.name)
		}
		return out
	}
	if diff := cmp.Diff(names(sq), names(pg)); diff != "" {
		t.Errorf("SQLite and PostgreSQL migrations differ (-sqlite +postgres):\n%s", diff)
	}
}

// allMigrations names every migration this binary has, in order.
func allMigrations(t *testing.T) []string {
	t.Helper()
	ms, err := loadMigrations(newSQLiteDialect().migrationsDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range ms {
		names = append(names, m.name)
	}
	return names
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	all := allMigrations(t)
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()

			t.Run("FreshThenNoop", func(t *testing.T) {
				t.Parallel()
				u := b.url(t)
				db := mustOpen(t, u)
				pending, err := db.PendingMigrations(t.Context())
				if err != nil || !slices.Equal(pending, all) {
					t.Fatalf("PendingMigrations on an empty database = %v, %v; want %v", pending, err, all)
				}
				applied, err := db.Migrate(t.Context())
				if err != nil {
					t.Fatalf("Migrate: %v", err)
				}
				if diff := cmp.Diff(all, applied); diff != "" {
					t.Errorf("first Migrate applied (-want +got):\n%s", diff)
				}
				for i := range 2 {
					if i == 1 { // and from a new handle
						db = mustOpen(t, u)
					}
					applied, err = db.Migrate(t.Context())
					if err != nil || len(applied) != 0 {
						t.Errorf("re-run Migrate = %v, %v; want nothing applied", applied, err)
					}
				}
				if pending, err := db.PendingMigrations(t.Context()); err != nil || len(pending) != 0 {
					t.Errorf("PendingMigrations after Migrate = %v, %v; want none", pending, err)
				}
				var n int
				if err := db.write.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(all) {
					t.Errorf("schema_migrations has %d rows (%v), want %d", n, err, len(all))
				}
			})

			t.Run("Concurrent", func(t *testing.T) {
				t.Parallel()
				u := b.url(t)
				dbs := []*DB{mustOpen(t, u), mustOpen(t, u), mustOpen(t, u)}
				var wg sync.WaitGroup
				results := make([][]string, len(dbs))
				errs := make([]error, len(dbs))
				for i, db := range dbs {
					wg.Go(func() { results[i], errs[i] = db.Migrate(t.Context()) })
				}
				wg.Wait()
				var applied []string
				for i := range dbs {
					if errs[i] != nil {
						t.Errorf("Migrate %d: %v", i, errs[i])
					}
					applied = append(applied, results[i]...)
				}
				slices.Sort(applied)
				if !slices.Equal(applied, all) {
					t.Errorf("concurrent Migrate applied %v in total, want each migration once", applied)
				}
			})

			t.Run("RefusesNewerSchema", func(t *testing.T) {
				t.Parallel()
				db := mustOpenMigrated(t, b.url(t))
				if _, err := db.write.ExecContext(t.Context(),
					`INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`, 9999, "9999_future", 0); err != nil {
					t.Fatal(err)
				}
				if _, err := db.PendingMigrations(t.Context()); !errors.Is(err, ErrSchemaTooNew) {
					t.Errorf("PendingMigrations = %v, want ErrSchemaTooNew", err)
				}
				_, err := db.Migrate(t.Context())
				if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), "9999") || !strings.Contains(err.Error(), "upgrade") {
					t.Fatalf("Migrate = %v, want ErrSchemaTooNew naming version 9999 and telling to upgrade", err)
				}
			})

			t.Run("FailedMigrationRollsBack", func(t *testing.T) {
				t.Parallel()
				db := mustOpen(t, b.url(t))
				// A table the first migration creates already exists: the
				// migration fails and leaves neither its tables nor its
				// schema_migrations row behind.
				if _, err := db.write.ExecContext(t.Context(), `CREATE TABLE clients (x INTEGER)`); err != nil {
					t.Fatal(err)
				}
				if _, err := db.Migrate(t.Context()); err == nil {
					t.Fatal("Migrate succeeded over a conflicting table")
				}
				var n int
				if err := db.write.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != 0 {
					t.Errorf("schema_migrations has %d rows (%v), want 0", n, err)
				}
				if _, err := db.write.ExecContext(t.Context(), `SELECT 1 FROM replay`); err == nil {
					t.Error("the failed migration's replay table exists")
				}
			})
		})
	}
}
