// Package policy is OpenXAA's one choke point for minting ID-JAGs. Every
// path that can mint (token exchange with an ID token subject, token
// exchange with a refresh token subject) calls Decide, and nothing else
// decides: Dex shipped an allowlist that one grant type skipped
// (GHSA-7qjx-gp9h-65qj) because each grant carried its own copy of the check.
//
// The package is pure domain logic. It reads no clock, store or network:
// the caller loads the directory rows and passes plain values, including
// the time. It knows no HTTP and no OAuth error codes either; the handler
// maps an Outcome to an OAuth error at the edge. docs/policy.md lists the
// rules in the order they are applied and the error each maps to.
package policy

import (
	"time"
)

// Lifetimes of an ID-JAG.
const (
	// DefaultLifetime applies when a connection sets none
	// (docs/decisions.md "Lifetimes").
	DefaultLifetime = 300 * time.Second
	// MaxLifetime is the longest ID-JAG authorization servers accept
	// (exp - iat <= 600 s); a longer configured lifetime is capped.
	MaxLifetime = 600 * time.Second
	// MinLifetime is the shortest ID-JAG worth minting: exp and iat are
	// whole seconds, so less than a second left means nothing usable.
	MinLifetime = time.Second
	// AuthTimeLeeway tolerates an auth_time slightly in the future (clock
	// skew between instances, auth_time truncated to seconds); it matches
	// the JWT layer's leeway.
	AuthTimeLeeway = 30 * time.Second
	// NoMaxAge in a StepUpChallenge means no max_age requirement. It has
	// the value of oauth.NoMaxAge, so a challenge passes straight through.
	NoMaxAge time.Duration = -1
)

// Connection statuses (the values store.ConnectionStatus uses). Only
// StatusApproved can mint; any other value,
// including one this version does not know, denies.
const (
	StatusPending   = "pending"   // requested, awaiting an approver
	StatusApproved  = "approved"  // approved and in force
	StatusDenied    = "denied"    // the request was refused; final
	StatusSuspended = "suspended" // paused by an admin; may be resumed
	StatusRevoked   = "revoked"   // ended by an admin; final
	StatusExpired   = "expired"   // its recertification date passed; recertifying approves it again
)

// User is the subject as the directory knows it now, not as the subject
// token described it: policy is always evaluated on current data.
type User struct {
	ID      string
	Enabled bool
	Groups  []string
	// DisabledAt and DisabledReason say when and why the user was
	// disabled, if the ledger knows; a denial names them.
	DisabledAt     time.Time
	DisabledReason string
	// Removals are the user's latest removals from groups, newest first
	// (as the ledger recorded them); a denial for want of a group names
	// the removal from a group the connection grants to.
	Removals []Removal
}

// Removal is a user's removal from a group.
type Removal struct {
	Group  string
	At     time.Time
	Reason string
}

// App is the requesting app (the authenticated OAuth client).
type App struct {
	ClientID string
	Enabled  bool
	// RevokedAt and RevokedReason say when and why the app was revoked,
	// if the ledger knows; a denial names them.
	RevokedAt     time.Time
	RevokedReason string
}

// Authentication is how and when the user last proved who they are, from
// the subject token (auth_time, acr, amr).
type Authentication struct {
	Time time.Time // auth_time; zero if unknown
	ACR  string
	AMR  []string
}

// RefreshSubject describes a refresh token presented as the subject token.
// Its grant narrows the scopes further and its expiry caps the ID-JAG's.
type RefreshSubject struct {
	// Scopes the refresh token carries; only these can be granted.
	Scopes []string
	// ExpiresAt is when the refresh token's authorization ends. Required:
	// an ID-JAG must never outlive it.
	ExpiresAt time.Time
}

// StepUp is a per-scope authentication requirement of a connection. The
// zero value requires nothing.
type StepUp struct {
	// ACR is the minimum authentication context (see ACRSatisfies); ""
	// means any.
	ACR string
	// MaxAge is the longest time since the user authenticated; 0 means no
	// limit. (OIDC's max_age=0, "log in again now", cannot be met by a
	// token exchange that happens after the login, so it is not a useful
	// policy and 0 keeps the Go zero value meaning "unset".)
	MaxAge time.Duration
}

// Connection is an admin-approved link from a requesting app to a resource:
// which groups get which scopes, step-up rules, lifetime and status.
type Connection struct {
	ID string
	// App and Resource say what the connection links. Decide checks they
	// match the request, so a caller that loaded the wrong row fails
	// closed instead of granting another connection's scopes.
	App      string // the requesting app's client_id
	Resource string // canonical resource URI
	Status   string // one of the Status constants
	// StatusAt is when Status was last set (e.g. the revocation time);
	// zero if unknown. Used only in reasons and messages.
	StatusAt time.Time
	// StatusReason is the reason given with the latest status change
	// (why it was revoked, suspended or denied); a denial names it.
	StatusReason string
	// Approver is who approved the connection. An approved connection
	// without one is treated as unapproved.
	Approver string
	// ExpiresAt ends the connection; zero means it does not expire.
	ExpiresAt time.Time
	// GroupScopes maps a group name to the scopes its members get.
	GroupScopes map[string][]string
	// StepUp maps a scope to its authentication requirement.
	StepUp map[string]StepUp
	// IDJAGLifetime is the ID-JAG lifetime; 0 means DefaultLifetime.
	IDJAGLifetime time.Duration
}

