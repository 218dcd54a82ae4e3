package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Validate reports every problem with c at once (joined with errors.Join),
// so an operator fixes a config in one round. Each problem is an *Error
// wrapping ErrInvalid that names the dotted key and, for a value from the
// file or the environment, where it came from, and says how to fix it.
// Validate checks values, not the world: it opens no files and resolves no
// names.
func (c *Config) Validate() error {
	v := &validator{c: c}
	c.Database.validate(v)
	c.Keys.validate(v)
	c.Log.validate(v)
	c.Listen.validate(v)
	c.Issuers.validate(v, c.DevMode)
	validateSeedFile(v, c.SeedFile)
	c.IdP.validate(v)
	c.AuthServer.validate(v, c.Issuers.AuthServer, c.DevMode)
	c.TokenRateLimit.validate(v)
	c.Gateway.validate(v, c.DevMode)
	c.Audit.validate(v)
	c.Admin.validate(v, c.Issuers.IdP, c.DevMode)
	return v.errs.err("")
}

type validator struct {
	c    *Config
	errs errorList
}

func (v *validator) add(path, format string, args ...any) {
	v.errs.add(v.c.errorAt(path, ErrInvalid, fmt.Sprintf(format, args...)))
}

const (
	exampleSQLiteURL   = "sqlite:/var/lib/xaa/xaa.db"
	examplePostgresURL = "postgres://xaa@db.example.com:5432/xaa"
)

func (d *Database) validate(v *validator) {
	if d.URL == "" {
		v.add("database.url", "required; set it (or %s) to %q or %q", EnvDatabaseURL, exampleSQLiteURL, examplePostgresURL)
	} else if msg := checkDatabaseURL(d.URL.Reveal()); msg != "" {
		v.add("database.url", "%s", msg)
	}
	if d.MaxOpenConns < 1 || d.MaxOpenConns > 1000 {
		v.add("database.max_open_conns", "must be from 1 to 1000, got %d", d.MaxOpenConns)
	}
}

// checkDatabaseURL returns what is wrong with s, or "". The message never
// repeats s, which may hold a password.
func checkDatabaseURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return fmt.Sprintf("is not a URL; write it as %q or %q", exampleSQLiteURL, examplePostgresURL)
	}
	switch u.Scheme { // url.Parse lower-cases the scheme
	case "sqlite", "file":
		if u.Host != "" {
			return fmt.Sprintf("a SQLite URL takes a path, not a host; write it as %q or \"sqlite:///var/lib/xaa/xaa.db\"", exampleSQLiteURL)
		}
		if u.Opaque == "" && u.Path == "" {
			return fmt.Sprintf("names no database file; write it as %q", exampleSQLiteURL)
		}
	case "postgres", "postgresql":
		if u.Opaque != "" {
			return fmt.Sprintf("write a PostgreSQL URL with two slashes, as %q", examplePostgresURL)
		}
	default:
		return fmt.Sprintf(`unsupported scheme %s; use "sqlite:" (or "file:") for the embedded store or "postgres://" for PostgreSQL`, quote(u.Scheme))
	}
	return ""
}

// Signing algorithms this deployment can sign with (decisions.md: ES256 by
// default, EdDSA optional, never RSA on the hot path).
var algorithms = []string{"ES256", "EdDSA"}

// maxTokenLifetime bounds keys.max_token_lifetime. The longest token the
// design issues lives 1h; a day leaves room without keeping retired keys
// published for weeks.
const maxTokenLifetime = 24 * time.Hour

func (k *Keys) validate(v *validator) {
	switch {
	case k.WrappingKey != "" && k.WrappingKeyFile != "":
		v.add("keys.wrapping_key", "both keys.wrapping_key and keys.wrapping_key_file are set; keep only keys.wrapping_key_file")
	case k.WrappingKey == "" && k.WrappingKeyFile == "":
		v.add("keys.wrapping_key_file", "no wrapping key is configured; generate one with `xaa keys init` and set keys.wrapping_key_file (or %s) to the file it writes", EnvKeysWrappingKeyFile)
	}
	checkEnum(v, "keys.algorithm", k.Algorithm, algorithms)

	lifetime := time.Duration(k.MaxTokenLifetime)
	if lifetime <= 0 || lifetime > maxTokenLifetime {
		v.add("keys.max_token_lifetime", "must be more than 0s and at most %s, got %s", maxTokenLifetime, lifetime)
	}
	switch rotate := time.Duration(k.RotateEvery); {
	case rotate < 0:
		v.add("keys.rotate_every", "must not be negative, got %s; use 0 to turn automatic rotation off", rotate)
	case rotate > 0 && lifetime > 0 && rotate < lifetime:
		v.add("keys.rotate_every", "must be 0 (no automatic rotation) or at least keys.max_token_lifetime (%s), got %s; "+
			"rotating faster than tokens expire only piles up published keys", lifetime, rotate)
	}
}

