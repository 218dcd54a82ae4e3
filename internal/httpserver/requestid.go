package httpserver

import (
	"context"
	"crypto/rand"
	"net/http"
)

// RequestIDHeader carries the request id in both directions.
const RequestIDHeader = "X-Request-Id"

// maxRequestIDLen bounds what we copy from a client into every log line.
const maxRequestIDLen = 64

type requestIDKey struct{}

// RequestID makes sure every request has an id that is safe to log: an
// incoming X-Request-Id is kept only when it is a single value of at most 64
// characters from [A-Za-z0-9._-] (so a client cannot inject log syntax or
// bloat logs); otherwise a random 128-bit id is generated. The id is echoed
// in the response and available to handlers through RequestIDFrom.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var id string
		if vals := r.Header[RequestIDHeader]; len(vals) == 1 && validRequestID(vals[0]) {
			id = vals[0]
		} else {
			id = rand.Text()
		}
		w.Header()[RequestIDHeader] = []string{id}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

// RequestIDFrom returns the id RequestID stored in ctx, or "" outside it.
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
