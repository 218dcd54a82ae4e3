package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/openxaa/xaa/internal/config"
	"github.com/openxaa/xaa/internal/directory"
	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/idp"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/keyring"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
)

// jwksMaxAge is how long relying parties may cache our JWKS. Rotation
// pre-publishes the next key, so this only bounds how soon a retired key
// disappears from their caches.
const jwksMaxAge = 5 * time.Minute

func newServeCommand(e *env) *cobra.Command {
	var idp, authserver bool
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the server: publishes each configured issuer's JWKS and manages its key lifecycle",
		Long: `serve runs the OpenXAA server shell on listen.addr: /healthz, /readyz (checks
the database), and for each selected role its issuer's JWKS at
<issuer host and path>/jwks.json.
Prometheus metrics are served on listen.admin_addr only. Signing keys are
created on first start, reloaded every 30 s, retired when due and rotated
every keys.rotate_every. With seed_file set, that directory seed is applied
(as by xaa seed) before listening; a broken seed stops startup.

The IdP and authorization-server protocol endpoints arrive with their
issues; this command is the shell they mount into.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, e)
			if err != nil {
				return err
			}
			var only []string
			if idp {
				only = append(only, "idp")
			}
			if authserver {
				only = append(only, "authserver")
			}
			return serve(cmd.Context(), cfg, only, e)
		},
	}
	c.Flags().BoolVar(&idp, "idp", false, "serve the IdP role (default: every role with a configured issuer)")
	c.Flags().BoolVar(&authserver, "authserver", false, "serve the authorization-server role (default: every role with a configured issuer)")
	return c
}

// serve runs the roles named in only (all configured roles when empty).
func serve(ctx context.Context, cfg *config.Config, only []string, e *env) error {
	logger := newLogger(cfg.Log, e.stderr)
	db, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := checkSchema(ctx, db); err != nil {
		return err
	}
	rs, err := selectRoles(cfg, only)
	if err != nil {
		return err
	}
	// Before listening: no request sees a half-seeded directory, and a
	// broken seed stops startup instead of serving a stale organisation.
	if err := applySeedFile(ctx, cfg, db, logger); err != nil {
		return err
	}
	wk, err := wrappingKey(cfg)
	if err != nil {
		return err
	}
	defer clear(wk)
	mux := http.NewServeMux()
	managers := make(map[string]*keyring.Manager, len(rs))
	roots := make(map[string]string, len(rs))
	for _, r := range rs {
		m, err := keyManager(ctx, cfg, db, wk, r, logger)
		if err != nil {
			return err
		}
		managers[r.name] = m
		host, path, err := issuerRoot(r.issuer)
		if err != nil {
			return err
		}
		if other, dup := roots[host+path]; dup {
			return fmt.Errorf("issuers of %s and %s share host and path, so one listener cannot tell them apart; give them distinct hosts or paths, or serve them from separate processes (--%s, --%s)",
				other, r.name, other, r.name)
		}
		roots[host+path] = r.name
		switch r.name {
		case "idp":
			h, err := newIdP(cfg, db, m, wk, r.issuer, logger)
			if err != nil {
				return err
			}
			mountIssuer(mux, host, path, h.Handler())
			if path != "" {
				// RFC 8414 §3.1 and OIDC Discovery: for an issuer with a path,
				// metadata also lives at the host root with the path appended.
				mux.Handle("GET "+host+"/.well-known/oauth-authorization-server"+path, h.MetadataHandler())
				mux.Handle("GET "+host+"/.well-known/openid-configuration"+path, h.MetadataHandler())
			}
		default:
			// Roles whose protocol endpoints have not landed yet publish
			// their keys, so relying parties can start caching them.
			mux.Handle("GET "+host+path+"/jwks.json", jose.JWKSHandler(m.PublicKeys, jwksMaxAge))
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := httpserver.New(httpserver.Options{
		Name:        "xaa",
		Addr:        cfg.Listen.Addr,
		AdminAddr:   cfg.Listen.AdminAddr,
		Handler:     mux,
		Registry:    reg,
		Logger:      logger,
		Ready:       db.Ping,
		TLSCertFile: cfg.Listen.TLSCertFile,
		TLSKeyFile:  cfg.Listen.TLSKeyFile,
	})
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	scheme := "http"
	if cfg.Listen.TLSCertFile != "" {
		scheme = "https"
	}
	fmt.Fprintf(e.stdout, "serving on %s://%s\n", scheme, srv.Addr())
	if a := srv.AdminAddr(); a != "" {
		fmt.Fprintf(e.stdout, "admin (metrics) on http://%s\n", a)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		maintain(ctx, db, managers, time.Duration(cfg.Keys.RotateEvery), logger)
	}()
	err = srv.Serve(ctx)
	cancel()
	<-done
	return err
}

// mountIssuer serves h under the issuer's host and path, with the path
// stripped so the role's routes are relative to its issuer.
func mountIssuer(mux *http.ServeMux, host, path string, h http.Handler) {
	if path == "" {
		mux.Handle(host+"/", h)
		return
	}
	mux.Handle(host+path+"/", http.StripPrefix(path, h))
}

// newIdP builds the identity provider on the shared store and its keys.
func newIdP(cfg *config.Config, db *sqlstore.DB, keys *keyring.Manager, wk []byte, issuer string, logger *slog.Logger) (*idp.Server, error) {
	totp, err := keyring.NewSecretBox(wk, directory.TOTPSealPurpose)
	if err != nil {
		return nil, err
	}
	auditKey, err := keyring.DeriveKey(wk, "audit token hmac")
	if err != nil {
		return nil, err
	}
	s, err := idp.New(idp.Config{
		Issuer:   issuer,
		Store:    db,
		Keys:     keys,
		TOTP:     totp,
		AuditKey: auditKey,
		DevMode:  cfg.DevMode,
		Logger:   logger.With("role", "idp"),
	})
	if err != nil {
		return nil, fmt.Errorf("idp: %w", err)
	}
	return s, nil
}

// checkSchema refuses to serve on a database that `xaa migrate` has not
// brought up to date: serving on a partial schema fails later and worse.
func checkSchema(ctx context.Context, db *sqlstore.DB) error {
	pending, err := db.PendingMigrations(ctx)
	if err != nil {
		return fmt.Errorf("check schema: %w", err)
	}
	if len(pending) > 0 {
		return fmt.Errorf("the database schema is not up to date (%d pending migration(s)); run `xaa migrate` first", len(pending))
	}
	return nil
}

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

// codeRetention keeps used and expired authorization codes for a while: a
// code presented again after pruning would be "unknown" rather than
// "reused", and only reuse revokes what its first redemption issued.
const codeRetention = time.Hour

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
