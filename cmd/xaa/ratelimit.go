package main

import (
	"fmt"
	"net/http"
	"net/netip"

	"golang.org/x/time/rate"

	"github.com/openxaa/xaa/internal/config"
	"github.com/openxaa/xaa/internal/oauth"
)

// tokenLimit maps token_rate_limit onto the limit both roles' token
// endpoints take. Zero fields pass through, where oauth reads them as its
// defaults; disabled turns both buckets off.
func tokenLimit(r config.TokenRateLimit) *oauth.TokenLimit {
	if r.Disabled {
		return &oauth.TokenLimit{PerClient: rate.Inf, PerAddress: rate.Inf}
	}
	return &oauth.TokenLimit{PerClient: rate.Limit(r.PerClient), PerAddress: rate.Limit(r.PerAddress), Burst: r.Burst}
}

// clientAddress is how both roles find the caller's address for rate
// limits: the TCP peer, or X-Forwarded-For when the peer is one of
// listen.trusted_proxies (already validated as CIDRs).
func clientAddress(l config.Listen) (func(*http.Request) string, error) {
	var trusted []netip.Prefix
	for _, s := range l.TrustedProxies {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("listen.trusted_proxies: %w", err)
		}
		trusted = append(trusted, p)
	}
	return oauth.ForwardedAddress(trusted), nil
}
