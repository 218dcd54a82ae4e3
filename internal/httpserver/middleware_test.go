package httpserver_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/openxaa/xaa/internal/httpserver"
)

func TestChainOrder(t *testing.T) {
	t.Parallel()
	var trace []string
	mw := func(name string) httpserver.Middleware {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				trace = append(trace, name+" in")
				next.ServeHTTP(w, r)
				trace = append(trace, name+" out")
			})
		}
	}
	h := httpserver.Chain(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		trace = append(trace, "handler")
	}), mw("a"), mw("b"))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	want := []string{"a in", "b in", "handler", "b out", "a out"}
	if diff := cmp.Diff(want, trace); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

func TestLimitBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		limits   []int64 // outermost first
		size     int
		tooLarge bool
	}{
		{"default allows 64 KiB", []int64{0}, 64 << 10, false},
		{"default rejects 64 KiB + 1", []int64{0}, 64<<10 + 1, true},
		{"negative means default", []int64{-1}, 64<<10 + 1, true},
		{"exact limit", []int64{100}, 100, false},
		{"one over", []int64{100}, 101, true},
		{"route tightens", []int64{64 << 10, 100}, 101, true},
		{"route cannot loosen", []int64{100, 64 << 10}, 101, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var parseErr error
			var mws []httpserver.Middleware
			for _, l := range tt.limits {
				mws = append(mws, httpserver.LimitBody(l))
			}
			h := httpserver.Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				parseErr = r.ParseForm()
			}), mws...)
			body := "a=" + strings.Repeat("x", tt.size-2)
			req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			h.ServeHTTP(httptest.NewRecorder(), req)
			if got := httpserver.IsBodyTooLarge(parseErr); got != tt.tooLarge {
				t.Errorf("ParseForm error %v: too large = %v, want %v", parseErr, got, tt.tooLarge)
			}
			if !tt.tooLarge && parseErr != nil {
				t.Errorf("ParseForm = %v", parseErr)
			}
		})
	}
}

func TestIsBodyTooLarge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errTest, false},
		{io.ErrUnexpectedEOF, false},
		{&http.MaxBytesError{Limit: 1}, true},
		{fmt.Errorf("read: %w", &http.MaxBytesError{Limit: 1}), true},
		{errors.Join(errTest, &http.MaxBytesError{Limit: 1}), true},
	}
	for _, tt := range tests {
		if got := httpserver.IsBodyTooLarge(tt.err); got != tt.want {
			t.Errorf("IsBodyTooLarge(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// Streaming handlers need Flush and ResponseController to work through
// the recording writer.
func TestChainKeepsWriterCapabilities(t *testing.T) {
	t.Parallel()
	logger, _ := newLogger()
	metrics, err := httpserver.NewMetrics(prometheus.NewRegistry(), "test")
	if err != nil {
		t.Fatal(err)
	}
	var flusher, controllerFlush bool
	h := httpserver.Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, flusher = w.(http.Flusher)
		controllerFlush = http.NewResponseController(w).Flush() == nil
		_, _ = io.Copy(w, strings.NewReader("streamed")) // ReadFrom path
	}), httpserver.RequestID, httpserver.AccessLog(logger), metrics, httpserver.Recover(logger))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if !flusher || !controllerFlush || !rec.Flushed {
		t.Errorf("Flusher = %v, ResponseController.Flush ok = %v, flushed = %v", flusher, controllerFlush, rec.Flushed)
	}
	if rec.Body.String() != "streamed" {
		t.Errorf("body = %q", rec.Body.String())
	}
}

func TestAccessLogFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		handler     http.HandlerFunc
		wantStatus  float64
		wantBytes   float64
		wantAborted bool
	}{
		{"empty response is a 200", func(http.ResponseWriter, *http.Request) {}, 200, 0, false},
		{"explicit status", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusTeapot)
			_, _ = io.WriteString(w, "tea")
		}, 418, 3, false},
		{"informational header then final", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusAccepted)
		}, 202, 0, false},
		{"abort", func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logger, logs := newLogger()
			h := httpserver.Chain(tt.handler, httpserver.AccessLog(logger))
			func() {
				defer func() {
					if v := recover(); v != nil && v != http.ErrAbortHandler {
						t.Errorf("unexpected panic %v", v)
					}
				}()
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x?secret=1", nil))
			}()
			recs := logs.find(t, "http request")
			if len(recs) != 1 {
				t.Fatalf("got %d records", len(recs))
			}
			r := recs[0]
			if r["status"] != tt.wantStatus || r["bytes"] != tt.wantBytes || (r["aborted"] == true) != tt.wantAborted || r["path"] != "/x" {
				t.Errorf("record = %v", r)
			}
		})
	}
}

