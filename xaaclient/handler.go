package xaaclient

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"golang.org/x/oauth2"
)

// Handler authorizes requests to one MCP endpoint. It implements the
// go-sdk's auth.OAuthHandler: set it as the OAuthHandler of an
// mcp.StreamableClientTransport. Handlers of one Client share its
// session, token cache and in-flight exchanges.
type Handler struct {
	c        *Client
	endpoint string

	mu      sync.Mutex
	ready   bool     // the endpoint's scope set is known; TokenSource mints as needed
	peeked  bool     // TokenSource looked for a cached token before the first challenge
	scopes  []string // the scope set this endpoint's tokens are requested with
	retries map[string]int
}

var _ auth.OAuthHandler = (*Handler)(nil)

// Handler returns the auth.OAuthHandler for the MCP server at endpoint.
func (c *Client) Handler(endpoint string) (*Handler, error) {
	if _, err := c.checkURL("MCP endpoint", endpoint); err != nil {
		return nil, err
	}
	if _, err := canonicalURL(endpoint); err != nil {
		return nil, fmt.Errorf("xaaclient: MCP endpoint: %v", err)
	}
	return &Handler{c: c, endpoint: endpoint, retries: map[string]int{}}, nil
}

// TokenSource implements auth.OAuthHandler. Before the server has
// challenged, the source offers a token only if one for the endpoint's
// resource is cached (a previous run's, found through the well-known
// metadata); otherwise the request goes without one and its 401 says where
// to get one. Either way a token the server refuses comes back through
// Authorize and is replaced, so a stale cache costs one round trip, not a
// failed request. Once the endpoint's scope set is known every request
// gets the cached token for it, minted as needed.
func (h *Handler) TokenSource(ctx context.Context) (oauth2.TokenSource, error) {
	return &tokenSource{h: h, ctx: ctx}, nil
}

type tokenSource struct {
	h   *Handler
	ctx context.Context
}

// Token implements oauth2.TokenSource. It returns nil and no error when
// there is no token to offer yet.
func (ts *tokenSource) Token() (*oauth2.Token, error) {
	h := ts.h
	h.mu.Lock()
	ready := h.ready
	h.mu.Unlock()
	if !ready {
		return h.peek(ts.ctx), nil
	}
	t, err := h.c.targetFor(ts.ctx, h.endpoint, "", false)
	if err != nil {
		return nil, err
	}
	tok, err := h.c.accessToken(ts.ctx, t, h.currentScopes())
	if err != nil {
		return nil, err
	}
	return tok.oauth2(), nil
}

// peek returns a cached token for the endpoint's resource without minting
// one, once per handler, adopting its scope set.
func (h *Handler) peek(ctx context.Context) *oauth2.Token {
	h.mu.Lock()
	if h.peeked {
		h.mu.Unlock()
		return nil
	}
	h.peeked = true
	h.mu.Unlock()
	t, err := h.c.targetFor(ctx, h.endpoint, "", false)
	if err != nil {
		// Discovery will run again from the server's challenge, which may
		// name metadata the well-known URLs do not have.
		h.c.log.DebugContext(ctx, "no metadata at the well-known location yet", "endpoint", h.endpoint, "err", err)
		return nil
	}
	tok := h.c.cachedFor(t.resource)
	if tok == nil {
		return nil
	}
	h.mu.Lock()
	if !h.ready {
		h.scopes, h.ready = tok.Scopes, true
	}
	h.mu.Unlock()
	return tok.oauth2()
}

func (h *Handler) currentScopes() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.scopes
}

// Authorize implements auth.OAuthHandler. It is called for a 401 or 403
// answer to req and reads the server's challenge:
//
//   - 401 without a token, or with a token the server refused: discovery
//     (from resource_metadata, else the well-known URL), then a token for
//     the challenged scope; a refused token is dropped from the cache first.
//   - 401 insufficient_user_authentication (RFC 9470): the StepUp callback,
//     a new login with the challenge's acr_values and max_age, a new token.
//   - 403 insufficient_scope: a new token for the union of the scopes held
//     and the scopes challenged, at most MaxScopeRetries times for one
//     challenge; a grant that still lacks them is a *ScopeError.
//
// A nil return lets the transport retry req once.
func (h *Handler) Authorize(ctx context.Context, req *http.Request, resp *http.Response) error {
	if resp.Body != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}
	cs, err := ParseChallenges(resp.Header.Values("WWW-Authenticate"))
	if err != nil {
		return fmt.Errorf("xaaclient: %s: %w", h.endpoint, err)
	}
	ch, hasBearer := bearerChallenge(cs)
	if !hasBearer && resp.StatusCode == http.StatusForbidden {
		return fmt.Errorf("xaaclient: %s answered 403 Forbidden without a Bearer challenge", h.endpoint)
	}
	presented := bearerToken(req)
	t, err := h.c.targetFor(ctx, h.endpoint, ch.Params["resource_metadata"], false)
	if err != nil {
		return err
	}
	switch errCode := ch.Params["error"]; {
	case resp.StatusCode == http.StatusForbidden && errCode == "insufficient_scope":
		return h.moreScope(ctx, t, ch, presented)
	case resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("xaaclient: %s answered 403 Forbidden (%s): %s", h.endpoint, clip(errCode), clip(ch.Params["error_description"]))
	case errCode == "insufficient_user_authentication":
		return h.stepUp(ctx, t, ch, presented)
	}
	if presented != "" {
		h.c.log.InfoContext(ctx, "the resource refused the access token; getting a new one", "resource", t.resource,
			"error", clip(ch.Params["error"]))
		if err := h.c.evict(presented); err != nil {
			return err
		}
	}
	h.mu.Lock()
	if !h.ready {
		h.scopes = scopesOf(ch.Params["scope"])
		if len(h.scopes) == 0 {
			h.scopes = t.scopes
		}
	}
	scopes := h.scopes
	h.mu.Unlock()
	if _, err := h.c.accessToken(ctx, t, scopes); err != nil {
		return err
	}
	h.setReady()
	return nil
}

