// Package gateway is OpenXAA's MCP gateway: a reverse proxy that protects
// MCP servers which know nothing about OAuth. Per route it verifies the
// RFC 9068 access token the route's authorization server issued for the
// route's canonical resource (mcpauth), enforces per-tool scopes and
// step-up, filters tools/list, records every tool-call decision in the
// audit trail, and forwards everything else unchanged to a streamable
// HTTP upstream or to a stdio server it launches per MCP session. The
// client's token never reaches an upstream; the route's own credential is
// sent instead. A request whose Origin header names a foreign origin is
// refused before anything else (DNS rebinding; MCP requires servers to
// validate Origin).
//
// Revocation is enforced from the authorization server's revocation list
// (revoked jtis and not-before fences), polled every few seconds; when
// polling fails for longer than the route allows, tool calls fail closed.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openxaa/xaa/mcpauth"
)

// Defaults of a Route.
const (
	DefaultPollInterval = 10 * time.Second
	DefaultMaxStaleness = 60 * time.Second
	// DefaultWriteTimeout bounds each write to a client on a proxied
	// answer (a stalled reader is cut off), while the whole answer (a
	// long tool call, an SSE stream) may take as long as it needs.
	DefaultWriteTimeout = 15 * time.Second
)

// ErrInvalidOptions wraps every configuration error New reports.
var ErrInvalidOptions = errors.New("gateway: invalid options")

// Credential is a header the gateway sends to an upstream in place of the
// client's token.
type Credential struct {
	Header string
	Value  string // the whole header value, prefix included
}

// Route is one protected MCP endpoint. Exactly one of UpstreamURL and
// Command is set.
type Route struct {
	// Path is the mount path of the MCP endpoint, such as "/mcp/files".
	Path string
	// Resource is the canonical URI clients use: the tokens' aud and the
	// protected-resource metadata's resource.
	Resource string
	// Issuer is the authorization server's issuer; its RFC 8414 metadata
	// is fetched at New.
	Issuer string
	// ClientID and ClientSecret are the gateway's client at Issuer, used
	// for the revocation list, the resource policy and introspection.
	ClientID, ClientSecret string
	// Introspection verifies tokens by RFC 7662 introspection instead of
	// locally with the authorization server's JWKS.
	Introspection bool
	// UpstreamURL is a streamable HTTP upstream.
	UpstreamURL string
	// Command launches a stdio upstream per MCP session, with exactly Env
	// as its environment.
	Command []string
	Env     []string
	// MaxChildren caps concurrent stdio sessions (DefaultMaxChildren when
	// 0); IdleTimeout ends an idle one (DefaultIdleTimeout when 0).
	MaxChildren int
	IdleTimeout time.Duration
	// Credential, when set, is sent to the upstream on every request.
	Credential *Credential
	// AllowedOrigins are browser origins (scheme://host[:port]) whose
	// pages may call the route, besides the resource's own origin. A
	// request with any other Origin header is refused with 403 before
	// anything else (MCP: servers must validate Origin, against DNS
	// rebinding); requests without Origin, as non-browser clients send
	// them, pass.
	AllowedOrigins []string
	// Tools overrides the tool policy. Nil fetches it from the
	// authorization server's resource-policy endpoint at New and at every
	// poll.
	Tools map[string]mcpauth.ToolRule
	// PollInterval and MaxStaleness govern the revocation list
	// (DefaultPollInterval and DefaultMaxStaleness when 0).
	PollInterval, MaxStaleness time.Duration
}

