package policy

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

const (
	appID    = "assistant"
	resource = "https://files.example/mcp"
	issuer   = "https://as.files.example"

	read  = "files:read"
	write = "files:write"
	admin = "files:admin"
)

// base is an input that is allowed: alice (staff, eng) asks for files:read
// through an approved connection; files:write needs MFA within the hour.
// It is built fresh on every call, so two calls are equal and independent.
func base() Input {
	return Input{
		Now:                        t0,
		User:                       User{ID: "u-alice", Enabled: true, Groups: []string{"staff", "eng"}},
		App:                        App{ClientID: appID, Enabled: true},
		Audience:                   issuer,
		AudienceKnown:              true,
		Resource:                   resource,
		ResourceKnown:              true,
		ResourceGovernedByAudience: true,
		ResourceScopes:             []string{read, write, admin},
		Connection: &Connection{
			ID:        "c-123",
			App:       appID,
			Resource:  resource,
			Status:    StatusApproved,
			StatusAt:  t0.Add(-48 * time.Hour),
			Approver:  "carol@corp.example",
			ExpiresAt: t0.Add(30 * 24 * time.Hour),
			GroupScopes: map[string][]string{
				"staff":  {read},
				"eng":    {read, write},
				"admins": {admin},
			},
			StepUp: map[string]StepUp{write: {ACR: ACRMFA, MaxAge: time.Hour}},
		},
		RequestedScopes: []string{read},
		Auth:            Authentication{Time: t0.Add(-10 * time.Minute), ACR: ACRPassword, AMR: []string{"pwd"}},
	}
}

// mfa makes the user's authentication MFA at the given age.
func mfa(age time.Duration) func(*Input) {
	return func(in *Input) {
		in.Auth = Authentication{Time: in.Now.Add(-age), ACR: ACRMFA, AMR: []string{"pwd", "otp"}}
	}
}

func scopes(s ...string) func(*Input) { return func(in *Input) { in.RequestedScopes = s } }

func all(fs ...func(*Input)) func(*Input) {
	return func(in *Input) {
		for _, f := range fs {
			f(in)
		}
	}
}

type want struct {
	outcome  Outcome
	rule     string
	granted  []string
	stepUp   *StepUpChallenge
	lifetime time.Duration
	// reason, if set, must appear in one of the reasons.
	reason string
}

