package config

import "strconv"

// maxTokenRate bounds token_rate_limit's rates and burst. A million
// requests a second is beyond what one instance can serve, so a larger
// value is a typo; to turn limiting off, say so with disabled: true.
const maxTokenRate = 1e6

func (r *TokenRateLimit) validate(v *validator) {
	for _, f := range [...]struct {
		key string
		val float64
	}{{"token_rate_limit.per_client", r.PerClient}, {"token_rate_limit.per_address", r.PerAddress}} {
		// Written so that NaN (YAML's .nan) fails too.
		if !(f.val >= 0 && f.val <= maxTokenRate) {
			v.add(f.key, "must be 0 (the default, 100) or a rate in requests per second up to %d, got %s; "+
				"to turn limiting off set token_rate_limit.disabled: true", int(maxTokenRate), strconv.FormatFloat(f.val, 'g', -1, 64))
		}
	}
	if r.Burst < 0 || r.Burst > maxTokenRate {
		v.add("token_rate_limit.burst", "must be 0 (the default, two seconds' worth of per_client) or from 1 to %d, got %d", int(maxTokenRate), r.Burst)
	}
}
