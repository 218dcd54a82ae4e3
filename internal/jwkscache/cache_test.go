package jwkscache

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gojose "github.com/go-jose/go-jose/v4"

	"github.com/openxaa/xaa/internal/jose"
)

func TestKeyHappyPathES256(t *testing.T) {
	t.Parallel()
	k1, k2 := esKey(t, "k1"), esKey(t, "k2")
	up := newUpstream(t, k1, k2)
	up.contentType = "application/jwk-set+json; charset=utf-8"
	srv := serve(t, up)
	f := newFixture(t, Options{})
	ks := f.keySet(t, srv.URL+"/jwks")

	for _, want := range []gojose.JSONWebKey{k1, k2, k1} {
		got := mustKey(t, ks, want.KeyID)
		if !got.Key.(*ecdsa.PublicKey).Equal(want.Key) {
			t.Errorf("Key(%q): wrong public key", want.KeyID)
		}
		if got.Algorithm != jose.ES256 {
			t.Errorf("Key(%q).Algorithm = %q", want.KeyID, got.Algorithm)
		}
	}
	if n := up.hits.Load(); n != 1 {
		t.Errorf("upstream hits = %d, want 1 (later lookups are cache hits)", n)
	}
	if n := f.fetches.count(); n != 1 {
		t.Errorf("OnFetch calls = %d, want 1", n)
	}
}

// A caller cannot corrupt the cache through the key it was given.
func TestKeyReturnsCopy(t *testing.T) {
	t.Parallel()
	srv := serve(t, newUpstream(t, esKey(t, "k1")))
	f := newFixture(t, Options{})
	ks := f.keySet(t, srv.URL)
	k := mustKey(t, ks, "k1")
	k.KeyID, k.Algorithm = "evil", "none"
	if got := mustKey(t, ks, "k1"); got.Algorithm != jose.ES256 {
		t.Errorf("cached key was modified through a returned copy: alg %q", got.Algorithm)
	}
}

func TestKeyHTTPS(t *testing.T) {
	t.Parallel()
	k1 := esKey(t, "k1")
	srv := httptest.NewTLSServer(newUpstream(t, k1))
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

	t.Run("trusted root", func(t *testing.T) {
		t.Parallel()
		c, err := New(&Options{RootCAs: pool, AllowedCIDRs: loopback})
		if err != nil {
			t.Fatal(err)
		}
		ks, err := c.KeySet(srv.URL + "/jwks")
		if err != nil {
			t.Fatal(err)
		}
		mustKey(t, ks, "k1")
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		t.Parallel()
		c, err := New(&Options{AllowedCIDRs: loopback}) // system roots
		if err != nil {
			t.Fatal(err)
		}
		ks, err := c.KeySet(srv.URL + "/jwks")
		if err != nil {
			t.Fatal(err)
		}
		_, err = ks.Key(context.Background(), "k1")
		var certErr x509.UnknownAuthorityError
		if !errors.Is(err, ErrUnavailable) || !errors.As(err, &certErr) {
			t.Errorf("Key over untrusted TLS = %v, want ErrUnavailable with x509.UnknownAuthorityError", err)
		}
	})
}

func TestKeySetSameURLSharesEntry(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, esKey(t, "k1"))
	srv := serve(t, up)
	f := newFixture(t, Options{})
	port := srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]
	a := f.keySet(t, "http://127.0.0.1:"+port+"/jwks")
	b := f.keySet(t, "HTTP://127.0.0.1:"+port+"/jwks")
	other := f.keySet(t, "http://127.0.0.1:"+port+"/other")
	if a.(*keySet).e != b.(*keySet).e {
		t.Error("equivalent URLs got different cache entries")
	}
	if a.(*keySet).e == other.(*keySet).e {
		t.Error("different URLs share a cache entry")
	}
	mustKey(t, a, "k1")
	mustKey(t, b, "k1")
	if n := up.hits.Load(); n != 1 {
		t.Errorf("upstream hits = %d, want 1", n)
	}
}

