package xaaclient_test

import (
	"testing"

	"github.com/openxaa/xaa/xaaclient"
)

// BenchmarkTokenCached is the per-request cost of a warm cache (what
// every MCP request pays in TokenSource): memory-only, and with the cache
// file (one stat per call to notice other processes' writes).
//
//	go test -run '^$' -bench BenchmarkTokenCached ./xaaclient/
func BenchmarkTokenCached(b *testing.B) {
	for _, mode := range []struct {
		name   string
		memory bool
	}{{"memory", true}, {"file", false}} {
		b.Run(mode.name, func(b *testing.B) {
			w := newWorld(b, nil)
			c := w.client(w.browser("alice"), func(o *xaaclient.Options) { o.MemoryOnly = mode.memory })
			ctx := b.Context()
			if _, err := c.Token(ctx, w.files, scopeRead); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Token(ctx, w.files, scopeRead); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
