package xaaclient

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Client authentication methods at a token endpoint (RFC 7591 names).
const (
	AuthMethodSecretBasic   = "client_secret_basic"
	AuthMethodSecretPost    = "client_secret_post"
	AuthMethodPrivateKeyJWT = "private_key_jwt"
	// AuthMethodNone is a public client: client_id in the form, no
	// secret. Only for Options.Client, at an IdP that registered the app
	// that way (RFC 8693 does not require client authentication);
	// authorization servers always authenticate the client
	// (decisions.md).
	AuthMethodNone = "none"
)

// Credentials are one confidential client registration: the requesting
// app at the IdP, or the app at one resource authorization server. Both
// token endpoints of the flow require client authentication
// (decisions.md), so public clients are not supported.
type Credentials struct {
	ClientID string
	// ClientSecret for client_secret_basic or client_secret_post.
	ClientSecret string
	// PrivateKey for private_key_jwt: an ECDSA P-256 key (ES256) or an
	// Ed25519 key (EdDSA). Its public half is registered at the server.
	PrivateKey crypto.Signer
	// AuthMethod is one of the AuthMethod constants; empty means
	// client_secret_basic with a secret and private_key_jwt with a key.
	AuthMethod string
}

func (c Credentials) validate() (Credentials, error) {
	if c.ClientID == "" {
		return c, errors.New("client_id is required")
	}
	hasSecret, hasKey := c.ClientSecret != "", c.PrivateKey != nil
	if c.AuthMethod == AuthMethodNone {
		if hasSecret || hasKey {
			return c, errors.New("auth method none takes neither a client secret nor a private key")
		}
		return c, nil
	}
	switch {
	case hasSecret && hasKey:
		return c, errors.New("give a client secret or a private key, not both")
	case !hasSecret && !hasKey:
		return c, errors.New("a client secret or a private key is required (confidential clients only)")
	}
	if c.AuthMethod == "" {
		c.AuthMethod = AuthMethodSecretBasic
		if hasKey {
			c.AuthMethod = AuthMethodPrivateKeyJWT
		}
	}
	switch c.AuthMethod {
	case AuthMethodSecretBasic, AuthMethodSecretPost:
		if !hasSecret {
			return c, fmt.Errorf("%s needs a client secret", c.AuthMethod)
		}
	case AuthMethodPrivateKeyJWT:
		if !hasKey {
			return c, errors.New("private_key_jwt needs a private key")
		}
		switch k := c.PrivateKey.Public().(type) {
		case *ecdsa.PublicKey:
			if k.Curve != elliptic.P256() {
				return c, errors.New("private_key_jwt needs a P-256 ECDSA key or an Ed25519 key")
			}
		case ed25519.PublicKey:
		default:
			return c, fmt.Errorf("private_key_jwt key type %T is not supported (use P-256 ECDSA or Ed25519)", k)
		}
	default:
		return c, fmt.Errorf("unknown auth method %q", c.AuthMethod)
	}
	return c, nil
}

// Options configures a Client. Only Issuer, Client and AuthServers are
// required.
type Options struct {
	// Issuer is the enterprise IdP's issuer identifier, exactly as in its
	// metadata and ID tokens.
	Issuer string
	// Client is the requesting app's registration at the IdP: it signs
	// users in and exchanges their ID tokens for ID-JAGs.
	Client Credentials
	// AuthServers holds the app's registration at each resource
	// authorization server, keyed by that server's issuer (compared
	// exactly). Credentials are never sent to another server (MCP
	// 2026-07-28: registrations are bound to one issuer).
	AuthServers map[string]Credentials

	// LoginScopes are the OpenID scopes of the SSO login; default openid
	// and offline_access (the IdP refresh token renews the ID token).
	LoginScopes []string
	// RedirectURL is the loopback redirect URI registered at the IdP,
	// http://127.0.0.1 or http://[::1] with a path; default
	// http://127.0.0.1/callback. Without a port the listener takes an
	// ephemeral one (RFC 8252 §7.3).
	RedirectURL string
	// Browser opens the IdP's authorization URL for the user. Default:
	// print the URL on standard error and try the system's opener.
	Browser func(ctx context.Context, authURL string) error
	// StepUp is asked before the client sends the user back to the IdP
	// for a stronger or fresher login (RFC 9470). Return an error to
	// refuse. Nil means the client returns *StepUpError instead.
	StepUp func(ctx context.Context, c *StepUpChallenge) error
	// NonInteractive forbids logins: when the IdP session cannot be
	// renewed with the refresh token the client returns ErrLoginRequired.
	NonInteractive bool
	// LoginTimeout bounds the wait for the browser to come back; default
	// 5 minutes.
	LoginTimeout time.Duration

	// CacheFile holds the IdP session (ID token, refresh token) and
	// access tokens between runs: written 0600 atomically, refused when
	// others can read it. Default: a file per (issuer, client) under
	// os.UserConfigDir()/xaa/. Set MemoryOnly to keep nothing on disk.
	CacheFile  string
	MemoryOnly bool

	// MaxScopeRetries bounds the re-authorizations after
	// insufficient_scope for one challenged scope set; default 2.
	MaxScopeRetries int
	// AllowLoopbackHTTP permits http:// URLs on loopback hosts (local
	// development); everything else must be https.
	AllowLoopbackHTTP bool

	// IDToken, when set, supplies the user's ID token for the token
	// exchange in place of the client's own sign-in: for applications
	// that sign users in themselves or get the token from their platform.
	// The client does not verify it (the IdP does when it is exchanged);
	// it reads only sub, exp, acr and auth_time, to key the token cache.
	// It never opens a browser, renews or steps up: an ID token the IdP
	// refuses is asked for once more (the function should return a new
	// one), and a step-up is a *StepUpError.
	IDToken func(ctx context.Context) (string, error)
	// IdPTokenEndpoint, only with IDToken, is the IdP's token endpoint:
	// the IdP's metadata is then never fetched (for an IdP whose metadata
	// lacks what the client's own login needs, PKCE or a JWKS).
	IdPTokenEndpoint string
	// AllowExchangeWithoutResource accepts a token-exchange response
	// without the resource parameter of ID-JAG draft -05 when the ID-JAG's
	// resource claim is exactly the requested resource: IdPs built on
	// earlier drafts (the MCP conformance suite's, among others) send the
	// claim only. A response or claim naming another resource is refused
	// all the same.
	AllowExchangeWithoutResource bool

	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives what the client does. It never receives a token:
	// at most an ID-JAG's jti.
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultRedirectURL     = "http://127.0.0.1/callback"
	DefaultLoginTimeout    = 5 * time.Minute
	DefaultMaxScopeRetries = 2
)

