package mcpauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
)

// Decision is the middleware's verdict on one tools/call (and on requests
// refused for their session). OnDecision receives every one.
type Decision struct {
	Time                                            time.Time
	Method, Tool, JTI, Subject, ClientID, SessionID string
	Allowed                                         bool
	// Rule is one of the Rule constants: "tool.allowed", "tool.scope",
	// "tool.step_up", "tool.unknown", "session.subject_mismatch",
	// "session.unknown", "token.invalid", "token.missing".
	Rule string
	// Reason is a human sentence.
	Reason        string
	MissingScopes []string
}

// RuleSessionUnknown: the request named a session id that no response of
// this middleware bound (never issued, expired, or lost in a restart). The
// request is refused like a mismatch. (Addition to the contract.)
const RuleSessionUnknown = "session.unknown"

// Options configure the middleware.
type Options struct {
	// Resource is the canonical URI of the protected MCP endpoint, e.g.
	// https://gw.example.com/mcp/files. Required.
	Resource string
	// AuthorizationServers are the AS issuers listed in the protected
	// resource metadata. At least one is required.
	AuthorizationServers []string
	// ResourceName is the human-readable resource_name of the metadata.
	ResourceName string
	// ScopesSupported is scopes_supported in the metadata; nil means the
	// union of all tool scopes.
	ScopesSupported []string
	// ChallengeScopes is the scope of the 401 sent when no token is
	// presented; nil means the union of the scopes of the tools that need
	// no step-up.
	ChallengeScopes []string
	// Verifier checks bearer tokens. Required.
	Verifier Verifier
	// Tools maps exact tool names to their rules. Unlisted tools are
	// denied and hidden from tools/list.
	Tools map[string]ToolRule
	// MaxBodyBytes bounds a POST body (default 1 MiB). A larger one is
	// answered 413 and nothing is forwarded.
	MaxBodyBytes int64
	// OnDecision receives every tools/call decision, allowed or denied,
	// before the answer is sent. An error refuses the request with 503:
	// no call runs unrecorded.
	OnDecision func(ctx context.Context, d Decision) error
	// Logger receives denials and failures (never a token). Nil discards.
	Logger *slog.Logger
	// SessionTTL is how long an unused session binding lives (default
	// 24 h); each request on the session extends it.
	SessionTTL time.Duration
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// Defaults.
const (
	DefaultMaxBodyBytes = 1 << 20
	DefaultSessionTTL   = 24 * time.Hour
)

const (
	wellKnownPRM    = "/.well-known/oauth-protected-resource"
	sessionIDHeader = "Mcp-Session-Id"
)

// Middleware protects one MCP endpoint. It is safe for concurrent use.
type Middleware struct {
	resource, metadataPath, metadataURL string
	authServers                         []string
	resourceName                        string
	scopesSupported, challengeScopes    []string // as configured; nil = derived
	verifier                            Verifier
	maxBody                             int64
	onDecision                          func(context.Context, Decision) error
	log                                 *slog.Logger
	now                                 func() time.Time

	policy   atomic.Pointer[policy]
	sessions *sessions
}

// New validates opts and returns the middleware.
func New(opts *Options) (*Middleware, error) {
	if opts == nil {
		return nil, errors.New("mcpauth: Options are required")
	}
	u, err := checkURL("Resource", opts.Resource)
	if err != nil {
		return nil, err
	}
	if u.RawQuery != "" || u.ForceQuery {
		return nil, errors.New("mcpauth: Resource must not have a query")
	}
	if len(opts.AuthorizationServers) == 0 {
		return nil, errors.New("mcpauth: at least one AuthorizationServers entry is required")
	}
	for _, as := range opts.AuthorizationServers {
		if _, err := checkURL("AuthorizationServers entry", as); err != nil {
			return nil, err
		}
	}
	if opts.Verifier == nil {
		return nil, errors.New("mcpauth: Verifier is required")
	}
	if opts.MaxBodyBytes < 0 || opts.SessionTTL < 0 {
		return nil, errors.New("mcpauth: MaxBodyBytes and SessionTTL must not be negative")
	}
	m := &Middleware{
		resource:        opts.Resource,
		authServers:     slices.Clone(opts.AuthorizationServers),
		resourceName:    opts.ResourceName,
		scopesSupported: slices.Clone(opts.ScopesSupported),
		challengeScopes: slices.Clone(opts.ChallengeScopes),
		verifier:        opts.Verifier,
		maxBody:         opts.MaxBodyBytes,
		onDecision:      opts.OnDecision,
		log:             opts.Logger,
		now:             opts.Now,
	}
	if m.maxBody == 0 {
		m.maxBody = DefaultMaxBodyBytes
	}
	ttl := opts.SessionTTL
	if ttl == 0 {
		ttl = DefaultSessionTTL
	}
	m.sessions = newSessions(ttl)
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	// RFC 9728 §3.1: the well-known segment goes between host and path;
	// a path of just "/" adds nothing.
	m.metadataPath = wellKnownPRM
	if p := u.EscapedPath(); p != "" && p != "/" {
		m.metadataPath += p
	}
	m.metadataURL = u.Scheme + "://" + u.Host + m.metadataPath
	if err := m.UpdateTools(opts.Tools); err != nil {
		return nil, err
	}
	return m, nil
}

// checkURL validates an absolute http(s) URL in canonical form (lowercase
// scheme and host, no userinfo or fragment) whose text is safe inside a
// quoted header parameter.
func checkURL(what, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case raw == "" || err != nil:
		return nil, fmt.Errorf("mcpauth: %s %q is not a URL", what, raw)
	case u.Scheme != "https" && u.Scheme != "http" || !strings.HasPrefix(raw, u.Scheme+"://"):
		return nil, fmt.Errorf("mcpauth: %s %q must be an http or https URL with a lowercase scheme", what, raw)
	case u.Host == "" || u.User != nil || u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, fmt.Errorf("mcpauth: %s %q needs a host and no userinfo or fragment", what, raw)
	case u.Host != strings.ToLower(u.Host):
		return nil, fmt.Errorf("mcpauth: %s %q: the host must be lowercase (canonical form)", what, raw)
	case headerSafe(raw) != raw || strings.Contains(raw, " "):
		return nil, fmt.Errorf("mcpauth: %s %q contains characters that need escaping", what, raw)
	}
	return u, nil
}