// check runs Decide on base() changed by mutate and asserts w, the
// invariants every decision has, and that the input was not modified.
func check(t *testing.T, mutate func(*Input), w want) Decision {
	t.Helper()
	in, pristine := base(), base()
	if mutate != nil {
		mutate(&in)
		mutate(&pristine)
	}
	d := Decide(in)
	if diff := cmp.Diff(pristine, in); diff != "" {
		t.Errorf("Decide modified its input (-before +after):\n%s", diff)
	}
	if d.Outcome != w.outcome || d.Rule != w.rule {
		t.Errorf("got %v %q, want %v %q\n%s", d.Outcome, d.Rule, w.outcome, w.rule, d.Explain())
	}
	if d.Allow != (d.Outcome == Allow) {
		t.Errorf("Allow = %v but Outcome = %v", d.Allow, d.Outcome)
	}
	if diff := cmp.Diff(w.granted, d.GrantedScopes); diff != "" {
		t.Errorf("GrantedScopes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(w.stepUp, d.StepUp); diff != "" {
		t.Errorf("StepUp (-want +got):\n%s", diff)
	}
	if w.outcome == Allow && w.lifetime == 0 {
		w.lifetime = DefaultLifetime
	}
	if d.Lifetime != w.lifetime {
		t.Errorf("Lifetime = %v, want %v", d.Lifetime, w.lifetime)
	}
	if len(d.Reasons) == 0 {
		t.Error("no reasons")
	}
	for _, r := range d.Reasons {
		if len(strings.Fields(r)) < 3 || strings.ContainsAny(r, "\r\n") || strings.TrimSpace(r) != r {
			t.Errorf("reason is not a one-line sentence: %q", r)
		}
	}
	if !d.Allow && d.ClientMessage == "" {
		t.Error("denial without a client message")
	}
	if w.reason != "" && !slices.ContainsFunc(d.Reasons, func(r string) bool { return strings.Contains(r, w.reason) }) {
		t.Errorf("no reason contains %q:\n%s", w.reason, d.Explain())
	}
	return d
}

func TestDecideRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Input)
		want   want
	}{
		{"allow", nil, want{outcome: Allow, rule: RuleAllow, granted: []string{read}, reason: `approved by "carol@corp.example"`}},

		// input.invalid: caller bugs fail closed, before anything else.
		{"input: zero time", func(in *Input) { in.Now = time.Time{} }, want{outcome: InvalidInput, rule: RuleInputInvalid, reason: "decision time is unset"}},
		{"input: no user id", func(in *Input) { in.User.ID = "" }, want{outcome: InvalidInput, rule: RuleInputInvalid}},
		{"input: no client id", func(in *Input) { in.App.ClientID = "" }, want{outcome: InvalidInput, rule: RuleInputInvalid}},
		{"input: known audience is empty", func(in *Input) { in.Audience = "" }, want{outcome: InvalidInput, rule: RuleInputInvalid}},
		{"input: governed but unknown resource", func(in *Input) { in.ResourceKnown = false }, want{outcome: InvalidInput, rule: RuleInputInvalid}},
		{"input: refresh subject without expiry", func(in *Input) { in.Refresh = &RefreshSubject{Scopes: []string{read}} }, want{outcome: InvalidInput, rule: RuleInputInvalid}},
		{"input: connection without id", func(in *Input) { in.Connection.ID = "" }, want{outcome: InvalidInput, rule: RuleInputInvalid}},
		{"input: connection of another app", func(in *Input) { in.Connection.App = "other-app" }, want{outcome: InvalidInput, rule: RuleInputInvalid, reason: `belongs to app "other-app"`}},
		{"input: connection of another resource", func(in *Input) { in.Connection.Resource = "https://other.example/mcp" }, want{outcome: InvalidInput, rule: RuleInputInvalid, reason: "not for the requested resource"}},
		{"input: connection with a resource but none requested", func(in *Input) { in.Resource = "" }, want{outcome: InvalidInput, rule: RuleInputInvalid}},
		{"input: negative lifetime", func(in *Input) { in.Connection.IDJAGLifetime = -time.Second }, want{outcome: InvalidInput, rule: RuleInputInvalid}},
		{"input: sub-second lifetime", func(in *Input) { in.Connection.IDJAGLifetime = 500 * time.Millisecond }, want{outcome: InvalidInput, rule: RuleInputInvalid}},
		{"input: negative step-up max age", func(in *Input) { in.Connection.StepUp[read] = StepUp{MaxAge: -1} }, want{outcome: InvalidInput, rule: RuleInputInvalid}},
		{"input: sub-second step-up max age", func(in *Input) { in.Connection.StepUp[read] = StepUp{MaxAge: time.Millisecond} }, want{outcome: InvalidInput, rule: RuleInputInvalid}},

		// subject.expired
		{"refresh token expired", func(in *Input) { in.Refresh = &RefreshSubject{Scopes: []string{read}, ExpiresAt: t0.Add(-time.Hour)} },
			want{outcome: DenySubject, rule: RuleSubjectExpired, reason: "ended at 2026-05-01T11:00:00Z"}},
		{"refresh token expires now", func(in *Input) { in.Refresh = &RefreshSubject{Scopes: []string{read}, ExpiresAt: t0} },
			want{outcome: DenySubject, rule: RuleSubjectExpired}},
		{"refresh token has under a second left", func(in *Input) {
			in.Refresh = &RefreshSubject{Scopes: []string{read}, ExpiresAt: t0.Add(time.Second - time.Nanosecond)}
		}, want{outcome: DenySubject, rule: RuleSubjectExpired, reason: "less than 1s"}},

		// principals
		{"app disabled", func(in *Input) { in.App.Enabled = false }, want{outcome: DenyAccess, rule: RuleAppDisabled, reason: `app "assistant" is disabled`}},
		{"user disabled", func(in *Input) { in.User.Enabled = false }, want{outcome: DenyAccess, rule: RuleUserDisabled, reason: `user "u-alice" is disabled`}},
		{"disabled user learns nothing about the target", func(in *Input) {
			in.User.Enabled = false
			in.Audience, in.AudienceKnown = "https://probe.example", false
		}, want{outcome: DenyAccess, rule: RuleUserDisabled}},

		// targets
		{"audience unknown", func(in *Input) { in.Audience, in.AudienceKnown = "https://evil.example", false },
			want{outcome: DenyTarget, rule: RuleAudienceUnknown, reason: `"https://evil.example" is not a registered authorization server`}},
		{"audience absent", func(in *Input) { in.Audience, in.AudienceKnown = "", false }, want{outcome: DenyTarget, rule: RuleAudienceUnknown}},
		{"resource missing", func(in *Input) {
			in.Resource, in.ResourceKnown, in.ResourceGovernedByAudience, in.Connection = "", false, false, nil
		}, want{outcome: DenyTarget, rule: RuleResourceMissing}},
		{"resource unknown", func(in *Input) {
			in.Resource, in.ResourceKnown, in.ResourceGovernedByAudience, in.Connection = "https://nowhere.example/mcp", false, false, nil
		}, want{outcome: DenyTarget, rule: RuleResourceUnknown}},
		{"resource governed by another authorization server", func(in *Input) { in.ResourceGovernedByAudience = false },
			want{outcome: DenyTarget, rule: RuleResourceNotGoverned, reason: "is not governed by authorization server"}},
		{"no connection", func(in *Input) { in.Connection = nil },
			want{outcome: DenyTarget, rule: RuleConnectionMissing, reason: `app "assistant" has no connection`}},

		// connection state
		{"connection pending", func(in *Input) { in.Connection.Status = StatusPending }, want{outcome: DenyAccess, rule: RuleConnectionPending}},
		{"connection suspended", func(in *Input) { in.Connection.Status = StatusSuspended }, want{outcome: DenyAccess, rule: RuleConnectionSuspended}},
		{"connection revoked", func(in *Input) { in.Connection.Status, in.Connection.StatusAt = StatusRevoked, t0.Add(-time.Minute) },
			want{outcome: DenyAccess, rule: RuleConnectionRevoked, reason: `connection "c-123" (assistant -> https://files.example/mcp) was revoked at 2026-05-01T11:59:00Z`}},
		{"revoked and expired reports the revocation", func(in *Input) {
			in.Connection.Status, in.Connection.ExpiresAt = StatusRevoked, t0.Add(-time.Hour)
		}, want{outcome: DenyAccess, rule: RuleConnectionRevoked}},
		{"connection status in other case", func(in *Input) { in.Connection.Status = "Approved" }, want{outcome: DenyAccess, rule: RuleConnectionStatusUnknown}},
		{"connection status empty", func(in *Input) { in.Connection.Status = "" }, want{outcome: DenyAccess, rule: RuleConnectionStatusUnknown}},
		{"connection without approver", func(in *Input) { in.Connection.Approver = "" }, want{outcome: DenyAccess, rule: RuleConnectionUnapproved}},
		{"connection expired", func(in *Input) { in.Connection.ExpiresAt = t0.Add(-time.Second) },
			want{outcome: DenyAccess, rule: RuleConnectionExpired, reason: "ended at 2026-05-01T11:59:59Z"}},
		{"connection without expiry", func(in *Input) { in.Connection.ExpiresAt = time.Time{} }, want{outcome: Allow, rule: RuleAllow, granted: []string{read}}},

		// membership and entitlement
		{"user in none of the connection's groups", func(in *Input) { in.User.Groups = []string{"sales", "Staff"} },
			want{outcome: DenyAccess, rule: RuleUserNotInGroup, reason: `none of the groups`}},
		{"user in no group at all", func(in *Input) { in.User.Groups = nil }, want{outcome: DenyAccess, rule: RuleUserNotInGroup}},
		{"connection grants no group", func(in *Input) { in.Connection.GroupScopes = nil }, want{outcome: DenyAccess, rule: RuleUserNotInGroup, reason: "grants no group any scope"}},
		{"user's group gets nothing", func(in *Input) {
			in.User.Groups = []string{"interns"}
			in.Connection.GroupScopes["interns"] = nil
		}, want{outcome: DenyAccess, rule: RuleUserNoScopes}},
		{"user's group gets only scopes the resource lacks", func(in *Input) {
			in.User.Groups = []string{"interns"}
			in.Connection.GroupScopes["interns"] = []string{"files:delete"}
		}, want{outcome: DenyAccess, rule: RuleUserNoScopes}},

		// scopes
		{"no requested scope allowed", scopes(admin, "files:delete"),
			want{outcome: DenyScope, rule: RuleScopeNoneAllowed, reason: `may request "files:read", "files:write"`}},
		{"scopes compare exactly", scopes("Files:Read", "files:read ", "files:*"), want{outcome: DenyScope, rule: RuleScopeNoneAllowed}},
		{"duplicates granted once", scopes(read, read), want{outcome: Allow, rule: RuleAllow, granted: []string{read}}},
		{"partial grant names the dropped scope", scopes(read, admin),
			want{outcome: Allow, rule: RuleAllow, granted: []string{read}, reason: `dropped "files:admin": connection "c-123" (assistant -> https://files.example/mcp) grants it only to groups "admins"`}},

		// step-up
		{"step-up acr", scopes(read, write),
			want{outcome: StepUpRequired, rule: RuleStepUpACR, stepUp: &StepUpChallenge{ACRValues: []string{ACRMFA}, MaxAge: time.Hour},
				reason: `scope "files:write" requires authentication context "urn:openxaa:acr:mfa", but the user authenticated with acr "urn:openxaa:acr:pwd"`}},
		{"step-up max age", all(scopes(write), mfa(2*time.Hour)),
			want{outcome: StepUpRequired, rule: RuleStepUpMaxAge, stepUp: &StepUpChallenge{ACRValues: []string{ACRMFA}, MaxAge: time.Hour}}},
		{"step-up satisfied", all(scopes(read, write), mfa(time.Minute)),
			want{outcome: Allow, rule: RuleAllow, granted: []string{read, write}, reason: `step-up for scope "files:write" satisfied`}},
		{"step-up conflict", func(in *Input) {
			in.RequestedScopes = []string{read, write}
			in.Connection.StepUp[read] = StepUp{ACR: "urn:example:phr"}
			in.Connection.StepUp[write] = StepUp{ACR: "urn:example:phrh"}
		}, want{outcome: DenyAccess, rule: RuleStepUpConflict}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			check(t, tt.mutate, tt.want)
		})
	}
}