// Upstream is reached only on loopback; the literal-address and hostname
// refusals are exercised through the fetch path itself (the entry is
// created without URL validation), so what is tested is the dialer.
func TestDialRefusesNonPublicAddresses(t *testing.T) {
	t.Parallel()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(newUpstream(t, esKey(t, "k1")))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	port := srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]

	c, err := New(nil) // production policy
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{
		"https://127.0.0.1:" + port + "/jwks", // a live server: must see no connection
		"http://127.0.0.1:" + port + "/jwks",
		"https://localhost:" + port + "/jwks", // resolved name, refused at dial
		"https://[::1]/jwks",
		"https://127.8.9.10/jwks",
		"https://10.0.0.1/jwks",
		"https://172.16.0.1/jwks",
		"https://172.31.255.254/jwks",
		"https://192.168.1.1/jwks",
		"https://169.254.169.254/latest/meta-data",
		"https://100.64.0.1/jwks",
		"https://0.0.0.0/jwks",
		"https://[::]/jwks",
		"https://224.0.0.1/jwks",
		"https://255.255.255.255/jwks",
		"https://[fe80::1]/jwks",
		"https://[fc00::1]/jwks",
		"https://[fd12:3456::1]/jwks",
		"https://[::ffff:127.0.0.1]/jwks",
		"https://[::ffff:169.254.169.254]/jwks",
		"https://[64:ff9b::a9fe:a9fe]/jwks", // NAT64 form of the metadata address
		"https://[2002:7f00:1::]/jwks",      // 6to4 form of 127.0.0.1
		"https://[ff02::1]/jwks",
	} {
		t.Run(u, func(t *testing.T) {
			t.Parallel()
			// Skip URL validation, which would refuse most of these
			// before any dial.
			ks := &keySet{c: c, e: &entry{url: u, logURL: u, client: c.https}}
			_, err := ks.Key(context.Background(), "k1")
			if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrAddressRefused) {
				t.Errorf("Key = %v, want ErrUnavailable wrapping ErrAddressRefused", err)
			}
		})
	}
	t.Cleanup(func() {
		if n := conns.Load(); n != 0 {
			t.Errorf("loopback server saw %d connections, want 0", n)
		}
	})
}

