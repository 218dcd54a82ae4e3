package config

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// Admin configures the admin API role (`xaa serve --admin`): JSON over
// HTTP(S) under the path of Endpoint on listen.addr, with the OpenAPI
// document at Endpoint/api/openapi.json. Humans sign in at this deployment's IdP
// (issuers.idp), where the admin API is a registered app; automation uses
// admin tokens from `xaa admin token create`. Leave the section empty to
// run without the admin API.
type Admin struct {
	// Endpoint is the admin API's public base URL, such as
	// "https://admin.example.com/admin": the routes live under its path,
	// and only its origin may make changes with a browser session. https,
	// or http on a loopback host with dev_mode. Setting it turns the role
	// on by default.
	Endpoint string `yaml:"endpoint"`
	// ClientID is the admin API's client at the IdP (an app of the seed,
	// with client_secret_basic and the redirect URI Endpoint +
	// "/auth/callback").
	// Empty: no human sign-in, admin tokens only.
	ClientID string `yaml:"client_id"`
	// ClientSecret is that client's secret. Prefer ClientSecretFile: config
	// files get copied around.
	ClientSecret Secret `yaml:"client_secret"`
	// ClientSecretFile names a file (mode 0600 or stricter) holding the
	// client secret; one trailing newline is ignored. The environment
	// variables XAA_ADMIN_CLIENT_SECRET and XAA_ADMIN_CLIENT_SECRET_FILE,
	// read when the role starts, replace both keys.
	ClientSecretFile string `yaml:"client_secret_file"`
	// SessionLifetime bounds a signed-in administrator's session; 0 means
	// 30m, from 1m to 12h. There is no renewal: sign in again.
	SessionLifetime Duration `yaml:"session_lifetime"`
	// Roles maps IdP groups to admin roles: viewer (read connections,
	// users, groups, apps, resources), auditor (viewer and the audit
	// trail), approver (viewer and the connection lifecycle) or admin
	// (everything). Users in none of these groups cannot sign in; roles
	// follow group membership on every request.
	Roles map[string]string `yaml:"roles"`
}

// AdminRoles are the admin API's roles (internal/admin.Roles; a test keeps
// the two lists equal).
var AdminRoles = []string{"viewer", "auditor", "approver", "admin"}

// Configured reports whether the admin section is in use.
func (a *Admin) Configured() bool { return a.Endpoint != "" }

// Lifetime is SessionLifetime with its default applied.
func (a *Admin) Lifetime() time.Duration {
	if a.SessionLifetime == 0 {
		return 30 * time.Minute
	}
	return time.Duration(a.SessionLifetime)
}

func (a *Admin) validate(v *validator, idpIssuer string, devMode bool) {
	if a.Endpoint == "" {
		if a.ClientID != "" || a.ClientSecret != "" || a.ClientSecretFile != "" || a.SessionLifetime != 0 || len(a.Roles) > 0 {
			v.add("admin.endpoint", "required when the admin section is used: the admin API's public base URL, such as %q", "https://admin.example.com/admin")
		}
		return
	}
	if msg := checkAdminURL(a.Endpoint, devMode); msg != "" {
		v.add("admin.endpoint", "%s", msg)
	}
	if a.ClientSecret != "" && a.ClientSecretFile != "" {
		v.add("admin.client_secret", "both admin.client_secret and admin.client_secret_file are set; keep only admin.client_secret_file")
	}
	if a.ClientID != "" {
		if idpIssuer == "" {
			v.add("admin.client_id", "sign-in at the IdP needs issuers.idp; set it, or leave admin.client_id empty to use admin tokens only")
		}
		if len(a.Roles) == 0 {
			v.add("admin.roles", "required with admin.client_id: map at least one IdP group to a role (%s)", strings.Join(AdminRoles, ", "))
		}
	}
	for _, g := range slices.Sorted(maps.Keys(a.Roles)) {
		p := "admin.roles." + g
		if err := store.CheckGroupName(g); err != nil {
			v.add(p, "is not a group name: group names are lowercase letters, digits and . _ : -")
		}
		checkEnum(v, p, a.Roles[g], AdminRoles)
	}
	if d := a.Lifetime(); d < time.Minute || d > 12*time.Hour {
		v.add("admin.session_lifetime", "must be 0 (the default, 30m) or from 1m to 12h, got %s", time.Duration(a.SessionLifetime))
	}
}

// checkAdminURL is checkIssuer's rule (https, or http on loopback in dev
// mode; no query, fragment or user info) plus no trailing slash.
func checkAdminURL(s string, devMode bool) string {
	if msg := checkIssuer(s, devMode); msg != "" {
		return strings.Replace(msg, "https://idp.example.com", "https://admin.example.com/admin", 1)
	}
	u, _ := url.Parse(s)
	if strings.HasSuffix(u.Path, "/") {
		return fmt.Sprintf("must not end with a slash; write %s", quote(strings.TrimRight(s, "/")))
	}
	if strings.Contains(u.Path, "//") || strings.Contains(u.Path, "/./") || strings.Contains(u.Path, "/../") ||
		strings.HasSuffix(u.Path, "/.") || strings.HasSuffix(u.Path, "/..") {
		return fmt.Sprintf("must have a clean path, got %s", quote(s))
	}
	return ""
}

// redacted deep-copies a with its secret replaced, for Config.Redacted.
func (a Admin) redacted() Admin {
	out := a
	if out.ClientSecret != "" {
		out.ClientSecret = redactedText
	}
	// Never nil: a nil map renders as {} and parses back empty.
	out.Roles = maps.Clone(a.Roles)
	if out.Roles == nil {
		out.Roles = map[string]string{}
	}
	return out
}
