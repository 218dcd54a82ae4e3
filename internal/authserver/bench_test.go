package authserver

import (
	"net/http"
	"strings"
	"testing"

	"github.com/openxaa/xaa/internal/loadgen"
	"github.com/openxaa/xaa/internal/store"
)

// BenchmarkJWTBearer measures good redemptions over loopback HTTP with
// keep-alive against SQLite (synchronous=FULL): each one authenticates the
// client, verifies an ES256 ID-JAG, signs an ES256 access token and commits
// its replay row, ledger row and audit record before answering. Every
// request carries a distinct ID-JAG, minted before the timer starts.
// Reports req/s, p99 latency and CPU per redemption; 4 x GOMAXPROCS
// concurrent clients.
func BenchmarkJWTBearer(b *testing.B) {
	h := newHarness(b, nil)
	bodies := make([]string, b.N)
	for i := range bodies {
		bodies[i] = jb(h.good()).Encode()
	}
	// Many clients at once, as in production: SQLite's group commit
	// shares one fsync among the transactions waiting for it, so with only
	// GOMAXPROCS clients every request would wait for its own flush.
	loadgen.Run(b, func(i int) *http.Request {
		req, _ := http.NewRequest(http.MethodPost, h.hs.URL+"/token", strings.NewReader(bodies[i]))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(client1, client1Sec)
		return req
	}, &loadgen.Options{Parallelism: 4})
}

// BenchmarkJWTBearerStoredIssuer is BenchmarkJWTBearer with the ID-JAGs'
// issuer (IdP B, EdDSA) trusted through the store rather than the config:
// the issuer comes from the cached store view.
func BenchmarkJWTBearerStoredIssuer(b *testing.B) {
	h := storedHarness(b, newClock(testNow), nil)
	h.storeIssuer(store.TrustedIssuer{Issuer: idpB, JWKSURI: idpBJWKS})
	bodies := make([]string, b.N)
	for i := range bodies {
		bodies[i] = jb(h.goodB()).Encode()
	}
	loadgen.Run(b, func(i int) *http.Request {
		req, _ := http.NewRequest(http.MethodPost, h.hs.URL+"/token", strings.NewReader(bodies[i]))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(client1, client1Sec)
		return req
	}, &loadgen.Options{Parallelism: 4})
}
