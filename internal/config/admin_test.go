package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/admin"
)

func TestValidateAdmin(t *testing.T) {
	t.Parallel()
	roles := map[string]string{"xaa-admins": "admin", "security": "auditor"}
	for _, tc := range []struct {
		name  string
		admin Admin
		dev   bool
		idp   string
		want  string // "" means valid; else the dotted key and a phrase
	}{
		{name: "off", admin: Admin{}},
		{name: "tokens only", admin: Admin{Endpoint: "https://admin.example.com/admin"}},
		{name: "root path", admin: Admin{Endpoint: "https://admin.example.com"}},
		{name: "sign-in", admin: Admin{Endpoint: "https://admin.example.com/admin", ClientID: "xaa-admin", ClientSecretFile: "/run/s", Roles: roles,
			SessionLifetime: Duration(time.Hour)}},
		{name: "loopback http in dev mode", admin: Admin{Endpoint: "http://127.0.0.1:8080/admin"}, dev: true},
		{name: "keys without endpoint", admin: Admin{ClientID: "xaa-admin"}, want: "admin.endpoint: required"},
		{name: "roles without endpoint", admin: Admin{Roles: roles}, want: "admin.endpoint: required"},
		{name: "http", admin: Admin{Endpoint: "http://admin.example.com/admin"}, want: "admin.endpoint: must use https"},
		{name: "loopback http without dev mode", admin: Admin{Endpoint: "http://127.0.0.1:8080/admin"}, want: "admin.endpoint: uses http"},
		{name: "trailing slash", admin: Admin{Endpoint: "https://admin.example.com/admin/"}, want: "admin.endpoint: must not end with a slash"},
		{name: "query", admin: Admin{Endpoint: "https://admin.example.com/admin?x=1"}, want: "admin.endpoint: must not have a query"},
		{name: "dot segment", admin: Admin{Endpoint: "https://admin.example.com/a/../admin"}, want: "admin.endpoint: must have a clean path"},
		{name: "two secrets", admin: Admin{Endpoint: "https://a.example.com", ClientID: "c", ClientSecret: "s", ClientSecretFile: "/f", Roles: roles},
			want: "admin.client_secret: both"},
		{name: "client without roles", admin: Admin{Endpoint: "https://a.example.com", ClientID: "c"}, want: "admin.roles: required"},
		{name: "client without IdP", admin: Admin{Endpoint: "https://a.example.com", ClientID: "c", Roles: roles}, idp: "-",
			want: "admin.client_id: sign-in at the IdP needs issuers.idp"},
		{name: "unknown role", admin: Admin{Endpoint: "https://a.example.com", Roles: map[string]string{"ops": "root"}},
			want: "admin.roles.ops: must be one of viewer, auditor, approver, admin"},
		{name: "role case", admin: Admin{Endpoint: "https://a.example.com", Roles: map[string]string{"ops": "Admin"}},
			want: `write "admin": values are case-sensitive`},
		{name: "bad group", admin: Admin{Endpoint: "https://a.example.com", Roles: map[string]string{"Ops Team": "admin"}},
			want: "admin.roles.Ops Team: is not a group name"},
		{name: "session too short", admin: Admin{Endpoint: "https://a.example.com", SessionLifetime: Duration(time.Second)},
			want: "admin.session_lifetime: must be"},
		{name: "session too long", admin: Admin{Endpoint: "https://a.example.com", SessionLifetime: Duration(24 * time.Hour)},
			want: "admin.session_lifetime: must be"},
	} {
		c := validConfig()
		c.Admin, c.DevMode = tc.admin, tc.dev
		if tc.dev {
			c.Issuers = Issuers{IdP: "http://127.0.0.1:8080", AuthServer: "http://127.0.0.1:8080/as"}
		}
		if tc.idp == "-" {
			c.Issuers.IdP = ""
		}
		err := c.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	if got := (&Admin{}).Lifetime(); got != 30*time.Minute {
		t.Errorf("default session lifetime = %s", got)
	}
}

// TestAdminRolesMatch keeps the config's role list equal to the admin
// API's.
func TestAdminRolesMatch(t *testing.T) {
	t.Parallel()
	var want []string
	for _, r := range admin.Roles {
		want = append(want, string(r))
	}
	if !slices.Equal(AdminRoles, want) {
		t.Errorf("config.AdminRoles = %v, admin.Roles = %v", AdminRoles, want)
	}
}

func TestRedactedAdmin(t *testing.T) {
	t.Parallel()
	c := validConfig()
	c.Admin = Admin{Endpoint: "https://a.example.com", ClientID: "c", ClientSecret: "ADMIN-SECRET-MARKER", Roles: map[string]string{"ops": "admin"}}
	r := c.Redacted()
	if strings.Contains(r.String(), "ADMIN-SECRET-MARKER") || r.Admin.ClientSecret == c.Admin.ClientSecret {
		t.Errorf("the admin client secret is not redacted: %s", r.String())
	}
	r.Admin.Roles["ops"] = "viewer"
	if c.Admin.Roles["ops"] != "admin" {
		t.Error("Redacted shares the roles map with the original")
	}
}
