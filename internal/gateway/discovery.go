package gateway

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// asMetadata is what the gateway reads from RFC 8414 metadata. The two
// openxaa_* members are OpenXAA's own (the revocation list and the
// resource policy for gateways).
type asMetadata struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
	RevocationList        string `json:"openxaa_revocation_list_endpoint"`
	ResourcePolicy        string `json:"openxaa_resource_policy_endpoint"`
}

// metadataURL is the RFC 8414 §3.1 location: the well-known segment goes
// between the host and the issuer's path.
func metadataURL(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("issuer %q is not an absolute URL", issuer)
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	return u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + path, nil
}

// discover fetches and checks the issuer's metadata: its issuer must equal
// the configured one exactly (RFC 8414 §3.3), and every endpoint the
// gateway sends credentials or trusts keys from must be https (or http on
// loopback in development).
func discover(ctx context.Context, c *asClient, issuer string, allowLoopbackHTTP bool) (*asMetadata, error) {
	mu, err := metadataURL(issuer)
	if err != nil {
		return nil, err
	}
	var md asMetadata
	if err := c.getJSON(ctx, mu, false, &md); err != nil {
		return nil, fmt.Errorf("fetch authorization server metadata from %s: %w", mu, err)
	}
	if md.Issuer != issuer {
		return nil, fmt.Errorf("the metadata at %s names issuer %q, not %q; refusing it (RFC 8414 §3.3)", mu, clip(md.Issuer, 200), issuer)
	}
	for _, e := range []struct{ name, value string }{
		{"jwks_uri", md.JWKSURI},
		{"introspection_endpoint", md.IntrospectionEndpoint},
		{"openxaa_revocation_list_endpoint", md.RevocationList},
		{"openxaa_resource_policy_endpoint", md.ResourcePolicy},
	} {
		if e.value == "" {
			continue
		}
		if err := checkEndpoint(e.value, allowLoopbackHTTP); err != nil {
			return nil, fmt.Errorf("metadata of %s: %s %q: %w", issuer, e.name, clip(e.value, 200), err)
		}
	}
	return &md, nil
}

// checkEndpoint accepts an absolute https URL, or http to a loopback host
// when allowLoopbackHTTP is set.
func checkEndpoint(s string, allowLoopbackHTTP bool) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("not an absolute URL without user info or fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if allowLoopbackHTTP && isLoopback(u.Hostname()) {
			return nil
		}
		return errNotLoopback
	default:
		return fmt.Errorf("scheme %q is not https", u.Scheme)
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Zone() == "" && a.Unmap().IsLoopback()
}
