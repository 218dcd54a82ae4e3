package xaaclient

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors. Every error the client returns for one of these
// conditions wraps the sentinel, so callers branch with errors.Is.
var (
	// ErrDenied: the IdP refused by policy (access_denied, invalid_target,
	// invalid_scope, unauthorized_client). It is final: the client never
	// retries the request and never falls back to any other way in.
	ErrDenied = errors.New("xaaclient: access denied by policy")
	// ErrStepUpRequired: the user must authenticate again, more strongly or
	// more recently, and no StepUp callback was configured (or the login
	// that followed it still did not satisfy the challenge).
	ErrStepUpRequired = errors.New("xaaclient: step-up authentication required")
	// ErrInsufficientScope: the resource kept asking for scopes the client
	// could not obtain.
	ErrInsufficientScope = errors.New("xaaclient: insufficient scope")
	// ErrLoginRequired: there is no usable IdP session and interactive
	// login is disabled.
	ErrLoginRequired = errors.New("xaaclient: login required")
	// ErrResourceMismatch: the protected resource metadata describes a
	// resource other than the requested MCP URL (RFC 9728 §3.3). No
	// authorization server is contacted.
	ErrResourceMismatch = errors.New("xaaclient: protected resource metadata is for another resource")
	// ErrIssuerMismatch: a metadata document names an issuer other than
	// the one it was fetched for (RFC 8414 §3.3), or an authorization
	// response carries a foreign iss (RFC 9207).
	ErrIssuerMismatch = errors.New("xaaclient: issuer mismatch")
	// ErrNotXAA: the resource's authorization server does not support the
	// ID-JAG grant profile. The client does not fall back to the
	// authorization code flow at that server.
	ErrNotXAA = errors.New("xaaclient: authorization server does not support the ID-JAG grant")
	// ErrNoCredentials: the client holds no credentials for any of the
	// resource's authorization servers.
	ErrNoCredentials = errors.New("xaaclient: no client credentials for the authorization server")
	// ErrInvalidResponse: a server answered with something the client must
	// not use (wrong token type, foreign resource, malformed JSON, ...).
	ErrInvalidResponse = errors.New("xaaclient: invalid response")
	// ErrDiscovery: metadata could not be found or is unusable.
	ErrDiscovery = errors.New("xaaclient: discovery failed")
	// ErrLoginFailed: the SSO login did not produce a valid ID token.
	ErrLoginFailed = errors.New("xaaclient: login failed")
	// ErrInsecureCacheFile: the token cache file is readable or writable by
	// others, or not owned by this user; the client refuses to use it.
	ErrInsecureCacheFile = errors.New("xaaclient: token cache file has unsafe permissions")
	// ErrInsecureURL: an endpoint is not https (http is allowed only on a
	// loopback host with Options.AllowLoopbackHTTP).
	ErrInsecureURL = errors.New("xaaclient: insecure URL")
)

// DeniedError is an administrative denial by the IdP. Code is the OAuth
// error code, Description the IdP's human sentence (untrusted text,
// clipped). errors.Is(err, ErrDenied) holds.
type DeniedError struct {
	Code        string
	Description string
	// Resource is the MCP resource the denied request was for, if any.
	Resource string
}

func (e *DeniedError) Error() string {
	var b strings.Builder
	b.WriteString("xaaclient: denied by the identity provider")
	if e.Resource != "" {
		b.WriteString(" for " + e.Resource)
	}
	b.WriteString(" (" + e.Code + ")")
	if e.Description != "" {
		b.WriteString(": " + e.Description)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrDenied) true.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// NoMaxAge marks an absent max_age (a max_age of 0 is meaningful:
// authenticate again now).
const NoMaxAge time.Duration = -1

// StepUpChallenge is what a resource or the IdP asked for (RFC 9470):
// an authentication context from ACRValues and/or an authentication no
// older than MaxAge (NoMaxAge when absent).
type StepUpChallenge struct {
	ACRValues   []string
	MaxAge      time.Duration
	Description string
	// Resource is the MCP resource whose access needs the step-up.
	Resource string
	// FromIdP is true when the IdP's token exchange asked, false when the
	// resource server did.
	FromIdP bool
}

// StepUpError is returned when the user must authenticate again and the
// client has no StepUp callback, or when the new login still did not
// satisfy the challenge. errors.Is(err, ErrStepUpRequired) holds.
type StepUpError struct {
	ACRValues   []string
	MaxAge      time.Duration // NoMaxAge when absent
	Description string
	Resource    string
	// Reason says why the client stopped, when it did try.
	Reason string
}

func (e *StepUpError) Error() string {
	var b strings.Builder
	b.WriteString("xaaclient: step-up authentication required")
	if e.Resource != "" {
		b.WriteString(" for " + e.Resource)
	}
	var need []string
	if len(e.ACRValues) > 0 {
		need = append(need, "acr_values="+strings.Join(e.ACRValues, " "))
	}
	if e.MaxAge >= 0 {
		need = append(need, fmt.Sprintf("max_age=%ds", int64(e.MaxAge/time.Second)))
	}
	if len(need) > 0 {
		b.WriteString(" (" + strings.Join(need, ", ") + ")")
	}
	if e.Reason != "" {
		b.WriteString(": " + e.Reason)
	} else if e.Description != "" {
		b.WriteString(": " + e.Description)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrStepUpRequired) true.
func (e *StepUpError) Is(target error) bool { return target == ErrStepUpRequired }

func (c *StepUpChallenge) asError(reason string) *StepUpError {
	return &StepUpError{ACRValues: c.ACRValues, MaxAge: c.MaxAge, Description: c.Description, Resource: c.Resource, Reason: reason}
}

// ScopeError: the resource answered insufficient_scope and re-authorizing
// with the union of scopes did not help (the IdP or the authorization
// server narrowed the grant, or the retry bound was reached).
// errors.Is(err, ErrInsufficientScope) holds.
type ScopeError struct {
	Resource string
	// Required are the scopes the resource asked for; Granted those the
	// last token carried.
	Required, Granted []string
	Reason            string
}

func (e *ScopeError) Error() string {
	return fmt.Sprintf("xaaclient: %s needs scope %q, the token holds %q: %s",
		e.Resource, strings.Join(e.Required, " "), strings.Join(e.Granted, " "), e.Reason)
}

// Is makes errors.Is(err, ErrInsufficientScope) true.
func (e *ScopeError) Is(target error) bool { return target == ErrInsufficientScope }

// OAuthError is an OAuth error response (RFC 6749 §5.2) from a token
// endpoint that is not a denial: a bad client configuration, a refused
// assertion, a server failure. Description is the server's untrusted text,
// clipped.
type OAuthError struct {
	Endpoint    string // which endpoint: "IdP token endpoint", ...
	StatusCode  int
	Code        string
	Description string
}

func (e *OAuthError) Error() string {
	s := fmt.Sprintf("xaaclient: %s answered %d", e.Endpoint, e.StatusCode)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// clip makes untrusted server text safe to print: at most 300 bytes, no
// control characters.
func clip(s string) string {
	const limit = 300
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= limit {
			b.WriteString("...")
			break
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}
