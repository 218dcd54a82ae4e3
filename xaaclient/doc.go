// Package xaaclient is the client side of Cross App Access: OIDC login with
// PKCE at the enterprise IdP, RFC 8693 exchange of the ID token for an
// ID-JAG, and RFC 7523 redemption of the ID-JAG for an access token at the
// MCP server's authorization server. It implements the go-sdk OAuthHandler.
//
// Reserved: the implementation lands with the client issue. The package is
// public and must stay free of database drivers and CLI dependencies (a test
// in the module root enforces that).
package xaaclient
