package audit

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const goodLine = `{"v":2,"id":5,"stream":"idp","seq":3,"time_ms":1746327721000,"type":"idjag.issued","actor":"a","subject":"s",` +
	`"client_id":"c","outcome":"allow","rule":"r","reason":"why <&>","request_id":"q","data":{"jti":"j","z":""},` +
	`"prev_hash":"00","hash":"11"}`

func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	r, err := ParseRecord([]byte(goodLine))
	if err != nil {
		t.Fatal(err)
	}
	want := Record{V: 2, ID: 5, Stream: "idp", Seq: 3, TimeMS: 1746327721000, Type: "idjag.issued", Actor: "a", Subject: "s",
		ClientID: "c", Outcome: "allow", Rule: "r", Reason: "why <&>", RequestID: "q", Data: map[string]string{"jti": "j", "z": ""},
		PrevHash: "00", Hash: "11"}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Fatalf("ParseRecord (-want +got):\n%s", diff)
	}
	line, err := MarshalRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	if string(line) != goodLine+"\n" {
		t.Errorf("MarshalRecord:\n got %s\nwant %s", line, goodLine)
	}
	ev := r.Event()
	back := NewRecord(&ev)
	if diff := cmp.Diff(r, back); diff != "" {
		t.Errorf("NewRecord(Event()) (-want +got):\n%s", diff)
	}
	// Empty data encodes as {}, and decodes to a nil map in the event.
	ev.Data = nil
	line, _ = MarshalRecord(NewRecord(&ev))
	if !bytes.Contains(line, []byte(`"data":{}`)) {
		t.Errorf("empty data: %s", line)
	}
	r2, err := ParseRecord(line)
	if err != nil || r2.Event().Data != nil {
		t.Errorf("empty data round trip: %v, %v", r2, err)
	}
}

func TestParseRecordRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, line, want string
	}{
		{"empty", ``, "malformed"},
		{"not an object", `[1]`, "expected"},
		{"duplicate member", strings.Replace(goodLine, `"actor":"a"`, `"actor":"a","actor":"b"`, 1), "appears twice"},
		{"duplicate data key", strings.Replace(goodLine, `"z":""`, `"z":"","z":"x"`, 1), "appears twice"},
		{"unknown member", strings.Replace(goodLine, `"actor":"a"`, `"actor":"a","sql":"DROP"`, 1), "unknown member"},
		{"missing member", strings.Replace(goodLine, `"actor":"a",`, ``, 1), `"actor" is missing`},
		{"missing data", strings.Replace(goodLine, `"data":{"jti":"j","z":""},`, ``, 1), `"data" is missing`},
		{"seq as string", strings.Replace(goodLine, `"seq":3`, `"seq":"3"`, 1), "integer"},
		{"seq fraction", strings.Replace(goodLine, `"seq":3`, `"seq":3.0`, 1), "integer"},
		{"seq exponent", strings.Replace(goodLine, `"seq":3`, `"seq":3e0`, 1), "integer"},
		{"seq too large", strings.Replace(goodLine, `"seq":3`, `"seq":9223372036854775808`, 1), "integer"},
		{"type as number", strings.Replace(goodLine, `"type":"idjag.issued"`, `"type":1`, 1), "string"},
		{"null reason", strings.Replace(goodLine, `"reason":"why <&>"`, `"reason":null`, 1), "string"},
		{"data value number", strings.Replace(goodLine, `"z":""`, `"z":1`, 1), "string"},
		{"data value object", strings.Replace(goodLine, `"z":""`, `"z":{}`, 1), "string"},
		{"data array", strings.Replace(goodLine, `{"jti":"j","z":""}`, `["j"]`, 1), "expected"},
		{"v unknown", strings.Replace(goodLine, `"v":2`, `"v":3`, 1), "v must be"},
		{"trailing data", goodLine + `{}`, "after the object"},
		{"trailing garbage", goodLine + `x`, "malformed"},
		{"truncated", goodLine[:len(goodLine)-1], "malformed"},
		{"invalid UTF-8", strings.Replace(goodLine, `"a"`, "\"\xff\"", 1), "UTF-8"},
		{"too long", `{"reason":"` + strings.Repeat("x", MaxLine) + `"}`, "longer"},
	} {
		_, err := ParseRecord([]byte(tc.line))
		if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrMalformed containing %q", tc.name, err, tc.want)
		}
	}
}

// FuzzRecordLine holds the export-line parser and the verifier to their
// invariants on any input: no panic; a line that parses re-encodes to a
// canonical line that parses to the same record and re-encodes to the
// same bytes; and the verifier accepts a parsed record as a one-record
// stream only if it really is a first record whose hash its recipe gives.
func FuzzRecordLine(f *testing.F) {
	f.Add([]byte(goodLine))
	f.Add([]byte(`{"v":1,"id":1,"stream":"legacy","seq":1,"time_ms":0,"type":"","actor":"","subject":"","client_id":"","outcome":"","rule":"","reason":"","request_id":"","data":{},"prev_hash":"","hash":""}`))
	f.Add([]byte(`{"v":2,"v":2}`))
	f.Add([]byte(`{"data":{"a":"\u0000","b":"\ud800"}}`))
	f.Add([]byte("{\"reason\":\"\xff\"}"))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := ParseRecord(line)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		canon, err := MarshalRecord(r)
		if err != nil {
			t.Fatalf("MarshalRecord: %v", err)
		}
		r2, err := ParseRecord(canon)
		if err != nil {
			t.Fatalf("canonical line does not parse: %v\n%s", err, canon)
		}
		if diff := cmp.Diff(r, r2, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("re-parse differs (-first +second):\n%s", diff)
		}
		if canon2, _ := MarshalRecord(r2); !bytes.Equal(canon, canon2) {
			t.Fatalf("canonical encoding is not stable:\n%s\n%s", canon, canon2)
		}
		v := NewVerifier(nil)
		v.AddRecord(r)
		rep := v.Finish(nil)
		ev := r.Event()
		valid := r.V == RecipeOf(r.Stream) && validStreamName(r.Stream) && r.Seq == 1 && r.ID >= 1 &&
			r.PrevHash == GenesisHash && r.Hash == Hash(&ev)
		if (rep.Err() == nil) != valid {
			t.Fatalf("verifier says %v for a record that is valid=%v: %+v", rep.Err(), valid, r)
		}
	})
}
