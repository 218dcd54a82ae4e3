package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/openxaa/xaa/internal/store"
)

func goldenEvent(stream string) store.AuditEvent {
	return store.AuditEvent{
		ID:        123, // not hashed
		Stream:    stream,
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

// TestHashGolden pins both recipes: existing chains must keep verifying,
// so a change here needs a new tag, not a new golden value. The v1 value
// is the single-chain store's, unchanged; both were also computed
// independently in Python.
func TestHashGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		stream, want string
	}{
		{StreamLegacy, "0d785078122341118e504c9a0900f91370f15a8548330b592ea73ff5c15d8f71"},
		{StreamIdP, "d1aab4a371ab7af465536cac8df42b3cf903b6bcfbf061cb537cf57b488161d8"},
	} {
		ev := goldenEvent(tc.stream)
		if got := Hash(&ev); got != tc.want {
			t.Errorf("%s: Hash = %s, want %s", tc.stream, got, tc.want)
		}
		ev.Hash, ev.ID = "ignored", 9
		if got := Hash(&ev); got != tc.want {
			t.Errorf("%s: Hash depends on Hash or ID: %s", tc.stream, got)
		}
	}
}

func TestHashUnambiguous(t *testing.T) {
	t.Parallel()
	for _, stream := range []string{StreamLegacy, StreamIdP} {
		base := goldenEvent(stream)
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
			if Hash(&ev) == Hash(&base) {
				t.Errorf("%s/%s: same hash as the unchanged event", stream, tc.name)
			}
		}
		// Nil and empty data are the same event.
		a, b := base, base
		a.Data, b.Data = nil, map[string]string{}
		if Hash(&a) != Hash(&b) {
			t.Errorf("%s: nil and empty Data hash differently", stream)
		}
	}
	// v2 covers the stream: a record moved to another stream breaks.
	a, b := goldenEvent("gateway"), goldenEvent("gatewax")
	if Hash(&a) == Hash(&b) {
		t.Error("v2 does not cover the stream")
	}
	// ... and the recipe: the same fields under v1 and v2 differ.
	v1 := sha256.Sum256(AppendEncoding(nil, &a, RecipeV1))
	if hex.EncodeToString(v1[:]) == Hash(&a) {
		t.Error("v1 and v2 agree")
	}
}

// decodeEncoding inverts AppendEncoding. It exists to prove (by fuzzing)
// that the encoding is injective: every event decodes back to itself, so
// two different events cannot share an encoding.
func decodeEncoding(b []byte) (store.AuditEvent, int, bool) {
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
	recipe := 0
	switch tag, _ := str(); tag {
	case tagV1:
		recipe = RecipeV1
	case tagV2:
		recipe = RecipeV2
		var ok bool
		if e.Stream, ok = str(); !ok {
			return e, 0, false
		}
	default:
		return e, 0, false
	}
	seq, ok1 := u64()
	ms, ok2 := u64()
	if !ok1 || !ok2 {
		return e, 0, false
	}
	e.Seq, e.Time = int64(seq), time.UnixMilli(int64(ms)).UTC()
	for _, p := range []*string{&e.Type, &e.Actor, &e.Subject, &e.ClientID, &e.Outcome, &e.Rule, &e.Reason, &e.RequestID} {
		var ok bool
		if *p, ok = str(); !ok {
			return e, 0, false
		}
	}
	n, ok := u64()
	if !ok {
		return e, 0, false
	}
	for range n {
		k, ok1 := str()
		v, ok2 := str()
		if !ok1 || !ok2 {
			return e, 0, false
		}
		if e.Data == nil {
			e.Data = map[string]string{}
		}
		e.Data[k] = v
	}
	var okp bool
	e.PrevHash, okp = str()
	return e, recipe, okp && len(b) == 0
}

func FuzzEncoding(f *testing.F) {
	f.Add(true, "idp", int64(1), int64(0), "token.issued", "a", "b", "c", "allow", "r", "why", "req", "k", "v", "k2", "v2", GenesisHash)
	f.Add(false, "", int64(1<<62), int64(-1), "", "", "", "", "", "", "", "", "", "", "", "", "")
	f.Add(true, "\x00", int64(2), int64(1746327721000), "ab", "c", "\x00\x00\x00", "\xff", "", "", "", "", "k", "", "", "k", "x")
	f.Fuzz(func(t *testing.T, v2 bool, stream string, seq, ms int64, typ, actor, subject, client, outcome, rule, reason, reqID, k1, v1, k2, vv2, prev string) {
		recipe := RecipeV1
		if v2 {
			recipe = RecipeV2
		} else {
			stream = "" // v1 does not encode it
		}
		e := store.AuditEvent{
			Stream: stream, Seq: seq, Time: time.UnixMilli(ms).UTC(), Type: typ, Actor: actor, Subject: subject, ClientID: client,
			Outcome: outcome, Rule: rule, Reason: reason, RequestID: reqID,
			Data: map[string]string{k1: v1, k2: vv2}, PrevHash: prev,
		}
		got, gotRecipe, ok := decodeEncoding(AppendEncoding(nil, &e, recipe))
		if !ok || gotRecipe != recipe {
			t.Fatalf("encoding does not decode (recipe %d, got %d)", recipe, gotRecipe)
		}
		if diff := cmp.Diff(e, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("decode(encode(e)) != e (-e +decoded):\n%s", diff)
		}
	})
}

func TestStreamOf(t *testing.T) {
	t.Parallel()
	for typ, want := range map[string]string{
		"idjag.issued":        StreamIdP,
		"idjag.denied":        StreamIdP,
		"token.issued":        StreamIdP,
		"sso.login":           StreamIdP,
		"accesstoken.issued":  StreamAuthServer,
		"accesstoken.revoked": StreamAuthServer,
		"fence.raised":        StreamAuthServer,
		"gateway.tool_call":   StreamGateway,
		"directory.created":   StreamDirectory,
		"connection.approved": StreamAdmin,
		"admin.login":         StreamAdmin,
		"key.rotated":         StreamSystem,
		"":                    StreamSystem,
		"idjag":               StreamIdP,
		"idjagx.issued":       StreamSystem,
		"legacy.x":            StreamSystem, // never the closed stream
	} {
		if got := StreamOf(typ); got != want {
			t.Errorf("StreamOf(%q) = %q, want %q", typ, got, want)
		}
		if err := CheckStream(StreamOf(typ)); err != nil {
			t.Errorf("StreamOf(%q) = %q, which CheckStream refuses: %v", typ, StreamOf(typ), err)
		}
	}
}

func TestCheckStream(t *testing.T) {
	t.Parallel()
	for name, ok := range map[string]bool{
		"idp": true, "a": true, "t-0123456789abcdef": true, "a_b-c9": true, strings.Repeat("a", 32): true,
		"": false, "legacy": false, "Idp": false, "9a": false, "-a": false, "a b": false, "a.b": false,
		strings.Repeat("a", 33): false, "é": false, "a\x00": false, "x' OR 1=1 --": false,
	} {
		if err := CheckStream(name); (err == nil) != ok {
			t.Errorf("CheckStream(%q) = %v, want ok %v", name, err, ok)
		}
	}
}
