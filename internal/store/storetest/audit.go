package storetest

import (
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/openxaa/xaa/internal/audit"
	"github.com/openxaa/xaa/internal/store"
)

func newEvent(typ, subject, clientID string) store.AuditEvent {
	return store.AuditEvent{
		Time:      now(),
		Type:      typ,
		Actor:     clientID,
		Subject:   subject,
		ClientID:  clientID,
		Outcome:   "allow",
		Rule:      "rule-1",
		Reason:    "connection approved",
		RequestID: newID("req"),
		Data:      map[string]string{"token_hmac": "3f9a", "scope": "files.read"},
	}
}

func isHexHash(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 32
}

// checkLinked verifies ev against its stored predecessor in its stream:
// the event with Seq-1 must exist (no gap) and its Hash must be
// ev.PrevHash.
func checkLinked(t *testing.T, a store.Audit, ev store.AuditEvent) {
	t.Helper()
	if ev.Seq == 1 {
		return
	}
	prev, err := a.ListAudit(t.Context(), store.AuditFilter{Stream: ev.Stream, AfterSeq: ev.Seq - 2, Limit: 1})
	noErr(t, "ListAudit predecessor", err)
	if len(prev) != 1 || prev[0].Seq != ev.Seq-1 {
		t.Fatalf("event %d: predecessor %d missing (got %v)", ev.Seq, ev.Seq-1, prev)
	}
	if prev[0].Hash != ev.PrevHash {
		t.Errorf("event %d: PrevHash %s, predecessor's Hash %s", ev.Seq, ev.PrevHash, prev[0].Hash)
	}
}

func verifyChain(t *testing.T, s any, atLeast int64) {
	t.Helper()
	v, ok := s.(ChainVerifier)
	if !ok {
		t.Log("store has no VerifyAuditChain; chain checked through ListAudit only")
		return
	}
	n, err := v.VerifyAuditChain(t.Context())
	noErr(t, "VerifyAuditChain", err)
	if n < atLeast {
		t.Errorf("VerifyAuditChain checked %d events, want at least %d", n, atLeast)
	}
}

