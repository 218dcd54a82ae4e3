package sqlstore

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/openxaa/xaa/internal/audit"
	"github.com/openxaa/xaa/internal/store"
)

func testEvent(typ string, i int) store.AuditEvent {
	return store.AuditEvent{
		Type:      typ,
		Actor:     "agent-1",
		Subject:   "alice",
		ClientID:  "agent-1",
		Outcome:   "allow",
		Rule:      "conn-42",
		Reason:    "connection approved " + strconv.Itoa(i),
		RequestID: "req-" + strconv.Itoa(i),
		Data:      map[string]string{"jti": "jti-" + typ + "-" + strconv.Itoa(i), "token_hmac": "3f9a"},
	}
}

// appendTypes appends one event of each type, in order, each in its own
// transaction, and returns them as stored.
func appendTypes(t *testing.T, db *DB, types ...string) []store.AuditEvent {
	t.Helper()
	var out []store.AuditEvent
	for i, typ := range types {
		ev := testEvent(typ, i)
		if err := db.AppendAudit(t.Context(), &ev); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
		out = append(out, ev)
	}
	return out
}

func TestAuditStreamsAreSeparateChains(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			db := mustOpenMigrated(t, b.url(t))
			evs := appendTypes(t, db, "idjag.issued", "gateway.tool_call", "idjag.denied", "accesstoken.issued", "gateway.tool_call")
			type pos struct {
				Stream   string
				Seq      int64
				Genesis  bool
				LinkedTo int // index of the predecessor, -1 for none
			}
			want := []pos{
				{audit.StreamIdP, 1, true, -1},
				{audit.StreamGateway, 1, true, -1},
				{audit.StreamIdP, 2, false, 0},
				{audit.StreamAuthServer, 1, true, -1},
				{audit.StreamGateway, 2, false, 1},
			}
			for i, ev := range evs {
				w := want[i]
				if ev.Stream != w.Stream || ev.Seq != w.Seq {
					t.Errorf("event %d (%s): stream %s seq %d, want %s seq %d", i, ev.Type, ev.Stream, ev.Seq, w.Stream, w.Seq)
				}
				if w.Genesis != (ev.PrevHash == audit.GenesisHash) || (w.LinkedTo >= 0 && ev.PrevHash != evs[w.LinkedTo].Hash) {
					t.Errorf("event %d: prev_hash %s does not link to its stream's predecessor", i, ev.PrevHash)
				}
				if ev.Hash != audit.Hash(&ev) {
					t.Errorf("event %d: hash is not the v2 recipe's", i)
				}
				if i > 0 && ev.ID <= evs[i-1].ID {
					t.Errorf("event %d: id %d not after %d", i, ev.ID, evs[i-1].ID)
				}
			}
			heads, err := db.AuditHeads(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			wantHeads := []store.AuditHead{
				{Stream: audit.StreamAuthServer, Seq: 1, Hash: evs[3].Hash},
				{Stream: audit.StreamGateway, Seq: 2, Hash: evs[4].Hash},
				{Stream: audit.StreamIdP, Seq: 2, Hash: evs[2].Hash},
			}
			if diff := cmp.Diff(wantHeads, heads); diff != "" {
				t.Errorf("AuditHeads (-want +got):\n%s", diff)
			}
			// An explicit stream wins over the type's.
			ev := testEvent("idjag.issued", 9)
			ev.Stream = "custom-1"
			if err := db.AppendAudit(t.Context(), &ev); err != nil || ev.Stream != "custom-1" || ev.Seq != 1 {
				t.Errorf("explicit stream: %v, stream %s seq %d", err, ev.Stream, ev.Seq)
			}
			got, err := db.ListAudit(t.Context(), store.AuditFilter{Stream: audit.StreamGateway, AfterSeq: 1})
			if err != nil || len(got) != 1 || got[0].ID != evs[4].ID {
				t.Errorf("ListAudit(gateway after seq 1) = %v, %v; want event 4", got, err)
			}
			if n, err := db.VerifyAuditChain(t.Context()); err != nil || n != 6 {
				t.Errorf("VerifyAuditChain = %d, %v; want 6, nil", n, err)
			}
		})
	}
}

