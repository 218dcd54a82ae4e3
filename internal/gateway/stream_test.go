package gateway

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// sseEvent is one server-sent event.
type sseEvent struct{ id, event, data string }

// readEvent reads the next event of an SSE stream.
func readEvent(t *testing.T, r *bufio.Reader) sseEvent {
	t.Helper()
	var ev sseEvent
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read SSE: %v (so far %+v)", err, ev)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if ev.data != "" || ev.id != "" {
				return ev
			}
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.id = value
		case "event":
			ev.event = value
		case "data":
			ev.data += value
		}
	}
}

// TestSSEStreamingAndResumption: an SSE answer is passed on event by event
// while the tool is still running (nothing is buffered), and after the
// client drops the stream, a GET with Last-Event-ID through the gateway
// resumes it and delivers the result.
func TestSSEStreamingAndResumption(t *testing.T) {
	t.Parallel()
	w := newWorld(t, &worldOptions{noStdio: true})
	tok := w.token(pathHTTP, "crm:read")
	sid := w.session(pathHTTP, tok)

	ctx, cancel := context.WithCancel(t.Context())
	body := `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"slow","arguments":{},"_meta":{"progressToken":"p1"}}}`
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, w.gwURL+pathHTTP, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("call: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// The progress event arrives while the tool is blocked: the gateway
	// flushed it.
	first := readEvent(t, bufio.NewReader(resp.Body))
	<-w.gate.started
	if !strings.Contains(first.data, "notifications/progress") || first.id == "" {
		t.Fatalf("first event = %+v, want a progress notification with an id", first)
	}
	// The client drops the stream; the tool then finishes.
	cancel()
	resp.Body.Close()
	close(w.gate.release)

	get, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, w.gwURL+pathHTTP, nil)
	get.Header.Set("Accept", "text/event-stream")
	get.Header.Set("Authorization", "Bearer "+tok)
	get.Header.Set("Mcp-Session-Id", sid)
	get.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	get.Header.Set("Last-Event-ID", first.id)
	resp, err = http.DefaultClient.Do(get)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("resume: %d %s", resp.StatusCode, b)
	}
	next := readEvent(t, bufio.NewReader(resp.Body))
	if !strings.Contains(next.data, `"id":42`) || !strings.Contains(next.data, "slow:done") || next.id == first.id {
		t.Errorf("resumed event = %+v, want the result of call 42", next)
	}
	// The upstream saw the Last-Event-ID.
	seen := false
	for _, h := range w.rec.allHeaders() {
		if h.Get("Last-Event-Id") == first.id {
			seen = true
		}
	}
	if !seen {
		t.Error("the upstream never saw the Last-Event-ID header")
	}
}

// TestDeleteEndsSession: DELETE passes through, and the session is gone
// afterwards (404 from the upstream, passed on).
func TestDeleteEndsSession(t *testing.T) {
	t.Parallel()
	w := newWorld(t, &worldOptions{noStdio: true})
	tok := w.token(pathHTTP, "crm:read")
	sid := w.session(pathHTTP, tok)
	req, _ := http.NewRequest(http.MethodDelete, w.gwURL+pathHTTP, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Mcp-Session-Id", sid)
	if r := w.do(req); r.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	if r := w.post(pathHTTP, tok, sid, callBody(2, "search_customers")); r.status != http.StatusNotFound {
		t.Errorf("call after DELETE: %d %s, want 404", r.status, r.body)
	}
}

// TestStreamsOutliveServerTimeouts: the gateway server's write timeout
// bounds each write, not a whole proxied answer, so a tool call that runs
// longer than it still answers; and a GET stream idle for longer than the
// read timeout still delivers the next server-initiated message.
func TestStreamsOutliveServerTimeouts(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	w := newWorld(t, &worldOptions{noStdio: true, readTimeout: timeout, writeTimeout: timeout})
	tok := w.token(pathHTTP, "crm:read")
	sid := w.session(pathHTTP, tok)

	// The deadline only turns a hang into a failure.
	sctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	get, _ := http.NewRequestWithContext(sctx, http.MethodGet, w.gwURL+pathHTTP, nil)
	get.Header.Set("Accept", "text/event-stream")
	get.Header.Set("Authorization", "Bearer "+tok)
	get.Header.Set("Mcp-Session-Id", sid)
	get.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	stream, err := http.DefaultClient.Do(get)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if stream.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d", stream.StatusCode)
	}

	type answer struct {
		status int
		body   string
		err    error
	}
	done := make(chan answer, 1)
	go func() {
		body := `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"slow","arguments":{}}}`
		req, _ := http.NewRequest(http.MethodPost, w.gwURL+pathHTTP, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- answer{resp.StatusCode, string(b), err}
	}()
	select {
	case <-w.gate.started:
	case a := <-done:
		t.Fatalf("the slow call ended before it started: %d %s %v", a.status, a.body, a.err)
	}
	time.Sleep(3 * timeout) // the call outlives the write timeout
	close(w.gate.release)
	select {
	case a := <-done:
		if a.err != nil || a.status != http.StatusOK || !strings.Contains(a.body, "slow:done") {
			t.Errorf("long call: %d %s %v", a.status, a.body, a.err)
		}
	case <-time.After(30 * time.Second): // a guard against hanging, not a speed check
		t.Fatal("the long call never answered")
	}

	// Long after the read and write timeouts, a server-initiated
	// notification still reaches the idle GET stream.
	mcp.AddTool(w.mcp, &mcp.Tool{Name: "late_tool"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{}, nil, nil
	})
	if ev := readEvent(t, bufio.NewReader(stream.Body)); !strings.Contains(ev.data, "notifications/tools/list_changed") {
		t.Errorf("GET stream event = %+v, want tools/list_changed", ev)
	}
}
