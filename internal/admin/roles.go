package admin

import (
	"fmt"
	"slices"
	"strings"
)

// Role is what an administrator or an admin token may do. Roles are not a
// ladder: an auditor reads the audit trail, an approver changes
// connections, and neither may do the other's work; only admin does
// everything.
type Role string

// Roles.
const (
	// RoleViewer reads connections, users, groups, apps and resources.
	RoleViewer Role = "viewer"
	// RoleAuditor is a viewer who also queries, exports, verifies and
	// traces the audit trail.
	RoleAuditor Role = "auditor"
	// RoleApprover is a viewer who also approves, denies, suspends,
	// resumes, revokes and recertifies connections.
	RoleApprover Role = "approver"
	// RoleAdmin does everything: also disables users, removes group
	// members, revokes apps and manages admin tokens.
	RoleAdmin Role = "admin"
)

// Roles lists every role, least first.
var Roles = []Role{RoleViewer, RoleAuditor, RoleApprover, RoleAdmin}

// ParseRole returns the role named s, exactly.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("admin: unknown role %q; roles are %s", clip(s), roleNames(Roles))
}

// permission is what a route needs.
type permission string

const (
	permRead    permission = "read"    // list and show the directory and connections
	permAudit   permission = "audit"   // the audit trail
	permApprove permission = "approve" // connection lifecycle
	permManage  permission = "manage"  // users, group membership, apps, admin tokens
)

var rolePermissions = map[Role][]permission{
	RoleViewer:   {permRead},
	RoleAuditor:  {permRead, permAudit},
	RoleApprover: {permRead, permApprove},
	RoleAdmin:    {permRead, permAudit, permApprove, permManage},
}

// grants reports whether any of roles has p.
func grants(roles []Role, p permission) bool {
	for _, r := range roles {
		if slices.Contains(rolePermissions[r], p) {
			return true
		}
	}
	return false
}

// rolesWith returns the roles that have p, least first.
func rolesWith(p permission) []Role {
	var out []Role
	for _, r := range Roles {
		if slices.Contains(rolePermissions[r], p) {
			out = append(out, r)
		}
	}
	return out
}

func roleNames(rs []Role) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

// rolesOf maps a user's groups to roles through the configured mapping,
// least first, each once.
func rolesOf(groups []string, mapping map[string]Role) []Role {
	var out []Role
	for _, r := range Roles {
		for _, g := range groups {
			if mapping[g] == r {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

func clip(s string) string {
	const n = 64
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
