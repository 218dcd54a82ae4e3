package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const testDigest = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"

// validAuthServerConfig is validConfig with a complete authserver section.
func validAuthServerConfig() *Config {
	c := validConfig()
	c.AuthServer = AuthServer{
		TrustedIssuers: []TrustedIssuer{{Issuer: "https://idp.example.com", JWKSURI: "https://idp.example.com/jwks.json"}},
		Resources:      []Resource{{URI: "https://mcp.example.com/files", Scopes: []string{"files:read", "files:write"}}},
		Clients: []ASClient{{
			ClientID: "assistant", AuthMethod: "client_secret_basic", ClientSecretSHA256: testDigest,
			Resources: []string{"https://mcp.example.com/files"},
		}},
	}
	return c
}

func TestValidateAuthServerValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"base", func(*Config) {}},
		{"empty section", func(c *Config) { c.AuthServer = AuthServer{} }},
		{"all options", func(c *Config) {
			ti := &c.AuthServer.TrustedIssuers[0]
			ti.Algorithms = []string{"ES256", "PS256"}
			ti.MaxAssertionLifetime = Duration(10 * time.Minute)
			ti.Disabled, ti.AllowReuse = true, true
			c.AuthServer.Resources[0].AccessTokenLifetime = Duration(time.Hour)
			c.AuthServer.Clients[0].Scopes = []string{"files:read"}
		}},
		{"tools", func(c *Config) {
			c.AuthServer.Resources[0].Tools = map[string]ToolRule{
				"search_files":           {Scopes: []string{"files:read"}},
				"fs/write.v2-beta":       {Scopes: []string{"files:read", "files:write"}, ACRValues: []string{"urn:openxaa:acr:mfa", "phr"}, MaxAge: Duration(5 * time.Minute)},
				"max_age_at_cap":         {Scopes: []string{"files:write"}, MaxAge: Duration(24 * time.Hour)},
				strings.Repeat("t", 128): {Scopes: []string{"files:read"}},
			}
		}},
		{"private_key_jwt", func(c *Config) {
			cl := &c.AuthServer.Clients[0]
			cl.AuthMethod, cl.ClientSecretSHA256, cl.JWKSFile = "private_key_jwt", "", "/etc/xaa/a.jwks.json"
		}},
		{"jwks_uri with a query", func(c *Config) {
			c.AuthServer.TrustedIssuers[0].JWKSURI = "https://idp.example.com/keys?v=2"
		}},
		{"loopback http in dev mode", func(c *Config) {
			c.DevMode = true
			c.Issuers = Issuers{IdP: "http://127.0.0.1:8080/idp", AuthServer: "http://127.0.0.1:8080/as"}
			c.AuthServer.TrustedIssuers[0] = TrustedIssuer{Issuer: "http://127.0.0.1:8080/idp", JWKSURI: "http://127.0.0.1:8080/idp/jwks.json"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validAuthServerConfig()
			tt.mutate(c)
			if err := c.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestValidateAuthServerErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{
			name:   "trusted issuer is the authserver itself",
			mutate: func(c *Config) { c.AuthServer.TrustedIssuers[0].Issuer = "https://AS.example.com/" },
			want:   []string{`authserver.trusted_issuers[0].issuer: must differ from issuers.authserver: the authorization server never redeems ID-JAGs of its own trust domain (cross-domain rule)`},
		},
		{
			name:   "trusted issuer missing",
			mutate: func(c *Config) { c.AuthServer.TrustedIssuers[0].Issuer = "" },
			want:   []string{`authserver.trusted_issuers[0].issuer: required; set it to the IdP's issuer, such as "https://idp.example.com"`},
		},
		{
			name:   "trusted issuer over http",
			mutate: func(c *Config) { c.AuthServer.TrustedIssuers[0].Issuer = "http://idp.example.com" },
			want:   []string{`authserver.trusted_issuers[0].issuer: must use https, got "http://idp.example.com"; http is allowed only for loopback hosts in dev_mode`},
		},
		{
			name: "loopback http without dev mode",
			mutate: func(c *Config) {
				c.AuthServer.TrustedIssuers[0] = TrustedIssuer{Issuer: "http://127.0.0.1:1/idp", JWKSURI: "http://127.0.0.1:1/idp/jwks.json"}
			},
			want: []string{
				`authserver.trusted_issuers[0].issuer: uses http ("http://127.0.0.1:1/idp"); use https, or set dev_mode: true to allow http on loopback while developing`,
				`authserver.trusted_issuers[0].jwks_uri: uses http ("http://127.0.0.1:1/idp/jwks.json"); use https, or set dev_mode: true to allow http on loopback while developing`,
			},
		},
		{
			name:   "trusted issuer with a pipe",
			mutate: func(c *Config) { c.AuthServer.TrustedIssuers[0].Issuer = "https://idp.example.com/a|b" },
			want:   []string{`authserver.trusted_issuers[0].issuer: must not contain "|", got "https://idp.example.com/a|b"`},
		},
		{
			name: "trusted issuer twice",
			mutate: func(c *Config) {
				c.AuthServer.TrustedIssuers = append(c.AuthServer.TrustedIssuers, c.AuthServer.TrustedIssuers[0])
			},
			want: []string{`authserver.trusted_issuers[1].issuer: "https://idp.example.com" is listed twice; keep one entry per issuer`},
		},
		{
			name:   "jwks_uri missing",
			mutate: func(c *Config) { c.AuthServer.TrustedIssuers[0].JWKSURI = "" },
			want:   []string{`authserver.trusted_issuers[0].jwks_uri: required; set it to the URL where the IdP publishes its JWK Set`},
		},
		{
			name:   "jwks_uri relative",
			mutate: func(c *Config) { c.AuthServer.TrustedIssuers[0].JWKSURI = "/jwks.json" },
			want:   []string{`authserver.trusted_issuers[0].jwks_uri: must be an absolute URL such as "https://idp.example.com/jwks.json", got "/jwks.json"`},
		},
		{
			name:   "jwks_uri over http with a query",
			mutate: func(c *Config) { c.AuthServer.TrustedIssuers[0].JWKSURI = "http://idp.example.com/jwks?v=1" },
			want:   []string{`authserver.trusted_issuers[0].jwks_uri: must use https, got "http://idp.example.com/jwks"; http is allowed only for loopback hosts in dev_mode`},
		},
		{
			name:   "algorithm outside the profile",
			mutate: func(c *Config) { c.AuthServer.TrustedIssuers[0].Algorithms = []string{"ES256", "HS256"} },
			want:   []string{`authserver.trusted_issuers[0].algorithms[1]: must be ES256, EdDSA, RS256 or PS256 (the ID-JAG profile's), got "HS256"`},
		},
		{
			name:   "assertion lifetime over the cap",
			mutate: func(c *Config) { c.AuthServer.TrustedIssuers[0].MaxAssertionLifetime = Duration(11 * time.Minute) },
			want:   []string{`authserver.trusted_issuers[0].max_assertion_lifetime: must be 0 (the default, 5m) or from 1s to 10m0s, got 11m0s`},
		},
		{
			name:   "resource not canonical",
			mutate: func(c *Config) { c.AuthServer.Resources[0].URI = "HTTPS://MCP.example.com:443/files" },
			want: []string{
				`authserver.resources[0].uri: is not canonical; write it as "https://mcp.example.com/files"`,
				`authserver.clients[0].resources[0]: "https://mcp.example.com/files" is not one of authserver.resources`,
			},
		},
		{
			name: "resource without scopes, bad lifetime",
			mutate: func(c *Config) {
				c.AuthServer.Resources[0].Scopes = nil
				c.AuthServer.Resources[0].AccessTokenLifetime = Duration(2 * time.Hour)
			},
			want: []string{
				`authserver.resources[0].scopes: required; list the scopes the resource understands`,
				`authserver.resources[0].access_token_lifetime: must be 0 (the default, 5m) or whole seconds from 1s to 1h0m0s, got 2h0m0s`,
			},
		},
		{
			name:   "resource scope invalid and repeated",
			mutate: func(c *Config) { c.AuthServer.Resources[0].Scopes = []string{"a b", "x", "x"} },
			want: []string{
				`authserver.resources[0].scopes[0]: "a b" is not a valid scope (RFC 6749 §3.3: printable ASCII, no spaces or quotes)`,
				`authserver.resources[0].scopes[2]: "x" is listed twice`,
			},
		},
		{
			name: "tool names",
			mutate: func(c *Config) {
				c.AuthServer.Resources[0].Tools = map[string]ToolRule{
					"a b":                    {Scopes: []string{"files:read"}},
					"":                       {Scopes: []string{"files:read"}},
					strings.Repeat("t", 129): {Scopes: []string{"files:read"}},
					"s\u00e9arch":            {Scopes: []string{"files:read"}},
				}
			},
			want: []string{
				`authserver.resources[0].tools[""]: is not a valid MCP tool name: use 1-128 ASCII letters, digits and _ . - /`,
				`authserver.resources[0].tools["a b"]: is not a valid MCP tool name: use 1-128 ASCII letters, digits and _ . - /`,
				`authserver.resources[0].tools["séarch"]: is not a valid MCP tool name: use 1-128 ASCII letters, digits and _ . - /`,
				`authserver.resources[0].tools.` + strings.Repeat("t", 129) + `: is not a valid MCP tool name: use 1-128 ASCII letters, digits and _ . - /`,
			},
		},
		{
			name: "tool scopes",
			mutate: func(c *Config) {
				c.AuthServer.Resources[0].Tools = map[string]ToolRule{
					"none":    {},
					"foreign": {Scopes: []string{"files:read", "admin"}},
					"twice":   {Scopes: []string{"files:write", "files:write"}},
				}
			},
			want: []string{
				`authserver.resources[0].tools.foreign.scopes[1]: "admin" is not one of the resource's scopes (authserver.resources[0].scopes)`,
				`authserver.resources[0].tools.none.scopes: required; list the scopes (from authserver.resources[0].scopes) a call of this tool needs`,
				`authserver.resources[0].tools.twice.scopes[1]: "files:write" is listed twice`,
			},
		},
		{
			name: "tool step-up",
			mutate: func(c *Config) {
				c.AuthServer.Resources[0].Tools = map[string]ToolRule{
					"a": {Scopes: []string{"files:read"}, ACRValues: []string{"", "a b", `q"`, "mfa", "mfa"}},
					"b": {Scopes: []string{"files:read"}, MaxAge: Duration(-time.Second)},
					"c": {Scopes: []string{"files:read"}, MaxAge: Duration(25 * time.Hour)},
					"d": {Scopes: []string{"files:read"}, MaxAge: Duration(1500 * time.Millisecond)},
				}
			},
			want: []string{
				`authserver.resources[0].tools.a.acr_values[0]: must not be empty; name an authentication context class, such as "urn:openxaa:acr:mfa"`,
				`authserver.resources[0].tools.a.acr_values[1]: "a b" is not a valid acr value: printable ASCII without spaces, quotes or backslashes, at most 256 bytes`,
				`authserver.resources[0].tools.a.acr_values[2]: "q\"" is not a valid acr value: printable ASCII without spaces, quotes or backslashes, at most 256 bytes`,
				`authserver.resources[0].tools.a.acr_values[4]: "mfa" is listed twice`,
				`authserver.resources[0].tools.b.max_age: must be 0 (no limit) or whole seconds up to 24h0m0s, got -1s`,
				`authserver.resources[0].tools.c.max_age: must be 0 (no limit) or whole seconds up to 24h0m0s, got 25h0m0s`,
				`authserver.resources[0].tools.d.max_age: must be 0 (no limit) or whole seconds up to 24h0m0s, got 1.5s`,
			},
		},
		{
			name:   "client references an unknown resource",
			mutate: func(c *Config) { c.AuthServer.Clients[0].Resources = []string{"https://other.example.com/x"} },
			want:   []string{`authserver.clients[0].resources[0]: "https://other.example.com/x" is not one of authserver.resources`},
		},
		{
			name:   "client secret digest not hex",
			mutate: func(c *Config) { c.AuthServer.Clients[0].ClientSecretSHA256 = "hunter2" },
			want:   []string{`authserver.clients[0].client_secret_sha256: must be 64 hex digits, the SHA-256 of the client secret (printf %s "$SECRET" | sha256sum)`},
		},
		{
			name:   "client secret digest too short",
			mutate: func(c *Config) { c.AuthServer.Clients[0].ClientSecretSHA256 = testDigest[:62] },
			want:   []string{`authserver.clients[0].client_secret_sha256: must be 64 hex digits, the SHA-256 of the client secret (printf %s "$SECRET" | sha256sum)`},
		},
		{
			name: "client fields missing",
			mutate: func(c *Config) {
				c.AuthServer.Clients[0] = ASClient{AuthMethod: "Client_Secret_Basic", Scopes: []string{}}
			},
			want: []string{
				`authserver.clients[0].client_id: required`,
				`authserver.clients[0].auth_method: must be one of client_secret_basic, client_secret_post, private_key_jwt, got "Client_Secret_Basic" (write "client_secret_basic": values are case-sensitive)`,
				`authserver.clients[0].resources: required; list the resources (from authserver.resources) the client may obtain tokens for`,
				`authserver.clients[0].scopes: an empty list grants nothing; omit scopes for no narrowing beyond each resource's scopes`,
			},
		},
		{
			name: "private_key_jwt without jwks, with a secret",
			mutate: func(c *Config) {
				c.AuthServer.Clients[0].AuthMethod = "private_key_jwt"
			},
			want: []string{
				`authserver.clients[0].jwks_file: required for private_key_jwt; set it to a file holding the client's public JWK Set`,
				`authserver.clients[0].client_secret_sha256: a private_key_jwt client has no secret; remove it`,
			},
		},
		{
			name:   "secret client with jwks_file",
			mutate: func(c *Config) { c.AuthServer.Clients[0].JWKSFile = "/k.json" },
			want:   []string{`authserver.clients[0].jwks_file: is for private_key_jwt; remove it or set auth_method: private_key_jwt`},
		},
		{
			name:   "client listed twice",
			mutate: func(c *Config) { c.AuthServer.Clients = append(c.AuthServer.Clients, c.AuthServer.Clients[0]) },
			want:   []string{`authserver.clients[1].client_id: "assistant" is listed twice`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validAuthServerConfig()
			tt.mutate(c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate succeeded; want an error")
			}
			if diff := cmp.Diff(tt.want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("error lines (-want +got):\n%s", diff)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Error("errors.Is(err, ErrInvalid) = false")
			}
		})
	}
}

// TestAuthServerSectionNamesTheLine: a bad value in the section points at
// its line, and a typo in a list item's key is refused.
func TestAuthServerSectionNamesTheLine(t *testing.T) {
	t.Parallel()
	const file = `keys:
  wrapping_key_file: /k
issuers:
  authserver: https://as.example.com
authserver:
  trusted_issuers:
    - issuer: https://as.example.com
      jwks_uri: https://as.example.com/jwks.json
`
	cfg, err := Load(writeFile(t, "config.yaml", file, 0o600), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), ":7:15: authserver.trusted_issuers[0].issuer: must differ") {
		t.Errorf("Validate = %v; want the error at line 7", err)
	}

	_, err = Load(writeFile(t, "typo.yaml", file+"      allow_resue: true\n", 0o600), nil)
	if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), "authserver.trusted_issuers[0].allow_resue") {
		t.Errorf("Load with a typo = %v; want ErrUnknownKey naming the key", err)
	}
}

