package httpserver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/openxaa/xaa/internal/httpserver"
)

// routes is a small public API used by most tests.
func routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		_ = httpserver.WriteJSON(w, http.StatusOK, map[string]string{"request_id": httpserver.RequestIDFrom(r.Context())})
	})
	mux.HandleFunc("GET /panic", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Set-Cookie", "session=half-built")
		w.Header().Set("Content-Type", "text/html")
		panic("boom")
	})
	mux.HandleFunc("GET /abort", func(http.ResponseWriter, *http.Request) {
		panic(http.ErrAbortHandler)
	})
	mux.HandleFunc("GET /panic-after-write", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"partial":`)
		http.NewResponseController(w).Flush()
		panic("boom after header")
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			if httpserver.IsBodyTooLarge(err) {
				_ = httpserver.WriteJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "invalid_request"})
				return
			}
			_ = httpserver.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
			return
		}
		_ = httpserver.WriteJSON(w, http.StatusOK, map[string]int{"len": len(r.PostForm.Get("assertion"))})
	})
	return mux
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	ts := start(t, httpserver.Options{Handler: routes()})
	resp, body := get(t, ts.URL+"/healthz")
	if resp.StatusCode != http.StatusOK || body != `{"status":"ok"}` {
		t.Errorf("GET /healthz = %d %s", resp.StatusCode, body)
	}
	wantHeaders := map[string]string{
		"Content-Type":  "application/json; charset=utf-8",
		"Cache-Control": "no-store",
	}
	for k, v := range wantHeaders {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// Other methods fall through to Handler, which has no such route.
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/healthz", nil)
	if resp, _ := do(t, http.DefaultClient, req); resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /healthz = %d, want 404 from Handler", resp.StatusCode)
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	tests := []struct {
		name       string
		ready      func(context.Context) error
		wantStatus int
		wantBody   string
		wantLog    string // pattern for the "not ready" log record's error
	}{
		{name: "no check", ready: nil, wantStatus: 200, wantBody: `{"status":"ok"}`},
		{name: "ok", ready: func(context.Context) error { return nil }, wantStatus: 200, wantBody: `{"status":"ok"}`},
		{
			name: "failing, details only in the log",
			ready: func(context.Context) error {
				return errors.New("dial tcp db.internal:5432: password authentication failed for user xaa")
			},
			wantStatus: 503, wantBody: `{"status":"unavailable"}`, wantLog: "db.internal:5432",
		},
		{
			name: "times out, check honours its context",
			ready: func(ctx context.Context) error {
				<-ctx.Done()
				return fmt.Errorf("ping: %w", ctx.Err())
			},
			// Ready's deadline and the probe's own bound coincide; either
			// may report first.
			wantStatus: 503, wantBody: `{"status":"unavailable"}`, wantLog: "deadline exceeded|did not finish within",
		},
		{
			name: "times out, check ignores its context",
			ready: func(context.Context) error {
				<-release
				return nil
			},
			wantStatus: 503, wantBody: `{"status":"unavailable"}`, wantLog: "did not finish within",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := start(t, httpserver.Options{Handler: routes(), Ready: tt.ready, ReadyTimeout: 100 * time.Millisecond})
			resp, body := get(t, ts.URL+"/readyz")
			if resp.StatusCode != tt.wantStatus || body != tt.wantBody {
				t.Errorf("GET /readyz = %d %s, want %d %s", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", resp.Header.Get("Cache-Control"))
			}
			if tt.wantLog == "" {
				return
			}
			recs := ts.Logs.find(t, "not ready")
			if len(recs) != 1 {
				t.Fatalf("got %d 'not ready' log records, want 1; logs:\n%s", len(recs), ts.Logs)
			}
			if msg, _ := recs[0]["error"].(string); !regexp.MustCompile(tt.wantLog).MatchString(msg) {
				t.Errorf("logged error %q does not match %q", msg, tt.wantLog)
			}
		})
	}
}

// Probes may come from anywhere; they must not multiply database pings.
func TestReadyzCallsReadyOneAtATime(t *testing.T) {
	t.Parallel()
	var running, maxRunning, calls atomic.Int32
	ready := func(context.Context) error {
		calls.Add(1)
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := maxRunning.Load()
			if n <= m || maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
		return nil
	}
	ts := start(t, httpserver.Options{Handler: routes(), Ready: ready})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			resp, err := http.Get(ts.URL + "/readyz")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET /readyz = %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	if got := maxRunning.Load(); got != 1 {
		t.Errorf("Ready ran %d times concurrently, want 1", got)
	}
	t.Logf("8 probes, %d Ready calls", calls.Load())
}

func TestPanicBecomes500(t *testing.T) {
	t.Parallel()
	ts := start(t, httpserver.Options{Handler: routes()})
	resp, body := get(t, ts.URL+"/panic")
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("status = %d, want 500", resp.StatusCode)
	}
	if want := `{"error":"server_error","error_description":"internal error"}`; body != want {
		t.Errorf("body = %s, want %s", body, want)
	}
	for k, want := range map[string]string{
		"Content-Type":            "application/json; charset=utf-8",
		"Cache-Control":           "no-store",
		"Set-Cookie":              "", // set by the handler before it panicked
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	id := resp.Header.Get("X-Request-Id")
	if id == "" {
		t.Error("no X-Request-Id on the 500")
	}

	panics := ts.Logs.find(t, "panic serving request")
	if len(panics) != 1 {
		t.Fatalf("got %d panic log records, want 1; logs:\n%s", len(panics), ts.Logs)
	}
	p := panics[0]
	if p["level"] != "ERROR" || p["panic"] != "boom" || p["request_id"] != id || p["path"] != "/panic" {
		t.Errorf("panic record = %v", p)
	}
	if stack, _ := p["stack"].(string); !strings.Contains(stack, "httpserver_test.routes") {
		t.Errorf("stack does not show the panicking handler:\n%s", stack)
	}
	access := ts.Logs.find(t, "http request")
	if len(access) == 0 || access[len(access)-1]["status"] != float64(500) {
		t.Errorf("access log does not record the 500: %v", access)
	}
}

func TestAbortIsNotConverted(t *testing.T) {
	t.Parallel()
	ts := start(t, httpserver.Options{Handler: routes()})
	tests := []struct {
		path      string
		wantPanic bool // logged as a panic by Recover
	}{
		{"/abort", false},
		// Too late for a 500: the connection must be cut so the client
		// cannot take the partial body for a whole one.
		{"/panic-after-write", true},
	}
	for _, tt := range tests {
		resp, err := http.Get(ts.URL + tt.path)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil {
			t.Errorf("GET %s: got a complete %d response, want a broken connection", tt.path, resp.StatusCode)
		}
	}
	panics := ts.Logs.find(t, "panic serving request")
	if len(panics) != 1 || panics[0]["path"] != "/panic-after-write" {
		t.Errorf("panic records = %v, want exactly the one for /panic-after-write", panics)
	}
	for _, rec := range ts.Logs.find(t, "http request") {
		if rec["path"] == "/abort" && rec["aborted"] != true {
			t.Errorf("access log for /abort = %v, want aborted=true", rec)
		}
	}
}

func TestRequestIDOverHTTP(t *testing.T) {
	t.Parallel()
	ts := start(t, httpserver.Options{Handler: routes()})
	generated := regexp.MustCompile(`^[A-Z2-7]{26}$`)
	tests := []struct {
		name     string
		incoming []string
		want     string // "" means a freshly generated id
	}{
		{name: "none", incoming: nil},
		{name: "valid is propagated", incoming: []string{"req-1.A_b"}, want: "req-1.A_b"},
		{name: "too long", incoming: []string{strings.Repeat("a", 65)}},
		{name: "bad character", incoming: []string{"a b"}},
		{name: "log syntax", incoming: []string{`x","level":"ERROR`}},
		{name: "two values", incoming: []string{"one", "two"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest(http.MethodGet, ts.URL+"/hello", nil)
			for _, v := range tt.incoming {
				req.Header.Add("X-Request-Id", v)
			}
			resp, body := do(t, http.DefaultClient, req)
			id := resp.Header.Get("X-Request-Id")
			if tt.want != "" && id != tt.want {
				t.Errorf("X-Request-Id = %q, want %q", id, tt.want)
			}
			if tt.want == "" && !generated.MatchString(id) {
				t.Errorf("X-Request-Id = %q, want a generated id", id)
			}
			if want := `{"request_id":"` + id + `"}`; body != want {
				t.Errorf("handler saw %s, want %s", body, want)
			}
		})
	}
}

// The access log is where secrets usually leak: codes and tokens in the
// query, credentials in headers and bodies.
func TestAccessLogHasNoSecrets(t *testing.T) {
	t.Parallel()
	const secret = "SECRET"
	ts := start(t, httpserver.Options{Handler: routes()})
	req, _ := http.NewRequest(http.MethodPost,
		ts.URL+"/token?code="+secret+"&access_token="+secret,
		strings.NewReader("grant_type=x&client_secret="+secret+"&assertion="+secret))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Cookie", "session="+secret)
	req.Header.Set("X-Request-Id", "trace-42")
	resp, _ := do(t, http.DefaultClient, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /token = %d", resp.StatusCode)
	}
	if err := ts.stop(); err != nil { // flush every log line
		t.Fatal(err)
	}
	logs := ts.Logs.String()
	if strings.Contains(logs, secret) {
		t.Fatalf("logs contain the secret:\n%s", logs)
	}
	var access map[string]any
	for _, r := range ts.Logs.find(t, "http request") {
		if r["path"] == "/token" {
			access = r
		}
	}
	if access == nil {
		t.Fatalf("no access log line for /token:\n%s", logs)
	}
	if d, ok := access["duration"].(float64); !ok || d <= 0 {
		t.Errorf("duration = %v", access["duration"])
	}
	if ra, _ := access["remote_addr"].(string); !strings.HasPrefix(ra, "127.0.0.1:") {
		t.Errorf("remote_addr = %q", ra)
	}
	for _, k := range []string{"time", "duration", "remote_addr"} {
		delete(access, k)
	}
	want := map[string]any{
		"level": "INFO", "msg": "http request", "server": "test",
		"method": "POST", "path": "/token", "route": "POST /token",
		"status": float64(200), "bytes": float64(len(`{"len":6}`)), "request_id": "trace-42",
	}
	if diff := cmp.Diff(want, access); diff != "" {
		t.Errorf("access log record (-want +got):\n%s", diff)
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	ts := start(t, httpserver.Options{Handler: routes(), BodyLimit: 1 << 10})
	tests := []struct {
		name       string
		size       int
		wantStatus int
		wantClose  bool
	}{
		{"under the limit", 500, http.StatusOK, false},
		{"over the limit", 4 << 10, http.StatusRequestEntityTooLarge, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := "assertion=" + strings.Repeat("a", tt.size)
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/token", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, _ := do(t, http.DefaultClient, req)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			// Only the server's own writer can mark the connection for
			// closing; this proves LimitBody reached it through the chain.
			if resp.Close != tt.wantClose {
				t.Errorf("connection close = %v, want %v", resp.Close, tt.wantClose)
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	base := map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
		"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
	}
	withHSTS := map[string]string{"Strict-Transport-Security": "max-age=63072000; includeSubDomains"}
	for k, v := range base {
		withHSTS[k] = v
	}
	certFile, keyFile, pool := selfSignedCert(t)
	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	tests := []struct {
		name   string
		opts   httpserver.Options
		client *http.Client
		want   map[string]string
	}{
		{"plain http", httpserver.Options{}, http.DefaultClient, base},
		{"https issuer behind a proxy", httpserver.Options{HSTS: true}, http.DefaultClient, withHSTS},
		{"tls", httpserver.Options{TLSCertFile: certFile, TLSKeyFile: keyFile}, tlsClient, withHSTS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.opts.Handler = routes()
			ts := start(t, tt.opts)
			waitForHealthy(t, tt.client, ts.URL)
			for _, path := range []string{"/hello", "/no-such-route", "/panic"} {
				req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
				resp, _ := do(t, tt.client, req)
				got := map[string]string{}
				for _, k := range []string{"X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options",
					"Content-Security-Policy", "Strict-Transport-Security"} {
					if v := resp.Header.Get(k); v != "" {
						got[k] = v
					}
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("GET %s headers (-want +got):\n%s", path, diff)
				}
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	ts := start(t, httpserver.Options{Name: "idp", Handler: routes(), Registry: reg, AdminAddr: "127.0.0.1:0"})

	get(t, ts.URL+"/hello")
	get(t, ts.URL+"/hello")
	get(t, ts.URL+"/panic")
	get(t, ts.URL+"/nope")
	if resp, _ := get(t, ts.URL+"/metrics"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("public GET /metrics = %d, want 404", resp.StatusCode)
	}

	resp, body := get(t, ts.AdminURL+"/metrics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin GET /metrics = %d", resp.StatusCode)
	}
	for _, want := range []string{
		`xaa_http_requests_total{method="GET",pattern="GET /hello",server="idp",status_class="2xx"} 2`,
		`xaa_http_requests_total{method="GET",pattern="GET /panic",server="idp",status_class="5xx"} 1`,
		`xaa_http_requests_total{method="GET",pattern="unmatched",server="idp",status_class="4xx"} 2`, // /nope and /metrics
		`xaa_http_request_duration_seconds_count{method="GET",pattern="GET /hello",server="idp",status_class="2xx"} 2`,
		`xaa_http_requests_in_flight{server="idp"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, "/nope") {
		t.Error("raw paths leak into metric labels")
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if resp, body := get(t, ts.AdminURL+path); resp.StatusCode != http.StatusOK || body != `{"status":"ok"}` {
			t.Errorf("admin GET %s = %d %s", path, resp.StatusCode, body)
		}
	}
}

