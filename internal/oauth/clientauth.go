package oauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/store"
)

// Client authentication methods (RFC 7591 token_endpoint_auth_method values).
//
// The two secret methods form one class: a client registered with either
// may authenticate with either, because clients pick the method themselves
// and do not agree (the MCP go-sdk sends client_secret_post, the TypeScript
// SDK client_secret_basic, to the same authorization server). Both present
// the same secret inside the same TLS request, so accepting either adds no
// exposure.
// The classes never mix: a private_key_jwt client cannot authenticate with a
// secret, nor a secret client with an assertion.
const (
	AuthMethodSecretBasic   = "client_secret_basic"
	AuthMethodSecretPost    = "client_secret_post"
	AuthMethodPrivateKeyJWT = "private_key_jwt"
)

// ClientAssertionTypeJWTBearer is the RFC 7523 §2.2 client_assertion_type.
const ClientAssertionTypeJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Causes of a failed client authentication. They are the Err of the
// invalid_client *Error, for logs and audit. The client sees the same
// "client authentication failed" for all of them, so whether a client_id
// exists, is disabled or uses another method cannot be learned from outside
// (threat model item 21). Only failures that depend on the request alone (a
// malformed header, a client_id that contradicts the credentials) get
// their own description.
var (
	ErrUnknownClient      = errors.New("oauth: unknown client")
	ErrWrongSecret        = errors.New("oauth: client secret does not match")
	ErrClientDisabled     = errors.New("oauth: client is disabled")
	ErrAuthMethodMismatch = errors.New("oauth: client used an authentication method it is not registered for")
	ErrBadAssertion       = errors.New("oauth: client assertion rejected")
	// ErrTooManyFailures is the cause of a 429: the client_id or source IP
	// is locked after repeated failures (see FailureLimit).
	ErrTooManyFailures = errors.New("oauth: too many failed client authentications")
)

// Descriptions sent for client authentication failures.
const (
	descAuthFailed  = "client authentication failed"
	descAuthMissing = "client authentication is required"
	descRateLimited = "too many failed client authentication attempts; retry later"
)

// secretSize is the length of a generated secret in bytes (256 bits).
const secretSize = 32

// HashSecret returns the digest under which a client secret is stored:
// SHA-256, not a password hash, because secrets are generated with 256 bits
// of entropy (no dictionary to attack) and bcrypt would cost tens of
// milliseconds of CPU per token request (docs/decisions.md).
func HashSecret(secret string) []byte {
	d := sha256.Sum256([]byte(secret))
	return d[:]
}