// TestToolsSectionNamesTheLine: a tool error points at the tool's line in
// the file, and a typo in a tool rule's key is refused.
func TestToolsSectionNamesTheLine(t *testing.T) {
	t.Parallel()
	const file = `keys:
  wrapping_key_file: /k
issuers:
  authserver: https://as.example.com
authserver:
  resources:
    - uri: https://mcp.example.com/crm
      scopes: [crm:read, crm:export]
      tools:
        search_customers: {scopes: [crm:read]}
        export_customers: {scopes: [crm:export], acr_values: [urn:openxaa:acr:mfa], max_age: 5m}
        crm/delete: {scopes: [crm:delete]}
`
	cfg, err := Load(writeFile(t, "config.yaml", file, 0o600), nil)
	if err != nil {
		t.Fatal(err)
	}
	tools := cfg.AuthServer.Resources[0].Tools
	want := ToolRule{Scopes: []string{"crm:export"}, ACRValues: []string{"urn:openxaa:acr:mfa"}, MaxAge: Duration(5 * time.Minute)}
	if d := cmp.Diff(want, tools["export_customers"]); d != "" || len(tools) != 3 {
		t.Errorf("tools = %v (-want +got export_customers):\n%s", tools, d)
	}
	err = cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), `:12:31: authserver.resources[0].tools["crm/delete"].scopes[0]: "crm:delete" is not one of`) {
		t.Errorf("Validate = %v; want the error at line 12", err)
	}

	_, err = Load(writeFile(t, "typo.yaml", strings.Replace(file, "max_age:", "maxage:", 1), 0o600), nil)
	if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), "authserver.resources[0].tools.export_customers.maxage") {
		t.Errorf("Load with a typo = %v; want ErrUnknownKey naming the key", err)
	}
}

// TestRedactedCopiesTools: Redacted deep-copies the tool maps, so editing
// the copy leaves the original alone.
func TestRedactedCopiesTools(t *testing.T) {
	t.Parallel()
	mk := func() *Config {
		c := validAuthServerConfig()
		c.AuthServer.Resources[0].Tools = map[string]ToolRule{
			"t": {Scopes: []string{"files:read"}, ACRValues: []string{"mfa"}, MaxAge: Duration(time.Minute)},
		}
		return c
	}
	c := mk()
	r := c.Redacted()
	rt := r.AuthServer.Resources[0].Tools
	rt["t"].Scopes[0], rt["t"].ACRValues[0] = "x", "y"
	rt["u"] = ToolRule{}
	if d := cmp.Diff(mk().AuthServer.Resources[0].Tools, c.AuthServer.Resources[0].Tools); d != "" {
		t.Errorf("editing the redacted copy changed the original (-want +got):\n%s", d)
	}
}
