package mcpauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// IntrospectionOptions configure an IntrospectionVerifier (RFC 7662).
type IntrospectionOptions struct {
	// Endpoint is the AS introspection endpoint: https, or http on a
	// loopback host when AllowLoopbackHTTP is set.
	Endpoint string
	// ClientID and ClientSecret authenticate this resource server with
	// client_secret_basic.
	ClientID, ClientSecret string
	// Issuer, when the response carries iss, must equal it; it is required
	// when the response has none (the token's issuer is then taken as it).
	Issuer string
	// Resource is this server's canonical URI; the response's aud must be
	// exactly it (a string or a one-element array).
	Resource string
	// HTTPClient makes the introspection calls; the default has a 5 s
	// timeout and never follows redirects.
	HTTPClient *http.Client
	// Revocations, if set, is consulted after a token is found active.
	Revocations Revocations
	// CacheTTL caches active answers by token hash, never past the
	// token's exp; 0 means ask on every request.
	CacheTTL time.Duration
	// Now replaces time.Now (tests).
	Now func() time.Time

	// AllowLoopbackHTTP permits an http:// Endpoint on a loopback host.
	// (Addition to the contract.)
	AllowLoopbackHTTP bool
}

// Limits of the introspection client.
const (
	maxIntrospectionBody = 64 << 10
	maxCachedTokens      = 10000
	introspectionTimeout = 5 * time.Second
)

// IntrospectionVerifier verifies tokens by asking the authorization server.
// It is safe for concurrent use.
type IntrospectionVerifier struct {
	endpoint, clientID, clientSecret, issuer, resource string
	client                                             *http.Client
	revocations                                        Revocations
	ttl                                                time.Duration
	now                                                func() time.Time

	mu    sync.Mutex
	cache map[[sha256.Size]byte]cachedToken
}

type cachedToken struct {
	info    *TokenInfo
	expires time.Time
}