func TestAuditRefusesBadStreams(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			db := mustOpenMigrated(t, b.url(t))
			for _, s := range []string{audit.StreamLegacy, "Upper", "1digit", "has space", "x' OR 1=1 --", strings.Repeat("a", 33), "é"} {
				ev := testEvent("idjag.issued", 0)
				ev.Stream = s
				err := db.AppendAudit(t.Context(), &ev)
				if !errors.Is(err, ErrInvalidInput) || !errors.Is(err, audit.ErrInvalidStream) {
					t.Errorf("stream %q: err = %v, want ErrInvalidInput and audit.ErrInvalidStream", s, err)
				}
				if ev.Seq != 0 || ev.ID != 0 {
					t.Errorf("stream %q: a refused append set seq %d id %d", s, ev.Seq, ev.ID)
				}
			}
			// A value refused after the stream is known leaves no head behind.
			ev := testEvent("gateway.tool_call", 0)
			ev.Reason = "bad \xff"
			if err := db.AppendAudit(t.Context(), &ev); !errors.Is(err, ErrInvalidInput) {
				t.Errorf("invalid UTF-8: err = %v", err)
			}
			if heads, err := db.AuditHeads(t.Context()); err != nil || len(heads) != 0 {
				t.Errorf("AuditHeads after refusals = %v, %v; want none", heads, err)
			}
			if _, err := db.ListAudit(t.Context(), store.AuditFilter{AfterSeq: 3}); !errors.Is(err, ErrInvalidInput) {
				t.Errorf("AfterSeq without Stream: err = %v, want ErrInvalidInput", err)
			}
		})
	}
}

// A refused append inside a transaction that goes on to commit must not
// leave the chain broken, and an append rolled back with its transaction
// leaves nothing.
func TestAuditAppendInTransaction(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			db := mustOpenMigrated(t, b.url(t))
			boom := errors.New("boom")
			err := db.InTx(t.Context(), func(tx store.Tx) error {
				ev := testEvent("idjag.issued", 1)
				if err := tx.AppendAudit(t.Context(), &ev); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("InTx = %v", err)
			}
			err = db.InTx(t.Context(), func(tx store.Tx) error {
				bad := testEvent("idjag.issued", 2)
				bad.Data = map[string]string{"k": "\x00"}
				if err := tx.AppendAudit(t.Context(), &bad); !errors.Is(err, ErrInvalidInput) {
					t.Errorf("NUL data: %v", err)
				}
				ev := testEvent("idjag.issued", 3)
				return tx.AppendAudit(t.Context(), &ev)
			})
			if err != nil {
				t.Fatal(err)
			}
			evs, err := db.ListAudit(t.Context(), store.AuditFilter{})
			if err != nil || len(evs) != 1 || evs[0].Seq != 1 || evs[0].RequestID != "req-3" {
				t.Fatalf("ListAudit = %+v, %v; want only req-3 at seq 1", evs, err)
			}
			if n, err := db.VerifyAuditChain(t.Context()); err != nil || n != 1 {
				t.Errorf("VerifyAuditChain = %d, %v", n, err)
			}
		})
	}
}

func TestAuditAppendOnly(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			db := mustOpenMigrated(t, b.url(t))
			appendTypes(t, db, "idjag.issued", "idjag.issued")
			stmts := []string{
				`UPDATE audit_events SET reason = 'edited' WHERE seq = 1`,
				`DELETE FROM audit_events WHERE seq = 2`,
				`DELETE FROM audit_events`,
				`DELETE FROM audit_heads`,
			}
			if b.name == DialectPostgres {
				stmts = append(stmts, `TRUNCATE audit_events`, `TRUNCATE audit_heads`)
			}
			for _, q := range stmts {
				if _, err := db.write.ExecContext(t.Context(), q); err == nil || !strings.Contains(err.Error(), "must not be deleted") && !strings.Contains(err.Error(), "append-only") {
					t.Errorf("%s: err = %v, want a trigger to refuse", q, err)
				}
			}
			if n, err := db.VerifyAuditChain(t.Context()); err != nil || n != 2 {
				t.Errorf("VerifyAuditChain = %d, %v; want 2, nil", n, err)
			}
		})
	}
}

