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
	"os"
	"slices"
	"time"

	gojose "github.com/go-jose/go-jose/v4"

	"github.com/openxaa/xaa/internal/authserver"
	"github.com/openxaa/xaa/internal/config"
	"github.com/openxaa/xaa/internal/jwkscache"
	"github.com/openxaa/xaa/internal/keyring"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
)

// authServerAuditLabel derives the authorization server's audit HMAC key.
// It differs from the IdP's label so that the two trust domains' audit
// references cannot be correlated or forged across roles.
const authServerAuditLabel = "authserver audit token hmac"

// clientStore is what registerClients needs.
type clientStore interface {
	store.Clients
	store.ClientUpdater
}

// newAuthServer builds the resource authorization server from the
// authserver section. The trusted issuers are synced into the store and
// the server reads them from there (cached for a few seconds), so every
// instance on one database trusts the same issuers; their keys come from
// one shared JWKS cache. The configured clients are registered in the
// store too.
func newAuthServer(ctx context.Context, cfg *config.Config, db *sqlstore.DB, keys *keyring.Manager, wk []byte, issuer string, logger *slog.Logger) (*authserver.Server, error) {
	clientIP, err := clientAddress(cfg.Listen)
	if err != nil {
		return nil, err
	}
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
	now := time.Now().UTC()
	trusted := make([]store.TrustedIssuer, 0, len(sec.TrustedIssuers))
	for _, ti := range sec.TrustedIssuers {
		if _, err := cache.KeySet(ti.JWKSURI); err != nil {
			return nil, fmt.Errorf("authserver: trusted issuer %s: jwks_uri: %w", ti.Issuer, err)
		}
		row := store.TrustedIssuer{
			Realm:                issuer,
			Issuer:               ti.Issuer,
			JWKSURI:              ti.JWKSURI,
			Algorithms:           ti.Algorithms,
			MaxAssertionLifetime: time.Duration(ti.MaxAssertionLifetime),
			Disabled:             ti.Disabled,
			AllowReuse:           ti.AllowReuse,
			CreatedAt:            now,
			UpdatedAt:            now,
		}
		if err := row.Validate(); err != nil {
			return nil, fmt.Errorf("authserver: trusted issuer %s: %w", ti.Issuer, err)
		}
		trusted = append(trusted, row)
	}
	resources := make([]authserver.Resource, 0, len(sec.Resources))
	for _, r := range sec.Resources {
		resources = append(resources, authserver.Resource{
			URI: r.URI, Scopes: r.Scopes, AccessTokenLifetime: time.Duration(r.AccessTokenLifetime), Tools: asTools(r.Tools),
		})
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
		Issuer:      issuer,
		Store:       db,
		Keys:        keys,
		IssuerStore: db,
		IssuerKeys:  cache.KeySet,
		Resources:   resources,
		Clients:     policies,
		AuditKey:    auditKey,
		DevMode:     cfg.DevMode,
		Disabled:    sec.Disabled,
		RateLimit:   tokenLimit(cfg.TokenRateLimit),
		ClientIP:    clientIP,
		Logger:      log,
	})
	if err != nil {
		return nil, fmt.Errorf("authserver: %w", err)
	}
	// Synced only once the config has proved runnable, so a broken
	// section changes nothing in the database.
	if err := syncTrustedIssuers(ctx, db, issuer, trusted, log); err != nil {
		return nil, err
	}
	if err := registerClients(ctx, db, issuer, sec.Clients, log); err != nil {
		return nil, err
	}
	return s, nil
}

// syncTrustedIssuers makes the realm's stored trusted issuers match the
// config, which is their one source: missing rows are created, changed
// ones updated, and a stored issuer the config no longer lists is
// disabled (never deleted, so the row records that it was once trusted).
// Idempotent, and safe when several instances start at once.
func syncTrustedIssuers(ctx context.Context, db store.TrustedIssuers, realm string, want []store.TrustedIssuer, logger *slog.Logger) error {
	listed := make(map[string]bool, len(want))
	for _, w := range want {
		listed[w.Issuer] = true
		cur, err := db.GetTrustedIssuer(ctx, realm, w.Issuer)
		if errors.Is(err, store.ErrNotFound) {
			err = db.CreateTrustedIssuer(ctx, w)
			if err == nil {
				logger.Info("trusted issuer added", "issuer", w.Issuer, "disabled", w.Disabled)
				continue
			}
			if errors.Is(err, store.ErrConflict) { // another instance won the race
				cur, err = db.GetTrustedIssuer(ctx, realm, w.Issuer)
			}
		}
		if err != nil {
			return fmt.Errorf("authserver: store trusted issuer %s: %w", w.Issuer, err)
		}
		if sameTrust(cur, w) {
			continue
		}
		err = db.UpdateTrustedIssuer(ctx, realm, w.Issuer, func(cur store.TrustedIssuer) (store.TrustedIssuer, error) {
			cur.JWKSURI, cur.Algorithms, cur.MaxAssertionLifetime = w.JWKSURI, w.Algorithms, w.MaxAssertionLifetime
			cur.AllowReuse, cur.Disabled, cur.UpdatedAt = w.AllowReuse, w.Disabled, w.UpdatedAt
			return cur, nil
		})
		if err != nil {
			return fmt.Errorf("authserver: update trusted issuer %s: %w", w.Issuer, err)
		}
		logger.Info("trusted issuer updated from the config", "issuer", w.Issuer, "disabled", w.Disabled)
	}
	stored, err := db.ListTrustedIssuers(ctx, realm)
	if err != nil {
		return fmt.Errorf("authserver: list trusted issuers: %w", err)
	}
	for _, st := range stored {
		if listed[st.Issuer] || st.Disabled {
			continue
		}
		err := db.UpdateTrustedIssuer(ctx, realm, st.Issuer, func(cur store.TrustedIssuer) (store.TrustedIssuer, error) {
			cur.Disabled, cur.UpdatedAt = true, time.Now().UTC()
			return cur, nil
		})
		if err != nil {
			return fmt.Errorf("authserver: disable trusted issuer %s: %w", st.Issuer, err)
		}
		logger.Warn("trusted issuer no longer in the config; disabled", "issuer", st.Issuer)
	}
	return nil
}

func sameTrust(a, b store.TrustedIssuer) bool {
	return a.JWKSURI == b.JWKSURI && slices.Equal(a.Algorithms, b.Algorithms) && a.MaxAssertionLifetime == b.MaxAssertionLifetime &&
		a.AllowReuse == b.AllowReuse && a.Disabled == b.Disabled
}

// asTools converts a resource's configured tool policy; the authserver
// validates it again and keeps its own copy.
func asTools(m map[string]config.ToolRule) map[string]authserver.ToolRule {
	out := make(map[string]authserver.ToolRule, len(m))
	for name, t := range m {
		out[name] = authserver.ToolRule{Scopes: t.Scopes, ACRValues: t.ACRValues, MaxAge: time.Duration(t.MaxAge)}
	}
	return out
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
