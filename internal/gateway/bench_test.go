package gateway

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// discardAudit records nothing. It exists only so the benchmark can show
// how much of the gateway's latency is the audit write; no test uses it.
type discardAudit struct{}

func (discardAudit) AppendAudit(context.Context, *store.AuditEvent) error { return nil }

// BenchmarkGatewayToolsCall measures one tools/call over loopback, on an
// established MCP session, sent straight to the go-sdk upstream ("direct")
// and through the gateway with local JWT validation, the revocation check,
// the per-tool policy and a durable SQLite audit record ("gateway"), and
// the same without the audit write ("gateway_noaudit", to isolate its
// cost). It reports the p50 and p99 of the per-request durations; the
// gateway's added latency is the difference to "direct". allocs/op counts
// the whole process (client, gateway and upstream): the gateway's own
// allocations are the difference as well.
//
//	go test -run '^$' -bench BenchmarkGatewayToolsCall -benchtime 3000x ./internal/gateway
func BenchmarkGatewayToolsCall(b *testing.B) {
	w := newWorld(b, &worldOptions{noStdio: true, quiet: true})
	noAudit := newWorld(b, &worldOptions{noStdio: true, quiet: true, auditor: discardAudit{}})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}

	run := func(b *testing.B, url, auth, session string) {
		body := callBody(1, "search_customers")
		do := func() {
			req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("Authorization", auth)
			req.Header.Set("Mcp-Session-Id", session)
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(out), "search_customers:q") {
				b.Fatalf("%d %s", resp.StatusCode, out)
			}
		}
		for range 50 { // warm connections, caches and the JWKS
			do()
		}
		d := make([]time.Duration, 0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			start := time.Now()
			do()
			d = append(d, time.Since(start))
		}
		b.StopTimer()
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)*50/100].Microseconds()), "p50-µs")
		b.ReportMetric(float64(d[min(len(d)*99/100, len(d)-1)].Microseconds()), "p99-µs")
	}

	b.Run("direct", func(b *testing.B) {
		sid := directSession(b, client, w.upstream)
		run(b, w.upstream, "Bearer "+upstreamSecret, sid)
	})
	b.Run("gateway", func(b *testing.B) {
		tok := w.token(pathHTTP, "crm:read")
		run(b, w.gwURL+pathHTTP, "Bearer "+tok, w.session(pathHTTP, tok))
	})
	b.Run("gateway_noaudit", func(b *testing.B) {
		tok := noAudit.token(pathHTTP, "crm:read")
		run(b, noAudit.gwURL+pathHTTP, "Bearer "+tok, noAudit.session(pathHTTP, tok))
	})
}

// directSession opens an MCP session on the upstream itself.
func directSession(b *testing.B, c *http.Client, url string) string {
	b.Helper()
	post := func(body, sid string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+upstreamSecret)
		if sid != "" {
			req.Header.Set("Mcp-Session-Id", sid)
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		}
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	sid := post(initBody, "").Header.Get("Mcp-Session-Id")
	if sid == "" {
		b.Fatal("no session")
	}
	post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`, sid)
	return sid
}

// BenchmarkAuditAppend is the audit write alone, as the gateway makes it
// (one transaction per record on SQLite with synchronous=FULL).
//
//	go test -run '^$' -bench BenchmarkAuditAppend ./internal/gateway
func BenchmarkAuditAppend(b *testing.B) {
	db := openStore(b, "bench.db")
	a := TxAudit(db)
	ev := store.AuditEvent{Type: AuditToolCall, Actor: appClient, Subject: alice, ClientID: appClient, Outcome: "allow", Rule: "tool.allowed",
		Data: map[string]string{"jti": "j", "tool": "search_customers", "route": pathHTTP, "resource": "https://gw.example.com/mcp", "session": "s"}}
	d := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		e := ev
		start := time.Now()
		if err := a.AppendAudit(context.Background(), &e); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)*50/100].Microseconds()), "p50-µs")
	b.ReportMetric(float64(d[min(len(d)*99/100, len(d)-1)].Microseconds()), "p99-µs")
}
