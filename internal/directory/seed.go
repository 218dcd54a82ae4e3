package directory

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/store"
)

// Seed describes a whole organisation in one YAML file (see
// examples/seed.yaml). Every list item is matched to the store by its
// natural key: username (regardless of case), group name, client_id,
// issuer, resource URI, and app plus resource for connections.
//
// Applying a seed is declarative for what the file names and leaves alone
// what it does not: rows missing from the file are kept (nothing is
// deleted), and a listed user's groups become exactly the file's. The one
// exception is credentials: a user's password or TOTP secret is set when
// the file gives one and kept when it does not, so re-applying an older
// file never strips a second factor that was enrolled since.
type Seed struct {
	Users       []SeedUser       `yaml:"users"`
	Groups      []SeedGroup      `yaml:"groups"`
	Apps        []SeedApp        `yaml:"apps"`
	AuthServers []SeedAuthServer `yaml:"auth_servers"`
	Resources   []SeedResource   `yaml:"resources"`
	Connections []SeedConnection `yaml:"connections"`

	// Name is the file's name, for messages and audit records.
	Name string `yaml:"-"`
	// pos maps dotted paths to where ParseSeed found them.
	pos map[string]position
}

// Secret is a string that formats as "[redacted]", so a Seed can be
// printed or logged without its passwords, TOTP and client secrets.
type Secret string

// String implements fmt.Stringer.
func (Secret) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return `"[redacted]"` }

// SeedUser is a person. Password and PasswordHash are exclusive; omitting
// both keeps an existing user's password (a new user then has none).
type SeedUser struct {
	Username     string   `yaml:"username"`
	Email        string   `yaml:"email"`
	DisplayName  string   `yaml:"display_name"`
	Password     Secret   `yaml:"password"`      // hashed with argon2id on apply
	PasswordHash string   `yaml:"password_hash"` // argon2id PHC or bcrypt, stored as is
	TOTPSecret   Secret   `yaml:"totp_secret"`   // base32, sealed on apply
	Disabled     bool     `yaml:"disabled"`
	Groups       []string `yaml:"groups"`
}

// SeedGroup is a group.
type SeedGroup struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
}

// SeedApp is a requesting app: an OAuth client of the IdP.
type SeedApp struct {
	ClientID   string `yaml:"client_id"`
	Name       string `yaml:"name"`
	AuthMethod string `yaml:"auth_method"` // client_secret_basic, client_secret_post or private_key_jwt
	// ClientSecret is stored only as its SHA-256 digest; ClientSecretSHA256
	// gives that digest (hex) instead, keeping the secret out of the file.
	ClientSecret       Secret   `yaml:"client_secret"`
	ClientSecretSHA256 string   `yaml:"client_secret_sha256"`
	JWKS               string   `yaml:"jwks"` // a JWK Set (JSON) for private_key_jwt
	RedirectURIs       []string `yaml:"redirect_uris"`
	Disabled           bool     `yaml:"disabled"`
}

// SeedAuthServer is a resource authorization server.
type SeedAuthServer struct {
	Issuer string `yaml:"issuer"`
	Name   string `yaml:"name"`
	// ClientIDs maps an app's client_id here to the one it holds there.
	ClientIDs map[string]string `yaml:"client_ids"`
}

// SeedResource is a resource (an MCP server).
type SeedResource struct {
	URI        string      `yaml:"uri"`
	Name       string      `yaml:"name"`
	AuthServer string      `yaml:"auth_server"` // an issuer under auth_servers
	Scopes     []SeedScope `yaml:"scopes"`
}

// SeedScope is one scope of a resource.
type SeedScope struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Sensitive   bool   `yaml:"sensitive"`
}

