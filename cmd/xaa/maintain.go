package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/openxaa/xaa/internal/keyring"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
)

// codeRetention keeps used and expired authorization codes for a while: a
// code presented again after pruning would be "unknown" rather than
// "reused", and only reuse revokes what its first redemption issued.
const codeRetention = time.Hour

// maintain runs the periodic upkeep: it reloads keys (another instance may
// have rotated), retires keys whose tokens have all expired, rotates on
// schedule, and prunes expired single-use values.
func maintain(ctx context.Context, db *sqlstore.DB, managers map[string]*keyring.Manager, rotateEvery time.Duration, logger *slog.Logger) {
	t := time.NewTicker(keyRefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		prune(ctx, db, time.Now(), logger)
		for name, m := range managers {
			log := logger.With("role", name)
			if err := m.Refresh(ctx); err != nil {
				log.Error("reload signing keys", "err", err)
				continue
			}
			if n, err := m.RetireExpired(ctx); err != nil {
				log.Error("retire signing keys", "err", err)
			} else if n > 0 {
				log.Info("retired signing keys", "count", n)
			}
			if rotateEvery > 0 {
				rotateIfDue(ctx, m, rotateEvery, log)
			}
		}
	}
}

// prune deletes expired single-use values, sessions, codes and refresh
// families. Each runs in small batches so the single SQLite writer is never
// held for long.
func prune(ctx context.Context, db *sqlstore.DB, now time.Time, logger *slog.Logger) {
	for _, p := range []struct {
		what string
		fn   func(context.Context, time.Time) (int64, error)
		at   time.Time
	}{
		{"replay store", db.PruneReplay, now},
		{"sessions", db.PruneSessions, now},
		{"authorization codes", db.PruneAuthCodes, now.Add(-codeRetention)},
		{"refresh tokens", db.PruneRefreshTokens, now},
	} {
		if n, err := p.fn(ctx, p.at); err != nil {
			logger.Error("prune "+p.what, "err", err)
		} else if n > 0 {
			logger.Debug("pruned "+p.what, "rows", n)
		}
	}
}

func rotateIfDue(ctx context.Context, m *keyring.Manager, every time.Duration, log *slog.Logger) {
	keys, err := m.List(ctx)
	if err != nil {
		log.Error("list signing keys", "err", err)
		return
	}
	for _, k := range keys {
		if k.State != store.KeyActive || time.Since(k.ActivatedAt) < every {
			continue
		}
		rot, err := m.Rotate(ctx)
		switch {
		case errors.Is(err, store.ErrConflict):
			// Another instance rotated first; the next Refresh picks it up.
			log.Info("signing key rotated by another instance")
		case err != nil:
			log.Error("rotate signing key", "err", err)
		default:
			log.Info("rotated signing key", "active", rot.Active, "next", rot.Next)
		}
		return
	}
}
