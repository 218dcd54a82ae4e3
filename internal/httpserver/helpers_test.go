package httpserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/httpserver"
)

// logBuffer collects slog JSON output written concurrently by server
// goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// records parses every JSON log line.
func (b *logBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(b.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %q", err, line)
		}
		out = append(out, m)
	}
	return out
}

// find returns the records with the given message.
func (b *logBuffer) find(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range b.records(t) {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

func newLogger() (*slog.Logger, *logBuffer) {
	buf := &logBuffer{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// testServer is a Server running on loopback for the duration of a test.
type testServer struct {
	*httpserver.Server
	URL      string // public base URL
	AdminURL string // admin base URL, "" without one
	Logs     *logBuffer
	cancel   context.CancelFunc
	done     chan error
}

// start runs a Server built from opts on 127.0.0.1:0 and waits until
// /healthz answers, the way Mat Ryer's tests wait for run(). Name, Addr and
// Logger get test defaults when empty. The server is stopped at cleanup,
// which also checks that Run returned nil.
func start(t *testing.T, opts httpserver.Options) *testServer {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "test"
	}
	if opts.Addr == "" && opts.Listener == nil {
		opts.Addr = "127.0.0.1:0"
	}
	logs := &logBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := httpserver.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: srv, Logs: logs, cancel: cancel, done: make(chan error, 1)}
	scheme := "http"
	if opts.TLSCertFile != "" {
		scheme = "https"
	}
	ts.URL = scheme + "://" + srv.Addr()
	if a := srv.AdminAddr(); a != "" {
		ts.AdminURL = "http://" + a
	}
	go func() { ts.done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		if err := ts.stop(); err != nil {
			t.Errorf("Serve returned %v, want nil", err)
		}
	})
	if opts.TLSCertFile == "" {
		waitForHealthy(t, http.DefaultClient, ts.URL)
	}
	return ts
}

// stop cancels the server's context and returns what Serve returned. Safe
// to call more than once.
func (ts *testServer) stop() error {
	ts.cancel()
	err, ok := <-ts.done
	if !ok {
		return nil
	}
	close(ts.done)
	return err
}

func waitForHealthy(t *testing.T, client *http.Client, base string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := client.Get(base + "/healthz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/healthz not healthy in time (last error %v)", base, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// do performs a request and returns the response with its body read.
func do(t *testing.T, client *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return resp, string(body)
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, http.DefaultClient, req)
}

var errTest = errors.New("test error")
