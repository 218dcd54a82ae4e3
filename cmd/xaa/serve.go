package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	gojose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/openxaa/xaa/internal/authserver"
	"github.com/openxaa/xaa/internal/config"
	"github.com/openxaa/xaa/internal/directory"
	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/idp"
	"github.com/openxaa/xaa/internal/jwkscache"
	"github.com/openxaa/xaa/internal/keyring"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
)

func newServeCommand(e *env) *cobra.Command {
	var idp, authserver bool
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the server: the IdP and the resource authorization server of the config",
		Long: `serve runs OpenXAA on listen.addr: /healthz, /readyz (checks the database),
and each selected role under its issuer's host and path: the IdP
(issuers.idp) and the resource authorization server (issuers.authserver,
configured by the authserver section, whose clients are registered in the
database at startup). Metadata is also served at the RFC 8414
path-inserted location. Prometheus metrics are served on
listen.admin_addr only. Signing keys are created on first start, reloaded
every 30 s, retired when due and rotated every keys.rotate_every. With
seed_file set, that directory seed is applied (as by xaa seed) before
listening; a broken seed stops startup.`,
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
			mountMetadata(mux, host, path, h.MetadataHandler())
		case "authserver":
			h, err := newAuthServer(ctx, cfg, db, m, wk, r.issuer, logger)
			if err != nil {
				return err
			}
			mountIssuer(mux, host, path, h.Handler())
			mountMetadata(mux, host, path, h.MetadataHandler())
		default:
			return fmt.Errorf("unknown role %q", r.name)
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

// mountMetadata serves an issuer's metadata at the RFC 8414 §3.1
// path-inserted locations (OIDC Discovery's too): for an issuer with a
// path, metadata also lives at the host root with the path appended. The
// role's own handler serves the locations under its issuer.
func mountMetadata(mux *http.ServeMux, host, path string, h http.Handler) {
	if path == "" {
		return
	}
	mux.Handle("GET "+host+"/.well-known/oauth-authorization-server"+path, h)
	mux.Handle("GET "+host+"/.well-known/openid-configuration"+path, h)
}

// authServerAuditLabel derives the authorization server's audit HMAC key.
// It differs from the IdP's label so that the two trust domains' audit
// references cannot be correlated or forged across roles.
const authServerAuditLabel = "authserver audit token hmac"

// newAuthServer builds the resource authorization server from the
// authserver section: trusted issuers' keys come from one shared JWKS
// cache, and the configured clients are registered in the store first.
func newAuthServer(ctx context.Context, cfg *config.Config, db *sqlstore.DB, keys *keyring.Manager, wk []byte, issuer string, logger *slog.Logger) (*authserver.Server, error) {
	sec := cfg.AuthServer
	if len(sec.Resources) == 0 {
		return nil, errors.New("authserver: authserver.resources is empty; configure the resources it governs (see examples/config.yaml), or serve only the IdP with --idp")
	}
	log := logger.With("role", "authserver")
	auditKey, err := keyring.DeriveKey(wk, authServerAuditLabel)
	if err != nil {
		return nil, err
	}
	cache, err := jwkscache.New(&jwkscache.Options{AllowInsecureLoopback: cfg.DevMode, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("authserver: %w", err)
	}
	trusted := make([]authserver.TrustedIssuer, 0, len(sec.TrustedIssuers))
	for _, ti := range sec.TrustedIssuers {
		ks, err := cache.KeySet(ti.JWKSURI)
		if err != nil {
			return nil, fmt.Errorf("authserver: trusted issuer %s: jwks_uri: %w", ti.Issuer, err)
		}
		trusted = append(trusted, authserver.TrustedIssuer{
			Issuer:               ti.Issuer,
			Keys:                 ks,
			Algorithms:           ti.Algorithms,
			MaxAssertionLifetime: time.Duration(ti.MaxAssertionLifetime),
			Disabled:             ti.Disabled,
			AllowReuse:           ti.AllowReuse,
		})
	}
	resources := make([]authserver.Resource, 0, len(sec.Resources))
	for _, r := range sec.Resources {
		resources = append(resources, authserver.Resource{URI: r.URI, Scopes: r.Scopes, AccessTokenLifetime: time.Duration(r.AccessTokenLifetime)})
	}
	policies := make(map[string]authserver.ClientPolicy, len(sec.Clients))
	for _, c := range sec.Clients {
		p := authserver.ClientPolicy{Resources: c.Resources}
		if len(c.Scopes) > 0 {
			p.Scopes = c.Scopes
		}
		policies[c.ClientID] = p
	}
	s, err := authserver.New(authserver.Config{
		Issuer:         issuer,
		Store:          db,
		Keys:           keys,
		TrustedIssuers: trusted,
		Resources:      resources,
		Clients:        policies,
		AuditKey:       auditKey,
		DevMode:        cfg.DevMode,
		Logger:         log,
	})
	if err != nil {
		return nil, fmt.Errorf("authserver: %w", err)
	}
	// Registered only once the config has proved runnable, so a broken
	// section changes nothing in the database.
	if err := registerClients(ctx, db, issuer, sec.Clients, log); err != nil {
		return nil, err
	}
	return s, nil
}

// clientStore is what registerClients needs.
type clientStore interface {
	store.Clients
	store.ClientUpdater
}

// registerClients makes the store's clients of the authorization server's
// realm match the config: missing ones are created, changed credentials
// updated, others left alone. It is not a full sync: a client dropped from
// the file loses its policy, which already refuses it the grant. Disabled
// is never touched, so a client an operator disabled in an emergency stays
// disabled across restarts. Idempotent, and safe when several instances
// start at once.
func registerClients(ctx context.Context, db clientStore, realm string, clients []config.ASClient, logger *slog.Logger) error {
	for _, c := range clients {
		want, err := asStoreClient(realm, c)
		if err != nil {
			return err
		}
		cur, err := db.GetClient(ctx, realm, want.ID)
		if errors.Is(err, store.ErrNotFound) {
			want.CreatedAt = time.Now().UTC()
			err = db.CreateClient(ctx, want)
			if err == nil {
				logger.Info("registered client", "client_id", want.ID)
				continue
			}
			if errors.Is(err, store.ErrConflict) { // another instance won the race
				cur, err = db.GetClient(ctx, realm, want.ID)
			}
		}
		if err != nil {
			return fmt.Errorf("authserver: register client %s: %w", want.ID, err)
		}
		if sameCredentials(cur, want) {
			continue
		}
		err = db.UpdateClient(ctx, realm, want.ID, func(c store.Client) (store.Client, error) {
			c.AuthMethod, c.SecretDigest, c.JWKS = want.AuthMethod, want.SecretDigest, want.JWKS
			return c, nil
		})
		if err != nil {
			return fmt.Errorf("authserver: update client %s: %w", want.ID, err)
		}
		logger.Info("updated client credentials", "client_id", want.ID)
	}
	return nil
}

func sameCredentials(a, b store.Client) bool {
	return a.AuthMethod == b.AuthMethod &&
		subtle.ConstantTimeCompare(a.SecretDigest, b.SecretDigest) == 1 &&
		bytes.Equal(a.JWKS, b.JWKS)
}

// asStoreClient turns a validated config client into its store row,
// reading its JWK Set file for private_key_jwt.
func asStoreClient(realm string, c config.ASClient) (store.Client, error) {
	out := store.Client{ID: c.ClientID, Name: c.ClientID, Realm: realm, AuthMethod: c.AuthMethod}
	if c.AuthMethod == "private_key_jwt" {
		data, err := os.ReadFile(c.JWKSFile)
		if err != nil {
			return out, fmt.Errorf("authserver: client %s: jwks_file: %w", c.ClientID, err)
		}
		var set gojose.JSONWebKeySet
		if err := json.Unmarshal(data, &set); err != nil || len(set.Keys) == 0 {
			return out, fmt.Errorf("authserver: client %s: jwks_file %s does not hold a JWK Set with at least one key", c.ClientID, c.JWKSFile)
		}
		for _, k := range set.Keys {
			if !k.IsPublic() {
				return out, fmt.Errorf("authserver: client %s: jwks_file %s holds a private key; give the server only the public keys", c.ClientID, c.JWKSFile)
			}
		}
		out.JWKS = data
		return out, nil
	}
	d, err := hex.DecodeString(c.ClientSecretSHA256)
	if err != nil || len(d) != sha256.Size {
		return out, fmt.Errorf("authserver: client %s: client_secret_sha256 must be 64 hex digits", c.ClientID)
	}
	out.SecretDigest = d
	return out, nil
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