// UpdateTools validates tools and swaps the policy atomically: requests
// already past their check keep the old one. (Addition to the contract.)
func (m *Middleware) UpdateTools(tools map[string]ToolRule) error {
	p, err := newPolicy(tools, m.scopesSupported, m.challengeScopes)
	if err != nil {
		return err
	}
	m.policy.Store(p)
	return nil
}

// SetTools swaps the tool map atomically (the gateway refreshes it from the
// authorization server). An invalid map fails closed: it is logged and
// every tool is denied until a valid one is set. Use UpdateTools to get
// the error instead.
func (m *Middleware) SetTools(tools map[string]ToolRule) {
	if err := m.UpdateTools(tools); err != nil {
		m.log.Error("invalid tool policy; every tool call is denied until a valid one is set", "err", err)
		p, _ := newPolicy(nil, m.scopesSupported, m.challengeScopes)
		m.policy.Store(p)
	}
}

// Tools returns a copy of the tool map in force. (Addition.)
func (m *Middleware) Tools() map[string]ToolRule {
	return cloneTools(m.policy.Load().tools)
}

// MetadataPath is the path-inserted RFC 9728 well-known path of the
// resource, e.g. /.well-known/oauth-protected-resource/mcp/files.
func (m *Middleware) MetadataPath() string { return m.metadataPath }

// ResourceMetadataURL is scheme://host + MetadataPath(): the
// resource_metadata of every challenge.
func (m *Middleware) ResourceMetadataURL() string { return m.metadataURL }

