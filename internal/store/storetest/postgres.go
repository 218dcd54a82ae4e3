package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// DefaultPostgresURL is used when XAA_TEST_POSTGRES_URL is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// RequirePostgres reports whether tests must fail, not skip, when PostgreSQL
// is unreachable: XAA_CI=1 or CI=true.
func RequirePostgres() bool {
	return os.Getenv("XAA_CI") == "1" || os.Getenv("CI") == "true"
}

// PostgresURL returns a URL for a fresh, empty schema (xaa_test_<random>) in
// the test PostgreSQL database, with search_path set to it, and drops the
// schema when tb ends. Tests in different packages and concurrent runs
// therefore never see each other's rows.
//
// The server is XAA_TEST_POSTGRES_URL, default DefaultPostgresURL. If it
// cannot be reached the test is skipped, or fails when RequirePostgres.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv("XAA_TEST_POSTGRES_URL")
	if base == "" {
		base = DefaultPostgresURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	admin, err := sql.Open("pgx", base)
	if err == nil {
		if err = admin.PingContext(ctx); err != nil {
			_ = admin.Close()
		}
	}
	if err != nil {
		msg := fmt.Sprintf("PostgreSQL at %s is not reachable: %v", redact(base), err)
		if RequirePostgres() {
			tb.Fatalf("%s; it is required because XAA_CI=1 or CI=true", msg)
		}
		tb.Skipf("%s; start PostgreSQL or point XAA_TEST_POSTGRES_URL at one to run this test (with XAA_CI=1 it fails instead of skipping)", msg)
	}
	admin.SetMaxOpenConns(1)

	var b [8]byte
	_, _ = rand.Read(b[:])
	schema := "xaa_test_" + hex.EncodeToString(b[:])
	// schema is generated here from hex digits, never from input, so it is
	// safe to place in DDL (identifiers cannot be bound parameters).
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		_ = admin.Close()
		tb.Fatalf("create schema %s: %v", schema, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
		_ = admin.Close()
	})
	u, err := withSearchPath(base, schema)
	if err != nil {
		tb.Fatalf("XAA_TEST_POSTGRES_URL: %v", err)
	}
	return u
}

// withSearchPath sets the search_path run-time parameter, which pgx sends
// in the startup message of every connection.
func withSearchPath(base, schema string) (string, error) {
	if !strings.HasPrefix(base, "postgres://") && !strings.HasPrefix(base, "postgresql://") {
		return base + " search_path=" + schema, nil // keyword/value form
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", errors.New("not a valid URL") // url errors quote the URL, password included
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "(XAA_TEST_POSTGRES_URL)"
	}
	return u.Redacted()
}