func testAudit(t *testing.T, a store.Audit, s Store) {
	t.Run("AppendAssignsSeqAndChain", func(t *testing.T) {
		t.Parallel()
		subject := newID("user")
		var appended []store.AuditEvent
		for i, data := range []map[string]string{
			{"k": "v"},
			nil,
			{"quote\"": "it's", "": "empty key", "nl": "a\nb", "uni": "größe ✓", "html": "<a&b>"},
		} {
			ev := newEvent("token.issued", subject, newID("client"))
			ev.Data = data
			if i == 1 {
				ev.Time = time.Time{} // the store fills it in
			}
			noErr(t, "AppendAudit", a.AppendAudit(t.Context(), &ev))
			if ev.Seq <= 0 || (len(appended) > 0 && ev.Seq <= appended[len(appended)-1].Seq) {
				t.Fatalf("Seq %d does not increase", ev.Seq)
			}
			if ev.ID <= 0 || (len(appended) > 0 && ev.ID <= appended[len(appended)-1].ID) {
				t.Fatalf("ID %d does not increase", ev.ID)
			}
			if ev.Stream != audit.StreamOf(ev.Type) {
				t.Fatalf("Stream %q, want %q from the type", ev.Stream, audit.StreamOf(ev.Type))
			}
			if !isHexHash(ev.Hash) || !isHexHash(ev.PrevHash) || ev.Hash == ev.PrevHash {
				t.Fatalf("bad hashes: Hash %q PrevHash %q", ev.Hash, ev.PrevHash)
			}
			if ev.Time.IsZero() {
				t.Fatalf("Time not set")
			}
			appended = append(appended, ev)
		}
		got, err := a.ListAudit(t.Context(), store.AuditFilter{Subject: subject})
		noErr(t, "ListAudit", err)
		if diff := cmp.Diff(appended, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("ListAudit mismatch (-appended +listed):\n%s", diff)
		}
		for _, ev := range got {
			checkLinked(t, a, ev)
		}
		verifyChain(t, s, int64(len(appended)))
	})

	t.Run("ListFiltersAndLimit", func(t *testing.T) {
		t.Parallel()
		t1, t2 := newID("type.a"), newID("type.b")
		s1, s2 := newID("sub1"), newID("sub2")
		c1, c2 := newID("client1"), newID("client2")
		evs := []store.AuditEvent{
			newEvent(t1, s1, c1),
			newEvent(t1, s2, c1),
			newEvent(t2, s1, c2),
			newEvent(t1, s1, c1),
		}
		for i := range evs {
			noErr(t, "AppendAudit", a.AppendAudit(t.Context(), &evs[i]))
		}
		pick := func(idx ...int) []store.AuditEvent {
			var out []store.AuditEvent
			for _, i := range idx {
				out = append(out, evs[i])
			}
			return out
		}
		for _, tc := range []struct {
			name string
			f    store.AuditFilter
			want []store.AuditEvent
		}{
			{"type", store.AuditFilter{Type: t1}, pick(0, 1, 3)},
			{"subject", store.AuditFilter{Subject: s1}, pick(0, 2, 3)},
			{"client", store.AuditFilter{ClientID: c1}, pick(0, 1, 3)},
			{"type and subject", store.AuditFilter{Type: t1, Subject: s1}, pick(0, 3)},
			{"all three", store.AuditFilter{Type: t1, Subject: s1, ClientID: c1}, pick(0, 3)},
			{"no match", store.AuditFilter{Type: t2, ClientID: c1}, nil},
			{"limit", store.AuditFilter{Subject: s1, Limit: 2}, pick(0, 2)},
			{"after id", store.AuditFilter{Subject: s1, AfterID: evs[0].ID}, pick(2, 3)},
			{"after last", store.AuditFilter{Subject: s1, AfterID: evs[3].ID}, nil},
		} {
			got, err := a.ListAudit(t.Context(), tc.f)
			noErr(t, tc.name, err)
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s: ListAudit mismatch (-want +got):\n%s", tc.name, diff)
			}
		}
	})

	t.Run("StreamsAreSeparateChains", func(t *testing.T) {
		t.Parallel()
		// Fresh streams, so each starts at seq 1 however often the suite runs.
		sa, sb := newID("sa")[:24], newID("sb")[:24]
		subject := newID("user")
		var evs []store.AuditEvent
		for _, stream := range []string{sa, sb, sa, sa, sb} {
			ev := newEvent("x.stream", subject, "c")
			ev.Stream = stream
			noErr(t, "AppendAudit", a.AppendAudit(t.Context(), &ev))
			evs = append(evs, ev)
		}
		for i, want := range []struct {
			seq  int64
			prev int // index of the predecessor, -1 for genesis
		}{{1, -1}, {1, -1}, {2, 0}, {3, 2}, {2, 1}} {
			ev := evs[i]
			wantPrev := audit.GenesisHash
			if want.prev >= 0 {
				wantPrev = evs[want.prev].Hash
			}
			if ev.Seq != want.seq || ev.PrevHash != wantPrev {
				t.Errorf("event %d in %s: seq %d prev %s, want seq %d prev %s", i, ev.Stream, ev.Seq, ev.PrevHash, want.seq, wantPrev)
			}
		}
		got, err := a.ListAudit(t.Context(), store.AuditFilter{Stream: sa, AfterSeq: 1})
		noErr(t, "ListAudit", err)
		if diff := cmp.Diff([]store.AuditEvent{evs[2], evs[3]}, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("ListAudit(stream after seq 1) (-want +got):\n%s", diff)
		}
		bad := newEvent("x.stream", subject, "c")
		bad.Stream = audit.StreamLegacy
		if err := a.AppendAudit(t.Context(), &bad); err == nil || bad.Seq != 0 {
			t.Errorf("append to the legacy stream: %v, seq %d; want refused", err, bad.Seq)
		}
	})

	t.Run("ListByOutcomeTokenAndTime", func(t *testing.T) {
		t.Parallel()
		subject := newID("user")
		jti, idjag := newID("jti"), newID("idjag")
		base := now().Add(-time.Hour)
		mk := func(outcome string, data map[string]string, at time.Duration) store.AuditEvent {
			ev := newEvent("accesstoken.issued", subject, "c")
			ev.Outcome, ev.Data, ev.Time = outcome, data, base.Add(at)
			noErr(t, "AppendAudit", a.AppendAudit(t.Context(), &ev))
			return ev
		}
		e0 := mk("allow", map[string]string{"jti": jti, "idjag_jti": idjag}, 0)
		e1 := mk("deny", map[string]string{"idjag_jti": idjag}, time.Minute)
		e2 := mk("allow", map[string]string{"jti": newID("jti")}, 2*time.Minute)
		for _, tc := range []struct {
			name string
			f    store.AuditFilter
			want []store.AuditEvent
		}{
			{"outcome", store.AuditFilter{Subject: subject, Outcome: "deny"}, []store.AuditEvent{e1}},
			{"jti", store.AuditFilter{JTI: jti}, []store.AuditEvent{e0}},
			{"parent jti", store.AuditFilter{ParentJTI: idjag}, []store.AuditEvent{e0, e1}},
			{"jti is not parent", store.AuditFilter{ParentJTI: jti}, nil},
			{"since", store.AuditFilter{Subject: subject, Since: base.Add(time.Minute)}, []store.AuditEvent{e1, e2}},
			{"until", store.AuditFilter{Subject: subject, Until: base.Add(time.Minute)}, []store.AuditEvent{e0}},
			{"window", store.AuditFilter{Subject: subject, Since: base.Add(time.Second), Until: base.Add(2 * time.Minute)}, []store.AuditEvent{e1}},
		} {
			got, err := a.ListAudit(t.Context(), tc.f)
			noErr(t, tc.name, err)
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s: ListAudit mismatch (-want +got):\n%s", tc.name, diff)
			}
		}
	})

	t.Run("FilterValuesAreBoundParameters", func(t *testing.T) {
		t.Parallel()
		// An event whose fields are themselves SQL-looking text round-trips
		// exactly; the same text without the unique suffix matches nothing.
		tricky := "x' OR 1=1 --" + newID("")
		ev := newEvent(tricky, tricky, tricky)
		noErr(t, "AppendAudit", a.AppendAudit(t.Context(), &ev))
		for _, v := range []string{
			"x' OR 1=1 --",
			"' OR ''='",
			`" OR ""="`,
			"%", "_", "*", `\`,
			"'; DROP TABLE audit_events; --",
			"') OR ('1'='1",
			"1 OR 1=1",
		} {
			for _, f := range []store.AuditFilter{{Subject: v}, {Type: v}, {ClientID: v}, {Outcome: v}, {JTI: v}, {ParentJTI: v},
				{Type: v, Subject: v, ClientID: v}} {
				got, err := a.ListAudit(t.Context(), f)
				noErr(t, "ListAudit", err)
				if len(got) != 0 {
					t.Errorf("ListAudit(%+v) returned %d events, want none", f, len(got))
				}
			}
		}
		for _, f := range []store.AuditFilter{{Subject: tricky}, {Type: tricky}, {ClientID: tricky}} {
			got, err := a.ListAudit(t.Context(), f)
			noErr(t, "ListAudit", err)
			if diff := cmp.Diff([]store.AuditEvent{ev}, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ListAudit(%+v) mismatch (-want +got):\n%s", f, diff)
			}
		}
	})

	t.Run("ConcurrentAppendsKeepChain", func(t *testing.T) {
		t.Parallel()
		const n = 32
		subject := newID("user")
		var wg sync.WaitGroup
		evs := make([]store.AuditEvent, n)
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				evs[i] = newEvent("token.issued", subject, newID("client"))
				errs[i] = a.AppendAudit(t.Context(), &evs[i])
			})
		}
		close(start)
		wg.Wait()
		seen := map[int64]bool{}
		for i, err := range errs {
			noErr(t, "AppendAudit", err)
			if seen[evs[i].Seq] {
				t.Fatalf("Seq %d assigned twice", evs[i].Seq)
			}
			seen[evs[i].Seq] = true
		}
		got, err := a.ListAudit(t.Context(), store.AuditFilter{Subject: subject})
		noErr(t, "ListAudit", err)
		if len(got) != n {
			t.Fatalf("ListAudit returned %d events, want %d", len(got), n)
		}
		for _, ev := range got {
			if !seen[ev.Seq] {
				t.Errorf("listed Seq %d was not returned by AppendAudit", ev.Seq)
			}
			checkLinked(t, a, ev)
		}
		verifyChain(t, s, n)
	})
}

// testAuditLimits checks the default and maximum page sizes.
func testAuditLimits(t *testing.T, s Store) {
	subject := newID("user")
	err := s.InTx(t.Context(), func(tx store.Tx) error {
		for range 1005 {
			ev := newEvent("bulk", subject, "c")
			if err := tx.AppendAudit(t.Context(), &ev); err != nil {
				return err
			}
		}
		return nil
	})
	noErr(t, "InTx bulk AppendAudit", err)
	for _, tc := range []struct {
		limit, want int
	}{
		{0, 100},
		{7, 7},
		{1000, 1000},
		{5000, 1000},
	} {
		got, err := s.ListAudit(t.Context(), store.AuditFilter{Subject: subject, Limit: tc.limit})
		noErr(t, "ListAudit", err)
		if len(got) != tc.want {
			t.Errorf("Limit %d: got %d events, want %d", tc.limit, len(got), tc.want)
		}
	}
	verifyChain(t, s, 1005)
}
