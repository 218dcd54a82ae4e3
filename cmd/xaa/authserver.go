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
// authserver section: trusted issuers' keys come from one shared JWKS
// cache, and the configured clients are registered in the store first.
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
		RateLimit:      tokenLimit(cfg.TokenRateLimit),
		ClientIP:       clientIP,
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
