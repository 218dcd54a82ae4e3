// Package oauth is the protocol plumbing shared by OpenXAA's two token
// servers (the IdP and the resource authorization server): strict parsing of
// token requests, client authentication, scope arithmetic and the RFC 6749
// §5.2 error writer.
//
// This package is the HTTP edge for those concerns: domain packages return
// sentinel errors, and only WriteError (and the handlers that call it) turn
// them into OAuth error codes and HTTP status codes.
package oauth

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// OAuth error codes used by OpenXAA's token endpoints.
const (
	// RFC 6749 §5.2.
	CodeInvalidRequest       = "invalid_request"
	CodeInvalidClient        = "invalid_client"
	CodeInvalidGrant         = "invalid_grant"
	CodeUnauthorizedClient   = "unauthorized_client"
	CodeUnsupportedGrantType = "unsupported_grant_type"
	CodeInvalidScope         = "invalid_scope"
	// RFC 6749 §4.1.2.1; used at the token endpoint for policy denials
	// (docs/decisions.md "Resolved spec conflicts").
	CodeAccessDenied           = "access_denied"
	CodeServerError            = "server_error"
	CodeTemporarilyUnavailable = "temporarily_unavailable"
	// RFC 8707 §2 (also RFC 8693 §2.2.2).
	CodeInvalidTarget = "invalid_target"
	// RFC 9470 §3.
	CodeInsufficientUserAuthentication = "insufficient_user_authentication"
)

// Error is an OAuth error response. Handlers return it (possibly wrapped)
// and WriteError renders it; anything that is not an *Error becomes an
// opaque 500.
type Error struct {
	// Code is the "error" member, one of the Code* constants.
	Code string
	// Description is the "error_description" member: a human sentence. It
	// must never carry secrets or tokens, and attacker input only as a
	// short excerpt (see Excerpt). WriteError enforces the RFC 6749 charset.
	Description string
	// Status is the HTTP status; 0 means the default for Code (400, 401 for
	// invalid_client, 500 for server_error, 503 for temporarily_unavailable).
	Status int
	// URI is the optional "error_uri" member.
	URI string
	// Extra holds additional members of the JSON body, e.g. max_age and
	// acr_values for insufficient_user_authentication. It cannot override
	// error, error_description or error_uri.
	Extra map[string]any
	// Header holds additional response headers, e.g. WWW-Authenticate,
	// Retry-After or Allow. It cannot override Content-Type, Cache-Control
	// or Pragma.
	Header http.Header
	// Err is the internal cause. It is logged, never sent, and lets callers
	// (audit, tests) match sentinels with errors.Is.
	Err error
}

// Error implements error. The text is for logs, never for the client.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("oauth: ")
	b.WriteString(e.Code)
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.Err }

// WithCause records err as the internal cause and returns e, so a
// constructor call and its cause read as one expression.
func (e *Error) WithCause(err error) *Error {
	e.Err = err
	return e
}

// HTTPStatus is the status WriteError sends for e.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	switch e.Code {
	case CodeInvalidClient:
		return http.StatusUnauthorized
	case CodeServerError:
		return http.StatusInternalServerError
	case CodeTemporarilyUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusBadRequest
	}
}

func newError(code, description string) *Error {
	return &Error{Code: code, Description: description}
}

// InvalidRequest: a parameter is missing, repeated, oversized or malformed.
func InvalidRequest(description string) *Error { return newError(CodeInvalidRequest, description) }

// InvalidClient: client authentication failed (401).
func InvalidClient(description string) *Error { return newError(CodeInvalidClient, description) }

// InvalidGrant: the grant (code, ID-JAG, subject token) is invalid, expired,
// revoked, replayed or issued to another client.
func InvalidGrant(description string) *Error { return newError(CodeInvalidGrant, description) }

// UnauthorizedClient: the client may not use this grant type.
func UnauthorizedClient(description string) *Error {
	return newError(CodeUnauthorizedClient, description)
}

// UnsupportedGrantType: the server does not implement the grant type.
func UnsupportedGrantType(description string) *Error {
	return newError(CodeUnsupportedGrantType, description)
}

