package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// validGatewayConfig is validConfig with one HTTP route and one stdio route.
func validGatewayConfig() *Config {
	c := validConfig()
	c.Gateway = Gateway{Routes: []GatewayRoute{
		{
			Path:       "/mcp/files",
			Resource:   "https://gw.example.com/mcp/files",
			AuthServer: GatewayAuthServer{Issuer: "https://as.example.com", ClientID: "gw-files", ClientSecretFile: "/run/secrets/gw"},
			Upstream:   GatewayUpstream{URL: "http://127.0.0.1:9001/mcp"},
		},
		{
			Path:       "/mcp/crm",
			Resource:   "https://gw.example.com/mcp/crm",
			AuthServer: GatewayAuthServer{Issuer: "https://as.example.com", ClientID: "gw-crm", ClientSecret: "s3cret"},
			Upstream:   GatewayUpstream{Command: []string{"/usr/local/bin/crm-mcp", "--stdio"}},
		},
	}}
	return c
}

func TestValidateGatewayValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"base", func(*Config) {}},
		{"empty section", func(c *Config) { c.Gateway = Gateway{} }},
		{"every option", func(c *Config) {
			r := &c.Gateway.Routes[0]
			r.AuthServer.Verify = "introspection"
			r.Upstream.URL = "https://files.internal.example.com/mcp"
			r.Upstream.Credential = &GatewayCredential{Header: "Authorization", ValueFile: "/run/secrets/up", Prefix: "Bearer "}
			r.Tools = map[string]ToolRule{
				"read_file":       {Scopes: []string{"files:read"}},
				"admin/delete.v2": {Scopes: []string{"files:write"}, ACRValues: []string{"urn:openxaa:acr:mfa"}, MaxAge: Duration(5 * time.Minute)},
			}
			r.RevocationPollInterval, r.RevocationMaxStaleness = Duration(5*time.Second), Duration(time.Minute)
			s := &c.Gateway.Routes[1]
			s.Upstream.Env = map[string]Secret{"API_KEY": "k", "_X1": ""}
			s.Upstream.MaxChildren, s.Upstream.IdleTimeout = 4096, Duration(time.Second)
			s.AllowedOrigins = []string{"https://chat.example.com", "http://127.0.0.1:3000"}
		}},
		{"credential over http to loopback", func(c *Config) {
			c.Gateway.Routes[0].Upstream.Credential = &GatewayCredential{Header: "X-Api-Key", Value: "v"}
		}},
		{"loopback issuer and resource in dev mode", func(c *Config) {
			c.DevMode = true
			c.Gateway.Routes[0].AuthServer.Issuer = "http://127.0.0.1:8080/as"
			c.Gateway.Routes[0].Resource = "http://127.0.0.1:8080/mcp/files"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validGatewayConfig()
			tt.mutate(c)
			if err := c.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestValidateGatewayErrors(t *testing.T) {
	t.Parallel()
	const r0 = "gateway.routes[0]"
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"path missing", func(c *Config) { c.Gateway.Routes[0].Path = "" },
			[]string{r0 + `.path: required; set it to the path the MCP endpoint is mounted at, such as "/mcp/files"`}},
		{"path relative", func(c *Config) { c.Gateway.Routes[0].Path = "mcp" },
			[]string{r0 + `.path: must start with "/", such as "/mcp/files", got "mcp"`}},
		{"path root", func(c *Config) { c.Gateway.Routes[0].Path = "/" },
			[]string{r0 + `.path: must not be "/" (the host root also serves health and metadata); use a path such as "/mcp/files"`}},
		{"path trailing slash", func(c *Config) { c.Gateway.Routes[0].Path = "/mcp/" },
			[]string{r0 + `.path: must not end with "/"; write "/mcp"`}},
		{"path pattern", func(c *Config) { c.Gateway.Routes[0].Path = "/mcp/{name}" },
			[]string{r0 + `.path: must be a plain path without "?", "#", "{", "}" or "*", got "/mcp/{name}"`}},
		{"path dot segment", func(c *Config) { c.Gateway.Routes[0].Path = "/mcp/../x" },
			[]string{r0 + `.path: must not have empty, "." or ".." segments, got "/mcp/../x"`}},
		{"path escaped", func(c *Config) { c.Gateway.Routes[0].Path = "/mcp%2Fx" },
			[]string{r0 + `.path: must be printable ASCII without spaces, "%" or "\", got "/mcp%2Fx"`}},
		{"path well-known", func(c *Config) { c.Gateway.Routes[0].Path = "/.well-known/x" },
			[]string{r0 + `.path: must not be under /.well-known/, which holds metadata`}},
		{"path healthz", func(c *Config) { c.Gateway.Routes[0].Path = "/healthz" },
			[]string{r0 + `.path: "/healthz" is reserved for operations endpoints`}},
		{"path twice", func(c *Config) { c.Gateway.Routes[1].Path = "/mcp/files" },
			[]string{`gateway.routes[1].path: "/mcp/files" is mounted twice; give each route its own path`}},
		{"resource missing", func(c *Config) { c.Gateway.Routes[0].Resource = "" },
			[]string{r0 + `.resource: required; set it to the canonical URI clients use for this MCP server, such as "https://gw.example.com/mcp/files"`}},
		{"resource not canonical", func(c *Config) { c.Gateway.Routes[0].Resource = "HTTPS://GW.example.com:443/mcp/files" },
			[]string{r0 + `.resource: is not canonical; write it as "https://gw.example.com/mcp/files"`}},
		{"resource with a query", func(c *Config) { c.Gateway.Routes[0].Resource = "https://gw.example.com/mcp?x=1" },
			[]string{r0 + `.resource: is not a valid resource URI: store: invalid resource URI: must not have a query (the part after "?")`}},
		{"resource twice", func(c *Config) { c.Gateway.Routes[1].Resource = c.Gateway.Routes[0].Resource },
			[]string{`gateway.routes[1].resource: "https://gw.example.com/mcp/files" is served by two routes; each resource has one route`}},
		{"issuer missing", func(c *Config) { c.Gateway.Routes[0].AuthServer.Issuer = "" },
			[]string{r0 + `.authserver.issuer: required; set it to the issuer of the authorization server that issues tokens for this resource, such as "https://as.example.com"`}},
		{"issuer over http without dev mode", func(c *Config) { c.Gateway.Routes[0].AuthServer.Issuer = "http://127.0.0.1:1/as" },
			[]string{r0 + `.authserver.issuer: uses http ("http://127.0.0.1:1/as"); use https, or set dev_mode: true to allow http on loopback while developing`}},
		{"client_id missing", func(c *Config) { c.Gateway.Routes[0].AuthServer.ClientID = "" },
			[]string{r0 + `.authserver.client_id: required; the gateway authenticates as this client at the authorization server to read the revocation list and the tool policy`}},
		{"no secret", func(c *Config) { c.Gateway.Routes[0].AuthServer.ClientSecretFile = "" },
			[]string{r0 + `.authserver.client_secret_file: required (or client_secret); set it to a file holding the gateway's client secret at the authorization server`}},
		{"two secrets", func(c *Config) { c.Gateway.Routes[0].AuthServer.ClientSecret = "x" },
			[]string{r0 + `.authserver.client_secret: both client_secret and client_secret_file are set; keep only client_secret_file`}},
		{"verify unknown", func(c *Config) { c.Gateway.Routes[0].AuthServer.Verify = "JWT" },
			[]string{r0 + `.authserver.verify: must be jwt or introspection, got "JWT" (write "jwt": values are case-sensitive)`}},
		{"no upstream", func(c *Config) { c.Gateway.Routes[0].Upstream.URL = "" },
			[]string{r0 + `.upstream.url: required (or command); set it to the upstream's streamable HTTP endpoint, such as "http://127.0.0.1:9001/mcp", or set command to launch a stdio server`}},
		{"two upstreams", func(c *Config) { c.Gateway.Routes[0].Upstream.Command = []string{"/bin/x"} },
			[]string{r0 + `.upstream.command: both url and command are set; an upstream is either a streamable HTTP endpoint (url) or a stdio server (command)`}},
		{"upstream relative", func(c *Config) { c.Gateway.Routes[0].Upstream.URL = "/mcp" },
			[]string{r0 + `.upstream.url: must be an absolute URL such as "http://127.0.0.1:9001/mcp", got "/mcp"`}},
		{"upstream scheme", func(c *Config) { c.Gateway.Routes[0].Upstream.URL = "ws://127.0.0.1/mcp" },
			[]string{r0 + `.upstream.url: must use http or https, got "ws"`}},
		{"upstream userinfo", func(c *Config) { c.Gateway.Routes[0].Upstream.URL = "https://u:p@up.example.com/mcp" },
			[]string{r0 + `.upstream.url: must not contain a user name or password; use upstream.credential`}},
		{"credential over clear text", func(c *Config) {
			c.Gateway.Routes[0].Upstream.URL = "http://files.internal/mcp"
			c.Gateway.Routes[0].Upstream.Credential = &GatewayCredential{Header: "X-Api-Key", ValueFile: "/k"}
		}, []string{r0 + `.upstream.url: uses http to "files.internal", which would send upstream.credential in clear text; use https, or run the upstream on loopback`}},
		{"stdio options on http", func(c *Config) {
			u := &c.Gateway.Routes[0].Upstream
			u.Env, u.MaxChildren, u.IdleTimeout = map[string]Secret{"A": "b"}, 3, Duration(time.Minute)
		}, []string{
			r0 + `.upstream.env: applies only to command; remove it for an HTTP upstream`,
			r0 + `.upstream.max_children: applies only to command; remove it for an HTTP upstream`,
			r0 + `.upstream.idle_timeout: applies only to command; remove it for an HTTP upstream`,
		}},
		{"empty executable", func(c *Config) { c.Gateway.Routes[1].Upstream.Command = []string{""} },
			[]string{`gateway.routes[1].upstream.command[0]: the executable must not be empty`}},
		{"bad env", func(c *Config) {
			c.Gateway.Routes[1].Upstream.Env = map[string]Secret{"1X": "a", "OK": "a\x00b"}
		}, []string{
			`gateway.routes[1].upstream.env.1X: "1X" is not an environment variable name (letters, digits and "_", not starting with a digit)`,
			`gateway.routes[1].upstream.env.OK: the value contains a NUL byte`,
		}},
		{"max_children out of range", func(c *Config) { c.Gateway.Routes[1].Upstream.MaxChildren = 4097 },
			[]string{`gateway.routes[1].upstream.max_children: must be 0 (the default, 64) or from 1 to 4096, got 4097`}},
		{"idle_timeout too short", func(c *Config) { c.Gateway.Routes[1].Upstream.IdleTimeout = Duration(time.Millisecond) },
			[]string{`gateway.routes[1].upstream.idle_timeout: must be 0 (the default, 30m0s) or at least 1s, got 1ms`}},
		{"credential incomplete", func(c *Config) { c.Gateway.Routes[0].Upstream.Credential = &GatewayCredential{} },
			[]string{
				r0 + `.upstream.credential.header: required; the header that carries the credential, such as Authorization or X-Api-Key`,
				r0 + `.upstream.credential.value_file: required (or value); set it to a file holding the upstream's credential`,
			}},
		{"credential bad header", func(c *Config) {
			c.Gateway.Routes[0].Upstream.Credential = &GatewayCredential{Header: "X Key", Value: "v"}
		}, []string{r0 + `.upstream.credential.header: "X Key" is not a valid header name`}},
		{"credential reserved header", func(c *Config) {
			c.Gateway.Routes[0].Upstream.Credential = &GatewayCredential{Header: "mcp-session-id", Value: "v"}
		}, []string{r0 + `.upstream.credential.header: "mcp-session-id" is managed by the proxy and cannot carry a credential`}},
		{"credential two values and a line break", func(c *Config) {
			c.Gateway.Routes[0].Upstream.Credential = &GatewayCredential{Header: "X-Key", Value: "v", ValueFile: "/f", Prefix: "a\r\nb"}
		}, []string{
			r0 + `.upstream.credential.value: both value and value_file are set; keep only value_file`,
			r0 + `.upstream.credential.value: must not contain line breaks or NUL bytes`,
		}},
		{"tool name", func(c *Config) {
			c.Gateway.Routes[0].Tools = map[string]ToolRule{"bad name": {Scopes: []string{"a"}}, strings.Repeat("x", 129): {Scopes: []string{"a"}}}
		}, []string{
			r0 + `.tools["bad name"]: "bad name" is not an MCP tool name (1 to 128 letters, digits, "_", "-", "." or "/")`,
			fmt.Sprintf(`%s.tools.%s: %s is not an MCP tool name (1 to 128 letters, digits, "_", "-", "." or "/")`, r0, strings.Repeat("x", 129), quote(strings.Repeat("x", 129))),
		}},
		{"tool rule values", func(c *Config) {
			c.Gateway.Routes[0].Tools = map[string]ToolRule{
				"t": {Scopes: []string{"a", "a", "b c"}, ACRValues: []string{"x y", "m", "m"}, MaxAge: Duration(1500 * time.Millisecond)},
				"u": {},
			}
		}, []string{
			r0 + `.tools.t.scopes[1]: "a" is listed twice`,
			r0 + `.tools.t.scopes[2]: "b c" is not a valid scope (RFC 6749 §3.3: printable ASCII, no spaces or quotes)`,
			r0 + `.tools.t.acr_values[0]: "x y" is not a valid acr value (printable ASCII, no spaces or quotes)`,
			r0 + `.tools.t.acr_values[2]: "m" is listed twice`,
			r0 + `.tools.t.max_age: must be 0 (no limit) or whole seconds from 1s to 24h0m0s, got 1.5s`,
			r0 + `.tools.u.scopes: required; a tool needs at least one scope (a tool any token may call is almost always a mistake)`,
		}},
		{"poll interval too short", func(c *Config) { c.Gateway.Routes[0].RevocationPollInterval = Duration(500 * time.Millisecond) },
			[]string{r0 + `.revocation_poll_interval: must be 0 (the default, 10s) or from 1s to 1h, got 500ms`}},
		{"staleness not above the interval", func(c *Config) { c.Gateway.Routes[0].RevocationPollInterval = Duration(time.Minute) },
			[]string{r0 + `.revocation_max_staleness: must be longer than the poll interval (1m0s), got 1m0s; a value at or below it fails every tool call between two polls`}},
		{"staleness too long", func(c *Config) { c.Gateway.Routes[0].RevocationMaxStaleness = Duration(25 * time.Hour) },
			[]string{r0 + `.revocation_max_staleness: must be at most 24h, got 25h0m0s`}},
		{"allowed origins that are not bare lowercase origins", func(c *Config) {
			c.Gateway.Routes[0].AllowedOrigins = []string{"https://ok.example.com", "https://x.example.com/path", "ftp://x.example.com", "HTTPS://X.example.com", "https://u@x.example.com", "*"}
		}, []string{
			r0 + `.allowed_origins[1]: must be a bare lowercase origin such as "https://chat.example.com", got "https://x.example.com/path"`,
			r0 + `.allowed_origins[2]: must be a bare lowercase origin such as "https://chat.example.com", got "ftp://x.example.com"`,
			r0 + `.allowed_origins[3]: must be a bare lowercase origin such as "https://chat.example.com", got "HTTPS://X.example.com"`,
			r0 + `.allowed_origins[4]: must be a bare lowercase origin such as "https://chat.example.com", got "https://u@x.example.com"`,
			r0 + `.allowed_origins[5]: must be a bare lowercase origin such as "https://chat.example.com", got "*"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validGatewayConfig()
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

// TestGatewaySectionLoads: the whole section decodes from YAML, a bad value
// points at its line, and the secrets in it make a group-readable file an
// error.
func TestGatewaySectionLoads(t *testing.T) {
	t.Parallel()
	const file = `keys:
  wrapping_key_file: /k
gateway:
  routes:
    - path: /mcp/files
      resource: https://gw.example.com/mcp/files
      authserver:
        issuer: https://as.example.com
        client_id: gw-files
        client_secret_file: /run/secrets/gw
        verify: introspection
      upstream:
        url: https://files.example.com/mcp
        credential: {header: Authorization, value_file: /run/secrets/up, prefix: "Bearer "}
      tools:
        read_file: {scopes: [files:read]}
        delete_file: {scopes: [files:write], acr_values: [urn:openxaa:acr:mfa], max_age: 5m}
      revocation_poll_interval: 5s
      revocation_max_staleness: 30s
    - path: /mcp/crm
      resource: https://gw.example.com/mcp/crm
      authserver: {issuer: https://as.example.com, client_id: gw-crm, client_secret_file: /s}
      upstream:
        command: [/usr/local/bin/crm-mcp, --stdio]
        env: {CRM_URL: https://crm.example.com}
        max_children: 8
        idle_timeout: 10m
`
	cfg, err := Load(writeFile(t, "config.yaml", file, 0o600), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := Gateway{Routes: []GatewayRoute{
		{
			Path: "/mcp/files", Resource: "https://gw.example.com/mcp/files",
			AuthServer: GatewayAuthServer{Issuer: "https://as.example.com", ClientID: "gw-files", ClientSecretFile: "/run/secrets/gw", Verify: "introspection"},
			Upstream: GatewayUpstream{URL: "https://files.example.com/mcp",
				Credential: &GatewayCredential{Header: "Authorization", ValueFile: "/run/secrets/up", Prefix: "Bearer "}},
			Tools: map[string]ToolRule{
				"read_file":   {Scopes: []string{"files:read"}},
				"delete_file": {Scopes: []string{"files:write"}, ACRValues: []string{"urn:openxaa:acr:mfa"}, MaxAge: Duration(5 * time.Minute)},
			},
			RevocationPollInterval: Duration(5 * time.Second), RevocationMaxStaleness: Duration(30 * time.Second),
		},
		{
			Path: "/mcp/crm", Resource: "https://gw.example.com/mcp/crm",
			AuthServer: GatewayAuthServer{Issuer: "https://as.example.com", ClientID: "gw-crm", ClientSecretFile: "/s"},
			Upstream: GatewayUpstream{Command: []string{"/usr/local/bin/crm-mcp", "--stdio"},
				Env: map[string]Secret{"CRM_URL": "https://crm.example.com"}, MaxChildren: 8, IdleTimeout: Duration(10 * time.Minute)},
		},
	}}
	if diff := cmp.Diff(want, cfg.Gateway); diff != "" {
		t.Errorf("gateway section (-want +got):\n%s", diff)
	}
	r := cfg.Gateway.Routes[1]
	if r.PollInterval() != 10*time.Second || r.MaxStaleness() != time.Minute || r.VerifyMethod() != "jwt" {
		t.Errorf("defaults: poll %s, staleness %s, verify %q", r.PollInterval(), r.MaxStaleness(), r.VerifyMethod())
	}

	// A bad value names its line.
	bad := strings.Replace(file, "path: /mcp/crm", "path: mcp/crm", 1)
	cfg, err = Load(writeFile(t, "bad.yaml", bad, 0o600), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), ":20:13: gateway.routes[1].path: must start with") {
		t.Errorf("Validate = %v; want the error at line 20", err)
	}

	// The env values are secrets: a group-readable file holding them is refused.
	_, err = Load(writeFile(t, "open.yaml", file, 0o640), nil)
	if !errors.Is(err, ErrInsecureFile) || !strings.Contains(err.Error(), "gateway.routes[1].upstream.env.CRM_URL") {
		t.Errorf("Load of a 0640 file with env secrets = %v; want ErrInsecureFile naming the env value", err)
	}
}

// TestGatewayRedacted: every secret of the section prints redacted, and the
// copy shares nothing with the original.
func TestGatewayRedacted(t *testing.T) {
	t.Parallel()
	c := validGatewayConfig()
	r := &c.Gateway.Routes[0]
	r.Upstream.URL = "https://u.example.com/mcp?api_token=MARKER1"
	r.Upstream.Credential = &GatewayCredential{Header: "X-Key", Value: "MARKER2"}
	r.Tools = map[string]ToolRule{"t": {Scopes: []string{"a"}}}
	c.Gateway.Routes[1].AuthServer.ClientSecret = "MARKER3"
	c.Gateway.Routes[1].Upstream.Env = map[string]Secret{"K": "MARKER4"}

	out := c.String() + fmt.Sprintf("%v %+v %#v", c, *c, c)
	for _, m := range []string{"MARKER1", "MARKER2", "MARKER3", "MARKER4"} {
		if strings.Contains(out, m) {
			t.Errorf("a rendering leaks %s", m)
		}
	}
	red := c.Redacted()
	if got := red.Gateway.Routes[1].Upstream.Env["K"]; got != redactedText {
		t.Errorf("redacted env = %q", got)
	}
	red.Gateway.Routes[0].Tools["t"].Scopes[0] = "changed"
	red.Gateway.Routes[0].Upstream.Credential.Header = "changed"
	red.Gateway.Routes[1].Upstream.Command[0] = "changed"
	if c.Gateway.Routes[0].Tools["t"].Scopes[0] != "a" || c.Gateway.Routes[0].Upstream.Credential.Header != "X-Key" ||
		c.Gateway.Routes[1].Upstream.Command[0] != "/usr/local/bin/crm-mcp" {
		t.Error("Redacted shares memory with the original")
	}
	if c.Gateway.Routes[0].Upstream.Credential.Value.Reveal() != "MARKER2" {
		t.Error("Redacted changed the original")
	}
}
