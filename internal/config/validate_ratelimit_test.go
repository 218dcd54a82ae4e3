package config

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidateTokenRateLimitValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		r    TokenRateLimit
	}{
		{"defaults", Default().TokenRateLimit},
		{"zero means the defaults", TokenRateLimit{}},
		{"fractional rate", TokenRateLimit{PerClient: 0.5, PerAddress: 0.25, Burst: 1}},
		{"at the caps", TokenRateLimit{PerClient: 1e6, PerAddress: 1e6, Burst: 1e6}},
		{"disabled", TokenRateLimit{Disabled: true}},
		{"disabled keeps its tuning", TokenRateLimit{PerClient: 5, PerAddress: 5, Burst: 10, Disabled: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			c.TokenRateLimit = tt.r
			if err := c.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestValidateTokenRateLimitErrors(t *testing.T) {
	t.Parallel()
	const (
		perClient  = `token_rate_limit.per_client: must be 0 (the default, 100) or a rate in requests per second up to 1000000, got %s; to turn limiting off set token_rate_limit.disabled: true`
		perAddress = `token_rate_limit.per_address: must be 0 (the default, 100) or a rate in requests per second up to 1000000, got %s; to turn limiting off set token_rate_limit.disabled: true`
		burst      = `token_rate_limit.burst: must be 0 (the default, two seconds' worth of per_client) or from 1 to 1000000, got %s`
	)
	tests := []struct {
		name string
		r    TokenRateLimit
		want []string
	}{
		{"negative per_client", TokenRateLimit{PerClient: -1}, []string{fmtMsg(perClient, "-1")}},
		{"negative per_address", TokenRateLimit{PerAddress: -0.5}, []string{fmtMsg(perAddress, "-0.5")}},
		{"negative burst", TokenRateLimit{Burst: -1}, []string{fmtMsg(burst, "-1")}},
		{"per_client over the cap", TokenRateLimit{PerClient: 1e6 + 1}, []string{fmtMsg(perClient, "1.000001e+06")}},
		{"per_address infinite", TokenRateLimit{PerAddress: math.Inf(1)}, []string{fmtMsg(perAddress, "+Inf")}},
		{"per_client NaN", TokenRateLimit{PerClient: math.NaN()}, []string{fmtMsg(perClient, "NaN")}},
		{"burst over the cap", TokenRateLimit{Burst: 1e6 + 1}, []string{fmtMsg(burst, "1000001")}},
		{"disabled does not excuse a bad value", TokenRateLimit{PerClient: -1, Disabled: true}, []string{fmtMsg(perClient, "-1")}},
		{
			name: "every problem at once",
			r:    TokenRateLimit{PerClient: -1, PerAddress: 2e6, Burst: -3},
			want: []string{fmtMsg(perClient, "-1"), fmtMsg(perAddress, "2e+06"), fmtMsg(burst, "-3")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			c.TokenRateLimit = tt.r
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate succeeded")
			}
			if diff := cmp.Diff(tt.want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("error lines (-want +got):\n%s", diff)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Error("errors.Is(err, ErrInvalid) = false")
			}
		})
	}
}

func fmtMsg(format, got string) string { return strings.Replace(format, "%s", got, 1) }

// TestTokenRateLimitFromFile: the section decodes, YAML's special floats
// fail validation at their line, and a word where a number belongs is a
// type error rather than a silent default.
func TestTokenRateLimitFromFile(t *testing.T) {
	t.Parallel()
	const head = "keys:\n  wrapping_key_file: /k\ntoken_rate_limit:\n"
	tests := []struct {
		name    string
		body    string
		want    TokenRateLimit
		loadErr error  // from Load
		errAt   string // substring of Validate's error
	}{
		{name: "values", body: "  per_client: 0.5\n  per_address: 20\n  burst: 3\n  disabled: true\n",
			want: TokenRateLimit{PerClient: 0.5, PerAddress: 20, Burst: 3, Disabled: true}},
		{name: "unset keys keep the defaults", body: "  burst: 1\n",
			want: TokenRateLimit{PerClient: 100, PerAddress: 100, Burst: 1}},
		{name: "infinity", body: "  per_client: .inf\n", errAt: ":4:15: token_rate_limit.per_client: must be 0"},
		{name: "NaN", body: "  per_address: .nan\n", errAt: ":4:16: token_rate_limit.per_address: must be 0"},
		{name: "unlimited is not a number", body: "  per_client: unlimited\n", loadErr: ErrType},
		{name: "fractional burst", body: "  burst: 1.5\n", loadErr: ErrType},
		{name: "yes is not a boolean", body: "  disabled: yes\n", loadErr: ErrType},
		{name: "typo", body: "  per_clinet: 1\n", loadErr: ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Load(writeFile(t, "config.yaml", head+tt.body, 0o600), nil)
			if tt.loadErr != nil {
				if !errors.Is(err, tt.loadErr) {
					t.Errorf("Load = %v; want %v", err, tt.loadErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			err = cfg.Validate()
			if tt.errAt != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errAt) {
					t.Errorf("Validate = %v; want an error containing %q", err, tt.errAt)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if diff := cmp.Diff(tt.want, cfg.TokenRateLimit); diff != "" {
				t.Errorf("token_rate_limit (-want +got):\n%s", diff)
			}
		})
	}
}
