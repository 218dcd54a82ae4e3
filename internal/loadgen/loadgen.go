// Package loadgen drives an HTTP endpoint from a Go benchmark over
// loopback keep-alive connections and reports what the servers' targets are
// written in: requests per second, p99 latency and CPU per request.
package loadgen

import (
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Options tunes Run. A nil *Options means the defaults.
type Options struct {
	// Parallelism multiplies GOMAXPROCS into the number of concurrent
	// clients (testing.B.SetParallelism); 0 means 1. More clients than
	// cores matter where commits are shared (SQLite group commit).
	Parallelism int
	// WantStatus is the status every response must have; 0 means 200.
	WantStatus int
}

// Run sends b.N requests, request i built by next(i) before it is timed,
// from concurrent clients sharing one keep-alive transport, and reports
// req/s, p99-ms and cpu-us/op (server and load generator together, which
// unlike req/s does not depend on what else the machine runs).
func Run(b *testing.B, next func(i int) *http.Request, opts *Options) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.WantStatus == 0 {
		o.WantStatus = http.StatusOK
	}
	if o.Parallelism > 0 {
		b.SetParallelism(o.Parallelism)
	}
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var (
		n   atomic.Int64
		mu  sync.Mutex
		lat []time.Duration
	)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		defer func() {
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
		for pb.Next() {
			req := next(int(n.Add(1) - 1))
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			local = append(local, time.Since(t0))
			if resp.StatusCode != o.WantStatus {
				b.Errorf("status %d, want %d", resp.StatusCode, o.WantStatus)
				return
			}
		}
	})
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(len(lat)), "cpu-us/op")
	}
}
