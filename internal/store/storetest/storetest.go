// Package storetest is the conformance suite every storage backend must
// pass. Run it from the backend's tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Store { return openMyStore(t) })
//	}
//
// Subtests run in parallel against one store and use unique ids, so the suite
// may also run repeatedly against the same database.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// Store is the full set of aggregates a backend provides. It is a test
// contract only: production code asks for the small interfaces it needs.
type Store interface {
	store.Transactor
	store.Replay
	store.Tokens
	store.Fences
	store.TrustedIssuers
	store.Audit
	store.SigningKeys
	store.Clients
	store.ClientUpdater
	store.Users
	store.Groups
	store.AuthServers
	store.Resources
	store.Connections
	store.Sessions
	store.AuthCodes
	store.RefreshTokens
	store.AdminSessions
	store.AdminTokens
	store.DirectoryLists
	store.Ledger
	store.SETOutbox
	store.RevocationPolls
	store.Pinger
}

// ChainVerifier is implemented by stores that can recompute their audit
// chain; the suite uses it when present.
type ChainVerifier interface {
	VerifyAuditChain(ctx context.Context) (checked int64, err error)
}

// Run runs the conformance suite. newStore is called once; the store must
// stay usable until t's cleanups run.
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	s := newStore(t)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	// Each aggregate test runs twice: against the store directly
	// (autocommit) and with every call in its own InTx, so the transaction
	// implementation of each aggregate is exercised as well.
	views := []struct {
		name string
		a    store.Tx
	}{
		{"direct", s},
		{"tx", perCallTx{s}},
	}
	for _, v := range views {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			t.Run("Replay", func(t *testing.T) { t.Parallel(); testReplay(t, v.a) })
			t.Run("Tokens", func(t *testing.T) { t.Parallel(); testTokens(t, v.a) })
			t.Run("Fences", func(t *testing.T) { t.Parallel(); testFences(t, v.a) })
			t.Run("TrustedIssuers", func(t *testing.T) { t.Parallel(); testTrustedIssuers(t, v.a) })
			t.Run("Audit", func(t *testing.T) { t.Parallel(); testAudit(t, v.a, s) })
			t.Run("SigningKeys", func(t *testing.T) { t.Parallel(); testSigningKeys(t, v.a) })
			t.Run("Clients", func(t *testing.T) { t.Parallel(); testClients(t, v.a) })
			t.Run("Users", func(t *testing.T) { t.Parallel(); testUsers(t, v.a) })
			t.Run("Groups", func(t *testing.T) { t.Parallel(); testGroups(t, v.a) })
			t.Run("AuthServers", func(t *testing.T) { t.Parallel(); testAuthServers(t, v.a) })
			t.Run("Resources", func(t *testing.T) { t.Parallel(); testResources(t, v.a) })
			t.Run("Connections", func(t *testing.T) { t.Parallel(); testConnections(t, v.a) })
			t.Run("AdminSessions", func(t *testing.T) { t.Parallel(); testAdminSessions(t, v.a) })
			t.Run("AdminTokens", func(t *testing.T) { t.Parallel(); testAdminTokens(t, v.a) })
			t.Run("Ledger", func(t *testing.T) { t.Parallel(); testLedger(t, v.a) })
			t.Run("SETOutbox", func(t *testing.T) { t.Parallel(); testSETOutbox(t, v.a) })
			t.Run("RevocationPolls", func(t *testing.T) { t.Parallel(); testRevocationPolls(t, v.a) })
			t.Run("ConnectionLedgerStatuses", func(t *testing.T) { t.Parallel(); testConnectionLedgerStatuses(t, v.a) })
		})
	}
	t.Run("AuditLimits", func(t *testing.T) { t.Parallel(); testAuditLimits(t, s) })
	t.Run("Transactions", func(t *testing.T) { t.Parallel(); testTransactions(t, s) })
	t.Run("FenceTransactions", func(t *testing.T) { t.Parallel(); testFenceTransactions(t, s) })
	t.Run("DirectoryTransactions", func(t *testing.T) { t.Parallel(); testDirectoryTransactions(t, s) })
	t.Run("Cancellation", func(t *testing.T) { t.Parallel(); testCancellation(t, s) })
	t.Run("DirectoryLists", func(t *testing.T) { t.Parallel(); testDirectoryLists(t, s) })
	t.Run("LedgerTransactions", func(t *testing.T) { t.Parallel(); testLedgerTransactions(t, s) })
}

// errBoom is returned by test callbacks to force a rollback.
var errBoom = errors.New("storetest: boom")

// newID returns a unique id so parallel subtests and repeated runs against
// one database do not collide.
func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// now is the current time at the stores' millisecond precision.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func wantErr(t *testing.T, what string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Fatalf("%s: got error %v, want %v", what, got, want)
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// perCallTx runs each aggregate call in its own transaction.
type perCallTx struct{ s store.Transactor }

func (p perCallTx) RecordOnce(ctx context.Context, e store.ReplayEntry) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.RecordOnce(ctx, e) })
}

func (p perCallTx) PruneReplay(ctx context.Context, before time.Time) (n int64, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { n, err = tx.PruneReplay(ctx, before); return err })
	return n, err
}

func (p perCallTx) RecordToken(ctx context.Context, t store.IssuedToken) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.RecordToken(ctx, t) })
}

func (p perCallTx) GetToken(ctx context.Context, issuer, jti string) (t store.IssuedToken, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { t, err = tx.GetToken(ctx, issuer, jti); return err })
	return t, err
}

func (p perCallTx) RevokeToken(ctx context.Context, issuer, jti string, at time.Time) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.RevokeToken(ctx, issuer, jti, at) })
}

func (p perCallTx) ListRevokedTokens(ctx context.Context, issuer string, after int64, limit int) (ts []store.RevokedToken, next int64, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) {
		ts, next, err = tx.ListRevokedTokens(ctx, issuer, after, limit)
		return err
	})
	return ts, next, err
}

func (p perCallTx) AppendAudit(ctx context.Context, e *store.AuditEvent) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.AppendAudit(ctx, e) })
}

func (p perCallTx) ListAudit(ctx context.Context, f store.AuditFilter) (evs []store.AuditEvent, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { evs, err = tx.ListAudit(ctx, f); return err })
	return evs, err
}

func (p perCallTx) CreateSigningKey(ctx context.Context, k store.SigningKey) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.CreateSigningKey(ctx, k) })
}

func (p perCallTx) ListSigningKeys(ctx context.Context, owner string) (ks []store.SigningKey, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { ks, err = tx.ListSigningKeys(ctx, owner); return err })
	return ks, err
}

func (p perCallTx) UpdateSigningKey(ctx context.Context, owner, kid string, fn func(store.SigningKey) (store.SigningKey, error)) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.UpdateSigningKey(ctx, owner, kid, fn) })
}

func (p perCallTx) CreateClient(ctx context.Context, c store.Client) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.CreateClient(ctx, c) })
}

func (p perCallTx) GetClient(ctx context.Context, realm, id string) (c store.Client, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { c, err = tx.GetClient(ctx, realm, id); return err })
	return c, err
}
