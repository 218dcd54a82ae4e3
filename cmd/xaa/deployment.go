package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/openxaa/xaa/internal/config"
	"github.com/openxaa/xaa/internal/keyring"
	"github.com/openxaa/xaa/internal/store/sqlstore"
)

// loadConfig reads the config named by --config (or XAA_CONFIG), applies the
// environment and validates it, reporting every problem at once.
func loadConfig(cmd *cobra.Command, e *env) (*config.Config, error) {
	path, _ := cmd.Flags().GetString("config")
	if path == "" {
		path = e.getenv("XAA_CONFIG")
	}
	cfg, err := config.Load(path, e.getenv)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// newLogger builds the process logger from the config's log section.
func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// openStore opens the configured database. It does not migrate: `xaa
// migrate` does, so that a schema change is an operator's deliberate step.
func openStore(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*sqlstore.DB, error) {
	db, err := sqlstore.Open(ctx, cfg.Database.URL.Reveal(), &sqlstore.Options{
		Logger:       logger,
		MaxOpenConns: cfg.Database.MaxOpenConns,
	})
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return db, nil
}

// role is a server role that owns signing keys under its own issuer.
type role struct {
	name   string // "idp" or "authserver"
	issuer string
}

// roles returns the roles whose issuer the config sets.
func roles(cfg *config.Config) []role {
	var rs []role
	if cfg.Issuers.IdP != "" {
		rs = append(rs, role{name: "idp", issuer: cfg.Issuers.IdP})
	}
	if cfg.Issuers.AuthServer != "" {
		rs = append(rs, role{name: "authserver", issuer: cfg.Issuers.AuthServer})
	}
	return rs
}

// selectRoles returns the roles named by --role, or every configured role.
func selectRoles(cfg *config.Config, names []string) ([]role, error) {
	all := roles(cfg)
	if len(all) == 0 {
		return nil, errors.New("no issuer is configured: set issuers.idp and/or issuers.authserver in the config file")
	}
	if len(names) == 0 {
		return all, nil
	}
	var out []role
	for _, n := range names {
		found := false
		for _, r := range all {
			if r.name == n {
				out = append(out, r)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("role %q has no issuer in the config (known roles: idp, authserver)", n)
		}
	}
	return out, nil
}

// wrappingKey loads the key that seals private signing keys and secrets.
// The caller clears it when done.
func wrappingKey(cfg *config.Config) ([]byte, error) {
	return keyring.LoadWrappingKey(cfg.Keys.WrappingKey.Reveal(), cfg.Keys.WrappingKeyFile)
}

// keyManager opens the signing keys of one role, creating them on first
// use. The manager keeps only keys derived from wk.
func keyManager(ctx context.Context, cfg *config.Config, db *sqlstore.DB, wk []byte, r role, logger *slog.Logger) (*keyring.Manager, error) {
	m, err := keyring.New(ctx, db, keyring.Options{
		Owner:            r.issuer,
		Algorithm:        cfg.Keys.Algorithm,
		WrappingKey:      wk,
		MaxTokenLifetime: time.Duration(cfg.Keys.MaxTokenLifetime),
		RefreshInterval:  keyRefreshInterval,
		Actor:            "xaa",
		Logger:           logger.With("role", r.name),
	})
	if err != nil {
		return nil, fmt.Errorf("%s signing keys: %w", r.name, err)
	}
	return m, nil
}

// issuerRoot returns the ServeMux host and path prefix of an issuer: routes
// match on the issuer's host name and path, so one listener can serve
// several issuers whether they differ by host name or by path.
func issuerRoot(issuer string) (host, path string, err error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return "", "", fmt.Errorf("issuer %q: %w", issuer, err)
	}
	return u.Hostname(), strings.TrimSuffix(u.Path, "/"), nil
}
