package oauth

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// TokenLimit bounds token-endpoint requests per authenticated client and per
// source address (IPv6 by /64, see RemoteAddress), per instance: with N
// instances the budget is N times looser. A zero field takes the default;
// rate.Inf turns that limit off.
type TokenLimit struct {
	PerClient  rate.Limit // sustained token requests per second
	PerAddress rate.Limit
	Burst      int // bucket size of both; default 2 s worth of PerClient
}

// Default limits: an AI app's backend redeeming for many users stays far
// below them; one stolen client secret cannot mint without bound.
const (
	DefaultTokenPerClient  rate.Limit = 100
	DefaultTokenPerAddress rate.Limit = 100
	maxTokenLimiterKeys               = 10000
)

// TokenLimiter keeps a token bucket per key, in memory. Buckets that have
// refilled are evicted when the map is full, so rotating addresses costs
// memory only up to maxTokenLimiterKeys.
type TokenLimiter struct {
	cfg  TokenLimit
	mu   sync.Mutex
	keys map[string]*rate.Limiter
}

// NewTokenLimiter returns a limiter; a nil cfg means the defaults.
func NewTokenLimiter(cfg *TokenLimit) *TokenLimiter {
	var c TokenLimit
	if cfg != nil {
		c = *cfg
	}
	if c.PerClient == 0 {
		c.PerClient = DefaultTokenPerClient
	}
	if c.PerAddress == 0 {
		c.PerAddress = DefaultTokenPerAddress
	}
	if c.Burst <= 0 {
		b := float64(c.PerClient) * 2
		if c.PerClient == rate.Inf || b > math.MaxInt32 {
			b = math.MaxInt32
		}
		c.Burst = max(1, int(b))
	}
	return &TokenLimiter{cfg: c, keys: map[string]*rate.Limiter{}}
}

// Allow takes one token from the client's and the address's buckets, or
// answers 429 with the wait until the client may retry.
func (l *TokenLimiter) Allow(client, addr string) error {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var wait time.Duration
	for _, k := range [...]struct {
		key string
		r   rate.Limit
	}{{"c " + client, l.cfg.PerClient}, {"a " + addr, l.cfg.PerAddress}} {
		if k.r == rate.Inf {
			continue
		}
		res := l.limiter(k.key, k.r, now).ReserveN(now, 1)
		if d := res.DelayFrom(now); !res.OK() || d > 0 {
			res.CancelAt(now)
			wait = max(wait, d, time.Second)
		}
	}
	if wait > 0 {
		return &Error{
			Code:        CodeTemporarilyUnavailable,
			Description: "too many token requests; retry later",
			Status:      http.StatusTooManyRequests,
			Header:      http.Header{"Retry-After": {strconv.FormatInt(int64(math.Ceil(wait.Seconds())), 10)}},
		}
	}
	return nil
}

func (l *TokenLimiter) limiter(key string, r rate.Limit, now time.Time) *rate.Limiter {
	if lim, ok := l.keys[key]; ok {
		return lim
	}
	if len(l.keys) >= maxTokenLimiterKeys {
		for k, lim := range l.keys {
			if lim.TokensAt(now) >= float64(l.cfg.Burst) {
				delete(l.keys, k)
			}
		}
	}
	lim := rate.NewLimiter(r, l.cfg.Burst)
	if len(l.keys) < maxTokenLimiterKeys {
		l.keys[key] = lim
	}
	return lim
}