// Options configure a Gateway.
type Options struct {
	Routes []Route
	// Audit records every tool-call decision; required.
	Audit Auditor
	// HTTPClient calls the authorization servers (metadata, revocation
	// list, resource policy, introspection). Nil means a client with
	// timeouts that follows no redirects.
	HTTPClient *http.Client
	// UpstreamTransport carries requests to HTTP upstreams. Nil means a
	// pooled transport without a response-header timeout.
	UpstreamTransport http.RoundTripper
	// AllowLoopbackHTTP permits http:// authorization-server endpoints
	// and JWKS on loopback hosts (development and tests).
	AllowLoopbackHTTP bool
	// AllowedCIDRs are private ranges the JWKS fetch may connect to.
	AllowedCIDRs []netip.Prefix
	// WriteTimeout bounds each write of a proxied answer
	// (DefaultWriteTimeout when 0).
	WriteTimeout time.Duration
	// MaxBodyBytes caps a request body checked by mcpauth (its default
	// when 0).
	MaxBodyBytes int64
	Logger       *slog.Logger
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// Gateway serves the configured routes. Create it with New, mount it with
// Register, keep its lists fresh with Run, and stop it with Close.
type Gateway struct {
	routes []*route
	log    *slog.Logger
}

// route is one configured route, ready to serve.
type route struct {
	cfg          Route
	auth         *mcpauth.Middleware
	handler      http.Handler
	revocations  *Revocations // nil when the AS publishes no list (introspection only)
	client       *asClient
	policyURL    string // "" when Tools is configured
	stdio        *stdioUpstream
	log          *slog.Logger
	pollInterval time.Duration

	pollMu sync.Mutex                  // one poll cycle at a time
	tools  map[string]mcpauth.ToolRule // the policy in force; guarded by pollMu after New
}

// New validates opts, discovers each route's authorization server,
// obtains its tool policy and a first revocation list, and builds the
// handlers. It fails with a sentence naming the route when any of that is
// impossible, so a gateway never starts unable to enforce its policy.
func New(ctx context.Context, opts *Options) (*Gateway, error) {
	if opts == nil || len(opts.Routes) == 0 {
		return nil, fmt.Errorf("%w: no routes", ErrInvalidOptions)
	}
	if opts.Audit == nil {
		return nil, fmt.Errorf("%w: Audit is required (every tool call is audited)", ErrInvalidOptions)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = defaultASClient()
	}
	ut := opts.UpstreamTransport
	if ut == nil {
		ut = defaultUpstreamTransport()
	}
	wt := opts.WriteTimeout
	if wt <= 0 {
		wt = DefaultWriteTimeout
	}

	g := &Gateway{log: log}
	seen := map[string]bool{}
	for i, rc := range opts.Routes {
		if seen[rc.Path] {
			return nil, fmt.Errorf("%w: routes[%d]: path %q is mounted twice", ErrInvalidOptions, i, rc.Path)
		}
		seen[rc.Path] = true
		rt, err := newRoute(ctx, rc, opts, hc, ut, wt, now, log.With("route", rc.Path))
		if err != nil {
			_ = g.Close()
			return nil, fmt.Errorf("gateway route %s: %w", rc.Path, err)
		}
		g.routes = append(g.routes, rt)
	}
	return g, nil
}

func newRoute(ctx context.Context, rc Route, opts *Options, hc *http.Client, ut http.RoundTripper, wt time.Duration, now func() time.Time, log *slog.Logger) (*route, error) {
	if err := checkRoute(&rc); err != nil {
		return nil, err
	}
	rt := &route{cfg: rc, log: log, client: &asClient{http: hc, clientID: rc.ClientID, secret: rc.ClientSecret}}
	rt.pollInterval = rc.PollInterval
	if rt.pollInterval <= 0 {
		rt.pollInterval = DefaultPollInterval
	}
	staleness := rc.MaxStaleness
	if staleness <= 0 {
		staleness = DefaultMaxStaleness
	}
	if staleness <= rt.pollInterval {
		return nil, fmt.Errorf("%w: MaxStaleness (%s) must exceed PollInterval (%s)", ErrInvalidOptions, staleness, rt.pollInterval)
	}

	md, err := discover(ctx, rt.client, rc.Issuer, opts.AllowLoopbackHTTP)
	if err != nil {
		return nil, err
	}

	// Revocation: required with local JWT verification (it is the only
	// way a revoked token stops working before it expires); used when
	// offered with introspection.
	switch {
	case md.RevocationList != "":
		rt.revocations = newRevocations(rt.client, md.RevocationList, staleness, now)
		if err := rt.revocations.Poll(ctx); err != nil {
			return nil, fmt.Errorf("first poll of %s's revocation list: %w", rc.Issuer, err)
		}
	case !rc.Introspection:
		return nil, fmt.Errorf("the authorization server %s publishes no openxaa_revocation_list_endpoint, so revoked tokens would stay valid until they expire; use verify: introspection, or an authorization server that publishes the list", rc.Issuer)
	}

	// Tools: the configured override, else the authorization server's
	// resource policy.
	switch {
	case rc.Tools != nil:
		rt.tools = maps.Clone(rc.Tools)
	case md.ResourcePolicy != "":
		rt.policyURL = md.ResourcePolicy
		if rt.tools, err = fetchTools(ctx, rt.client, md.ResourcePolicy, rc.Resource); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("no tool policy: the route sets no tools and the authorization server %s publishes no openxaa_resource_policy_endpoint; list the tools in the route's config", rc.Issuer)
	}
	if len(rt.tools) == 0 {
		log.Warn("the tool policy lists no tools: every tool call will be refused", "resource", rc.Resource)
	}

	var revocations mcpauth.Revocations
	if rt.revocations != nil {
		revocations = rt.revocations
	}
	var verifier mcpauth.Verifier
	if rc.Introspection {
		if md.IntrospectionEndpoint == "" {
			return nil, fmt.Errorf("verify is introspection, but the authorization server %s publishes no introspection_endpoint", rc.Issuer)
		}
		verifier, err = mcpauth.NewIntrospectionVerifier(&mcpauth.IntrospectionOptions{
			Endpoint:          md.IntrospectionEndpoint,
			ClientID:          rc.ClientID,
			ClientSecret:      rc.ClientSecret,
			Issuer:            rc.Issuer,
			Resource:          rc.Resource,
			HTTPClient:        hc,
			Revocations:       revocations,
			Now:               opts.Now,
			AllowLoopbackHTTP: opts.AllowLoopbackHTTP,
		})
	} else {
		if md.JWKSURI == "" {
			return nil, fmt.Errorf("the authorization server %s publishes no jwks_uri", rc.Issuer)
		}
		verifier, err = mcpauth.NewJWTVerifier(&mcpauth.JWTOptions{
			Issuer:            rc.Issuer,
			Resource:          rc.Resource,
			JWKSURL:           md.JWKSURI,
			AllowLoopbackHTTP: opts.AllowLoopbackHTTP,
			AllowedCIDRs:      opts.AllowedCIDRs,
			Revocations:       revocations,
			Now:               opts.Now,
			Logger:            log,
		})
	}
	if err != nil {
		return nil, err
	}

	// With introspection every token is checked live at the authorization
	// server (revocations and fences included), so an old list is no
	// reason to refuse; with local JWT checks it is the only one.
	staleCheck := rt.revocations
	if rc.Introspection {
		staleCheck = nil
	}
	rec := newDecisionRecorder(rc.Path, rc.Resource, opts.Audit, staleCheck, log, now)
	rt.auth, err = mcpauth.New(&mcpauth.Options{
		Resource:             rc.Resource,
		AuthorizationServers: []string{rc.Issuer},
		Verifier:             verifier,
		Tools:                rt.tools,
		MaxBodyBytes:         opts.MaxBodyBytes,
		OnDecision:           rec.record,
		Logger:               log,
		Now:                  opts.Now,
	})
	if err != nil {
		return nil, err
	}

	var upstream http.Handler
	if rc.UpstreamURL != "" {
		target, _ := url.Parse(rc.UpstreamURL) // checked by checkRoute
		upstream = newHTTPUpstream(rc.Path, target, ut, rc.Credential, log)
	} else {
		rt.stdio = newStdioUpstream(rc.Path, rc.Command, rc.Env, rc.MaxChildren, rc.IdleTimeout, log)
		upstream = rt.stdio
	}
	guarded, err := originGuard(rc.Resource, rc.AllowedOrigins, log, rt.auth.Wrap(upstream))
	if err != nil {
		return nil, err
	}
	rt.handler = withRequestNote(rt.pollInterval, wt, guarded)
	return rt, nil
}

func checkRoute(rc *Route) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, args...)...)
	}
	switch {
	case rc.Path == "" || rc.Path[0] != '/' || rc.Path == "/":
		return bad("Path %q must be an absolute path other than \"/\"", rc.Path)
	case rc.Resource == "":
		return bad("Resource is required")
	case rc.Issuer == "":
		return bad("Issuer is required")
	case rc.ClientID == "" || rc.ClientSecret == "":
		return bad("ClientID and ClientSecret are required")
	case (rc.UpstreamURL == "") == (len(rc.Command) == 0):
		return bad("set exactly one of UpstreamURL and Command")
	case len(rc.Command) > 0 && rc.Command[0] == "":
		return bad("Command[0] is empty")
	case rc.Credential != nil && (rc.Credential.Header == "" || rc.Credential.Value == ""):
		return bad("Credential needs a Header and a Value")
	}
	if rc.UpstreamURL != "" {
		u, err := url.Parse(rc.UpstreamURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("UpstreamURL %q is not an absolute http(s) URL", rc.UpstreamURL)
		}
	}
	for name, t := range rc.Tools {
		if _, err := toolRule(name, t.Scopes, t.ACRValues, t.MaxAge); err != nil {
			return bad("Tools: %v", err)
		}
	}
	if _, ok := canonicalOrigin(rc.Resource, true); !ok {
		return bad("Resource %q is not an absolute http(s) URI", rc.Resource)
	}
	for _, o := range rc.AllowedOrigins {
		if _, ok := canonicalOrigin(o, false); !ok {
			return bad("AllowedOrigins: %q is not an origin (scheme://host[:port], no path)", o)
		}
	}
	return nil
}

