package oauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/store"
)

// written is what a client sees of an error response.
type written struct {
	Status int
	Header http.Header
	Body   map[string]any
}

// render runs WriteError and returns the response and what was logged.
func render(t *testing.T, r *http.Request, err error) (written, string) {
	t.Helper()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rec := httptest.NewRecorder()
	WriteError(rec, r, err, log)
	var body map[string]any
	if jerr := json.Unmarshal(rec.Body.Bytes(), &body); jerr != nil {
		t.Fatalf("body %q is not JSON: %v", rec.Body.String(), jerr)
	}
	return written{Status: rec.Code, Header: rec.Header(), Body: body}, logs.String()
}

func tokenRequest(header ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/token", nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	return r
}

func TestWriteError(t *testing.T) {
	t.Parallel()
	secretCause := errors.New("pq: password authentication failed for user xaa at 10.0.0.5")
	withBasic := tokenRequest("Authorization", "Basic Zm9vOmJhcg==")
	rateLimitedErr := rateLimited(59500 * time.Millisecond)

	tests := []struct {
		name    string
		r       *http.Request
		err     error
		status  int
		body    map[string]any
		headers map[string]string // "" means the header must be absent
		logHas  string            // substring the log must contain
	}{
		{
			name:   "invalid_request is 400",
			err:    InvalidRequest("parameter 'scope' is repeated"),
			status: 400,
			body:   map[string]any{"error": "invalid_request", "error_description": "parameter 'scope' is repeated"},
			headers: map[string]string{
				"Content-Type":     "application/json;charset=UTF-8",
				"Cache-Control":    "no-store",
				"Pragma":           "no-cache",
				"WWW-Authenticate": "",
			},
		},
		{
			name:    "invalid_client without Authorization header: 401, no challenge",
			err:     InvalidClient("client authentication failed"),
			status:  401,
			body:    map[string]any{"error": "invalid_client", "error_description": "client authentication failed"},
			headers: map[string]string{"WWW-Authenticate": ""},
		},
		{
			name: "invalid_client after header auth carries the authenticator's challenge",
			r:    withBasic,
			err: &Error{Code: CodeInvalidClient, Description: "client authentication failed",
				Header: http.Header{"Www-Authenticate": {BasicChallenge("idp")}}},
			status:  401,
			body:    map[string]any{"error": "invalid_client", "error_description": "client authentication failed"},
			headers: map[string]string{"WWW-Authenticate": `Basic realm="idp", charset="UTF-8"`},
		},
		{
			name:    "invalid_client with a header but no challenge gets the default one",
			r:       withBasic,
			err:     InvalidClient("client authentication failed"),
			status:  401,
			body:    map[string]any{"error": "invalid_client", "error_description": "client authentication failed"},
			headers: map[string]string{"WWW-Authenticate": `Basic realm="oauth", charset="UTF-8"`},
		},
		{
			name:    "wrapped *Error renders the same",
			err:     fmt.Errorf("handler: %w", InvalidGrant("the ID-JAG has expired")),
			status:  400,
			body:    map[string]any{"error": "invalid_grant", "error_description": "the ID-JAG has expired"},
			headers: map[string]string{"WWW-Authenticate": ""},
		},
		{
			name:   "plain error is an opaque 500 and the cause is logged",
			err:    fmt.Errorf("mint: %w", secretCause),
			status: 500,
			body:   map[string]any{"error": "server_error", "error_description": "internal error"},
			logHas: "password authentication failed",
		},
		{
			name:   "server_error *Error hides its cause",
			err:    ServerError("internal error").WithCause(secretCause),
			status: 500,
			body:   map[string]any{"error": "server_error", "error_description": "internal error"},
			logHas: "level=ERROR",
		},
		{
			name:   "ErrUnavailable is 503",
			err:    fmt.Errorf("record jti: %w", store.ErrUnavailable),
			status: 503,
			body: map[string]any{"error": "temporarily_unavailable",
				"error_description": "the service is temporarily unavailable; retry later"},
			logHas: "store: unavailable",
		},
		{
			name:   "ErrUnavailable inside an *Error is still 503, never a definitive rejection",
			err:    InvalidGrant("the ID-JAG was already used").WithCause(store.ErrUnavailable),
			status: 503,
			body: map[string]any{"error": "temporarily_unavailable",
				"error_description": "the service is temporarily unavailable; retry later"},
		},
		{
			name:   "nil error is a 500, never a success",
			err:    nil,
			status: 500,
			body:   map[string]any{"error": "server_error", "error_description": "internal error"},
		},
		{
			name:   "an *Error without a code is a 500",
			err:    &Error{Description: "oops"},
			status: 500,
			body:   map[string]any{"error": "server_error", "error_description": "internal error"},
		},
		{
			name:   "an *Error with a malformed code is a 500",
			err:    &Error{Code: "bad\"code"},
			status: 500,
			body:   map[string]any{"error": "server_error", "error_description": "internal error"},
		},
		{
			name:   "step-up carries max_age and acr_values",
			err:    InsufficientUserAuthentication("step-up required", []string{"mfa", "phr"}, 300*time.Second),
			status: 400,
			body: map[string]any{"error": "insufficient_user_authentication", "error_description": "step-up required",
				"max_age": 300.0, "acr_values": "mfa phr"},
		},
		{
			name:   "step-up with max_age 0 keeps it",
			err:    InsufficientUserAuthentication("re-authenticate", nil, 0),
			status: 400,
			body:   map[string]any{"error": "insufficient_user_authentication", "error_description": "re-authenticate", "max_age": 0.0},
		},
		{
			name:   "step-up without max_age omits it",
			err:    InsufficientUserAuthentication("step-up required", []string{"mfa"}, NoMaxAge),
			status: 400,
			body:   map[string]any{"error": "insufficient_user_authentication", "error_description": "step-up required", "acr_values": "mfa"},
		},
		{
			name: "Extra cannot override the standard members",
			err: &Error{Code: CodeInvalidScope, Description: "no", Extra: map[string]any{
				"error": "access_granted", "error_description": "yes", "error_uri": "https://evil.example", "hint": "x"}},
			status: 400,
			body:   map[string]any{"error": "invalid_scope", "error_description": "no", "hint": "x"},
		},
		{
			name:   "error_uri is sent",
			err:    &Error{Code: CodeInvalidTarget, Description: "unknown resource", URI: "https://docs.example/errors#target"},
			status: 400,
			body: map[string]any{"error": "invalid_target", "error_description": "unknown resource",
				"error_uri": "https://docs.example/errors#target"},
		},
		{
			name:   "description is forced into the RFC 6749 charset",
			err:    InvalidRequest("bad \"value\" \\ with\nnewline and é"),
			status: 400,
			body:   map[string]any{"error": "invalid_request", "error_description": "bad 'value' ? with?newline and ??"},
		},
		{
			name:   "long description is capped",
			err:    InvalidRequest(strings.Repeat("a", 1000)),
			status: 400,
			body:   map[string]any{"error": "invalid_request", "error_description": strings.Repeat("a", 253) + "..."},
		},
		{
			name:   "rate limited: 429 with Retry-After rounded up, no challenge",
			r:      withBasic,
			err:    rateLimitedErr,
			status: 429,
			body: map[string]any{"error": "invalid_client",
				"error_description": "too many failed client authentication attempts; retry later"},
			headers: map[string]string{"Retry-After": "60", "WWW-Authenticate": ""},
		},
		{
			name: "Header cannot override the caching headers",
			err: &Error{Code: CodeInvalidRequest, Description: "x",
				Header: http.Header{"Cache-Control": {"public, max-age=3600"}, "Allow": {"POST"}}},
			status:  400,
			body:    map[string]any{"error": "invalid_request", "error_description": "x"},
			headers: map[string]string{"Cache-Control": "no-store", "Allow": "POST"},
		},
		{
			name:   "explicit status wins",
			err:    &Error{Code: CodeAccessDenied, Description: "denied", Status: http.StatusForbidden},
			status: 403,
			body:   map[string]any{"error": "access_denied", "error_description": "denied"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := tt.r
			if r == nil {
				r = tokenRequest()
			}
			got, logs := render(t, r, tt.err)
			if got.Status != tt.status {
				t.Errorf("status = %d, want %d", got.Status, tt.status)
			}
			if diff := cmp.Diff(tt.body, got.Body); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
			for k, want := range tt.headers {
				if g := got.Header.Get(k); g != want {
					t.Errorf("header %s = %q, want %q", k, g, want)
				}
			}
			for _, k := range []string{"Cache-Control", "Pragma", "Content-Type"} {
				if got.Header.Get(k) == "" {
					t.Errorf("header %s missing", k)
				}
			}
			if strings.Contains(fmt.Sprint(got.Body), "password authentication") {
				t.Errorf("body leaks the internal cause: %v", got.Body)
			}
			if tt.logHas != "" && !strings.Contains(logs, tt.logHas) {
				t.Errorf("log %q does not contain %q", logs, tt.logHas)
			}
		})
	}
}

