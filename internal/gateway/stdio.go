package gateway

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Stdio defaults.
const (
	DefaultMaxChildren = 64
	DefaultIdleTimeout = 30 * time.Minute
	// terminateTimeout is how long a child gets after its stdin closes
	// before SIGTERM, and again before SIGKILL.
	terminateTimeout = 2 * time.Second
	// maxStdioBody caps a POST to a stdio route, as the go-sdk does.
	maxStdioBody = 4 << 20
	// maxStderrLine bounds one logged line of a child's stderr.
	maxStderrLine = 2048
)

// Session headers of the streamable HTTP transport.
const (
	headerSessionID = "Mcp-Session-Id"
)

// stdioUpstream serves one route whose upstream is a stdio MCP server: it
// launches the command once per MCP session and bridges the streamable
// HTTP transport (the go-sdk's StreamableServerTransport, which handles
// SSE, JSON answers and Last-Event-ID resumption) to the child's
// newline-delimited JSON-RPC. Children end on DELETE, after the idle
// timeout, when they exit, and on Close.
type stdioUpstream struct {
	route       string
	command     []string
	env         []string
	maxChildren int
	idleTimeout time.Duration
	log         *slog.Logger
	events      *mcp.MemoryEventStore

	mu       sync.Mutex
	sessions map[string]*stdioSession // routable sessions
	live     int                      // child processes not yet reaped, including starting ones
	closed   bool
	wg       sync.WaitGroup // one per live child
}

func newStdioUpstream(route string, command, env []string, maxChildren int, idle time.Duration, log *slog.Logger) *stdioUpstream {
	if maxChildren <= 0 {
		maxChildren = DefaultMaxChildren
	}
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	return &stdioUpstream{
		route:       route,
		command:     command,
		env:         env,
		maxChildren: maxChildren,
		idleTimeout: idle,
		log:         log,
		events:      mcp.NewMemoryEventStore(nil),
		sessions:    make(map[string]*stdioSession),
	}
}

// stdioSession is one MCP session and its child process.
type stdioSession struct {
	id        string
	up        *stdioUpstream
	transport *mcp.StreamableServerTransport
	conn      mcp.Connection // the HTTP side
	child     mcp.Connection // the process side
	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once

	mu    sync.Mutex
	refs  int // requests in flight (a GET stream counts while open)
	timer *time.Timer
	done  bool
}

// Sessions reports how many stdio sessions (child processes) are live.
func (s *stdioUpstream) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live
}

func (s *stdioUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sid := r.Header.Get(headerSessionID)
	switch r.Method {
	case http.MethodPost:
		if t, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); t != "application/json" {
			writeJSONRPCError(w, http.StatusUnsupportedMediaType, nil, codeInvalidRequest, "Content-Type must be application/json")
			return
		}
		if !accepts(r, "application/json") || !accepts(r, "text/event-stream") {
			writeJSONRPCError(w, http.StatusBadRequest, nil, codeInvalidRequest, "Accept must list both application/json and text/event-stream")
			return
		}
		if sid == "" {
			s.start(w, r)
			return
		}
	case http.MethodGet:
		if !accepts(r, "text/event-stream") {
			writeJSONRPCError(w, http.StatusBadRequest, nil, codeInvalidRequest, "Accept must list text/event-stream for GET")
			return
		}
		if sid == "" {
			writeJSONRPCError(w, http.StatusBadRequest, nil, codeInvalidRequest, "GET needs an Mcp-Session-Id header")
			return
		}
	case http.MethodDelete:
		if sid == "" {
			writeJSONRPCError(w, http.StatusBadRequest, nil, codeInvalidRequest, "DELETE needs an Mcp-Session-Id header")
			return
		}
		if sess := s.lookup(sid); sess != nil {
			sess.close("ended by the client (DELETE)")
			w.WriteHeader(http.StatusNoContent)
			return
		}
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		writeJSONRPCError(w, http.StatusMethodNotAllowed, nil, codeInvalidRequest, "method not allowed")
		return
	}
	sess := s.lookup(sid)
	if sess == nil || !sess.begin() {
		writeJSONRPCError(w, http.StatusNotFound, nil, codeNoSession, "session not found")
		return
	}
	defer sess.end()
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxStdioBody)
	}
	sess.transport.ServeHTTP(w, r)
}

