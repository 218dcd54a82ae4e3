package sqlstore

import (
	"encoding/binary"
	"errors"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/openxaa/xaa/internal/store"
)

func goldenEvent() store.AuditEvent {
	return store.AuditEvent{
		Seq:       7,
		Time:      time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC),
		Type:      "token.issued",
		Actor:     "agent-1",
		Subject:   "alice",
		ClientID:  "agent-1",
		Outcome:   "allow",
		Rule:      "conn-42",
		Reason:    "connection approved",
		RequestID: "req-1",
		Data:      map[string]string{"scope": "files.read", "token_hmac": "3f9a"},
		PrevHash:  GenesisHash,
	}
}

// TestAuditHashGolden pins the canonical encoding: existing chains must keep
// verifying, so a change here needs a new tag, not a new golden value.
func TestAuditHashGolden(t *testing.T) {
	t.Parallel()
	ev := goldenEvent()
	const want = "0d785078122341118e504c9a0900f91370f15a8548330b592ea73ff5c15d8f71" // also computed independently in Python
	if got := AuditHash(&ev); got != want {
		t.Errorf("AuditHash = %s, want %s", got, want)
	}
	ev.Hash = "ignored"
	if got := AuditHash(&ev); got != want {
		t.Errorf("AuditHash depends on Hash: %s", got)
	}
}

func TestAuditHashUnambiguous(t *testing.T) {
	t.Parallel()
	base := goldenEvent()
	for _, tc := range []struct {
		name   string
		change func(e *store.AuditEvent)
	}{
		{"seq", func(e *store.AuditEvent) { e.Seq++ }},
		{"time", func(e *store.AuditEvent) { e.Time = e.Time.Add(time.Millisecond) }},
		{"prev hash", func(e *store.AuditEvent) { e.PrevHash = strings.Repeat("1", 64) }},
		{"shift between fields", func(e *store.AuditEvent) { e.Type, e.Actor = "token.issuedagent-", "1" }},
		{"shift subject/client", func(e *store.AuditEvent) { e.Subject, e.ClientID = "aliceagent-1", "" }},
		{"data key/value boundary", func(e *store.AuditEvent) { e.Data = map[string]string{"scopefiles.read": "", "token_hmac": "3f9a"} }},
		{"data value into key", func(e *store.AuditEvent) { e.Data = map[string]string{"scope": "files.readtoken_hmac3f9a"} }},
		{"data moved to reason", func(e *store.AuditEvent) { e.Data, e.Reason = nil, e.Reason+"scopefiles.readtoken_hmac3f9a" }},
		{"empty data entry", func(e *store.AuditEvent) { e.Data[""] = "" }},
		{"outcome", func(e *store.AuditEvent) { e.Outcome = "deny" }},
		{"rule", func(e *store.AuditEvent) { e.Rule = "" }},
		{"request id", func(e *store.AuditEvent) { e.RequestID = "req-2" }},
	} {
		ev := base
		ev.Data = maps.Clone(base.Data)
		tc.change(&ev)
		if AuditHash(&ev) == AuditHash(&base) {
			t.Errorf("%s: same hash as the unchanged event", tc.name)
		}
	}
	// Nil and empty data are the same event.
	a, b := base, base
	a.Data, b.Data = nil, map[string]string{}
	if AuditHash(&a) != AuditHash(&b) {
		t.Error("nil and empty Data hash differently")
	}
}

