package xaaclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/openxaa/xaa/idjag"
)

// protectedResource is the part of RFC 9728 metadata the client uses.
type protectedResource struct {
	Resource             string   `json:"resource"`
	AuthorizationServers []string `json:"authorization_servers"`
	ScopesSupported      []string `json:"scopes_supported"`
}

// serverMetadata is the part of RFC 8414 / OpenID Provider metadata the
// client uses, for the IdP and for resource authorization servers.
type serverMetadata struct {
	Issuer                        string   `json:"issuer"`
	AuthorizationEndpoint         string   `json:"authorization_endpoint"`
	TokenEndpoint                 string   `json:"token_endpoint"`
	JWKSURI                       string   `json:"jwks_uri"`
	GrantTypes                    []string `json:"grant_types_supported"`
	GrantProfiles                 []string `json:"authorization_grant_profiles_supported"`
	CodeChallengeMethods          []string `json:"code_challenge_methods_supported"`
	ResponseIssParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
}

// target is what discovery learned about one MCP endpoint: where to get
// its tokens and with which credentials.
type target struct {
	endpoint   string   // the MCP URL as requested
	resource   string   // the PRM resource (equal to endpoint after canonicalisation)
	scopes     []string // the PRM's scopes_supported
	asIssuer   string
	asToken    string // the AS token endpoint
	asCreds    Credentials
	prmURL     string
	fromHeader bool // the PRM URL came from a WWW-Authenticate challenge
	// challengeScopes is the scope of the challenge that led to
	// discovery, if any.
	challengeScopes []string
}

// discoverNow finds the protected resource metadata of endpoint (from the
// challenge's resource_metadata if there is one, else the RFC 9728
// well-known locations), checks that it describes exactly endpoint, picks
// the first listed authorization server this client holds credentials for,
// and discovers that server's metadata. Nothing is sent to any
// authorization server before the resource check passed (checklist E88).
func (c *Client) discoverNow(ctx context.Context, endpoint, metadataURL string) (*target, error) {
	eu, err := c.checkURL("MCP endpoint", endpoint)
	if err != nil {
		return nil, err
	}
	want, err := canonicalURL(endpoint)
	if err != nil {
		return nil, fmt.Errorf("%w: MCP endpoint: %v", ErrDiscovery, err)
	}
	candidates := prmURLs(eu)
	if metadataURL != "" {
		candidates = []string{metadataURL}
	}
	var prm protectedResource
	var prmURL string
	for _, u := range candidates {
		err := c.getJSON(ctx, "protected resource metadata", u, &prm)
		if errors.Is(err, errNotFound) && metadataURL == "" {
			continue
		}
		if err != nil {
			return nil, err
		}
		prmURL = u
		break
	}
	if prmURL == "" {
		return nil, fmt.Errorf("%w: no protected resource metadata for %s at %s", ErrDiscovery, endpoint, strings.Join(candidates, " or "))
	}
	// RFC 9728 §3.3: metadata for another resource must not be used, and
	// nothing of it (its authorization servers least of all) is trusted.
	got, err := canonicalURL(prm.Resource)
	if err != nil || got != want {
		c.log.WarnContext(ctx, "protected resource metadata names another resource; not contacting any authorization server",
			"endpoint", endpoint, "metadata", prmURL, "resource", clip(prm.Resource))
		return nil, fmt.Errorf("%w: %s describes %q, not the requested %q", ErrResourceMismatch, prmURL, clip(prm.Resource), endpoint)
	}
	if len(prm.AuthorizationServers) == 0 {
		return nil, fmt.Errorf("%w: %s lists no authorization_servers", ErrDiscovery, prmURL)
	}
	t := &target{endpoint: endpoint, resource: prm.Resource, scopes: normScopes(prm.ScopesSupported), prmURL: prmURL, fromHeader: metadataURL != ""}
	for _, iss := range prm.AuthorizationServers {
		if creds, ok := c.opts.AuthServers[iss]; ok {
			t.asIssuer, t.asCreds = iss, creds
			break
		}
	}
	if t.asIssuer == "" {
		return nil, fmt.Errorf("%w: %s is governed by %s; configure the app's credentials at one of them",
			ErrNoCredentials, endpoint, strings.Join(clipAll(prm.AuthorizationServers), ", "))
	}
	meta, err := c.serverMetadata(ctx, "authorization server", t.asIssuer)
	if err != nil {
		return nil, err
	}
	// The id-jag grant profile (ID-JAG §7) or, from servers that predate
	// the profile name, the jwt-bearer grant. Anything else means this is
	// not an XAA server, and the client does not try its authorization
	// endpoint instead (checklist E90, decisions.md: no fallback).
	if !slices.Contains(meta.GrantProfiles, idjag.GrantProfile) && !slices.Contains(meta.GrantTypes, idjag.GrantTypeJWTBearer) {
		return nil, fmt.Errorf("%w: %s advertises neither the id-jag grant profile nor the jwt-bearer grant", ErrNotXAA, t.asIssuer)
	}
	if meta.TokenEndpoint == "" {
		return nil, fmt.Errorf("%w: %s has no token_endpoint", ErrDiscovery, t.asIssuer)
	}
	if _, err := c.checkURL("authorization server token endpoint", meta.TokenEndpoint); err != nil {
		return nil, err
	}
	t.asToken = meta.TokenEndpoint
	c.log.InfoContext(ctx, "discovered protected resource", "resource", t.resource, "authorization_server", t.asIssuer, "metadata", prmURL)
	return t, nil
}