func (s *stdioUpstream) lookup(id string) *stdioSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}

// start begins a session: the body must be an initialize request, a child
// slot must be free, and the command must start.
func (s *stdioUpstream) start(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxStdioBody+1))
	if err != nil || len(body) > maxStdioBody {
		writeJSONRPCError(w, http.StatusBadRequest, nil, codeInvalidRequest, "the request body could not be read")
		return
	}
	var first struct {
		Method string          `json:"method"`
		ID     json.RawMessage `json:"id"`
	}
	if json.Unmarshal(body, &first) != nil || first.Method != "initialize" || len(first.ID) == 0 || string(first.ID) == "null" {
		writeJSONRPCError(w, http.StatusBadRequest, nil, codeInvalidRequest,
			"no MCP session: start one with an initialize request without Mcp-Session-Id")
		return
	}

	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		writeJSONRPCError(w, http.StatusServiceUnavailable, first.ID, codeBusy, "the gateway is shutting down")
		return
	case s.live >= s.maxChildren:
		n := s.live
		s.mu.Unlock()
		s.log.WarnContext(r.Context(), "stdio session refused: at the process limit", "route", s.route, "max_children", s.maxChildren, "live", n)
		w.Header().Set("Retry-After", "5")
		writeJSONRPCError(w, http.StatusServiceUnavailable, first.ID, codeBusy,
			fmt.Sprintf("this MCP server already runs its maximum of %d sessions at the gateway; retry later", s.maxChildren))
		return
	}
	s.live++
	s.wg.Add(1)
	s.mu.Unlock()

	sess, err := s.launch()
	if err != nil {
		s.reaped()
		s.log.ErrorContext(r.Context(), "start stdio MCP server", "route", s.route, "err", err)
		writeJSONRPCError(w, http.StatusBadGateway, first.ID, codeUpstream, "the MCP server behind this gateway could not be started")
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	tw := &trackWriter{ResponseWriter: w}
	if sess.begin() {
		sess.transport.ServeHTTP(tw, r)
		sess.end()
	}
	if !tw.wrote {
		// The child died (or the client left) before initialize was
		// answered: the session is of no use to anyone.
		sess.close("initialize was not answered")
		writeJSONRPCError(w, http.StatusBadGateway, first.ID, codeUpstream, "the MCP server behind this gateway did not answer initialize")
	}
}

// launch starts a child process and its session. The caller has reserved
// a slot; on error nothing is left running.
func (s *stdioUpstream) launch() (*stdioSession, error) {
	id := crand.Text()
	cmd := exec.Command(s.command[0], s.command[1:]...)
	cmd.Env = s.env
	cmd.Stderr = &lineLogger{log: s.log, route: s.route, session: id}
	cmd.WaitDelay = terminateTimeout // stderr held open by a grandchild must not hang Wait
	child, err := (&mcp.CommandTransport{Command: cmd, TerminateDuration: terminateTimeout}).Connect(context.Background())
	if err != nil {
		return nil, err
	}
	transport := &mcp.StreamableServerTransport{SessionID: id, EventStore: s.events}
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := transport.Connect(ctx)
	if err != nil {
		cancel()
		_ = child.Close()
		return nil, err
	}
	sess := &stdioSession{id: id, up: s, transport: transport, conn: conn, child: child, ctx: ctx, cancel: cancel}
	sess.timer = time.AfterFunc(s.idleTimeout, func() { sess.close("idle timeout") })
	s.mu.Lock()
	s.sessions[id] = sess
	s.mu.Unlock()
	s.log.Info("stdio MCP server started", "route", s.route, "session", id, "pid", cmd.Process.Pid)
	go sess.pump(conn, child, "client")
	go sess.pump(child, conn, "child")
	return sess, nil
}