func TestMetricsDisabledWithoutRegistry(t *testing.T) {
	t.Parallel()
	ts := start(t, httpserver.Options{Handler: routes(), AdminAddr: "127.0.0.1:0"})
	if resp, _ := get(t, ts.AdminURL+"/metrics"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("admin GET /metrics = %d, want 404", resp.StatusCode)
	}
}

// `xaa demo` runs several roles against one registry, and tests may build
// the same role twice.
func TestRolesShareARegistry(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	for _, name := range []string{"idp", "authserver", "idp"} {
		if _, err := httpserver.New(httpserver.Options{Name: name, Addr: "127.0.0.1:0", Handler: routes(), Registry: reg}); err != nil {
			t.Errorf("New(%s): %v", name, err)
		}
	}
}

func TestGracefulShutdownWaitsForInFlight(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		time.Sleep(300 * time.Millisecond)
		if r.Context().Err() != nil {
			t.Error("request context cancelled by shutdown")
		}
		_, _ = io.WriteString(w, "done")
	})
	ts := start(t, httpserver.Options{Handler: mux})

	type result struct {
		status int
		body   string
		err    error
	}
	resc := make(chan result, 1)
	go func() {
		resp, err := http.Get(ts.URL + "/slow")
		if err != nil {
			resc <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		resc <- result{resp.StatusCode, string(b), err}
	}()
	<-entered
	if err := ts.stop(); err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
	// Serve returned only after the slow request finished.
	select {
	case res := <-resc:
		if res.err != nil || res.status != http.StatusOK || res.body != "done" {
			t.Errorf("in-flight request = %d %q %v, want 200 done", res.status, res.body, res.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight request did not finish")
	}
	if _, err := net.Dial("tcp", ts.Addr()); err == nil {
		t.Error("listener still accepts connections after shutdown")
	}
}

func TestShutdownTimeout(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stuck", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	})
	ts := start(t, httpserver.Options{Handler: mux, ShutdownTimeout: 100 * time.Millisecond})
	go func() {
		if resp, err := http.Get(ts.URL + "/stuck"); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	err := ts.stop()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Serve = %v, want context.DeadlineExceeded", err)
	}
}

func TestListenerOption(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := start(t, httpserver.Options{Handler: routes(), Listener: ln})
	if ts.Addr() != ln.Addr().String() {
		t.Errorf("Addr = %s, want %s", ts.Addr(), ln.Addr())
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	newServer := func() *httpserver.Server {
		s, err := httpserver.New(httpserver.Options{Name: "test", Addr: "127.0.0.1:0", Handler: routes()})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := newServer()
	if s.Addr() != "" || s.AdminAddr() != "" {
		t.Errorf("addresses before Listen: %q %q", s.Addr(), s.AdminAddr())
	}
	if err := s.Serve(t.Context()); !errors.Is(err, httpserver.ErrLifecycle) {
		t.Errorf("Serve before Listen = %v, want ErrLifecycle", err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); !errors.Is(err, httpserver.ErrLifecycle) {
		t.Errorf("second Listen = %v, want ErrLifecycle", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Serve(ctx); err != nil {
		t.Errorf("Serve with a cancelled context = %v, want nil", err)
	}
	if err := s.Serve(t.Context()); !errors.Is(err, httpserver.ErrLifecycle) {
		t.Errorf("second Serve = %v, want ErrLifecycle", err)
	}
	if err := s.Run(t.Context()); !errors.Is(err, httpserver.ErrLifecycle) {
		t.Errorf("Run after Serve = %v, want ErrLifecycle", err)
	}

	// A port in use fails Listen, not New.
	busy := newServer()
	if err := busy.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_ = busy.Serve(ctx)
	})
	s2, err := httpserver.New(httpserver.Options{Name: "test", Addr: busy.Addr(), Handler: routes()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Run(t.Context()); err == nil {
		t.Error("Run on a busy port succeeded")
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	ok := func() httpserver.Options {
		return httpserver.Options{Name: "idp", Addr: "127.0.0.1:0", Handler: routes()}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		modify func(*httpserver.Options)
	}{
		{"no name", func(o *httpserver.Options) { o.Name = "" }},
		{"name with spaces", func(o *httpserver.Options) { o.Name = "id p" }},
		{"name too long", func(o *httpserver.Options) { o.Name = strings.Repeat("x", 65) }},
		{"no handler", func(o *httpserver.Options) { o.Handler = nil }},
		{"no address", func(o *httpserver.Options) { o.Addr = "" }},
		{"address and listener", func(o *httpserver.Options) { o.Listener = ln }},
		{"admin address and listener", func(o *httpserver.Options) { o.AdminAddr = ":0"; o.AdminListener = ln }},
		{"negative read header timeout", func(o *httpserver.Options) { o.ReadHeaderTimeout = -1 }},
		{"negative read timeout", func(o *httpserver.Options) { o.ReadTimeout = -1 }},
		{"negative write timeout", func(o *httpserver.Options) { o.WriteTimeout = -1 }},
		{"negative idle timeout", func(o *httpserver.Options) { o.IdleTimeout = -1 }},
		{"negative shutdown timeout", func(o *httpserver.Options) { o.ShutdownTimeout = -1 }},
		{"negative ready timeout", func(o *httpserver.Options) { o.ReadyTimeout = -1 }},
		{"negative max header bytes", func(o *httpserver.Options) { o.MaxHeaderBytes = -1 }},
		{"negative body limit", func(o *httpserver.Options) { o.BodyLimit = -1 }},
		{"cert without key", func(o *httpserver.Options) { o.TLSCertFile = garbage }},
		{"key without cert", func(o *httpserver.Options) { o.TLSKeyFile = garbage }},
		{"unreadable key pair", func(o *httpserver.Options) { o.TLSCertFile, o.TLSKeyFile = garbage, garbage }},
		{"missing key pair", func(o *httpserver.Options) {
			o.TLSCertFile, o.TLSKeyFile = filepath.Join(dir, "none.pem"), filepath.Join(dir, "none.key")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := ok()
			tt.modify(&o)
			if _, err := httpserver.New(o); !errors.Is(err, httpserver.ErrInvalidOptions) {
				t.Errorf("New = %v, want ErrInvalidOptions", err)
			}
		})
	}
	if _, err := httpserver.New(ok()); err != nil {
		t.Errorf("New(valid) = %v", err)
	}
}

// selfSignedCert writes a P-256 certificate for 127.0.0.1 and returns the
// file names and a pool that trusts it.
func selfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
