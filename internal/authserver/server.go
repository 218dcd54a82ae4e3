// Package authserver is OpenXAA's resource authorization server: it redeems
// ID-JAGs (the RFC 7523 jwt-bearer grant under the id-jag profile) for
// RFC 9068 access tokens bound to exactly one protected resource.
//
// It trusts identity providers only as external issuers named in its
// configuration (the cross-domain rule), and it never imports the IdP: the
// two roles meet only through tokens and metadata, as in a real deployment.
// HTTP exists at the edge only; internal/oauth renders every error.
package authserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	gojose "github.com/go-jose/go-jose/v4"

	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/keyring"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/store"
)

// Store is what the authorization server reads and writes. Clients are
// looked up in the realm of the server's issuer; Replay also holds client
// assertion jtis; everything a redemption writes goes through one InTx.
// Fences are read on every redemption and introspection, never cached, so
// a fence takes effect at once on every instance sharing the database.
type Store interface {
	store.Transactor
	store.Replay
	store.Tokens
	store.Fences
	store.Audit
	store.Clients
	store.RevocationPolls
}

// Keys is the server's signing-key source (a *keyring.Manager in
// production, owned by the AS issuer, never by the IdP's).
type Keys interface {
	Signer() jose.Signer
	KeySet() jose.KeySet
	PublicKeys(ctx context.Context) (gojose.JSONWebKeySet, error)
}

var _ Keys = (*keyring.Manager)(nil)

// TrustedIssuer is one identity provider whose ID-JAGs this server redeems.
type TrustedIssuer struct {
	// Issuer is the iss value, compared exactly. It must differ from the
	// server's own issuer (the cross-domain rule) and hold no "|" (the
	// default subject mapping uses it as a separator).
	Issuer string
	// Keys are the issuer's verification keys: a *jose.StaticKeySet for a
	// configured JWKS, or a jwkscache KeySet for its jwks_uri. The caller
	// builds it; this package never fetches anything itself.
	Keys jose.KeySet
	// Algorithms is the alg allowlist for this issuer, a subset of the
	// ID-JAG profile's (ES256, EdDSA, RS256, PS256). Empty means all four.
	Algorithms []string
	// MaxAssertionLifetime caps exp - iat of this issuer's ID-JAGs.
	// Zero means DefaultMaxAssertionLifetime; at most
	// MaxAssertionLifetimeCap.
	MaxAssertionLifetime time.Duration
	// Disabled refuses every ID-JAG of the issuer (invalid_grant,
	// audited) without removing its configuration.
	Disabled bool
	// AllowReuse is the compatibility switch of decisions.md: the same
	// client may redeem the same ID-JAG bytes again before it expires,
	// each time audited. Off by default: an ID-JAG is single use (EMA).
	AllowReuse bool
	// Subjects maps the ID-JAG's sub to the local subject the access
	// token names, or refuses it: return an error wrapping
	// ErrUnknownSubject for a subject that must not get a token (unknown,
	// disabled, not provisioned); any other error is a server failure.
	// Nil means DefaultSubject. Linking by email is deliberately not
	// offered: only iss and sub identify a user.
	Subjects func(ctx context.Context, iss, sub string) (string, error)
}

// Resource is a protected resource (an MCP server) this server governs.
type Resource struct {
	// URI is the canonical resource indicator (store.CanonicalResource)
	// that becomes the access token's aud.
	URI string
	// Scopes the resource understands. A token never carries any other.
	Scopes []string
	// AccessTokenLifetime is the lifetime of tokens for this resource,
	// whole seconds; zero means DefaultAccessTokenLifetime, at most
	// store.MaxAccessTokenLifetime.
	AccessTokenLifetime time.Duration
	// Tools maps each MCP tool name (exact) to what a call needs. This
	// server does not enforce it; it publishes it at /resource-policy to
	// the gateways that front the resource, so the policy has one source.
	Tools map[string]ToolRule
}

