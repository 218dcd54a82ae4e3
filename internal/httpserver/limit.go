package httpserver

import (
	"errors"
	"net/http"
)

// DefaultBodyLimit caps request bodies when nothing else is configured. It is
// sized for OAuth token requests, which carry a few assertions at most.
const DefaultBodyLimit int64 = 64 << 10

// LimitBody caps every request body at limit bytes (DefaultBodyLimit when
// limit <= 0; there is deliberately no "unlimited"). Reading past the cap
// fails with *http.MaxBytesError, so r.ParseForm and DecodeJSON return an
// error the handler can recognise with IsBodyTooLarge, and net/http closes
// the connection after the response.
//
// Limits nest by tightening: a route wrapped in LimitBody(4<<10) inside a
// server-wide LimitBody(64<<10) gets 4 KiB, never more. A route that needs a
// larger body needs a larger server-wide Options.BodyLimit.
//
// The body is replaced on r itself rather than on a copy, so that the
// Pattern the ServeMux records on r remains visible to outer middleware.
func LimitBody(limit int64) Middleware {
	if limit <= 0 {
		limit = DefaultBodyLimit
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = http.MaxBytesReader(innermost(w), r.Body, limit)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// IsBodyTooLarge reports whether err came from reading past a LimitBody or
// DecodeJSON cap, so handlers can answer 413 (or invalid_request) rather
// than a generic 400.
func IsBodyTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}
