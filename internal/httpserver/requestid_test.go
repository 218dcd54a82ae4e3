package httpserver_test

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/openxaa/xaa/internal/httpserver"
)

var safeID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestIDSeen runs RequestID with the given incoming header values and
// returns the id echoed in the response and the one the handler saw.
func requestIDSeen(incoming []string) (echoed, seen string) {
	h := httpserver.RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = httpserver.RequestIDFrom(r.Context())
	}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	if incoming != nil {
		req.Header["X-Request-Id"] = incoming // raw: bypass client-side validation
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Header().Get("X-Request-Id"), seen
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		incoming []string
		keep     bool
	}{
		{"absent", nil, false},
		{"empty", []string{""}, false},
		{"simple", []string{"abc"}, true},
		{"all allowed characters", []string{"AZaz09._-"}, true},
		{"64 characters", []string{strings.Repeat("a", 64)}, true},
		{"65 characters", []string{strings.Repeat("a", 65)}, false},
		{"space", []string{"a b"}, false},
		{"newline", []string{"a\nlevel=ERROR"}, false},
		{"quote", []string{`a"b`}, false},
		{"slash", []string{"a/b"}, false},
		{"colon", []string{"a:b"}, false},
		{"percent", []string{"a%0Ab"}, false},
		{"non-ASCII", []string{"ïd"}, false},
		{"NUL", []string{"a\x00"}, false},
		{"two values", []string{"a", "b"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			echoed, seen := requestIDSeen(tt.incoming)
			if echoed != seen {
				t.Errorf("response id %q != context id %q", echoed, seen)
			}
			if tt.keep {
				if echoed != tt.incoming[0] {
					t.Errorf("id = %q, want the incoming %q", echoed, tt.incoming[0])
				}
				return
			}
			if !regexp.MustCompile(`^[A-Z2-7]{26}$`).MatchString(echoed) {
				t.Errorf("id = %q, want a generated base32 id", echoed)
			}
		})
	}
}

func TestRequestIDsAreUnique(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		id, _ := requestIDSeen(nil)
		if seen[id] {
			t.Fatalf("duplicate generated id %q", id)
		}
		seen[id] = true
	}
}

func TestRequestIDFromOutsideMiddleware(t *testing.T) {
	t.Parallel()
	if id := httpserver.RequestIDFrom(t.Context()); id != "" {
		t.Errorf("RequestIDFrom(plain context) = %q", id)
	}
}

// Whatever a client sends, the id that reaches logs is safe, and a safe
// incoming id is kept.
func FuzzRequestID(f *testing.F) {
	for _, s := range []string{"", "abc", "a b", "a\r\nb", strings.Repeat("x", 64), strings.Repeat("x", 65), "ïd", `"},{`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		echoed, seen := requestIDSeen([]string{in})
		if echoed != seen || !safeID.MatchString(echoed) {
			t.Fatalf("incoming %q: echoed %q, seen %q", in, echoed, seen)
		}
		if safeID.MatchString(in) != (echoed == in) {
			t.Fatalf("incoming %q: echoed %q", in, echoed)
		}
	})
}
