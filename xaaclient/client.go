package xaaclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// Timing rules.
const (
	// earlyRenewal: a cached access token is not handed out in its last
	// 30 seconds, so it does not expire on the way to the server.
	earlyRenewal = 30 * time.Second
	// idTokenMargin: an ID token this close to exp is renewed before it is
	// used as a subject token.
	idTokenMargin = 30 * time.Second
	// defaultTokenLifetime is assumed for an access token whose response
	// carries no expires_in.
	defaultTokenLifetime = time.Minute
)

// Client is the client side of Cross App Access for one requesting app at
// one IdP. It is safe for concurrent use; every MCP connection of the
// application should share one Client, so they share its session, its
// token cache and its in-flight exchanges.
type Client struct {
	opts    Options
	log     *slog.Logger
	file    *tokenFile // nil with MemoryOnly
	memMu   sync.Mutex // serialises memory-only updates
	flights flightGroup

	mu      sync.Mutex
	state   *cacheState // immutable snapshot; replaced, never modified
	idpMeta *serverMetadata
	keys    *remoteKeys
	targets map[string]*target
	denials map[string]*DeniedError // login id + token key
}

// New validates opts and returns a Client. Nothing is fetched or read
// until the first use.
func New(opts *Options) (*Client, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Client{
		opts:    o,
		log:     o.Logger,
		targets: map[string]*target{},
		denials: map[string]*DeniedError{},
	}
	if o.MemoryOnly {
		c.state = &cacheState{Version: cacheVersion, Issuer: o.Issuer, ClientID: o.Client.ClientID}
	} else {
		c.file = &tokenFile{path: o.CacheFile, issuer: o.Issuer, clientID: o.Client.ClientID}
	}
	return c, nil
}

// Identity describes the signed-in user.
type Identity struct {
	Issuer, Subject, ACR string
	AuthTime             time.Time // zero when the IdP sent no auth_time
	IDTokenExpiry        time.Time
	// Renewable is true when an IdP refresh token is held.
	Renewable bool
}

// Identity returns the current IdP session, or ErrLoginRequired.
func (c *Client) Identity() (*Identity, error) {
	st, err := c.current()
	if err != nil {
		return nil, err
	}
	s := st.Session
	if s == nil || s.IDToken == "" {
		return nil, ErrLoginRequired
	}
	return &Identity{Issuer: c.opts.Issuer, Subject: s.Subject, ACR: s.ACR, AuthTime: s.AuthTime,
		IDTokenExpiry: s.IDTokenExpiry, Renewable: s.RefreshToken != ""}, nil
}

// Token returns an access token for the MCP server at endpoint (its
// streamable HTTP URL), from the cache or by discovery, token exchange at
// the IdP and the jwt-bearer grant at the server's authorization server.
// Without scopes the server's challenge decides (a probe without a token
// reads it), else its metadata's scopes_supported.
func (c *Client) Token(ctx context.Context, endpoint string, scopes ...string) (*oauth2.Token, error) {
	t, err := c.targetFor(ctx, endpoint, "", true)
	if err != nil {
		return nil, err
	}
	if len(scopes) == 0 {
		scopes = t.initialScopes()
	}
	tok, err := c.accessToken(ctx, t, scopes)
	if err != nil {
		return nil, err
	}
	return tok.oauth2(), nil
}

func (t *storedToken) oauth2() *oauth2.Token {
	return (&oauth2.Token{AccessToken: t.AccessToken, TokenType: "Bearer", Expiry: t.ExpiresAt}).
		WithExtra(map[string]any{"scope": strings.Join(t.Granted, " "), "resource": t.Resource})
}