// disableAuditTriggers defeats the defence in depth, as an attacker with
// DDL rights could.
func disableAuditTriggers(t *testing.T, db *DB) {
	t.Helper()
	stmts := []string{`DROP TRIGGER audit_events_no_update`, `DROP TRIGGER audit_events_no_delete`, `DROP TRIGGER audit_heads_no_delete`}
	if db.d.name == DialectPostgres {
		stmts = []string{`ALTER TABLE audit_events DISABLE TRIGGER USER`, `ALTER TABLE audit_heads DISABLE TRIGGER USER`}
	}
	for _, q := range stmts {
		if _, err := db.write.ExecContext(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
}

func newCheckpointKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func signHeads(t *testing.T, db *DB, key ed25519.PrivateKey) []audit.Checkpoint {
	t.Helper()
	heads, err := db.AuditHeads(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var cps []audit.Checkpoint
	for _, h := range heads {
		cps = append(cps, audit.SignCheckpoint(key, h, time.Now()))
	}
	return cps
}

// rehash rewrites the idp records from seq on (after edit changed the one
// at seq), recomputing every later hash and the head, as an attacker with
// full write access would to hide the edit from the chain alone.
func rehash(t *testing.T, db *DB, idp []store.AuditEvent, seq int64, edit func(*store.AuditEvent)) {
	t.Helper()
	prev := idp[seq-2].Hash
	for i := seq - 1; i < int64(len(idp)); i++ {
		ev := idp[i]
		if i == seq-1 {
			edit(&ev)
		}
		ev.PrevHash = prev
		ev.Hash = audit.Hash(&ev)
		if _, err := db.write.ExecContext(t.Context(), `UPDATE audit_events SET reason = $1, prev_hash = $2, hash = $3 WHERE id = $4`,
			ev.Reason, ev.PrevHash, ev.Hash, ev.ID); err != nil {
			t.Fatal(err)
		}
		prev = ev.Hash
	}
	if _, err := db.write.ExecContext(t.Context(), `UPDATE audit_heads SET hash = $1 WHERE stream = 'idp'`, prev); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyAuditDetectsTampering is the acceptance table: each kind of
// tampering makes verification fail and name the first bad record
// (stream, seq, id), on both databases; the gateway stream, untouched,
// still verifies; and an untouched log verifies.
func TestVerifyAuditDetectsTampering(t *testing.T) {
	t.Parallel()
	type setup struct {
		t    *testing.T
		db   *DB
		idp  []store.AuditEvent // seq 1..4
		cps  []audit.Checkpoint // after idp seq 2, and after everything
		exec func(q string, args ...any)
	}
	for _, tc := range []struct {
		name        string
		tamper      func(s setup)
		checkpoints bool
		wantSeq     int64
		wantID      func(s setup) int64
		wantReason  string // "" means it verifies
	}{
		{name: "untouched", tamper: func(setup) {}, checkpoints: true},
		{name: "untouched without checkpoints", tamper: func(setup) {}},
		{
			name: "one byte changed in reason",
			tamper: func(s setup) {
				s.exec(`UPDATE audit_events SET reason = 'donnection approved 2' WHERE id = $1`, s.idp[1].ID)
			},
			wantSeq: 2, wantID: func(s setup) int64 { return s.idp[1].ID }, wantReason: "hash does not match",
		},
		{
			name: "one byte changed in data",
			tamper: func(s setup) {
				s.exec(`UPDATE audit_events SET data = replace(data, '3f9a', '3f9b') WHERE id = $1`, s.idp[0].ID)
			},
			wantSeq: 1, wantID: func(s setup) int64 { return s.idp[0].ID }, wantReason: "hash does not match",
		},
		{
			name:    "one byte changed in time",
			tamper:  func(s setup) { s.exec(`UPDATE audit_events SET time = time + 1 WHERE id = $1`, s.idp[3].ID) },
			wantSeq: 4, wantID: func(s setup) int64 { return s.idp[3].ID }, wantReason: "hash does not match",
		},
		{
			name:    "record removed",
			tamper:  func(s setup) { s.exec(`DELETE FROM audit_events WHERE id = $1`, s.idp[1].ID) },
			wantSeq: 2, wantID: func(s setup) int64 { return s.idp[2].ID }, wantReason: "missing",
		},
		{
			name: "two records swapped",
			tamper: func(s setup) {
				s.exec(`UPDATE audit_events SET seq = 99 WHERE id = $1`, s.idp[1].ID)
				s.exec(`UPDATE audit_events SET seq = 2 WHERE id = $1`, s.idp[2].ID)
				s.exec(`UPDATE audit_events SET seq = 3 WHERE id = $1`, s.idp[1].ID)
			},
			wantSeq: 2, wantID: func(s setup) int64 { return s.idp[2].ID }, wantReason: "hash does not match",
		},
		{
			name: "two records' ids swapped",
			tamper: func(s setup) {
				s.exec(`UPDATE audit_events SET id = 1000000 WHERE id = $1`, s.idp[1].ID)
				s.exec(`UPDATE audit_events SET id = $1 WHERE id = $2`, s.idp[1].ID, s.idp[2].ID)
				s.exec(`UPDATE audit_events SET id = $1 WHERE id = 1000000`, s.idp[2].ID)
			},
			wantSeq: 3, wantID: func(s setup) int64 { return s.idp[1].ID }, wantReason: "reordered",
		},
		{
			name: "edit rehashed to the head",
			tamper: func(s setup) {
				rehash(s.t, s.db, s.idp, 3, func(e *store.AuditEvent) { e.Reason = "nothing to see" })
			},
			// Without checkpoints the rewrite is self-consistent.
		},
		{
			name: "edit rehashed to the head, with checkpoints",
			tamper: func(s setup) {
				rehash(s.t, s.db, s.idp, 3, func(e *store.AuditEvent) { e.Reason = "nothing to see" })
			},
			checkpoints: true,
			wantSeq:     3, wantID: func(s setup) int64 { return s.idp[2].ID }, wantReason: "rewritten",
		},
		{
			name:    "tail removed, head left",
			tamper:  func(s setup) { s.exec(`DELETE FROM audit_events WHERE id = $1`, s.idp[3].ID) },
			wantSeq: 4, wantID: func(setup) int64 { return 0 }, wantReason: "removed from the end",
		},
		{
			name: "tail truncated with the head moved back",
			tamper: func(s setup) {
				s.exec(`DELETE FROM audit_events WHERE id = $1`, s.idp[3].ID)
				s.exec(`UPDATE audit_heads SET seq = 3, hash = $1 WHERE stream = 'idp'`, s.idp[2].Hash)
			},
			// Without checkpoints a clean truncation is invisible...
		},
		{
			name: "tail truncated with the head moved back, with checkpoints",
			tamper: func(s setup) {
				s.exec(`DELETE FROM audit_events WHERE id = $1`, s.idp[3].ID)
				s.exec(`UPDATE audit_heads SET seq = 3, hash = $1 WHERE stream = 'idp'`, s.idp[2].Hash)
			},
			checkpoints: true, // ... the last checkpoint shows it.
			wantSeq:     4, wantID: func(setup) int64 { return 0 }, wantReason: "truncated tail",
		},
		{
			name: "whole stream removed, with checkpoints",
			tamper: func(s setup) {
				s.exec(`DELETE FROM audit_events WHERE stream = 'idp'`)
				s.exec(`DELETE FROM audit_heads WHERE stream = 'idp'`)
			},
			checkpoints: true,
			wantSeq:     1, wantID: func(setup) int64 { return 0 }, wantReason: "truncated tail",
		},
		{
			name:    "index column changed",
			tamper:  func(s setup) { s.exec(`UPDATE audit_events SET jti = 'someone-else' WHERE id = $1`, s.idp[1].ID) },
			wantSeq: 2, wantID: func(s setup) int64 { return s.idp[1].ID }, wantReason: "indexed jti",
		},
		{
			name:   "record moved to another stream",
			tamper: func(s setup) { s.exec(`UPDATE audit_events SET stream = 'idq' WHERE id = $1`, s.idp[3].ID) },
			// idp loses its tail (its head still says 4).
			wantSeq: 4, wantID: func(setup) int64 { return 0 }, wantReason: "removed from the end",
		},
	} {
		for _, b := range backends() {
			t.Run(b.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				db := mustOpenMigrated(t, b.url(t))
				key := newCheckpointKey(t)
				s := setup{t: t, db: db}
				s.exec = func(q string, args ...any) {
					if _, err := db.write.ExecContext(t.Context(), q, args...); err != nil {
						t.Fatalf("%s: %v", q, err)
					}
				}
				evs := appendTypes(t, db, "idjag.issued", "gateway.tool_call", "idjag.issued")
				s.cps = signHeads(t, db, key)
				evs = append(evs, appendTypes(t, db, "gateway.tool_call", "accesstoken.issued", "idjag.denied", "idjag.issued")...)
				s.cps = append(s.cps, signHeads(t, db, key)...)
				for _, ev := range evs {
					if ev.Stream == audit.StreamIdP {
						s.idp = append(s.idp, ev)
					}
				}
				if len(s.idp) != 4 {
					t.Fatalf("setup: %d idp records", len(s.idp))
				}
				disableAuditTriggers(t, db)
				tc.tamper(s)
				var opts *audit.VerifyOptions
				if tc.checkpoints {
					opts = &audit.VerifyOptions{Checkpoints: s.cps}
				}
				rep, err := db.VerifyAudit(t.Context(), opts)
				if err != nil {
					t.Fatalf("VerifyAudit: %v", err)
				}
				byStream := map[string]audit.StreamReport{}
				for _, sr := range rep.Streams {
					byStream[sr.Stream] = sr
				}
				for _, other := range []string{audit.StreamGateway, audit.StreamAuthServer} {
					if sr := byStream[other]; sr.Err != nil || sr.Records == 0 {
						t.Errorf("untouched stream %s: %+v", other, sr)
					}
				}
				got := byStream[audit.StreamIdP].Err
				if tc.wantReason == "" {
					if rep.Err() != nil {
						t.Fatalf("VerifyAudit: %v, want it to verify", rep.Err())
					}
					return
				}
				var ce *AuditChainError
				if !errors.As(rep.Err(), &ce) || !errors.Is(rep.Err(), ErrAuditChainBroken) || got == nil {
					t.Fatalf("VerifyAudit: %v, want the idp stream broken", rep.Err())
				}
				want := &audit.ChainError{Stream: audit.StreamIdP, Seq: tc.wantSeq, ID: tc.wantID(s)}
				if got.Stream != want.Stream || got.Seq != want.Seq || got.ID != want.ID || !strings.Contains(got.Reason, tc.wantReason) {
					t.Errorf("first bad record: %v\nwant stream %s seq %d id %d, reason containing %q", got, want.Stream, want.Seq, want.ID, tc.wantReason)
				}
			})
		}
	}
}

func TestListAuditQuery(t *testing.T) {
	t.Parallel()
	const cols = `SELECT ` + auditColumns + ` FROM audit_events WHERE id > $1`
	evil := "x' OR 1=1 --"
	since := time.UnixMilli(1700000000000)
	for _, tc := range []struct {
		f         store.AuditFilter
		wantWhere string
		wantArgs  []any
	}{
		{store.AuditFilter{}, "", []any{int64(0), int64(100)}},
		{store.AuditFilter{AfterID: -5}, "", []any{int64(0), int64(100)}},
		{store.AuditFilter{AfterID: 9, Subject: evil}, " AND subject = $2", []any{int64(9), evil, int64(100)}},
		{store.AuditFilter{Type: evil, ClientID: "c"}, " AND type = $2 AND client_id = $3", []any{int64(0), evil, "c", int64(100)}},
		{store.AuditFilter{Stream: evil, AfterSeq: 4, Outcome: evil}, " AND stream = $2 AND seq > $3 AND outcome = $4",
			[]any{int64(0), evil, int64(4), evil, int64(100)}},
		{store.AuditFilter{JTI: evil, ParentJTI: evil}, " AND jti <> '' AND jti = $2 AND parent_jti <> '' AND parent_jti = $3",
			[]any{int64(0), evil, evil, int64(100)}},
		{store.AuditFilter{Since: since, Until: since.Add(time.Second)}, " AND time >= $2 AND time < $3",
			[]any{int64(0), int64(1700000000000), int64(1700000001000), int64(100)}},
	} {
		q, args, err := listAuditQuery(tc.f, 100)
		if err != nil {
			t.Fatal(err)
		}
		wantQ := cols + tc.wantWhere + " ORDER BY id LIMIT $" + strconv.Itoa(len(tc.wantArgs))
		if q != wantQ {
			t.Errorf("query for %+v:\n got %s\nwant %s", tc.f, q, wantQ)
		}
		if diff := cmp.Diff(tc.wantArgs, args); diff != "" {
			t.Errorf("args for %+v (-want +got):\n%s", tc.f, diff)
		}
		if strings.Contains(q, "1=1") {
			t.Errorf("query contains filter text: %s", q)
		}
	}
}

// migrateTo applies the migrations up to and including version.
func migrateTo(t *testing.T, db *DB, version int64) {
	t.Helper()
	ms, err := loadMigrations(db.d.migrationsDir)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.write.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), `CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.version > version {
			break
		}
		if _, err := applyMigration(t.Context(), conn, m); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
	}
}

// TestMigrateKeepsLegacyChain: records written under the single chain
// (schema 0006) become the closed legacy stream with their seq, prev_hash
// and hash unchanged, verify, stay findable by jti, and new records start
// their own streams.
func TestMigrateKeepsLegacyChain(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			db := mustOpen(t, b.url(t))
			migrateTo(t, db, 6)
			// Written as the single-chain store did: recipe v1.
			var legacy []store.AuditEvent
			prev := audit.GenesisHash
			for i, typ := range []string{"token.issued", "accesstoken.issued", "gateway.tool_call"} {
				ev := testEvent(typ, i)
				ev.Stream, ev.ID, ev.Seq, ev.PrevHash = audit.StreamLegacy, int64(i+1), int64(i+1), prev
				ev.Time = time.UnixMilli(1746327721000 + int64(i)).UTC()
				if i == 1 {
					ev.Data["idjag_jti"] = "idjag-7"
				}
				ev.Hash = audit.Hash(&ev)
				prev = ev.Hash
				data := `{"jti":"` + ev.Data["jti"] + `","token_hmac":"3f9a"` + map[bool]string{true: `,"idjag_jti":"idjag-7"`}[i == 1] + `}`
				if _, err := db.write.ExecContext(t.Context(), `INSERT INTO audit_events (seq, time, type, actor, subject, client_id,
    outcome, rule, reason, request_id, data, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
					ev.Seq, ms(ev.Time), ev.Type, ev.Actor, ev.Subject, ev.ClientID, ev.Outcome, ev.Rule, ev.Reason, ev.RequestID,
					data, ev.PrevHash, ev.Hash); err != nil {
					t.Fatal(err)
				}
				legacy = append(legacy, ev)
			}
			if _, err := db.write.ExecContext(t.Context(), `UPDATE audit_head SET seq = 3, hash = $1 WHERE id = 1`, prev); err != nil {
				t.Fatal(err)
			}
			if applied, err := db.Migrate(t.Context()); err != nil || len(applied) == 0 || applied[0] != "0007_audit_streams" {
				t.Fatalf("Migrate = %v, %v", applied, err)
			}
			got, err := db.ListAudit(t.Context(), store.AuditFilter{Stream: audit.StreamLegacy})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(legacy, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("legacy records changed (-before +after):\n%s", diff)
			}
			if byJTI, err := db.ListAudit(t.Context(), store.AuditFilter{ParentJTI: "idjag-7"}); err != nil || len(byJTI) != 1 || byJTI[0].ID != 2 {
				t.Errorf("legacy record by idjag_jti: %v, %v", byJTI, err)
			}
			ev := testEvent("idjag.issued", 5)
			if err := db.AppendAudit(t.Context(), &ev); err != nil || ev.Stream != audit.StreamIdP || ev.Seq != 1 || ev.ID != 4 || ev.PrevHash != audit.GenesisHash {
				t.Errorf("first new append: %v, %+v", err, ev)
			}
			rep, err := db.VerifyAudit(t.Context(), nil)
			if err != nil || rep.Err() != nil || rep.Records() != 4 {
				t.Fatalf("VerifyAudit = %+v, %v / %v", rep, err, rep.Err())
			}
			heads, err := db.AuditHeads(t.Context())
			if err != nil || len(heads) != 2 || heads[1] != (store.AuditHead{Stream: audit.StreamLegacy, Seq: 3, Hash: prev}) {
				t.Errorf("AuditHeads = %+v, %v", heads, err)
			}
		})
	}
}

