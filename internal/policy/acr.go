package policy

// Authentication context class references (OIDC acr) that OpenXAA's own
// login produces. They are URNs in our namespace rather than the bare "1",
// "2" some IdPs use, so a value from another issuer can never be mistaken
// for one of ours.
const (
	// ACRPassword: the user proved a password only.
	ACRPassword = "urn:openxaa:acr:pwd"
	// ACRMFA: the user proved a password and a second factor (TOTP).
	ACRMFA = "urn:openxaa:acr:mfa"
)

// ACRRank orders the acr values this package knows: ACRPassword < ACRMFA.
// Any other value, including "", ranks 0, the lowest.
func ACRRank(acr string) int {
	switch acr {
	case ACRPassword:
		return 1
	case ACRMFA:
		return 2
	}
	return 0
}

// ACRSatisfies reports whether an authentication with acr have meets a
// requirement of acr want. An empty want is no requirement. Equal strings
// always satisfy. Otherwise both values must be known and have must rank at
// least as high: an unknown have is the lowest context, and an unknown want
// can be met only by exactly itself, because we cannot know what it is
// stronger than (fail closed, never "unknown means anything goes").
func ACRSatisfies(have, want string) bool {
	if want == "" || have == want {
		return true
	}
	h, w := ACRRank(have), ACRRank(want)
	return h > 0 && w > 0 && h >= w
}

// strongestACR returns the one acr that satisfies every value in wants, or
// ok=false when no single value can (two values that are different and not
// both known: they are not comparable). Empty wants need nothing.
func strongestACR(wants []string) (acr string, ok bool) {
	for _, w := range wants {
		switch {
		case acr == "" || ACRSatisfies(w, acr):
			acr = w
		case ACRSatisfies(acr, w):
		default:
			return "", false
		}
	}
	return acr, true
}
