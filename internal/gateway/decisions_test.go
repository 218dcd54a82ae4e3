package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/mcpauth"
)

// TestD87UpstreamNeverSeesClientToken: an upstream that records every
// header of every request never sees the client's token, nor any other
// client credential; it sees exactly the configured credential.
func TestD87UpstreamNeverSeesClientToken(t *testing.T) {
	t.Parallel()
	w := newWorld(t, &worldOptions{noStdio: true})
	tok := w.token(pathHTTP, "crm:read crm:export", mfa)

	// A full go-sdk session (POSTs, the GET stream, DELETE at Close).
	cs := w.connect(t, pathHTTP, tok)
	if _, err := cs.ListTools(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "export_customers", Arguments: map[string]any{"query": "x"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: "crm://readme"}); err != nil {
		t.Fatal(err)
	}
	if err := cs.Close(); err != nil {
		t.Fatal(err)
	}
	// Raw requests with every other way a client could hand over a
	// credential.
	sid := w.session(pathHTTP, tok)
	r := w.post(pathHTTP, tok, sid, callBody(7, "search_customers"),
		"Cookie", "session="+tok, "Proxy-Authorization", "Bearer "+tok, "X-Forwarded-For", "203.0.113.9", "Forwarded", "for=203.0.113.9")
	if r.status != http.StatusOK {
		t.Fatalf("call: %d %s", r.status, r.body)
	}

	headers := w.rec.allHeaders()
	if len(headers) < 8 {
		t.Fatalf("the upstream saw only %d requests", len(headers))
	}
	methods := map[string]bool{}
	sig := tok[strings.LastIndex(tok, ".")+1:]
	for i, h := range headers {
		if got := h.Values("Authorization"); !slices.Equal(got, []string{"Bearer " + upstreamSecret}) {
			t.Errorf("request %d: Authorization = %q, want only the upstream credential", i, got)
		}
		for name, vals := range h {
			for _, v := range vals {
				if strings.Contains(v, tok) || strings.Contains(v, sig) {
					t.Errorf("request %d: header %s carries the client's token", i, name)
				}
			}
		}
		for _, name := range []string{"Cookie", "Proxy-Authorization", "X-Forwarded-For", "Forwarded"} {
			if h.Get(name) != "" {
				t.Errorf("request %d: %s was forwarded", i, name)
			}
		}
		if h.Get("Accept") != "" {
			methods["accept"] = true
		}
		if h.Get("Mcp-Session-Id") != "" {
			methods["session"] = true
		}
		if h.Get("Mcp-Protocol-Version") != "" {
			methods["version"] = true
		}
	}
	for _, k := range []string{"accept", "session", "version"} {
		if !methods[k] {
			t.Errorf("no upstream request carried the client's %s header", k)
		}
	}
}

// TestDeniedCallsNeverReachUpstream: a call refused for scope, step-up or
// an unknown tool is answered by the gateway and never forwarded, and
// every decision, allowed or denied, has exactly one audit record.
func TestDeniedCallsNeverReachUpstream(t *testing.T) {
	t.Parallel()
	w := newWorld(t, &worldOptions{noStdio: true})
	tok := w.token(pathHTTP, "crm:read crm:export") // no MFA
	sid := w.session(pathHTTP, tok)

	tests := []struct {
		tool     string
		status   int
		rule     string
		outcome  string
		upstream bool
	}{
		{"search_customers", http.StatusOK, "tool.allowed", "allow", true},
		{"delete_customers", http.StatusForbidden, "tool.scope", "deny", false},
		{"export_customers", http.StatusUnauthorized, "tool.step_up", "deny", false},
		{"secret_tool", http.StatusOK, "tool.unknown", "deny", false},
		{"search_customers", http.StatusOK, "tool.allowed", "allow", true},
	}
	for i, tt := range tests {
		r := w.post(pathHTTP, tok, sid, callBody(10+i, tt.tool))
		if r.status != tt.status {
			t.Errorf("%s: status %d, want %d (%s)", tt.tool, r.status, tt.status, r.body)
		}
		if tt.tool == "secret_tool" && !strings.Contains(r.body, "-32602") {
			t.Errorf("unknown tool answered %s, want JSON-RPC error -32602", r.body)
		}
	}
	if diff := cmp.Diff([]string{"search_customers", "search_customers"}, w.rec.calledTools()); diff != "" {
		t.Errorf("tools that reached the upstream (-want +got):\n%s", diff)
	}

	evs := w.toolCallAudits()
	if len(evs) != len(tests) {
		t.Fatalf("%d audit records, want %d (one per decision)", len(evs), len(tests))
	}
	for i, tt := range tests {
		ev := evs[i]
		if ev.Outcome != tt.outcome || ev.Rule != tt.rule || ev.Data["tool"] != tt.tool {
			t.Errorf("audit %d = %s/%s/%s, want %s/%s/%s", i, ev.Outcome, ev.Rule, ev.Data["tool"], tt.outcome, tt.rule, tt.tool)
		}
		if ev.Data["jti"] == "" || ev.Data["route"] != pathHTTP || ev.Data["resource"] != w.gwURL+pathHTTP || ev.Data["session"] != sid {
			t.Errorf("audit %d data = %v", i, ev.Data)
		}
		if ev.Subject != idpIssuer+"|"+alice || ev.ClientID != appClient || ev.Type != AuditToolCall {
			t.Errorf("audit %d = subject %q client %q type %q", i, ev.Subject, ev.ClientID, ev.Type)
		}
	}
	if got := evs[1].Data["missing_scopes"]; got != "crm:admin" {
		t.Errorf("missing_scopes = %q, want crm:admin", got)
	}
	// The token is referenced by jti only.
	for _, ev := range evs {
		b, _ := json.Marshal(ev)
		if strings.Contains(string(b), tok) {
			t.Error("an audit record holds the token")
		}
	}
}