// TestScopeNarrowing: requested a b c; staff gives a, eng gives b, the user
// is in both; the resource does not define c.
func TestScopeNarrowing(t *testing.T) {
	t.Parallel()
	d := check(t, func(in *Input) {
		in.ResourceScopes = []string{"a", "b", "d"}
		in.User.Groups = []string{"staff", "eng"}
		in.Connection.GroupScopes = map[string][]string{"staff": {"a", "c"}, "eng": {"b"}, "ops": {"d"}}
		in.Connection.StepUp = nil
		in.RequestedScopes = []string{"c", "b", "a", "b"}
	}, want{outcome: Allow, rule: RuleAllow, granted: []string{"b", "a"}, reason: `dropped "c": not a scope of resource`})
	if !slices.ContainsFunc(d.Reasons, func(r string) bool { return r == `the ID-JAG grants "b", "a"` }) {
		t.Errorf("reasons do not state the grant:\n%s", d.Explain())
	}
}

func TestScopeNarrowingReasons(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, scope, reason string
	}{
		{"not a resource scope", "files:delete", `dropped "files:delete": not a scope of resource "https://files.example/mcp"`},
		{"granted to other groups", admin, `dropped "files:admin": connection "c-123" (assistant -> https://files.example/mcp) grants it only to groups "admins", and user "u-alice" is in none of them`},
		{"granted to no group", "files:share", `dropped "files:share": connection "c-123" (assistant -> https://files.example/mcp) grants it to no group`},
		{"outside the refresh token", write, `dropped "files:write": outside the refresh token's grant`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			check(t, func(in *Input) {
				in.ResourceScopes = append(in.ResourceScopes, "files:share")
				in.Refresh = &RefreshSubject{Scopes: []string{read, admin, "files:delete", "files:share"}, ExpiresAt: t0.Add(time.Hour)}
				in.RequestedScopes = []string{read, tt.scope}
			}, want{outcome: Allow, rule: RuleAllow, granted: []string{read}, reason: tt.reason})
		})
	}
}

