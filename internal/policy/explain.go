package policy

import (
	"strconv"
	"strings"
	"time"
)

// String returns the outcome's stable name (not an OAuth error code: the
// handler maps outcomes to codes).
func (o Outcome) String() string {
	switch o {
	case InvalidInput:
		return "invalid_input"
	case Allow:
		return "allow"
	case DenyTarget:
		return "deny_target"
	case DenyScope:
		return "deny_scope"
	case DenyAccess:
		return "deny_access"
	case DenySubject:
		return "deny_subject"
	case StepUpRequired:
		return "step_up_required"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Explain renders the decision for people, as `xaa policy explain` prints
// it: the verdict, the rule, what would be granted or demanded, and every
// reason.
func (d Decision) Explain() string {
	var b strings.Builder
	verdict := "DENY"
	if d.Allow {
		verdict = "ALLOW"
	}
	line := func(k, v string) {
		b.WriteString(k)
		b.WriteString(strings.Repeat(" ", max(1, 10-len(k))))
		b.WriteString(v)
		b.WriteByte('\n')
	}
	line("decision:", verdict+" ("+d.Outcome.String()+")")
	line("rule:", d.Rule)
	if d.Allow {
		line("scopes:", strings.Join(d.GrantedScopes, " "))
		line("lifetime:", d.Lifetime.String())
	}
	if c := d.StepUp; c != nil {
		var req []string
		if len(c.ACRValues) > 0 {
			req = append(req, "acr_values="+strings.Join(c.ACRValues, " "))
		}
		if c.MaxAge != NoMaxAge {
			req = append(req, "max_age="+strconv.FormatInt(int64(c.MaxAge/time.Second), 10))
		}
		line("step-up:", strings.Join(req, " "))
	}
	if d.ClientMessage != "" {
		line("client:", d.ClientMessage)
	}
	b.WriteString("why:\n")
	for _, r := range d.Reasons {
		b.WriteString("  - ")
		b.WriteString(r)
		b.WriteByte('\n')
	}
	return b.String()
}
