package httpserver

import (
	"log/slog"
	"net/http"
	"time"
)

// AccessLog writes one INFO line per request: method, path, matched route,
// status, bytes, duration, request id and remote address.
//
// It deliberately logs URL.Path and never the raw query, headers or bodies:
// authorization codes, tokens and client secrets travel in exactly those
// places. remote_addr is the TCP peer; forwarding headers are not consulted.
// A request that panics past Recover (http.ErrAbortHandler) is logged with
// aborted=true. AccessLog panics if logger is nil.
func AccessLog(logger *slog.Logger) Middleware {
	if logger == nil {
		panic("httpserver: AccessLog needs a logger")
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !logger.Enabled(r.Context(), slog.LevelInfo) {
				next.ServeHTTP(w, r)
				return
			}
			start := time.Now()
			rec := recorderFor(w)
			completed := false
			defer func() {
				status := rec.status
				if status == 0 && completed {
					status = http.StatusOK // net/http sends 200 for an empty response
				}
				attrs := []slog.Attr{
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.String("route", r.Pattern),
					slog.Int("status", status),
					slog.Int64("bytes", rec.bytes),
					slog.Duration("duration", time.Since(start)),
					slog.String("request_id", RequestIDFrom(r.Context())),
					slog.String("remote_addr", r.RemoteAddr),
				}
				if !completed {
					attrs = append(attrs, slog.Bool("aborted", true))
				}
				logger.LogAttrs(r.Context(), slog.LevelInfo, "http request", attrs...)
			}()
			next.ServeHTTP(rec, r)
			completed = true
		})
	}
}