// The plain-http development client reaches loopback only, even where the
// allowlist would let https through.
func TestPlainHTTPReachesOnlyLoopback(t *testing.T) {
	t.Parallel()
	c, err := New(&Options{
		AllowInsecureLoopback: true,
		AllowedCIDRs:          []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"http://10.0.0.1/jwks", "http://[fd00::1]/jwks", "http://93.184.215.14/jwks"} {
		resp, err := c.plain.Get(u)
		if err == nil {
			resp.Body.Close()
		}
		if !errors.Is(err, ErrAddressRefused) {
			t.Errorf("plain GET %s = %v, want ErrAddressRefused", u, err)
		}
	}
	if _, err := c.KeySet("http://10.0.0.1/jwks"); !errors.Is(err, ErrURL) {
		t.Errorf("KeySet(http://10.0.0.1/jwks) = %v, want ErrURL", err)
	}
}

func TestFetchRejections(t *testing.T) {
	t.Parallel()
	valid := func(t *testing.T) []byte {
		u := newUpstream(t, esKey(t, "k1"))
		return u.body
	}
	pad := func(b []byte, n int) []byte {
		return append(b[:len(b):len(b)], strings.Repeat(" ", n-len(b))...)
	}
	tests := []struct {
		name string
		set  func(t *testing.T, u *upstream)
		// handler replaces upstream entirely when set.
		handler http.HandlerFunc
		want    error
	}{
		{name: "status 404", set: func(_ *testing.T, u *upstream) { u.status = 404 }, want: ErrStatus},
		{name: "status 500", set: func(_ *testing.T, u *upstream) { u.status = 500 }, want: ErrStatus},
		{name: "status 204", set: func(_ *testing.T, u *upstream) { u.status = 204 }, want: ErrStatus},
		{name: "content type text/html", set: func(_ *testing.T, u *upstream) { u.contentType = "text/html" }, want: ErrContentType},
		{name: "content type missing", set: func(_ *testing.T, u *upstream) { u.contentType = "" }, want: ErrContentType},
		{name: "content type octet-stream", set: func(_ *testing.T, u *upstream) { u.contentType = "application/octet-stream" }, want: ErrContentType},
		{name: "content type jsonx", set: func(_ *testing.T, u *upstream) { u.contentType = "application/jsonx" }, want: ErrContentType},
		{name: "content type jwk+json", set: func(_ *testing.T, u *upstream) { u.contentType = "application/jwk+json" }, want: ErrContentType},
		{name: "charset latin1", set: func(_ *testing.T, u *upstream) { u.contentType = "application/json; charset=iso-8859-1" }, want: ErrContentType},
		{name: "content type malformed", set: func(_ *testing.T, u *upstream) { u.contentType = "application/json; charset" }, want: ErrContentType},
		{name: "two content types", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Add("Content-Type", "application/json")
			w.Header().Add("Content-Type", "text/html")
			_, _ = w.Write([]byte(`{"keys":[]}`))
		}, want: ErrContentType},
		{name: "oversized, chunked", set: func(t *testing.T, u *upstream) {
			u.body = pad(valid(t), DefaultMaxBytes+1)
		}, want: ErrTooLarge},
		{name: "oversized, Content-Length", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", fmt.Sprint(DefaultMaxBytes+1))
			_, _ = w.Write(pad([]byte(`{"keys":[]}`), DefaultMaxBytes+1))
		}, want: ErrTooLarge},
		{name: "oversized, 1 MiB", set: func(t *testing.T, u *upstream) {
			u.body = pad(valid(t), 1<<20)
		}, want: ErrTooLarge},
		{name: "not JSON", set: func(_ *testing.T, u *upstream) { u.body = []byte("<html>") }, want: ErrInvalidJWKS},
		{name: "empty body", set: func(_ *testing.T, u *upstream) { u.body = nil }, want: ErrInvalidJWKS},
		{name: "JSON array", set: func(_ *testing.T, u *upstream) { u.body = []byte(`[]`) }, want: ErrInvalidJWKS},
		{name: "keys missing", set: func(_ *testing.T, u *upstream) { u.body = []byte(`{"Keys":[]}`) }, want: ErrInvalidJWKS},
		{name: "keys null", set: func(_ *testing.T, u *upstream) { u.body = []byte(`{"keys":null}`) }, want: ErrInvalidJWKS},
		{name: "duplicate keys member", set: func(t *testing.T, u *upstream) {
			u.body = []byte(`{"keys":[],"keys":` + strings.TrimPrefix(string(valid(t)), `{"keys":`))
		}, want: ErrInvalidJWKS},
		{name: "duplicate member in a key", set: func(t *testing.T, u *upstream) {
			u.body = []byte(strings.Replace(string(valid(t)), `"kid":"k1"`, `"kid":"k1","kid":"k2"`, 1))
		}, want: ErrInvalidJWKS},
		{name: "trailing data", set: func(t *testing.T, u *upstream) { u.body = append(valid(t), "{}"...) }, want: ErrInvalidJWKS},
		{name: "33 keys", set: func(t *testing.T, u *upstream) {
			keys := make([]gojose.JSONWebKey, 33)
			for i := range keys {
				keys[i] = esKey(t, fmt.Sprint("k", i))
			}
			u.setKeysLocked(t, keys...)
		}, want: ErrInvalidJWKS},
		{name: "duplicate kid", set: func(t *testing.T, u *upstream) {
			u.setKeysLocked(t, esKey(t, "k1"), esKey(t, "k1"))
		}, want: ErrInvalidJWKS},
		{name: "symmetric key", set: func(_ *testing.T, u *upstream) {
			u.body = []byte(`{"keys":[{"kty":"oct","kid":"k1","alg":"HS256","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}`)
		}, want: ErrInvalidJWKS},
		{name: "symmetric key next to a good one", set: func(t *testing.T, u *upstream) {
			good := strings.TrimSuffix(strings.TrimPrefix(string(valid(t)), `{"keys":[`), `]}`)
			u.body = []byte(`{"keys":[` + good + `,{"kty":"oct","kid":"k2","alg":"HS256","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}`)
		}, want: ErrInvalidJWKS},
		{name: "private key", set: func(t *testing.T, u *upstream) {
			priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			u.setKeysLocked(t, gojose.JSONWebKey{Key: priv, KeyID: "k1", Algorithm: jose.ES256, Use: "sig"})
		}, want: ErrInvalidJWKS},
		{name: "RSA key below 2048 bits", set: func(t *testing.T, u *upstream) {
			priv, err := rsa.GenerateKey(rand.Reader, 1024) // too short on purpose
			if err != nil {
				t.Fatal(err)
			}
			u.setKeysLocked(t, gojose.JSONWebKey{Key: &priv.PublicKey, KeyID: "k1", Algorithm: jose.RS256, Use: "sig"})
		}, want: ErrInvalidJWKS},
		{name: "EC key with RS256", set: func(t *testing.T, u *upstream) {
			k := esKey(t, "k1")
			k.Algorithm = jose.RS256
			u.setKeysLocked(t, k)
		}, want: ErrInvalidJWKS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var h http.Handler = tt.handler
			up := newUpstream(t, esKey(t, "k1"))
			if tt.handler == nil {
				up.set(func(u *upstream) { tt.set(t, u) })
				h = up
			}
			srv := serve(t, h)
			f := newFixture(t, Options{})
			_, err := f.keySet(t, srv.URL+"/jwks").Key(context.Background(), "k1")
			if !errors.Is(err, ErrUnavailable) || !errors.Is(err, tt.want) {
				t.Errorf("Key = %v, want ErrUnavailable wrapping %v", err, tt.want)
			}
			if errors.Is(tt.want, ErrInvalidJWKS) && !errors.Is(err, jose.ErrInvalidKeySet) {
				t.Errorf("Key = %v, want it to wrap jose.ErrInvalidKeySet", err)
			}
			if !errors.Is(f.fetches.last(), tt.want) {
				t.Errorf("OnFetch error = %v, want %v", f.fetches.last(), tt.want)
			}
		})
	}
}

