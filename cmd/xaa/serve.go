package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/openxaa/xaa/internal/admin"
	"github.com/openxaa/xaa/internal/config"
	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/keyring"
	"github.com/openxaa/xaa/internal/store/sqlstore"
)

func newServeCommand(e *env) *cobra.Command {
	var idp, authserver, gw, adm bool
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the server: the IdP, the resource authorization server and the MCP gateway of the config",
		Long: `serve runs OpenXAA on listen.addr: /healthz, /readyz (checks the database),
and each selected role under its issuer's host and path: the IdP
(issuers.idp) and the resource authorization server (issuers.authserver,
configured by the authserver section, whose clients are registered in the
database at startup). Metadata is also served at the RFC 8414
path-inserted location. Prometheus metrics are served on
listen.admin_addr only. Signing keys are created on first start, reloaded
every 30 s, retired when due and rotated every keys.rotate_every. With
seed_file set, that directory seed is applied (as by xaa seed) before
listening; a broken seed stops startup.

` + gatewayHelp + `

The admin API (--admin; on by default when admin.endpoint is set) serves
JSON under admin.endpoint's path, with its OpenAPI document at
<endpoint>/api/openapi.json; see xaa admin.`,
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
			if gw {
				only = append(only, roleGateway)
			}
			if adm {
				only = append(only, roleAdmin)
			}
			return serve(cmd.Context(), cfg, only, e)
		},
	}
	c.Flags().BoolVar(&idp, "idp", false, "serve the IdP role (default: every role with a configured issuer)")
	c.Flags().BoolVar(&authserver, "authserver", false, "serve the authorization-server role (default: every role with a configured issuer)")
	c.Flags().BoolVar(&gw, "gateway", false, "serve the MCP gateway role (default: on when gateway.routes is set)")
	c.Flags().BoolVar(&adm, "admin", false, "serve the admin API (default: on when admin.endpoint is set)")
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
	only, withAdmin, adminAlone, err := adminRole(cfg, only)
	if err != nil {
		return err
	}
	var rs []role
	var withGateway bool
	if !adminAlone {
		if rs, withGateway, err = serveRoles(cfg, only); err != nil {
			return err
		}
	}
	// Before listening: no request sees a half-seeded directory, and a
	// broken seed stops startup instead of serving a stale organisation.
	if err := applySeedFile(ctx, cfg, db, logger); err != nil {
		return err
	}
	// Signed audit checkpoints (audit.*); the deferred stop writes the
	// last one after the server has drained, before the database closes.
	stopCheckpoints, err := startAuditCheckpoints(ctx, cfg, db, logger)
	if err != nil {
		return err
	}
	defer stopCheckpoints()
	var wk []byte
	if len(rs) > 0 || withAdmin { // roles that sign, and the admin API's derived keys
		if wk, err = wrappingKey(cfg); err != nil {
			return err
		}
		defer clear(wk)
	}
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
			// The ledger's deliverer pushes revocations to authorization
			// servers; it stops after the listener has drained.
			stopLedger, err := startLedger(ctx, cfg, db, m, r.issuer, logger)
			if err != nil {
				return err
			}
			defer stopLedger()
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
	var adminSrv *admin.Server
	if withAdmin {
		var idpKeys jose.KeySet
		if m := managers["idp"]; m != nil {
			idpKeys = m.KeySet()
		}
		if adminSrv, err = newAdminServer(cfg, db, wk, idpKeys, e.getenv, logger); err != nil {
			return err
		}
		if err := mountAdmin(mux, cfg.Admin.Endpoint, adminSrv); err != nil {
			return err
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var bodyLimit int64
	ready := db.Ping
	var gwStarted atomic.Bool
	if withGateway {
		bodyLimit = gatewayBodyLimit
		ready = func(ctx context.Context) error {
			if !gwStarted.Load() {
				return errors.New("the gateway is starting")
			}
			return db.Ping(ctx)
		}
	}
	srv, err := httpserver.New(httpserver.Options{
		Name:        "xaa",
		Addr:        cfg.Listen.Addr,
		AdminAddr:   cfg.Listen.AdminAddr,
		Handler:     mux,
		Registry:    reg,
		Logger:      logger,
		Ready:       ready,
		BodyLimit:   bodyLimit,
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
	adminDone := make(chan struct{})
	go func() {
		defer close(adminDone)
		if adminSrv != nil {
			pruneAdmin(ctx, adminSrv, logger)
		}
	}()
	if withGateway {
		// The gateway starts once the listener serves: its routes may name
		// an authorization server of this very process.
		err = serveWithGateway(ctx, cfg, db, e.getenv, srv, mux, &gwStarted, logger)
	} else {
		err = srv.Serve(ctx)
	}
	cancel()
	<-done
	<-adminDone
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