// TestScanAuditSince: an export from a time on holds each stream from its
// first record at or after that time (or its last record) to its end,
// contiguous, so it verifies as a partial export.
func TestScanAuditSince(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			db := mustOpenMigrated(t, b.url(t))
			base := time.UnixMilli(1746327721000).UTC()
			times := []time.Duration{0, 0, 10, 20, 5, 30} // idp, gw, idp, gw, idp (earlier time, later seq), idp
			types := []string{"idjag.issued", "gateway.tool_call", "idjag.issued", "gateway.tool_call", "idjag.issued", "idjag.issued"}
			for i, typ := range types {
				ev := testEvent(typ, i)
				ev.Time = base.Add(times[i] * time.Second)
				if err := db.AppendAudit(t.Context(), &ev); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			err := db.ScanAudit(t.Context(), store.AuditFilter{Since: base.Add(10 * time.Second)}, func(e *store.AuditEvent) error {
				got = append(got, e.Stream+"/"+strconv.FormatInt(e.Seq, 10))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			// idp from seq 2 (the first at or after +10s) on, including seq 3
			// whose time is earlier; gateway from seq 2.
			if diff := cmp.Diff([]string{"idp/2", "gateway/2", "idp/3", "idp/4"}, got); diff != "" {
				t.Errorf("ScanAudit since (-want +got):\n%s", diff)
			}
			// After every record: each stream's last record, so every stream
			// is represented.
			got = nil
			if err := db.ScanAudit(t.Context(), store.AuditFilter{Since: base.Add(time.Hour)}, func(e *store.AuditEvent) error {
				got = append(got, e.Stream+"/"+strconv.FormatInt(e.Seq, 10))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"gateway/2", "idp/4"}, got); diff != "" {
				t.Errorf("ScanAudit after the last record (-want +got):\n%s", diff)
			}
			got = nil
			if err := db.ScanAudit(t.Context(), store.AuditFilter{Since: base.Add(25 * time.Second), Stream: audit.StreamGateway}, func(e *store.AuditEvent) error {
				got = append(got, e.Stream+"/"+strconv.FormatInt(e.Seq, 10))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"gateway/2"}, got); diff != "" {
				t.Errorf("ScanAudit of one stream (-want +got):\n%s", diff)
			}
			stop := errors.New("stop")
			n := 0
			if err := db.ScanAudit(t.Context(), store.AuditFilter{Stream: audit.StreamGateway}, func(*store.AuditEvent) error {
				n++
				return stop
			}); !errors.Is(err, stop) || n != 1 {
				t.Errorf("ScanAudit stopping: %v after %d", err, n)
			}
		})
	}
}

// TestVerifyAuditCancelled: a cancelled verification is an error, never
// a report that could be read as "verified".
func TestVerifyAuditCancelled(t *testing.T) {
	t.Parallel()
	db := mustOpenMigrated(t, backends()[0].url(t))
	appendTypes(t, db, "idjag.issued")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if rep, err := db.VerifyAudit(ctx, nil); err == nil || !errors.Is(err, context.Canceled) && !errors.Is(err, sql.ErrTxDone) {
		t.Errorf("VerifyAudit(cancelled) = %+v, %v; want context.Canceled", rep, err)
	}
}
