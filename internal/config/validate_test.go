package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// validConfig is a config that passes Validate, for tests to break.
func validConfig() *Config {
	c := DefaultIn("/var/lib/xaa")
	c.Keys.WrappingKeyFile = "/etc/xaa/wrapping.key"
	c.Issuers = Issuers{IdP: "https://idp.example.com", AuthServer: "https://as.example.com"}
	return c
}

func TestValidateValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"base", func(*Config) {}},
		{"postgres", func(c *Config) { c.Database.URL = "postgres://xaa@db.example.com:5432/xaa?sslmode=verify-full" }},
		{"postgresql scheme", func(c *Config) { c.Database.URL = "postgresql:///xaa?host=/run/postgresql" }},
		{"sqlite with three slashes", func(c *Config) { c.Database.URL = "sqlite:///var/lib/xaa/xaa.db" }},
		{"sqlite relative", func(c *Config) { c.Database.URL = "sqlite:xaa.db" }},
		{"file URL with options", func(c *Config) { c.Database.URL = "file:xaa.db?_pragma=busy_timeout(5000)" }},
		{"inline wrapping key", func(c *Config) { c.Keys.WrappingKeyFile, c.Keys.WrappingKey = "", "a2V5" }},
		{"EdDSA", func(c *Config) { c.Keys.Algorithm = "EdDSA" }},
		{"no rotation", func(c *Config) { c.Keys.RotateEvery = 0 }},
		{"lifetime at the cap", func(c *Config) { c.Keys.MaxTokenLifetime = Duration(24 * time.Hour) }},
		{"rotation equal to lifetime", func(c *Config) { c.Keys.RotateEvery = c.Keys.MaxTokenLifetime }},
		{"every interface", func(c *Config) { c.Listen.Addr = ":8080" }},
		{"IPv6 and host name", func(c *Config) { c.Listen.Addr, c.Listen.AdminAddr = "[::1]:8080", "ops.internal:9090" }},
		{"ephemeral ports may repeat", func(c *Config) { c.Listen.Addr, c.Listen.AdminAddr = "127.0.0.1:0", "127.0.0.1:0" }},
		{"no admin listener", func(c *Config) { c.Listen.AdminAddr = "" }},
		{"TLS", func(c *Config) { c.Listen.TLSCertFile, c.Listen.TLSKeyFile = "/tls.crt", "/tls.key" }},
		{"proxies", func(c *Config) { c.Listen.TrustedProxies = []string{"10.0.0.0/8", "192.0.2.7/32", "fd00::/8"} }},
		{"no issuers yet", func(c *Config) { c.Issuers = Issuers{} }},
		{"seed file", func(c *Config) { c.SeedFile = "/etc/xaa/seed.yaml" }},
		{"relative seed file with a space", func(c *Config) { c.SeedFile = "org seed.yaml" }},
		{"issuers with paths", func(c *Config) {
			c.Issuers = Issuers{IdP: "https://login.example.com/t/acme", AuthServer: "https://login.example.com/t/acme/as"}
		}},
		{"loopback http in dev mode", func(c *Config) {
			c.DevMode = true
			c.Issuers = Issuers{IdP: "http://127.0.0.1:8080/idp", AuthServer: "http://localhost:8080/as"}
		}},
		{"IPv6 loopback http in dev mode", func(c *Config) {
			c.DevMode = true
			c.Issuers = Issuers{IdP: "http://[::1]:8080/idp", AuthServer: "http://127.8.9.10:8081"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tt.mutate(c)
			if err := c.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestValidateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{
			name:   "database url missing",
			mutate: func(c *Config) { c.Database.URL = "" },
			want:   []string{`database.url: required; set it (or XAA_DATABASE_URL) to "sqlite:/var/lib/xaa/xaa.db" or "postgres://xaa@db.example.com:5432/xaa"`},
		},
		{
			name:   "database url unsupported scheme",
			mutate: func(c *Config) { c.Database.URL = "mysql://root:hunter2@db/xaa" },
			want:   []string{`database.url: unsupported scheme "mysql"; use "sqlite:" (or "file:") for the embedded store or "postgres://" for PostgreSQL`},
		},
		{
			name:   "database url keyword DSN",
			mutate: func(c *Config) { c.Database.URL = "host=db password=hunter2 dbname=xaa" },
			want:   []string{`database.url: is not a URL; write it as "sqlite:/var/lib/xaa/xaa.db" or "postgres://xaa@db.example.com:5432/xaa"`},
		},
		{
			name:   "database url unparsable",
			mutate: func(c *Config) { c.Database.URL = "postgres://xaa:hunter2%zz@db/xaa" },
			want:   []string{`database.url: is not a URL; write it as "sqlite:/var/lib/xaa/xaa.db" or "postgres://xaa@db.example.com:5432/xaa"`},
		},
		{
			name:   "sqlite url with a host",
			mutate: func(c *Config) { c.Database.URL = "sqlite://var/lib/xaa.db" },
			want:   []string{`database.url: a SQLite URL takes a path, not a host; write it as "sqlite:/var/lib/xaa/xaa.db" or "sqlite:///var/lib/xaa/xaa.db"`},
		},
		{
			name:   "sqlite url without a path",
			mutate: func(c *Config) { c.Database.URL = "sqlite:" },
			want:   []string{`database.url: names no database file; write it as "sqlite:/var/lib/xaa/xaa.db"`},
		},
		{
			name:   "postgres url without slashes",
			mutate: func(c *Config) { c.Database.URL = "postgres:xaa@db/xaa" },
			want:   []string{`database.url: write a PostgreSQL URL with two slashes, as "postgres://xaa@db.example.com:5432/xaa"`},
		},
		{
			name:   "pool size zero",
			mutate: func(c *Config) { c.Database.MaxOpenConns = 0 },
			want:   []string{`database.max_open_conns: must be from 1 to 1000, got 0`},
		},
		{
			name:   "pool size too large",
			mutate: func(c *Config) { c.Database.MaxOpenConns = 1001 },
			want:   []string{`database.max_open_conns: must be from 1 to 1000, got 1001`},
		},
		{
			name:   "both wrapping key sources",
			mutate: func(c *Config) { c.Keys.WrappingKey = "a2V5" },
			want:   []string{`keys.wrapping_key: both keys.wrapping_key and keys.wrapping_key_file are set; keep only keys.wrapping_key_file`},
		},
		{
			name:   "no wrapping key",
			mutate: func(c *Config) { c.Keys.WrappingKeyFile = "" },
			want:   []string{"keys.wrapping_key_file: no wrapping key is configured; generate one with `xaa keys init` and set keys.wrapping_key_file (or XAA_KEYS_WRAPPING_KEY_FILE) to the file it writes"},
		},
		{
			name:   "RSA",
			mutate: func(c *Config) { c.Keys.Algorithm = "RS256" },
			want:   []string{`keys.algorithm: must be ES256 or EdDSA, got "RS256"`},
		},
		{
			name:   "algorithm in the wrong case",
			mutate: func(c *Config) { c.Keys.Algorithm = "es256" },
			want:   []string{`keys.algorithm: must be ES256 or EdDSA, got "es256" (write "ES256": values are case-sensitive)`},
		},
		{
			name:   "zero token lifetime",
			mutate: func(c *Config) { c.Keys.MaxTokenLifetime = 0 },
			want:   []string{`keys.max_token_lifetime: must be more than 0s and at most 24h0m0s, got 0s`},
		},
		{
			name:   "token lifetime over a day",
			mutate: func(c *Config) { c.Keys.MaxTokenLifetime = Duration(25 * time.Hour) },
			want:   []string{`keys.max_token_lifetime: must be more than 0s and at most 24h0m0s, got 25h0m0s`},
		},
		{
			name:   "negative token lifetime",
			mutate: func(c *Config) { c.Keys.MaxTokenLifetime = Duration(-time.Second) },
			want:   []string{`keys.max_token_lifetime: must be more than 0s and at most 24h0m0s, got -1s`},
		},
		{
			name:   "negative rotation",
			mutate: func(c *Config) { c.Keys.RotateEvery = Duration(-time.Hour) },
			want:   []string{`keys.rotate_every: must not be negative, got -1h0m0s; use 0 to turn automatic rotation off`},
		},
		{
			name:   "rotation faster than tokens expire",
			mutate: func(c *Config) { c.Keys.RotateEvery = Duration(30 * time.Minute) },
			want: []string{`keys.rotate_every: must be 0 (no automatic rotation) or at least keys.max_token_lifetime (1h0m0s), got 30m0s; ` +
				`rotating faster than tokens expire only piles up published keys`},
		},
		{
			name:   "log level",
			mutate: func(c *Config) { c.Log.Level = "verbose" },
			want:   []string{`log.level: must be one of debug, info, warn, error, got "verbose"`},
		},
		{
			name:   "log level in capitals",
			mutate: func(c *Config) { c.Log.Level = "INFO" },
			want:   []string{`log.level: must be one of debug, info, warn, error, got "INFO" (write "info": values are case-sensitive)`},
		},
		{
			name:   "log format",
			mutate: func(c *Config) { c.Log.Format = "logfmt" },
			want:   []string{`log.format: must be json or text, got "logfmt"`},
		},
		{
			name:   "listen addr missing",
			mutate: func(c *Config) { c.Listen.Addr = "" },
			want:   []string{`listen.addr: required; set it (or XAA_LISTEN_ADDR) to the host:port to listen on, such as "127.0.0.1:8080" or ":8080"`},
		},
		{
			name:   "listen addr is only a port",
			mutate: func(c *Config) { c.Listen.Addr = "8080" },
			want:   []string{`listen.addr: must be host:port; write ":8080" for every interface or "127.0.0.1:8080" for this machine only`},
		},
		{
			name:   "listen addr without port",
			mutate: func(c *Config) { c.Listen.Addr = "localhost" },
			want:   []string{`listen.addr: must be host:port, such as "127.0.0.1:8080", "[::1]:8080" or ":8080"; got "localhost"`},
		},
		{
			name:   "named port",
			mutate: func(c *Config) { c.Listen.Addr = "127.0.0.1:http" },
			want:   []string{`listen.addr: port "http" must be a number from 0 to 65535`},
		},
		{
			name:   "port out of range",
			mutate: func(c *Config) { c.Listen.AdminAddr = "127.0.0.1:65536" },
			want:   []string{`listen.admin_addr: port "65536" must be a number from 0 to 65535`},
		},
		{
			name:   "bad host",
			mutate: func(c *Config) { c.Listen.Addr = "exa mple:80" },
			want:   []string{`listen.addr: host "exa mple" is neither an IP address nor a host name`},
		},
		{
			name:   "admin on the public listener",
			mutate: func(c *Config) { c.Listen.AdminAddr = c.Listen.Addr },
			want:   []string{`listen.admin_addr: must differ from listen.addr ("127.0.0.1:8080"); give the operations listener its own port, or set it to "" to turn it off`},
		},
		{
			name:   "TLS cert without key",
			mutate: func(c *Config) { c.Listen.TLSCertFile = "/tls.crt" },
			want:   []string{`listen.tls_key_file: required when listen.tls_cert_file is set; set both for TLS, or neither when a proxy terminates TLS`},
		},
		{
			name:   "TLS key without cert",
			mutate: func(c *Config) { c.Listen.TLSKeyFile = "/tls.key" },
			want:   []string{`listen.tls_cert_file: required when listen.tls_key_file is set; set both for TLS, or neither when a proxy terminates TLS`},
		},
		{
			name:   "proxy as an address",
			mutate: func(c *Config) { c.Listen.TrustedProxies = []string{"10.0.0.0/8", "192.0.2.7"} },
			want:   []string{`listen.trusted_proxies[1]: "192.0.2.7" is an address, not a CIDR; write "192.0.2.7/32" for that one address`},
		},
		{
			name:   "proxy as an IPv6 address",
			mutate: func(c *Config) { c.Listen.TrustedProxies = []string{"2001:db8::1"} },
			want:   []string{`listen.trusted_proxies[0]: "2001:db8::1" is an address, not a CIDR; write "2001:db8::1/128" for that one address`},
		},
		{
			name:   "proxy as a host name",
			mutate: func(c *Config) { c.Listen.TrustedProxies = []string{"proxy.internal"} },
			want:   []string{`listen.trusted_proxies[0]: expected a CIDR such as "10.0.0.0/8" or "fd00::/8", got "proxy.internal"`},
		},
		{
			name:   "proxy with host bits",
			mutate: func(c *Config) { c.Listen.TrustedProxies = []string{"10.1.2.3/8"} },
			want:   []string{`listen.trusted_proxies[0]: "10.1.2.3/8" has address bits set past the prefix length; did you mean "10.0.0.0/8"?`},
		},
		{
			name:   "every address as a proxy",
			mutate: func(c *Config) { c.Listen.TrustedProxies = []string{"0.0.0.0/0", "::/0"} },
			want: []string{
				`listen.trusted_proxies[0]: "0.0.0.0/0" trusts forwarding headers from every address, so any client could forge its address and scheme; list only your proxies' ranges`,
				`listen.trusted_proxies[1]: "::/0" trusts forwarding headers from every address, so any client could forge its address and scheme; list only your proxies' ranges`,
			},
		},
		{
			name:   "seed file with a trailing newline",
			mutate: func(c *Config) { c.SeedFile = "/etc/xaa/seed.yaml\n" },
			want:   []string{`seed_file: has leading or trailing blanks; remove them, or leave seed_file empty to apply no seed`},
		},
		{
			name:   "seed file of blanks",
			mutate: func(c *Config) { c.SeedFile = " " },
			want:   []string{`seed_file: has leading or trailing blanks; remove them, or leave seed_file empty to apply no seed`},
		},
		{
			name:   "seed file with a control character",
			mutate: func(c *Config) { c.SeedFile = "/etc/xaa/seed\x00.yaml" },
			want:   []string{`seed_file: contains a control character; set it to the path of a seed file such as "/etc/xaa/seed.yaml"`},
		},
		{
			name:   "issuer over http",
			mutate: func(c *Config) { c.Issuers.IdP = "http://idp.example.com" },
			want:   []string{`issuers.idp: must use https, got "http://idp.example.com"; http is allowed only for loopback hosts in dev_mode`},
		},
		{
			name:   "issuer over http on loopback without dev mode",
			mutate: func(c *Config) { c.Issuers.IdP = "http://127.0.0.1:8080" },
			want:   []string{`issuers.idp: uses http ("http://127.0.0.1:8080"); use https, or set dev_mode: true to allow http on loopback while developing`},
		},
		{
			name: "dev mode does not allow http to other hosts",
			mutate: func(c *Config) {
				c.DevMode = true
				c.Issuers.IdP = "http://192.168.1.10:8080"
				c.Issuers.AuthServer = "http://127.0.0.1.example.com"
			},
			want: []string{
				`issuers.idp: must use https, got "http://192.168.1.10:8080"; http is allowed only for loopback hosts in dev_mode`,
				`issuers.authserver: must use https, got "http://127.0.0.1.example.com"; http is allowed only for loopback hosts in dev_mode`,
			},
		},
		{
			name: "dev mode does not count mapped or zoned loopback",
			mutate: func(c *Config) {
				c.DevMode = true
				c.Issuers.IdP = "http://[::ffff:127.0.0.1]:8080"
				c.Issuers.AuthServer = "http://[::1%25lo]:8080"
			},
			want: []string{
				`issuers.idp: must use https, got "http://[::ffff:127.0.0.1]:8080"; http is allowed only for loopback hosts in dev_mode`,
				`issuers.authserver: must use https, got "http://[::1%25lo]:8080"; http is allowed only for loopback hosts in dev_mode`,
			},
		},
		{
			name:   "issuer with a query",
			mutate: func(c *Config) { c.Issuers.IdP = "https://idp.example.com/?tenant=a" },
			want:   []string{`issuers.idp: must not have a query (the part after "?"), got "https://idp.example.com/?tenant=a"`},
		},
		{
			name:   "issuer with an empty query",
			mutate: func(c *Config) { c.Issuers.IdP = "https://idp.example.com/?" },
			want:   []string{`issuers.idp: must not have a query (the part after "?"), got "https://idp.example.com/?"`},
		},
		{
			name:   "issuer with a fragment",
			mutate: func(c *Config) { c.Issuers.AuthServer = "https://as.example.com/#x" },
			want:   []string{`issuers.authserver: must not have a fragment (the part after "#"), got "https://as.example.com/#x"`},
		},
		{
			name:   "issuer with an empty fragment",
			mutate: func(c *Config) { c.Issuers.AuthServer = "https://as.example.com/#" },
			want:   []string{`issuers.authserver: must not have a fragment (the part after "#"), got "https://as.example.com/#"`},
		},
		{
			name:   "relative issuer",
			mutate: func(c *Config) { c.Issuers.IdP = "idp.example.com" },
			want:   []string{`issuers.idp: must be an absolute URL such as "https://idp.example.com", got "idp.example.com"`},
		},
		{
			name:   "issuer without a host",
			mutate: func(c *Config) { c.Issuers.IdP = "https:///path" },
			want:   []string{`issuers.idp: must be an absolute URL such as "https://idp.example.com", got "https:///path"`},
		},
		{
			name:   "issuer with only a port",
			mutate: func(c *Config) { c.Issuers.IdP = "https://:443" },
			want:   []string{`issuers.idp: has no host name, got "https://:443"`},
		},
		{
			name:   "issuer with user info",
			mutate: func(c *Config) { c.Issuers.IdP = "https://admin:pw@idp.example.com" },
			want:   []string{`issuers.idp: must not contain a user name or password`},
		},
		{
			name:   "issuer with another scheme",
			mutate: func(c *Config) { c.Issuers.IdP = "ftp://idp.example.com" },
			want:   []string{`issuers.idp: must use https, got "ftp://idp.example.com"`},
		},
		{
			name:   "issuer not a URL",
			mutate: func(c *Config) { c.Issuers.IdP = "https://idp.example.com:port" },
			want:   []string{`issuers.idp: is not a valid URL: expected one such as "https://idp.example.com", got "https://idp.example.com:port"`},
		},
		{
			name:   "same issuer for both roles",
			mutate: func(c *Config) { c.Issuers.AuthServer = c.Issuers.IdP },
			want: []string{`issuers.authserver: must differ from issuers.idp: the IdP and the authorization server are separate trust domains ` +
				`(cross-domain rule), even when one process runs both; give each its own host or path`},
		},
		{
			name:   "same issuer spelled differently",
			mutate: func(c *Config) { c.Issuers.AuthServer = "https://IDP.example.com:443/" },
			want: []string{`issuers.authserver: must differ from issuers.idp: the IdP and the authorization server are separate trust domains ` +
				`(cross-domain rule), even when one process runs both; give each its own host or path`},
		},
		{
			name: "every problem at once",
			mutate: func(c *Config) {
				c.Database.URL = ""
				c.Keys.WrappingKeyFile = ""
				c.Log.Format = "xml"
				c.Issuers.AuthServer = c.Issuers.IdP
			},
			want: []string{
				`database.url: required; set it (or XAA_DATABASE_URL) to "sqlite:/var/lib/xaa/xaa.db" or "postgres://xaa@db.example.com:5432/xaa"`,
				"keys.wrapping_key_file: no wrapping key is configured; generate one with `xaa keys init` and set keys.wrapping_key_file (or XAA_KEYS_WRAPPING_KEY_FILE) to the file it writes",
				`log.format: must be json or text, got "xml"`,
				`issuers.authserver: must differ from issuers.idp: the IdP and the authorization server are separate trust domains ` +
					`(cross-domain rule), even when one process runs both; give each its own host or path`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tt.mutate(c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate succeeded; want an error")
			}
			if diff := cmp.Diff(tt.want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("error lines (-want +got):\n%s", diff)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false")
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the database password: %v", err)
			}
		})
	}
}

// TestValidateNamesTheSource: problems point at the line, or the
// environment variable, that set the bad value.
func TestValidateNamesTheSource(t *testing.T) {
	t.Parallel()
	const file = `database:
  url: "mysql://db/xaa"
keys:
  wrapping_key_file: /k
log:
  level: loud
  format: text
listen:
  addr:
  trusted_proxies:
    - 10.0.0.0/8
    - 10.0.0.1
issuers:
  idp: http://idp.example.com
`
	path := writeFile(t, "config.yaml", file, 0o600)
	cfg, err := Load(path, env(map[string]string{EnvLogLevel: "verbose", EnvAdminAddr: "nope"}))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen.Addr = "" // as a command-line flag might
	want := []string{
		path + `:2:8: database.url: unsupported scheme "mysql"; use "sqlite:" (or "file:") for the embedded store or "postgres://" for PostgreSQL`,
		`XAA_LOG_LEVEL: log.level: must be one of debug, info, warn, error, got "verbose"`,
		path + `:9:3: listen.addr: required; set it (or XAA_LISTEN_ADDR) to the host:port to listen on, such as "127.0.0.1:8080" or ":8080"`,
		`XAA_ADMIN_ADDR: listen.admin_addr: must be host:port, such as "127.0.0.1:8080", "[::1]:8080" or ":8080"; got "nope"`,
		path + `:12:7: listen.trusted_proxies[1]: "10.0.0.1" is an address, not a CIDR; write "10.0.0.1/32" for that one address`,
		path + `:14:8: issuers.idp: must use https, got "http://idp.example.com"; http is allowed only for loopback hosts in dev_mode`,
	}
	err = cfg.Validate()
	if err == nil {
		t.Fatal("Validate succeeded")
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("error lines (-want +got):\n%s", diff)
	}
}

func TestValidateZeroConfig(t *testing.T) {
	t.Parallel()
	err := new(Config).Validate()
	if err == nil {
		t.Fatal("the zero Config validated")
	}
	for _, path := range []string{"database.url", "database.max_open_conns", "keys.wrapping_key_file", "keys.algorithm", "keys.max_token_lifetime", "log.level", "log.format", "listen.addr"} {
		if !strings.Contains(err.Error(), path+": ") {
			t.Errorf("no problem reported for %s in:\n%v", path, err)
		}
	}
}

func TestDefaultIn(t *testing.T) {
	t.Parallel()
	c := DefaultIn("/tmp/xaa-demo")
	if got, want := c.Database.URL.Reveal(), "sqlite:/tmp/xaa-demo/xaa.db"; got != want {
		t.Errorf("database.url = %q, want %q", got, want)
	}
	if c.DevMode {
		t.Error("dev_mode is on by default")
	}
	// Everything but the deliberately absent wrapping key validates.
	c.Keys.WrappingKeyFile = "/tmp/xaa-demo/wrapping.key"
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if got, want := Default().Database.URL.Reveal(), "sqlite:/var/lib/xaa/xaa.db"; got != want {
		t.Errorf("Default database.url = %q, want %q", got, want)
	}
}