// defaultLoginScopes: offline_access asks for a refresh token, so the ID
// token can be renewed without the browser (spec digest §1.8, §5).
var defaultLoginScopes = []string{"openid", "offline_access"}

func (o *Options) withDefaults() (Options, error) {
	var out Options
	if o != nil {
		out = *o
	}
	bad := func(format string, args ...any) (Options, error) {
		return Options{}, fmt.Errorf("xaaclient: invalid options: "+format, args...)
	}
	iss, err := url.Parse(out.Issuer)
	if out.Issuer == "" || err != nil || iss.Host == "" || iss.RawQuery != "" || iss.Fragment != "" ||
		(iss.Scheme != "https" && !(iss.Scheme == "http" && out.AllowLoopbackHTTP && isLoopbackHost(iss.Hostname()))) {
		return bad("Issuer %q must be an absolute https URL without query or fragment (http only on loopback with AllowLoopbackHTTP)", out.Issuer)
	}
	if out.Client, err = out.Client.validate(); err != nil {
		return bad("Client: %v", err)
	}
	if len(out.AuthServers) == 0 {
		return bad("AuthServers needs the app's credentials at one authorization server at least")
	}
	servers := make(map[string]Credentials, len(out.AuthServers))
	for issuer, c := range out.AuthServers {
		if u, err := url.Parse(issuer); issuer == "" || err != nil || u.Host == "" {
			return bad("AuthServers: %q is not an issuer URL", issuer)
		}
		if c.AuthMethod == AuthMethodNone {
			return bad("AuthServers[%q]: authorization servers authenticate every client; auth method none is for the IdP only", issuer)
		}
		if servers[issuer], err = c.validate(); err != nil {
			return bad("AuthServers[%q]: %v", issuer, err)
		}
	}
	if out.IdPTokenEndpoint != "" {
		if out.IDToken == nil {
			return bad("IdPTokenEndpoint needs IDToken (the client's own sign-in needs the IdP's metadata)")
		}
		te, err := url.Parse(out.IdPTokenEndpoint)
		if err != nil || te.Host == "" || te.User != nil || te.Fragment != "" ||
			(te.Scheme != "https" && !(te.Scheme == "http" && out.AllowLoopbackHTTP && isLoopbackHost(te.Hostname()))) {
			return bad("IdPTokenEndpoint %q must be an absolute https URL (http only on loopback with AllowLoopbackHTTP)", out.IdPTokenEndpoint)
		}
	}
	out.AuthServers = servers
	if len(out.LoginScopes) == 0 {
		out.LoginScopes = defaultLoginScopes
	}
	if !slices.Contains(out.LoginScopes, "openid") {
		return bad("LoginScopes must include openid")
	}
	if out.RedirectURL == "" {
		out.RedirectURL = DefaultRedirectURL
	}
	ru, err := url.Parse(out.RedirectURL)
	if err != nil || ru.Scheme != "http" || (ru.Hostname() != "127.0.0.1" && ru.Hostname() != "::1") ||
		ru.User != nil || ru.RawQuery != "" || ru.Fragment != "" {
		return bad("RedirectURL %q must be http://127.0.0.1[:port]/path or http://[::1][:port]/path (RFC 8252 §7.3; never the name localhost)", out.RedirectURL)
	}
	if out.LoginTimeout <= 0 {
		out.LoginTimeout = DefaultLoginTimeout
	}
	if out.MaxScopeRetries <= 0 {
		out.MaxScopeRetries = DefaultMaxScopeRetries
	}
	if out.Browser == nil {
		out.Browser = DefaultBrowser
	}
	if out.HTTPClient == nil {
		out.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	if !out.MemoryOnly && out.CacheFile == "" {
		dir, err := os.UserConfigDir()
		if err != nil {
			return bad("no CacheFile and no user config directory (%v); set CacheFile or MemoryOnly", err)
		}
		out.CacheFile = filepath.Join(dir, "xaa", DefaultCacheFileName(out.Issuer, out.Client.ClientID))
	}
	return out, nil
}

// DefaultCacheFileName is the cache file name for one (issuer, client):
// distinct profiles never share (or overwrite) a session.
func DefaultCacheFileName(issuer, clientID string) string {
	sum := sha256.Sum256([]byte(issuer + "\n" + clientID))
	return "tokens-" + hex.EncodeToString(sum[:6]) + ".json"
}