// protectedResourceMetadata is the RFC 9728 document.
type protectedResourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	ResourceName           string   `json:"resource_name,omitempty"`
}

// MetadataHandler serves the protected resource metadata (GET, HEAD, and
// OPTIONS for CORS preflight: the document is public).
func (m *Middleware) MetadataHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		switch r.Method {
		case http.MethodOptions:
			h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Content-Type, MCP-Protocol-Version")
			w.WriteHeader(http.StatusNoContent)
			return
		case http.MethodGet, http.MethodHead:
		default:
			h.Set("Allow", "GET, HEAD, OPTIONS")
			writeOAuth(w, http.StatusMethodNotAllowed, "", "invalid_request", "the metadata is read with GET")
			return
		}
		body, err := json.Marshal(protectedResourceMetadata{
			Resource:               m.resource,
			AuthorizationServers:   m.authServers,
			ScopesSupported:        m.policy.Load().scopesSupported,
			BearerMethodsSupported: []string{"header"},
			ResourceName:           m.resourceName,
		})
		if err != nil {
			http.Error(w, "metadata unavailable", http.StatusInternalServerError)
			return
		}
		noStore(h)
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	})
}

// Wrap protects next, the MCP endpoint. next never sees the Authorization
// header; it finds the verified token with TokenInfoFromContext.
//
// For go-sdk servers, the token is also the request's auth.TokenInfo, so
// tool handlers find it in CallToolRequest.Extra.TokenInfo (UserID is the
// subject; Extra["token_info"] is the *TokenInfo) and the go-sdk binds its
// sessions to the subject as well. It gets there through the go-sdk's own
// auth.RequireBearerToken, the only way to set it, fed a fixed marker
// credential that is removed again before next runs.
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	strip := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("Authorization")
		next.ServeHTTP(w, r)
	})
	fromContext := func(ctx context.Context, _ string, _ *http.Request) (*auth.TokenInfo, error) {
		ti, ok := TokenInfoFromContext(ctx)
		if !ok {
			return nil, auth.ErrInvalidToken // unreachable: forward sets it
		}
		return sdkTokenInfo(ti), nil
	}
	// The middleware has checked exp with its own clock and leeway; the
	// go-sdk must not judge it again with another.
	inner := auth.RequireBearerToken(fromContext, &auth.RequireBearerTokenOptions{ClockSkew: 24 * time.Hour})(strip)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.serve(w, r, inner)
	})
}

// sdkMarker is the credential handed to auth.RequireBearerToken in Wrap. It
// proves nothing and never reaches the wrapped handler.
const sdkMarker = "Bearer mcpauth-verified"

// request is the state of one request through the middleware.
type request struct {
	r         *http.Request
	now       time.Time
	pol       *policy
	ti        *TokenInfo
	sessionID string
	msgs      []rpcMessage
	batch     bool
}