// InvalidScope: the scope is malformed, unknown or not allowed.
func InvalidScope(description string) *Error { return newError(CodeInvalidScope, description) }

// InvalidTarget: the requested audience or resource is unknown or not
// allowed (RFC 8707).
func InvalidTarget(description string) *Error { return newError(CodeInvalidTarget, description) }

// AccessDenied: policy denies the user or client.
func AccessDenied(description string) *Error { return newError(CodeAccessDenied, description) }

// NoMaxAge tells InsufficientUserAuthentication that there is no max_age
// requirement (a max_age of 0 is meaningful: authenticate again now).
const NoMaxAge time.Duration = -1

// InsufficientUserAuthentication is the RFC 9470 step-up error. acrValues
// (space-joined into acr_values) and maxAge (whole seconds, in max_age;
// NoMaxAge to omit) tell the client what authentication would satisfy
// policy.
func InsufficientUserAuthentication(description string, acrValues []string, maxAge time.Duration) *Error {
	e := newError(CodeInsufficientUserAuthentication, description)
	if len(acrValues) > 0 || maxAge >= 0 {
		e.Extra = map[string]any{}
	}
	if len(acrValues) > 0 {
		e.Extra["acr_values"] = strings.Join(acrValues, " ")
	}
	if maxAge >= 0 {
		e.Extra["max_age"] = int64(maxAge / time.Second)
	}
	return e
}

// ServerError: an unexpected internal failure (500). Prefer returning the
// plain error and letting WriteError produce this.
func ServerError(description string) *Error { return newError(CodeServerError, description) }

// TemporarilyUnavailable: a dependency is down; the client may retry (503).
func TemporarilyUnavailable(description string) *Error {
	return newError(CodeTemporarilyUnavailable, description)
}

// Descriptions of the errors WriteError produces itself.
const (
	descInternal    = "internal error"
	descUnavailable = "the service is temporarily unavailable; retry later"
)

// defaultRealm is used for WWW-Authenticate when the error does not carry
// its own challenge (the Authenticator always sets one).
const defaultRealm = "oauth"

// WriteError writes err as an RFC 6749 §5.2 error response.
//
//   - An error wrapping store.ErrUnavailable becomes 503
//     temporarily_unavailable, whatever else it is: a dependency outage must
//     never read as a definitive rejection (or a success).
//   - An *Error (found with errors.As) is rendered as is.
//   - Anything else becomes 500 server_error "internal error"; the cause is
//     logged at ERROR with the request's context and never sent.
//
// invalid_client is 401; when the request carried an Authorization header
// the response carries a WWW-Authenticate challenge (RFC 6749 §5.2).
func WriteError(w http.ResponseWriter, r *http.Request, err error, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx := r.Context()
	var oe *Error
	switch {
	case err == nil:
		oe = &Error{Code: CodeServerError, Description: descInternal}
		log.ErrorContext(ctx, "oauth: WriteError called with a nil error",
			"method", r.Method, "path", r.URL.Path)
	case errors.Is(err, store.ErrUnavailable):
		log.WarnContext(ctx, "oauth: dependency unavailable",
			"method", r.Method, "path", r.URL.Path, "error", err)
		oe = &Error{Code: CodeTemporarilyUnavailable, Description: descUnavailable}
	case errors.As(err, &oe):
		if !validCode(oe.Code) {
			log.ErrorContext(ctx, "oauth: error without a valid code",
				"method", r.Method, "path", r.URL.Path, "error", err)
			oe = &Error{Code: CodeServerError, Description: descInternal}
			break
		}
		if st := oe.HTTPStatus(); st >= 500 {
			log.ErrorContext(ctx, "oauth: request failed",
				"method", r.Method, "path", r.URL.Path, "status", st, "error", err)
		} else if oe.Err != nil {
			log.DebugContext(ctx, "oauth: request rejected",
				"method", r.Method, "path", r.URL.Path, "code", oe.Code, "error", err)
		}
	default:
		log.ErrorContext(ctx, "oauth: internal error",
			"method", r.Method, "path", r.URL.Path, "error", err)
		oe = &Error{Code: CodeServerError, Description: descInternal}
	}

	status := oe.HTTPStatus()
	if status < 400 || status > 599 {
		status = http.StatusBadRequest
	}

	body := make(map[string]any, 3+len(oe.Extra))
	for k, v := range oe.Extra {
		body[k] = v
	}
	body["error"] = oe.Code
	if d := sanitizeDescription(oe.Description); d != "" {
		body["error_description"] = d
	} else {
		delete(body, "error_description")
	}
	if oe.URI != "" && sanitizeDescription(oe.URI) == oe.URI {
		body["error_uri"] = oe.URI
	} else {
		delete(body, "error_uri")
	}
	payload, merr := json.Marshal(body)
	if merr != nil {
		// Only Extra can fail to marshal; drop it rather than the response.
		log.ErrorContext(ctx, "oauth: error body does not marshal", "error", merr)
		payload, _ = json.Marshal(map[string]string{"error": oe.Code})
	}

	h := w.Header()
	for k, vs := range oe.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Type", "Cache-Control", "Pragma", "Content-Length":
			continue
		}
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	if oe.Code == CodeInvalidClient && status == http.StatusUnauthorized &&
		r.Header.Get("Authorization") != "" && h.Get("WWW-Authenticate") == "" {
		h.Set("WWW-Authenticate", BasicChallenge(defaultRealm))
	}
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(payload)))
	w.WriteHeader(status)
	_, _ = w.Write(payload)
}

