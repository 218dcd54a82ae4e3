package config

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// Gateway configures the MCP gateway role (`xaa serve --gateway`, `xaa
// gateway`): a reverse proxy that verifies access tokens and enforces
// per-tool scopes and step-up in front of MCP servers that know nothing
// about OAuth. The client's token never reaches an upstream.
type Gateway struct {
	// Routes are the protected MCP endpoints, each mounted on listen.addr.
	Routes []GatewayRoute `yaml:"routes"`
}

// GatewayRoute is one protected MCP endpoint and the upstream behind it.
type GatewayRoute struct {
	// Path is where the MCP endpoint is mounted on listen.addr, such as
	// "/mcp/files"; requests to exactly this path are proxied.
	Path string `yaml:"path"`
	// Resource is the canonical URI clients use for this MCP server: the
	// access token's aud and the protected-resource metadata's resource.
	// It comes from here, never from the request.
	Resource string `yaml:"resource"`
	// AuthServer is the authorization server that issues tokens for
	// Resource, and the gateway's client registration there.
	AuthServer GatewayAuthServer `yaml:"authserver"`
	// Upstream is the MCP server behind the route.
	Upstream GatewayUpstream `yaml:"upstream"`
	// Tools overrides the tool policy (tool name -> what a call needs).
	// Omitted, the policy is fetched from the authorization server's
	// resource-policy endpoint at startup and at every revocation poll, so
	// the authorization server's resource config is its one source.
	Tools map[string]ToolRule `yaml:"tools"`
	// RevocationPollInterval is how often the revocation list is polled;
	// 0 means 10s, from 1s to 1h.
	RevocationPollInterval Duration `yaml:"revocation_poll_interval"`
	// RevocationMaxStaleness is how long tool calls keep being allowed
	// without a successful poll; past it every tool call fails closed with
	// 503. 0 means 60s; it must exceed the poll interval.
	RevocationMaxStaleness Duration `yaml:"revocation_max_staleness"`
	// AllowedOrigins lists the browser origins (scheme://host[:port]) that
	// may call the route besides the resource's own. A request carrying any
	// other Origin header is refused with 403 (DNS-rebinding defence);
	// requests without Origin (non-browser clients) are unaffected.
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// GatewayAuthServer names a route's authorization server and the
// gateway's own client there (for introspection, the revocation list and
// the resource policy).
type GatewayAuthServer struct {
	// Issuer is the authorization server's issuer; its RFC 8414 metadata
	// is fetched from the path-inserted well-known URL and its issuer must
	// equal this string exactly.
	Issuer string `yaml:"issuer"`
	// ClientID is the gateway's client_id at that authorization server.
	ClientID string `yaml:"client_id"`
	// ClientSecret is the gateway's client secret. Prefer ClientSecretFile:
	// config files get copied around.
	ClientSecret Secret `yaml:"client_secret"`
	// ClientSecretFile names a file (mode 0600 or stricter) holding the
	// client secret; one trailing newline is ignored. The environment
	// variables XAA_GATEWAY_<route index>_CLIENT_SECRET and
	// XAA_GATEWAY_<route index>_CLIENT_SECRET_FILE, read when the gateway
	// starts, replace both keys.
	ClientSecretFile string `yaml:"client_secret_file"`
	// Verify is how access tokens are checked: jwt (the default; local
	// signature check with the authorization server's JWKS, revocation
	// from the polled list) or introspection (RFC 7662 per request).
	Verify string `yaml:"verify"`
}

// GatewayUpstream is the MCP server behind a route: a streamable HTTP
// endpoint (URL) or a stdio server launched per MCP session (Command).
type GatewayUpstream struct {
	// URL is the upstream's streamable HTTP endpoint. A password or a
	// secret-looking query parameter in it prints redacted.
	URL SecretURL `yaml:"url"`
	// Command launches a stdio MCP server, one process per MCP session:
	// the executable (an absolute path is best) and its arguments.
	Command []string `yaml:"command"`
	// Env is the complete environment of a Command process; the gateway's
	// own environment (which holds its secrets) is never inherited, except
	// PATH when Env does not set it. Values print redacted.
	Env map[string]Secret `yaml:"env"`
	// Credential is the upstream's own credential, sent on every proxied
	// request in place of the client's token (which is never forwarded).
	Credential *GatewayCredential `yaml:"credential"`
	// MaxChildren caps the concurrent Command processes (MCP sessions);
	// past it a new session gets 503. 0 means 64, at most 4096.
	MaxChildren int `yaml:"max_children"`
	// IdleTimeout ends a Command session (and its process) after this long
	// without a request; 0 means 30m.
	IdleTimeout Duration `yaml:"idle_timeout"`
}

// GatewayCredential is a header the gateway adds to every upstream
// request, such as an API key the upstream expects.
type GatewayCredential struct {
	// Header is the header name, such as Authorization or X-Api-Key.
	Header string `yaml:"header"`
	// Value is the credential. Prefer ValueFile.
	Value Secret `yaml:"value"`
	// ValueFile names a file (mode 0600 or stricter) holding the value;
	// one trailing newline is ignored.
	ValueFile string `yaml:"value_file"`
	// Prefix is put before the value, such as "Bearer ".
	Prefix string `yaml:"prefix"`
}

// Gateway defaults.
const (
	DefaultGatewayPollInterval = 10 * time.Second
	DefaultGatewayMaxStaleness = 60 * time.Second
	DefaultGatewayMaxChildren  = 64
	DefaultGatewayIdleTimeout  = 30 * time.Minute
	maxGatewayMaxChildren      = 4096
)

// Token verification methods of a gateway route.
const (
	GatewayVerifyJWT           = "jwt"
	GatewayVerifyIntrospection = "introspection"
)

// PollInterval is RevocationPollInterval with its default applied.
func (r *GatewayRoute) PollInterval() time.Duration {
	if r.RevocationPollInterval == 0 {
		return DefaultGatewayPollInterval
	}
	return time.Duration(r.RevocationPollInterval)
}

// MaxStaleness is RevocationMaxStaleness with its default applied.
func (r *GatewayRoute) MaxStaleness() time.Duration {
	if r.RevocationMaxStaleness == 0 {
		return DefaultGatewayMaxStaleness
	}
	return time.Duration(r.RevocationMaxStaleness)
}

// VerifyMethod is AuthServer.Verify with its default applied.
func (r *GatewayRoute) VerifyMethod() string {
	if r.AuthServer.Verify == "" {
		return GatewayVerifyJWT
	}
	return r.AuthServer.Verify
}

// gatewayEnvName is a portable environment variable name.
var gatewayEnvName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// gatewayReservedHeaders are headers a credential must not replace: the
// proxy owns them, or they are hop-by-hop and would be dropped.
var gatewayReservedHeaders = []string{
	"Connection", "Content-Length", "Content-Type", "Host", "Keep-Alive", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade", "Proxy-Connection", "Proxy-Authorization", "Proxy-Authenticate",
	"Accept", "Mcp-Session-Id", "Mcp-Protocol-Version", "Last-Event-Id", "Cookie",
}

func (g *Gateway) validate(v *validator, devMode bool) {
	paths := map[string]bool{}
	resources := map[string]bool{}
	for i := range g.Routes {
		r := &g.Routes[i]
		p := fmt.Sprintf("gateway.routes[%d]", i)
		if msg := checkGatewayPath(r.Path); msg != "" {
			v.add(p+".path", "%s", msg)
		} else if paths[r.Path] {
			v.add(p+".path", "%s is mounted twice; give each route its own path", quote(r.Path))
		}
		paths[r.Path] = true

		switch c, err := store.CanonicalResource(r.Resource); {
		case r.Resource == "":
			v.add(p+".resource", "required; set it to the canonical URI clients use for this MCP server, such as %q", "https://gw.example.com/mcp/files")
		case err != nil:
			v.add(p+".resource", "is not a valid resource URI: %v", err)
		case c != r.Resource:
			v.add(p+".resource", "is not canonical; write it as %s", quote(c))
		case resources[c]:
			v.add(p+".resource", "%s is served by two routes; each resource has one route", quote(c))
		default:
			resources[c] = true
		}

		r.AuthServer.validate(v, p+".authserver", devMode)
		r.Upstream.validate(v, p+".upstream")
		validateGatewayTools(v, p+".tools", r.Tools)

		for j, o := range r.AllowedOrigins {
			if u, err := url.Parse(o); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
				u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || o != strings.ToLower(o) {
				v.add(fmt.Sprintf("%s.allowed_origins[%d]", p, j), "must be a bare lowercase origin such as %q, got %s", "https://chat.example.com", quote(o))
			}
		}

		poll := r.PollInterval()
		if poll < time.Second || poll > time.Hour {
			v.add(p+".revocation_poll_interval", "must be 0 (the default, %s) or from 1s to 1h, got %s", DefaultGatewayPollInterval, poll)
		}
		if stale := r.MaxStaleness(); stale <= poll {
			v.add(p+".revocation_max_staleness", "must be longer than the poll interval (%s), got %s; a value at or below it fails every tool call between two polls", poll, stale)
		} else if stale > 24*time.Hour {
			v.add(p+".revocation_max_staleness", "must be at most 24h, got %s", stale)
		}
	}
}

// checkGatewayPath checks a route's mount path.
func checkGatewayPath(s string) string {
	const example = "/mcp/files"
	switch {
	case s == "":
		return fmt.Sprintf("required; set it to the path the MCP endpoint is mounted at, such as %q", example)
	case !strings.HasPrefix(s, "/"):
		return fmt.Sprintf("must start with \"/\", such as %q, got %s", example, quote(s))
	case s == "/":
		return fmt.Sprintf("must not be \"/\" (the host root also serves health and metadata); use a path such as %q", example)
	case strings.HasSuffix(s, "/"):
		return fmt.Sprintf("must not end with \"/\"; write %s", quote(strings.TrimRight(s, "/")))
	case strings.ContainsAny(s, "?#{}*"):
		return fmt.Sprintf("must be a plain path without \"?\", \"#\", \"{\", \"}\" or \"*\", got %s", quote(s))
	case strings.HasPrefix(s, "/.well-known/") || s == "/.well-known":
		return "must not be under /.well-known/, which holds metadata"
	case s == "/healthz" || s == "/readyz" || s == "/metrics":
		return fmt.Sprintf("%s is reserved for operations endpoints", quote(s))
	}
	for seg := range strings.SplitSeq(s[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Sprintf("must not have empty, \".\" or \"..\" segments, got %s", quote(s))
		}
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f || c == '%' || c == '\\' {
			return fmt.Sprintf("must be printable ASCII without spaces, \"%%\" or \"\\\", got %s", quote(s))
		}
	}
	return ""
}

func (a *GatewayAuthServer) validate(v *validator, p string, devMode bool) {
	if a.Issuer == "" {
		v.add(p+".issuer", "required; set it to the issuer of the authorization server that issues tokens for this resource, such as %q", "https://as.example.com")
	} else if msg := checkIssuer(a.Issuer, devMode); msg != "" {
		v.add(p+".issuer", "%s", msg)
	}
	if a.ClientID == "" {
		v.add(p+".client_id", "required; the gateway authenticates as this client at the authorization server to read the revocation list and the tool policy")
	} else if strings.ContainsFunc(a.ClientID, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		v.add(p+".client_id", "contains a control character")
	}
	switch {
	case a.ClientSecret != "" && a.ClientSecretFile != "":
		v.add(p+".client_secret", "both client_secret and client_secret_file are set; keep only client_secret_file")
	case a.ClientSecret == "" && a.ClientSecretFile == "":
		v.add(p+".client_secret_file", "required (or client_secret); set it to a file holding the gateway's client secret at the authorization server")
	}
	if a.Verify != "" {
		checkEnum(v, p+".verify", a.Verify, []string{GatewayVerifyJWT, GatewayVerifyIntrospection})
	}
}

func (u *GatewayUpstream) validate(v *validator, p string) {
	switch {
	case u.URL != "" && len(u.Command) > 0:
		v.add(p+".command", "both url and command are set; an upstream is either a streamable HTTP endpoint (url) or a stdio server (command)")
	case u.URL == "" && len(u.Command) == 0:
		v.add(p+".url", "required (or command); set it to the upstream's streamable HTTP endpoint, such as %q, or set command to launch a stdio server", "http://127.0.0.1:9001/mcp")
	case u.URL != "":
		if msg := checkUpstreamURL(u.URL.Reveal(), u.Credential != nil); msg != "" {
			v.add(p+".url", "%s", msg)
		}
		if len(u.Env) > 0 {
			v.add(p+".env", "applies only to command; remove it for an HTTP upstream")
		}
		if u.MaxChildren != 0 {
			v.add(p+".max_children", "applies only to command; remove it for an HTTP upstream")
		}
		if u.IdleTimeout != 0 {
			v.add(p+".idle_timeout", "applies only to command; remove it for an HTTP upstream")
		}
	default:
		if u.Command[0] == "" {
			v.add(p+".command[0]", "the executable must not be empty")
		}
		for i, a := range u.Command {
			if strings.ContainsRune(a, 0) {
				v.add(fmt.Sprintf("%s.command[%d]", p, i), "contains a NUL byte")
			}
		}
		keys := make([]string, 0, len(u.Env))
		for k := range u.Env {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			switch {
			case !gatewayEnvName.MatchString(k):
				v.add(joinMapKey(p+".env", k), "%s is not an environment variable name (letters, digits and \"_\", not starting with a digit)", quote(k))
			case strings.ContainsRune(u.Env[k].Reveal(), 0):
				v.add(joinMapKey(p+".env", k), "the value contains a NUL byte")
			}
		}
		if u.MaxChildren < 0 || u.MaxChildren > maxGatewayMaxChildren {
			v.add(p+".max_children", "must be 0 (the default, %d) or from 1 to %d, got %d", DefaultGatewayMaxChildren, maxGatewayMaxChildren, u.MaxChildren)
		}
		if it := time.Duration(u.IdleTimeout); it != 0 && it < time.Second {
			v.add(p+".idle_timeout", "must be 0 (the default, %s) or at least 1s, got %s", DefaultGatewayIdleTimeout, it)
		}
	}
	if c := u.Credential; c != nil {
		cp := p + ".credential"
		switch {
		case c.Header == "":
			v.add(cp+".header", "required; the header that carries the credential, such as Authorization or X-Api-Key")
		case !isHeaderName(c.Header):
			v.add(cp+".header", "%s is not a valid header name", quote(c.Header))
		case slices.ContainsFunc(gatewayReservedHeaders, func(h string) bool { return strings.EqualFold(h, c.Header) }):
			v.add(cp+".header", "%s is managed by the proxy and cannot carry a credential", quote(c.Header))
		}
		switch {
		case c.Value != "" && c.ValueFile != "":
			v.add(cp+".value", "both value and value_file are set; keep only value_file")
		case c.Value == "" && c.ValueFile == "":
			v.add(cp+".value_file", "required (or value); set it to a file holding the upstream's credential")
		}
		if strings.ContainsAny(c.Prefix, "\r\n\x00") || strings.ContainsAny(c.Value.Reveal(), "\r\n\x00") {
			v.add(cp+".value", "must not contain line breaks or NUL bytes")
		}
	}
}

// checkUpstreamURL checks an upstream endpoint. Plain http is fine on a
// private network, but a credential goes only over https or to loopback.
func checkUpstreamURL(s string, credential bool) string {
	const example = "http://127.0.0.1:9001/mcp"
	u, err := url.Parse(s)
	switch {
	case err != nil || !u.IsAbs() || u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return fmt.Sprintf("must be an absolute URL such as %q, got %s", example, quote(s))
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("must use http or https, got %s", quote(u.Scheme))
	case u.User != nil:
		return "must not contain a user name or password; use upstream.credential"
	case u.Fragment != "" || strings.Contains(s, "#"):
		return fmt.Sprintf("must not have a fragment (the part after \"#\"), got %s", quote(s))
	case credential && u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
		return fmt.Sprintf("uses http to %s, which would send upstream.credential in clear text; use https, or run the upstream on loopback", quote(u.Hostname()))
	}
	return ""
}

// isHeaderName reports whether s is an RFC 9110 field name (a token).
func isHeaderName(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return http.CanonicalHeaderKey(s) != ""
}

// validateGatewayTools checks a route's tool-policy override.
func validateGatewayTools(v *validator, p string, tools map[string]ToolRule) {
	names := make([]string, 0, len(tools))
	for name := range tools {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		tp := joinMapKey(p, name)
		if store.CheckToolName(name) != nil {
			v.add(tp, "%s is not an MCP tool name (1 to 128 letters, digits, \"_\", \"-\", \".\" or \"/\")", quote(name))
			continue
		}
		rule := tools[name]
		if len(rule.Scopes) == 0 {
			v.add(tp+".scopes", "required; a tool needs at least one scope (a tool any token may call is almost always a mistake)")
		}
		checkScopes(v, tp+".scopes", rule.Scopes)
		for i, acr := range rule.ACRValues {
			if store.CheckACRValue(acr) != nil {
				v.add(fmt.Sprintf("%s.acr_values[%d]", tp, i), "%s is not a valid acr value (printable ASCII, no spaces or quotes)", quote(acr))
			} else if slices.Contains(rule.ACRValues[:i], acr) {
				v.add(fmt.Sprintf("%s.acr_values[%d]", tp, i), "%s is listed twice", quote(acr))
			}
		}
		if ma := time.Duration(rule.MaxAge); ma != 0 && (ma < time.Second || ma%time.Second != 0 || ma > store.MaxToolMaxAge) {
			v.add(tp+".max_age", "must be 0 (no limit) or whole seconds from 1s to %s, got %s", store.MaxToolMaxAge, ma)
		}
	}
}

// redacted deep-copies g with every secret replaced, for Config.Redacted.
// Routes is never nil, because a nil list renders as [] and parses back
// empty.
func (g Gateway) redacted() Gateway {
	out := Gateway{Routes: append([]GatewayRoute{}, g.Routes...)}
	hide := func(s Secret) Secret {
		if s == "" {
			return ""
		}
		return redactedText
	}
	for i := range out.Routes {
		r := &out.Routes[i]
		r.AuthServer.ClientSecret = hide(r.AuthServer.ClientSecret)
		if r.Tools != nil {
			tools := make(map[string]ToolRule, len(r.Tools))
			for k, t := range r.Tools {
				t.Scopes, t.ACRValues = slices.Clone(t.Scopes), slices.Clone(t.ACRValues)
				tools[k] = t
			}
			r.Tools = tools
		}
		r.Upstream.URL = SecretURL(redactURL(r.Upstream.URL.Reveal()))
		r.Upstream.Command = slices.Clone(r.Upstream.Command)
		r.AllowedOrigins = slices.Clone(r.AllowedOrigins)
		if r.Upstream.Env != nil {
			env := make(map[string]Secret, len(r.Upstream.Env))
			for k, s := range r.Upstream.Env {
				env[k] = hide(s)
			}
			r.Upstream.Env = env
		}
		if c := r.Upstream.Credential; c != nil {
			cc := *c
			cc.Value = hide(cc.Value)
			r.Upstream.Credential = &cc
		}
	}
	return out
}