// Entries not meant for signature verification are skipped (jose.ParseJWKS,
// RFC 7517 §5), so an issuer that also publishes an encryption key works.
func TestUnusableEntriesSkipped(t *testing.T) {
	t.Parallel()
	enc, noAlg := esKey(t, "enc"), esKey(t, "noalg")
	enc.Use, noAlg.Algorithm = "enc", ""
	srv := serve(t, newUpstream(t, enc, esKey(t, "sig"), noAlg))
	f := newFixture(t, Options{})
	ks := f.keySet(t, srv.URL)
	mustKey(t, ks, "sig")
	for _, kid := range []string{"enc", "noalg"} {
		if _, err := ks.Key(context.Background(), kid); !errors.Is(err, jose.ErrUnknownKey) {
			t.Errorf("Key(%q) = %v, want ErrUnknownKey", kid, err)
		}
	}
}

// A well-formed JWKS without a usable signing key is the issuer
// withdrawing its keys, not an outage: the cached keys go at the next
// refresh, every kid is unknown (never ErrUnavailable, which would keep
// them for MaxStale), and each such fetch logs one warning.
func TestUpstreamWithdrawsAllKeys(t *testing.T) {
	t.Parallel()
	withdrawn := map[string]func(t *testing.T, u *upstream){
		"empty set": func(_ *testing.T, u *upstream) { u.body = []byte(`{"keys":[]}`) },
		"only key is for encryption": func(t *testing.T, u *upstream) {
			k := esKey(t, "k1")
			k.Use = "enc"
			u.setKeysLocked(t, k)
		},
		"only key has no alg": func(t *testing.T, u *upstream) {
			k := esKey(t, "k1")
			k.Algorithm = ""
			u.setKeysLocked(t, k)
		},
		"only key has no kid": func(t *testing.T, u *upstream) {
			k := esKey(t, "k1")
			k.KeyID = ""
			u.setKeysLocked(t, k)
		},
	}
	triggers := map[string]func(f *fixture, ks jose.KeySet){
		"on expiry": func(f *fixture, _ jose.KeySet) { f.clock.Advance(DefaultTTL) },
		"on unknown-kid refresh": func(f *fixture, ks jose.KeySet) {
			f.clock.Advance(DefaultRefreshInterval)
			_, _ = ks.Key(context.Background(), "new-kid")
		},
	}
	for doc, withdraw := range withdrawn {
		for when, trigger := range triggers {
			t.Run(doc+"/"+when, func(t *testing.T) {
				t.Parallel()
				up := newUpstream(t, esKey(t, "k1"))
				srv := serve(t, up)
				logs := &logRecorder{}
				f := newFixture(t, Options{Logger: slog.New(logs)})
				ks := f.keySet(t, srv.URL)
				mustKey(t, ks, "k1")
				up.set(func(u *upstream) { withdraw(t, u) })

				trigger(f, ks)
				for range 3 {
					_, err := ks.Key(context.Background(), "k1")
					if !errors.Is(err, jose.ErrUnknownKey) || errors.Is(err, ErrUnavailable) {
						t.Fatalf("withdrawn key: %v, want ErrUnknownKey and not ErrUnavailable", err)
					}
				}
				if err := f.fetches.last(); err != nil || f.fetches.count() != 2 {
					t.Fatalf("fetches = %d, last error %v; want 2, nil", f.fetches.count(), err)
				}
				if n := logs.count(slog.LevelWarn, "jwks has no usable signing keys"); n != 1 {
					t.Errorf("warnings after one empty fetch = %d, want 1", n)
				}

				// Still withdrawn long after MaxStale: an empty set is an
				// answer, not a failure to fail closed on.
				f.clock.Advance(DefaultMaxStale + DefaultTTL)
				if _, err := ks.Key(context.Background(), "k1"); !errors.Is(err, jose.ErrUnknownKey) || errors.Is(err, ErrUnavailable) {
					t.Fatalf("withdrawn key past MaxStale: %v, want ErrUnknownKey", err)
				}
				if n := logs.count(slog.LevelWarn, "jwks has no usable signing keys"); n != f.fetches.count()-1 {
					t.Errorf("warnings = %d after %d empty fetches, want one each", n, f.fetches.count()-1)
				}

				// Keys published again are picked up at the next refresh.
				up.setKeys(t, esKey(t, "k2"))
				f.clock.Advance(DefaultRefreshInterval)
				mustKey(t, ks, "k2")
			})
		}
	}
}