func (m *Middleware) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	q := &request{r: r, now: m.now(), pol: m.policy.Load()}
	if sids := r.Header.Values(sessionIDHeader); len(sids) > 1 {
		writeRPC(w, http.StatusBadRequest, newRPCError(nil, codeInvalidRequest, "invalid request: more than one Mcp-Session-Id header"))
		return
	} else if len(sids) == 1 {
		q.sessionID = sids[0]
	}

	// RFC 6750 §2.3 URI query tokens leak into logs and history: refused
	// even alongside a valid header (D84).
	if hasQueryToken(r) {
		m.refuseToken(w, q, RuleTokenInvalid, "access tokens in the URI query are not accepted; send the Authorization header")
		return
	}
	token, state := bearerToken(r)
	switch state {
	case tokenMissing:
		m.refuseToken(w, q, RuleTokenMissing, "")
		return
	case tokenMalformed:
		m.refuseToken(w, q, RuleTokenInvalid, "the Authorization header does not carry a well-formed bearer token")
		return
	case tokenMultiple:
		writeOAuth(w, http.StatusBadRequest, challenge(
			authParam{"error", "invalid_request"},
			authParam{"error_description", "more than one Authorization header"},
			authParam{"resource_metadata", m.metadataURL}),
			"invalid_request", "more than one Authorization header")
		return
	}
	ti, err := m.verifier.Verify(r.Context(), token)
	switch {
	case err == nil && ti == nil:
		err = errors.New("verifier returned no token info")
		fallthrough
	case err != nil && !errors.Is(err, ErrInvalidToken):
		m.log.ErrorContext(r.Context(), "token verification unavailable", "err", err)
		w.Header().Set("Retry-After", "5")
		writeOAuth(w, http.StatusServiceUnavailable, "", "temporarily_unavailable",
			"the access token cannot be checked right now; retry later")
		return
	case err != nil:
		m.log.InfoContext(r.Context(), "invalid access token", "err", err)
		m.refuseToken(w, q, RuleTokenInvalid, describeInvalid(err))
		return
	}
	q.ti = ti

	// Streamable HTTP uses POST, GET and DELETE only. Anything else, or a
	// GET or DELETE with a body, could carry messages past the inspection
	// to a lenient server.
	switch r.Method {
	case http.MethodPost:
	case http.MethodGet, http.MethodDelete:
		if r.ContentLength != 0 {
			writeRPC(w, http.StatusBadRequest, newRPCError(nil, codeInvalidRequest, "invalid request: GET and DELETE carry no body"))
			return
		}
	default:
		w.Header().Set("Allow", "POST, GET, DELETE")
		writeRPC(w, http.StatusMethodNotAllowed, newRPCError(nil, codeInvalidRequest, "invalid request: method not allowed"))
		return
	}

	if r.Method == http.MethodPost {
		body, ok := m.readBody(w, r)
		if !ok {
			return
		}
		msgs, batch, berr := inspectBody(body)
		if berr != nil {
			writeRPC(w, http.StatusBadRequest, newRPCError(nil, berr.code, berr.message))
			return
		}
		q.msgs, q.batch = msgs, batch
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}

	if q.sessionID != "" {
		switch m.sessions.check(q.sessionID, principalOf(ti), q.now) {
		case sessionMismatch:
			m.refuseSession(w, q, RuleSessionMismatch, "the session belongs to another user or client")
			return
		case sessionUnknown:
			m.refuseSession(w, q, RuleSessionUnknown, "the session is unknown or expired")
			return
		}
	}

	if !m.checkCalls(w, q) {
		return
	}
	m.forward(w, q, next)
}

// forward passes the request on without its Authorization header, with the
// token in the context and a response interceptor.
func (m *Middleware) forward(w http.ResponseWriter, q *request, next http.Handler) {
	r := q.r.Clone(withTokenInfo(q.r.Context(), q.ti))
	r.Header.Set("Authorization", sdkMarker) // the client's token is gone; see Wrap

	var listKeys []string
	for _, msg := range q.msgs {
		if msg.method == methodToolsList && msg.id != nil {
			listKeys = append(listKeys, idKey(msg.id))
		}
	}
	if q.sessionID != "" {
		if len(listKeys) > 0 {
			m.sessions.rememberList(q.sessionID, listKeys)
		} else if r.Method == http.MethodGet {
			listKeys = m.sessions.listIDs(q.sessionID)
		}
	}
	iw := &interceptor{w: w}
	if len(listKeys) > 0 {
		ids := make(map[string]bool, len(listKeys))
		for _, k := range listKeys {
			ids[k] = true
		}
		pol, ti := q.pol, q.ti
		iw.filter = &listFilter{ids: ids, allow: func(tool string) bool { return pol.visible(tool, ti) }}
	}
	who := principalOf(q.ti)
	iw.onHeader = func(status int, h http.Header) bool {
		sid := h.Get(sessionIDHeader)
		if sid == "" || status < 200 || status > 299 || sid == q.sessionID {
			return true
		}
		if !m.sessions.bind(sid, who, m.now()) {
			m.log.ErrorContext(r.Context(), "MCP server returned a session id bound to another principal, or the session table is full",
				"jti", q.ti.JTI)
			return false
		}
		return true
	}
	next.ServeHTTP(iw, r)
	iw.finish()
	status := iw.status
	if status == 0 {
		status = http.StatusOK // the handler wrote nothing: net/http sends 200
	}
	if r.Method == http.MethodDelete && q.sessionID != "" && status >= 200 && status <= 299 {
		m.sessions.remove(q.sessionID)
	}
}

