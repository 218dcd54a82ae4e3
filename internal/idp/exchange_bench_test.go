package idp

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/loadgen"
)

// BenchmarkTokenExchange measures good exchanges over loopback HTTP with
// keep-alive against SQLite (synchronous=FULL): each one verifies the ID
// token, reads the directory, decides, signs, and commits its ledger row
// and audit record before answering. Reports req/s and p99 latency.
func BenchmarkTokenExchange(b *testing.B) {
	h := newHarness(b, nil)
	body := h.goodTE(h.idToken(idTokenOpts{exp: time.Hour})).Encode()
	loadgen.Run(b, func(int) *http.Request {
		req, _ := http.NewRequest(http.MethodPost, h.hs.URL+"/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(app1, app1Secret)
		return req
	}, nil)
}