// Input is everything Decide looks at. The caller resolves it from the
// request, the verified subject token and the directory, all read in the
// same request (no cache that could outlive a revocation).
type Input struct {
	// Now is the decision time; the package never reads a clock.
	Now time.Time

	User User
	App  App

	// Audience is the authorization-server issuer the client asked for,
	// as given (shown in reasons); AudienceKnown says whether it is a
	// registered authorization server.
	Audience      string
	AudienceKnown bool

	// Resource is the canonical resource URI requested ("" if none).
	// ResourceKnown says whether the directory has it, and
	// ResourceGovernedByAudience whether the Audience governs it.
	Resource                   string
	ResourceKnown              bool
	ResourceGovernedByAudience bool
	// ResourceScopes are the scopes the resource defines; nothing else
	// can be granted for it.
	ResourceScopes []string

	// Connection from App to Resource; nil if none exists.
	Connection *Connection

	// RequestedScopes are the scope parameter's values. Empty (nil or
	// zero length, which the form parser cannot tell apart) means none
	// requested: Decide then grants a default, see docs/policy.md.
	RequestedScopes []string

	Auth Authentication

	// Refresh is set when the subject token is a refresh token; nil for
	// an ID token.
	Refresh *RefreshSubject
}

// Outcome is the kind of a decision. The handler maps it to an OAuth error;
// this package does not.
type Outcome int

// Outcomes. The zero value is InvalidInput so that a zero Decision never
// allows.
const (
	// InvalidInput: the caller passed an incomplete or inconsistent Input
	// (a bug, not the client's fault). Maps to server_error.
	InvalidInput Outcome = iota
	// Allow: mint an ID-JAG with GrantedScopes and Lifetime.
	Allow
	// DenyTarget: unknown or unallowed audience or resource. Maps to
	// invalid_target.
	DenyTarget
	// DenyScope: none of the requested scopes may be granted. Maps to
	// invalid_scope.
	DenyScope
	// DenyAccess: the user or app is not entitled. Maps to access_denied.
	DenyAccess
	// DenySubject: the refresh token's authorization has ended. Maps to
	// invalid_grant, like any other unusable subject token.
	DenySubject
	// StepUpRequired: the user must authenticate again as StepUp says.
	// Maps to insufficient_user_authentication.
	StepUpRequired
)

// Stable rule names. A Decision names exactly one; audit records and
// dashboards key on them, so they never change meaning.
const (
	RuleAllow                   = "allow"
	RuleInputInvalid            = "input.invalid"
	RuleSubjectExpired          = "subject.expired"
	RuleAppDisabled             = "app.disabled"
	RuleUserDisabled            = "user.disabled"
	RuleAudienceUnknown         = "target.audience_unknown"
	RuleResourceMissing         = "target.resource_missing"
	RuleResourceUnknown         = "target.resource_unknown"
	RuleResourceNotGoverned     = "target.resource_not_governed"
	RuleConnectionMissing       = "connection.missing"
	RuleConnectionPending       = "connection.pending"
	RuleConnectionDenied        = "connection.denied"
	RuleConnectionSuspended     = "connection.suspended"
	RuleConnectionRevoked       = "connection.revoked"
	RuleConnectionStatusUnknown = "connection.status_unknown"
	RuleConnectionUnapproved    = "connection.unapproved"
	RuleConnectionExpired       = "connection.expired"
	RuleUserNotInGroup          = "user.not_in_group"
	RuleUserNoScopes            = "user.no_scopes"
	RuleScopeNoneAllowed        = "scope.none_allowed"
	RuleStepUpACR               = "stepup.acr"
	RuleStepUpMaxAge            = "stepup.max_age"
	RuleStepUpConflict          = "stepup.conflict"
)

// StepUpChallenge is what the client must re-authenticate with before it
// retries: every requirement of every step-up rule on the scopes at stake,
// combined (the strongest acr, the smallest max age), because a new login
// that satisfies one rule must not break another.
type StepUpChallenge struct {
	// ACRValues holds the one acr that meets every rule; nil if no rule
	// asks for an acr.
	ACRValues []string
	// MaxAge is the smallest max age of the rules, or NoMaxAge.
	MaxAge time.Duration
}

// Decision is the verdict with everything needed to act on it, audit it
// and explain it.
type Decision struct {
	Allow   bool // Outcome == Allow
	Outcome Outcome
	// Rule is the stable name of the deciding rule (RuleAllow on allow).
	Rule string
	// Reasons are sentences for operators and the audit log. They may
	// name groups, approvers and connection IDs, so they are not for the
	// client.
	Reasons []string
	// ClientMessage is one sentence safe to return to the client as the
	// error_description: it names no group or approver. A refusal because
	// of the client's own connection names that connection, when and why
	// it ended (the admin's reason), so the client's operator knows what
	// to ask for.
	ClientMessage string
	// GrantedScopes are the scopes to put in the ID-JAG; empty unless
	// Allow.
	GrantedScopes []string
	// StepUp is set exactly when Outcome is StepUpRequired.
	StepUp *StepUpChallenge
	// Lifetime of the ID-JAG, whole seconds, > 0 exactly when Allow.
	// With iat at or before Input.Now, exp = iat + Lifetime never passes
	// the connection's or the refresh token's expiry.
	Lifetime time.Duration
}
