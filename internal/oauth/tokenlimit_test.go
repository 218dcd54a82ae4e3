package oauth

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"golang.org/x/time/rate"
)

func TestTokenLimiter(t *testing.T) {
	t.Parallel()
	tight := rate.Limit(0.001) // one token, then nothing for ~17 minutes
	tests := []struct {
		name  string
		cfg   *TokenLimit
		calls [][2]string // client, address
		want  []bool      // allowed?
	}{
		{"per client", &TokenLimit{PerClient: tight, PerAddress: rate.Inf, Burst: 1},
			[][2]string{{"a", "1"}, {"a", "2"}, {"b", "1"}}, []bool{true, false, true}},
		{"per address", &TokenLimit{PerClient: rate.Inf, PerAddress: tight, Burst: 1},
			[][2]string{{"a", "1"}, {"b", "1"}, {"b", "2"}}, []bool{true, false, true}},
		{"both off", &TokenLimit{PerClient: rate.Inf, PerAddress: rate.Inf},
			[][2]string{{"a", "1"}, {"a", "1"}, {"a", "1"}}, []bool{true, true, true}},
		{"defaults allow a burst", nil,
			[][2]string{{"a", "1"}, {"a", "1"}, {"a", "1"}}, []bool{true, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := NewTokenLimiter(tt.cfg)
			for i, c := range tt.calls {
				err := l.Allow(c[0], c[1])
				if got := err == nil; got != tt.want[i] {
					t.Fatalf("call %d (%v): allowed = %v, want %v (err %v)", i, c, got, tt.want[i], err)
				}
				if err == nil {
					continue
				}
				var oe *Error
				if !errors.As(err, &oe) || oe.HTTPStatus() != http.StatusTooManyRequests || oe.Header.Get("Retry-After") == "" {
					t.Fatalf("call %d: refusal %#v is not a 429 with Retry-After", i, err)
				}
			}
		})
	}
}

// TestTokenLimiterMemoryIsBounded: rotating keys cannot grow the table
// past its cap.
func TestTokenLimiterMemoryIsBounded(t *testing.T) {
	t.Parallel()
	l := NewTokenLimiter(&TokenLimit{PerClient: 1, PerAddress: rate.Inf, Burst: 5})
	for i := range maxTokenLimiterKeys + 500 {
		_ = l.Allow(fmt.Sprintf("client-%d", i), "addr")
	}
	if n := len(l.keys); n > maxTokenLimiterKeys {
		t.Fatalf("limiter holds %d keys, cap is %d", n, maxTokenLimiterKeys)
	}
}