// NewIntrospectionVerifier validates opts and returns a verifier.
func NewIntrospectionVerifier(opts *IntrospectionOptions) (*IntrospectionVerifier, error) {
	if opts == nil {
		return nil, errors.New("mcpauth: IntrospectionOptions are required")
	}
	u, err := url.Parse(opts.Endpoint)
	switch {
	case opts.Endpoint == "" || err != nil || u.Host == "" || u.User != nil || u.Fragment != "":
		return nil, errors.New("mcpauth: IntrospectionOptions.Endpoint must be an absolute URL without userinfo or fragment")
	case u.Scheme == "http" && !(opts.AllowLoopbackHTTP && loopbackHost(u.Hostname())):
		return nil, errors.New("mcpauth: IntrospectionOptions.Endpoint must use https (http only on loopback with AllowLoopbackHTTP)")
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, errors.New("mcpauth: IntrospectionOptions.Endpoint must use https")
	}
	if opts.ClientID == "" || opts.ClientSecret == "" {
		return nil, errors.New("mcpauth: IntrospectionOptions.ClientID and ClientSecret are required")
	}
	if opts.Issuer == "" || opts.Resource == "" {
		return nil, errors.New("mcpauth: IntrospectionOptions.Issuer and Resource are required")
	}
	if opts.CacheTTL < 0 {
		return nil, errors.New("mcpauth: IntrospectionOptions.CacheTTL must not be negative")
	}
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{
			Timeout: introspectionTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &IntrospectionVerifier{
		endpoint:     opts.Endpoint,
		clientID:     opts.ClientID,
		clientSecret: opts.ClientSecret,
		issuer:       opts.Issuer,
		resource:     opts.Resource,
		client:       client,
		revocations:  opts.Revocations,
		ttl:          opts.CacheTTL,
		now:          now,
		cache:        make(map[[sha256.Size]byte]cachedToken),
	}, nil
}

func loopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// introspectionResponse is RFC 7662 §2.2 with the RFC 9068 claims our AS
// adds. Pointers tell absent members from empty ones.
type introspectionResponse struct {
	Active    *bool           `json:"active"`
	Scope     *string         `json:"scope"`
	ClientID  string          `json:"client_id"`
	Subject   string          `json:"sub"`
	Audience  json.RawMessage `json:"aud"`
	Issuer    string          `json:"iss"`
	Expiry    *float64        `json:"exp"`
	IssuedAt  *float64        `json:"iat"`
	JTI       string          `json:"jti"`
	TokenType string          `json:"token_type"`
	AuthTime  *float64        `json:"auth_time"`
	ACR       string          `json:"acr"`
	AMR       []string        `json:"amr"`
}

// Verify implements Verifier. An inactive token, or an active one for
// another resource or issuer, is ErrInvalidToken; a failing endpoint is a
// plain error (the middleware answers 503).
func (v *IntrospectionVerifier) Verify(ctx context.Context, token string) (*TokenInfo, error) {
	if token == "" {
		return nil, invalid("the access token is empty", nil)
	}
	key := sha256.Sum256([]byte(token))
	now := v.now()
	ti := v.cached(key, now)
	if ti == nil {
		var err error
		if ti, err = v.introspect(ctx, token, now); err != nil {
			return nil, err
		}
		v.store(key, ti, now)
	}
	if v.revocations != nil && v.revocations.Revoked(ti) {
		return nil, invalid("the access token has been revoked", nil)
	}
	return ti, nil
}

func (v *IntrospectionVerifier) cached(key [sha256.Size]byte, now time.Time) *TokenInfo {
	if v.ttl == 0 {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.cache[key]
	if !ok {
		return nil
	}
	if !now.Before(c.expires) {
		delete(v.cache, key)
		return nil
	}
	return c.info
}

func (v *IntrospectionVerifier) store(key [sha256.Size]byte, ti *TokenInfo, now time.Time) {
	if v.ttl == 0 {
		return
	}
	expires := now.Add(v.ttl)
	if ti.Expiration.Before(expires) {
		expires = ti.Expiration
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cache) >= maxCachedTokens {
		for k, c := range v.cache {
			if !now.Before(c.expires) {
				delete(v.cache, k)
			}
		}
		if len(v.cache) >= maxCachedTokens {
			clear(v.cache) // bounded memory beats a hit rate under a flood
		}
	}
	v.cache[key] = cachedToken{info: ti, expires: expires}
}

func (v *IntrospectionVerifier) introspect(ctx context.Context, token string, now time.Time) (*TokenInfo, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("mcpauth: introspection request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: the credentials are form-encoded before Basic.
	req.SetBasicAuth(url.QueryEscape(v.clientID), url.QueryEscape(v.clientSecret))
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mcpauth: introspection: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIntrospectionBody+1))
	if err != nil {
		return nil, fmt.Errorf("mcpauth: introspection: reading response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("mcpauth: introspection: status %d", resp.StatusCode)
	}
	if len(body) > maxIntrospectionBody {
		return nil, fmt.Errorf("mcpauth: introspection: response exceeds %d bytes", maxIntrospectionBody)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, errors.New("mcpauth: introspection: response is not application/json")
	}
	if err := checkStrictObject(body); err != nil {
		return nil, fmt.Errorf("mcpauth: introspection: %w", err)
	}
	var r introspectionResponse
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("mcpauth: introspection: decoding response: %w", err)
	}
	if r.Active == nil {
		return nil, errors.New("mcpauth: introspection: response has no active member")
	}
	if !*r.Active {
		return nil, invalid("the access token is not active", nil)
	}
	return v.tokenInfo(&r, now)
}

// tokenInfo checks an active answer against this resource server: an AS
// may answer active for a token of another audience it lets us see.
func (v *IntrospectionVerifier) tokenInfo(r *introspectionResponse, now time.Time) (*TokenInfo, error) {
	bad := func(description, detail string) error {
		return invalid(description, errors.New("introspection: "+detail))
	}
	iss := r.Issuer
	if iss == "" {
		iss = v.issuer
	}
	if iss != v.issuer {
		return nil, bad("the access token was issued by an untrusted issuer", "iss mismatch")
	}
	var aud []string
	if s, ok := rawString(r.Audience); ok {
		aud = []string{s}
	} else if len(r.Audience) > 0 && r.Audience[0] == '[' {
		if err := json.Unmarshal(r.Audience, &aud); err != nil {
			return nil, bad("the access token was issued for another resource", "aud malformed")
		}
	}
	if len(aud) != 1 || aud[0] != v.resource {
		return nil, bad("the access token was issued for another resource", "aud mismatch")
	}
	if r.TokenType != "" && !strings.EqualFold(r.TokenType, "Bearer") && r.TokenType != "access_token" {
		return nil, bad("the bearer token is not an access token", "token_type "+r.TokenType)
	}
	if r.Subject == "" || r.ClientID == "" || r.JTI == "" {
		return nil, bad("the access token lacks a required claim or has a malformed one", "sub, client_id and jti are required")
	}
	date := func(f *float64) (time.Time, bool) {
		if f == nil {
			return time.Time{}, false
		}
		return unixDate(*f)
	}
	exp, ok := date(r.Expiry)
	if !ok {
		return nil, bad("the access token lacks a required claim or has a malformed one", "exp is required")
	}
	if !now.Before(exp) {
		return nil, bad("the access token has expired", "exp passed")
	}
	ti := &TokenInfo{
		Issuer:     iss,
		Subject:    r.Subject,
		ClientID:   r.ClientID,
		JTI:        r.JTI,
		Audience:   aud[0],
		ACR:        r.ACR,
		AMR:        r.AMR,
		Expiration: exp,
	}
	if r.Scope != nil {
		ti.Scopes = splitScope(*r.Scope)
	}
	if r.IssuedAt != nil {
		if ti.IssuedAt, ok = date(r.IssuedAt); !ok {
			return nil, bad("the access token lacks a required claim or has a malformed one", "iat malformed")
		}
	}
	if r.AuthTime != nil {
		if ti.AuthTime, ok = date(r.AuthTime); !ok {
			return nil, bad("the access token lacks a required claim or has a malformed one", "auth_time malformed")
		}
	}
	return ti, nil
}