// decodeAuditEncoding inverts appendAuditEncoding. It exists to prove (by
// fuzzing) that the encoding is injective: every event decodes back to
// itself, so two different events cannot share an encoding.
func decodeAuditEncoding(b []byte) (store.AuditEvent, bool) {
	u64 := func() (uint64, bool) {
		if len(b) < 8 {
			return 0, false
		}
		v := binary.BigEndian.Uint64(b)
		b = b[8:]
		return v, true
	}
	str := func() (string, bool) {
		n, ok := u64()
		if !ok || uint64(len(b)) < n {
			return "", false
		}
		s := string(b[:n])
		b = b[n:]
		return s, true
	}
	var e store.AuditEvent
	if tag, ok := str(); !ok || tag != auditHashTag {
		return e, false
	}
	seq, ok1 := u64()
	ms, ok2 := u64()
	if !ok1 || !ok2 {
		return e, false
	}
	e.Seq, e.Time = int64(seq), time.UnixMilli(int64(ms)).UTC()
	for _, p := range []*string{&e.Type, &e.Actor, &e.Subject, &e.ClientID, &e.Outcome, &e.Rule, &e.Reason, &e.RequestID} {
		var ok bool
		if *p, ok = str(); !ok {
			return e, false
		}
	}
	n, ok := u64()
	if !ok {
		return e, false
	}
	for range n {
		k, ok1 := str()
		v, ok2 := str()
		if !ok1 || !ok2 {
			return e, false
		}
		if e.Data == nil {
			e.Data = map[string]string{}
		}
		e.Data[k] = v
	}
	var okp bool
	e.PrevHash, okp = str()
	return e, okp && len(b) == 0
}

func FuzzAuditEncoding(f *testing.F) {
	f.Add(int64(1), int64(0), "token.issued", "a", "b", "c", "allow", "r", "why", "req", "k", "v", "k2", "v2", GenesisHash)
	f.Add(int64(1<<62), int64(-1), "", "", "", "", "", "", "", "", "", "", "", "", "")
	f.Add(int64(2), int64(1746327721000), "ab", "c", "\x00\x00\x00", "\xff", "", "", "", "", "k", "", "", "k", "x")
	f.Fuzz(func(t *testing.T, seq, ms int64, typ, actor, subject, client, outcome, rule, reason, reqID, k1, v1, k2, v2, prev string) {
		e := store.AuditEvent{
			Seq: seq, Time: time.UnixMilli(ms).UTC(), Type: typ, Actor: actor, Subject: subject, ClientID: client,
			Outcome: outcome, Rule: rule, Reason: reason, RequestID: reqID,
			Data: map[string]string{k1: v1, k2: v2}, PrevHash: prev,
		}
		got, ok := decodeAuditEncoding(appendAuditEncoding(nil, &e))
		if !ok {
			t.Fatal("encoding does not decode")
		}
		if diff := cmp.Diff(e, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("decode(encode(e)) != e (-e +decoded):\n%s", diff)
		}
	})
}

// appendEvents appends n events and returns them.
func appendEvents(t *testing.T, db *DB, n int) []store.AuditEvent {
	t.Helper()
	var out []store.AuditEvent
	for i := range n {
		ev := goldenEvent()
		ev.Time = time.Time{}
		ev.Reason = strings.Repeat("x", i)
		if err := db.AppendAudit(t.Context(), &ev); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
		out = append(out, ev)
	}
	return out
}

func TestAuditAppendOnly(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			db := mustOpenMigrated(t, b.url(t))
			appendEvents(t, db, 2)
			stmts := []string{
				`UPDATE audit_events SET reason = 'edited' WHERE seq = 1`,
				`DELETE FROM audit_events WHERE seq = 2`,
				`DELETE FROM audit_events`,
			}
			if b.name == DialectPostgres {
				stmts = append(stmts, `TRUNCATE audit_events`)
			} else {
				stmts = append(stmts, `DELETE FROM audit_head`)
			}
			for _, q := range stmts {
				if _, err := db.write.ExecContext(t.Context(), q); err == nil || !strings.Contains(err.Error(), "must not be deleted") && !strings.Contains(err.Error(), "append-only") {
					t.Errorf("%s: err = %v, want the append-only trigger to refuse", q, err)
				}
			}
			if n, err := db.VerifyAuditChain(t.Context()); err != nil || n != 2 {
				t.Errorf("VerifyAuditChain = %d, %v; want 2, nil", n, err)
			}
		})
	}
}