// serverMetadata fetches the metadata of issuer from the locations of the
// spec digest §2.3, in order, and requires its issuer member to equal
// issuer exactly (RFC 8414 §3.3, OIDC Discovery §4.3). A document for
// another issuer is an error, not a reason to try the next location: it
// means the server is misconfigured or someone is mixing servers up.
func (c *Client) serverMetadata(ctx context.Context, what, issuer string) (*serverMetadata, error) {
	iu, err := c.checkURL(what+" issuer", issuer)
	if err != nil {
		return nil, err
	}
	if iu.RawQuery != "" {
		return nil, fmt.Errorf("%w: %s issuer %q has a query", ErrDiscovery, what, issuer)
	}
	urls := wellKnownURLs(iu)
	for _, u := range urls {
		var m serverMetadata
		err := c.getJSON(ctx, what+" metadata", u, &m)
		if errors.Is(err, errNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m.Issuer != issuer {
			return nil, fmt.Errorf("%w: %s names issuer %q, expected %q", ErrIssuerMismatch, u, clip(m.Issuer), issuer)
		}
		return &m, nil
	}
	return nil, fmt.Errorf("%w: no %s metadata for %s at %s", ErrDiscovery, what, issuer, strings.Join(urls, ", "))
}

// idp returns the IdP's metadata, fetched once and checked for what the
// login and the exchange need.
func (c *Client) idp(ctx context.Context) (*serverMetadata, error) {
	c.mu.Lock()
	m := c.idpMeta
	c.mu.Unlock()
	if m != nil {
		return m, nil
	}
	if c.opts.IdPTokenEndpoint != "" {
		// Only the exchange talks to the IdP (Options.IDToken): its token
		// endpoint is all the client needs.
		return &serverMetadata{Issuer: c.opts.Issuer, TokenEndpoint: c.opts.IdPTokenEndpoint}, nil
	}
	v, err := c.flights.do(ctx, "idp-metadata", func(ctx context.Context) (any, error) {
		m, err := c.serverMetadata(ctx, "IdP", c.opts.Issuer)
		if err != nil {
			return nil, err
		}
		for _, e := range []struct{ name, url string }{
			{"authorization_endpoint", m.AuthorizationEndpoint},
			{"token_endpoint", m.TokenEndpoint},
			{"jwks_uri", m.JWKSURI},
		} {
			if e.url == "" {
				return nil, fmt.Errorf("%w: the IdP metadata has no %s", ErrDiscovery, e.name)
			}
			if _, err := c.checkURL("IdP "+e.name, e.url); err != nil {
				return nil, err
			}
		}
		// Spec digest §2.3: without S256 advertised the client must not
		// run the authorization code flow.
		if !slices.Contains(m.CodeChallengeMethods, "S256") {
			return nil, fmt.Errorf("%w: the IdP does not advertise PKCE S256 (code_challenge_methods_supported)", ErrDiscovery)
		}
		c.mu.Lock()
		c.idpMeta = m
		c.mu.Unlock()
		return m, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*serverMetadata), nil
}

// probe sends one unauthenticated GET to an MCP endpoint to read its
// challenge (resource_metadata and scope), for callers that ask for a
// token before any MCP traffic. A server that does not answer 401 with a
// Bearer challenge yields none, and discovery uses the well-known URLs.
func (c *Client) probe(ctx context.Context, endpoint string) (Challenge, bool) {
	if _, err := c.checkURL("MCP endpoint", endpoint); err != nil {
		return Challenge{}, false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return Challenge{}, false
	}
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := c.noRedirect().Do(req)
	if err != nil {
		return Challenge{}, false
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		return Challenge{}, false
	}
	cs, err := ParseChallenges(resp.Header.Values("WWW-Authenticate"))
	if err != nil {
		c.log.WarnContext(ctx, "ignoring a malformed challenge", "endpoint", endpoint, "err", err)
		return Challenge{}, false
	}
	return bearerChallenge(cs)
}

func clipAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", clip(s))
	}
	return out
}

// normScopes returns the sorted set of non-empty scopes.
func normScopes(in []string) []string {
	var out []string
	for _, s := range in {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// unionScopes is the sorted union of a and b.
func unionScopes(a, b []string) []string {
	return normScopes(append(slices.Clone(a), b...))
}

// containsAll reports whether every scope of want is in have.
func containsAll(have, want []string) bool {
	for _, s := range want {
		if !slices.Contains(have, s) {
			return false
		}
	}
	return true
}