// failingAuditor is the gateway's audit store after it went away: a real
// SQLite store that has been closed.
func closedStore(t *testing.T) Auditor {
	db := openStore(t, "closed.db")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestAuditFailureDeniesCall: when the decision cannot be recorded, the
// call is refused with 503 and never reaches the upstream (fail closed).
func TestAuditFailureDeniesCall(t *testing.T) {
	t.Parallel()
	w := newWorld(t, &worldOptions{noStdio: true, auditor: closedStore(t)})
	tok := w.token(pathHTTP, "crm:read")
	sid := w.session(pathHTTP, tok) // initialize is not a decision: no audit needed
	r := w.post(pathHTTP, tok, sid, callBody(2, "search_customers"))
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503 (%s)", r.status, r.body)
	}
	if got := w.rec.calledTools(); len(got) != 0 {
		t.Errorf("the upstream ran %v without an audit record", got)
	}
	if !strings.Contains(w.logs.String(), "audit tool call; refusing it") {
		t.Error("the audit failure was not logged")
	}
}

// TestSessionBoundToSubject: a session created with alice's token cannot be
// used with another user's token (mcpauth's binding, through the gateway).
func TestSessionBoundToSubject(t *testing.T) {
	t.Parallel()
	w := newWorld(t, &worldOptions{noStdio: true})
	sid := w.session(pathHTTP, w.token(pathHTTP, "crm:read"))
	bob := w.token(pathHTTP, "crm:read", func(c claims) { c["sub"] = "bob" })
	r := w.post(pathHTTP, bob, sid, callBody(3, "search_customers"))
	if r.status != http.StatusNotFound {
		t.Errorf("status %d, want 404 (%s)", r.status, r.body)
	}
	if got := w.rec.calledTools(); len(got) != 0 {
		t.Errorf("the upstream ran %v for another user's session", got)
	}
	evs := w.toolCallAudits()
	if len(evs) != 1 || evs[0].Rule != "session.subject_mismatch" || evs[0].Outcome != "deny" {
		t.Errorf("audit = %+v, want one session.subject_mismatch denial", evs)
	}
}

// TestAnonymousRefusalsAreBounded: refusals of tool calls without a usable
// token are recorded once per request and at a bounded rate, so neither
// one huge batch nor an anonymous flood turns into as many synchronous
// audit writes; what was left out is counted in the next record. Calls
// with a valid token are always recorded (see TestDeniedCallsNeverReachUpstream).
func TestAnonymousRefusalsAreBounded(t *testing.T) {
	t.Parallel()
	t.Run("one record per request", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, &worldOptions{noStdio: true})
		var batch []string
		for i := range 30 {
			batch = append(batch, callBody(i+1, "search_customers"))
		}
		r := w.post(pathHTTP, "", "", "["+strings.Join(batch, ",")+"]")
		if r.status != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", r.status)
		}
		if evs := w.toolCallAudits(); len(evs) != 1 || evs[0].Rule != "token.missing" || evs[0].Outcome != "deny" {
			t.Errorf("audit = %+v, want one token.missing denial", evs)
		}
	})
	t.Run("rate", func(t *testing.T) {
		t.Parallel()
		db := openStore(t, "anon.db")
		now := time.Unix(1_800_000_000, 0)
		d := newDecisionRecorder(pathHTTP, "https://gw.example.com/mcp", TxAudit(db), nil, slog.New(slog.DiscardHandler), func() time.Time { return now })
		refuse := func() {
			ctx := context.WithValue(t.Context(), noteKey{}, &requestNote{}) // a new request each time
			if err := d.record(ctx, mcpauth.Decision{Time: now, Method: "tools/call", Tool: "x", Rule: mcpauth.RuleTokenInvalid}); err != nil {
				t.Fatal(err)
			}
		}
		for range 100 {
			refuse()
		}
		evs, err := db.ListAudit(t.Context(), store.AuditFilter{Type: AuditToolCall, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != anonymousBurst {
			t.Fatalf("%d records at one instant, want the burst of %d", len(evs), anonymousBurst)
		}
		now = now.Add(time.Second)
		refuse()
		evs, _ = db.ListAudit(t.Context(), store.AuditFilter{Type: AuditToolCall, Limit: 1000})
		if got := evs[len(evs)-1].Data["unrecorded_before"]; !strings.HasPrefix(got, "60 refusals") {
			t.Errorf("unrecorded_before = %q, want 60 counted", got)
		}
		// A token-bearing denial is never rate limited.
		for range 50 {
			if err := d.record(t.Context(), mcpauth.Decision{Time: now, Method: "tools/call", Tool: "x", JTI: "j", Rule: "tool.scope"}); err != nil {
				t.Fatal(err)
			}
		}
		evs, _ = db.ListAudit(t.Context(), store.AuditFilter{Type: AuditToolCall, Limit: 1000})
		if len(evs) != anonymousBurst+1+50 {
			t.Errorf("%d records, want %d", len(evs), anonymousBurst+1+50)
		}
	})
}
