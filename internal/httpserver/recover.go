package httpserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
)

// internalErrorBody is the only thing a client learns about a panic.
const internalErrorBody = `{"error":"server_error","error_description":"internal error"}`

// Recover turns a panic into a logged stack trace (ERROR) and a 500 OAuth
// style server_error. http.ErrAbortHandler is re-panicked untouched: it is
// how a handler asks net/http to drop the connection. When the handler
// already sent the header, a 500 is no longer possible; Recover then aborts
// the connection too, so the client sees a failed response instead of a
// truncated body that looks complete. Recover panics if logger is nil.
func Recover(logger *slog.Logger) Middleware {
	if logger == nil {
		panic("httpserver: Recover needs a logger")
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := recorderFor(w)
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if isAbort(v) {
					panic(v)
				}
				logger.LogAttrs(r.Context(), slog.LevelError, "panic serving request",
					slog.String("panic", fmt.Sprint(v)),
					slog.String("stack", string(debug.Stack())),
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.String("request_id", RequestIDFrom(r.Context())),
				)
				if rec.wroteHeader() {
					panic(http.ErrAbortHandler)
				}
				h := rec.Header()
				for k := range h {
					if !keepOnError(k) {
						delete(h, k)
					}
				}
				writeInternalError(rec)
			}()
			next.ServeHTTP(rec, r)
		})
	}
}

func isAbort(v any) bool {
	err, ok := v.(error)
	return ok && errors.Is(err, http.ErrAbortHandler)
}

// keepOnError names the headers that survive when Recover replaces a
// half-built response: the ones the shell itself sets. Anything else a
// handler set before panicking (Set-Cookie, Location, a Content-Type) must
// not leak onto the 500.
func keepOnError(key string) bool {
	switch key {
	case RequestIDHeader, "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options",
		"Content-Security-Policy", "Strict-Transport-Security", "Connection":
		return true
	}
	return false
}

// writeInternalError writes the generic 500 body.
func writeInternalError(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", jsonContentType)
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write([]byte(internalErrorBody))
}