var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"json", "text"}
)

func (l *Log) validate(v *validator) {
	checkEnum(v, "log.level", l.Level, logLevels)
	checkEnum(v, "log.format", l.Format, logFormats)
}

// checkEnum checks that s is one of allowed, exactly. Values are
// case-sensitive so that one spelling appears in every file and log.
func checkEnum(v *validator, path, s string, allowed []string) {
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	msg := fmt.Sprintf("must be %s, got %s", oneOf(allowed), quote(s))
	for _, a := range allowed {
		if strings.EqualFold(s, a) {
			msg += fmt.Sprintf(" (write %q: values are case-sensitive)", a)
			break
		}
	}
	v.add(path, "%s", msg)
}

func oneOf(allowed []string) string {
	if len(allowed) == 2 {
		return allowed[0] + " or " + allowed[1]
	}
	return "one of " + strings.Join(allowed, ", ")
}

func (l *Listen) validate(v *validator) {
	if l.Addr == "" {
		v.add("listen.addr", `required; set it (or %s) to the host:port to listen on, such as "127.0.0.1:8080" or ":8080"`, EnvListenAddr)
	} else if msg := checkHostPort(l.Addr); msg != "" {
		v.add("listen.addr", "%s", msg)
	}
	if l.AdminAddr != "" {
		if msg := checkHostPort(l.AdminAddr); msg != "" {
			v.add("listen.admin_addr", "%s", msg)
		} else if l.AdminAddr == l.Addr && !strings.HasSuffix(l.Addr, ":0") {
			v.add("listen.admin_addr", "must differ from listen.addr (%s); give the operations listener its own port, or set it to \"\" to turn it off", quote(l.Addr))
		}
	}

	switch {
	case l.TLSCertFile != "" && l.TLSKeyFile == "":
		v.add("listen.tls_key_file", "required when listen.tls_cert_file is set; set both for TLS, or neither when a proxy terminates TLS")
	case l.TLSCertFile == "" && l.TLSKeyFile != "":
		v.add("listen.tls_cert_file", "required when listen.tls_key_file is set; set both for TLS, or neither when a proxy terminates TLS")
	}

	for i, s := range l.TrustedProxies {
		if msg := checkProxyCIDR(s); msg != "" {
			v.add(fmt.Sprintf("listen.trusted_proxies[%d]", i), "%s", msg)
		}
	}
}

// checkHostPort checks a listen address. Ports must be numeric: a service
// name such as "http" depends on /etc/services.
func checkHostPort(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if _, perr := strconv.ParseUint(s, 10, 16); perr == nil {
			return fmt.Sprintf(`must be host:port; write ":%s" for every interface or "127.0.0.1:%s" for this machine only`, s, s)
		}
		return fmt.Sprintf(`must be host:port, such as "127.0.0.1:8080", "[::1]:8080" or ":8080"; got %s`, quote(s))
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("port %s must be a number from 0 to 65535", quote(port))
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil && !isHostname(host) {
			return fmt.Sprintf("host %s is neither an IP address nor a host name", quote(host))
		}
	}
	return ""
}