func TestDefaultScopes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Input)
		want   want
	}{
		{"nil requests the default", scopes(), want{outcome: Allow, rule: RuleAllow, granted: []string{read},
			reason: `left "files:write" out of the default grant`}},
		{"empty requests the default", scopes([]string{}...), want{outcome: Allow, rule: RuleAllow, granted: []string{read}}},
		{"default includes scopes whose step-up is met", all(scopes(), mfa(time.Minute)),
			want{outcome: Allow, rule: RuleAllow, granted: []string{read, write}}},
		{"default follows resource order, not group order", func(in *Input) {
			in.RequestedScopes = nil
			in.Connection.StepUp = nil
			in.User.Groups = []string{"admins", "eng", "staff"}
			in.ResourceScopes = []string{admin, write, read}
		}, want{outcome: Allow, rule: RuleAllow, granted: []string{admin, write, read}}},
		{"default needing step-up for everything challenges", func(in *Input) {
			in.RequestedScopes = nil
			in.Connection.StepUp[read] = StepUp{MaxAge: 5 * time.Minute}
		}, want{outcome: StepUpRequired, rule: RuleStepUpACR, stepUp: &StepUpChallenge{ACRValues: []string{ACRMFA}, MaxAge: 5 * time.Minute}}},
		{"default narrowed by the refresh token", func(in *Input) {
			in.RequestedScopes = nil
			in.Connection.StepUp = nil
			in.Refresh = &RefreshSubject{Scopes: []string{"openid", write}, ExpiresAt: t0.Add(time.Hour)}
		}, want{outcome: Allow, rule: RuleAllow, granted: []string{write}}},
		{"default with a refresh token covering nothing", func(in *Input) {
			in.RequestedScopes = nil
			in.Refresh = &RefreshSubject{Scopes: []string{"openid", "offline_access"}, ExpiresAt: t0.Add(time.Hour)}
		}, want{outcome: DenyScope, rule: RuleScopeNoneAllowed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			check(t, tt.mutate, tt.want)
		})
	}
}