// targetFor returns the discovery result for endpoint, discovering it when
// unknown or when a challenge points at other metadata than last time.
func (c *Client) targetFor(ctx context.Context, endpoint, metadataURL string, probe bool) (*target, error) {
	c.mu.Lock()
	t := c.targets[endpoint]
	c.mu.Unlock()
	if t != nil && (metadataURL == "" || metadataURL == t.prmURL) {
		return t, nil
	}
	var challengeScopes []string
	if metadataURL == "" && probe {
		if ch, ok := c.probe(ctx, endpoint); ok {
			metadataURL = ch.Params["resource_metadata"]
			challengeScopes = scopesOf(ch.Params["scope"])
		}
	}
	v, err := c.flights.do(ctx, "discover\x00"+endpoint+"\x00"+metadataURL, func(ctx context.Context) (any, error) {
		t, err := c.discoverNow(ctx, endpoint, metadataURL)
		if err != nil {
			return nil, err
		}
		t.challengeScopes = challengeScopes
		c.mu.Lock()
		c.targets[endpoint] = t
		c.mu.Unlock()
		return t, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*target), nil
}

// initialScopes is the spec digest §2.2 choice: the challenge's scope,
// else the metadata's scopes_supported, else none.
func (t *target) initialScopes() []string {
	if len(t.challengeScopes) > 0 {
		return t.challengeScopes
	}
	return t.scopes
}

// current returns the cache state, re-read when another process changed
// the file.
func (c *Client) current() (*cacheState, error) {
	c.mu.Lock()
	st := c.state
	c.mu.Unlock()
	if c.file == nil || (st != nil && !c.file.stale()) {
		return st, nil
	}
	st, err := c.file.read()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.state = st
	c.mu.Unlock()
	return st, nil
}

// updateState applies fn to a fresh copy of the state and publishes the
// result; with a cache file, under its lock and re-read from it.
func (c *Client) updateState(fn func(*cacheState) error) error {
	apply := func(st *cacheState) error {
		if err := fn(st); err != nil {
			return err
		}
		st.prune(c.opts.Now())
		return nil
	}
	var st *cacheState
	if c.file == nil {
		c.memMu.Lock()
		defer c.memMu.Unlock()
		c.mu.Lock()
		st = c.state.clone()
		c.mu.Unlock()
		if err := apply(st); err != nil {
			return err
		}
	} else {
		var err error
		if st, err = c.file.update(apply); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.state = st
	c.mu.Unlock()
	return nil
}

// saveSession stores a new login. Access tokens of another user go.
func (c *Client) saveSession(s *session) error {
	return c.updateState(func(st *cacheState) error {
		st.Session = s
		return nil
	})
}

func (c *Client) idTokenFresh(s *session) bool {
	return s != nil && s.IDToken != "" && c.opts.Now().Before(s.IDTokenExpiry.Add(-idTokenMargin))
}

// subject returns a session whose ID token can be exchanged now: the
// cached one, else one renewed with the refresh token, else a new login.
// rejected, if set, is an ID token the IdP refused although it looked
// fresh; it is renewed whatever its expiry says.
func (c *Client) subject(ctx context.Context, rejected string) (*session, error) {
	if c.opts.IDToken != nil {
		return c.externalSession(ctx, rejected)
	}
	st, err := c.current()
	if err != nil {
		return nil, err
	}
	if s := st.Session; c.idTokenFresh(s) && s.IDToken != rejected {
		return s, nil
	}
	// Callers that found the same token refused share one renewal.
	v, err := c.flights.do(ctx, "session\x00"+rejected, func(ctx context.Context) (any, error) {
		st, err := c.current()
		if err != nil {
			return nil, err
		}
		s := st.Session
		if c.idTokenFresh(s) && s.IDToken != rejected {
			return s, nil
		}
		if s != nil && s.RefreshToken != "" {
			ns, err := c.refresh(ctx, rejected)
			if err == nil {
				return ns, nil
			}
			if !errors.Is(err, ErrLoginRequired) {
				return nil, err
			}
			c.log.InfoContext(ctx, "the IdP session cannot be renewed; signing in again", "reason", err.Error())
		}
		if c.opts.NonInteractive {
			return nil, fmt.Errorf("%w: no usable session at %s (run `xaa login`)", ErrLoginRequired, c.opts.Issuer)
		}
		return c.login(ctx, &LoginOptions{})
	})
	if err != nil {
		return nil, err
	}
	return v.(*session), nil
}

// accessToken returns a cached token for (resource, scopes) or mints one.
// Concurrent callers for the same key share one mint: one exchange, one
// redemption.
func (c *Client) accessToken(ctx context.Context, t *target, scopes []string) (*storedToken, error) {
	scopes = normScopes(scopes)
	if tok, err := c.cached(t.resource, scopes); tok != nil || err != nil {
		return tok, err
	}
	if d := c.denied(t.resource, scopes); d != nil {
		return nil, d
	}
	key := tokenKey(t.resource, scopes)
	v, err := c.flights.do(ctx, "token\x00"+key, func(ctx context.Context) (any, error) {
		if tok, err := c.cached(t.resource, scopes); tok != nil || err != nil {
			return tok, err
		}
		return c.mint(ctx, t, scopes)
	})
	if err != nil {
		return nil, err
	}
	return v.(*storedToken), nil
}

// cached returns a usable cached token for the key, or nil.
func (c *Client) cached(resource string, scopes []string) (*storedToken, error) {
	st, err := c.current()
	if err != nil {
		return nil, err
	}
	if st.Session == nil {
		return nil, nil
	}
	key, now := tokenKey(resource, scopes), c.opts.Now()
	for i := range st.Tokens {
		t := &st.Tokens[i]
		if t.key() == key && t.Subject == st.Session.Subject && now.Before(t.ExpiresAt.Add(-earlyRenewal)) {
			return t, nil
		}
	}
	return nil, nil
}

// cachedFor returns the usable cached token for resource (any scope set)
// that lives longest, or nil.
func (c *Client) cachedFor(resource string) *storedToken {
	st, err := c.current()
	if err != nil || st.Session == nil {
		return nil
	}
	now := c.opts.Now()
	var best *storedToken
	for i := range st.Tokens {
		t := &st.Tokens[i]
		if t.Resource == resource && t.Subject == st.Session.Subject && now.Before(t.ExpiresAt.Add(-earlyRenewal)) &&
			(best == nil || t.ExpiresAt.After(best.ExpiresAt)) {
			best = t
		}
	}
	return best
}

// findToken returns the cache entry holding the access token raw.
func (c *Client) findToken(raw string) *storedToken {
	if raw == "" {
		return nil
	}
	st, err := c.current()
	if err != nil {
		return nil
	}
	for i := range st.Tokens {
		if st.Tokens[i].AccessToken == raw {
			t := st.Tokens[i]
			return &t
		}
	}
	return nil
}

// evict drops the access token raw from the cache (a server refused it),
// so that the next caller mints a new one. Evicting a token that is no
// longer cached does nothing: concurrent refusals of one token cause one
// new mint, not many.
func (c *Client) evict(raw string) error {
	if raw == "" || c.findToken(raw) == nil {
		return nil
	}
	return c.updateState(func(st *cacheState) error {
		for i := range st.Tokens {
			if st.Tokens[i].AccessToken == raw {
				st.Tokens = append(st.Tokens[:i], st.Tokens[i+1:]...)
				break
			}
		}
		return nil
	})
}

// denied returns the remembered denial for the key in the current login.
// A denial is final for the login it happened in: the client does not ask
// again until the user signs in anew (after an administrator changed
// something, say).
func (c *Client) denied(resource string, scopes []string) *DeniedError {
	st, err := c.current()
	if err != nil || st.Session == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.denials[st.Session.LoginID+"\x00"+tokenKey(resource, scopes)]
}

func (c *Client) rememberDenial(s *session, resource string, scopes []string, d *DeniedError) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.denials[s.LoginID+"\x00"+tokenKey(resource, scopes)] = d
}

// mint runs the exchange and the redemption for (t, scopes). It renews the
// subject token once if the IdP refuses it, and steps up once if the IdP
// asks for it; a denial is final.
func (c *Client) mint(ctx context.Context, t *target, scopes []string) (*storedToken, error) {
	sess, err := c.subject(ctx, "")
	if err != nil {
		return nil, err
	}
	var jag *idJAG
	renewed, steppedUp := false, false
	for jag == nil {
		jag, err = c.exchange(ctx, sess, t, scopes)
		if err == nil {
			break
		}
		te, ok := errors.AsType[*tokenError](err)
		if !ok {
			return nil, err
		}
		switch code := te.body.Error; {
		case isDenial(code):
			d := &DeniedError{Code: code, Description: clip(te.body.Description), Resource: t.resource}
			c.rememberDenial(sess, t.resource, scopes, d)
			c.log.WarnContext(ctx, "the IdP denied the token exchange; not retrying", "resource", t.resource,
				"scope", strings.Join(scopes, " "), "error", code)
			return nil, d
		case code == "insufficient_user_authentication":
			ch, err := stepUpFromIdP(te, t.resource)
			if err != nil {
				return nil, err
			}
			if steppedUp {
				return nil, ch.asError("the IdP still asks for step-up after a new login")
			}
			steppedUp = true
			if sess, err = c.stepUp(ctx, ch, sess); err != nil {
				return nil, err
			}
		case (code == "invalid_grant" || code == "invalid_request") && !renewed:
			// The profile's answer to a bad subject token (spec digest
			// §6 item 2): get a new one, once.
			renewed = true
			c.log.InfoContext(ctx, "the IdP refused the subject token; renewing it", "error", code)
			if sess, err = c.subject(ctx, sess.IDToken); err != nil {
				return nil, err
			}
		default:
			return nil, te.oauth()
		}
	}
	tok, err := c.redeem(ctx, t, jag, scopes, sess)
	if err != nil {
		return nil, err
	}
	if err := c.updateState(func(st *cacheState) error {
		if st.Session == nil || st.Session.Subject != tok.Subject {
			return nil // signed out or switched user meanwhile: do not cache
		}
		key := tok.key()
		for i := range st.Tokens {
			if st.Tokens[i].key() == key {
				st.Tokens = append(st.Tokens[:i], st.Tokens[i+1:]...)
				break
			}
		}
		st.Tokens = append(st.Tokens, *tok)
		return nil
	}); err != nil {
		return nil, err
	}
	return tok, nil
}

// stepUp asks the application (Options.StepUp) and then sends the user to
// the IdP with the challenge's acr_values and max_age and prompt=login.
// Concurrent step-ups for one challenge share one login; a caller whose
// session was already replaced by a newer login uses that one.
func (c *Client) stepUp(ctx context.Context, ch *StepUpChallenge, old *session) (*session, error) {
	if st, err := c.current(); err == nil && st.Session != nil && old != nil && st.Session.LoginID != old.LoginID && c.idTokenFresh(st.Session) {
		return st.Session, nil
	}
	if c.opts.IDToken != nil {
		return nil, ch.asError("the application supplies the ID token (Options.IDToken); sign the user in again there")
	}
	if c.opts.StepUp == nil {
		return nil, ch.asError("")
	}
	if c.opts.NonInteractive {
		return nil, ch.asError("interactive login is disabled")
	}
	key := fmt.Sprintf("stepup\x00%s\x00%d", strings.Join(ch.ACRValues, " "), ch.MaxAge)
	v, err := c.flights.do(ctx, key, func(ctx context.Context) (any, error) {
		if err := c.opts.StepUp(ctx, ch); err != nil {
			return nil, fmt.Errorf("%w: declined: %w", ErrStepUpRequired, err)
		}
		lo := &LoginOptions{ACRValues: ch.ACRValues, ForceLogin: true}
		if ch.MaxAge > 0 {
			lo.MaxAge = ch.MaxAge
		}
		return c.login(ctx, lo)
	})
	if err != nil {
		return nil, err
	}
	return v.(*session), nil
}

// sessionSatisfies reports whether s already meets a step-up challenge
// (by the client's clock), in which case a new token is enough.
func (c *Client) sessionSatisfies(s *session, ch *StepUpChallenge) bool {
	if s == nil {
		return false
	}
	if ch.MaxAge >= 0 && (s.AuthTime.IsZero() || c.opts.Now().Sub(s.AuthTime) > ch.MaxAge) {
		return false
	}
	if len(ch.ACRValues) > 0 {
		for _, a := range ch.ACRValues {
			if a == s.ACR {
				return true
			}
		}
		return false
	}
	return ch.MaxAge >= 0
}

// isDenial lists the IdP answers that are policy decisions: final, never
// retried, never a reason to try another way in (decisions.md). Okta
// answers unauthorized_client for a scope the connection does not allow.
func isDenial(code string) bool {
	switch code {
	case "access_denied", "invalid_target", "invalid_scope", "unauthorized_client":
		return true
	}
	return false
}