// BasicChallenge returns the WWW-Authenticate value for HTTP Basic client
// authentication in realm (RFC 7617). The realm comes from configuration;
// it is still quoted safely.
func BasicChallenge(realm string) string {
	var b strings.Builder
	b.WriteString(`Basic realm="`)
	for _, c := range []byte(realm) {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			// Drop control characters: they cannot appear in a header.
		default:
			b.WriteByte(c)
		}
	}
	b.WriteString(`", charset="UTF-8"`)
	return b.String()
}

// retryAfter formats d as a Retry-After header value in whole seconds,
// rounded up so a client never retries early.
func retryAfter(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}

// validCode reports whether code is a non-empty run of RFC 6749 NQCHARs
// (the §5.2 error ABNF minus the space no registered code contains).
func validCode(code string) bool {
	for i := 0; i < len(code); i++ {
		if !nqchar(code[i]) {
			return false
		}
	}
	return code != ""
}

// nqchar reports whether c is an RFC 6749 NQCHAR: %x21 / %x23-5B / %x5D-7E.
func nqchar(c byte) bool {
	return c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e)
}

// maxDescription caps error_description; a human sentence is short.
const maxDescription = 256

// sanitizeDescription forces s into RFC 6749's error_description charset
// (%x20-21 / %x23-5B / %x5D-7E): '"' becomes "'", every other byte outside
// it (a backslash, a control character, non-ASCII) becomes '?', and the
// result is capped. WriteError applies it to every description, so a
// handler that slips attacker input into one can neither break the charset
// nor send something long.
func sanitizeDescription(s string) string {
	if len(s) > maxDescription {
		s = s[:maxDescription-3] + "..."
	}
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || nqchar(c) {
			continue
		}
		if b == nil {
			b = []byte(s)
		}
		if c == '"' {
			b[i] = '\''
		} else {
			b[i] = '?'
		}
	}
	if b == nil {
		return s
	}
	return string(b)
}

// maxExcerpt is how much of attacker-controlled input an error description
// may quote.
const maxExcerpt = 32

// Excerpt returns a short, charset-safe excerpt of untrusted input, in
// single quotes, for use in an error description. Never pass it a secret or
// a token.
func Excerpt(s string) string {
	truncated := len(s) > maxExcerpt
	if truncated {
		s = s[:maxExcerpt]
	}
	b := make([]byte, 0, len(s)+5)
	b = append(b, '\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if nqchar(c) && c != '\'' || c == ' ' {
			b = append(b, c)
		} else {
			b = append(b, '?')
		}
	}
	if truncated {
		b = append(b, "..."...)
	}
	b = append(b, '\'')
	return string(b)
}
