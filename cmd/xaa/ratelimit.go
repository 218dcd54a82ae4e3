package main

import (
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