func TestStepUp(t *testing.T) {
	t.Parallel()
	const phr = "urn:example:acr:phr"
	rule := func(r StepUp) func(*Input) {
		return func(in *Input) {
			in.RequestedScopes = []string{read, write}
			in.Connection.StepUp = map[string]StepUp{write: r}
		}
	}
	auth := func(acr string, at time.Time) func(*Input) {
		return func(in *Input) { in.Auth = Authentication{Time: at, ACR: acr} }
	}
	ok := want{outcome: Allow, rule: RuleAllow, granted: []string{read, write}}
	tests := []struct {
		name   string
		mutate func(*Input)
		want   want
	}{
		{"mfa meets mfa", all(rule(StepUp{ACR: ACRMFA}), auth(ACRMFA, time.Time{})), ok},
		{"mfa meets password", all(rule(StepUp{ACR: ACRPassword}), auth(ACRMFA, time.Time{})), ok},
		{"password fails mfa", all(rule(StepUp{ACR: ACRMFA}), auth(ACRPassword, t0)),
			want{outcome: StepUpRequired, rule: RuleStepUpACR, stepUp: &StepUpChallenge{ACRValues: []string{ACRMFA}, MaxAge: NoMaxAge}}},
		{"no acr fails password", all(rule(StepUp{ACR: ACRPassword}), auth("", t0)),
			want{outcome: StepUpRequired, rule: RuleStepUpACR, stepUp: &StepUpChallenge{ACRValues: []string{ACRPassword}, MaxAge: NoMaxAge}, reason: "authenticated with no acr"}},
		{"unknown acr ranks lowest", all(rule(StepUp{ACR: ACRPassword}), auth(phr, t0)),
			want{outcome: StepUpRequired, rule: RuleStepUpACR, stepUp: &StepUpChallenge{ACRValues: []string{ACRPassword}, MaxAge: NoMaxAge}}},
		{"unknown requirement met exactly", all(rule(StepUp{ACR: phr}), auth(phr, t0)), ok},
		{"unknown requirement not met by mfa", all(rule(StepUp{ACR: phr}), auth(ACRMFA, t0)),
			want{outcome: StepUpRequired, rule: RuleStepUpACR, stepUp: &StepUpChallenge{ACRValues: []string{phr}, MaxAge: NoMaxAge}}},
		{"age exactly max age", all(rule(StepUp{MaxAge: 5 * time.Minute}), auth(ACRPassword, t0.Add(-5*time.Minute))), ok},
		{"age a nanosecond over", all(rule(StepUp{MaxAge: 5 * time.Minute}), auth(ACRPassword, t0.Add(-5*time.Minute-time.Nanosecond))),
			want{outcome: StepUpRequired, rule: RuleStepUpMaxAge, stepUp: &StepUpChallenge{MaxAge: 5 * time.Minute}, reason: "authenticated 5m0s ago"}},
		{"unknown auth time fails", all(rule(StepUp{MaxAge: 5 * time.Minute}), auth(ACRMFA, time.Time{})),
			want{outcome: StepUpRequired, rule: RuleStepUpMaxAge, stepUp: &StepUpChallenge{MaxAge: 5 * time.Minute}, reason: "is unknown"}},
		{"auth time slightly ahead is skew", all(rule(StepUp{MaxAge: 5 * time.Minute}), auth(ACRMFA, t0.Add(AuthTimeLeeway))), ok},
		{"auth time far ahead fails", all(rule(StepUp{MaxAge: 5 * time.Minute}), auth(ACRMFA, t0.Add(AuthTimeLeeway+time.Second))),
			want{outcome: StepUpRequired, rule: RuleStepUpMaxAge, stepUp: &StepUpChallenge{MaxAge: 5 * time.Minute}, reason: "in the future"}},
		{"both unmet", all(rule(StepUp{ACR: ACRMFA, MaxAge: time.Minute}), auth(ACRPassword, t0.Add(-time.Hour))),
			want{outcome: StepUpRequired, rule: RuleStepUpACR, stepUp: &StepUpChallenge{ACRValues: []string{ACRMFA}, MaxAge: time.Minute}, reason: ", and authentication within 1m0s"}},
		{"empty rule requires nothing", all(rule(StepUp{}), auth("", time.Time{})), ok},
		{"rules combine: strongest acr, smallest max age, met rules included", func(in *Input) {
			in.RequestedScopes = []string{read, write, admin}
			in.User.Groups = append(in.User.Groups, "admins")
			in.Connection.StepUp = map[string]StepUp{
				read:  {ACR: ACRPassword, MaxAge: 8 * time.Hour}, // met
				write: {ACR: ACRMFA, MaxAge: time.Hour},          // acr unmet
				admin: {MaxAge: 5 * time.Minute},                 // age unmet
			}
			in.Auth = Authentication{Time: t0.Add(-10 * time.Minute), ACR: ACRPassword}
		}, want{outcome: StepUpRequired, rule: RuleStepUpACR, stepUp: &StepUpChallenge{ACRValues: []string{ACRMFA}, MaxAge: 5 * time.Minute}}},
		{"a met acr is kept in the challenge", func(in *Input) {
			in.RequestedScopes = []string{read, write}
			in.Connection.StepUp = map[string]StepUp{read: {ACR: ACRMFA}, write: {MaxAge: time.Minute}}
			in.Auth = Authentication{Time: t0.Add(-time.Hour), ACR: ACRMFA}
		}, want{outcome: StepUpRequired, rule: RuleStepUpMaxAge, stepUp: &StepUpChallenge{ACRValues: []string{ACRMFA}, MaxAge: time.Minute}}},
		{"step-up is not required for a dropped scope", func(in *Input) {
			in.RequestedScopes = []string{read, admin}
			in.Connection.StepUp = map[string]StepUp{admin: {ACR: ACRMFA}}
		}, want{outcome: Allow, rule: RuleAllow, granted: []string{read}}},
		{"a requested sensitive scope is never dropped silently", func(in *Input) {
			in.RequestedScopes = []string{read, write}
		}, want{outcome: StepUpRequired, rule: RuleStepUpACR, stepUp: &StepUpChallenge{ACRValues: []string{ACRMFA}, MaxAge: time.Hour}, reason: `or request without "files:write"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			check(t, tt.mutate, tt.want)
		})
	}
}

func TestLifetime(t *testing.T) {
	t.Parallel()
	conn := func(life time.Duration, expiresIn time.Duration) func(*Input) {
		return func(in *Input) {
			in.Connection.IDJAGLifetime = life
			in.Connection.ExpiresAt = t0.Add(expiresIn)
		}
	}
	refresh := func(expiresIn time.Duration) func(*Input) {
		return func(in *Input) {
			in.Refresh = &RefreshSubject{Scopes: []string{read, write}, ExpiresAt: t0.Add(expiresIn)}
		}
	}
	allow := func(life time.Duration, reason string) want {
		return want{outcome: Allow, rule: RuleAllow, granted: []string{read}, lifetime: life, reason: reason}
	}
	tests := []struct {
		name   string
		mutate func(*Input)
		want   want
	}{
		{"default", conn(0, time.Hour), allow(300*time.Second, "the default ID-JAG lifetime")},
		{"connection's", conn(120*time.Second, time.Hour), allow(120*time.Second, "the connection's ID-JAG lifetime")},
		{"capped at the maximum", conn(time.Hour, 2*time.Hour), allow(MaxLifetime, "the maximum ID-JAG lifetime")},
		{"whole seconds", conn(90*time.Second+999*time.Millisecond, time.Hour), allow(90*time.Second, "")},
		{"cut by connection expiry", conn(0, 42*time.Second+500*time.Millisecond), allow(42*time.Second, "until the connection expires")},
		{"connection expiry exactly MinLifetime away", conn(0, time.Second), allow(time.Second, "")},
		{"connection expiry just under MinLifetime", conn(0, time.Second-time.Nanosecond), want{outcome: DenyAccess, rule: RuleConnectionExpired, reason: "less than 1s"}},
		{"connection expiry now", conn(0, 0), want{outcome: DenyAccess, rule: RuleConnectionExpired}},
		{"cut by refresh token expiry", all(conn(0, time.Hour), refresh(100*time.Second+700*time.Millisecond)),
			allow(100*time.Second, "until the refresh token expires")},
		{"refresh token later than connection", all(conn(0, 60*time.Second), refresh(90*time.Second)), allow(60*time.Second, "connection expires")},
		{"refresh token expiry exactly MinLifetime away", all(conn(0, time.Hour), refresh(time.Second)), allow(time.Second, "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			check(t, tt.mutate, tt.want)
		})
	}
}

func TestRefreshSubjectNarrows(t *testing.T) {
	t.Parallel()
	check(t, func(in *Input) {
		in.Auth = Authentication{Time: t0.Add(-time.Minute), ACR: ACRMFA}
		in.RequestedScopes = []string{read, write}
		in.Refresh = &RefreshSubject{Scopes: []string{write}, ExpiresAt: t0.Add(time.Hour)}
	}, want{outcome: Allow, rule: RuleAllow, granted: []string{write}, reason: `dropped "files:read": outside the refresh token's grant`})
	check(t, func(in *Input) {
		in.RequestedScopes = []string{read}
		in.Refresh = &RefreshSubject{Scopes: []string{"openid"}, ExpiresAt: t0.Add(time.Hour)}
	}, want{outcome: DenyScope, rule: RuleScopeNoneAllowed, reason: "the refresh token's grant covers none"})
}

// TestGroupOrderIndependence: the decision must not depend on the order of
// the user's groups, of the map, or of duplicates in either.
func TestGroupOrderIndependence(t *testing.T) {
	t.Parallel()
	orders := [][]string{
		{"staff", "eng", "admins"},
		{"admins", "eng", "staff"},
		{"eng", "admins", "staff", "eng"},
		{"sales", "admins", "staff", "eng", "staff"},
	}
	var first Decision
	for i, groups := range orders {
		in := base()
		in.User.Groups = groups
		in.RequestedScopes = []string{admin, "files:delete", read, write}
		in.Auth = Authentication{Time: t0, ACR: ACRMFA}
		d := Decide(in)
		if !d.Allow {
			t.Fatalf("groups %v: %s", groups, d.Explain())
		}
		if i == 0 {
			first = d
			continue
		}
		if diff := cmp.Diff(first, d); diff != "" {
			t.Errorf("groups %v decide differently (-first +this):\n%s", groups, diff)
		}
	}
	if diff := cmp.Diff([]string{admin, read, write}, first.GrantedScopes); diff != "" {
		t.Errorf("GrantedScopes (-want +got):\n%s", diff)
	}
}

// TestDecisionSharesNoMemory: editing a decision cannot reach the input,
// and Decide leaves spare capacity of input slices alone.
func TestDecisionSharesNoMemory(t *testing.T) {
	t.Parallel()
	in := base()
	in.RequestedScopes = make([]string, 1, 8)
	in.RequestedScopes[0] = read
	in.ResourceScopes = slices.Grow(in.ResourceScopes, 8)
	d := Decide(in)
	if !d.Allow {
		t.Fatal(d.Explain())
	}
	d.GrantedScopes[0] = "tampered"
	d.GrantedScopes = append(d.GrantedScopes, "more")
	if in.RequestedScopes[0] != read || slices.Contains(in.RequestedScopes[:8], "more") ||
		slices.Contains(in.ResourceScopes[:cap(in.ResourceScopes)], "tampered") {
		t.Error("the decision aliases the input")
	}
	for _, g := range in.Connection.GroupScopes {
		if slices.Contains(g, "tampered") {
			t.Error("the decision aliases the connection")
		}
	}

	in = base()
	in.RequestedScopes = []string{write}
	d = Decide(in)
	d.StepUp.ACRValues[0] = "tampered"
	if in.Connection.StepUp[write].ACR != ACRMFA {
		t.Error("the challenge aliases the connection")
	}
}

func TestZeroDecisionDenies(t *testing.T) {
	t.Parallel()
	var d Decision
	if d.Allow || d.Outcome == Allow || d.Outcome != InvalidInput {
		t.Errorf("zero Decision = %+v", d)
	}
	if d := Decide(Input{}); d.Allow || d.Rule != RuleInputInvalid {
		t.Errorf("Decide(Input{}) = %s", d.Explain())
	}
}

func TestOutcomeString(t *testing.T) {
	t.Parallel()
	want := map[Outcome]string{
		InvalidInput:   "invalid_input",
		Allow:          "allow",
		DenyTarget:     "deny_target",
		DenyScope:      "deny_scope",
		DenyAccess:     "deny_access",
		DenySubject:    "deny_subject",
		StepUpRequired: "step_up_required",
		Outcome(42):    "outcome(42)",
	}
	for o, s := range want {
		if got := o.String(); got != s {
			t.Errorf("Outcome(%d).String() = %q, want %q", int(o), got, s)
		}
	}
}

func TestExplain(t *testing.T) {
	t.Parallel()
	in := base()
	in.RequestedScopes = []string{read, admin}
	got := Decide(in).Explain()
	want := `decision: ALLOW (allow)
rule:     allow
scopes:   files:read
lifetime: 5m0s
why:
  - connection "c-123" (assistant -> https://files.example/mcp) is approved by "carol@corp.example", until 2026-05-31T12:00:00Z
  - user "u-alice" is in the connection's groups "eng", "staff"
  - dropped "files:admin": connection "c-123" (assistant -> https://files.example/mcp) grants it only to groups "admins", and user "u-alice" is in none of them
  - the ID-JAG grants "files:read"
  - ID-JAG lifetime 5m0s: the default ID-JAG lifetime
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Explain (-want +got):\n%s", diff)
	}

	in.RequestedScopes = []string{write}
	got = Decide(in).Explain()
	want = `decision: DENY (step_up_required)
rule:     stepup.acr
step-up:  acr_values=urn:openxaa:acr:mfa max_age=3600
client:   a stronger or more recent authentication is required for: files:write
why:
  - scope "files:write" requires authentication context "urn:openxaa:acr:mfa", but the user authenticated with acr "urn:openxaa:acr:pwd"
  - authenticate again with acr "urn:openxaa:acr:mfa" (max_age 3600 s), then retry; or request without "files:write"
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Explain (-want +got):\n%s", diff)
	}
}

// TestReasonsAreBounded: request-controlled values are quoted and clipped
// so a hostile scope cannot forge lines or bloat the audit log.
func TestReasonsAreBounded(t *testing.T) {
	t.Parallel()
	evil := "x\n  - granted \"files:admin\"" + strings.Repeat("A", 4096)
	d := check(t, scopes(read, evil), want{outcome: Allow, rule: RuleAllow, granted: []string{read}})
	for _, r := range d.Reasons {
		if len(r) > 1024 {
			t.Errorf("reason of %d bytes", len(r))
		}
	}
}

func TestACRSatisfies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		have, want string
		ok         bool
	}{
		{"", "", true},
		{ACRPassword, "", true},
		{"", ACRPassword, false},
		{ACRPassword, ACRPassword, true},
		{ACRMFA, ACRPassword, true},
		{ACRPassword, ACRMFA, false},
		{ACRMFA, ACRMFA, true},
		{"urn:x", "urn:x", true},
		{"urn:x", ACRPassword, false},
		{ACRMFA, "urn:x", false},
		{"urn:x", "urn:y", false},
		{"URN:OPENXAA:ACR:MFA", ACRPassword, false},
	}
	for _, tt := range tests {
		if got := ACRSatisfies(tt.have, tt.want); got != tt.ok {
			t.Errorf("ACRSatisfies(%q, %q) = %v, want %v", tt.have, tt.want, got, tt.ok)
		}
	}
	if !(ACRRank("urn:x") < ACRRank(ACRPassword) && ACRRank(ACRPassword) < ACRRank(ACRMFA) && ACRRank("") == 0) {
		t.Error("ACRRank order is not unknown < password < mfa")
	}
}