// logRecorder is a slog.Handler that keeps each record's level and message.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r)
	return nil
}

func (l *logRecorder) count(level slog.Level, prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.records {
		if r.Level == level && strings.HasPrefix(r.Message, prefix) {
			n++
		}
	}
	return n
}

// setKeysLocked is setKeys for use inside upstream.set.
func (u *upstream) setKeysLocked(t *testing.T, keys ...gojose.JSONWebKey) {
	t.Helper()
	tmp := &upstream{}
	tmp.setKeys(t, keys...)
	u.body = tmp.body
}

func TestMaxBytesBoundary(t *testing.T) {
	t.Parallel()
	for _, maxBytes := range []int64{0, 4096} {
		t.Run(fmt.Sprint(maxBytes), func(t *testing.T) {
			t.Parallel()
			limit := maxBytes
			if limit == 0 {
				limit = DefaultMaxBytes
			}
			up := newUpstream(t, esKey(t, "k1"))
			up.body = append(up.body, strings.Repeat(" ", int(limit)-len(up.body))...)
			srv := serve(t, up)
			f := newFixture(t, Options{MaxBytes: maxBytes})
			mustKey(t, f.keySet(t, srv.URL), "k1") // exactly the limit

			up.set(func(u *upstream) { u.body = append(u.body, ' ') })
			f2 := newFixture(t, Options{MaxBytes: maxBytes})
			if _, err := f2.keySet(t, srv.URL).Key(context.Background(), "k1"); !errors.Is(err, ErrTooLarge) {
				t.Errorf("limit+1 bytes: Key = %v, want ErrTooLarge", err)
			}
		})
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	target := newUpstream(t, esKey(t, "k1"))
	targetSrv := serve(t, target)
	for _, code := range []int{301, 302, 303, 307, 308} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			t.Parallel()
			srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, targetSrv.URL+"/jwks", code)
			}))
			f := newFixture(t, Options{})
			_, err := f.keySet(t, srv.URL+"/jwks").Key(context.Background(), "k1")
			if !errors.Is(err, ErrStatus) {
				t.Errorf("Key = %v, want ErrStatus", err)
			}
		})
	}
	t.Cleanup(func() {
		if n := target.hits.Load(); n != 0 {
			t.Errorf("redirect target was fetched %d times", n)
		}
	})
}

