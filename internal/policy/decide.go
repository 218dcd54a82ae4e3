package policy

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Decide evaluates the rules in docs/policy.md order; the first that fails
// decides. It never mutates in, and the Decision shares no memory with it.
//
// Principals (app, user) are checked before the target so that a disabled
// account gets the same answer whatever it asks for, learns nothing about
// which audiences and resources exist, and the audit record names the fact
// a security team cares about most.
func Decide(in Input) Decision {
	e := &eval{in: &in}
	if bad := e.validate(); len(bad) > 0 {
		return deny(InvalidInput, RuleInputInvalid, "the server could not evaluate policy for this request", bad...)
	}
	for _, step := range [...]func() (Decision, bool){
		e.subject,
		e.principals,
		e.target,
		e.connection,
		e.membership,
		e.scopes,
		e.stepUp,
	} {
		if d, done := step(); done {
			return d
		}
	}
	return e.allow()
}

// eval carries the facts established by earlier rules to later ones.
type eval struct {
	in *Input

	groups    []string // the user's groups that the connection names, sorted
	entitled  []string // resource scopes the user's groups get, resource order
	available []string // entitled, narrowed by a refresh token's grant
	granted   []string
	reasons   []string // collected for the allow decision
}

func (e *eval) validate() []string {
	in := e.in
	var bad []string
	if in.Now.IsZero() {
		bad = append(bad, "the decision time is unset")
	}
	if in.User.ID == "" {
		bad = append(bad, "the user has no ID")
	}
	if in.App.ClientID == "" {
		bad = append(bad, "the requesting app has no client_id")
	}
	if in.AudienceKnown && in.Audience == "" {
		bad = append(bad, "the audience is marked known but is empty")
	}
	if in.ResourceGovernedByAudience && !in.ResourceKnown {
		bad = append(bad, "the resource is marked governed by the audience but unknown")
	}
	if in.Refresh != nil && in.Refresh.ExpiresAt.IsZero() {
		bad = append(bad, "the refresh token subject has no expiry")
	}
	if c := in.Connection; c != nil {
		if c.ID == "" {
			bad = append(bad, "the connection has no ID")
		}
		// Loading the wrong row is the classic confused-deputy bug; the
		// connection must be the one for exactly this app and resource.
		if c.App != in.App.ClientID {
			bad = append(bad, fmt.Sprintf("connection %s belongs to app %s, not to the requesting app %s", q(c.ID), q(c.App), q(in.App.ClientID)))
		}
		if c.Resource != in.Resource {
			bad = append(bad, fmt.Sprintf("connection %s is for resource %s, not for the requested resource %s", q(c.ID), q(c.Resource), q(in.Resource)))
		}
		if c.IDJAGLifetime < 0 || (c.IDJAGLifetime > 0 && c.IDJAGLifetime < MinLifetime) {
			bad = append(bad, fmt.Sprintf("connection %s has an invalid ID-JAG lifetime %s (want 0 for the default, or at least %s)", q(c.ID), c.IDJAGLifetime, MinLifetime))
		}
		var badAge []string
		for s, r := range c.StepUp {
			if r.MaxAge < 0 || (r.MaxAge > 0 && r.MaxAge < time.Second) {
				badAge = append(badAge, s)
			}
		}
		slices.Sort(badAge) // map order must not leak into the reasons
		for _, s := range badAge {
			bad = append(bad, fmt.Sprintf("connection %s has an invalid step-up max age %s for scope %s (want 0 for none, or at least 1s)",
				q(c.ID), c.StepUp[s].MaxAge, q(s)))
		}
	}
	return bad
}

// subject: a refresh token whose authorization has ended (or ends within
// MinLifetime) cannot back an ID-JAG. The caller should have refused it
// already; this is the choke point making sure.
func (e *eval) subject() (Decision, bool) {
	r := e.in.Refresh
	if r == nil || r.ExpiresAt.Sub(e.in.Now) >= MinLifetime {
		return Decision{}, false
	}
	return deny(DenySubject, RuleSubjectExpired, "the refresh token has expired",
		"the refresh token's authorization "+endsPhrase(r.ExpiresAt, e.in.Now)+"; an ID-JAG must not outlive it"), true
}

