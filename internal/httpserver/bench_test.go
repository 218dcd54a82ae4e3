package httpserver_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/openxaa/xaa/internal/httpserver"
)

// BenchmarkMiddlewareChain measures the whole public chain a Server
// installs (request id, access log, metrics, recover, security headers,
// body limit, probe routing) around a trivial handler. "bare" is the same
// handler alone, so the difference is the chain's cost.
func BenchmarkMiddlewareChain(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})
	newChain := func(b *testing.B, h slog.Handler) http.Handler {
		srv, err := httpserver.New(httpserver.Options{
			Name: "bench", Addr: "127.0.0.1:0", Handler: mux,
			Registry: prometheus.NewRegistry(), Logger: slog.New(h),
		})
		if err != nil {
			b.Fatal(err)
		}
		return srv.Handler()
	}
	cases := []struct {
		name    string
		handler func(*testing.B) http.Handler
	}{
		{"bare", func(*testing.B) http.Handler { return mux }},
		{"chain/json-log", func(b *testing.B) http.Handler { return newChain(b, slog.NewJSONHandler(io.Discard, nil)) }},
		{"chain/log-disabled", func(b *testing.B) http.Handler { return newChain(b, slog.DiscardHandler) }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			h := c.handler(b)
			req := httptest.NewRequest(http.MethodGet, "/hello?code=x", nil)
			req.Header.Set("X-Request-Id", "bench-1")
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
}
