// Package jwkscache fetches and caches the JWKS of trusted remote issuers.
//
// It is the one place OpenXAA makes outbound requests for keys, so it
// carries the SSRF and availability controls of threat model §2.2 item 6:
// https only, a dial-time address policy that DNS rebinding cannot get
// around, no redirects and no proxy, a size cap, cache lifetimes clamped to
// [MinTTL, MaxTTL], unknown-kid refreshes limited to one per RefreshInterval
// per URL with concurrent callers sharing one fetch, failures
// negative-cached, and the last good keys kept through an outage for at
// most MaxStale past their expiry before failing closed.
//
// An outage is a fetch that fails; a well-formed JWKS that holds no usable
// signing key ({"keys":[]}) is not one. It is the issuer withdrawing all its
// keys, and replaces the cached keys at once like any other document, so an
// issuer can revoke everything by emptying its JWKS.
package jwkscache

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gojose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"

	"github.com/openxaa/xaa/internal/jose"
)

// Errors. A verifier maps ErrUnavailable to a dependency failure (503)
// and jose.ErrUnknownKey to a bad token; the others say why a URL or a
// fetch was refused and arrive wrapped in one of those two or in ErrURL.
var (
	ErrURL            = errors.New("jwkscache: JWKS URL not allowed")
	ErrUnavailable    = errors.New("jwkscache: issuer keys unavailable")
	ErrAddressRefused = errors.New("jwkscache: address not allowed")
	ErrStatus         = errors.New("jwkscache: unexpected HTTP status")
	ErrContentType    = errors.New("jwkscache: unexpected content type")
	ErrTooLarge       = errors.New("jwkscache: JWKS exceeds the size limit")
	ErrInvalidJWKS    = errors.New("jwkscache: invalid JWKS")
)

// Defaults for zero Options fields.
const (
	DefaultConnectTimeout  = 2 * time.Second
	DefaultTimeout         = 5 * time.Second
	DefaultMaxBytes        = 64 << 10
	DefaultMinTTL          = 5 * time.Minute
	DefaultMaxTTL          = 24 * time.Hour
	DefaultTTL             = 15 * time.Minute
	DefaultRefreshInterval = 30 * time.Second
	DefaultMaxStale        = 24 * time.Hour
)

// Options configure a Cache. The zero value (or nil) is the production
// setting: https to public addresses only.
type Options struct {
	// AllowInsecureLoopback is development mode: it permits http:// URLs
	// whose host is a loopback address or "localhost", and connections to
	// loopback addresses. Plain-http fetches can reach nothing else.
	AllowInsecureLoopback bool
	// AllowedCIDRs are ranges a fetch may connect to although the default
	// policy refuses them (private, CGNAT, link-local, loopback, ...), for
	// an issuer inside the operator's network. Unspecified, "this network",
	// multicast and broadcast addresses stay refused.
	AllowedCIDRs []netip.Prefix
	// RootCAs verifies issuer certificates; nil means the system roots.
	RootCAs *x509.CertPool

	// ConnectTimeout bounds each TCP connect (default 2 s).
	ConnectTimeout time.Duration
	// Timeout bounds a whole fetch: connect, TLS, headers and body
	// (default 5 s).
	Timeout time.Duration
	// MaxBytes caps the JWKS document (default 64 KiB, which is also the
	// most jose.ParseJWKS accepts, so larger values are refused).
	MaxBytes int64

	// MinTTL and MaxTTL clamp the lifetime a response's Cache-Control
	// max-age gives (defaults 5 min and 24 h). The floor also applies to
	// no-store, no-cache and malformed headers: it bounds how often one
	// issuer can make us fetch.
	MinTTL, MaxTTL time.Duration
	// DefaultTTL applies when a response carries no max-age (default
	// 15 min). It must lie within [MinTTL, MaxTTL].
	DefaultTTL time.Duration
	// RefreshInterval is the least time between the end of one fetch of a
	// URL and the start of the next, whatever triggers it: an unknown kid,
	// expiry, or retrying a failure (default 30 s).
	RefreshInterval time.Duration
	// MaxStale is how long past their expiry the last good keys keep
	// verifying while fetches fail (default 24 h). After that the KeySet
	// fails closed with ErrUnavailable.
	MaxStale time.Duration

	// Logger receives fetch failures (warn) and successes (debug). Nil
	// discards.
	Logger *slog.Logger
	// Now replaces time.Now for cache decisions (tests). Network timeouts
	// always use the real clock.
	Now func() time.Time
	// OnFetch, if set, is called after every fetch attempt with the URL and
	// its result (nil on success), for metrics and tests. It runs on the
	// fetching goroutine and must not block.
	OnFetch func(url string, err error)
}