func TestAccessLogDisabledLevel(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	called := false
	h := httpserver.AccessLog(logger)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if !called || buf.Len() != 0 {
		t.Errorf("called = %v, logged %q", called, buf.String())
	}
}

// Whatever the query, headers and body hold, none of it reaches the log.
func FuzzAccessLogOmitsRequestData(f *testing.F) {
	f.Add("code", "SECRET", "Bearer SECRET", "client_secret=SECRET")
	f.Add("access_token", "eyJhbGciOiJFUzI1NiJ9.e30.sig", "Basic Y2xpZW50OnNlY3JldA==", `{"password":"hunter2"}`)
	f.Fuzz(func(t *testing.T, key, value, authz, body string) {
		const marker = "QQ7secretmarker"
		logger, logs := newLogger()
		h := httpserver.Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
		}), httpserver.RequestID, httpserver.AccessLog(logger), httpserver.Recover(logger))
		q := url.Values{key: {value + marker}, "code": {marker}}
		req := httptest.NewRequest(http.MethodPost, "/token?"+q.Encode(), strings.NewReader(body+marker))
		req.Header["Authorization"] = []string{authz + marker}
		req.Header["Cookie"] = []string{marker}
		h.ServeHTTP(httptest.NewRecorder(), req)
		if strings.Contains(logs.String(), marker) {
			t.Fatalf("request data in the log:\n%s", logs)
		}
	})
}

func TestRecoverStandalone(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	h := httpserver.Recover(logger)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "https://evil.example/")
		panic(errTest)
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusInternalServerError || rec.Header().Get("Location") != "" {
		t.Errorf("got %d, Location %q", rec.Code, rec.Header().Get("Location"))
	}
	if len(logs.find(t, "panic serving request")) != 1 {
		t.Errorf("panic not logged:\n%s", logs)
	}

	// ErrAbortHandler, even wrapped, passes through.
	abort := httpserver.Recover(logger)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic(fmt.Errorf("proxy: %w", http.ErrAbortHandler))
	}))
	defer func() {
		v := recover()
		if err, ok := v.(error); !ok || !errors.Is(err, http.ErrAbortHandler) {
			t.Errorf("recovered %v, want the abort to propagate", v)
		}
	}()
	abort.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
}

func TestMiddlewareNeedsLogger(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func(){
		"Recover":   func() { httpserver.Recover(nil) },
		"AccessLog": func() { httpserver.AccessLog(nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s(nil) did not panic", name)
				}
			}()
			mk()
		}()
	}
}

func TestNewMetricsRejects(t *testing.T) {
	t.Parallel()
	if _, err := httpserver.NewMetrics(nil, "idp"); !errors.Is(err, httpserver.ErrInvalidOptions) {
		t.Errorf("nil registry: %v", err)
	}
	if _, err := httpserver.NewMetrics(prometheus.NewRegistry(), "bad role"); !errors.Is(err, httpserver.ErrInvalidOptions) {
		t.Errorf("bad role: %v", err)
	}
	// A different metric already owning the name is a real conflict.
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "xaa_http_requests_total", Help: "x"}))
	if _, err := httpserver.NewMetrics(reg, "idp"); err == nil {
		t.Error("conflicting registration accepted")
	}
}

func TestMetricsLabels(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	metrics, err := httpserver.NewMetrics(reg, "gw")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/", http.StatusFound)
	})
	h := metrics(mux)
	for _, req := range []struct{ method, path string }{
		{"GET", "/items/1"}, {"GET", "/items/2"}, {"BREW", "/items/3"}, {"GET", "/redirect"}, {"GET", "/other"},
	} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(req.method, req.path, nil))
	}
	got := map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != "xaa_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			key := fmt.Sprintf("%s|%s|%s|%s", labels["server"], labels["pattern"], labels["method"], labels["status_class"])
			got[key] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"gw|GET /items/{id}|GET|2xx": 2,
		"gw|unmatched|OTHER|4xx":     1, // 405: method not allowed is not a route
		"gw|/redirect|GET|3xx":       1,
		"gw|unmatched|GET|4xx":       1,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request counters (-want +got):\n%s", diff)
	}
}