// SeedConnection is a connection from an app to a resource.
type SeedConnection struct {
	App      string                `yaml:"app"`      // a client_id under apps
	Resource string                `yaml:"resource"` // a uri under resources
	Groups   map[string][]string   `yaml:"groups"`   // group -> scopes
	StepUp   map[string]SeedStepUp `yaml:"step_up"`  // scope -> rule
	// Lifetimes default to 300 s each.
	IDJAGLifetime       *time.Duration `yaml:"id_jag_lifetime"`
	AccessTokenLifetime *time.Duration `yaml:"access_token_lifetime"`
	IncludeEmail        bool           `yaml:"include_email"`
	Status              string         `yaml:"status"` // pending, approved, suspended or revoked
	Approver            string         `yaml:"approver"`
	Justification       string         `yaml:"justification"`
	Expires             time.Time      `yaml:"expires"` // RFC 3339; absent: never
}

// SeedStepUp is a step-up rule.
type SeedStepUp struct {
	ACR    string        `yaml:"acr"`
	MaxAge time.Duration `yaml:"max_age"`
}

// LoadSeed reads and parses a seed file.
func LoadSeed(path string) (*Seed, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSeedSize+1))
	if err != nil {
		return nil, fmt.Errorf("seed: read %s: %w", path, err)
	}
	return ParseSeed(path, data)
}

// ParseSeed decodes a seed strictly and validates it completely: every
// reference resolves within the file, URIs are canonical, scopes exist,
// and every row satisfies the store's invariants. All problems are
// reported at once (up to 20), each a *SeedError with line and path.
func ParseSeed(name string, data []byte) (*Seed, error) {
	s := &Seed{Name: name, pos: map[string]position{}}
	p := &problems{file: name, pos: s.pos}
	decodeSeed(p, data, s)
	if err := p.err(); err != nil {
		return nil, err
	}
	if _, err := s.compile(); err != nil {
		return nil, err
	}
	return s, nil
}

// plan is a validated seed as store rows without ids or times.
type plan struct {
	groups      []store.Group
	apps        []store.Client
	users       []userPlan
	authServers []store.AuthServer
	resources   []store.Resource
	connections []store.Connection
}

type userPlan struct {
	user     store.User // no id, times, password or TOTP
	password string     // plaintext to hash, or ""
	hash     string     // a given hash, or ""
	totp     []byte     // the secret to seal, or nil
	groups   []string   // sorted
}

// placeholder times let compile reuse the domain types' Validate.
func placeholderTime() time.Time { return time.Unix(1, 0).UTC() }

// compile validates s and returns what Apply writes.
func (s *Seed) compile() (*plan, error) {
	pos := s.pos
	if pos == nil {
		pos = map[string]position{}
	}
	c := compiler{p: &problems{file: s.Name, pos: pos}, pl: &plan{}}
	c.groups(s.Groups)
	c.apps(s.Apps)
	c.users(s.Users)
	c.authServers(s.AuthServers)
	c.resources(s.Resources)
	c.connections(s.Connections)
	if err := c.p.err(); err != nil {
		return nil, err
	}
	return c.pl, nil
}

type compiler struct {
	p  *problems
	pl *plan
	// indexes into pl by natural key, for resolving references
	group    map[string]bool
	app      map[string]bool
	issuer   map[string]int
	resource map[string]int
}

// why strips the sentinel's prefix from a store validation error, whose
// message then reads well after a path.
func why(err error) string {
	msg := err.Error()
	for _, prefix := range []string{store.ErrInvalid.Error() + ": ", store.ErrResourceURI.Error() + ": "} {
		msg = strings.ReplaceAll(msg, prefix, "")
	}
	return msg
}

func (c *compiler) groups(gs []SeedGroup) {
	c.group = map[string]bool{}
	first := map[string]int{}
	for i, g := range gs {
		path := fmt.Sprintf("groups[%d]", i)
		if err := store.CheckGroupName(g.Name); err != nil {
			c.p.at(path+".name", ErrSeedInvalid, "%s", why(err))
			continue
		}
		if j, dup := first[g.Name]; dup {
			c.p.at(path+".name", ErrSeedInvalid, "group %q is already declared at groups[%d]", g.Name, j)
			continue
		}
		first[g.Name] = i
		sg := store.Group{Name: g.Name, Description: g.Description, CreatedAt: placeholderTime(), UpdatedAt: placeholderTime()}
		if err := sg.Validate(); err != nil {
			c.p.at(path+".description", ErrSeedInvalid, "%s", why(err))
			continue
		}
		c.group[g.Name] = true
		c.pl.groups = append(c.pl.groups, sg)
	}
}