func TestUnknownKidFloodFetchesOncePerInterval(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, esKey(t, "k1"))
	srv := serve(t, up)
	f := newFixture(t, Options{})
	ks := f.keySet(t, srv.URL)
	mustKey(t, ks, "k1")
	// That fetch counts: nothing is refetched for RefreshInterval.

	flood := func(round int) {
		t.Helper()
		var wg sync.WaitGroup
		var unexpected atomic.Int64
		for g := range 50 {
			wg.Go(func() {
				for i := range 20 {
					_, err := ks.Key(context.Background(), fmt.Sprintf("attacker-%d-%d-%d", round, g, i))
					if !errors.Is(err, jose.ErrUnknownKey) {
						unexpected.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if n := unexpected.Load(); n != 0 {
			t.Errorf("round %d: %d lookups did not fail with ErrUnknownKey", round, n)
		}
	}

	for round, want := range []struct {
		advance time.Duration
		hits    int64
	}{
		{0, 1}, // right after the first fetch
		{DefaultRefreshInterval, 2},
		{DefaultRefreshInterval - time.Nanosecond, 2},
		{time.Nanosecond, 3},
		{10 * time.Second, 3},
	} {
		f.clock.Advance(want.advance)
		flood(round)
		if n := up.hits.Load(); n != want.hits {
			t.Fatalf("flood %d: upstream hits = %d, want %d", round, n, want.hits)
		}
	}
	mustKey(t, ks, "k1") // the real key kept working throughout
}

// A new key published upstream is found by the first lookup after the
// interval, without waiting for the cache to expire.
func TestUnknownKidPicksUpRotation(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, esKey(t, "old"))
	srv := serve(t, up)
	f := newFixture(t, Options{})
	ks := f.keySet(t, srv.URL)
	mustKey(t, ks, "old")
	up.setKeys(t, esKey(t, "old"), esKey(t, "new"))
	f.clock.Advance(DefaultRefreshInterval)
	mustKey(t, ks, "new")
}

func TestFirstUseConcurrentCallersShareOneFetch(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, esKey(t, "k1"))
	up.gate = make(chan struct{})
	srv := serve(t, up)
	f := newFixture(t, Options{})
	ks := f.keySet(t, srv.URL)

	const callers = 100
	var started, done sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		started.Add(1)
		done.Go(func() {
			started.Done()
			_, err := ks.Key(context.Background(), "k1")
			errs <- err
		})
	}
	started.Wait()
	<-up.hit // the one fetch is in flight and held
	close(up.gate)
	done.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Key: %v", err)
		}
	}
	if n := up.hits.Load(); n != 1 {
		t.Errorf("upstream hits = %d, want 1", n)
	}
}

