package main

import (
	"errors"
	"strings"
	"testing"
)

func TestPolicyExplain(t *testing.T) {
	t.Parallel()
	cfg := deployment(t, "127.0.0.1:0")
	if _, _, err := runXAA(t, nil, "migrate", "--config", cfg); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if _, _, err := runXAA(t, nil, "seed", "--config", cfg, exampleSeed); err != nil {
		t.Fatalf("seed: %v", err)
	}
	const res = "http://127.0.0.1:8443/mcp/files"
	cases := []struct {
		name  string
		args  []string
		allow bool
		want  []string
	}{
		{"read_allowed", []string{"--user", "alice", "--scope", "files:read"}, true,
			[]string{"decision: ALLOW (allow)", "rule:     allow", "scopes:   files:read", "lifetime: 5m0s", `approved by "security@example.com"`}},
		{"write_needs_mfa", []string{"--user", "alice", "--scope", "files:read files:write"}, false,
			[]string{"DENY (step_up_required)", "rule:     stepup.acr", "acr_values=urn:openxaa:acr:mfa max_age=600"}},
		{"write_with_fresh_mfa", []string{"--user", "alice", "--scope", "files:write", "--acr", "urn:openxaa:acr:mfa", "--auth-age", "2m"}, true,
			[]string{"ALLOW", "scopes:   files:write", `step-up for scope "files:write" satisfied`}},
		{"write_with_stale_mfa", []string{"--user", "alice", "--scope", "files:write", "--acr", "urn:openxaa:acr:mfa", "--auth-age", "1h"}, false,
			[]string{"rule:     stepup.max_age"}},
		{"bob_cannot_write", []string{"--user", "bob", "--scope", "files:write"}, false,
			[]string{"DENY (deny_scope)", "scope.none_allowed", `grants it only to groups "eng"`}},
		{"carol_disabled", []string{"--user", "carol", "--scope", "files:read"}, false,
			[]string{"DENY (deny_access)", "user.disabled"}},
		{"unknown_audience", []string{"--user", "alice", "--audience", "https://as.other.example"}, false,
			[]string{"DENY (deny_target)", "target.audience_unknown"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"policy", "explain", "--config", cfg, "--app", "assistant", "--resource", res}, tc.args...)
			out, _, err := runXAA(t, nil, args...)
			if tc.allow != (err == nil) || (!tc.allow && !errors.Is(err, errPolicyDenies)) {
				t.Fatalf("err = %v, want allow=%v\n%s", err, tc.allow, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	t.Run("unknown_user", func(t *testing.T) {
		_, _, err := runXAA(t, nil, "policy", "explain", "--config", cfg, "--app", "assistant", "--resource", res, "--user", "mallory")
		if err == nil || errors.Is(err, errPolicyDenies) || !strings.Contains(err.Error(), "mallory") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("missing_flags", func(t *testing.T) {
		if _, _, err := runXAA(t, nil, "policy", "explain", "--config", cfg, "--user", "alice"); err == nil {
			t.Error("explain without --app and --resource succeeded")
		}
	})
}