// readBody reads a POST body up to MaxBodyBytes, answering 413 or 400
// itself when it cannot.
func (m *Middleware) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	tooLarge := func() ([]byte, bool) {
		writeRPC(w, http.StatusRequestEntityTooLarge, newRPCError(nil, codeInvalidRequest,
			fmt.Sprintf("invalid request: the body exceeds %d bytes", m.maxBody)))
		return nil, false
	}
	if r.ContentLength > m.maxBody {
		return tooLarge()
	}
	if r.Body == nil {
		return nil, true
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, m.maxBody+1))
	if err != nil {
		writeRPC(w, http.StatusBadRequest, newRPCError(nil, codeParseError, "parse error: the body could not be read"))
		return nil, false
	}
	if int64(len(body)) > m.maxBody {
		return tooLarge()
	}
	return body, true
}

// checkCalls decides every tools/call of the request and answers a denial
// itself. It returns true when the request may go on.
func (m *Middleware) checkCalls(w http.ResponseWriter, q *request) bool {
	type call struct {
		msg rpcMessage
		v   verdict
	}
	var calls []call
	for _, msg := range q.msgs {
		if msg.method != methodToolsCall {
			continue
		}
		v := verdict{rule: RuleUnknownTool, reason: "the call names no tool"}
		if msg.toolOK {
			v = q.pol.decide(msg.tool, q.ti, q.now)
		}
		calls = append(calls, call{msg, v})
	}
	if len(calls) == 0 {
		return true
	}
	// One denial denies the request. An unknown tool wins (re-authorizing
	// cannot help), then missing scopes, then step-up.
	var deciding *verdict
	for _, rule := range []string{RuleUnknownTool, RuleScope, RuleStepUp} {
		for i := range calls {
			if calls[i].v.rule == rule {
				deciding = &calls[i].v
				break
			}
		}
		if deciding != nil {
			break
		}
	}
	var recordErr error
	for _, c := range calls {
		d := m.decision(q, methodToolsCall, c.msg.tool)
		d.Rule, d.Reason, d.MissingScopes = c.v.rule, c.v.reason, c.v.missing
		d.Allowed = deciding == nil
		if deciding != nil && c.v.allowed() {
			d.Rule, d.Reason = deciding.rule, "not run: another call in the same batch was refused"
		}
		if err := m.record(q.r.Context(), d); err != nil {
			recordErr = err
		}
	}
	if recordErr != nil {
		m.unrecorded(w, q, recordErr)
		return false
	}
	if deciding == nil {
		return true
	}
	switch deciding.rule {
	case RuleUnknownTool:
		m.writeUnknownTool(w, q, func(msg rpcMessage) bool {
			for _, c := range calls {
				if bytes.Equal(c.msg.id, msg.id) && c.v.rule == RuleUnknownTool {
					return true
				}
			}
			return false
		})
	case RuleScope:
		// All scopes the request needs, in one challenge (MCP 2025-11-25).
		var scopes []string
		for _, c := range calls {
			for _, s := range c.v.toolRule.Scopes {
				if !slices.Contains(scopes, s) {
					scopes = append(scopes, s)
				}
			}
		}
		desc := deciding.reason
		writeOAuth(w, http.StatusForbidden, challenge(
			authParam{"error", "insufficient_scope"},
			authParam{"scope", strings.Join(scopes, " ")},
			authParam{"resource_metadata", m.metadataURL},
			authParam{"error_description", desc}),
			"insufficient_scope", desc)
	case RuleStepUp:
		rule := deciding.toolRule
		maxAge := ""
		if rule.MaxAge > 0 {
			maxAge = secondsString(int64(rule.MaxAge / time.Second))
		}
		desc := deciding.reason
		writeOAuth(w, http.StatusUnauthorized, challenge(
			authParam{"error", "insufficient_user_authentication"},
			authParam{"error_description", desc},
			authParam{"acr_values", strings.Join(rule.ACRValues, " ")},
			authParam{"max_age", maxAge},
			authParam{"resource_metadata", m.metadataURL}),
			"insufficient_user_authentication", desc)
	}
	return false
}

