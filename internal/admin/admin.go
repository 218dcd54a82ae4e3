// Package admin is the HTTP edge of OpenXAA's admin API: JSON over HTTP(S)
// under a base path, described by an OpenAPI 3.1 document it serves.
//
// Humans sign in at this deployment's own IdP (the admin API is an OpenID
// Connect relying party: code + PKCE S256, state, nonce) and must be in a
// group the configuration maps to a role; their session is a cookie
// (HttpOnly, SameSite=Strict, Secure unless dev mode on loopback).
// Automation presents short-lived admin tokens as Bearer tokens. Roles
// (viewer, auditor, approver, admin) decide what each may do; a request
// beyond its role is a 403 and changes nothing. Cookie-authenticated
// changes need a same-origin Origin and a CSRF header bound to the
// session. Query parameters are typed and closed, sort keys allowlisted,
// and cursors MAC-verified.
//
// Domain logic lives elsewhere: the connection lifecycle and principal
// revocations in internal/ledger, the directory in internal/store, the
// audit chain in internal/audit. Every change an administrator makes is
// audited with the administrator (IdP user or token id) and role.
package admin

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/openxaa/xaa/internal/audit"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/store"
)

// Store is what the admin API reads and writes directly; changes to
// connections and principals go through the Ledger.
type Store interface {
	store.Transactor
	store.Audit
	store.Users
	store.Groups
	store.Clients
	store.Resources
	store.Connections
	store.AdminSessions
	store.AdminTokens
	store.DirectoryLists
	// ScanAudit streams the records of a filter from one snapshot
	// (sqlstore.DB), for exports.
	ScanAudit(ctx context.Context, f store.AuditFilter, fn func(*store.AuditEvent) error) error
	// VerifyAudit recomputes every stream's chain (sqlstore.DB).
	VerifyAudit(ctx context.Context, opts *audit.VerifyOptions) (*audit.Report, error)
}