func TestWriteErrorNilLogger(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	WriteError(rec, tokenRequest(), errors.New("boom"), nil)
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", rec.Code)
	}
}

func TestErrorUnwrap(t *testing.T) {
	t.Parallel()
	e := InvalidClient(descAuthFailed).WithCause(ErrWrongSecret)
	if !errors.Is(fmt.Errorf("wrapped: %w", e), ErrWrongSecret) {
		t.Error("errors.Is does not reach the cause")
	}
	if got, want := e.Error(), "oauth: invalid_client: client authentication failed: oauth: client secret does not match"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestDefaultStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		e    *Error
		want int
	}{
		{InvalidRequest(""), 400},
		{InvalidClient(""), 401},
		{InvalidGrant(""), 400},
		{UnauthorizedClient(""), 400},
		{UnsupportedGrantType(""), 400},
		{InvalidScope(""), 400},
		{InvalidTarget(""), 400},
		{AccessDenied(""), 400},
		{InsufficientUserAuthentication("", nil, NoMaxAge), 400},
		{ServerError(""), 500},
		{TemporarilyUnavailable(""), 503},
	}
	for _, tt := range tests {
		if got := tt.e.HTTPStatus(); got != tt.want {
			t.Errorf("%s: status %d, want %d", tt.e.Code, got, tt.want)
		}
	}
}

func TestExcerpt(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"scope", "'scope'"},
		{"a'b\"c\\d\x00é", "'a?b?c?d???'"},
		{strings.Repeat("x", 40), "'" + strings.Repeat("x", 32) + "...'"},
	}
	for _, tt := range tests {
		if got := Excerpt(tt.in); got != tt.want {
			t.Errorf("Excerpt(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestBasicChallengeEscapes(t *testing.T) {
	t.Parallel()
	got := BasicChallenge("a\"b\\c\r\nd")
	want := `Basic realm="a\"b\\cd", charset="UTF-8"`
	if got != want {
		t.Errorf("BasicChallenge = %q, want %q", got, want)
	}
}