func TestVerifyAuditChainDetectsTampering(t *testing.T) {
	t.Parallel()
	type tamper struct {
		name        string
		sql         string
		args        func(evs []store.AuditEvent) []any
		wantSeq     int64
		wantChecked int64
		wantReason  string
	}
	rehashed := func(evs []store.AuditEvent) []any {
		// A consistent edit of event 2 (its own hash recomputed) still
		// breaks the link from event 3.
		ev := evs[1]
		ev.Reason = "nothing to see"
		return []any{ev.Reason, AuditHash(&ev)}
	}
	for _, tc := range []tamper{
		{"edited reason", `UPDATE audit_events SET reason = 'nothing to see' WHERE seq = 2`, nil, 2, 1, "hash does not match"},
		{"edited data", `UPDATE audit_events SET data = '{"scope":"admin"}' WHERE seq = 1`, nil, 1, 0, "hash does not match"},
		{"edited time", `UPDATE audit_events SET time = time + 1 WHERE seq = 3`, nil, 3, 2, "hash does not match"},
		{"rehashed edit", `UPDATE audit_events SET reason = $1, hash = $2 WHERE seq = 2`, rehashed, 3, 2, "prev_hash"},
		{"deleted middle", `DELETE FROM audit_events WHERE seq = 2`, nil, 2, 1, "missing"},
		{"deleted tail", `DELETE FROM audit_events WHERE seq = 3`, nil, 3, 2, "chain head"},
		{"head moved back", `UPDATE audit_head SET seq = 2`, nil, 4, 3, "chain head"},
	} {
		for _, b := range backends() {
			t.Run(b.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				db := mustOpenMigrated(t, b.url(t))
				evs := appendEvents(t, db, 3)
				// Defeat the defence in depth, as an attacker with DDL rights could.
				drop := []string{`DROP TRIGGER audit_events_no_update`, `DROP TRIGGER audit_events_no_delete`}
				if b.name == DialectPostgres {
					drop = []string{`ALTER TABLE audit_events DISABLE TRIGGER USER`}
				}
				for _, q := range drop {
					if _, err := db.write.ExecContext(t.Context(), q); err != nil {
						t.Fatal(err)
					}
				}
				var args []any
				if tc.args != nil {
					args = tc.args(evs)
				}
				if _, err := db.write.ExecContext(t.Context(), tc.sql, args...); err != nil {
					t.Fatal(err)
				}
				n, err := db.VerifyAuditChain(t.Context())
				var ce *AuditChainError
				if !errors.As(err, &ce) || !errors.Is(err, ErrAuditChainBroken) {
					t.Fatalf("VerifyAuditChain = %v, want an *AuditChainError", err)
				}
				if ce.Seq != tc.wantSeq || n != tc.wantChecked || !strings.Contains(ce.Reason, tc.wantReason) {
					t.Errorf("VerifyAuditChain = %d, %v; want broken at seq %d (%q) after %d", n, err, tc.wantSeq, tc.wantReason, tc.wantChecked)
				}
			})
		}
	}
}

func TestListAuditQuery(t *testing.T) {
	t.Parallel()
	const cols = `SELECT ` + auditColumns + ` FROM audit_events WHERE seq > $1`
	evil := "x' OR 1=1 --"
	for _, tc := range []struct {
		f         store.AuditFilter
		wantWhere string
		wantArgs  []any
	}{
		{store.AuditFilter{}, "", []any{int64(0), int64(100)}},
		{store.AuditFilter{AfterSeq: -5}, "", []any{int64(0), int64(100)}},
		{store.AuditFilter{AfterSeq: 9, Subject: evil}, " AND subject = $2", []any{int64(9), evil, int64(100)}},
		{store.AuditFilter{Type: evil, ClientID: "c"}, " AND type = $2 AND client_id = $3", []any{int64(0), evil, "c", int64(100)}},
		{store.AuditFilter{Type: "t", Subject: "s", ClientID: "c"}, " AND type = $2 AND subject = $3 AND client_id = $4",
			[]any{int64(0), "t", "s", "c", int64(100)}},
	} {
		q, args := listAuditQuery(tc.f, 100)
		wantQ := cols + tc.wantWhere + " ORDER BY seq LIMIT $" + strconv.Itoa(len(tc.wantArgs))
		if q != wantQ {
			t.Errorf("query for %+v:\n got %s\nwant %s", tc.f, q, wantQ)
		}
		if diff := cmp.Diff(tc.wantArgs, args); diff != "" {
			t.Errorf("args for %+v (-want +got):\n%s", tc.f, diff)
		}
		if strings.Contains(q, "1=1") || strings.Contains(q, "'") {
			t.Errorf("query contains filter text: %s", q)
		}
	}
}