// Options configures the admin API. Create the server with New.
type Options struct {
	// URL is the admin API's public base URL: scheme, host, optional port
	// and path, such as https://admin.example.com/admin. Routes live under
	// its path (the API under /api/v1, the OpenAPI document at
	// /api/openapi.json, sign-in under /auth); its origin is the only one
	// from which a browser session may change anything. https, or http on
	// a loopback host with DevMode.
	URL string
	// Store is the shared database.
	Store Store
	// Ledger lists, shows and changes connections, and cuts off users,
	// members and apps. Required.
	Ledger Ledger
	// Login enables sign-in for humans at the IdP; nil means admin tokens
	// only.
	Login *LoginOptions
	// GroupRoles maps IdP groups to roles: a user in none of these groups
	// cannot sign in, and a user in several gets every role they map to.
	GroupRoles map[string]Role
	// CursorKey MACs list cursors, SessionKey binds CSRF tokens to
	// sessions and seals the sign-in state. Each at least 32 bytes, with
	// no default: cmd/xaa derives both from the wrapping key.
	CursorKey, SessionKey []byte
	// SessionLifetime bounds a browser session; 0 means 30 minutes, at
	// most 12 hours.
	SessionLifetime time.Duration
	// Checkpoints, if set, loads the signed audit checkpoints that
	// verification holds the chains to.
	Checkpoints func(ctx context.Context) ([]audit.Checkpoint, error)
	// DevMode allows an http URL on a loopback host (cookies then lose
	// Secure and the __Host- prefix).
	DevMode bool
	Logger  *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// LoginOptions makes the admin API a relying party of the IdP.
type LoginOptions struct {
	// Issuer is the IdP's issuer (issuers.idp), compared exactly with the
	// ID token's iss and the authorization response's iss.
	Issuer string
	// ClientID and ClientSecret are the admin API's registration at the
	// IdP (client_secret_basic); its redirect URI must be URL +
	// "/auth/callback".
	ClientID, ClientSecret string
	// Keys are the IdP's signing keys (its JWKS).
	Keys jose.KeySet
	// AuthorizationEndpoint and TokenEndpoint default to Issuer +
	// "/authorize" and Issuer + "/token" (this deployment's IdP).
	AuthorizationEndpoint, TokenEndpoint string
	// HTTPClient calls the token endpoint; nil means one with a 10 s
	// timeout that follows no redirects.
	HTTPClient *http.Client
}

// Defaults and bounds.
const (
	DefaultSessionLifetime = 30 * time.Minute
	MaxSessionLifetime     = 12 * time.Hour
	// MaxTokenTTL is the longest an admin token lives.
	MaxTokenTTL = time.Hour
	// bodyLimit caps JSON request bodies.
	bodyLimit = 64 << 10
)

// ErrInvalidOptions wraps every configuration error of New.
var ErrInvalidOptions = errors.New("admin: invalid options")

// Server is a configured admin API.
type Server struct {
	opts     Options
	base     *url.URL
	basePath string // URL path without a trailing slash, "" for the root
	origin   string // scheme://host[:port]
	secure   bool
	log      *slog.Logger
	now      func() time.Time
	cursors  *cursorCodec
	csrfKey  []byte
	login    *login
	roles    map[string]Role
	routes   []*route
	handler  http.Handler
	openapi  []byte
	// patterns are the ServeMux patterns registered, for the drift test.
	patterns []string
}

// New validates opts and returns the server.
func New(opts *Options) (*Server, error) {
	if opts == nil {
		return nil, fmt.Errorf("%w: nil options", ErrInvalidOptions)
	}
	o := *opts
	bad := func(format string, args ...any) (*Server, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, args...)...)
	}
	if o.Store == nil || o.Ledger == nil {
		return bad("a store and a ledger are required")
	}
	u, err := url.Parse(o.URL)
	switch {
	case err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return bad("URL %q must be an absolute http(s) URL without user info, query or fragment", o.URL)
	case u.Scheme == "https":
	case u.Scheme == "http" && o.DevMode && isLoopback(u.Hostname()):
	default:
		return bad("URL %q must be https (http only on a loopback host in dev mode)", o.URL)
	}
	if len(o.CursorKey) < 32 || len(o.SessionKey) < 32 {
		return bad("the cursor and session keys must each be at least 32 bytes")
	}
	switch {
	case o.SessionLifetime == 0:
		o.SessionLifetime = DefaultSessionLifetime
	case o.SessionLifetime < time.Minute || o.SessionLifetime > MaxSessionLifetime:
		return bad("session lifetime %s must be from 1m to %s", o.SessionLifetime, MaxSessionLifetime)
	}
	roles := map[string]Role{}
	for g, r := range o.GroupRoles {
		if err := store.CheckGroupName(g); err != nil {
			return bad("group %q: %v", g, err)
		}
		if _, err := ParseRole(string(r)); err != nil {
			return bad("group %q: %v", g, err)
		}
		roles[g] = r
	}
	if o.Login != nil && len(roles) == 0 {
		return bad("sign-in at the IdP needs at least one group mapped to a role")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	cursors, err := newCursorCodec(o.CursorKey)
	if err != nil {
		return bad("%v", err)
	}
	s := &Server{
		opts:     o,
		base:     u,
		basePath: strings.TrimSuffix(u.Path, "/"),
		origin:   originOf(u),
		secure:   u.Scheme == "https",
		log:      o.Logger,
		now:      func() time.Time { return o.Now().UTC().Truncate(time.Millisecond) },
		cursors:  cursors,
		csrfKey:  subkey(o.SessionKey, "csrf"),
		roles:    roles,
	}
	if o.Login != nil {
		if s.login, err = newLogin(s, o.Login); err != nil {
			return bad("%v", err)
		}
	}
	s.routes = s.routeTable()
	mux := http.NewServeMux()
	for _, rt := range s.routes {
		pattern := rt.method + " " + s.basePath + rt.path
		mux.Handle(pattern, s.serve(rt))
		s.patterns = append(s.patterns, pattern)
	}
	s.handler = mux
	if s.openapi, err = s.openAPIDocument(); err != nil {
		return nil, err
	}
	return s, nil
}

// Handler returns the admin API's routes, with paths that include the
// base path: mount it at the URL's host and path (cmd/xaa does).
func (s *Server) Handler() http.Handler { return s.handler }

// BasePath is the URL's path without a trailing slash.
func (s *Server) BasePath() string { return s.basePath }

// RedirectURI is the URI to register for the admin API at the IdP.
func (s *Server) RedirectURI() string { return s.origin + s.basePath + "/auth/callback" }

// Prune deletes expired sessions and admin tokens.
func (s *Server) Prune(ctx context.Context) error {
	cutoff := s.now()
	_, err1 := s.opts.Store.PruneAdminSessions(ctx, cutoff)
	_, err2 := s.opts.Store.PruneAdminTokens(ctx, cutoff)
	return errors.Join(err1, err2)
}

// originOf is the RFC 6454 serialisation of u's origin: lowercase scheme
// and host, the port only when it is not the scheme's default.
func originOf(u *url.URL) string {
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	port := u.Port()
	if port == "" || (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		return u.Scheme + "://" + host
	}
	return u.Scheme + "://" + host + ":" + port
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// subkey derives a key for one use from k (HMAC-SHA256 with a label).
func subkey(k []byte, label string) []byte {
	m := hmac.New(sha256.New, k)
	m.Write([]byte("openxaa admin " + label))
	return m.Sum(nil)
}
