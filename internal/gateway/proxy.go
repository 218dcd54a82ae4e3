package gateway

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/openxaa/xaa/internal/httpserver"
)

// errUpstreamRefused means the upstream answered 401: it does not accept
// the credential the gateway injects. Passing its challenge on would make
// the client re-authorize in a loop for a problem only the operator can
// fix.
var errUpstreamRefused = errors.New("gateway: the upstream refused the gateway's credential (HTTP 401)")

// headersNeverForwarded are request headers that carry the client's
// credentials or our own forwarding view; the upstream is a different
// trust domain and gets none of them. Authorization is also removed by
// mcpauth, and hop-by-hop headers by httputil.ReverseProxy.
var headersNeverForwarded = []string{"Authorization", "Proxy-Authorization", "Cookie", "Forwarded", "X-Real-Ip"}

// defaultUpstreamTransport is the transport to HTTP upstreams. There is no
// response-header timeout: a tool call may legitimately run for minutes
// before the upstream answers; the client's cancellation ends it.
func defaultUpstreamTransport() *http.Transport {
	return &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
}

// newHTTPUpstream proxies a route to its streamable HTTP upstream. It is
// transparent for everything mcpauth does not govern: methods, bodies,
// Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, Accept and the
// status and headers of the answer. SSE answers are flushed event by event
// (httputil.ReverseProxy flushes text/event-stream immediately).
func newHTTPUpstream(route string, target *url.URL, transport http.RoundTripper, cred *Credential, log *slog.Logger) http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			out := pr.Out
			u := *target
			out.URL = &u // exactly the configured endpoint; the client's query is dropped
			out.Host = ""
			for _, h := range headersNeverForwarded {
				out.Header.Del(h)
			}
			if id := httpserver.RequestIDFrom(pr.In.Context()); id != "" {
				out.Header.Set(httpserver.RequestIDHeader, id)
			} else {
				out.Header.Del(httpserver.RequestIDHeader)
			}
			if cred != nil {
				out.Header.Set(cred.Header, cred.Value)
			}
		},
		Transport: transport,
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode == http.StatusUnauthorized {
				return errUpstreamRefused
			}
			// The upstream's own challenges are about its credential, not
			// the client's token.
			resp.Header.Del("Www-Authenticate")
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				log.DebugContext(r.Context(), "client went away before the upstream answered", "route", route)
				return
			}
			log.WarnContext(r.Context(), "upstream request failed", "route", route, "method", r.Method, "err", err,
				"request_id", httpserver.RequestIDFrom(r.Context()))
			writeJSONRPCError(w, http.StatusBadGateway, nil, codeUpstream, "the MCP server behind this gateway is unavailable")
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return rp
}
