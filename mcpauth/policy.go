package mcpauth

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ToolRule is what calling one tool takes.
type ToolRule struct {
	// Scopes must all be in the token (exact string comparison). A rule
	// with no scopes lets any valid token call the tool.
	Scopes []string
	// ACRValues, if set, lists the authentication contexts accepted: the
	// token's acr must be one of them (RFC 9470).
	ACRValues []string
	// MaxAge, if positive, bounds the age of the user's authentication:
	// the token must carry auth_time no older than MaxAge (whole seconds).
	MaxAge time.Duration
}

// stepUpLeeway is the clock skew allowed between the IdP that set auth_time
// and this server, the same allowance the token's own exp and iat get.
// now - auth_time may exceed MaxAge by at most this much, and auth_time may
// lie at most this far in the future.
const stepUpLeeway = 30 * time.Second

// Decision rules.
const (
	RuleAllowed         = "tool.allowed"
	RuleScope           = "tool.scope"
	RuleStepUp          = "tool.step_up"
	RuleUnknownTool     = "tool.unknown"
	RuleSessionMismatch = "session.subject_mismatch"
	RuleTokenInvalid    = "token.invalid"
	RuleTokenMissing    = "token.missing"
)

// policy is one immutable generation of the tool map with the values
// derived from it; SetTools swaps it whole.
type policy struct {
	tools           map[string]ToolRule
	scopesSupported []string
	challengeScopes []string
}

// verdict is the policy's answer for one tools/call.
type verdict struct {
	rule, reason string
	toolRule     ToolRule
	missing      []string
}

func (v *verdict) allowed() bool { return v.rule == RuleAllowed }

// decide evaluates one tools/call of tool by the holder of ti at now. The
// order is fixed: unknown tool, then scopes, then step-up, so a token that
// lacks scopes is told about them before being sent to re-authenticate.
func (p *policy) decide(tool string, ti *TokenInfo, now time.Time) verdict {
	rule, ok := p.tools[tool]
	if !ok {
		return verdict{rule: RuleUnknownTool, reason: "the tool is not available"}
	}
	v := verdict{toolRule: rule}
	for _, s := range rule.Scopes {
		if !ti.HasScope(s) {
			v.missing = append(v.missing, s)
		}
	}
	if len(v.missing) > 0 {
		v.rule = RuleScope
		v.reason = fmt.Sprintf("the tool %s needs scope %s", tool, strings.Join(rule.Scopes, " "))
		return v
	}
	if reason := stepUpReason(rule, ti, now); reason != "" {
		v.rule = RuleStepUp
		v.reason = reason
		return v
	}
	v.rule = RuleAllowed
	v.reason = "the token holds every scope the tool needs"
	return v
}

// stepUpReason returns why ti fails the RFC 9470 requirements of rule, or
// "" when it meets them.
func stepUpReason(rule ToolRule, ti *TokenInfo, now time.Time) string {
	if len(rule.ACRValues) > 0 && !slices.Contains(rule.ACRValues, ti.ACR) {
		return "the tool needs a stronger authentication (acr " + strings.Join(rule.ACRValues, " or ") + ")"
	}
	if rule.MaxAge > 0 {
		switch {
		case ti.AuthTime.IsZero():
			return "the tool needs a recent authentication and the token carries no auth_time"
		case ti.AuthTime.After(now.Add(stepUpLeeway)):
			return "the token's auth_time lies in the future"
		case now.Sub(ti.AuthTime) > rule.MaxAge+stepUpLeeway:
			return "the tool needs an authentication no older than " + strconv.FormatInt(int64(rule.MaxAge/time.Second), 10) + " seconds"
		}
	}
	return ""
}

// visible reports whether tools/list shows tool to ti: it is governed and
// ti holds all its scopes. Tools that need a step-up stay listed, so the
// client can call them and be challenged.
func (p *policy) visible(tool string, ti *TokenInfo) bool {
	rule, ok := p.tools[tool]
	if !ok {
		return false
	}
	for _, s := range rule.Scopes {
		if !ti.HasScope(s) {
			return false
		}
	}
	return true
}

// newPolicy validates tools and derives the scope lists. Explicit lists win
// over the derived ones.
func newPolicy(tools map[string]ToolRule, scopesSupported, challengeScopes []string) (*policy, error) {
	p := &policy{tools: make(map[string]ToolRule, len(tools))}
	var all, plain []string
	for name, r := range tools {
		if !validToolName(name) {
			return nil, fmt.Errorf("mcpauth: tool name %q: want 1 to 128 of A-Z a-z 0-9 _ . - /", name)
		}
		for _, s := range r.Scopes {
			if !validScopeToken(s) {
				return nil, fmt.Errorf("mcpauth: tool %s: scope %q is not an RFC 6749 scope token", name, s)
			}
		}
		for _, a := range r.ACRValues {
			if !validScopeToken(a) {
				return nil, fmt.Errorf("mcpauth: tool %s: acr value %q must be printable ASCII without space, quote or backslash", name, a)
			}
		}
		if r.MaxAge < 0 || r.MaxAge%time.Second != 0 {
			return nil, fmt.Errorf("mcpauth: tool %s: max age %s must be a non-negative whole number of seconds", name, r.MaxAge)
		}
		p.tools[name] = ToolRule{
			Scopes:    dedup(r.Scopes),
			ACRValues: slices.Clone(r.ACRValues),
			MaxAge:    r.MaxAge,
		}
		all = append(all, r.Scopes...)
		if len(r.ACRValues) == 0 && r.MaxAge == 0 {
			plain = append(plain, r.Scopes...)
		}
	}
	for _, s := range append(slices.Clone(scopesSupported), challengeScopes...) {
		if !validScopeToken(s) {
			return nil, fmt.Errorf("mcpauth: scope %q is not an RFC 6749 scope token", s)
		}
	}
	p.scopesSupported = sortedSet(all)
	if scopesSupported != nil {
		p.scopesSupported = dedup(scopesSupported)
	}
	p.challengeScopes = sortedSet(plain)
	if challengeScopes != nil {
		p.challengeScopes = dedup(challengeScopes)
	}
	return p, nil
}

// validToolName is the MCP tool-name rule: 1..128 of [A-Za-z0-9_.-/].
func validToolName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-' || c == '/') {
			return false
		}
	}
	return true
}

// validScopeToken is RFC 6749 §3.3 scope-token: 1*( %x21 / %x23-5B /
// %x5D-7E ), which also keeps it safe inside a quoted header parameter.
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func dedup(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func sortedSet(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

// cloneTools deep-copies a tool map.
func cloneTools(in map[string]ToolRule) map[string]ToolRule {
	out := make(map[string]ToolRule, len(in))
	for k, r := range in {
		out[k] = ToolRule{Scopes: slices.Clone(r.Scopes), ACRValues: slices.Clone(r.ACRValues), MaxAge: r.MaxAge}
	}
	return out
}
