package audit

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// chain builds records as the store appends them: streams interleaved in
// the order given, IDs in insertion order, each stream its own chain.
func chain(streams ...string) []store.AuditEvent {
	heads := map[string]store.AuditHead{}
	var out []store.AuditEvent
	for i, s := range streams {
		h, ok := heads[s]
		if !ok {
			h = store.AuditHead{Stream: s, Hash: GenesisHash}
		}
		ev := store.AuditEvent{
			ID: int64(i + 1), Stream: s, Seq: h.Seq + 1, Time: testTime.Add(time.Duration(i) * time.Second),
			Type: "t." + s, Actor: "a", Outcome: "allow", Reason: fmt.Sprintf("record %d", i),
			Data: map[string]string{"jti": fmt.Sprintf("j%d", i)}, PrevHash: h.Hash,
		}
		ev.Hash = Hash(&ev)
		heads[s] = store.AuditHead{Stream: s, Seq: ev.Seq, Hash: ev.Hash}
		out = append(out, ev)
	}
	return out
}

func exportLines(t *testing.T, evs []store.AuditEvent) []string {
	t.Helper()
	var lines []string
	for i := range evs {
		b, err := MarshalRecord(NewRecord(&evs[i]))
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.TrimSuffix(string(b), "\n"))
	}
	return lines
}

func checkpointsAt(key ed25519.PrivateKey, evs []store.AuditEvent, ids ...int64) []Checkpoint {
	var cps []Checkpoint
	for _, e := range evs {
		for _, id := range ids {
			if e.ID == id {
				cps = append(cps, SignCheckpoint(key, store.AuditHead{Stream: e.Stream, Seq: e.Seq, Hash: e.Hash}, e.Time))
			}
		}
	}
	return cps
}

// TestVerifyExportDetectsTampering: the acceptance table on an export
// file, which a third party verifies with the file and the checkpoints
// alone. Records 1..8: idp is ids 1,3,4,6,8 (seq 1..5), gateway ids
// 2,5,7 (seq 1..3); checkpoints after id 4 and after id 8.
func TestVerifyExportDetectsTampering(t *testing.T) {
	t.Parallel()
	key := testKey(t)
	evs := chain("idp", "gateway", "idp", "idp", "gateway", "idp", "gateway", "idp")
	cps := checkpointsAt(key, evs, 4, 5, 8) // idp seq 3 and 5, gateway seq 2
	cps = append(cps, checkpointsAt(key, evs, 4)...)
	lines := exportLines(t, evs)
	edit := func(i int, from, to string) func([]string) []string {
		return func(l []string) []string {
			if !strings.Contains(l[i], from) {
				t.Fatalf("line %d has no %q", i, from)
			}
			l[i] = strings.Replace(l[i], from, to, 1)
			return l
		}
	}
	for _, tc := range []struct {
		name       string
		tamper     func([]string) []string
		opts       *VerifyOptions
		wantStream string
		wantSeq    int64
		wantID     int64
		wantReason string // "" means it verifies
	}{
		{name: "untouched", tamper: func(l []string) []string { return l }, opts: &VerifyOptions{Checkpoints: cps}},
		{name: "untouched, no checkpoints", tamper: func(l []string) []string { return l }},
		{name: "one byte changed", tamper: edit(2, "record 2", "record 3"), opts: &VerifyOptions{Checkpoints: cps},
			wantStream: "idp", wantSeq: 2, wantID: 3, wantReason: "hash does not match"},
		{name: "one byte changed in data", tamper: edit(4, `"j4"`, `"j5"`),
			wantStream: "gateway", wantSeq: 2, wantID: 5, wantReason: "hash does not match"},
		{name: "record removed", tamper: func(l []string) []string { return append(l[:2:2], l[3:]...) },
			wantStream: "idp", wantSeq: 2, wantID: 4, wantReason: "missing or out of order"},
		{name: "two records swapped", tamper: func(l []string) []string { l[2], l[3] = l[3], l[2]; return l },
			wantStream: "idp", wantSeq: 2, wantID: 4, wantReason: "missing or out of order"},
		{name: "record duplicated", tamper: func(l []string) []string { return append(l[:4:4], append([]string{l[3]}, l[4:]...)...) },
			wantStream: "idp", wantSeq: 4, wantID: 4, wantReason: "duplicated or out of order"},
		{name: "ids swapped", tamper: func(l []string) []string {
			l[2] = strings.Replace(l[2], `"id":3`, `"id":4`, 1)
			l[3] = strings.Replace(l[3], `"id":4`, `"id":3`, 1)
			return l
		}, wantStream: "idp", wantSeq: 3, wantID: 3, wantReason: "reordered"},
		{name: "tail truncated, no checkpoints", tamper: func(l []string) []string { return l[:7] }},
		{name: "tail truncated", tamper: func(l []string) []string { return l[:7] }, opts: &VerifyOptions{Checkpoints: cps},
			wantStream: "idp", wantSeq: 5, wantReason: "truncated tail"},
		{name: "stream removed", tamper: func(l []string) []string { return []string{l[0], l[2], l[3], l[5], l[7]} },
			opts: &VerifyOptions{Checkpoints: cps}, wantStream: "gateway", wantSeq: 1, wantReason: "truncated tail"},
		{name: "recipe downgraded", tamper: edit(0, `"v":2`, `"v":1`),
			wantStream: "idp", wantSeq: 1, wantID: 1, wantReason: "recipe"},
		{name: "first record dropped", tamper: func(l []string) []string { return l[1:] },
			wantStream: "idp", wantSeq: 1, wantID: 3, wantReason: "missing"},
		{name: "first records dropped, partial", tamper: func(l []string) []string { return l[2:] }, opts: &VerifyOptions{Partial: true, Checkpoints: cps}},
		{name: "partial, tail truncated", tamper: func(l []string) []string { return l[2:7] }, opts: &VerifyOptions{Partial: true, Checkpoints: cps},
			wantStream: "idp", wantSeq: 5, wantReason: "truncated tail"},
		{name: "one stream only", tamper: func(l []string) []string { return []string{l[1], l[4], l[6]} },
			opts: &VerifyOptions{Streams: []string{"gateway"}, Checkpoints: cps}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := tc.tamper(append([]string(nil), lines...))
			rep, err := VerifyExport(strings.NewReader(strings.Join(l, "\n")+"\n"), "export.jsonl", tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantReason == "" {
				if rep.Err() != nil {
					t.Fatalf("want it to verify: %v", rep.Err())
				}
				return
			}
			var got *ChainError
			for _, s := range rep.Streams {
				if s.Err != nil && got == nil {
					got = s.Err
				} else if s.Err != nil {
					t.Errorf("a second stream broke too: %v", s.Err)
				}
			}
			if got == nil || !errors.Is(rep.Err(), ErrChainBroken) {
				t.Fatalf("verified; want %s broken at seq %d", tc.wantStream, tc.wantSeq)
			}
			if got.Stream != tc.wantStream || got.Seq != tc.wantSeq || got.ID != tc.wantID || !strings.Contains(got.Reason, tc.wantReason) {
				t.Errorf("first bad record: %v\nwant %s seq %d id %d, reason containing %q", got, tc.wantStream, tc.wantSeq, tc.wantID, tc.wantReason)
			}
		})
	}
}

