package main

import (
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// startBridge runs `xaa bridge endpoint` with pipes for stdin and stdout
// and returns a go-sdk transport that talks to it, as a desktop client
// that launched it would.
func startBridge(t *testing.T, w *cliWorld, endpoint string) (mcp.Transport, *syncBuffer, <-chan error) {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	stderr := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		err := run(t.Context(), []string{"xaa", "bridge", endpoint, "--profile", w.profile, "--no-login"},
			func(string) string { return "" }, inR, outW, stderr)
		outW.Close()
		done <- err
	}()
	t.Cleanup(func() { inW.Close() })
	return &mcp.IOTransport{Reader: outR, Writer: inW}, stderr, done
}

// TestBridge: a stdio MCP client reaches the governed files server through
// `xaa bridge`, for an older protocol version (with the standalone stream,
// on which a tools/list_changed notification arrives) and for the newest;
// the bridge exits cleanly when stdin closes.
func TestBridge(t *testing.T) {
	t.Parallel()
	w := newCLIWorld(t)
	w.login(t)
	ctx := t.Context()

	for _, version := range []string{"2025-11-25", ""} {
		t.Run("protocol "+version, func(t *testing.T) {
			w.sessionRequests()
			transport, stderr, done := startBridge(t, w, w.files)
			changed := make(chan struct{}, 4)
			cl := mcp.NewClient(&mcp.Implementation{Name: "desktop", Version: "1"}, &mcp.ClientOptions{
				ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { changed <- struct{}{} },
			})
			cs, err := cl.Connect(ctx, transport, &mcp.ClientSessionOptions{ProtocolVersion: version})
			if err != nil {
				t.Fatalf("connect through the bridge: %v\n%s", err, stderr.String())
			}
			if version != "" && cs.InitializeResult().ProtocolVersion != version {
				t.Errorf("negotiated %q, want %q", cs.InitializeResult().ProtocolVersion, version)
			}
			names := toolNames(t, ctx, cs)
			if !slices.Contains(names, "echo") {
				t.Fatalf("tools through the bridge: %v", names)
			}
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"x": 1}})
			if err != nil || res.IsError {
				t.Fatalf("echo through the bridge: %v %+v", err, res)
			}
			if text := res.Content[0].(*mcp.TextContent).Text; text != `{"x":1}` {
				t.Errorf("echo returned %q", text)
			}

			if version != "" {
				// A server-initiated notification outside any request
				// travels on the standalone GET stream.
				w.server.AddTool(&mcp.Tool{Name: "later", InputSchema: json.RawMessage(`{"type":"object"}`)},
					func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
						return &mcp.CallToolResult{}, nil
					})
				select {
				case <-changed:
				case <-time.After(15 * time.Second):
					t.Fatalf("no tools/list_changed through the bridge\n%s", stderr.String())
				}
				if names := toolNames(t, ctx, cs); !slices.Contains(names, "later") {
					t.Errorf("tools after the change: %v", names)
				}
				// Every request after initialization, the standalone GET
				// included, carried the negotiated version.
				seen := w.sessionRequests()
				if !slices.Contains(seen, "GET "+version) {
					t.Errorf("no standalone GET with the version: %v", seen)
				}
				for _, r := range seen {
					if !strings.HasSuffix(r, " "+version) {
						t.Errorf("request %q lacks MCP-Protocol-Version %s", r, version)
					}
				}
			}

			cs.Close()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("bridge ended with %v\n%s", err, stderr.String())
				}
			case <-time.After(15 * time.Second):
				t.Fatal("the bridge did not exit when its client went away")
			}
		})
	}
}

// TestBridgeDenied: when the IdP denies the connection the stdio client
// gets a JSON-RPC error that says so, not a hang and not a fallback.
func TestBridgeDenied(t *testing.T) {
	t.Parallel()
	w := newCLIWorld(t)
	w.login(t)
	transport, stderr, _ := startBridge(t, w, w.pending)
	_, err := mcp.NewClient(&mcp.Implementation{Name: "desktop", Version: "1"}, nil).Connect(t.Context(), transport, nil)
	if err == nil || !strings.Contains(err.Error(), "access denied by your organisation's identity provider (access_denied)") {
		t.Fatalf("connect to the pending server: %v\n%s", err, stderr.String())
	}
}

func toolNames(t *testing.T, ctx context.Context, cs *mcp.ClientSession) []string {
	t.Helper()
	var names []string
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tool.Name)
	}
	return names
}