// ToolRule is what one tool call needs from an access token.
type ToolRule struct {
	// Scopes are all required, at least one, each one of the resource's.
	Scopes []string
	// ACRValues, when set, requires the token's acr to be one of them
	// (RFC 9470 step-up).
	ACRValues []string
	// MaxAge, when set, requires the user's authentication (auth_time) to
	// be at most this old: whole seconds, at most store.MaxToolMaxAge.
	MaxAge time.Duration
}

// ClientPolicy is what one client registered at this server may obtain.
// store.Client has no such fields yet, so the policy lives in
// configuration: a client with credentials in the store but no policy here
// is refused the grant (unauthorized_client).
type ClientPolicy struct {
	// Resources the client may obtain tokens for (canonical URIs), at
	// least one, each one of Config.Resources.
	Resources []string
	// Scopes the client may obtain, on top of each resource's own list.
	// Nil means no narrowing beyond the resource's scopes.
	Scopes []string
}

// Config configures the authorization server. Zero durations take the
// defaults below.
type Config struct {
	// Issuer is the server's issuer identifier, exactly as in tokens and
	// metadata, and the store realm of its clients. It comes from
	// configuration, never from a request.
	Issuer string
	Store  Store
	Keys   Keys
	// TrustedIssuers are the identity providers whose ID-JAGs are
	// redeemed. None may be this server's own issuer.
	TrustedIssuers []TrustedIssuer
	// IssuerStore, when set, adds the trusted issuers stored for this
	// server's realm (its Issuer), read again at most every
	// IssuerCacheTTL, so that a change made through the store reaches
	// every instance sharing it. An issuer in TrustedIssuers takes
	// precedence over a stored row of the same name. Stored issuers map
	// subjects with DefaultSubject.
	IssuerStore store.TrustedIssuers
	// IssuerKeys returns the key set of a stored issuer's jwks_uri (a
	// jwkscache KeySet in production); required with IssuerStore. An
	// error leaves that issuer untrusted.
	IssuerKeys func(jwksURI string) (jose.KeySet, error)
	// IssuerCacheTTL is how long stored issuers are cached; zero means
	// DefaultIssuerCacheTTL, at most a minute.
	IssuerCacheTTL time.Duration
	// Resources are the protected resources governed here, at least one.
	Resources []Resource
	// Clients holds the policy of each client, by client_id.
	Clients map[string]ClientPolicy
	// Disabled is the server-wide switch: every ID-JAG is refused
	// (invalid_grant, audited), whatever its issuer.
	Disabled bool
	// AuditKey keys the HMAC under which audit records reference tokens
	// (never the token itself). At least 32 bytes.
	AuditKey []byte
	// RateLimit bounds token requests per client and per source
	// address; nil means the defaults.
	RateLimit *oauth.TokenLimit
	// DevMode allows an http issuer on a loopback host.
	DevMode bool

	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ClientIP resolves the caller's address for rate limits; nil means
	// the TCP peer (IPv6 by /64).
	ClientIP func(*http.Request) string
}

// Defaults and limits.
const (
	DefaultMaxAssertionLifetime = 300 * time.Second
	MaxAssertionLifetimeCap     = store.MaxIDJAGLifetime // 600 s
	DefaultAccessTokenLifetime  = 300 * time.Second
)

// Sentinel errors.
var (
	// ErrInvalidConfig is returned by New for a Config it cannot run with.
	ErrInvalidConfig = errors.New("authserver: invalid config")
	// ErrUnknownSubject is what a Subjects hook wraps to refuse a subject;
	// the client gets invalid_grant.
	ErrUnknownSubject = errors.New("authserver: subject cannot be resolved")
)

// DefaultSubject is the default subject mapping: every subject of a trusted
// issuer is accepted, and the local subject is "iss|sub", so two issuers'
// equal sub values never name one user at a resource. There is no user
// database at the authorization server; an operator who needs to refuse
// subjects (offboarding, no-JIT) sets TrustedIssuer.Subjects.
func DefaultSubject(_ context.Context, iss, sub string) (string, error) {
	return iss + "|" + sub, nil
}

// Server is a configured authorization server. Create it with New.
type Server struct {
	cfg       Config
	log       *slog.Logger
	auth      *oauth.Authenticator
	trust     *trustSet
	resources map[string]*resource
	clients   map[string]*clientPolicy
	limits    *oauth.TokenLimiter
	polls     pollRecorder
}