// writeUnknownTool answers HTTP 200 with JSON-RPC errors, so that clients
// do not loop on challenges for a tool no token can call. In a batch, every
// request gets an error; the calls that were not the problem say so.
func (m *Middleware) writeUnknownTool(w http.ResponseWriter, q *request, unknown func(rpcMessage) bool) {
	const notAvailable = "tool not available"
	if !q.batch {
		writeRPC(w, http.StatusOK, newRPCError(q.msgs[0].id, codeInvalidParams, notAvailable))
		return
	}
	var out []rpcError
	for _, msg := range q.msgs {
		if msg.id == nil || msg.method == "" {
			continue // notifications and responses get no answer
		}
		if msg.method == methodToolsCall && unknown(msg) {
			out = append(out, newRPCError(msg.id, codeInvalidParams, notAvailable))
		} else {
			out = append(out, newRPCError(msg.id, codeInvalidRequest, "not run: the batch calls a tool that is not available"))
		}
	}
	if len(out) == 0 {
		writeRPC(w, http.StatusOK, newRPCError(nil, codeInvalidParams, notAvailable))
		return
	}
	writeRPC(w, http.StatusOK, out)
}

// refuseToken answers a request without a usable token: 401 with the
// resource metadata and, when a token was presented, invalid_token.
// tools/calls in a readable body are recorded as denied.
func (m *Middleware) refuseToken(w http.ResponseWriter, q *request, rule, description string) {
	if q.r.Method == http.MethodPost {
		if body, err := io.ReadAll(io.LimitReader(q.r.Body, m.maxBody+1)); err == nil && int64(len(body)) <= m.maxBody {
			q.msgs, q.batch, _ = inspectBody(body)
		}
	}
	reason := description
	if rule == RuleTokenMissing {
		reason = "no bearer token was presented"
	}
	var recordErr error
	for _, msg := range q.msgs {
		if msg.method != methodToolsCall {
			continue
		}
		d := m.decision(q, methodToolsCall, msg.tool)
		d.Rule, d.Reason = rule, reason
		if err := m.record(q.r.Context(), d); err != nil {
			recordErr = err
		}
	}
	if recordErr != nil {
		m.unrecorded(w, q, recordErr)
		return
	}
	if rule == RuleTokenMissing {
		// RFC 6750 §3.1: no error code when no credentials were sent (D77).
		writeOAuth(w, http.StatusUnauthorized, challenge(
			authParam{"resource_metadata", m.metadataURL},
			authParam{"scope", strings.Join(q.pol.challengeScopes, " ")}),
			"unauthorized", "this MCP server needs a bearer access token")
		return
	}
	writeOAuth(w, http.StatusUnauthorized, challenge(
		authParam{"error", "invalid_token"},
		authParam{"error_description", description},
		authParam{"resource_metadata", m.metadataURL}),
		"invalid_token", description)
}

