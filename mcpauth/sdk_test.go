package mcpauth

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// sdkEnv is a real go-sdk MCP server behind the middleware on loopback.
type sdkEnv struct {
	as  *testAS
	m   *Middleware
	log *decisionLog
	crm *crmServer
	up  *upstream
	url string
}

func newSDKEnv(t *testing.T, jsonResponse bool) *sdkEnv {
	t.Helper()
	e := &sdkEnv{as: newTestAS(t), crm: newCRMServer(), up: &upstream{}}
	e.m, e.log = newTestMiddleware(t, e.as, nil)
	mux := http.NewServeMux()
	mux.Handle("/mcp/crm", e.m.Wrap(e.up.wrap(e.crm.handler(jsonResponse))))
	mux.Handle(e.m.MetadataPath(), e.m.MetadataHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.url = srv.URL + "/mcp/crm"
	return e
}

func toolNames(res *mcp.ListToolsResult) []string {
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

// forEachMode runs f against the go-sdk handler in application/json and in
// text/event-stream response mode.
func forEachMode(t *testing.T, f func(t *testing.T, e *sdkEnv)) {
	for _, mode := range []struct {
		name string
		json bool
	}{{"json", true}, {"sse", false}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			f(t, newSDKEnv(t, mode.json))
		})
	}
}

func TestSDKToolsListFiltered(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, e *sdkEnv) {
		ctx := context.Background()
		for _, tc := range []struct {
			scope string
			want  []string
		}{
			{"", []string{"ping"}},
			{"crm:read", []string{"ping", "search_customers"}},
			// A tool needing step-up stays listed: the client may call it
			// and be challenged.
			{"crm:read crm:write crm:export", []string{"delete_customer", "export_customers", "ping", "search_customers"}},
		} {
			cs, err := connect(t, e.url, e.as.token(t, tc.scope, nil))
			if err != nil {
				t.Fatal(err)
			}
			res, err := cs.ListTools(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			// debug_dump is served but governed by no rule: never listed.
			if got := toolNames(res); !slices.Equal(got, tc.want) {
				t.Errorf("scope %q: tools = %v, want %v", tc.scope, got, tc.want)
			}
			// The tool entries keep their other members.
			for _, tool := range res.Tools {
				if tool.Description != "the "+tool.Name+" tool" || tool.InputSchema == nil {
					t.Errorf("tool %s lost members: %+v", tool.Name, tool)
				}
			}
			cs.Close()
		}
	})
}

func TestSDKForbiddenCallNeverRuns(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, e *sdkEnv) {
		ctx := context.Background()
		tok := e.as.token(t, "crm:read", nil)
		cs, err := connect(t, e.url, tok)
		if err != nil {
			t.Fatal(err)
		}
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "search_customers", Arguments: map[string]any{"query": "acme"}})
		if err != nil || res.IsError {
			t.Fatalf("allowed call: %v %+v", err, res)
		}
		if e.crm.count("search_customers") != 1 {
			t.Fatalf("search_customers ran %d times", e.crm.count("search_customers"))
		}
		// An unknown tool: a JSON-RPC error, the session stays usable.
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "debug_dump"}); err == nil || !strings.Contains(err.Error(), "tool not available") {
			t.Errorf("debug_dump: %v", err)
		}
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "search_customers"}); err != nil {
			t.Errorf("session broken after an unknown tool: %v", err)
		}
		cs.Close()

		// Missing scope (403) and step-up (401) each end the go-sdk
		// session (it has no OAuth handler here); use one per call.
		for _, tc := range []struct{ tool, scope, want string }{
			{"delete_customer", "crm:read", "Forbidden"},
			{"export_customers", "crm:read", "Forbidden"},
			{"export_customers", "crm:export", "Unauthorized"},
		} {
			cs, err := connect(t, e.url, e.as.token(t, tc.scope, func(c map[string]any) { c["acr"] = "urn:openxaa:acr:pwd" }))
			if err != nil {
				t.Fatal(err)
			}
			_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: tc.tool})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s with %q: err = %v, want %s", tc.tool, tc.scope, err, tc.want)
			}
			cs.Close()
		}
		for _, tool := range []string{"delete_customer", "export_customers", "debug_dump"} {
			if n := e.crm.count(tool); n != 0 {
				t.Errorf("%s ran %d times", tool, n)
			}
		}
		if e.crm.count("search_customers") != 2 {
			t.Errorf("search_customers ran %d times", e.crm.count("search_customers"))
		}
		// Tool handlers see the verified caller through the go-sdk.
		e.crm.mu.Lock()
		users := slices.Clone(e.crm.users)
		e.crm.mu.Unlock()
		if !slices.Equal(users, []string{testSubject, testSubject}) {
			t.Errorf("tool handlers saw users %v", users)
		}
		// D87: no request the server saw carried Authorization.
		if e.up.calls.Load() == 0 || e.up.sawAuth.Load() != 0 || e.up.sawNoInfo.Load() != 0 {
			t.Errorf("upstream: %d requests, %d with Authorization, %d without TokenInfo",
				e.up.calls.Load(), e.up.sawAuth.Load(), e.up.sawNoInfo.Load())
		}
		var rules []string
		for _, d := range e.log.all() {
			rules = append(rules, d.Rule)
		}
		want := []string{RuleAllowed, RuleUnknownTool, RuleAllowed, RuleScope, RuleScope, RuleStepUp}
		if !slices.Equal(rules, want) {
			t.Errorf("decision rules = %v, want %v", rules, want)
		}
	})
}