// Register mounts every route on mux: the MCP endpoint at its path and the
// RFC 9728 protected-resource metadata at its path-inserted location, both
// with and without the resource's host name (a pattern with a host wins
// over one without, so another role mounted on the same host cannot
// shadow the route). It reports a conflict with a pattern already on mux
// as an error instead of panicking.
func (g *Gateway) Register(mux *http.ServeMux) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("gateway: cannot mount the routes: %v", v)
		}
	}()
	// Resources on different hosts may share a path, and so a metadata
	// path: those are mounted with their host only.
	metadataPaths := map[string]int{}
	for _, rt := range g.routes {
		metadataPaths[rt.auth.MetadataPath()]++
	}
	for _, rt := range g.routes {
		u, perr := url.Parse(rt.cfg.Resource)
		if perr != nil {
			return perr
		}
		for _, host := range []string{"", u.Hostname()} {
			mux.Handle(host+rt.cfg.Path, rt.handler)
			if host != "" || metadataPaths[rt.auth.MetadataPath()] == 1 {
				mux.Handle("GET "+host+rt.auth.MetadataPath(), rt.auth.MetadataHandler())
			}
		}
	}
	return nil
}

// Handler returns the handler of the route mounted at path (nil if none),
// for tests and embedding.
func (g *Gateway) Handler(path string) http.Handler {
	for _, rt := range g.routes {
		if rt.cfg.Path == path {
			return rt.handler
		}
	}
	return nil
}

