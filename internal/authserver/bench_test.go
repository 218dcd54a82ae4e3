package authserver

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
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
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	// Many clients at once, as in production: SQLite's group commit
	// shares one fsync among the transactions waiting for it, so with only
	// GOMAXPROCS clients every request would wait for its own flush.
	b.SetParallelism(4)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			body := bodies[next.Add(1)-1]
			req, _ := http.NewRequest(http.MethodPost, h.hs.URL+"/token", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(client1, client1Sec)
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			local = append(local, time.Since(t0))
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	b.StopTimer()
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		// CPU per redemption (server and load generator together), which
		// unlike req/s does not depend on what else the machine runs.
		b.ReportMetric(float64(cpu.Microseconds())/float64(len(lat)), "cpu-us/op")
	}
}

// processCPU is the user plus system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