// GenerateSecret returns a new client secret: 256 random bits, base64url
// without padding (43 characters, safe in forms and Basic credentials).
func GenerateSecret() (string, error) {
	b := make([]byte, secretSize)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("oauth: generate secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// AuthenticatorOptions configures an Authenticator.
type AuthenticatorOptions struct {
	// Realm selects whose clients authenticate here (store.Client.Realm):
	// "idp" or an authorization server's issuer. It is also the realm of
	// the WWW-Authenticate challenge. Required; no spaces or control
	// characters (see replayIssuer).
	Realm string
	// Clients looks up registered clients. Required.
	Clients store.Clients
	// Replay records client assertion jtis under namespace
	// store.NamespaceClientAssertion and issuer replayIssuer(realm,
	// client_id), so realms sharing one database never collide. Required.
	Replay store.Replay
	// Audiences are the aud values accepted in a client assertion: this
	// server's issuer and its token endpoint URL. Required.
	Audiences []string
	// KeySetFor returns a private_key_jwt client's verification keys.
	// Default: the JWK Set registered in Client.JWKS.
	KeySetFor func(c store.Client) (jose.KeySet, error)
	// ClientIP returns the source address used for rate limiting. Default:
	// the host of r.RemoteAddr. Behind a reverse proxy, pass the function
	// that honours forwarding headers from configured proxies only;
	// otherwise every client shares the proxy's budget.
	ClientIP func(r *http.Request) string
	// FailureLimit tunes the lockout after failures; nil means defaults.
	FailureLimit *FailureLimit
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives lockouts and misconfigured clients; default discard.
	Logger *slog.Logger
}

// Authenticator authenticates confidential clients at a token endpoint
// (RFC 6749 §2.3, RFC 7523 §2.2). It is safe for concurrent use.
type Authenticator struct {
	realm     string
	clients   store.Clients
	replay    store.Replay
	audiences []string
	keySetFor func(store.Client) (jose.KeySet, error)
	clientIP  func(*http.Request) string
	now       func() time.Time
	log       *slog.Logger
	limit     *failureLimiter
	challenge http.Header
	profile   jose.Profile
	// dummy is compared against when the client is unknown, so an unknown
	// client_id costs the same hash and compare as a wrong secret. It is
	// random, and a match against it is never accepted anyway.
	dummy [sha256.Size]byte
}

// ClientAuth is an authenticated client.
type ClientAuth struct {
	Client store.Client
	// Method is the authentication method the request used, one of
	// AuthMethod*. For a secret client it may differ from the registered
	// Client.AuthMethod (see the AuthMethod constants).
	Method string
	// UsedAuthorizationHeader is true for client_secret_basic.
	UsedAuthorizationHeader bool
}

// NewAuthenticator validates opts and returns an Authenticator.
func NewAuthenticator(opts AuthenticatorOptions) (*Authenticator, error) {
	switch {
	case opts.Realm == "":
		return nil, errors.New("oauth: authenticator needs a realm")
	case strings.Contains(opts.Realm, " ") || !cleanValue(opts.Realm):
		return nil, errors.New("oauth: authenticator realm must not contain spaces or control characters")
	case opts.Clients == nil:
		return nil, errors.New("oauth: authenticator needs a client store")
	case opts.Replay == nil:
		return nil, errors.New("oauth: authenticator needs a replay store for client assertions")
	case len(opts.Audiences) == 0:
		return nil, errors.New("oauth: authenticator needs the audiences of client assertions")
	}
	for _, aud := range opts.Audiences {
		if aud == "" {
			return nil, errors.New("oauth: empty client assertion audience")
		}
	}
	a := &Authenticator{
		realm:     opts.Realm,
		clients:   opts.Clients,
		replay:    opts.Replay,
		audiences: append([]string(nil), opts.Audiences...),
		keySetFor: opts.KeySetFor,
		clientIP:  opts.ClientIP,
		now:       opts.Now,
		log:       opts.Logger,
		challenge: http.Header{"Www-Authenticate": {BasicChallenge(opts.Realm)}},
		profile:   jose.ClientAssertionProfile(),
	}
	if a.keySetFor == nil {
		a.keySetFor = registeredKeySet
	}
	if a.clientIP == nil {
		a.clientIP = RemoteAddress
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	var fl FailureLimit
	if opts.FailureLimit != nil {
		fl = *opts.FailureLimit
	}
	a.limit = newFailureLimiter(fl)
	_, _ = rand.Read(a.dummy[:])
	return a, nil
}

// registeredKeySet is the default KeySetFor: the client's registered JWKS.
func registeredKeySet(c store.Client) (jose.KeySet, error) {
	if len(c.JWKS) == 0 {
		return nil, errors.New("client has no registered JWK Set")
	}
	set, err := jose.ParseJWKS(c.JWKS)
	if err != nil {
		return nil, err
	}
	// ParseJWKS accepts a set without usable keys (an issuer withdrawing
	// them); for a registration it is a mistake the operator should see.
	if len(set.Keys) == 0 {
		return nil, errors.New("client's registered JWK Set has no usable signature key")
	}
	return jose.NewStaticKeySet(set)
}

// RemoteAddress is the default ClientIP: the TCP peer. IPv6 addresses are
// reduced to their /64, the block one subscriber usually gets: keying on the
// full address would let anyone with a /64 rotate through 2^64 budgets.
func RemoteAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	return budgetKey(addr)
}

// budgetKey is the rate-limit key of an address (IPv6 by /64).
func budgetKey(addr netip.Addr) string {
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

// ForwardedAddress returns a ClientIP function for servers behind reverse
// proxies. X-Forwarded-For is believed only when the TCP peer is one of the
// trusted proxies, and then only back to the first hop that is not itself
// trusted: every address left of it could have been written by the client.
// With no trusted proxies it is RemoteAddress.
func ForwardedAddress(trusted []netip.Prefix) func(*http.Request) string {
	if len(trusted) == 0 {
		return RemoteAddress
	}
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	return func(r *http.Request) string {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		peer, err := netip.ParseAddr(host)
		if err != nil || !isTrusted(peer) {
			return RemoteAddress(r)
		}
		client := peer
		hops := r.Header.Values("X-Forwarded-For")
		for i := len(hops) - 1; i >= 0; i-- {
			parts := strings.Split(hops[i], ",")
			for j := len(parts) - 1; j >= 0; j-- {
				a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
				if err != nil {
					// A hop we cannot read ends the chain we can vouch for.
					return budgetKey(client)
				}
				client = a
				if !isTrusted(a) {
					return budgetKey(client)
				}
			}
		}
		return budgetKey(client)
	}
}

// presented is what a request offers as client credentials, before any of
// it is checked against the store.
type presented struct {
	method    string
	clientID  string
	secret    string
	assertion string
	header    bool
}

// Authenticate authenticates the client of a token request. Exactly one
// method must be used (RFC 6749 §2.3): two at once is invalid_request, none
// is invalid_client. The method must be of the class the client registered
// (either secret method for a secret client, private_key_jwt otherwise).
// A client_id in the form must name the authenticated client.
//
// Errors are *Error values (invalid_request, invalid_client, or 429 when
// locked out) except for store failures, which are returned as they are so
// WriteError answers 500 or 503. Every invalid_client counts toward the
// FailureLimit of the claimed client_id and the source IP.
func (a *Authenticator) Authenticate(ctx context.Context, r *http.Request, form Form) (ClientAuth, error) {
	now := a.now()
	ip := a.clientIP(r)
	keys := []limitKey{a.limit.key(keyIP, ip)}
	if wait, locked := a.limit.blocked(keys[0], now); locked {
		return ClientAuth{}, rateLimited(wait)
	}

	p, err := a.presented(r, form)
	if err == nil {
		keys = append(keys, a.limit.key(keyClient, p.clientID))
		if wait, locked := a.limit.blocked(keys[1], now); locked {
			return ClientAuth{}, rateLimited(wait)
		}
		var c store.Client
		if p.method == AuthMethodPrivateKeyJWT {
			c, err = a.verifyAssertion(ctx, p, now)
		} else {
			c, err = a.verifySecret(ctx, p)
		}
		if err == nil {
			return ClientAuth{Client: c, Method: p.method, UsedAuthorizationHeader: p.header}, nil
		}
	}

	e, ok := errors.AsType[*Error](err)
	if !ok || e.Code != CodeInvalidClient {
		return ClientAuth{}, err // invalid_request or a store failure: not a guess
	}
	// RFC 6749 §5.2: a client that tried the Authorization header gets a
	// challenge in the scheme it used.
	if len(r.Header.Values("Authorization")) > 0 {
		e.Header = a.challenge.Clone()
	}
	for _, k := range keys {
		if block, locked := a.limit.fail(k, now); locked {
			a.log.WarnContext(ctx, "oauth: client authentication locked out after repeated failures",
				"realm", a.realm, "key", k.kindName(), "client_id", Excerpt(p.clientID), "ip", ip, "block", block)
		}
	}
	return ClientAuth{}, err
}

// presented works out which single method the request uses and whom it
// claims to be, without touching the store.
func (a *Authenticator) presented(r *http.Request, form Form) (presented, error) {
	authz := r.Header.Values("Authorization")
	hasAssertion := form.Has("client_assertion") || form.Has("client_assertion_type")
	methods := 0
	for _, used := range []bool{len(authz) > 0, form.Has("client_secret"), hasAssertion} {
		if used {
			methods++
		}
	}
	switch {
	case len(authz) > 1:
		return presented{}, InvalidRequest("the request has more than one Authorization header")
	case methods > 1:
		return presented{}, InvalidRequest("the request uses more than one client authentication method")
	case methods == 0:
		return presented{}, InvalidClient(descAuthMissing)
	}

	formID := form.Get("client_id")
	switch {
	case len(authz) == 1:
		id, secret, err := parseBasic(authz[0])
		if err != nil {
			return presented{}, InvalidClient(err.Error())
		}
		if formID != "" && formID != id {
			return presented{}, InvalidClient("client_id does not match the Authorization header")
		}
		return presented{method: AuthMethodSecretBasic, clientID: id, secret: secret, header: true}, nil

	case form.Has("client_secret"):
		if formID == "" {
			return presented{}, InvalidRequest("client_id is required with client_secret")
		}
		return presented{method: AuthMethodSecretPost, clientID: formID, secret: form.Get("client_secret")}, nil

	default:
		typ, assertion := form.Get("client_assertion_type"), form.Get("client_assertion")
		switch {
		case typ == "":
			return presented{}, InvalidRequest("client_assertion_type is required with client_assertion")
		case assertion == "":
			return presented{}, InvalidRequest("client_assertion is required with client_assertion_type")
		case typ != ClientAssertionTypeJWTBearer:
			return presented{}, InvalidClient("client_assertion_type must be " + ClientAssertionTypeJWTBearer)
		}
		iss, err := jose.PeekIssuer(assertion, a.profile)
		if err != nil {
			if !jose.IsRejection(err) {
				return presented{}, fmt.Errorf("oauth: peek client assertion: %w", err)
			}
			return presented{}, InvalidClient(descAuthFailed).WithCause(fmt.Errorf("%w: %w", ErrBadAssertion, err))
		}
		if formID != "" && formID != iss {
			return presented{}, InvalidClient("client_id does not match the client assertion")
		}
		return presented{method: AuthMethodPrivateKeyJWT, clientID: iss, assertion: assertion}, nil
	}
}

// lookup returns the client, ErrUnknownClient, or a store error.
func (a *Authenticator) lookup(ctx context.Context, id string) (store.Client, error) {
	// No client_id holds control characters; such a value (an assertion's
	// iss may carry \u0000) must not reach the store as a query.
	if !cleanValue(id) {
		return store.Client{}, ErrUnknownClient
	}
	c, err := a.clients.GetClient(ctx, a.realm, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Client{}, ErrUnknownClient
	}
	if err != nil {
		return store.Client{}, fmt.Errorf("oauth: look up client: %w", err)
	}
	// Exact match, whatever the backend's collation: "Alice" must never
	// authenticate as "alice".
	if c.ID != id || c.Realm != a.realm {
		return store.Client{}, ErrUnknownClient
	}
	return c, nil
}

// verifySecret checks client_secret_basic and client_secret_post, for a
// client registered with either. The presented secret is hashed and
// compared in constant time whether or not the client exists, and every
// failure returns the same error.
func (a *Authenticator) verifySecret(ctx context.Context, p presented) (store.Client, error) {
	digest := sha256.Sum256([]byte(p.secret))
	c, err := a.lookup(ctx, p.clientID)
	if err != nil && !errors.Is(err, ErrUnknownClient) {
		return store.Client{}, err
	}
	known := err == nil
	want := a.dummy[:]
	if known && len(c.SecretDigest) == sha256.Size {
		want = c.SecretDigest
	}
	match := subtle.ConstantTimeCompare(digest[:], want) == 1

	var cause error
	switch {
	case !known:
		cause = ErrUnknownClient
	case c.Disabled:
		cause = ErrClientDisabled
	case !isSecretMethod(c.AuthMethod):
		cause = ErrAuthMethodMismatch
	case !match || len(c.SecretDigest) != sha256.Size:
		cause = ErrWrongSecret
	default:
		return c, nil
	}
	return store.Client{}, InvalidClient(descAuthFailed).WithCause(cause)
}

// verifyAssertion checks a private_key_jwt client assertion (RFC 7523 §3):
// signed by a key registered for the client, iss == sub == client_id, aud
// naming this server, short-lived, and its jti never seen before. The jti
// is recorded only after every other check passed, so a forged assertion
// cannot burn a legitimate jti.
func (a *Authenticator) verifyAssertion(ctx context.Context, p presented, now time.Time) (store.Client, error) {
	fail := func(cause error) (store.Client, error) {
		return store.Client{}, InvalidClient(descAuthFailed).WithCause(cause)
	}
	c, err := a.lookup(ctx, p.clientID)
	switch {
	case errors.Is(err, ErrUnknownClient):
		return fail(err)
	case err != nil:
		return store.Client{}, err
	case c.Disabled:
		return fail(ErrClientDisabled)
	case c.AuthMethod != AuthMethodPrivateKeyJWT:
		return fail(ErrAuthMethodMismatch)
	}
	keys, err := a.keySetFor(c)
	if err != nil {
		if errors.Is(err, store.ErrUnavailable) {
			return store.Client{}, err
		}
		a.log.WarnContext(ctx, "oauth: client has no usable verification keys",
			"realm", a.realm, "client_id", c.ID, "error", err)
		return fail(fmt.Errorf("%w: client keys: %w", ErrBadAssertion, err))
	}
	tok, err := jose.Verify(ctx, p.assertion, a.profile,
		jose.SingleIssuer{Issuer: c.ID, Keys: keys},
		jose.Expectations{Audiences: a.audiences, Issuer: c.ID, Now: now})
	if err != nil {
		if !jose.IsRejection(err) {
			return store.Client{}, fmt.Errorf("oauth: verify client assertion: %w", err)
		}
		return fail(fmt.Errorf("%w: %w", ErrBadAssertion, err))
	}
	if tok.Subject != c.ID {
		return fail(fmt.Errorf("%w: sub is not the client_id", ErrBadAssertion))
	}
	if tok.ID == "" { // the profile requires jti; never record an empty one
		return fail(fmt.Errorf("%w: no jti", ErrBadAssertion))
	}
	leeway := a.profile.Leeway
	if leeway == 0 {
		leeway = jose.DefaultLeeway
	}
	err = a.replay.RecordOnce(ctx, store.ReplayEntry{
		Namespace: store.NamespaceClientAssertion,
		Issuer:    replayIssuer(a.realm, c.ID),
		JTI:       tok.ID,
		ExpiresAt: tok.Expiry.Add(leeway),
	})
	if errors.Is(err, store.ErrReplay) {
		return fail(fmt.Errorf("%w: jti already used: %w", ErrBadAssertion, err))
	}
	if err != nil {
		return store.Client{}, fmt.Errorf("oauth: record client assertion jti: %w", err)
	}
	return c, nil
}

// isSecretMethod reports whether a registered method is one of the two
// secret methods, which are interchangeable (see the AuthMethod constants).
func isSecretMethod(m string) bool {
	return m == AuthMethodSecretBasic || m == AuthMethodSecretPost
}

// replayIssuer is the store.ReplayEntry issuer of a client assertion: the
// realm, one space, the client_id. The same client_id may exist in two
// realms that share a database (the IdP and an authorization server in one
// process), and their jtis must not collide. NewAuthenticator refuses a
// realm with a space, so the first space splits the key unambiguously
// (a client_id may contain spaces).
func replayIssuer(realm, clientID string) string { return realm + " " + clientID }

func rateLimited(wait time.Duration) *Error {
	return &Error{
		Code:        CodeInvalidClient,
		Description: descRateLimited,
		Status:      http.StatusTooManyRequests,
		Header:      http.Header{"Retry-After": {retryAfter(wait)}},
		Err:         ErrTooManyFailures,
	}
}

// Limits on Basic credentials; the header itself is bounded by the
// server's MaxHeaderBytes.
const (
	maxBasicEncoded = 4 << 10
	maxBasicPart    = defaultParamCap
)

// basicError is a malformed Authorization header. Its text is sent as the
// error description, so it never contains the input.
type basicError string

func (e basicError) Error() string { return string(e) }

// parseBasic decodes an HTTP Basic Authorization header value carrying
// OAuth client credentials. RFC 6749 §2.3.1 form-urlencodes the client_id
// and secret before they are joined with ':' and base64-encoded, so both
// are decoded again after the split (a secret may contain ':' encoded as
// %3A; the first raw ':' separates).
func parseBasic(header string) (id, secret string, err error) {
	scheme, cred, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", "", basicError("the Authorization header must use the Basic scheme")
	}
	cred = strings.TrimLeft(cred, " ")
	if cred == "" || len(cred) > maxBasicEncoded {
		return "", "", basicError("malformed Basic credentials")
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(cred)
	if err != nil {
		return "", "", basicError("malformed Basic credentials")
	}
	rawID, rawSecret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", basicError("malformed Basic credentials")
	}
	if id, err = formUnescape(rawID); err != nil {
		return "", "", err
	}
	if secret, err = formUnescape(rawSecret); err != nil {
		return "", "", err
	}
	if id == "" || secret == "" {
		return "", "", basicError("Basic credentials need a client_id and a secret")
	}
	return id, secret, nil
}

func formUnescape(s string) (string, error) {
	v, err := url.QueryUnescape(s)
	if err != nil || len(v) > maxBasicPart || !cleanValue(v) {
		return "", basicError("malformed Basic credentials")
	}
	return v, nil
}