func (e *eval) principals() (Decision, bool) {
	if d, ok := CheckPrincipals(e.in.App, e.in.User); !ok {
		return d, true
	}
	return Decision{}, false
}

// CheckPrincipals is the user-and-app status check that every grant runs:
// the authorization-code and refresh-token grants call it directly (they
// mint no ID-JAG, so Decide does not apply), token exchange through
// Decide. One function, so no grant type can skip it (the Dex lesson). ok
// is false when either is disabled, and d is then the denial to act on
// and audit.
func CheckPrincipals(app App, user User) (d Decision, ok bool) {
	if !app.Enabled {
		msg, why := "the client is disabled", fmt.Sprintf("requesting app %s is disabled", q(app.ClientID))
		if !app.RevokedAt.IsZero() {
			msg = "the client was revoked at " + clientTime(app.RevokedAt) + because(app.RevokedReason)
			why = fmt.Sprintf("requesting app %s was revoked at %s%s", q(app.ClientID), ts(app.RevokedAt), reasonSuffix(app.RevokedReason))
		}
		return deny(DenyAccess, RuleAppDisabled, msg, why), false
	}
	if !user.Enabled {
		msg, why := "the user's account is disabled", fmt.Sprintf("user %s is disabled", q(user.ID))
		if !user.DisabledAt.IsZero() {
			msg = "the user's account was disabled at " + clientTime(user.DisabledAt) + because(user.DisabledReason)
			why = fmt.Sprintf("user %s was disabled at %s%s", q(user.ID), ts(user.DisabledAt), reasonSuffix(user.DisabledReason))
		}
		return deny(DenyAccess, RuleUserDisabled, msg, why), false
	}
	return Decision{}, true
}

func (e *eval) target() (Decision, bool) {
	in := e.in
	switch {
	case !in.AudienceKnown:
		why := "the request names no audience that resolves to a registered authorization server"
		if in.Audience != "" {
			why = fmt.Sprintf("audience %s is not a registered authorization server", q(in.Audience))
		}
		return deny(DenyTarget, RuleAudienceUnknown, "the audience is not a known authorization server", why), true
	case in.Resource == "":
		return deny(DenyTarget, RuleResourceMissing, "the resource parameter is required",
			"the request names no resource; OpenXAA requires resource for MCP servers, since a connection is to one resource"), true
	case !in.ResourceKnown:
		return deny(DenyTarget, RuleResourceUnknown, "the resource is not known",
			fmt.Sprintf("resource %s is not registered in the directory", q(in.Resource))), true
	case !in.ResourceGovernedByAudience:
		return deny(DenyTarget, RuleResourceNotGoverned, "the resource is not governed by the requested audience",
			fmt.Sprintf("resource %s is not governed by authorization server %s", q(in.Resource), q(in.Audience))), true
	case in.Connection == nil:
		// No connection at all: this resource is not an allowed target
		// for this app (RFC 8693 §2.2.2: unwilling to issue for the
		// target). A connection that exists but is not in force is an
		// entitlement question, access_denied, below.
		return deny(DenyTarget, RuleConnectionMissing, "the client has no connection to this resource",
			fmt.Sprintf("app %s has no connection to resource %s; an admin must create and approve one", q(in.App.ClientID), q(in.Resource))), true
	}
	return Decision{}, false
}

