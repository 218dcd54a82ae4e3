package sqlstore_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
)

// Each RecordOnce/InTx is one durable commit: on SQLite one WAL fsync
// (synchronous=FULL), on PostgreSQL one WAL flush.

func benchReplayInsert(b *testing.B, db *sqlstore.DB) {
	ctx := b.Context()
	exp := time.Now().Add(time.Hour)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if err := db.RecordOnce(ctx, store.ReplayEntry{Namespace: store.NamespaceIDJAG, Issuer: "https://idp.example",
			JTI: "jti-" + strconv.Itoa(i), ExpiresAt: exp}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReplayInsertSQLite(b *testing.B)   { benchReplayInsert(b, openSQLite(b)) }
func BenchmarkReplayInsertPostgres(b *testing.B) { benchReplayInsert(b, openPostgres(b)) }

// BenchmarkReplayInsertParallel measures concurrent callers, which is how a
// token endpoint under load uses the store.
func BenchmarkReplayInsertParallel(b *testing.B) {
	for _, bk := range backendsForBench() {
		b.Run(bk.name, func(b *testing.B) {
			db := bk.open(b)
			exp := time.Now().Add(time.Hour)
			var n atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := db.RecordOnce(b.Context(), store.ReplayEntry{Namespace: store.NamespaceIDJAG,
						JTI: "jti-" + strconv.FormatInt(n.Add(1), 10), ExpiresAt: exp}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// issueTx is the token endpoint's write: ledger row, replay row and audit
// record in one durable transaction.
func issueTx(ctx context.Context, db *sqlstore.DB, jti string) error {
	now := time.Now()
	return db.InTx(ctx, func(tx store.Tx) error {
		if err := tx.RecordToken(ctx, store.IssuedToken{JTI: jti, Issuer: "https://as.example",
			Kind: store.TokenKindAccessToken, ClientID: "agent", Subject: "alice", Audience: "https://mcp.example",
			Scope: "files.read", ParentJTI: "idjag-" + jti, IssuedAt: now, ExpiresAt: now.Add(5 * time.Minute)}); err != nil {
			return err
		}
		if err := tx.RecordOnce(ctx, store.ReplayEntry{Namespace: store.NamespaceIDJAG, Issuer: "https://idp.example",
			JTI: "idjag-" + jti, ExpiresAt: now.Add(10 * time.Minute)}); err != nil {
			return err
		}
		// Last, so the chain-head lock is held only until the commit.
		return tx.AppendAudit(ctx, &store.AuditEvent{Type: "token.issued", Actor: "agent", Subject: "alice",
			ClientID: "agent", Outcome: "allow", Rule: "conn-1", RequestID: jti,
			Data: map[string]string{"token_hmac": "3f9a0c", "scope": "files.read"}})
	})
}

func BenchmarkInTxTokenReplayAudit(b *testing.B) {
	for _, bk := range backendsForBench() {
		b.Run(bk.name, func(b *testing.B) {
			db := bk.open(b)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				if err := issueTx(b.Context(), db, "jti-"+strconv.Itoa(i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkInTxTokenReplayAuditParallel shows the cost of serializing audit
// appends on the chain head when many requests commit at once.
func BenchmarkInTxTokenReplayAuditParallel(b *testing.B) {
	for _, bk := range backendsForBench() {
		b.Run(bk.name, func(b *testing.B) {
			db := bk.open(b)
			var n atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := issueTx(b.Context(), db, "jti-"+strconv.FormatInt(n.Add(1), 10)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func backendsForBench() []struct {
	name string
	open func(testing.TB) *sqlstore.DB
} {
	return []struct {
		name string
		open func(testing.TB) *sqlstore.DB
	}{{"sqlite", openSQLite}, {"postgres", openPostgres}}
}

// BenchmarkAuditAppendStreams measures audited appends per second from 8
// goroutines, each append its own durable transaction, spread round-robin
// over 1, 2 or 4 streams. Appends to one stream serialize on its head
// row's lock, held until the commit's WAL flush; appends to different
// streams do not wait for each other (on PostgreSQL; SQLite has a single
// writer whatever the stream, and group-commits instead).
func BenchmarkAuditAppendStreams(b *testing.B) {
	const goroutines = 8
	for _, bk := range backendsForBench() {
		for _, streams := range []int{1, 2, 4} {
			b.Run(bk.name+"/streams="+strconv.Itoa(streams), func(b *testing.B) {
				db := bk.open(b)
				names := make([]string, streams)
				for i := range names {
					names[i] = "bench-" + strconv.Itoa(i)
				}
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ReportAllocs()
				b.ResetTimer()
				for range goroutines {
					wg.Go(func() {
						for {
							i := next.Add(1)
							if i > int64(b.N) {
								return
							}
							ev := store.AuditEvent{Stream: names[i%int64(streams)], Type: "gateway.tool_call", Actor: "agent",
								Subject: "alice", ClientID: "agent", Outcome: "allow", RequestID: strconv.FormatInt(i, 10),
								Data: map[string]string{"jti": "at-" + strconv.FormatInt(i, 10), "tool": "search"}}
							if err := db.InTx(b.Context(), func(tx store.Tx) error { return tx.AppendAudit(b.Context(), &ev) }); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
				if n, err := db.VerifyAuditChain(b.Context()); err != nil || n != int64(b.N) {
					b.Fatalf("VerifyAuditChain = %d, %v; want %d", n, err, b.N)
				}
			})
		}
	}
}
