package config

import (
	"path/filepath"
	"time"
)

// Config is the content of the config file after environment overrides.
// It describes the deployment; it is not what the servers run on. cmd/xaa
// turns it into each role's own runtime Config (typed, with its store and
// signer wired in), as dex separates its file config from server.Config.
//
// Each role adds its section as one more sub-struct here. The decoder walks
// any struct shape by its yaml tags, so a new section needs its type, a
// validate step called from Validate, and an entry in examples/config.yaml
// (a test fails until the example documents every key).
type Config struct {
	// Database is the store that every instance of a deployment shares.
	Database Database `yaml:"database"`
	// Keys controls this deployment's signing keys.
	Keys Keys `yaml:"keys"`
	// Log controls the process log (not the audit trail, which is durable
	// and lives in the database).
	Log Log `yaml:"log"`
	// Listen holds the network listeners.
	Listen Listen `yaml:"listen"`
	// Issuers holds the issuer URL of each role.
	Issuers Issuers `yaml:"issuers"`
	// DevMode relaxes checks that only make sense in production: it allows
	// http:// issuers on loopback addresses. Never set it in production.
	DevMode bool `yaml:"dev_mode"`
	// SeedFile, if set, names a directory seed (the format of `xaa seed`,
	// see examples/seed.yaml) that `xaa serve` applies before it listens,
	// so a deployment's organisation can live in version control next to
	// its config. Applying is idempotent, so every restart re-applies it
	// safely; rows the file does not name are kept. A relative path is
	// relative to the working directory.
	SeedFile string `yaml:"seed_file"`
	// AuthServer configures the resource authorization server role: whom
	// it trusts, what it governs and which clients may ask.
	AuthServer AuthServer `yaml:"authserver"`
	// TokenRateLimit bounds the token endpoints of both roles, so that one
	// stolen client secret or one noisy address cannot mint without bound.
	TokenRateLimit TokenRateLimit `yaml:"token_rate_limit"`
	// IdP holds the identity provider's login policy.
	IdP IdP `yaml:"idp"`
	// Gateway configures the MCP gateway role: protected MCP endpoints
	// mounted on listen.addr, each in front of an upstream MCP server.
	Gateway Gateway `yaml:"gateway"`
	// Audit configures the audit trail's signed checkpoints, written
	// outside the database with a key that is not in it.
	Audit Audit `yaml:"audit"`
	// Admin configures the admin API role: connections, the directory and
	// the audit trail over JSON, for administrators signed in at the IdP
	// and for admin tokens.
	Admin Admin `yaml:"admin"`

	// sources records where each value came from (file position or
	// environment variable), keyed by dotted path, so that Validate can
	// point at the line to fix. Nil for a Config built in code.
	sources map[string]source
}

// Database selects and sizes the store.
type Database struct {
	// URL selects the backend by its scheme: "sqlite:/var/lib/xaa/xaa.db"
	// (or "file:...") for the embedded SQLite store, "postgres://user@host:5432/xaa"
	// (or "postgresql://") for PostgreSQL. It may hold a password, so it
	// prints redacted; prefer XAA_DATABASE_URL_FILE for a URL with a password.
	URL SecretURL `yaml:"url"`
	// MaxOpenConns caps the connection pool (1 to 1000).
	MaxOpenConns int `yaml:"max_open_conns"`
}

// Keys controls signing keys and the key that seals them at rest.
type Keys struct {
	// WrappingKeyFile is the path of a file holding the wrapping key (32
	// random bytes, base64) that encrypts private signing keys in the
	// database. The key manager refuses the file unless its mode is 0600 or
	// 0400 and it is owned by the service user. Create one with `xaa keys init`.
	WrappingKeyFile string `yaml:"wrapping_key_file"`
	// WrappingKey is the wrapping key itself, base64. Discouraged: config
	// files get copied around; prefer WrappingKeyFile or the environment
	// variables XAA_KEYS_WRAPPING_KEY(_FILE).
	WrappingKey Secret `yaml:"wrapping_key"`
	// Algorithm signs the tokens this deployment issues: ES256 or EdDSA.
	Algorithm string `yaml:"algorithm"`
	// MaxTokenLifetime is the longest lifetime of any token signed with
	// these keys. A retired key stays published this long plus leeway, so
	// every token it signed can still be verified. At most 24h.
	MaxTokenLifetime Duration `yaml:"max_token_lifetime"`
	// RotateEvery is how often a new signing key replaces the current one;
	// 0 disables automatic rotation (rotate with `xaa keys rotate`).
	RotateEvery Duration `yaml:"rotate_every"`
}

