package config

import (
	"strings"
	"testing"
)

func TestValidateIdPMFA(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mfa     string
		wantErr string
	}{
		{"", ""},
		{MFAAlways, ""},
		{MFAOnDemand, ""},
		{"sometimes", `idp.mfa: must be "always" (the default) or "on_demand", got "sometimes"`},
		{"Always", `got "Always"`},
	} {
		c := validConfig()
		c.IdP.MFA = tc.mfa
		err := c.Validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("mfa %q: %v", tc.mfa, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("mfa %q: err = %v, want %q", tc.mfa, err, tc.wantErr)
		}
	}
}