func TestUpstreamKeyRemoval(t *testing.T) {
	t.Parallel()
	t.Run("on expiry", func(t *testing.T) {
		t.Parallel()
		up := newUpstream(t, esKey(t, "k1"), esKey(t, "k2"))
		srv := serve(t, up)
		f := newFixture(t, Options{})
		ks := f.keySet(t, srv.URL)
		mustKey(t, ks, "k2")
		up.setKeys(t, esKey(t, "k1"))

		f.clock.Advance(DefaultTTL - time.Nanosecond)
		mustKey(t, ks, "k2") // still fresh: removal is not visible yet
		f.clock.Advance(time.Nanosecond)
		mustKey(t, ks, "k1") // expired: refetched
		if _, err := ks.Key(context.Background(), "k2"); !errors.Is(err, jose.ErrUnknownKey) {
			t.Errorf("removed key after refresh: %v, want ErrUnknownKey", err)
		}
	})
	t.Run("on unknown-kid refresh", func(t *testing.T) {
		t.Parallel()
		up := newUpstream(t, esKey(t, "k1"), esKey(t, "k2"))
		srv := serve(t, up)
		f := newFixture(t, Options{})
		ks := f.keySet(t, srv.URL)
		mustKey(t, ks, "k2")
		up.setKeys(t, esKey(t, "k1"), esKey(t, "k3"))

		f.clock.Advance(DefaultRefreshInterval)
		mustKey(t, ks, "k3")
		if _, err := ks.Key(context.Background(), "k2"); !errors.Is(err, jose.ErrUnknownKey) {
			t.Errorf("removed key after refresh: %v, want ErrUnknownKey", err)
		}
	})
}

// Cache-Control decides when the cache refetches, within the clamp.
func TestCacheLifetime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cacheControl string
		age          string
		want         time.Duration
	}{
		{"max-age=1", "", DefaultMinTTL},
		{"public, max-age=600", "", 10 * time.Minute},
		{"max-age=600", "100", 500 * time.Second},
		{"max-age=315360000", "", DefaultMaxTTL}, // ten years
		{"no-store", "", DefaultMinTTL},
		{"", "", DefaultTTL},
	}
	for _, tt := range tests {
		t.Run(tt.cacheControl+"/"+tt.age, func(t *testing.T) {
			t.Parallel()
			up := newUpstream(t, esKey(t, "k1"))
			up.cacheControl = tt.cacheControl
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.age != "" {
					w.Header().Set("Age", tt.age)
				}
				up.ServeHTTP(w, r)
			})
			srv := serve(t, h)
			f := newFixture(t, Options{})
			ks := f.keySet(t, srv.URL)
			mustKey(t, ks, "k1")
			f.clock.Advance(tt.want - time.Nanosecond)
			mustKey(t, ks, "k1")
			if n := up.hits.Load(); n != 1 {
				t.Fatalf("just before %v: upstream hits = %d, want 1", tt.want, n)
			}
			f.clock.Advance(time.Nanosecond)
			mustKey(t, ks, "k1")
			if n := up.hits.Load(); n != 2 {
				t.Fatalf("at %v: upstream hits = %d, want 2", tt.want, n)
			}
		})
	}
}

func TestOutageServesLastGoodUntilMaxStale(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, esKey(t, "k1"))
	up.cacheControl = "max-age=300"
	srv := serve(t, up)
	const maxStale = time.Hour
	f := newFixture(t, Options{MaxStale: maxStale})
	ks := f.keySet(t, srv.URL)
	mustKey(t, ks, "k1")
	up.set(func(u *upstream) { u.status = http.StatusServiceUnavailable })

	f.clock.Advance(5 * time.Minute) // expired
	mustKey(t, ks, "k1")
	if n, err := up.hits.Load(), f.fetches.last(); n != 2 || !errors.Is(err, ErrStatus) {
		t.Fatalf("after expiry: hits = %d, last fetch error = %v; want 2 and ErrStatus", n, err)
	}
	if _, err := ks.Key(context.Background(), "unknown"); !errors.Is(err, jose.ErrUnknownKey) || !errors.Is(err, ErrStatus) {
		t.Errorf("unknown kid while stale = %v, want ErrUnknownKey and the fetch error", err)
	}
	f.clock.Advance(DefaultRefreshInterval - time.Nanosecond)
	mustKey(t, ks, "k1")
	if n := up.hits.Load(); n != 2 {
		t.Fatalf("failure not negative-cached: hits = %d, want 2", n)
	}

	f.clock.Advance(maxStale - DefaultRefreshInterval) // 1 ns before the stale bound
	mustKey(t, ks, "k1")
	f.clock.Advance(time.Nanosecond)
	_, err := ks.Key(context.Background(), "k1")
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrStatus) {
		t.Fatalf("past MaxStale: Key = %v, want ErrUnavailable wrapping ErrStatus", err)
	}

	up.set(func(u *upstream) { u.status = http.StatusOK })
	f.clock.Advance(DefaultRefreshInterval)
	mustKey(t, ks, "k1") // recovers on the next allowed fetch
}