func (c *compiler) users(us []SeedUser) {
	first := map[string]int{}
	for i, u := range us {
		path := fmt.Sprintf("users[%d]", i)
		if u.Username == "" {
			c.p.at(path, ErrSeedInvalid, "username is required")
			continue
		}
		if err := store.CheckUsername(u.Username); err != nil {
			c.p.at(path+".username", ErrSeedInvalid, "%s", why(err))
			continue
		}
		key := store.UsernameKey(u.Username)
		if j, dup := first[key]; dup {
			c.p.at(path+".username", ErrSeedInvalid, "username %q is already used by users[%d] (%q); usernames are unique regardless of case",
				u.Username, j, us[j].Username)
			continue
		}
		first[key] = i
		ok := true
		base := store.User{ID: "u_placeholder", Username: u.Username, CreatedAt: placeholderTime(), UpdatedAt: placeholderTime()}
		for _, f := range []struct {
			name string
			set  func(*store.User)
		}{
			{"email", func(x *store.User) { x.Email = u.Email }},
			{"display_name", func(x *store.User) { x.DisplayName = u.DisplayName }},
		} {
			x := base
			f.set(&x)
			if err := x.Validate(); err != nil {
				c.p.at(path+"."+f.name, ErrSeedInvalid, "%s", why(err))
				ok = false
			}
		}
		up := userPlan{user: base}
		up.user.Email, up.user.DisplayName, up.user.Disabled = u.Email, u.DisplayName, u.Disabled
		switch {
		case u.Password != "" && u.PasswordHash != "":
			c.p.at(path+".password_hash", ErrSeedInvalid, "set password or password_hash, not both")
			ok = false
		case u.Password != "":
			if n := len(u.Password); n < MinPasswordLen || n > MaxPasswordLen || !utf8.ValidString(string(u.Password)) {
				c.p.at(path+".password", ErrSeedInvalid, "must be valid UTF-8 of %d to %d bytes", MinPasswordLen, MaxPasswordLen)
				ok = false
			}
			up.password = string(u.Password)
		case u.PasswordHash != "":
			if err := CheckPasswordHash(u.PasswordHash); err != nil {
				c.p.at(path+".password_hash", ErrSeedInvalid, "%v", err)
				ok = false
			}
			up.hash = u.PasswordHash
		}
		if u.TOTPSecret != "" {
			secret, err := ParseTOTPSecret(string(u.TOTPSecret))
			if err != nil {
				c.p.at(path+".totp_secret", ErrSeedInvalid, "%v", err) // never echoes the secret
				ok = false
			}
			up.totp = secret
		}
		for j, g := range u.Groups {
			gp := fmt.Sprintf("%s.groups[%d]", path, j)
			switch {
			case !c.group[g]:
				c.p.at(gp, ErrSeedReference, "group %q is not declared under groups", g)
				ok = false
			case slices.Contains(up.groups, g):
				c.p.at(gp, ErrSeedInvalid, "group %q is listed twice", g)
				ok = false
			default:
				up.groups = append(up.groups, g)
			}
		}
		slices.Sort(up.groups)
		if ok {
			c.pl.users = append(c.pl.users, up)
		}
	}
}

// Client authentication methods a requesting app may use.
const (
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"
	AuthPrivateKeyJWT     = "private_key_jwt"
)

// minClientSecretLen asks for a generated secret: 32 characters of base64
// carry 192 bits, and `openssl rand -base64 32` gives 44 (256 bits).
const minClientSecretLen = 32