// Cache holds the keys of many issuers, one entry per JWKS URL. Entries
// live as long as the Cache: URLs come from configuration, not from
// requests. A Cache is safe for concurrent use.
type Cache struct {
	allowInsecureLoopback bool
	policy                *addrPolicy
	https                 *http.Client
	plain                 *http.Client // nil unless AllowInsecureLoopback

	timeout         time.Duration
	maxBytes        int64
	minTTL, maxTTL  time.Duration
	defaultTTL      time.Duration
	refreshInterval time.Duration
	maxStale        time.Duration
	log             *slog.Logger
	now             func() time.Time
	onFetch         func(string, error)

	mu      sync.Mutex
	entries map[string]*entry
}

// New validates opts and returns an empty cache.
func New(opts *Options) (*Cache, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"ConnectTimeout", &o.ConnectTimeout, DefaultConnectTimeout},
		{"Timeout", &o.Timeout, DefaultTimeout},
		{"MinTTL", &o.MinTTL, DefaultMinTTL},
		{"MaxTTL", &o.MaxTTL, DefaultMaxTTL},
		{"DefaultTTL", &o.DefaultTTL, DefaultTTL},
		{"RefreshInterval", &o.RefreshInterval, DefaultRefreshInterval},
		{"MaxStale", &o.MaxStale, DefaultMaxStale},
	} {
		if *d.v < 0 {
			return nil, fmt.Errorf("jwkscache: %s must not be negative", d.name)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	switch {
	case o.MaxBytes < 0:
		return nil, errors.New("jwkscache: MaxBytes must not be negative")
	case o.MaxBytes == 0:
		o.MaxBytes = DefaultMaxBytes
	case o.MaxBytes > DefaultMaxBytes:
		return nil, fmt.Errorf("jwkscache: MaxBytes above %d: jose.ParseJWKS refuses larger documents", DefaultMaxBytes)
	}
	if o.MinTTL > o.MaxTTL {
		return nil, errors.New("jwkscache: MinTTL exceeds MaxTTL")
	}
	if o.DefaultTTL < o.MinTTL || o.DefaultTTL > o.MaxTTL {
		return nil, errors.New("jwkscache: DefaultTTL must lie within [MinTTL, MaxTTL]")
	}
	allowed := make([]netip.Prefix, 0, len(o.AllowedCIDRs))
	for _, p := range o.AllowedCIDRs {
		if !p.IsValid() {
			return nil, fmt.Errorf("jwkscache: invalid allowed CIDR %v", p)
		}
		allowed = append(allowed, p.Masked())
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.OnFetch == nil {
		o.OnFetch = func(string, error) {}
	}

	policy := newAddrPolicy(o.AllowInsecureLoopback, false, allowed)
	c := &Cache{
		allowInsecureLoopback: o.AllowInsecureLoopback,
		policy:                policy,
		https:                 newClient(policy, &o),
		timeout:               o.Timeout,
		maxBytes:              o.MaxBytes,
		minTTL:                o.MinTTL,
		maxTTL:                o.MaxTTL,
		defaultTTL:            o.DefaultTTL,
		refreshInterval:       o.RefreshInterval,
		maxStale:              o.MaxStale,
		log:                   o.Logger,
		now:                   o.Now,
		onFetch:               o.OnFetch,
		entries:               make(map[string]*entry),
	}
	if o.AllowInsecureLoopback {
		c.plain = newClient(newAddrPolicy(true, true, nil), &o)
	}
	return c, nil
}

// newClient returns an HTTP client whose every connection passes policy.
func newClient(policy *addrPolicy, o *Options) *http.Client {
	dialer := &net.Dialer{
		Timeout:   o.ConnectTimeout,
		KeepAlive: -1,
		Control:   policy.control,
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:       nil, // an environment proxy would dial for us, past the policy
			DialContext: dialer.DialContext,
			TLSClientConfig: &tls.Config{
				RootCAs:    o.RootCAs,
				MinVersion: tls.VersionTLS12,
			},
			TLSHandshakeTimeout:    o.Timeout,
			ResponseHeaderTimeout:  o.Timeout,
			MaxResponseHeaderBytes: 64 << 10,
			// Every fetch dials afresh, so every fetch passes the policy;
			// fetches are minutes apart, so reuse would save nothing.
			DisableKeepAlives:  true,
			DisableCompression: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Timeout: o.Timeout,
	}
}

// KeySet validates jwksURL and returns the keys published there. The URL
// must be https (or http to a loopback host with AllowInsecureLoopback),
// without userinfo or fragment; a literal IP host must pass the address
// policy. Nothing is fetched until the first Key call. KeySets for the same
// URL share one cache entry.
func (c *Cache) KeySet(jwksURL string) (jose.KeySet, error) {
	canon, err := validateURL(jwksURL, c.allowInsecureLoopback, c.policy)
	if err != nil {
		return nil, err
	}
	return c.keySet(canon), nil
}

// keySet returns the KeySet for an already validated URL.
func (c *Cache) keySet(canon string) *keySet {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[canon]
	if !ok {
		client := c.https
		if strings.HasPrefix(canon, "http:") {
			client = c.plain
		}
		e = &entry{url: canon, logURL: redactURL(canon), client: client}
		c.entries[canon] = e
	}
	return &keySet{c: c, e: e}
}

// entry is the cache state of one JWKS URL.
type entry struct {
	url    string
	logURL string
	client *http.Client

	// snap is read without locking on every Key call.
	snap atomic.Pointer[snapshot]
	sf   singleflight.Group

	mu          sync.Mutex
	lastAttempt time.Time // end of the latest fetch; zero before the first
	lastErr     error     // result of the latest fetch
}

// snapshot is one successful fetch. It is immutable and replaced whole, so
// a key removed upstream is gone after the next successful fetch.
type snapshot struct {
	keys    *jose.StaticKeySet
	count   int // len(keys); zero when the issuer withdrew every key
	expires time.Time
}

// keySet is the jose.KeySet for one JWKS URL.
type keySet struct {
	c *Cache
	e *entry
}

// Key implements jose.KeySet. A fresh hit takes no lock and makes no call.
// Otherwise (unknown kid, expired or never fetched) it refreshes, subject to
// RefreshInterval, and answers from whatever keys are then usable.
func (ks *keySet) Key(ctx context.Context, kid string) (*gojose.JSONWebKey, error) {
	c, e := ks.c, ks.e
	if s := e.snap.Load(); s != nil && c.now().Before(s.expires) {
		if k, err := s.keys.Key(ctx, kid); err == nil {
			return k, nil
		}
	}
	s, fetchErr := c.refresh(ctx, e)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("jwkscache: %s: %w", e.logURL, err)
	}
	if s == nil || !c.now().Before(s.expires.Add(c.maxStale)) {
		if fetchErr == nil {
			fetchErr = errors.New("no usable keys")
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, e.logURL, fetchErr)
	}
	k, err := s.keys.Key(ctx, kid)
	if err != nil {
		if fetchErr != nil {
			return nil, fmt.Errorf("%w (refresh of %s failed: %w)", err, e.logURL, fetchErr)
		}
		return nil, err
	}
	return k, nil
}

// refresh fetches e unless a fetch of it ended less than RefreshInterval
// ago; callers that arrive during a fetch share it. It returns the keys to
// use (possibly nil or stale) and the error of the latest fetch.
func (c *Cache) refresh(ctx context.Context, e *entry) (*snapshot, error) {
	if r, throttled := c.throttled(e); throttled {
		return r.snap, r.err
	}
	ch := e.sf.DoChan("", func() (any, error) {
		// A caller may have passed the check above just as the previous
		// fetch ended; checking again here is what makes the limit hold.
		if r, throttled := c.throttled(e); throttled {
			return r, nil
		}
		// The fetch outlives any one caller: it is shared, and cancelling
		// it for one would fail (and negative-cache) it for all.
		s, err := c.fetch(context.WithoutCancel(ctx), e)
		e.mu.Lock()
		e.lastAttempt = c.now()
		e.lastErr = err
		if err == nil {
			e.snap.Store(s)
		}
		e.mu.Unlock()
		c.report(e, s, err)
		return result{e.snap.Load(), err}, nil
	})
	select {
	case r := <-ch:
		res := r.Val.(result)
		return res.snap, res.err
	case <-ctx.Done():
		return e.snap.Load(), ctx.Err()
	}
}

type result struct {
	snap *snapshot
	err  error
}

// throttled reports whether e was fetched less than RefreshInterval ago,
// and if so the state that fetch left.
func (c *Cache) throttled(e *entry) (result, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.lastAttempt.IsZero() && c.now().Sub(e.lastAttempt) < c.refreshInterval {
		return result{e.snap.Load(), e.lastErr}, true
	}
	return result{}, false
}

func (c *Cache) report(e *entry, s *snapshot, err error) {
	c.onFetch(e.url, err)
	if err == nil && s.count == 0 {
		// Every token of this issuer now fails with ErrUnknownKey. That is
		// right if the keys were withdrawn on purpose, and an outage of
		// the issuer's own making otherwise: tell the operator either way.
		c.log.Warn("jwks has no usable signing keys; every key of this issuer is withdrawn",
			"jwks_url", e.logURL, "expires", s.expires)
		return
	}
	if err == nil {
		c.log.Debug("jwks fetched", "jwks_url", e.logURL, "keys", s.count, "expires", s.expires)
		return
	}
	attrs := []any{"jwks_url", e.logURL, "error", err}
	if old := e.snap.Load(); old != nil {
		attrs = append(attrs, "serving_last_good_until", old.expires.Add(c.maxStale))
	}
	c.log.Warn("jwks fetch failed", attrs...)
}