func (e *eval) connection() (Decision, bool) {
	in, c := e.in, e.in.Connection
	name := e.connName()
	at := ""
	if !c.StatusAt.IsZero() {
		at = " at " + ts(c.StatusAt)
	}
	// The client's own connection is named in its message: the app's
	// operator needs the id, the time and the admin's reason to act.
	cat := ""
	if !c.StatusAt.IsZero() {
		cat = " at " + clientTime(c.StatusAt)
	}
	id, why := "the connection "+c.ID, reasonSuffix(c.StatusReason)
	switch c.Status {
	case StatusApproved:
	case StatusPending:
		return deny(DenyAccess, RuleConnectionPending, id+" from this client to the resource awaits approval",
			fmt.Sprintf("%s is pending approval (requested%s)", name, orUnknown(at))), true
	case StatusDenied:
		return deny(DenyAccess, RuleConnectionDenied, "the request for "+id+" was denied"+cat+because(c.StatusReason),
			fmt.Sprintf("%s was denied%s%s", name, at, why)), true
	case StatusSuspended:
		return deny(DenyAccess, RuleConnectionSuspended, id+" was suspended"+cat+because(c.StatusReason),
			fmt.Sprintf("%s was suspended%s%s", name, at, why)), true
	case StatusRevoked:
		return deny(DenyAccess, RuleConnectionRevoked, id+" was revoked"+cat+because(c.StatusReason),
			fmt.Sprintf("%s was revoked%s%s", name, at, why)), true
	case StatusExpired:
		when := c.ExpiresAt
		if when.IsZero() {
			when = c.StatusAt
		}
		date := " at an unknown time"
		if !when.IsZero() {
			date = " " + ts(when)
		}
		return deny(DenyAccess, RuleConnectionExpired, expiredMessage(id, when),
			fmt.Sprintf("%s expired: its recertification date%s passed", name, date)), true
	default:
		return deny(DenyAccess, RuleConnectionStatusUnknown, "the connection from this client to the resource is not in force",
			fmt.Sprintf("%s has status %s, which this version does not recognise; only %q can mint", name, q(c.Status), StatusApproved)), true
	}
	if c.Approver == "" {
		return deny(DenyAccess, RuleConnectionUnapproved, "the connection from this client to the resource is not approved",
			fmt.Sprintf("%s has status %q but names no approver; a connection must be approved by someone before it can mint", name, StatusApproved)), true
	}
	if !c.ExpiresAt.IsZero() && c.ExpiresAt.Sub(in.Now) < MinLifetime {
		return deny(DenyAccess, RuleConnectionExpired, expiredMessage(id, c.ExpiresAt),
			name+" "+endsPhrase(c.ExpiresAt, in.Now)+" (its recertification date)"), true
	}
	s := fmt.Sprintf("%s is approved by %s", name, q(c.Approver))
	if !c.ExpiresAt.IsZero() {
		s += ", until " + ts(c.ExpiresAt)
	}
	e.reasons = append(e.reasons, s)
	return Decision{}, false
}

func (e *eval) membership() (Decision, bool) {
	in, c := e.in, e.in.Connection
	for _, g := range in.User.Groups {
		if _, ok := c.GroupScopes[g]; ok && !slices.Contains(e.groups, g) {
			e.groups = append(e.groups, g)
		}
	}
	slices.Sort(e.groups)
	if len(e.groups) == 0 {
		why := fmt.Sprintf("%s grants no group any scope", e.connName())
		if len(c.GroupScopes) > 0 {
			why = fmt.Sprintf("user %s is in none of the groups %s grants scopes to (%s)",
				q(in.User.ID), e.connName(), list(slices.Sorted(maps.Keys(c.GroupScopes))))
		}
		reasons := []string{why}
		msg := "the user is not in a group allowed to use this resource"
		// The newest removal from a group the connection grants to is
		// the likely cause; the client hears when and why, not which
		// group.
		for _, r := range in.User.Removals {
			if _, ok := c.GroupScopes[r.Group]; ok && !r.At.IsZero() {
				msg = "the user was removed at " + clientTime(r.At) + " from a group allowed to use this resource" + because(r.Reason)
				reasons = append(reasons, fmt.Sprintf("user %s was removed from group %s at %s%s", q(in.User.ID), q(r.Group), ts(r.At), reasonSuffix(r.Reason)))
				break
			}
		}
		return deny(DenyAccess, RuleUserNotInGroup, msg, reasons...), true
	}
	e.reasons = append(e.reasons, fmt.Sprintf("user %s is in the connection's groups %s", q(in.User.ID), list(e.groups)))
	return Decision{}, false
}