func (c *compiler) apps(as []SeedApp) {
	c.app = map[string]bool{}
	first := map[string]int{}
	for i, a := range as {
		path := fmt.Sprintf("apps[%d]", i)
		if !token(a.ClientID) {
			c.p.at(path+".client_id", ErrSeedInvalid, "client_id is required: 1-255 printable ASCII characters without spaces")
			continue
		}
		if j, dup := first[a.ClientID]; dup {
			c.p.at(path+".client_id", ErrSeedInvalid, "client_id %q is already used by apps[%d]", a.ClientID, j)
			continue
		}
		first[a.ClientID] = i
		ok := true
		fail := func(field string, kind error, format string, args ...any) {
			c.p.at(path+"."+field, kind, format, args...)
			ok = false
		}
		if err := plainText(a.Name, 256); err != nil {
			fail("name", ErrSeedInvalid, "%v", err)
		}
		cl := store.Client{ID: a.ClientID, Name: a.Name, Realm: store.RealmIdP, AuthMethod: a.AuthMethod, Disabled: a.Disabled}
		secret, digest, jwks := a.ClientSecret != "", a.ClientSecretSHA256 != "", strings.TrimSpace(a.JWKS) != ""
		switch a.AuthMethod {
		case AuthClientSecretBasic, AuthClientSecretPost:
			switch {
			case secret == digest:
				fail("client_secret", ErrSeedInvalid, "%s needs exactly one of client_secret and client_secret_sha256", a.AuthMethod)
			case secret && (len(a.ClientSecret) < minClientSecretLen || len(a.ClientSecret) > 512 || !printable(string(a.ClientSecret))):
				fail("client_secret", ErrSeedInvalid, "must be %d-512 printable ASCII characters; generate one with `openssl rand -base64 32`", minClientSecretLen)
			case secret:
				d := sha256.Sum256([]byte(a.ClientSecret)) // = oauth.HashSecret
				cl.SecretDigest = d[:]
			default:
				d, err := hex.DecodeString(a.ClientSecretSHA256)
				if err != nil || len(d) != sha256.Size {
					fail("client_secret_sha256", ErrSeedInvalid, "must be 64 hex digits (the SHA-256 of the secret)")
				}
				cl.SecretDigest = d
			}
			if jwks {
				fail("jwks", ErrSeedInvalid, "a %s app has no JWK Set; use auth_method private_key_jwt", a.AuthMethod)
			}
		case AuthPrivateKeyJWT:
			if secret || digest {
				fail("client_secret", ErrSeedInvalid, "a private_key_jwt app has no secret")
			}
			if !jwks {
				fail("jwks", ErrSeedInvalid, "a private_key_jwt app needs its JWK Set (JSON with public keys)")
				break
			}
			set, err := jose.ParseJWKS([]byte(strings.TrimSpace(a.JWKS)))
			switch {
			case err != nil:
				fail("jwks", ErrSeedInvalid, "%v", err)
			case len(set.Keys) == 0:
				fail("jwks", ErrSeedInvalid, "holds no usable signature key")
			}
			cl.JWKS = []byte(strings.TrimSpace(a.JWKS))
		case "":
			fail("auth_method", ErrSeedInvalid, "auth_method is required: %s, %s or %s", AuthClientSecretBasic, AuthClientSecretPost, AuthPrivateKeyJWT)
		default:
			fail("auth_method", ErrSeedInvalid, "unknown auth_method %s; want %s, %s or %s", quote(a.AuthMethod), AuthClientSecretBasic, AuthClientSecretPost, AuthPrivateKeyJWT)
		}
		for j, u := range a.RedirectURIs {
			rp := fmt.Sprintf("%s.redirect_uris[%d]", path, j)
			if err := checkRedirectURI(u); err != nil {
				c.p.at(rp, ErrSeedInvalid, "%v", err)
				ok = false
			} else if slices.Contains(a.RedirectURIs[:j], u) {
				c.p.at(rp, ErrSeedInvalid, "listed twice")
				ok = false
			}
		}
		cl.RedirectURIs = slices.Clone(a.RedirectURIs)
		c.app[a.ClientID] = true // referable even if broken: one error, not a cascade
		if ok {
			c.pl.apps = append(c.pl.apps, cl)
		}
	}
}

