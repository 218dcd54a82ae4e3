// Package xaaclient is the client side of Cross App Access (XAA) for MCP:
// enterprise SSO at the IdP (OIDC code flow with PKCE on a loopback
// redirect), RFC 8693 exchange of the user's ID token for an ID-JAG, and
// RFC 7523 redemption of the ID-JAG for an access token at the MCP server's
// authorization server. A Client's Handler implements the go-sdk
// auth.OAuthHandler, so an mcp.StreamableClientTransport gets tokens, scope
// upgrades and step-up without further code:
//
//	c, err := xaaclient.New(&xaaclient.Options{
//		Issuer: "https://idp.example.com",
//		Client: xaaclient.Credentials{ClientID: "assistant", ClientSecret: secret},
//		AuthServers: map[string]xaaclient.Credentials{
//			"https://as.example.com": {ClientID: "assistant-at-files", ClientSecret: asSecret},
//		},
//	})
//	h, err := c.Handler("https://gw.example.com/mcp/files")
//	transport := &mcp.StreamableClientTransport{Endpoint: "https://gw.example.com/mcp/files", OAuthHandler: h}
//
// What the client guarantees (spec digest §2, §3.2, checklist group E):
//
//   - Discovery follows the MCP order (the challenge's resource_metadata, else
//     the RFC 9728 well-known URLs; RFC 8414 then OpenID metadata), refuses
//     metadata whose resource or issuer is not exactly the one asked for, and
//     talks to an authorization server only after that check passed.
//   - It only ever uses the ID-JAG grant: it never opens an authorization
//     server's authorization endpoint, and an IdP denial (access_denied,
//     invalid_target, invalid_scope) is a *DeniedError that is not retried
//     and never answered with another way in.
//   - Access tokens are cached per (resource, scope set) until 30 s before
//     they expire; concurrent callers share one exchange and one redemption;
//     an ID-JAG is presented exactly once and never stored.
//   - The ID token is renewed with the IdP refresh token (rotated and stored)
//     when it expires, else the user signs in again.
//   - insufficient_scope re-authorizes with the union of scopes, bounded;
//     insufficient_user_authentication asks Options.StepUp and signs the
//     user in again with acr_values/max_age.
//   - Tokens never appear in logs, errors or URLs. The cache file is written
//     0600 atomically under a lock, and refused if anyone else can read it.
//
// The package stays free of database drivers and CLI dependencies (a test
// in internal/depcheck enforces that).
package xaaclient