// isHostname reports whether s is a DNS name made of letters, digits and
// hyphens (RFC 1123), with an optional final dot.
func isHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// checkProxyCIDR checks one trusted proxy range. It refuses a /0, which
// would let any client forge the address and scheme it appears to use.
func checkProxyCIDR(s string) string {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if a, aerr := netip.ParseAddr(s); aerr == nil && a.Zone() == "" {
			return fmt.Sprintf("%s is an address, not a CIDR; write %q for that one address", quote(s), netip.PrefixFrom(a, a.BitLen()).String())
		}
		return fmt.Sprintf(`expected a CIDR such as "10.0.0.0/8" or "fd00::/8", got %s`, quote(s))
	}
	if p.Bits() == 0 {
		return fmt.Sprintf("%s trusts forwarding headers from every address, so any client could forge its address and scheme; list only your proxies' ranges", quote(s))
	}
	if m := p.Masked(); m != p {
		return fmt.Sprintf("%s has address bits set past the prefix length; did you mean %q?", quote(s), m.String())
	}
	return ""
}

func (is *Issuers) validate(v *validator, devMode bool) {
	// An empty issuer means the role is not configured; the role that
	// needs it requires it when it starts.
	for _, i := range []struct{ path, value string }{
		{"issuers.idp", is.IdP},
		{"issuers.authserver", is.AuthServer},
	} {
		if i.value == "" {
			continue
		}
		if msg := checkIssuer(i.value, devMode); msg != "" {
			v.add(i.path, "%s", msg)
		}
	}
	if is.IdP != "" && is.AuthServer != "" && normalizeIssuer(is.IdP) == normalizeIssuer(is.AuthServer) {
		v.add("issuers.authserver", "must differ from issuers.idp: the IdP and the authorization server are separate trust domains "+
			"(cross-domain rule), even when one process runs both; give each its own host or path")
	}
}

// checkIssuer applies RFC 8414 §2 (https, no query, no fragment) with the
// one development exception: http on a loopback host in dev mode.
func checkIssuer(s string, devMode bool) string {
	const example = "https://idp.example.com"
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Sprintf("is not a valid URL: expected one such as %q, got %s", example, quote(s))
	case !u.IsAbs() || u.Opaque != "" || u.Host == "":
		return fmt.Sprintf("must be an absolute URL such as %q, got %s", example, quote(s))
	case u.User != nil:
		return "must not contain a user name or password"
	case u.RawQuery != "" || u.ForceQuery:
		return fmt.Sprintf("must not have a query (the part after \"?\"), got %s", quote(s))
	case u.Fragment != "" || strings.Contains(s, "#"):
		return fmt.Sprintf("must not have a fragment (the part after \"#\"), got %s", quote(s))
	case u.Hostname() == "":
		return fmt.Sprintf("has no host name, got %s", quote(s))
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return fmt.Sprintf("must use https, got %s; http is allowed only for loopback hosts in dev_mode", quote(s))
		}
		if !devMode {
			return fmt.Sprintf("uses http (%s); use https, or set dev_mode: true to allow http on loopback while developing", quote(s))
		}
		return ""
	default:
		return fmt.Sprintf("must use https, got %s", quote(s))
	}
}

// isLoopbackHost reports whether host is localhost, an address in
// 127.0.0.0/8 or ::1. Zoned and IPv4-mapped forms do not count.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Zone() == "" && !a.Is4In6() && a.IsLoopback()
}

// normalizeIssuer maps equivalent spellings of an issuer (host case,
// default port, trailing slash) to one string, for the distinctness check
// only: tokens are still compared with the exact configured string.
func normalizeIssuer(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	host := strings.ToLower(u.Hostname())
	if p := u.Port(); p != "" && !(u.Scheme == "https" && p == "443") && !(u.Scheme == "http" && p == "80") {
		host = net.JoinHostPort(host, p)
	}
	return u.Scheme + "://" + host + strings.TrimSuffix(u.EscapedPath(), "/")
}

// validateSeedFile checks the optional seed_file path as a string only
// (Validate opens no files; serve reports a missing or broken seed with its
// own file:line messages). Surrounding blanks and control characters are
// almost always a templating accident that would otherwise surface as a
// baffling "no such file".
func validateSeedFile(v *validator, path string) {
	switch {
	case path == "":
	case strings.TrimSpace(path) != path:
		v.add("seed_file", "has leading or trailing blanks; remove them, or leave seed_file empty to apply no seed")
	case strings.ContainsFunc(path, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		v.add("seed_file", "contains a control character; set it to the path of a seed file such as %q", "/etc/xaa/seed.yaml")
	}
}