// checkRedirectURI accepts absolute https URLs, and http on a loopback IP
// literal (RFC 8252 §7.3; "localhost" is refused as §8.3 advises), without
// fragment or userinfo. Redirect URIs are matched exactly later, so they
// are stored as written.
func checkRedirectURI(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil || !u.IsAbs() || u.Opaque != "" || u.Host == "":
		return fmt.Errorf("%s is not an absolute URL", quote(s))
	case len(s) > 2048 || !printable(s):
		return fmt.Errorf("must be at most 2048 printable ASCII characters")
	case u.User != nil:
		return fmt.Errorf("must not contain a user name or password")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return fmt.Errorf("must not have a fragment")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http":
		if a, err := netip.ParseAddr(u.Hostname()); err == nil && a.IsLoopback() && !a.Is4In6() && a.Zone() == "" {
			return nil
		}
		return fmt.Errorf("http is allowed only on a loopback IP literal (http://127.0.0.1:PORT/... or http://[::1]:PORT/...); use https")
	default:
		return fmt.Errorf("scheme must be https, or http on loopback")
	}
}

func (c *compiler) authServers(as []SeedAuthServer) {
	c.issuer = map[string]int{}
	for i, a := range as {
		path := fmt.Sprintf("auth_servers[%d]", i)
		if a.Issuer == "" {
			c.p.at(path, ErrSeedInvalid, "issuer is required")
			continue
		}
		canon, err := CanonicalResource(a.Issuer)
		if err != nil {
			c.p.at(path+".issuer", ErrSeedInvalid, "%s", why(err))
			continue
		}
		if canon != a.Issuer {
			c.p.at(path+".issuer", ErrSeedInvalid, "write it as %q: an issuer is compared exactly, so it must already be canonical", canon)
			continue
		}
		if j, dup := c.issuer[a.Issuer]; dup {
			c.p.at(path+".issuer", ErrSeedInvalid, "issuer is already declared at auth_servers[%d]", j)
			continue
		}
		ok := true
		holder := map[string]string{}
		for _, app := range slices.Sorted(maps.Keys(a.ClientIDs)) {
			there, kp := a.ClientIDs[app], joinKey(path+".client_ids", app)
			switch {
			case !c.app[app]:
				c.p.at(kp, ErrSeedReference, "app %q is not declared under apps", app)
				ok = false
			case !token(there):
				c.p.at(kp, ErrSeedInvalid, "client_id must be 1-255 printable ASCII characters without spaces")
				ok = false
			case holder[there] != "":
				c.p.at(kp, ErrSeedInvalid, "client_id %q is already held by app %q here; each app needs its own", there, holder[there])
				ok = false
			default:
				holder[there] = app
			}
		}
		sa := store.AuthServer{Issuer: a.Issuer, Name: a.Name, ClientIDs: maps.Clone(a.ClientIDs),
			CreatedAt: placeholderTime(), UpdatedAt: placeholderTime()}
		if sa.ClientIDs == nil {
			sa.ClientIDs = map[string]string{}
		}
		if ok {
			if err := sa.Validate(); err != nil {
				c.p.at(path, ErrSeedInvalid, "%s", why(err))
				ok = false
			}
		}
		c.issuer[a.Issuer] = -1
		if ok {
			c.issuer[a.Issuer] = len(c.pl.authServers)
			c.pl.authServers = append(c.pl.authServers, sa)
		}
	}
}

