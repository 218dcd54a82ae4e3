package jwkscache

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gojose "github.com/go-jose/go-jose/v4"

	"github.com/openxaa/xaa/internal/jose"
)

// These tests fetch over real loopback HTTP(S) from httptest servers. Cache
// time is driven by a fake clock through Options.Now; testing/synctest is
// not used because its bubbles cannot wait on real sockets, and replacing
// the transport would bypass the dialer under test.

// clock is a manually advanced time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// upstream is a JWKS endpoint whose response the test changes at will.
type upstream struct {
	mu           sync.Mutex
	status       int
	contentType  string
	cacheControl string
	body         []byte
	gate         chan struct{} // if set, requests wait for it to close

	hits atomic.Int64
	hit  chan struct{} // receives (without blocking) on each request
}

func newUpstream(t *testing.T, keys ...gojose.JSONWebKey) *upstream {
	t.Helper()
	u := &upstream{status: http.StatusOK, contentType: "application/json", hit: make(chan struct{}, 1)}
	u.setKeys(t, keys...)
	return u
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.hits.Add(1)
	select {
	case u.hit <- struct{}{}:
	default:
	}
	u.mu.Lock()
	gate := u.gate
	u.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.contentType != "" {
		w.Header().Set("Content-Type", u.contentType)
	}
	if u.cacheControl != "" {
		w.Header().Set("Cache-Control", u.cacheControl)
	}
	w.WriteHeader(u.status)
	_, _ = w.Write(u.body)
}

func (u *upstream) setKeys(t *testing.T, keys ...gojose.JSONWebKey) {
	t.Helper()
	body, err := json.Marshal(gojose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	u.set(func(u *upstream) { u.body = body })
}

func (u *upstream) set(f func(*upstream)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	f(u)
}

// serve starts a plain-http loopback server for h.
func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// esKey returns a fresh ES256 public JWK with the kid.
func esKey(t testing.TB, kid string) gojose.JSONWebKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return gojose.JSONWebKey{Key: &priv.PublicKey, KeyID: kid, Algorithm: jose.ES256, Use: "sig"}
}

// fetchLog records OnFetch calls.
type fetchLog struct {
	mu   sync.Mutex
	errs []error
}

func (f *fetchLog) record(_ string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, err)
}

func (f *fetchLog) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.errs)
}

func (f *fetchLog) last() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) == 0 {
		return nil
	}
	return f.errs[len(f.errs)-1]
}

// fixture is a cache in loopback development mode on a fake clock.
type fixture struct {
	cache   *Cache
	clock   *clock
	fetches *fetchLog
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	f := &fixture{clock: newClock(), fetches: &fetchLog{}}
	opts.AllowInsecureLoopback = true
	if opts.Now == nil {
		opts.Now = f.clock.Now
	}
	opts.OnFetch = f.fetches.record
	c, err := New(&opts)
	if err != nil {
		t.Fatal(err)
	}
	f.cache = c
	return f
}

func (f *fixture) keySet(t *testing.T, url string) jose.KeySet {
	t.Helper()
	ks, err := f.cache.KeySet(url)
	if err != nil {
		t.Fatalf("KeySet(%q): %v", url, err)
	}
	return ks
}

// mustKey fails the test unless ks returns the key with kid.
func mustKey(t *testing.T, ks jose.KeySet, kid string) *gojose.JSONWebKey {
	t.Helper()
	k, err := ks.Key(context.Background(), kid)
	if err != nil {
		t.Fatalf("Key(%q): %v", kid, err)
	}
	if k.KeyID != kid {
		t.Fatalf("Key(%q) returned kid %q", kid, k.KeyID)
	}
	return k
}
