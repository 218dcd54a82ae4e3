package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/store"
)

// Error codes of the admin API's JSON error body
// {"error": code, "error_description": sentence}.
const (
	codeInvalidRequest = "invalid_request"        // 400
	codeUnauthorized   = "unauthorized"           // 401
	codeInvalidToken   = "invalid_token"          // 401, a bearer token that is not (or no longer) valid
	codeForbidden      = "forbidden"              // 403
	codeNotFound       = "not_found"              // 404
	codeConflict       = "conflict"               // 409
	codeTooLarge       = "request_too_large"      // 413
	codeMediaType      = "unsupported_media_type" // 415
	codeServerError    = "server_error"           // 500
	codeUnavailable    = "temporarily_unavailable"
)

// apiError is an answer other than success: an HTTP status, a code and a
// human sentence. Handlers return it; writeError sends it.
type apiError struct {
	status int
	code   string
	desc   string
	// challenge, for a 401, is the WWW-Authenticate value.
	challenge string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.desc) }

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: codeInvalidRequest, desc: fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) *apiError {
	return &apiError{status: http.StatusForbidden, code: codeForbidden, desc: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *apiError {
	return &apiError{status: http.StatusNotFound, code: codeNotFound, desc: fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) *apiError {
	return &apiError{status: http.StatusConflict, code: codeConflict, desc: fmt.Sprintf(format, args...)}
}

const bearerRealm = `Bearer realm="xaa-admin"`

func unauthorized(desc string) *apiError {
	return &apiError{status: http.StatusUnauthorized, code: codeUnauthorized, desc: desc, challenge: bearerRealm}
}

func invalidToken(desc string) *apiError {
	return &apiError{status: http.StatusUnauthorized, code: codeInvalidToken, desc: desc,
		challenge: bearerRealm + `, error="invalid_token", error_description="` + desc + `"`}
}

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// toAPIError maps a domain error to its answer. Domain sentinels carry
// sentences meant for the caller; anything else is a 500 whose detail goes
// to the log only.
func toAPIError(err error) (*apiError, bool) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae, true
	case httpserver.IsBodyTooLarge(err):
		return &apiError{status: http.StatusRequestEntityTooLarge, code: codeTooLarge, desc: "the request body is too large"}, true
	case errors.Is(err, httpserver.ErrUnsupportedMediaType):
		return &apiError{status: http.StatusUnsupportedMediaType, code: codeMediaType,
			desc: "the request body must be JSON (Content-Type: application/json)"}, true
	case errors.Is(err, httpserver.ErrInvalidJSON):
		return badRequest("%s", sentence(err)), true
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable,
			desc: "the database did not answer; try again"}, false
	case errors.Is(err, store.ErrNotFound):
		return notFound("%s", sentence(err)), true
	case errors.Is(err, store.ErrConflict):
		return conflict("%s", sentence(err)), true
	case errors.Is(err, store.ErrInvalid):
		return badRequest("%s", sentence(err)), true
	}
	if ae, ok := ledgerError(err); ok {
		return ae, true
	}
	return &apiError{status: http.StatusInternalServerError, code: codeServerError, desc: "the server failed; the log has the details"}, false
}

// sentence turns an error chain into a caller-facing sentence: package
// prefixes ("store: ", "sqlstore: x: ") are dropped, control characters
// removed and the length bounded.
func sentence(err error) string {
	s := err.Error()
	for _, p := range []string{"sqlstore: ", "store: ", "ledger: ", "httpserver: ", "admin: "} {
		s = strings.ReplaceAll(s, p, "")
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	const max = 300
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

// writeError sends err as a JSON error. Unexpected errors are logged with
// the request id; the caller sees only a generic sentence.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae, expected := toAPIError(err)
	if !expected {
		s.log.ErrorContext(r.Context(), "admin: request failed", "method", r.Method, "path", r.URL.Path,
			"request_id", httpserver.RequestIDFrom(r.Context()), "err", err)
	}
	if ae.challenge != "" {
		w.Header().Set("WWW-Authenticate", ae.challenge)
	}
	if ae.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	_ = httpserver.WriteJSON(w, ae.status, errorBody{Error: ae.code, Description: ae.desc})
}

// logDenied notes a refused request in the process log (never a token).
func (s *Server) logDenied(r *http.Request, ae *apiError) {
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "admin: request refused",
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", ae.status),
		slog.String("error", ae.code), slog.String("request_id", httpserver.RequestIDFrom(r.Context())))
}

func (errorBody) schemaName() string { return "Error" }
