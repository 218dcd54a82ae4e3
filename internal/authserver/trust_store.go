package authserver

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/store"
)

// DefaultIssuerCacheTTL is how long the stored trusted issuers are reused
// before they are read again: the longest a change (an issuer disabled
// above all) takes to reach a running instance.
const DefaultIssuerCacheTTL = 5 * time.Second

// storedIssuers is the cached view of the trusted issuers stored for this
// server's realm. A row that cannot be used (invalid, this server's own
// issuer, a jwks_uri the key source refuses) is left out and logged: that
// issuer is not trusted, and no other is affected.
type storedIssuers struct {
	realm   string
	src     store.TrustedIssuers
	keysFor func(jwksURI string) (jose.KeySet, error)
	ttl     time.Duration
	now     func() time.Time
	log     *slog.Logger
	ts      *trustSet // for validate and the own-issuer rule

	mu   sync.Mutex                     // held while reloading
	snap atomic.Pointer[issuerSnapshot] // nil until loaded, and after a failed load
}

// issuerSnapshot is one read of the store.
type issuerSnapshot struct {
	loadedAt time.Time
	byIssuer map[string]*trustedIssuer
}

func (d *storedIssuers) fresh(s *issuerSnapshot, now time.Time) bool {
	return s != nil && now.Sub(s.loadedAt) < d.ttl && !now.Before(s.loadedAt)
}

// get returns the stored issuer named iss exactly (disabled or not), or
// nil, reading the store again once the cache is older than the TTL (one
// reader reloads; the others wait for it). A failed read is returned,
// never served from a stale cache: the caller answers 503, so an issuer
// disabled in the store cannot keep working because the database is
// unreachable.
func (d *storedIssuers) get(ctx context.Context, iss string) (*trustedIssuer, error) {
	now := d.now()
	if s := d.snap.Load(); d.fresh(s, now) {
		return s.byIssuer[iss], nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.snap.Load(); d.fresh(s, now) { // reloaded while we waited
		return s.byIssuer[iss], nil
	}
	m, err := d.load(ctx)
	if err != nil {
		d.snap.Store(nil)
		return nil, fmt.Errorf("authserver: read trusted issuers: %w", err)
	}
	d.snap.Store(&issuerSnapshot{loadedAt: now, byIssuer: m})
	return m[iss], nil
}

func (d *storedIssuers) load(ctx context.Context) (map[string]*trustedIssuer, error) {
	rows, err := d.src.ListTrustedIssuers(ctx, d.realm)
	if err != nil {
		return nil, err
	}
	profile := jose.IDJAGProfile()
	out := make(map[string]*trustedIssuer, len(rows))
	for _, r := range rows {
		if err := r.Validate(); err != nil {
			d.log.ErrorContext(ctx, "stored trusted issuer is invalid; not trusted", "issuer", r.Issuer, "err", err)
			continue
		}
		keys, err := d.keysFor(r.JWKSURI)
		if err != nil {
			d.log.ErrorContext(ctx, "stored trusted issuer's jwks_uri is refused; not trusted", "issuer", r.Issuer, "err", err)
			continue
		}
		ti, err := d.ts.validate(TrustedIssuer{
			Issuer:               r.Issuer,
			Keys:                 keys,
			Algorithms:           r.Algorithms,
			MaxAssertionLifetime: r.MaxAssertionLifetime,
			Disabled:             r.Disabled,
			AllowReuse:           r.AllowReuse,
		}, profile.Algorithms)
		if err != nil {
			d.log.ErrorContext(ctx, "stored trusted issuer is refused; not trusted", "issuer", r.Issuer, "err", err)
			continue
		}
		out[r.Issuer] = ti
	}
	return out, nil
}
