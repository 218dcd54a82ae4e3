package gateway

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// childPID asks the stdio server of a session for its process id.
func childPID(t *testing.T, cs *mcp.ClientSession) int {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "pid", Arguments: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(res.Content[0].(*mcp.TextContent).Text)
	if err != nil || pid == os.Getpid() {
		t.Fatalf("pid = %v, %v; want a child's", pid, err)
	}
	return pid
}

// waitGone waits until the process has exited (and been reaped).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("process %d is still running", pid)
}

// waitSessions waits until the stdio route has n live children.
func waitSessions(t *testing.T, s *stdioUpstream, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s.Sessions() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d live stdio sessions, want %d", s.Sessions(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (w *world) stdio() *stdioUpstream {
	for _, rt := range w.gw.routes {
		if rt.stdio != nil {
			return rt.stdio
		}
	}
	w.t.Fatal("no stdio route")
	return nil
}

// TestStdioSessionPerChild: each MCP session gets its own process; DELETE
// ends the session and its process; the child's stderr goes to the log.
func TestStdioSessionPerChild(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	tok := w.token(pathStdio, "crm:read")
	a, b := w.connect(t, pathStdio, tok), w.connect(t, pathStdio, tok)
	pa, pb := childPID(t, a), childPID(t, b)
	if pa == pb {
		t.Fatalf("two sessions share process %d", pa)
	}
	if a.ID() == b.ID() {
		t.Fatal("two sessions share an id")
	}
	if err := a.Close(); err != nil { // the go-sdk client sends DELETE
		t.Fatal(err)
	}
	waitGone(t, pa)
	if err := syscall.Kill(pb, 0); err != nil {
		t.Errorf("the other session's process died too: %v", err)
	}
	if _, err := b.CallTool(t.Context(), &mcp.CallToolParams{Name: "search_customers", Arguments: map[string]any{"query": "z"}}); err != nil {
		t.Errorf("the other session broke: %v", err)
	}
	logs := w.logs.String()
	for _, want := range []string{"stdio test server ready", "stdio MCP server started", "ended by the client (DELETE)"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
}

// TestStdioChildLimit: past max_children a new session is refused with a
// clear 503, and a slot frees when a session ends.
func TestStdioChildLimit(t *testing.T) {
	t.Parallel()
	w := newWorld(t, &worldOptions{edit: func(_ *world, o *Options) {
		o.Routes[2].MaxChildren = 2
	}})
	tok := w.token(pathStdio, "crm:read")
	first := w.session(pathStdio, tok)
	w.session(pathStdio, tok)
	r := w.post(pathStdio, tok, "", initBody)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" ||
		!strings.Contains(r.body, "maximum of 2 sessions") {
		t.Fatalf("third session: %d %q %s; want 503 with Retry-After and a sentence", r.status, r.header.Get("Retry-After"), r.body)
	}
	req, _ := http.NewRequest(http.MethodDelete, w.gwURL+pathStdio, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Mcp-Session-Id", first)
	if r := w.do(req); r.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d", r.status)
	}
	waitSessions(t, w.stdio(), 1)
	w.session(pathStdio, tok)
}

// TestStdioIdleTimeoutAndShutdown: an idle session's process is ended; at
// Close every remaining process is.
func TestStdioIdleTimeoutAndShutdown(t *testing.T) {
	t.Parallel()
	w := newWorld(t, &worldOptions{edit: func(_ *world, o *Options) {
		o.Routes[2].IdleTimeout = 300 * time.Millisecond
	}})
	tok := w.token(pathStdio, "crm:read")
	sid := w.session(pathStdio, tok)
	waitSessions(t, w.stdio(), 0)
	if r := w.post(pathStdio, tok, sid, callBody(2, "search_customers")); r.status != http.StatusNotFound {
		t.Errorf("call on an idled-out session: %d, want 404", r.status)
	}
	if !strings.Contains(w.logs.String(), "reason=\"idle timeout\"") {
		t.Error("the idle timeout was not logged")
	}

	// A session with an open GET stream is not idle.
	cs := w.connect(t, pathStdio, tok)
	pid := childPID(t, cs)
	time.Sleep(600 * time.Millisecond)
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("a session with a listening client was idled out: %v", err)
	}
	if err := w.gw.Close(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	if n := w.stdio().Sessions(); n != 0 {
		t.Errorf("%d processes after Close", n)
	}
}

// TestStdioProtocolErrors: the bridge's own answers for requests that
// cannot reach a session.
func TestStdioProtocolErrors(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	tok := w.token(pathStdio, "crm:read")
	tests := []struct {
		name   string
		method string
		header map[string]string
		body   string
		status int
		want   string
	}{
		{"first request is not initialize", http.MethodPost, nil, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, 400, "start one with an initialize request"},
		{"unknown session", http.MethodPost, map[string]string{"Mcp-Session-Id": "nope"}, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, 404, "session"},
		{"GET without a session", http.MethodGet, map[string]string{"Accept": "text/event-stream"}, "", 400, "Mcp-Session-Id"},
		{"DELETE without a session", http.MethodDelete, nil, "", 400, "Mcp-Session-Id"},
		{"PUT", http.MethodPut, nil, "{}", 405, "not allowed"},
		{"wrong content type", http.MethodPost, map[string]string{"Content-Type": "text/plain"}, initBody, 415, "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(context.Background(), tt.method, w.gwURL+pathStdio, strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			r := w.do(req)
			if r.status != tt.status || !strings.Contains(r.body, tt.want) {
				t.Errorf("%d %s; want %d containing %q", r.status, r.body, tt.status, tt.want)
			}
		})
	}
	if n := w.stdio().Sessions(); n != 0 {
		t.Errorf("%d processes started by refused requests", n)
	}
}

// TestStdioCommandFails: a command that cannot start is a 502 without
// internals, logged, and leaves no slot taken.
func TestStdioCommandFails(t *testing.T) {
	t.Parallel()
	w := newWorld(t, &worldOptions{edit: func(_ *world, o *Options) {
		o.Routes[2].Command = []string{"/nonexistent/mcp-server"}
	}})
	tok := w.token(pathStdio, "crm:read")
	r := w.post(pathStdio, tok, "", initBody)
	if r.status != http.StatusBadGateway || strings.Contains(r.body, "nonexistent") {
		t.Errorf("%d %s; want 502 without the path", r.status, r.body)
	}
	if !strings.Contains(w.logs.String(), "/nonexistent/mcp-server") {
		t.Error("the cause was not logged")
	}
	if n := w.stdio().Sessions(); n != 0 {
		t.Errorf("%d slots taken", n)
	}
}
