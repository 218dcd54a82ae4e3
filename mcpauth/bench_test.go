package mcpauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkMiddlewareToolsCall measures what the middleware adds to one
// tools/call with local JWT validation (ES256): "bare" is the same request
// straight to the handler, so the difference is the middleware's cost;
// "verify-only" is the part of it spent verifying the token.
//
//	go test -run '^$' -bench BenchmarkMiddlewareToolsCall -benchmem ./mcpauth/
func BenchmarkMiddlewareToolsCall(b *testing.B) {
	as := newTestAS(b)
	m, _ := newTestMiddleware(b, as, func(o *Options) { o.OnDecision = nil })
	token := "Bearer " + as.token(b, "crm:read", nil)
	body := callBody(1, "search_customers")
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`))
	})
	run := func(b *testing.B, h http.Handler) {
		b.ReportAllocs()
		for b.Loop() {
			req := httptest.NewRequest(http.MethodPost, "/mcp/crm", strings.NewReader(body))
			req.Header.Set("Authorization", token)
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	}
	b.Run("bare", func(b *testing.B) { run(b, next) })
	b.Run("mcpauth", func(b *testing.B) { run(b, m.Wrap(next)) })
	// The share of the token verification alone (ES256 and strict claims).
	b.Run("verify-only", func(b *testing.B) {
		v := as.verifier(b, nil)
		raw := strings.TrimPrefix(token, "Bearer ")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(context.Background(), raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