func TestFailureIsNegativeCached(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, esKey(t, "k1"))
	up.status = http.StatusInternalServerError
	srv := serve(t, up)
	f := newFixture(t, Options{})
	ks := f.keySet(t, srv.URL)

	for range 100 {
		if _, err := ks.Key(context.Background(), "k1"); !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrStatus) {
			t.Fatalf("Key = %v, want ErrUnavailable wrapping ErrStatus", err)
		}
	}
	if n := up.hits.Load(); n != 1 {
		t.Fatalf("upstream hits = %d, want 1", n)
	}
	up.set(func(u *upstream) { u.status = http.StatusOK })
	f.clock.Advance(DefaultRefreshInterval)
	mustKey(t, ks, "k1")
}

// A caller giving up does not cancel the fetch others share, nor turn it
// into a negative-cached failure.
func TestCallerCancelDoesNotAbortSharedFetch(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, esKey(t, "k1"))
	up.gate = make(chan struct{})
	srv := serve(t, up)
	f := newFixture(t, Options{})
	ks := f.keySet(t, srv.URL)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := ks.Key(ctx, "k1")
		errc <- err
	}()
	<-up.hit
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller: %v, want context.Canceled", err)
	}
	close(up.gate)
	mustKey(t, ks, "k1")
	if n := up.hits.Load(); n != 1 {
		t.Errorf("upstream hits = %d, want 1", n)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts *Options
		ok   bool
	}{
		{"nil", nil, true},
		{"zero", &Options{}, true},
		{"negative timeout", &Options{Timeout: -1}, false},
		{"negative connect timeout", &Options{ConnectTimeout: -1}, false},
		{"negative max bytes", &Options{MaxBytes: -1}, false},
		{"max bytes above the parser limit", &Options{MaxBytes: DefaultMaxBytes + 1}, false},
		{"smaller max bytes", &Options{MaxBytes: 4096}, true},
		{"negative refresh interval", &Options{RefreshInterval: -1}, false},
		{"negative max stale", &Options{MaxStale: -1}, false},
		{"min above max", &Options{MinTTL: 2 * time.Hour, MaxTTL: time.Hour}, false},
		{"default below min", &Options{MinTTL: time.Hour, DefaultTTL: time.Minute}, false},
		{"default above max", &Options{MaxTTL: time.Minute, MinTTL: time.Second, DefaultTTL: time.Hour}, false},
		{"consistent TTLs", &Options{MinTTL: time.Minute, DefaultTTL: time.Hour, MaxTTL: 2 * time.Hour}, true},
		{"invalid CIDR", &Options{AllowedCIDRs: []netip.Prefix{{}}}, false},
		{"unmasked CIDR", &Options{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8")}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tt.opts)
			if (err == nil) != tt.ok {
				t.Errorf("New = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func BenchmarkKeyHit(b *testing.B) {
	key := esKey(b, "k1")
	body, err := json.Marshal(gojose.JSONWebKeySet{Keys: []gojose.JSONWebKey{key}})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	c, err := New(&Options{AllowInsecureLoopback: true})
	if err != nil {
		b.Fatal(err)
	}
	ks, err := c.KeySet(srv.URL)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := ks.Key(ctx, "k1"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := ks.Key(ctx, "k1"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