// scopes narrows: requested ∩ (scopes of the user's groups) ∩ resource
// scopes (∩ the refresh token's grant). Exact string compare throughout.
func (e *eval) scopes() (Decision, bool) {
	in, c := e.in, e.in.Connection
	for _, s := range in.ResourceScopes {
		if slices.Contains(e.entitled, s) {
			continue
		}
		for _, g := range e.groups {
			if slices.Contains(c.GroupScopes[g], s) {
				e.entitled = append(e.entitled, s)
				break
			}
		}
	}
	if len(e.entitled) == 0 {
		return deny(DenyAccess, RuleUserNoScopes, "the user is not entitled to any scope on this resource",
			fmt.Sprintf("the groups %s of user %s get no scope that resource %s defines on %s",
				list(e.groups), q(in.User.ID), q(in.Resource), e.connName())), true
	}
	e.available = e.entitled
	if in.Refresh != nil {
		e.available = nil
		for _, s := range e.entitled {
			if slices.Contains(in.Refresh.Scopes, s) {
				e.available = append(e.available, s)
			}
		}
	}

	if len(in.RequestedScopes) == 0 {
		return e.defaultScopes()
	}
	var dropped []string
	for _, s := range dedup(in.RequestedScopes) {
		if slices.Contains(e.available, s) {
			e.granted = append(e.granted, s)
		} else {
			dropped = append(dropped, "dropped "+e.whyNot(s))
		}
	}
	if len(e.granted) == 0 {
		msg := "none of the requested scopes is allowed"
		var may string
		if len(e.available) > 0 {
			msg += "; you may request: " + strings.Join(e.available, " ")
			may = "user " + q(in.User.ID) + " may request " + list(e.available)
		} else {
			may = "the refresh token's grant covers none of the scopes user " + q(in.User.ID) + " may get (" + list(e.entitled) + ")"
		}
		return deny(DenyScope, RuleScopeNoneAllowed, msg, append(dropped, may)...), true
	}
	e.reasons = append(e.reasons, dropped...)
	return Decision{}, false
}

// defaultScopes picks the grant when none was requested (RFC 6749 §3.3
// lets the server apply a default): every scope available to the user
// whose step-up rule, if any, the current authentication already meets.
// A default never triggers a step-up for a scope nobody asked for; only if
// nothing at all is left does the client get the step-up challenge.
func (e *eval) defaultScopes() (Decision, bool) {
	in := e.in
	if len(e.available) == 0 {
		return deny(DenyScope, RuleScopeNoneAllowed, "the refresh token's grant covers none of the scopes allowed on this resource",
			"no scope was requested, and the refresh token's grant covers none of the scopes user "+q(in.User.ID)+" may get ("+list(e.entitled)+")"), true
	}
	var held []string
	for _, s := range e.available {
		if r, ok := e.rule(s); ok {
			if why, met := e.meets(s, r); !met {
				held = append(held, s)
				e.reasons = append(e.reasons, "left "+q(s)+" out of the default grant: "+why)
				continue
			}
		}
		e.granted = append(e.granted, s)
	}
	if len(e.granted) == 0 {
		// Everything needs a step-up: ask for it rather than deny.
		return e.challenge(held, false), true
	}
	e.reasons = append(e.reasons, "no scope was requested; granted the default: every scope the user may get without a step-up")
	return Decision{}, false
}

// stepUp requires every granted scope's rule to be met. A scope the client
// asked for is never dropped silently because the user authenticated too
// weakly: the client asked for it, so it gets a challenge and decides.
func (e *eval) stepUp() (Decision, bool) {
	unmet := false
	for _, s := range e.granted {
		if r, ok := e.rule(s); ok {
			why, met := e.meets(s, r)
			if !met {
				unmet = true
				continue
			}
			e.reasons = append(e.reasons, why)
		}
	}
	if !unmet {
		return Decision{}, false
	}
	return e.challenge(e.granted, true), true
}