// Revocations returns the revocation list of the route mounted at path
// (nil if none or if the route does not poll).
func (g *Gateway) Revocations(path string) *Revocations {
	for _, rt := range g.routes {
		if rt.cfg.Path == path {
			return rt.revocations
		}
	}
	return nil
}

// Run polls each route's revocation list (and its tool policy, when it
// comes from the authorization server) every poll interval until ctx ends.
// Failures are logged and retried at the next tick; a route whose list
// grows too old refuses tool calls by itself.
func (g *Gateway) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, rt := range g.routes {
		if rt.revocations == nil && rt.policyURL == "" {
			continue
		}
		wg.Go(func() { rt.run(ctx) })
	}
	wg.Wait()
	return nil
}

func (rt *route) run(ctx context.Context) {
	t := time.NewTicker(rt.pollInterval)
	defer t.Stop()
	wasStale := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rt.poll(ctx)
		if rt.revocations != nil {
			switch stale := rt.revocations.Stale(); {
			case stale && !wasStale:
				rt.log.Error("revocation list is stale: tool calls fail closed until a poll succeeds",
					"issuer", rt.cfg.Issuer, "last_success", formatTime(rt.revocations.LastSuccess()))
				wasStale = true
			case !stale && wasStale:
				rt.log.Info("revocation list is fresh again", "issuer", rt.cfg.Issuer)
				wasStale = false
			}
		}
	}
}

