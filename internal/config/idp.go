package config

// IdP is the identity provider's login policy.
type IdP struct {
	// MFA says when a user enrolled in TOTP must give a one-time code at
	// login: "always" (the default) on every login, or "on_demand" only
	// when the request asks for it (acr_values with
	// urn:openxaa:acr:mfa), for example after a step-up challenge. With
	// on_demand a password-only login yields acr urn:openxaa:acr:pwd, and
	// connections whose scopes need MFA send the user back to log in with
	// the second factor.
	MFA string `yaml:"mfa"`
}

// IdP MFA policies.
const (
	MFAAlways   = "always"
	MFAOnDemand = "on_demand"
)

func (i *IdP) validate(v *validator) {
	switch i.MFA {
	case "", MFAAlways, MFAOnDemand:
	default:
		v.add("idp.mfa", "must be %q (the default) or %q, got %q", MFAAlways, MFAOnDemand, i.MFA)
	}
}
