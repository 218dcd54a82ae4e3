package loadgen

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// BenchmarkRun drives a trivial handler: it shows Run's own overhead and
// that every built request is sent exactly once.
func BenchmarkRun(b *testing.B) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	Run(b, func(int) *http.Request {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		return req
	}, nil)
	if got := hits.Load(); got != int64(b.N) {
		b.Fatalf("server saw %d requests, want b.N = %d", got, b.N)
	}
}