func TestStrongestACR(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   []string
		want string
		ok   bool
	}{
		{nil, "", true},
		{[]string{ACRPassword}, ACRPassword, true},
		{[]string{ACRPassword, ACRMFA, ACRPassword}, ACRMFA, true},
		{[]string{ACRMFA, ACRPassword}, ACRMFA, true},
		{[]string{"urn:x", "urn:x"}, "urn:x", true},
		{[]string{"urn:x", "urn:y"}, "", false},
		{[]string{ACRMFA, "urn:x"}, "", false},
		{[]string{"urn:x", ACRPassword}, "", false},
	}
	for _, tt := range tests {
		got, ok := strongestACR(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("strongestACR(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	cases := map[string]func(*Input){
		"allow":         nil,
		"allow-stepup":  all(scopes(read, write), mfa(time.Minute)),
		"allow-default": scopes(),
		"deny-scope":    scopes(admin),
		"stepup":        scopes(read, write),
		"deny-revoked":  func(in *Input) { in.Connection.Status = StatusRevoked },
	}
	for _, name := range slices.Sorted(maps.Keys(cases)) {
		b.Run(name, func(b *testing.B) {
			in := base()
			if f := cases[name]; f != nil {
				f(&in)
			}
			b.ReportAllocs()
			for b.Loop() {
				Decide(in)
			}
		})
	}
}

func TestCheckPrincipals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		app        App
		user       User
		ok         bool
		rule       string
		wantReason string
	}{
		{"both enabled", App{ClientID: appID, Enabled: true}, User{ID: "u", Enabled: true}, true, "", ""},
		{"app disabled", App{ClientID: appID}, User{ID: "u", Enabled: true}, false, RuleAppDisabled, `requesting app "assistant" is disabled`},
		{"user disabled", App{ClientID: appID, Enabled: true}, User{ID: "u"}, false, RuleUserDisabled, `user "u" is disabled`},
		{"both disabled names the app", App{ClientID: appID}, User{ID: "u"}, false, RuleAppDisabled, `requesting app "assistant" is disabled`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, ok := CheckPrincipals(tt.app, tt.user)
			if ok != tt.ok || d.Rule != tt.rule || d.Allow {
				t.Fatalf("CheckPrincipals = %+v, %v; want ok %v rule %q", d, ok, tt.ok, tt.rule)
			}
			if ok {
				return
			}
			if d.Outcome != DenyAccess || d.ClientMessage == "" || !slices.Equal(d.Reasons, []string{tt.wantReason}) {
				t.Errorf("denial = %+v", d)
			}
		})
	}
}