// pump copies messages from src to dst until src ends, then ends the
// session. Writes to the HTTP side may be refused for one message (its
// stream is gone) without breaking the session.
func (sess *stdioSession) pump(src, dst mcp.Connection, from string) {
	for {
		msg, err := src.Read(sess.ctx)
		if err != nil {
			if sess.ctx.Err() == nil {
				reason := "the client side closed"
				if from == "child" {
					reason = "the MCP server exited or wrote invalid JSON-RPC: " + err.Error()
				}
				sess.close(reason)
			}
			return
		}
		if err := dst.Write(sess.ctx, msg); err != nil {
			if sess.ctx.Err() != nil {
				return
			}
			if from == "client" {
				sess.close("writing to the MCP server failed: " + err.Error())
				return
			}
			sess.up.log.Debug("message from the stdio server not delivered", "route", sess.up.route, "session", sess.id, "err", err)
		}
	}
}

// begin counts a request in flight, pausing the idle timer. It reports
// false for a session that already ended.
func (sess *stdioSession) begin() bool {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.done {
		return false
	}
	sess.refs++
	if sess.refs == 1 {
		sess.timer.Stop()
	}
	return true
}

// end finishes a request; the idle timer restarts when none is left.
func (sess *stdioSession) end() {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sess.refs--
	if sess.refs == 0 && !sess.done {
		sess.timer.Reset(sess.up.idleTimeout)
	}
}

// close ends the session once: it stops routing to it, releases hanging
// requests, and terminates the child (stdin closed, then SIGTERM, then
// SIGKILL) in the background.
func (sess *stdioSession) close(reason string) {
	sess.closeOnce.Do(func() {
		sess.mu.Lock()
		sess.done = true
		sess.timer.Stop()
		sess.mu.Unlock()
		up := sess.up
		up.mu.Lock()
		delete(up.sessions, sess.id)
		up.mu.Unlock()
		sess.cancel()
		_ = sess.conn.Close()
		go func() {
			err := sess.child.Close()
			up.log.Info("stdio MCP server stopped", "route", up.route, "session", sess.id, "reason", reason, "exit", exitText(err))
			up.reaped()
		}()
	})
}

func (s *stdioUpstream) reaped() {
	s.mu.Lock()
	s.live--
	s.mu.Unlock()
	s.wg.Done()
}

// Close ends every session and waits until every child has exited.
func (s *stdioUpstream) Close() error {
	s.mu.Lock()
	s.closed = true
	sessions := make([]*stdioSession, 0, len(s.sessions))
	for _, sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.close("the gateway is shutting down")
	}
	s.wg.Wait()
	return nil
}

func exitText(err error) string {
	if err == nil {
		return "0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ProcessState.String()
	}
	return err.Error()
}

// accepts reports whether the request's Accept header lists mediaType (or
// a wildcard covering it).
func accepts(r *http.Request, mediaType string) bool {
	major, _, _ := strings.Cut(mediaType, "/")
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			t, _, _ := strings.Cut(part, ";")
			t = strings.ToLower(strings.TrimSpace(t))
			if t == mediaType || t == "*/*" || t == major+"/*" {
				return true
			}
		}
	}
	return false
}

// trackWriter notes whether anything was written. It keeps flushing and
// deadlines reachable for the go-sdk's SSE writer.
type trackWriter struct {
	http.ResponseWriter
	wrote bool
}

func (t *trackWriter) WriteHeader(code int) {
	t.wrote = true
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackWriter) Write(p []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriter.Write(p)
}

func (t *trackWriter) Flush() { _ = http.NewResponseController(t.ResponseWriter).Flush() }

func (t *trackWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// lineLogger logs a child's stderr line by line. The child never sees a
// client token, so its output cannot hold one; lines are still bounded.
type lineLogger struct {
	log            *slog.Logger
	route, session string
	buf            []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxStderrLine - len(l.buf)
			if len(p) > room {
				l.buf = append(l.buf, p[:max(room, 0)]...)
				l.flush()
				p = p[max(room, 0):]
				continue
			}
			l.buf = append(l.buf, p...)
			break
		}
		l.buf = append(l.buf, p[:i]...)
		l.flush()
		p = p[i+1:]
	}
	return n, nil
}

func (l *lineLogger) flush() {
	line := strings.TrimRight(string(l.buf), "\r")
	l.buf = l.buf[:0]
	if len(line) > maxStderrLine {
		line = line[:maxStderrLine]
	}
	if line != "" {
		l.log.Info("stdio MCP server stderr", "route", l.route, "session", l.session, "line", line)
	}
}
