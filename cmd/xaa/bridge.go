package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/openxaa/xaa/xaaclient"
)

func newBridgeCommand(e *env) *cobra.Command {
	var f clientFlags
	c := &cobra.Command{
		Use:   "bridge MCP-URL",
		Short: "Serve a remote XAA-governed MCP server on stdio",
		Long: `bridge is a local stdio MCP server that forwards every message to the remote
MCP server at MCP-URL (streamable HTTP) and back, with Cross App Access
authorization: desktop clients configured for stdio servers use governed
servers with no secret in their configuration. For example:

  {"mcpServers": {"files": {"command": "xaa", "args": ["bridge", "https://gw.example.com/mcp/files"]}}}

Messages are relayed as they are (every method, capability and extension),
with a token from your XAA session on each request. Sign-in and step-up
prompts go to stderr; stdout carries only MCP. A request the client cannot
authorize (an administrator's denial, say) is answered with a JSON-RPC error
that says why; the bridge never tries another way in.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, _, err := newXAAClient(e, &f, false)
			if err != nil {
				return err
			}
			level := slog.LevelWarn
			if f.verbose {
				level = slog.LevelInfo
			}
			return runBridge(cmd.Context(), client, args[0], e.stdin, e.stdout, slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level})))
		},
	}
	f.register(c, true)
	return c
}

// Why a JSON-RPC pump and not a go-sdk server that proxies to a go-sdk
// client session: the pump relays every message byte for byte, so
// whatever the two ends negotiate (protocol version, capabilities,
// extensions, completions, subscriptions, sampling and elicitation
// requests from the server, progress, cancellation, methods that do not
// exist yet) works unchanged, and the bridge cannot drift from either
// side. A proxy server would re-implement each feature and could only
// offer what it knows. The go-sdk transports still do the protocol work
// on each side: newline-delimited JSON-RPC on stdio, and on HTTP the
// sessions, SSE streams and the xaaclient OAuthHandler. What the pump
// adds is what the go-sdk client session would otherwise do itself: the
// MCP-Protocol-Version header after initialization, and the standalone
// GET stream for server-initiated messages (protocol versions before
// 2026-07-28, which have one).

// bridgeErrorCode is the JSON-RPC error code of a request the bridge could
// not deliver (an implementation-defined server error, JSON-RPC 2.0 §5.1).
const bridgeErrorCode = -32001

// runBridge relays between the stdio MCP client on in/out and the remote
// server at endpoint until either side ends.
func runBridge(ctx context.Context, client *xaaclient.Client, endpoint string, in io.Reader, out io.Writer, log *slog.Logger) error {
	h, err := client.Handler(endpoint)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b := &bridge{endpoint: endpoint, handler: h, log: log}
	b.http = &http.Client{Transport: &versionHeader{base: http.DefaultTransport, version: &b.version}}
	remote, err := (&mcp.StreamableClientTransport{Endpoint: endpoint, OAuthHandler: h, HTTPClient: b.http,
		DisableStandaloneSSE: true}).Connect(ctx)
	if err != nil {
		return err
	}
	defer remote.Close()
	local, err := (&mcp.IOTransport{Reader: io.NopCloser(in), Writer: nopCloser{out}}).Connect(ctx)
	if err != nil {
		return err
	}
	defer local.Close()
	b.remote, b.local = remote, local

	done := make(chan error, 2)
	go func() { done <- b.up(ctx) }()
	go func() { done <- b.down(ctx) }()
	err = <-done
	cancel()
	if errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

type bridge struct {
	endpoint      string
	handler       *xaaclient.Handler
	http          *http.Client
	log           *slog.Logger
	remote, local mcp.Connection

	version    atomic.Value // string: the negotiated protocol version
	initMu     sync.Mutex
	initID     *jsonrpc.ID // the local client's initialize request
	standalone sync.Once
}

// up relays the local client's messages to the remote server. Calls are
// sent concurrently, as a client session would: over HTTP a call's Write
// returns only with the server's answer, and one slow tool must not hold
// up the next request or a cancellation. initialize, notifications and
// responses go in order. A call the remote side cannot take is answered
// locally with an error, so the client never waits for an answer that will
// not come.
func (b *bridge) up(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		msg, err := b.local.Read(ctx)
		if err != nil {
			return err
		}
		req, isReq := msg.(*jsonrpc.Request)
		switch {
		case isReq && req.Method == "initialize" && req.IsCall():
			id := req.ID
			b.initMu.Lock()
			b.initID = &id
			b.initMu.Unlock()
		case isReq && req.Method == "notifications/initialized":
			b.startStandalone(ctx)
		}
		if isReq && req.IsCall() && req.Method != "initialize" {
			wg.Go(func() { b.forward(ctx, msg) })
			continue
		}
		b.forward(ctx, msg)
	}
}

func (b *bridge) forward(ctx context.Context, msg jsonrpc.Message) {
	err := b.remote.Write(ctx, msg)
	if err == nil || ctx.Err() != nil {
		return
	}
	b.log.WarnContext(ctx, "could not forward a message", "method", methodOf(msg), "err", err)
	if req, ok := msg.(*jsonrpc.Request); ok && req.IsCall() {
		resp := &jsonrpc.Response{ID: req.ID, Error: &jsonrpc.Error{Code: bridgeErrorCode, Message: describe(err)}}
		if err := b.local.Write(ctx, resp); err != nil {
			b.log.WarnContext(ctx, "could not answer the local client", "err", err)
		}
	}
}

// down relays the remote server's messages to the local client and learns
// the negotiated protocol version from the initialize result.
func (b *bridge) down(ctx context.Context) error {
	for {
		msg, err := b.remote.Read(ctx)
		if err != nil {
			return err
		}
		b.observe(msg)
		if err := b.local.Write(ctx, msg); err != nil {
			return err
		}
	}
}

func (b *bridge) observe(msg jsonrpc.Message) {
	resp, ok := msg.(*jsonrpc.Response)
	if !ok || resp.Error != nil {
		return
	}
	b.initMu.Lock()
	isInit := b.initID != nil && *b.initID == resp.ID
	b.initMu.Unlock()
	if !isInit {
		return
	}
	var r struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if json.Unmarshal(resp.Result, &r) == nil && r.ProtocolVersion != "" {
		b.version.Store(r.ProtocolVersion)
	}
}

// describe turns a delivery failure into the message the local client
// (and its user) sees. An administrator's denial is said as such: it is
// final, and nothing else will be tried.
func describe(err error) string {
	var d *xaaclient.DeniedError
	var su *xaaclient.StepUpError
	switch {
	case errors.As(err, &d):
		return "access denied by your organisation's identity provider (" + d.Code + "): " + d.Description
	case errors.As(err, &su):
		return "the server needs a stronger or more recent sign-in: " + su.Error()
	case errors.Is(err, xaaclient.ErrLoginRequired):
		return "not signed in: run `xaa login`"
	}
	return "xaa bridge: " + err.Error()
}

func methodOf(msg jsonrpc.Message) string {
	if r, ok := msg.(*jsonrpc.Request); ok {
		return r.Method
	}
	return "(response)"
}

// startStandalone opens the GET stream on which servers of protocol
// versions before 2026-07-28 send messages outside any request (list
// changes, resource updates, log messages), once per bridge.
func (b *bridge) startStandalone(ctx context.Context) {
	v, _ := b.version.Load().(string)
	if v == "" || v >= "2026-07-28" {
		return
	}
	b.standalone.Do(func() { go b.listen(ctx) })
}

// listen keeps the standalone stream open, reconnecting with a growing
// delay. A server without one (405) ends it.
func (b *bridge) listen(ctx context.Context) {
	delay := time.Second
	lastID := ""
	for attempt := 0; attempt < 10; attempt++ {
		id, status, err := b.stream(ctx, lastID)
		if id != "" {
			lastID = id
		}
		switch {
		case ctx.Err() != nil:
			return
		case status == http.StatusMethodNotAllowed:
			b.log.InfoContext(ctx, "the server offers no standalone stream")
			return
		case status == http.StatusOK:
			attempt, delay = 0, time.Second // it worked; start over
		default:
			b.log.WarnContext(ctx, "standalone stream failed", "status", status, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// stream runs one GET of the standalone stream, relaying its events, and
// returns the last event id seen.
func (b *bridge) stream(ctx context.Context, lastID string) (string, int, error) {
	get := func() (*http.Request, *http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.endpoint, nil)
		if err != nil {
			return nil, nil, err
		}
		req.Header.Set("Accept", "text/event-stream")
		if sid := b.remote.SessionID(); sid != "" {
			req.Header.Set("Mcp-Session-Id", sid)
		}
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		ts, err := b.handler.TokenSource(ctx)
		if err != nil {
			return nil, nil, err
		}
		if ts != nil {
			tok, err := ts.Token()
			if err != nil {
				return nil, nil, err
			}
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		}
		resp, err := b.http.Do(req)
		return req, resp, err
	}
	req, resp, err := get()
	if err == nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
		if err = b.handler.Authorize(ctx, req, resp); err == nil {
			_, resp, err = get()
		}
	}
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return "", resp.StatusCode, fmt.Errorf("GET answered %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var data strings.Builder
	id := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data.Len() > 0 {
				msg, err := jsonrpc.DecodeMessage([]byte(data.String()))
				if err == nil {
					if err := b.local.Write(ctx, msg); err != nil {
						return id, http.StatusOK, err
					}
				} else {
					b.log.WarnContext(ctx, "dropping a malformed event on the standalone stream", "err", err)
				}
				data.Reset()
			}
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
		}
	}
	return id, http.StatusOK, sc.Err()
}

// versionHeader adds MCP-Protocol-Version to requests that lack it once
// the version is negotiated (MCP 2025-06-18 §transports: every request
// after initialization carries it).
type versionHeader struct {
	base    http.RoundTripper
	version *atomic.Value
}

func (t *versionHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	if v, _ := t.version.Load().(string); v != "" && r.Header.Get("Mcp-Protocol-Version") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Mcp-Protocol-Version", v)
	}
	return t.base.RoundTrip(r)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