// challenge builds the step-up denial for scopes, combining all of their
// rules (met or not: the new login must keep meeting those too). requested
// says whether the client named the scopes (and so could leave them out).
func (e *eval) challenge(scopes []string, requested bool) Decision {
	var acrs, why, gated []string
	maxAge := NoMaxAge
	acrUnmet := false
	for _, s := range scopes {
		r, ok := e.rule(s)
		if !ok {
			continue
		}
		gated = append(gated, s)
		if r.ACR != "" {
			acrs = append(acrs, r.ACR)
			if !ACRSatisfies(e.in.Auth.ACR, r.ACR) {
				acrUnmet = true
			}
		}
		if r.MaxAge > 0 && (maxAge == NoMaxAge || r.MaxAge < maxAge) {
			maxAge = r.MaxAge
		}
		if w, met := e.meets(s, r); !met {
			why = append(why, w)
		}
	}
	acr, ok := strongestACR(acrs)
	if !ok {
		return deny(DenyAccess, RuleStepUpConflict, "the requested scopes need authentication contexts that no single login can meet; request fewer scopes",
			append(why, fmt.Sprintf("%s requires authentication contexts %s for scopes %s, and no single login meets all of them",
				e.connName(), list(dedup(acrs)), list(gated)))...)
	}
	ch := &StepUpChallenge{MaxAge: maxAge}
	ask := "authenticate again"
	if acr != "" {
		ch.ACRValues = []string{acr}
		ask += " with acr " + q(acr)
	}
	if maxAge != NoMaxAge {
		ask += fmt.Sprintf(" (max_age %d s)", int64(maxAge/time.Second))
	}
	rule := RuleStepUpMaxAge
	if acrUnmet {
		rule = RuleStepUpACR
	}
	ask += ", then retry"
	if requested {
		ask += "; or request without " + list(gated)
	}
	d := deny(StepUpRequired, rule, "a stronger or more recent authentication is required for: "+strings.Join(gated, " "),
		append(why, ask)...)
	d.StepUp = ch
	return d
}

// rule returns scope s's step-up rule, if it requires anything.
func (e *eval) rule(s string) (StepUp, bool) {
	r, ok := e.in.Connection.StepUp[s]
	return r, ok && (r.ACR != "" || r.MaxAge > 0)
}

// meets checks the user's authentication against r and says why, in a
// sentence fit for either verdict.
func (e *eval) meets(s string, r StepUp) (string, bool) {
	a, now := e.in.Auth, e.in.Now
	var fail, pass []string
	if r.ACR != "" {
		if ACRSatisfies(a.ACR, r.ACR) {
			pass = append(pass, fmt.Sprintf("acr %s meets %s", q(a.ACR), q(r.ACR)))
		} else {
			have := "no acr"
			if a.ACR != "" {
				have = "acr " + q(a.ACR)
			}
			fail = append(fail, fmt.Sprintf("authentication context %s, but the user authenticated with %s", q(r.ACR), have))
		}
	}
	if r.MaxAge > 0 {
		age := now.Sub(a.Time)
		switch {
		case a.Time.IsZero():
			fail = append(fail, fmt.Sprintf("authentication within %s, but the time of the user's authentication is unknown", r.MaxAge))
		case age < -AuthTimeLeeway:
			fail = append(fail, fmt.Sprintf("authentication within %s, but the user's authentication time %s is in the future", r.MaxAge, ts(a.Time)))
		case age > r.MaxAge:
			fail = append(fail, fmt.Sprintf("authentication within %s, but the user authenticated %s ago, at %s", r.MaxAge, age.Truncate(time.Second), ts(a.Time)))
		default:
			pass = append(pass, fmt.Sprintf("authenticated %s ago, within %s", max(age, 0).Truncate(time.Second), r.MaxAge))
		}
	}
	if len(fail) > 0 {
		return fmt.Sprintf("scope %s requires %s", q(s), strings.Join(fail, ", and ")), false
	}
	return fmt.Sprintf("step-up for scope %s satisfied: %s", q(s), strings.Join(pass, "; ")), true
}

// whyNot says why requested scope s cannot be granted.
func (e *eval) whyNot(s string) string {
	in, c := e.in, e.in.Connection
	switch {
	case !slices.Contains(in.ResourceScopes, s):
		return fmt.Sprintf("%s: not a scope of resource %s", q(s), q(in.Resource))
	case !slices.Contains(e.entitled, s):
		var to []string
		for _, g := range slices.Sorted(maps.Keys(c.GroupScopes)) {
			if slices.Contains(c.GroupScopes[g], s) {
				to = append(to, g)
			}
		}
		if len(to) == 0 {
			return fmt.Sprintf("%s: %s grants it to no group", q(s), e.connName())
		}
		return fmt.Sprintf("%s: %s grants it only to groups %s, and user %s is in none of them", q(s), e.connName(), list(to), q(in.User.ID))
	default:
		return fmt.Sprintf("%s: outside the refresh token's grant", q(s))
	}
}

