package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
)

const idpBJWKS = idpB + "/jwks.json"

// storedHarness is a harness whose IdP B is trusted through the store,
// not the config, with the given clock.
func storedHarness(t testing.TB, clk *clock, wrap func(*sqlstore.DB) store.TrustedIssuers) *harness {
	t.Helper()
	var keysB jose.KeySet
	h := newHarness(t, &harnessOptions{edit: func(c *Config) {
		db := c.Store.(*sqlstore.DB)
		c.TrustedIssuers = slices.DeleteFunc(slices.Clone(c.TrustedIssuers), func(ti TrustedIssuer) bool {
			if ti.Issuer == idpB {
				keysB = ti.Keys
				return true
			}
			return false
		})
		c.IssuerStore = db
		if wrap != nil {
			c.IssuerStore = wrap(db)
		}
		c.IssuerKeys = func(uri string) (jose.KeySet, error) {
			if uri != idpBJWKS {
				return nil, fmt.Errorf("test: refused jwks_uri %q", uri)
			}
			return keysB, nil
		}
		c.Now = clk.now
	}})
	return h
}

func (h *harness) storeIssuer(ti store.TrustedIssuer) {
	h.t.Helper()
	ti.Realm = asIssuer
	if ti.CreatedAt.IsZero() {
		ti.CreatedAt, ti.UpdatedAt = testNow, testNow
	}
	if err := h.db.CreateTrustedIssuer(context.Background(), ti); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) editIssuer(iss string, fn func(*store.TrustedIssuer)) {
	h.t.Helper()
	err := h.db.UpdateTrustedIssuer(context.Background(), asIssuer, iss, func(ti store.TrustedIssuer) (store.TrustedIssuer, error) {
		fn(&ti)
		return ti, nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// goodB mints a good ID-JAG from IdP B (EdDSA).
func (h *harness) goodB() string {
	return h.b.mint(h.t, goodClaims(idpB))
}

// TestStoredIssuers: an issuer trusted through the store redeems; a
// change to its row (disabled, algorithms narrowed) takes effect once the
// cache expires, at most DefaultIssuerCacheTTL later.
func TestStoredIssuers(t *testing.T) {
	t.Parallel()
	clk := newClock(testNow)
	h := storedHarness(t, clk, nil)

	// Not stored yet: unknown. The miss is cached like everything else.
	wantError(t, h.post(jb(h.goodB())), http.StatusBadRequest, "invalid_grant")
	h.storeIssuer(store.TrustedIssuer{Issuer: idpB, JWKSURI: idpBJWKS})
	clk.set(testNow.Add(DefaultIssuerCacheTTL))
	wantOK(t, h.post(jb(h.goodB())))

	h.editIssuer(idpB, func(ti *store.TrustedIssuer) { ti.Disabled = true })
	wantOK(t, h.post(jb(h.goodB()))) // within the TTL the cache answers
	clk.set(testNow.Add(2 * DefaultIssuerCacheTTL))
	wantError(t, h.post(jb(h.goodB())), http.StatusBadRequest, "invalid_grant")

	h.editIssuer(idpB, func(ti *store.TrustedIssuer) { ti.Disabled, ti.Algorithms = false, []string{jose.ES256} })
	clk.set(testNow.Add(3 * DefaultIssuerCacheTTL))
	wantError(t, h.post(jb(h.goodB())), http.StatusBadRequest, "invalid_grant") // EdDSA no longer allowed
	h.editIssuer(idpB, func(ti *store.TrustedIssuer) { ti.Algorithms = nil })
	clk.set(testNow.Add(4 * DefaultIssuerCacheTTL))
	wantOK(t, h.post(jb(h.goodB())))

	// A clock stepped back reloads rather than trusting an old cache.
	h.editIssuer(idpB, func(ti *store.TrustedIssuer) { ti.Disabled = true })
	clk.set(testNow)
	wantError(t, h.post(jb(h.goodB())), http.StatusBadRequest, "invalid_grant")

	for _, d := range h.audit(AuditAccessTokenDenied) {
		if d.Rule != ruleAssertionInvalid || d.Outcome != "deny" {
			t.Errorf("denial %+v", d)
		}
	}
}

// TestStoredIssuersRefusedRows: a stored row the server cannot use is
// left out alone; a stored row never overrides an issuer of the config.
func TestStoredIssuersRefusedRows(t *testing.T) {
	t.Parallel()
	clk := newClock(testNow)
	h := storedHarness(t, clk, nil)
	// IdP A is in the config, enabled; a disabled row of the same name
	// does not switch it off.
	h.storeIssuer(store.TrustedIssuer{Issuer: idpA, JWKSURI: "https://idp-a.example.com/jwks.json", Disabled: true})
	// A row whose jwks_uri the key source refuses is not trusted, and
	// does not keep IdP B's row from loading.
	evil := newIdP(t, idpEvil, jose.ES256)
	h.storeIssuer(store.TrustedIssuer{Issuer: idpEvil, JWKSURI: "https://evil.example.com/jwks.json"})
	h.storeIssuer(store.TrustedIssuer{Issuer: idpB, JWKSURI: idpBJWKS})
	wantOK(t, h.post(jb(h.good())))
	wantOK(t, h.post(jb(h.goodB())))
	wantError(t, h.post(jb(evil.mint(t, goodClaims(idpEvil)))), http.StatusBadRequest, "invalid_grant")
	// This server's own issuer cannot be stored at all.
	err := h.db.CreateTrustedIssuer(context.Background(), store.TrustedIssuer{
		Realm: asIssuer, Issuer: asIssuer, JWKSURI: asIssuer + "/jwks.json", CreatedAt: testNow, UpdatedAt: testNow,
	})
	if !errors.Is(err, store.ErrInvalid) {
		t.Errorf("storing the own issuer = %v, want ErrInvalid", err)
	}
}

// failingIssuers is the real store whose trusted-issuer reads fail while
// down is set.
type failingIssuers struct {
	*sqlstore.DB
	down *atomic.Bool
}

func (f failingIssuers) ListTrustedIssuers(ctx context.Context, realm string) ([]store.TrustedIssuer, error) {
	if f.down.Load() {
		return nil, fmt.Errorf("%w: disk on fire", store.ErrUnavailable)
	}
	return f.DB.ListTrustedIssuers(ctx, realm)
}

// TestStoredIssuersUnavailable: when the stored issuers cannot be read an
// ID-JAG of a stored issuer gets 503 (never a stale answer) and its jti
// is not burned; issuers of the config keep working.
func TestStoredIssuersUnavailable(t *testing.T) {
	t.Parallel()
	clk := newClock(testNow)
	var down atomic.Bool
	h := storedHarness(t, clk, func(db *sqlstore.DB) store.TrustedIssuers { return failingIssuers{db, &down} })
	h.storeIssuer(store.TrustedIssuer{Issuer: idpB, JWKSURI: idpBJWKS})
	wantOK(t, h.post(jb(h.goodB())))

	down.Store(true)
	clk.set(testNow.Add(DefaultIssuerCacheTTL))
	c := goodClaims(idpB)
	tok := h.b.mint(t, c)
	r := h.post(jb(tok))
	wantError(t, r, http.StatusServiceUnavailable, "temporarily_unavailable")
	wantOK(t, h.post(jb(h.good()))) // IdP A, from the config

	down.Store(false)
	wantOK(t, h.post(jb(tok))) // not burned by the failed attempt
}

func TestNewIssuerStoreValidation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	for name, edit := range map[string]func(*Config){
		"no_keys_func":   func(c *Config) { c.IssuerStore = h.db },
		"ttl_negative":   func(c *Config) { c.IssuerStore, c.IssuerKeys, c.IssuerCacheTTL = h.db, noKeys, -time.Second },
		"ttl_over_a_min": func(c *Config) { c.IssuerStore, c.IssuerKeys, c.IssuerCacheTTL = h.db, noKeys, 61*time.Second },
	} {
		cfg := h.cfg
		edit(&cfg)
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", name, err)
		}
	}
}

func noKeys(string) (jose.KeySet, error) { return nil, errors.New("test: no keys") }