// refuseSession answers a request on a session that is not the caller's:
// 404 as for a session that does not exist, so nothing is learned about it.
func (m *Middleware) refuseSession(w http.ResponseWriter, q *request, rule, reason string) {
	method := q.r.Method
	var calls []rpcMessage
	for _, msg := range q.msgs {
		if msg.method == methodToolsCall {
			calls = append(calls, msg)
		}
	}
	if len(calls) == 0 && len(q.msgs) > 0 {
		method = q.msgs[0].method
	}
	var recordErr error
	if len(calls) == 0 {
		d := m.decision(q, method, "")
		d.Rule, d.Reason = rule, reason
		recordErr = m.record(q.r.Context(), d)
	}
	for _, msg := range calls {
		d := m.decision(q, methodToolsCall, msg.tool)
		d.Rule, d.Reason = rule, reason
		if err := m.record(q.r.Context(), d); err != nil {
			recordErr = err
		}
	}
	if recordErr != nil {
		m.unrecorded(w, q, recordErr)
		return
	}
	var id []byte
	if !q.batch && len(q.msgs) == 1 {
		id = q.msgs[0].id
	}
	writeRPC(w, http.StatusNotFound, newRPCError(id, codeSessionNotFound, "session not found"))
}

func (m *Middleware) decision(q *request, method, tool string) Decision {
	d := Decision{Time: q.now, Method: method, Tool: tool, SessionID: q.sessionID}
	if q.ti != nil {
		d.JTI, d.Subject, d.ClientID = q.ti.JTI, q.ti.Subject, q.ti.ClientID
	}
	return d
}

func (m *Middleware) record(ctx context.Context, d Decision) error {
	level := slog.LevelDebug
	if !d.Allowed {
		level = slog.LevelInfo
	}
	if m.log.Enabled(ctx, level) {
		m.log.Log(ctx, level, "mcp decision", "method", d.Method, "tool", d.Tool, "allowed", d.Allowed,
			"rule", d.Rule, "jti", d.JTI, "sub", d.Subject, "client_id", d.ClientID)
	}
	if m.onDecision == nil {
		return nil
	}
	return m.onDecision(ctx, d)
}

// unrecorded answers 503 when a decision could not be recorded: no call
// runs, and no denial is told, without its record.
func (m *Middleware) unrecorded(w http.ResponseWriter, q *request, err error) {
	m.log.ErrorContext(q.r.Context(), "recording a decision failed; request refused", "err", err)
	w.Header().Set("Retry-After", "5")
	var id []byte
	if !q.batch && len(q.msgs) == 1 {
		id = q.msgs[0].id
	}
	writeRPC(w, http.StatusServiceUnavailable, newRPCError(id, codeInternalError,
		"the request could not be recorded; retry later"))
}

type tokenState int

const (
	tokenPresent tokenState = iota
	tokenMissing
	tokenMalformed
	tokenMultiple
)

// bearerToken extracts an RFC 6750 §2.1 bearer token. A missing header,
// an empty one or another scheme count as no token (no error code).
func bearerToken(r *http.Request) (string, tokenState) {
	vals := r.Header.Values("Authorization")
	switch {
	case len(vals) == 0:
		return "", tokenMissing
	case len(vals) > 1:
		return "", tokenMultiple
	}
	v := strings.TrimSpace(vals[0])
	if v == "" {
		return "", tokenMissing
	}
	scheme, rest, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", tokenMissing
	}
	token := strings.TrimLeft(rest, " ")
	if !b64token(token) {
		return "", tokenMalformed
	}
	return token, tokenPresent
}

// b64token is RFC 6750's token68 syntax.
func b64token(s string) bool {
	if s == "" {
		return false
	}
	i := 0
	for i < len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
		i++
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// hasQueryToken reports an access_token query parameter, however encoded.
func hasQueryToken(r *http.Request) bool {
	if r.URL == nil || r.URL.RawQuery == "" {
		return false
	}
	for _, pair := range strings.FieldsFunc(r.URL.RawQuery, func(c rune) bool { return c == '&' || c == ';' }) {
		name, _, _ := strings.Cut(pair, "=")
		if n, err := url.QueryUnescape(name); err == nil && n == "access_token" || name == "access_token" {
			return true
		}
	}
	return false
}