func (c *compiler) resources(rs []SeedResource) {
	c.resource = map[string]int{}
	first := map[string]int{}
	for i, r := range rs {
		path := fmt.Sprintf("resources[%d]", i)
		if r.URI == "" {
			c.p.at(path, ErrSeedInvalid, "uri is required")
			continue
		}
		uri, err := CanonicalResource(r.URI)
		if err != nil {
			c.p.at(path+".uri", ErrSeedInvalid, "%s", why(err))
			continue
		}
		if j, dup := first[uri]; dup {
			c.p.at(path+".uri", ErrSeedInvalid, "same resource as resources[%d] (%s)", j, uri)
			continue
		}
		first[uri] = i
		c.resource[uri] = -1
		ok := true
		issuer, err := CanonicalResource(r.AuthServer)
		if _, declared := c.issuer[issuer]; r.AuthServer == "" {
			c.p.at(path, ErrSeedInvalid, "auth_server is required: the issuer of the authorization server that governs this resource")
			ok = false
		} else if err != nil || !declared {
			c.p.at(path+".auth_server", ErrSeedReference, "authorization server %s is not declared under auth_servers", quote(r.AuthServer))
			ok = false
		}
		sr := store.Resource{URI: uri, Name: r.Name, AuthServerIssuer: issuer, CreatedAt: placeholderTime(), UpdatedAt: placeholderTime()}
		if len(r.Scopes) == 0 {
			c.p.at(path, ErrSeedInvalid, "a resource needs at least one scope")
			ok = false
		}
		for j, sc := range r.Scopes {
			sp := fmt.Sprintf("%s.scopes[%d]", path, j)
			if err := store.CheckScope(sc.Name); err != nil {
				c.p.at(sp+".name", ErrSeedInvalid, "%s", why(err))
				ok = false
				continue
			}
			if sr.HasScope(sc.Name) {
				c.p.at(sp+".name", ErrSeedInvalid, "scope %q is listed twice", sc.Name)
				ok = false
				continue
			}
			sr.Scopes = append(sr.Scopes, store.ResourceScope{Name: sc.Name, Description: sc.Description, Sensitive: sc.Sensitive})
		}
		if ok {
			if err := sr.Validate(); err != nil {
				c.p.at(path, ErrSeedInvalid, "%s", why(err))
				ok = false
			}
		}
		if ok {
			c.resource[uri] = len(c.pl.resources)
			c.pl.resources = append(c.pl.resources, sr)
		}
	}
}

