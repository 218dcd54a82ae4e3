// Package mcpauth protects MCP servers built on the official go-sdk: it
// verifies RFC 9068 access tokens issued for exactly this server, enforces
// per-tool scopes and step-up, and answers with RFC 6750/9728/9470
// challenges.
//
// Reserved: the implementation lands with the gateway issue. The package is
// public and must stay free of database drivers and CLI dependencies (a test
// in the module root enforces that).
package mcpauth