// Log controls the process log.
type Log struct {
	// Level is the minimum level logged: debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is json (for log shippers) or text (for people).
	Format string `yaml:"format"`
}

// Listen holds the network listeners. Roles get their own listeners in
// their own sections later; this is the shared shell.
type Listen struct {
	// Addr is the host:port of the public listener (the protocol endpoints).
	// ":8080" listens on every interface.
	Addr string `yaml:"addr"`
	// AdminAddr is the host:port of the operations listener (health,
	// readiness, metrics). Empty disables it. Keep it off the public network.
	AdminAddr string `yaml:"admin_addr"`
	// TLSCertFile and TLSKeyFile turn on TLS for Addr; set both or neither.
	// Leave both empty when a proxy in TrustedProxies terminates TLS.
	TLSCertFile string `yaml:"tls_cert_file"`
	// TLSKeyFile is the PEM private key for TLSCertFile.
	TLSKeyFile string `yaml:"tls_key_file"`
	// TrustedProxies lists the CIDRs (such as "10.0.0.0/8") of the reverse
	// proxies whose X-Forwarded-* and Forwarded headers are believed. From
	// anyone else those headers are ignored. Issuer URLs never come from
	// these headers.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// Issuers holds each role's issuer URL: the exact "iss" of the tokens it
// signs and the base of its metadata URL.
type Issuers struct {
	// IdP is the enterprise identity provider's issuer.
	IdP string `yaml:"idp"`
	// AuthServer is the resource authorization server's issuer. It must
	// differ from IdP: they are separate trust domains even when one process
	// runs both.
	AuthServer string `yaml:"authserver"`
}

// AuthServer is the resource authorization server's policy. Its issuer is
// issuers.authserver; an empty section leaves the role unable to start.
type AuthServer struct {
	// TrustedIssuers are the identity providers whose ID-JAGs it redeems.
	// None may be issuers.authserver (the cross-domain rule).
	TrustedIssuers []TrustedIssuer `yaml:"trusted_issuers"`
	// Resources are the protected resources (MCP servers) it governs.
	Resources []Resource `yaml:"resources"`
	// Clients are the OAuth clients registered at it. serve registers them
	// in the store at startup, so the config file is their one source.
	Clients []ASClient `yaml:"clients"`
	// Disabled is the server-wide switch: every ID-JAG is refused
	// (invalid_grant, audited with rule server.disabled) while
	// introspection, revocation and the revocation list keep working, so
	// gateways still learn about revocations. For incidents.
	Disabled bool `yaml:"disabled"`
}

// TrustedIssuer is one identity provider the authorization server trusts.
type TrustedIssuer struct {
	// Issuer is the IdP's issuer, compared exactly with an ID-JAG's iss.
	Issuer string `yaml:"issuer"`
	// JWKSURI is where the IdP publishes its keys; fetched and cached
	// (https only, http on loopback in dev_mode).
	JWKSURI string `yaml:"jwks_uri"`
	// Algorithms narrows the accepted signing algorithms; empty means the
	// ID-JAG profile's (ES256, EdDSA, RS256, PS256).
	Algorithms []string `yaml:"algorithms"`
	// MaxAssertionLifetime caps exp - iat of the IdP's ID-JAGs; 0 means
	// 5m, at most 10m.
	MaxAssertionLifetime Duration `yaml:"max_assertion_lifetime"`
	// Disabled refuses every ID-JAG of this issuer while keeping its entry.
	Disabled bool `yaml:"disabled"`
	// AllowReuse lets the same client redeem the same ID-JAG again before
	// it expires (a compatibility switch; off means single use).
	AllowReuse bool `yaml:"allow_reuse"`
}

// Resource is a protected resource the authorization server governs.
type Resource struct {
	// URI is the canonical resource indicator, the access token's aud.
	URI string `yaml:"uri"`
	// Scopes the resource understands; tokens carry no others.
	Scopes []string `yaml:"scopes"`
	// AccessTokenLifetime is the lifetime of its access tokens, whole
	// seconds; 0 means 5m, at most 1h.
	AccessTokenLifetime Duration `yaml:"access_token_lifetime"`
	// Tools maps each MCP tool name (exact match) to what a call needs.
	// The authorization server publishes it to the gateways that front the
	// resource, so the tool policy has one source. A tool not listed is
	// denied.
	Tools map[string]ToolRule `yaml:"tools"`
}

// ToolRule is what one MCP tool call needs from the access token.
type ToolRule struct {
	// Scopes are all required; each must be one of the resource's scopes.
	Scopes []string `yaml:"scopes"`
	// ACRValues, when set, requires the token's acr to be one of them
	// (RFC 9470 step-up), e.g. urn:openxaa:acr:mfa.
	ACRValues []string `yaml:"acr_values"`
	// MaxAge, when set, requires the user's login (auth_time) to be no
	// older than this.
	MaxAge Duration `yaml:"max_age"`
}

// ASClient is a client registered at the authorization server. Its secret
// is never written here, only its SHA-256.
type ASClient struct {
	// ClientID is the client_id, which must match the ID-JAG's client_id.
	ClientID string `yaml:"client_id"`
	// AuthMethod is client_secret_basic, client_secret_post or
	// private_key_jwt.
	AuthMethod string `yaml:"auth_method"`
	// ClientSecretSHA256 is the hex SHA-256 of the client secret, for the
	// client_secret_* methods.
	ClientSecretSHA256 string `yaml:"client_secret_sha256"`
	// JWKSFile names a file holding the client's public JWK Set, for
	// private_key_jwt.
	JWKSFile string `yaml:"jwks_file"`
	// Resources the client may obtain tokens for, each one of resources.
	Resources []string `yaml:"resources"`
	// Scopes narrows what the client may obtain; empty means no narrowing
	// beyond each resource's scopes.
	Scopes []string `yaml:"scopes"`
}

// TokenRateLimit bounds token requests (every grant) at each token
// endpoint with a token bucket per authenticated client and one per source
// address (IPv6 by /64). The buckets live in each instance's memory, so
// with N instances behind a load balancer the budget is N times looser.
type TokenRateLimit struct {
	// PerClient is the sustained token requests per second allowed to one
	// authenticated client; 0 means the default (100), at most 1000000.
	// Fractions are allowed: 0.5 is one request every two seconds.
	PerClient float64 `yaml:"per_client"`
	// PerAddress is the sustained token requests per second allowed from
	// one source address; 0 means the default (100), at most 1000000.
	// Behind a proxy the address is the client's only if the proxy is in
	// listen.trusted_proxies; otherwise every request shares the proxy's.
	PerAddress float64 `yaml:"per_address"`
	// Burst is how many requests a bucket allows at once before the rate
	// applies (both buckets); 0 means two seconds' worth of PerClient.
	Burst int `yaml:"burst"`
	// Disabled turns both limits off, for load tests or a deployment whose
	// proxy already rate-limits. The other keys are then ignored.
	Disabled bool `yaml:"disabled"`
}

// DefaultDataDir is where Default puts the SQLite database.
const DefaultDataDir = "/var/lib/xaa"

// Default returns the configuration used for every key that the file and
// the environment leave unset, with the SQLite database in DefaultDataDir.
func Default() *Config {
	return DefaultIn(DefaultDataDir)
}

// DefaultIn is Default with the SQLite database in dataDir, for `xaa demo`
// and tests. It configures no wrapping key (the caller supplies one, so
// that a forgotten key is an error rather than a silent default), no
// issuers, and dev mode off.
func DefaultIn(dataDir string) *Config {
	return &Config{
		Database: Database{
			URL:          SecretURL("sqlite:" + filepath.ToSlash(filepath.Join(dataDir, "xaa.db"))),
			MaxOpenConns: 10,
		},
		Keys: Keys{
			Algorithm:        "ES256",
			MaxTokenLifetime: Duration(time.Hour),
			RotateEvery:      Duration(30 * 24 * time.Hour),
		},
		Log: Log{
			Level:  "info",
			Format: "json",
		},
		Listen: Listen{
			Addr:      "127.0.0.1:8080",
			AdminAddr: "127.0.0.1:9090",
		},
		// internal/oauth's defaults, spelled out so the example can show them.
		IdP:            IdP{MFA: MFAAlways},
		TokenRateLimit: TokenRateLimit{PerClient: 100, PerAddress: 100, Burst: 200},
	}
}
