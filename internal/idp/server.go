// Package idp is OpenXAA's enterprise identity provider: an OpenID Connect
// provider (code + PKCE only) whose token endpoint also mints ID-JAGs by
// RFC 8693 token exchange after the policy choke point allows it.
//
// The package knows HTTP at its edge only: handlers parse and authenticate,
// grants and policy decide, and internal/oauth turns domain errors into
// OAuth error responses.
package idp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	gojose "github.com/go-jose/go-jose/v4"

	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/keyring"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/store"
)

// Realm is the store.Client realm of the IdP's requesting apps.
const Realm = "idp"

// Store is what the IdP reads and writes. Every aggregate is small; the
// composite exists only so wiring passes one value.
type Store interface {
	store.Transactor
	store.Replay
	store.Tokens
	store.Audit
	store.Clients
	store.Users
	store.Groups
	store.AuthServers
	store.Resources
	store.Connections
	store.Ledger
	store.Sessions
	store.AuthCodes
	store.RefreshTokens
}

// Keys is the IdP's signing-key source (a *keyring.Manager in production).
type Keys interface {
	Signer() jose.Signer
	KeySet() jose.KeySet
	PublicKeys(ctx context.Context) (gojose.JSONWebKeySet, error)
}

var _ Keys = (*keyring.Manager)(nil)

// Config configures the IdP. Zero durations take the defaults below.
type Config struct {
	// Issuer is the IdP's issuer identifier, exactly as it appears in
	// tokens and metadata. It comes from configuration, never from a
	// request.
	Issuer string
	Store  Store
	Keys   Keys
	// TOTP seals and opens users' TOTP secrets at rest.
	TOTP *keyring.SecretBox
	// AuditKey keys the HMAC under which audit records reference tokens
	// (never the token itself). At least 32 bytes.
	AuditKey []byte

	IDTokenLifetime time.Duration // default 5 min
	CodeLifetime    time.Duration // default 60 s
	SessionLifetime time.Duration // default 8 h
	RefreshLifetime time.Duration // default 8 h

	// RequireResource makes `resource` mandatory in token exchange (MCP
	// mode, the default: decisions.md). Set DisableResourceRequirement to
	// turn it off for non-MCP resource servers.
	DisableResourceRequirement bool

	// TokenRateLimit bounds token requests (every grant) per client and per source
	// address; nil means the defaults (exchange_audit.go).
	TokenRateLimit *oauth.TokenLimit

	// LoginLimit tunes the lockout after failed logins; nil means
	// defaults (see LoginLimit).
	LoginLimit *LoginLimit

	// DevMode allows an http issuer on loopback (cookies lose Secure).
	DevMode bool
	// MFAOnDemand asks users enrolled in TOTP for a one-time code only
	// when the login request needs MFA (acr_values), instead of on every
	// login; see config.IdP.
	MFAOnDemand bool

	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
	// ClientIP resolves the caller's address for rate limits; nil means
	// the TCP peer.
	ClientIP func(*http.Request) string
}

// Defaults.
const (
	DefaultIDTokenLifetime = 5 * time.Minute
	DefaultCodeLifetime    = 60 * time.Second
	DefaultSessionLifetime = 8 * time.Hour
	DefaultRefreshLifetime = 8 * time.Hour
)

// ErrInvalidConfig is returned by New for a Config it cannot run with.
var ErrInvalidConfig = errors.New("idp: invalid config")

// Server is a configured IdP. Create it with New.
type Server struct {
	cfg    Config
	issuer *url.URL
	log    *slog.Logger
	auth   *oauth.Authenticator
	grants map[string]grant
	limits *oauth.TokenLimiter
	sso    *ssoState
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Keys == nil {
		return nil, fmt.Errorf("%w: Store and Keys are required", ErrInvalidConfig)
	}
	u, err := url.Parse(cfg.Issuer)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || (u.Scheme != "https" && !(cfg.DevMode && u.Scheme == "http")) {
		return nil, fmt.Errorf("%w: Issuer %q must be an absolute https URL without query or fragment", ErrInvalidConfig, cfg.Issuer)
	}
	if len(cfg.AuditKey) < 32 {
		return nil, fmt.Errorf("%w: AuditKey must be at least 32 bytes", ErrInvalidConfig)
	}
	if cfg.IDTokenLifetime == 0 {
		cfg.IDTokenLifetime = DefaultIDTokenLifetime
	}
	if cfg.CodeLifetime == 0 {
		cfg.CodeLifetime = DefaultCodeLifetime
	}
	if cfg.SessionLifetime == 0 {
		cfg.SessionLifetime = DefaultSessionLifetime
	}
	if cfg.RefreshLifetime == 0 {
		cfg.RefreshLifetime = DefaultRefreshLifetime
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	auth, err := oauth.NewAuthenticator(oauth.AuthenticatorOptions{
		Realm:     Realm,
		Clients:   cfg.Store,
		Replay:    cfg.Store,
		Audiences: []string{cfg.Issuer, endpoint(cfg.Issuer, "/token")},
		ClientIP:  cfg.ClientIP,
		Now:       cfg.Now,
		Logger:    logger,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	s := &Server{cfg: cfg, issuer: u, log: logger, auth: auth}
	s.grants = s.newGrants()
	s.limits = oauth.NewTokenLimiter(cfg.TokenRateLimit)
	if s.sso, err = newSSOState(cfg); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return s, nil
}

// endpoint returns the absolute URL of path under the issuer.
func endpoint(issuer, path string) string {
	return strings.TrimSuffix(issuer, "/") + path
}

// now is the server's clock.
func (s *Server) now() time.Time { return s.cfg.Now() }
