// Package mcpauth protects MCP servers built on the official go-sdk, or any
// streamable-HTTP MCP server behind a Go reverse proxy: it verifies RFC 9068
// access tokens issued for exactly this server, enforces per-tool scopes and
// step-up, and answers with RFC 6750/9728/9470 challenges.
//
// A Verifier checks bearer tokens: NewJWTVerifier verifies at+jwt tokens
// locally with the authorization server's keys (a static JWK Set, or its
// jwks_uri fetched through an SSRF-guarded cache); NewIntrospectionVerifier
// asks the authorization server (RFC 7662). SDKVerifier adapts either to
// the go-sdk's auth.RequireBearerToken.
//
// New returns the Middleware. Wrap the MCP endpoint with it and serve
// MetadataHandler at MetadataPath:
//
//	m, err := mcpauth.New(&mcpauth.Options{
//		Resource:             "https://crm.example.com/mcp",
//		AuthorizationServers: []string{"https://as.example.com"},
//		Verifier:             verifier,
//		Tools: map[string]mcpauth.ToolRule{
//			"search_customers": {Scopes: []string{"crm:read"}},
//			"export_customers": {Scopes: []string{"crm:export"},
//				ACRValues: []string{"urn:openxaa:acr:mfa"}, MaxAge: 5 * time.Minute},
//		},
//	})
//	mux.Handle("/mcp", m.Wrap(mcpHandler))
//	mux.Handle(m.MetadataPath(), m.MetadataHandler())
//
// What the middleware does, per request:
//   - No token: 401 with resource_metadata and scope, and no error code.
//     A token in the URI query is refused. A bad, expired, foreign-audience,
//     foreign-issuer, revoked or non-at+jwt token: 401 invalid_token. A
//     verifier that cannot reach its keys or endpoint: 503.
//   - POST bodies (at most MaxBodyBytes) are parsed as JSON-RPC, single or
//     batch, strictly: invalid JSON is 400 and a repeated member name, even
//     one differing only in case, is refused, so the middleware and the
//     server can never read different tools out of one message. Every
//     tools/call is decided before the server sees it: an unlisted tool is a
//     JSON-RPC error "tool not available" (HTTP 200); missing scopes are 403
//     insufficient_scope naming every scope the request needs; a failed acr
//     or max_age requirement is 401 insufficient_user_authentication. A
//     tool's max_age allows 30 s of clock skew, and a token without
//     auth_time never satisfies one. One denial denies a whole batch.
//   - tools/list responses, application/json or text/event-stream, are
//     filtered to the tools whose scopes the token holds (step-up tools stay
//     listed). Events stream through as they arrive; only the event that
//     carries the response to the tools/list request id is rewritten. The
//     same ids are remembered per session, so a response replayed on a GET
//     stream (Last-Event-ID resumption) is filtered too.
//   - A session id a response hands out is bound to the token's (iss, sub,
//     client_id); a request naming a session of someone else, or one this
//     middleware never bound, gets 404 "session not found". Bindings live in
//     memory, so replicas need session affinity and a restart ends sessions.
//   - The Authorization header never reaches the server; the verified token
//     is in the request context (TokenInfoFromContext) and, for go-sdk
//     servers, in CallToolRequest.Extra.TokenInfo of every tool call.
//
// Every tools/call decision, allowed or denied, goes to OnDecision before
// the answer; an error there refuses the request with 503.
//
// The package is public and must stay free of database drivers and CLI
// dependencies (internal/depcheck enforces that).
package mcpauth