func TestSDKSessionHijackRefused(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, e *sdkEnv) {
		ctx := context.Background()
		cs, err := connect(t, e.url, e.as.token(t, "crm:read", nil))
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		sid := cs.ID()
		if sid == "" {
			t.Fatal("no session id")
		}
		body := callBody(99, "search_customers")
		for _, tc := range []struct {
			name string
			edit func(c map[string]any)
		}{
			{"another subject", func(c map[string]any) { c["sub"] = "mallory" }},
			{"another client", func(c map[string]any) { c["client_id"] = "app2" }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				for _, method := range []string{http.MethodPost, http.MethodGet, http.MethodDelete} {
					var rb io.Reader
					if method == http.MethodPost {
						rb = strings.NewReader(body)
					}
					req, _ := http.NewRequest(method, e.url, rb)
					req.Header.Set("Authorization", "Bearer "+e.as.token(t, "crm:read", tc.edit))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Accept", "application/json, text/event-stream")
					req.Header.Set("Mcp-Session-Id", sid)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(b), "session not found") {
						t.Errorf("%s: %d %s", method, resp.StatusCode, b)
					}
				}
			})
		}
		// An unknown session id is refused the same way.
		req, _ := http.NewRequest(http.MethodPost, e.url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.as.token(t, "crm:read", nil))
		req.Header.Set("Mcp-Session-Id", "made-up")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("unknown session: %d", resp.StatusCode)
		}
		if e.crm.count("search_customers") != 0 {
			t.Fatalf("a hijacked call ran")
		}
		// The owner, with a fresh token of the same principal, goes on.
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "search_customers"}); err != nil {
			t.Errorf("owner after hijack attempts: %v", err)
		}
		var mismatches int
		for _, d := range e.log.all() {
			if d.Rule == RuleSessionMismatch {
				mismatches++
				if d.Allowed || d.SessionID != sid {
					t.Errorf("decision = %+v", d)
				}
			}
		}
		if mismatches != 6 {
			t.Errorf("session.subject_mismatch decisions = %d, want 6", mismatches)
		}
	})
}

// TestSDKEventStreamStaysLive checks that the SSE rewriter forwards each
// event as the server flushes it, not at the end of the response: a tool
// that sends a progress notification and then waits for the test to have
// read it can only finish if the notification got through.
func TestSDKEventStreamStaysLive(t *testing.T) {
	t.Parallel()
	as := newTestAS(t)
	m, _ := newTestMiddleware(t, as, nil)
	release := make(chan struct{})
	server := mcp.NewServer(&mcp.Implementation{Name: "slow", Version: "v1"}, nil)
	server.AddTool(&mcp.Tool{Name: "search_customers", InputSchema: map[string]any{"type": "object"}},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: "p1", Message: "half way", Progress: 1, Total: 2})
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil
		})
	server.AddTool(&mcp.Tool{Name: "debug_dump", InputSchema: map[string]any{"type": "object"}},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{}, nil
		})
	srv := httptest.NewServer(m.Wrap(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)))
	defer srv.Close()
	tok := "Bearer " + as.token(t, "crm:read", nil)

	// A safety net, not a measurement: a stream that is not live would
	// otherwise block until the tool's release, which never comes.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	do := func(body, sid string) *http.Response {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader(body))
		req.Header.Set("Authorization", tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", "2025-03-26")
		if sid != "" {
			req.Header.Set("Mcp-Session-Id", sid)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// Protocol 2025-03-26 still allows batches: one POST lists tools (so
	// the rewriter is active on its stream) and calls the slow tool.
	resp := do(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`, "")
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	sid := resp.Header.Get("Mcp-Session-Id")
	resp = do(`{"jsonrpc":"2.0","method":"notifications/initialized"}`, sid)
	resp.Body.Close()
	resp = do(`[{"jsonrpc":"2.0","id":2,"method":"tools/list"},`+
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"search_customers","_meta":{"progressToken":"p1"}}}]`, sid)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d, Content-Type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	r := bufio.NewReader(resp.Body)
	var seen strings.Builder
	for !strings.Contains(seen.String(), "half way") {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before the progress event: %v; read %q", err, seen.String())
		}
		seen.WriteString(line)
	}
	close(release)
	rest, err := io.ReadAll(r)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if !strings.Contains(string(rest), `"done"`) {
		t.Errorf("final event missing: %q", rest)
	}
	all := seen.String() + string(rest)
	if !strings.Contains(all, `"search_customers"`) || strings.Contains(all, "debug_dump") {
		t.Errorf("tools/list on the stream not filtered: %q", all)
	}
}
