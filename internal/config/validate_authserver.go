package config

import (
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// Limits of the authserver section. They repeat internal/authserver's so
// that a bad value fails here with its line rather than at startup.
const (
	maxAssertionLifetime      = store.MaxIDJAGLifetime       // 10m
	maxAccessTokenLifetime    = store.MaxAccessTokenLifetime // 1h
	idJAGProfileAlgorithmsDoc = "ES256, EdDSA, RS256 or PS256"
)

// idJAGAlgorithms are the algorithms the ID-JAG profile allows.
var idJAGAlgorithms = []string{"ES256", "EdDSA", "RS256", "PS256"}

// Client authentication methods an authserver client may use.
var asAuthMethods = []string{"client_secret_basic", "client_secret_post", "private_key_jwt"}

func (a *AuthServer) validate(v *validator, own string, devMode bool) {
	seen := map[string]bool{}
	for i, ti := range a.TrustedIssuers {
		p := fmt.Sprintf("authserver.trusted_issuers[%d]", i)
		switch {
		case ti.Issuer == "":
			v.add(p+".issuer", "required; set it to the IdP's issuer, such as %q", "https://idp.example.com")
		case strings.Contains(ti.Issuer, "|"):
			v.add(p+".issuer", "must not contain \"|\", got %s", quote(ti.Issuer))
		default:
			if msg := checkIssuer(ti.Issuer, devMode); msg != "" {
				v.add(p+".issuer", "%s", msg)
			} else if own != "" && normalizeIssuer(ti.Issuer) == normalizeIssuer(own) {
				v.add(p+".issuer", "must differ from issuers.authserver: the authorization server never redeems ID-JAGs of its own trust domain (cross-domain rule)")
			}
			if seen[ti.Issuer] {
				v.add(p+".issuer", "%s is listed twice; keep one entry per issuer", quote(ti.Issuer))
			}
			seen[ti.Issuer] = true
		}
		if ti.JWKSURI == "" {
			v.add(p+".jwks_uri", "required; set it to the URL where the IdP publishes its JWK Set")
		} else if msg := checkIssuer(strings.SplitN(ti.JWKSURI, "?", 2)[0], devMode); msg != "" {
			// checkIssuer's rules are a JWKS URL's, except that a query is
			// allowed, so only the part before it is checked.
			v.add(p+".jwks_uri", "%s", strings.ReplaceAll(msg, "https://idp.example.com", "https://idp.example.com/jwks.json"))
		}
		for j, alg := range ti.Algorithms {
			if !slices.Contains(idJAGAlgorithms, alg) {
				v.add(fmt.Sprintf("%s.algorithms[%d]", p, j), "must be %s (the ID-JAG profile's), got %s", idJAGProfileAlgorithmsDoc, quote(alg))
			}
		}
		if lt := time.Duration(ti.MaxAssertionLifetime); lt != 0 && (lt < time.Second || lt > maxAssertionLifetime) {
			v.add(p+".max_assertion_lifetime", "must be 0 (the default, 5m) or from 1s to %s, got %s", maxAssertionLifetime, lt)
		}
	}

	resources := map[string]*Resource{}
	for i := range a.Resources {
		r := &a.Resources[i]
		p := fmt.Sprintf("authserver.resources[%d]", i)
		switch c, err := store.CanonicalResource(r.URI); {
		case r.URI == "":
			v.add(p+".uri", "required; set it to the resource's canonical URI, such as %q", "https://mcp.example.com/files")
		case err != nil:
			v.add(p+".uri", "is not a valid resource URI: %v", err)
		case c != r.URI:
			v.add(p+".uri", "is not canonical; write it as %s", quote(c))
		case resources[c] != nil:
			v.add(p+".uri", "%s is listed twice", quote(c))
		default:
			resources[c] = r
		}
		if len(r.Scopes) == 0 {
			v.add(p+".scopes", "required; list the scopes the resource understands")
		}
		checkScopes(v, p+".scopes", r.Scopes)
		if lt := time.Duration(r.AccessTokenLifetime); lt != 0 && (lt < time.Second || lt > maxAccessTokenLifetime || lt%time.Second != 0) {
			v.add(p+".access_token_lifetime", "must be 0 (the default, 5m) or whole seconds from 1s to %s, got %s", maxAccessTokenLifetime, lt)
		}
		checkTools(v, p, r.Tools, r.Scopes)
	}

	ids := map[string]bool{}
	for i, c := range a.Clients {
		p := fmt.Sprintf("authserver.clients[%d]", i)
		switch {
		case c.ClientID == "":
			v.add(p+".client_id", "required")
		case ids[c.ClientID]:
			v.add(p+".client_id", "%s is listed twice", quote(c.ClientID))
		}
		ids[c.ClientID] = true
		checkEnum(v, p+".auth_method", c.AuthMethod, asAuthMethods)
		switch c.AuthMethod {
		case "client_secret_basic", "client_secret_post":
			if b, err := hex.DecodeString(c.ClientSecretSHA256); err != nil || len(b) != 32 {
				v.add(p+".client_secret_sha256", "must be 64 hex digits, the SHA-256 of the client secret (printf %%s \"$SECRET\" | sha256sum)")
			}
			if c.JWKSFile != "" {
				v.add(p+".jwks_file", "is for private_key_jwt; remove it or set auth_method: private_key_jwt")
			}
		case "private_key_jwt":
			if c.JWKSFile == "" {
				v.add(p+".jwks_file", "required for private_key_jwt; set it to a file holding the client's public JWK Set")
			}
			if c.ClientSecretSHA256 != "" {
				v.add(p+".client_secret_sha256", "a private_key_jwt client has no secret; remove it")
			}
		}
		if len(c.Resources) == 0 {
			v.add(p+".resources", "required; list the resources (from authserver.resources) the client may obtain tokens for")
		}
		for j, r := range c.Resources {
			if resources[r] == nil {
				v.add(fmt.Sprintf("%s.resources[%d]", p, j), "%s is not one of authserver.resources", quote(r))
			}
		}
		if c.Scopes != nil && len(c.Scopes) == 0 {
			v.add(p+".scopes", "an empty list grants nothing; omit scopes for no narrowing beyond each resource's scopes")
		}
		checkScopes(v, p+".scopes", c.Scopes)
	}
}

func checkScopes(v *validator, path string, scopes []string) {
	for i, s := range scopes {
		if err := store.CheckScope(s); err != nil {
			v.add(fmt.Sprintf("%s[%d]", path, i), "%s is not a valid scope (RFC 6749 §3.3: printable ASCII, no spaces or quotes)", quote(s))
		} else if slices.Contains(scopes[:i], s) {
			v.add(fmt.Sprintf("%s[%d]", path, i), "%s is listed twice", quote(s))
		}
	}
}

// checkTools validates a resource's tool -> scope/step-up map; p is the
// resource's path. Names are exact MCP tool names; each tool needs at
// least one scope, every one of the resource's own.
func checkTools(v *validator, p string, tools map[string]ToolRule, scopes []string) {
	for _, name := range slices.Sorted(maps.Keys(tools)) {
		t := tools[name]
		tp := joinMapKey(p+".tools", name)
		if err := store.CheckToolName(name); err != nil {
			v.add(tp, "is not a valid MCP tool name: use 1-%d ASCII letters, digits and _ . - /", store.MaxToolNameLen)
		}
		if len(t.Scopes) == 0 {
			v.add(tp+".scopes", "required; list the scopes (from %s.scopes) a call of this tool needs", p)
		}
		for i, sc := range t.Scopes {
			sp := fmt.Sprintf("%s.scopes[%d]", tp, i)
			switch {
			case !slices.Contains(scopes, sc):
				v.add(sp, "%s is not one of the resource's scopes (%s.scopes)", quote(sc), p)
			case slices.Contains(t.Scopes[:i], sc):
				v.add(sp, "%s is listed twice", quote(sc))
			}
		}
		for i, acr := range t.ACRValues {
			ap := fmt.Sprintf("%s.acr_values[%d]", tp, i)
			switch {
			case acr == "":
				v.add(ap, "must not be empty; name an authentication context class, such as %q", "urn:openxaa:acr:mfa")
			case store.CheckACRValue(acr) != nil:
				v.add(ap, "%s is not a valid acr value: printable ASCII without spaces, quotes or backslashes, at most 256 bytes", quote(acr))
			case slices.Contains(t.ACRValues[:i], acr):
				v.add(ap, "%s is listed twice", quote(acr))
			}
		}
		if ma := time.Duration(t.MaxAge); ma < 0 || ma > store.MaxToolMaxAge || ma%time.Second != 0 {
			v.add(tp+".max_age", "must be 0 (no limit) or whole seconds up to %s, got %s", store.MaxToolMaxAge, ma)
		}
	}
}