func (e *eval) allow() Decision {
	in, c := e.in, e.in.Connection
	life, src := c.IDJAGLifetime, "the connection's ID-JAG lifetime"
	if life == 0 {
		life, src = DefaultLifetime, "the default ID-JAG lifetime"
	}
	if life > MaxLifetime {
		life, src = MaxLifetime, fmt.Sprintf("the maximum ID-JAG lifetime (the connection asks for %s, more than authorization servers accept)", c.IDJAGLifetime)
	}
	if !c.ExpiresAt.IsZero() {
		if left := c.ExpiresAt.Sub(in.Now); left < life {
			life, src = left, "the time left until the connection expires at "+ts(c.ExpiresAt)
		}
	}
	if r := in.Refresh; r != nil {
		if left := r.ExpiresAt.Sub(in.Now); left < life {
			life, src = left, "the time left until the refresh token expires at "+ts(r.ExpiresAt)
		}
	}
	// Earlier rules guarantee at least MinLifetime; whole seconds because
	// exp and expires_in are.
	life = life.Truncate(time.Second)
	granted := slices.Clone(e.granted)
	reasons := append(e.reasons,
		"the ID-JAG grants "+list(granted),
		fmt.Sprintf("ID-JAG lifetime %s: %s", life, src))
	return Decision{
		Allow:         true,
		Outcome:       Allow,
		Rule:          RuleAllow,
		Reasons:       reasons,
		GrantedScopes: granted,
		Lifetime:      life,
	}
}

func (e *eval) connName() string {
	return fmt.Sprintf("connection %s (%s -> %s)", q(e.in.Connection.ID), e.in.App.ClientID, e.in.Resource)
}

func deny(o Outcome, rule, client string, reasons ...string) Decision {
	return Decision{Outcome: o, Rule: rule, ClientMessage: client, Reasons: reasons}
}

// endsPhrase describes an expiry that is past or less than MinLifetime
// away.
func endsPhrase(at, now time.Time) string {
	if !now.Before(at) {
		return "ended at " + ts(at)
	}
	return fmt.Sprintf("ends at %s, less than %s after the decision time %s", ts(at), MinLifetime, ts(now))
}

// expiredMessage is the client's message for a connection whose
// recertification date passed.
func expiredMessage(id string, at time.Time) string {
	msg := id + " expired"
	if !at.IsZero() {
		msg += " at " + clientTime(at)
	}
	return msg + " (its recertification date passed); an admin must recertify it"
}

// because appends an admin's reason to a client message; the message is
// sanitized and capped where it becomes an error_description.
func because(reason string) string {
	reason = strings.Join(strings.Fields(reason), " ")
	if reason == "" {
		return ""
	}
	return ": " + reason
}

// reasonSuffix appends an admin's reason to an audit reason, quoted.
func reasonSuffix(reason string) string {
	if strings.TrimSpace(reason) == "" {
		return ""
	}
	return ": " + q(reason)
}

// clientTime is a time in a client message: whole seconds, UTC.
func clientTime(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

func orUnknown(s string) string {
	if s == "" {
		return " at an unknown time"
	}
	return s
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// q quotes a value that may come from the request, so reasons stay one
// line, unambiguous and bounded whatever a client sends.
func q(s string) string {
	const limit = 256
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "..."
	}
	return strconv.Quote(s)
}

func list(ss []string) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = q(s)
	}
	return strings.Join(out, ", ")
}

// dedup returns ss without repeats, in first-occurrence order, as a new
// slice. A scope parameter holds at most a few hundred values (1 KiB cap),
// so the quadratic scan of small inputs switches to a set for large ones.
func dedup(ss []string) []string {
	out := make([]string, 0, len(ss))
	if len(ss) <= 16 {
		for _, s := range ss {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
		return out
	}
	seen := make(map[string]struct{}, len(ss))
	for _, s := range ss {
		if _, ok := seen[s]; !ok {
			seen[s] = struct{}{}
			out = append(out, s)
		}
	}
	return out
}