// TestDenialMessagesNameTheCause: a refusal because of the client's own
// connection, or of a ledger change to the user or the app, tells the
// client what happened, when and why (issue 7: "exchange fails with
// access_denied that names the revocation"), and never which group or
// approver.
func TestDenialMessagesNameTheCause(t *testing.T) {
	t.Parallel()
	at := t0.Add(-90 * time.Second)
	tests := []struct {
		name   string
		mutate func(*Input)
		rule   string
		msg    string
	}{
		{"revoked with reason", func(in *Input) {
			in.Connection.Status, in.Connection.StatusAt, in.Connection.StatusReason = StatusRevoked, at, "vendor contract\nended"
		}, RuleConnectionRevoked, "the connection c-123 was revoked at 2026-05-01T11:58:30Z: vendor contract ended"},
		{"revoked without reason", func(in *Input) { in.Connection.Status, in.Connection.StatusAt = StatusRevoked, at },
			RuleConnectionRevoked, "the connection c-123 was revoked at 2026-05-01T11:58:30Z"},
		{"suspended", func(in *Input) {
			in.Connection.Status, in.Connection.StatusAt, in.Connection.StatusReason = StatusSuspended, at, "incident 7"
		}, RuleConnectionSuspended, "the connection c-123 was suspended at 2026-05-01T11:58:30Z: incident 7"},
		{"denied", func(in *Input) {
			in.Connection.Status, in.Connection.StatusAt, in.Connection.StatusReason = StatusDenied, at, "not needed"
		}, RuleConnectionDenied, "the request for the connection c-123 was denied at 2026-05-01T11:58:30Z: not needed"},
		{"pending", func(in *Input) { in.Connection.Status = StatusPending },
			RuleConnectionPending, "the connection c-123 from this client to the resource awaits approval"},
		{"expired status", func(in *Input) { in.Connection.Status, in.Connection.ExpiresAt = StatusExpired, at },
			RuleConnectionExpired, "the connection c-123 expired at 2026-05-01T11:58:30Z (its recertification date passed); an admin must recertify it"},
		{"expiry date passed while approved", func(in *Input) { in.Connection.ExpiresAt = at },
			RuleConnectionExpired, "the connection c-123 expired at 2026-05-01T11:58:30Z (its recertification date passed); an admin must recertify it"},
		{"user disabled by the ledger", func(in *Input) {
			in.User.Enabled, in.User.DisabledAt, in.User.DisabledReason = false, at, "left the company"
		}, RuleUserDisabled, "the user's account was disabled at 2026-05-01T11:58:30Z: left the company"},
		{"user disabled, no ledger record", func(in *Input) { in.User.Enabled = false },
			RuleUserDisabled, "the user's account is disabled"},
		{"app revoked by the ledger", func(in *Input) {
			in.App.Enabled, in.App.RevokedAt, in.App.RevokedReason = false, at, "compromised"
		}, RuleAppDisabled, "the client was revoked at 2026-05-01T11:58:30Z: compromised"},
		{"removed from the connection's group", func(in *Input) {
			in.User.Groups = []string{"sales"}
			in.User.Removals = []Removal{{Group: "sales", At: at.Add(time.Second), Reason: "moved"}, {Group: "eng", At: at, Reason: "moved team"}}
		}, RuleUserNotInGroup, "the user was removed at 2026-05-01T11:58:30Z from a group allowed to use this resource: moved team"},
		{"removed from an unrelated group only", func(in *Input) {
			in.User.Groups = nil
			in.User.Removals = []Removal{{Group: "sales", At: at, Reason: "moved"}}
		}, RuleUserNotInGroup, "the user is not in a group allowed to use this resource"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := base()
			tc.mutate(&in)
			d := Decide(in)
			if d.Outcome != DenyAccess || d.Rule != tc.rule || d.ClientMessage != tc.msg {
				t.Errorf("got %v %q %q, want access denied %q %q", d.Outcome, d.Rule, d.ClientMessage, tc.rule, tc.msg)
			}
			for _, leak := range []string{"carol@corp.example", "staff", `"eng"`} {
				if strings.Contains(d.ClientMessage, leak) {
					t.Errorf("client message %q names %q", d.ClientMessage, leak)
				}
			}
			for _, r := range d.Reasons {
				if strings.ContainsAny(r, "\r\n") {
					t.Errorf("reason %q is not one line", r)
				}
			}
		})
	}
}
