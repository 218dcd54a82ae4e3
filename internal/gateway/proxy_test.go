package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestUpstreamFailuresAre502: an upstream that is down, or that refuses
// the gateway's credential, becomes a 502 JSON-RPC error that tells the
// client nothing internal, and never a challenge that would send the
// client to re-authorize. The cause goes to the log.
func TestUpstreamFailuresAre502(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*Route)
		log  string
	}{
		{"upstream down", func(r *Route) { r.UpstreamURL = "http://127.0.0.1:1/mcp" }, "connection refused"},
		{"credential refused", func(r *Route) { r.Credential = &Credential{Header: "Authorization", Value: "Bearer wrong"} }, "refused the gateway's credential"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, &worldOptions{noStdio: true, edit: func(_ *world, o *Options) { tt.edit(&o.Routes[0]) }})
			tok := w.token(pathHTTP, "crm:read")
			r := w.post(pathHTTP, tok, "", initBody)
			if r.status != http.StatusBadGateway {
				t.Fatalf("status %d, want 502 (%s)", r.status, r.body)
			}
			if r.header.Get("Www-Authenticate") != "" {
				t.Errorf("WWW-Authenticate %q passed on", r.header.Get("Www-Authenticate"))
			}
			var msg struct {
				JSONRPC string `json:"jsonrpc"`
				Error   struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(r.body), &msg); err != nil || msg.JSONRPC != "2.0" || msg.Error.Code != codeUpstream {
				t.Errorf("body %q is not the JSON-RPC upstream error", r.body)
			}
			for _, leak := range []string{"127.0.0.1", "refused", "dial", "401"} {
				if strings.Contains(r.body, leak) {
					t.Errorf("the body leaks %q: %s", leak, r.body)
				}
			}
			if !strings.Contains(w.logs.String(), tt.log) {
				t.Errorf("the log lacks %q", tt.log)
			}
		})
	}
}

// TestClientQueryNotForwarded: the upstream gets exactly its configured
// URL; a client's query string (which could smuggle parameters) is
// dropped.
func TestClientQueryNotForwarded(t *testing.T) {
	t.Parallel()
	w := newWorld(t, &worldOptions{noStdio: true})
	tok := w.token(pathHTTP, "crm:read")
	if r := w.post(pathHTTP+"?debug=1&x=y", tok, "", initBody); r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	uris := w.rec.requestURIs()
	if len(uris) != 1 || uris[0] != "/mcp" {
		t.Errorf("the upstream was asked for %q, want exactly /mcp", uris)
	}
}