// TestVerifierRewrittenChain: a chain rewritten from seq 4 on, hashes and
// all, verifies by itself; the checkpoints bound where the rewrite began.
func TestVerifierRewrittenChain(t *testing.T) {
	t.Parallel()
	key := testKey(t)
	evs := chain("idp", "idp", "idp", "idp", "idp", "idp")
	cps := checkpointsAt(key, evs, 3, 6)
	forged := append([]store.AuditEvent(nil), evs...)
	for i := 3; i < len(forged); i++ {
		forged[i].Reason += " (forged)"
		forged[i].PrevHash = forged[i-1].Hash
		forged[i].Hash = Hash(&forged[i])
	}
	heads := []store.AuditHead{{Stream: "idp", Seq: 6, Hash: forged[5].Hash}}
	v := NewVerifier(nil)
	for i := range forged {
		v.Add(&forged[i])
	}
	if err := v.Finish(heads).Err(); err != nil {
		t.Fatalf("without checkpoints a consistent rewrite verifies, got %v", err)
	}
	v = NewVerifier(&VerifyOptions{Checkpoints: cps})
	for i := range forged {
		v.Add(&forged[i])
	}
	rep := v.Finish(heads)
	var ce *ChainError
	if !errors.As(rep.Err(), &ce) || ce.Seq != 4 || ce.ID != 4 || !strings.Contains(ce.Reason, "records 4 to 6 were rewritten") {
		t.Fatalf("Err = %v, want the rewrite bounded to seq 4..6 starting at id 4", rep.Err())
	}
	if sr := rep.Streams[0]; sr.Checkpoint == nil || sr.Checkpoint.Seq != 3 {
		t.Errorf("last matching checkpoint = %+v, want seq 3", sr.Checkpoint)
	}
	// Two checkpoints for one seq with different hashes: a fork.
	fork := SignCheckpoint(key, store.AuditHead{Stream: "idp", Seq: 2, Hash: strings.Repeat("e", 64)}, testTime)
	v = NewVerifier(&VerifyOptions{Checkpoints: append(checkpointsAt(key, evs, 2), fork)})
	for i := range evs {
		v.Add(&evs[i])
	}
	if err := v.Finish(nil).Err(); err == nil || !strings.Contains(err.Error(), "rewritten") {
		t.Errorf("forked checkpoints: %v", err)
	}
}

func TestVerifierHeads(t *testing.T) {
	t.Parallel()
	evs := chain("idp", "idp", "gateway")
	add := func(v *Verifier) *Verifier {
		for i := range evs {
			v.Add(&evs[i])
		}
		return v
	}
	good := []store.AuditHead{{Stream: "gateway", Seq: 1, Hash: evs[2].Hash}, {Stream: "idp", Seq: 2, Hash: evs[1].Hash}}
	if err := add(NewVerifier(nil)).Finish(good).Err(); err != nil {
		t.Fatalf("good heads: %v", err)
	}
	for _, tc := range []struct {
		name  string
		heads []store.AuditHead
		want  string
	}{
		{"head ahead", []store.AuditHead{good[0], {Stream: "idp", Seq: 3, Hash: evs[1].Hash}}, "removed from the end"},
		{"head behind", []store.AuditHead{good[0], {Stream: "idp", Seq: 1, Hash: evs[0].Hash}}, "moved back"},
		{"head hash", []store.AuditHead{good[0], {Stream: "idp", Seq: 2, Hash: evs[0].Hash}}, "head hash"},
		{"no head", good[:1], "no head row"},
		{"head without records", append(good, store.AuditHead{Stream: "admin", Seq: 1, Hash: GenesisHash}), "removed from the end"},
	} {
		if err := add(NewVerifier(nil)).Finish(tc.heads).Err(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestVerifyExportRejectsMalformedLine(t *testing.T) {
	t.Parallel()
	lines := exportLines(t, chain("idp", "idp"))
	_, err := VerifyExport(strings.NewReader(lines[0]+"\n{\"v\":2}\n"+lines[1]), "x.jsonl", nil)
	if err == nil || !strings.Contains(err.Error(), "x.jsonl:2:") || !errors.Is(err, ErrMalformed) {
		t.Errorf("err = %v, want a malformed line 2", err)
	}
}