// resource is a validated Resource.
type resource struct {
	uri      string
	scopes   []string
	lifetime time.Duration
	tools    map[string]ToolRule // deep copies
}

// clientPolicy is a validated ClientPolicy.
type clientPolicy struct {
	resources []string
	scopes    []string // nil: no narrowing
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	bad := func(format string, args ...any) (*Server, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if cfg.Store == nil || cfg.Keys == nil {
		return bad("Store and Keys are required")
	}
	if err := checkIssuer(cfg.Issuer, cfg.DevMode); err != nil {
		return bad("Issuer: %v", err)
	}
	if len(cfg.AuditKey) < 32 {
		return bad("AuditKey must be at least 32 bytes")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	trust, err := newTrustSet(cfg.Issuer, cfg.TrustedIssuers)
	if err != nil {
		return bad("%v", err)
	}
	if cfg.IssuerStore != nil {
		ttl := cfg.IssuerCacheTTL
		if ttl == 0 {
			ttl = DefaultIssuerCacheTTL
		}
		switch {
		case cfg.IssuerKeys == nil:
			return bad("IssuerKeys is required with IssuerStore")
		case ttl < 0 || ttl > time.Minute:
			return bad("IssuerCacheTTL %s must be from 0 (the default, %s) to 1m", ttl, DefaultIssuerCacheTTL)
		}
		trust.stored = &storedIssuers{
			realm: cfg.Issuer, src: cfg.IssuerStore, keysFor: cfg.IssuerKeys, ttl: ttl, now: cfg.Now, log: logger, ts: trust,
		}
	}
	resources, err := newResources(cfg.Resources)
	if err != nil {
		return bad("%v", err)
	}
	clients, err := newClientPolicies(cfg.Clients, resources)
	if err != nil {
		return bad("%v", err)
	}
	auth, err := oauth.NewAuthenticator(oauth.AuthenticatorOptions{
		Realm:     cfg.Issuer,
		Clients:   cfg.Store,
		Replay:    cfg.Store,
		Audiences: []string{cfg.Issuer, endpoint(cfg.Issuer, "/token")},
		ClientIP:  cfg.ClientIP,
		Now:       cfg.Now,
		Logger:    logger,
	})
	if err != nil {
		return bad("%v", err)
	}
	return &Server{
		cfg:       cfg,
		log:       logger,
		auth:      auth,
		trust:     trust,
		resources: resources,
		clients:   clients,
		limits:    oauth.NewTokenLimiter(cfg.RateLimit),
	}, nil
}

// checkIssuer accepts an absolute https URL (http on loopback in dev mode)
// without query or fragment, and without spaces, which the client realm
// may not hold.
func checkIssuer(iss string, dev bool) error {
	u, err := url.Parse(iss)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.ContainsAny(iss, " |") {
		return fmt.Errorf("%q must be an absolute https URL without userinfo, query or fragment", iss)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && dev && isLoopback(u.Hostname()):
	default:
		return fmt.Errorf("%q must use https (http only on a loopback host in dev mode)", iss)
	}
	return nil
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "::1" || strings.HasPrefix(host, "127.")
}

func newResources(rs []Resource) (map[string]*resource, error) {
	if len(rs) == 0 {
		return nil, errors.New("at least one resource is required")
	}
	out := make(map[string]*resource, len(rs))
	for _, r := range rs {
		c, err := store.CanonicalResource(r.URI)
		if err != nil {
			return nil, fmt.Errorf("resource %q: %v", r.URI, err)
		}
		if c != r.URI {
			return nil, fmt.Errorf("resource %q is not canonical; write it as %q", r.URI, c)
		}
		if out[c] != nil {
			return nil, fmt.Errorf("resource %q is listed twice", c)
		}
		if len(r.Scopes) == 0 {
			return nil, fmt.Errorf("resource %q has no scopes", c)
		}
		for i, s := range r.Scopes {
			if err := store.CheckScope(s); err != nil {
				return nil, fmt.Errorf("resource %q: %v", c, err)
			}
			if slices.Contains(r.Scopes[:i], s) {
				return nil, fmt.Errorf("resource %q lists scope %q twice", c, s)
			}
		}
		lt := r.AccessTokenLifetime
		if lt == 0 {
			lt = DefaultAccessTokenLifetime
		}
		if lt < time.Second || lt > store.MaxAccessTokenLifetime || lt%time.Second != 0 {
			return nil, fmt.Errorf("resource %q: access token lifetime %s must be whole seconds in [1s, %s]", c, lt, store.MaxAccessTokenLifetime)
		}
		tools, err := newTools(c, r.Scopes, r.Tools)
		if err != nil {
			return nil, err
		}
		out[c] = &resource{uri: c, scopes: slices.Clone(r.Scopes), lifetime: lt, tools: tools}
	}
	return out, nil
}

// newTools validates a resource's tool map and returns a deep copy, so
// that the caller's later edits cannot change what gateways are told.
func newTools(uri string, scopes []string, tools map[string]ToolRule) (map[string]ToolRule, error) {
	out := make(map[string]ToolRule, len(tools))
	for _, name := range slices.Sorted(maps.Keys(tools)) {
		t := tools[name]
		if err := store.CheckToolName(name); err != nil {
			return nil, fmt.Errorf("resource %q: %v", uri, err)
		}
		if len(t.Scopes) == 0 {
			return nil, fmt.Errorf("resource %q: tool %q requires no scope; give it at least one of the resource's scopes", uri, name)
		}
		for i, sc := range t.Scopes {
			if !slices.Contains(scopes, sc) {
				return nil, fmt.Errorf("resource %q: tool %q requires scope %q, which the resource does not have", uri, name, sc)
			}
			if slices.Contains(t.Scopes[:i], sc) {
				return nil, fmt.Errorf("resource %q: tool %q lists scope %q twice", uri, name, sc)
			}
		}
		for i, acr := range t.ACRValues {
			if err := store.CheckACRValue(acr); err != nil {
				return nil, fmt.Errorf("resource %q: tool %q: %v", uri, name, err)
			}
			if slices.Contains(t.ACRValues[:i], acr) {
				return nil, fmt.Errorf("resource %q: tool %q lists acr value %q twice", uri, name, acr)
			}
		}
		if t.MaxAge < 0 || t.MaxAge > store.MaxToolMaxAge || t.MaxAge%time.Second != 0 {
			return nil, fmt.Errorf("resource %q: tool %q: max_age %s must be whole seconds from 0 to %s", uri, name, t.MaxAge, store.MaxToolMaxAge)
		}
		out[name] = ToolRule{Scopes: slices.Clone(t.Scopes), ACRValues: slices.Clone(t.ACRValues), MaxAge: t.MaxAge}
	}
	return out, nil
}

func newClientPolicies(cs map[string]ClientPolicy, resources map[string]*resource) (map[string]*clientPolicy, error) {
	out := make(map[string]*clientPolicy, len(cs))
	for id, p := range cs {
		if id == "" {
			return nil, errors.New("a client policy has an empty client_id")
		}
		if len(p.Resources) == 0 {
			return nil, fmt.Errorf("client %q may obtain no resource", id)
		}
		for _, r := range p.Resources {
			if resources[r] == nil {
				return nil, fmt.Errorf("client %q: resource %q is not governed by this server", id, r)
			}
		}
		if p.Scopes != nil && len(p.Scopes) == 0 {
			return nil, fmt.Errorf("client %q: an empty scope list grants nothing; omit it for no narrowing", id)
		}
		for _, s := range p.Scopes {
			if err := store.CheckScope(s); err != nil {
				return nil, fmt.Errorf("client %q: %v", id, err)
			}
		}
		out[id] = &clientPolicy{resources: slices.Clone(p.Resources), scopes: slices.Clone(p.Scopes)}
	}
	return out, nil
}

// endpoint returns the absolute URL of path under the issuer.
func endpoint(issuer, path string) string {
	return strings.TrimSuffix(issuer, "/") + path
}

func (s *Server) now() time.Time { return s.cfg.Now() }