// poll runs one cycle: the revocation list, then the tool policy.
func (rt *route) poll(ctx context.Context) {
	rt.pollMu.Lock()
	defer rt.pollMu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, max(rt.pollInterval, 10*time.Second))
	defer cancel()
	if rt.revocations != nil {
		if err := rt.revocations.Poll(pctx); err != nil && ctx.Err() == nil {
			rt.log.Warn("revocation poll failed", "issuer", rt.cfg.Issuer, "err", err)
		}
	}
	if rt.policyURL != "" {
		tools, err := fetchTools(pctx, rt.client, rt.policyURL, rt.cfg.Resource)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				rt.log.Warn("tool policy refresh failed; keeping the current policy", "issuer", rt.cfg.Issuer, "err", err)
			}
		case !sameTools(tools, rt.tools):
			if err := rt.auth.UpdateTools(tools); err != nil {
				rt.log.Warn("the authorization server's new tool policy is unusable; keeping the current policy", "err", err)
				break
			}
			rt.tools = tools
			rt.log.Info("tool policy updated from the authorization server", "tools", len(tools))
		}
	}
}

// Poll runs one poll cycle of every route now (tests and operators'
// "refresh" hooks); Run does the same on its timer.
func (g *Gateway) Poll(ctx context.Context) {
	for _, rt := range g.routes {
		rt.poll(ctx)
	}
}

// Close ends every stdio session and waits for their processes to exit.
func (g *Gateway) Close() error {
	for _, rt := range g.routes {
		if rt.stdio != nil {
			_ = rt.stdio.Close()
		}
	}
	return nil
}

// requestNote carries what the decision recorder learned back to the
// response writer: a refusal for staleness gets Retry-After.
type requestNote struct {
	stale             atomic.Bool // refused because the revocation list is stale
	anonymousRecorded atomic.Bool // a refusal without a usable token is recorded
}

type noteKey struct{}

// withRequestNote wraps a route's handler: it lifts the server's write
// deadline for the proxied answer in favour of a per-write one, and adds
// Retry-After to a 503 caused by a stale revocation list.
func withRequestNote(retryAfter, writeTimeout time.Duration, next http.Handler) http.Handler {
	ra := strconv.Itoa(int(max(retryAfter/time.Second, 1)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := &requestNote{}
		ctx := context.WithValue(r.Context(), noteKey{}, n)
		next.ServeHTTP(&noteWriter{ResponseWriter: w, note: n, retryAfter: ra, timeout: writeTimeout}, r.WithContext(ctx))
	})
}

// noteWriter extends the write deadline before each write, so that a long
// SSE stream or a slow tool call is not cut by the server's WriteTimeout,
// while a client that stops reading still is.
type noteWriter struct {
	http.ResponseWriter
	note       *requestNote
	retryAfter string
	timeout    time.Duration
	wrote      bool
}

func (w *noteWriter) extend() {
	_ = http.NewResponseController(w.ResponseWriter).SetWriteDeadline(time.Now().Add(w.timeout))
}

func (w *noteWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		if code == http.StatusServiceUnavailable && w.note.stale.Load() {
			// The next poll is the earliest a retry can succeed.
			w.Header().Set("Retry-After", w.retryAfter)
		}
		w.extend()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *noteWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	} else {
		w.extend()
	}
	return w.ResponseWriter.Write(p)
}

func (w *noteWriter) Flush() {
	w.extend()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *noteWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