func (c *compiler) connections(cs []SeedConnection) {
	first := map[[2]string]int{}
	for i, sc := range cs {
		path := fmt.Sprintf("connections[%d]", i)
		ok := true
		if !c.app[sc.App] {
			c.p.at(path+".app", ErrSeedReference, "app %s is not declared under apps", quote(sc.App))
			ok = false
		}
		uri, err := CanonicalResource(sc.Resource)
		ri, declared := c.resource[uri]
		if err != nil || !declared {
			c.p.at(path+".resource", ErrSeedReference, "resource %s is not declared under resources", quote(sc.Resource))
			ok = false
		}
		if !ok {
			continue
		}
		if j, dup := first[[2]string{sc.App, uri}]; dup {
			c.p.at(path, ErrSeedInvalid, "connections[%d] already connects app %q to %s", j, sc.App, uri)
			continue
		}
		first[[2]string{sc.App, uri}] = i
		if ri < 0 {
			continue // the resource itself is broken and already reported
		}
		r := c.pl.resources[ri]
		conn := store.Connection{
			ID: "c_placeholder", AppID: sc.App, ResourceURI: uri,
			IDJAGLifetime: store.DefaultIDJAGLifetime, AccessTokenLifetime: store.DefaultAccessTokenLifetime,
			IncludeEmail: sc.IncludeEmail, Status: store.ConnectionStatus(sc.Status),
			Approver: sc.Approver, Justification: sc.Justification,
			CreatedAt: placeholderTime(), UpdatedAt: placeholderTime(), ExpiresAt: sc.Expires.Truncate(time.Millisecond),
		}
		switch conn.Status {
		case store.ConnectionPending, store.ConnectionApproved, store.ConnectionSuspended:
		case store.ConnectionRevoked:
			conn.RevokedAt = placeholderTime()
		case "":
			c.p.at(path, ErrSeedInvalid, "status is required: pending, approved, suspended or revoked")
			ok = false
		default:
			c.p.at(path+".status", ErrSeedInvalid, "unknown status %s; want pending, approved, suspended or revoked", quote(sc.Status))
			ok = false
		}
		if sc.IDJAGLifetime != nil {
			conn.IDJAGLifetime = *sc.IDJAGLifetime
		}
		if sc.AccessTokenLifetime != nil {
			conn.AccessTokenLifetime = *sc.AccessTokenLifetime
		}
		if err := store.CheckLifetimes(conn.IDJAGLifetime, conn.AccessTokenLifetime); err != nil {
			field := ".id_jag_lifetime"
			if sc.IDJAGLifetime == nil || (conn.IDJAGLifetime > 0 && conn.IDJAGLifetime <= store.MaxIDJAGLifetime && conn.IDJAGLifetime%time.Second == 0) {
				field = ".access_token_lifetime"
			}
			c.p.at(path+field, ErrSeedInvalid, "%s (defaults: %s each)", why(err), store.DefaultIDJAGLifetime)
			ok = false
		}
		for _, g := range slices.Sorted(maps.Keys(sc.Groups)) {
			gp := joinKey(path+".groups", g)
			if !c.group[g] {
				c.p.at(gp, ErrSeedReference, "group %q is not declared under groups", g)
				ok = false
				continue
			}
			for j, s := range sc.Groups[g] {
				if !r.HasScope(s) {
					c.p.at(fmt.Sprintf("%s[%d]", gp, j), ErrSeedReference, "scope %q is not defined by resource %s", s, uri)
					ok = false
				}
			}
			conn.GroupScopes = append(conn.GroupScopes, store.GroupScopes{Group: g, Scopes: slices.Clone(sc.Groups[g])})
		}
		granted := conn.Scopes()
		for _, s := range slices.Sorted(maps.Keys(sc.StepUp)) {
			rule := sc.StepUp[s]
			if !slices.Contains(granted, s) {
				c.p.at(joinKey(path+".step_up", s), ErrSeedReference, "scope %q is not granted to any group of this connection", s)
				ok = false
				continue
			}
			conn.StepUp = append(conn.StepUp, store.StepUpRule{Scope: s, ACR: rule.ACR, MaxAge: rule.MaxAge})
		}
		if conn.Status == store.ConnectionApproved {
			if ai := c.issuer[r.AuthServerIssuer]; ai >= 0 {
				if _, has := c.pl.authServers[ai].ClientIDs[sc.App]; !has {
					c.p.at(path+".app", ErrSeedReference,
						"app %q has no client_id at %s, which governs %s; add it under that auth server's client_ids",
						sc.App, r.AuthServerIssuer, uri)
					ok = false
				}
			}
		}
		if ok {
			if err := conn.ValidateFor(r); err != nil {
				c.p.at(path, ErrSeedInvalid, "%s", why(err))
				ok = false
			}
		}
		if ok {
			c.pl.connections = append(c.pl.connections, conn)
		}
	}
}

// token reports whether s is 1-255 printable ASCII characters without
// spaces, the shape of client ids.
func token(s string) bool { return s != "" && len(s) <= 255 && printable(s) }

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// plainText accepts one line of valid UTF-8 up to max bytes.
func plainText(s string, max int) error {
	if len(s) > max || !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("must be one line of at most %d bytes of text", max)
	}
	return nil
}

// errSeedChanged means a row changed between the seed's reads and its
// writes (another writer got in between); applying again is safe.
var errSeedChanged = fmt.Errorf("seed: %w: the directory changed while the seed was being applied; run it again", store.ErrConflict)