func (h *Handler) setReady() {
	h.mu.Lock()
	h.ready = true
	h.mu.Unlock()
}

// moreScope handles 403 insufficient_scope (MCP 2025-11-25 §scope
// challenge, spec digest §2.8): re-authorize with held ∪ challenged.
func (h *Handler) moreScope(ctx context.Context, t *target, ch Challenge, presented string) error {
	required := scopesOf(ch.Params["scope"])
	if len(required) == 0 {
		return fmt.Errorf("xaaclient: %s answered insufficient_scope without naming a scope", h.endpoint)
	}
	var granted, held []string
	if e := h.c.findToken(presented); e != nil {
		granted, held = e.Granted, e.Scopes
	}
	key := strings.Join(required, " ")
	h.mu.Lock()
	if h.retries[key] >= h.c.opts.MaxScopeRetries {
		h.mu.Unlock()
		return &ScopeError{Resource: t.resource, Required: required, Granted: granted,
			Reason: fmt.Sprintf("gave up after %d re-authorizations", h.c.opts.MaxScopeRetries)}
	}
	h.retries[key]++
	h.scopes = unionScopes(h.scopes, required)
	scopes := h.scopes
	h.ready = true
	h.mu.Unlock()
	h.c.log.InfoContext(ctx, "the resource asks for more scope; re-authorizing with the union", "resource", t.resource,
		"required", key, "requesting", strings.Join(scopes, " "))
	// The refused token stays good for what it holds (other sessions may
	// use it); it goes only when the union is its own scope set, which
	// must then be minted anew.
	if tokenKey(t.resource, held) == tokenKey(t.resource, scopes) {
		if err := h.c.evict(presented); err != nil {
			return err
		}
	}
	tok, err := h.c.accessToken(ctx, t, scopes)
	if err != nil {
		return err
	}
	if !containsAll(tok.Granted, required) {
		return &ScopeError{Resource: t.resource, Required: required, Granted: tok.Granted,
			Reason: "the IdP or the authorization server did not grant it"}
	}
	return nil
}

// stepUp handles 401 insufficient_user_authentication from the resource.
func (h *Handler) stepUp(ctx context.Context, t *target, ch Challenge, presented string) error {
	maxAge, _, err := maxAgeOf(ch.Params["max_age"])
	if err != nil {
		return fmt.Errorf("xaaclient: %s: %w", h.endpoint, err)
	}
	sc := &StepUpChallenge{ACRValues: strings.Fields(ch.Params["acr_values"]), MaxAge: maxAge,
		Description: clip(ch.Params["error_description"]), Resource: t.resource}
	if len(sc.ACRValues) == 0 && sc.MaxAge < 0 {
		return fmt.Errorf("xaaclient: %s asked for step-up without acr_values or max_age", h.endpoint)
	}
	entry := h.c.findToken(presented)
	if err := h.c.evict(presented); err != nil {
		return err
	}
	st, err := h.c.current()
	if err != nil {
		return err
	}
	// Another request's step-up may already have produced a newer login
	// than the one behind the refused token; then a new token is enough.
	newer := entry != nil && st.Session != nil && entry.LoginID != st.Session.LoginID
	if !newer && !h.c.sessionSatisfies(st.Session, sc) {
		var old *session
		if st.Session != nil {
			old = st.Session
		}
		if _, err := h.c.stepUp(ctx, sc, old); err != nil {
			return err
		}
	}
	h.mu.Lock()
	scopes := h.scopes
	h.ready = true
	h.mu.Unlock()
	_, err = h.c.accessToken(ctx, t, scopes)
	return err
}

// bearerToken is the token req carried, if any.
func bearerToken(req *http.Request) string {
	if req == nil {
		return ""
	}
	scheme, tok, ok := strings.Cut(req.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}
