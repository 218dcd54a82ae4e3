package secevent

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/jose"
)

const iss = "https://idp.example.com"

// token is what jose.Verify would return for a SET with these claims.
func token(t testing.TB, claims map[string]any) *jose.Token {
	t.Helper()
	tok := &jose.Token{Issuer: iss, Claims: map[string]json.RawMessage{}}
	for k, v := range claims {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		tok.Claims[k] = b
	}
	return tok
}

func goodEvent() map[string]any {
	return map[string]any{
		"subject":           map[string]any{"format": "iss_sub", "iss": iss, "sub": "u_alice"},
		"client_id":         "assistant",
		"connection_id":     "c_1",
		"not_before":        1700000001,
		"event_timestamp":   1700000000,
		"initiating_entity": "admin",
		"reason_admin":      map[string]any{"en": "revoked"},
	}
}

func events(ev any) map[string]any {
	return map[string]any{"events": map[string]any{EventAccessRevoked: ev}}
}

func TestParse(t *testing.T) {
	t.Parallel()
	got, err := Parse(token(t, events(goodEvent())))
	if err != nil {
		t.Fatal(err)
	}
	want := AccessRevoked{Subject: &Subject{Format: "iss_sub", Iss: iss, Sub: "u_alice"}, ClientID: "assistant", ConnectionID: "c_1",
		NotBefore: 1700000001, EventTimestamp: 1700000000, InitiatingEntity: "admin", ReasonAdmin: map[string]string{"en": "revoked"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	if got.Reason() != "revoked" {
		t.Errorf("Reason = %q", got.Reason())
	}
	edit := func(f func(ev map[string]any)) map[string]any {
		ev := goodEvent()
		f(ev)
		return events(ev)
	}
	bad := map[string]map[string]any{
		"no events":             {},
		"events null":           {"events": nil},
		"events an array":       {"events": []any{goodEvent()}},
		"no event":              {"events": map[string]any{}},
		"two events":            {"events": map[string]any{EventAccessRevoked: goodEvent(), "urn:x": goodEvent()}},
		"unknown event":         {"events": map[string]any{"urn:x": goodEvent()}},
		"event not an object":   events("revoke"),
		"top-level sub":         {"sub": "u_alice", "events": map[string]any{EventAccessRevoked: goodEvent()}},
		"unknown member":        edit(func(ev map[string]any) { ev["scope"] = "all" }),
		"member in other case":  edit(func(ev map[string]any) { ev["Client_ID"] = ev["client_id"]; delete(ev, "client_id") }),
		"subject member case":   edit(func(ev map[string]any) { ev["subject"].(map[string]any)["SUB"] = "x" }),
		"no subject nor client": edit(func(ev map[string]any) { delete(ev, "subject"); delete(ev, "client_id") }),
		"foreign subject iss":   edit(func(ev map[string]any) { ev["subject"].(map[string]any)["iss"] = "https://evil.example.com" }),
		"email subject":         edit(func(ev map[string]any) { ev["subject"] = map[string]any{"format": "email", "email": "a@b"} }),
		"empty sub":             edit(func(ev map[string]any) { ev["subject"].(map[string]any)["sub"] = "" }),
		"sub with a newline":    edit(func(ev map[string]any) { ev["subject"].(map[string]any)["sub"] = "a\nb" }),
		"client with a space":   edit(func(ev map[string]any) { ev["client_id"] = "a b" }),
		"long connection id":    edit(func(ev map[string]any) { ev["connection_id"] = strings.Repeat("c", 300) }),
		"no not_before":         edit(func(ev map[string]any) { delete(ev, "not_before") }),
		"negative not_before":   edit(func(ev map[string]any) { ev["not_before"] = -1 }),
		"fractional not_before": edit(func(ev map[string]any) { ev["not_before"] = 1.5 }),
		"not_before after 9999": edit(func(ev map[string]any) { ev["not_before"] = int64(253402300800) }),
		"unknown initiator":     edit(func(ev map[string]any) { ev["initiating_entity"] = "root" }),
		"no initiator":          edit(func(ev map[string]any) { delete(ev, "initiating_entity") }),
		"reason too long":       edit(func(ev map[string]any) { ev["reason_admin"] = map[string]any{"en": strings.Repeat("r", 2000)} }),
		"reason control char":   edit(func(ev map[string]any) { ev["reason_admin"] = map[string]any{"en": "a\x1bb"} }),
		"reason empty language": edit(func(ev map[string]any) { ev["reason_admin"] = map[string]any{"": "x"} }),
		"reason not a string":   edit(func(ev map[string]any) { ev["reason_admin"] = map[string]any{"en": 7} }),
	}
	for name, claims := range bad {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := Parse(token(t, claims)); !errors.Is(err, ErrInvalidEvent) {
				t.Errorf("Parse = %v, want ErrInvalidEvent", err)
			}
		})
	}
	if _, err := Parse(nil); !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("Parse(nil) = %v", err)
	}
}

// TestNewRoundTrip: what New builds, Parse reads back.
func TestNewRoundTrip(t *testing.T) {
	t.Parallel()
	ev := AccessRevoked{ClientID: "assistant", NotBefore: 1700000001, EventTimestamp: 1700000000, InitiatingEntity: InitiatingPolicy}
	c := New(iss, "https://as.example.com", "jti-1", time.Unix(1700000000, 0), ev)
	if c.Expiry-c.IssuedAt != int64(Lifetime/time.Second) || c.Audience != "https://as.example.com" {
		t.Errorf("claims %+v", c)
	}
	b, _ := json.Marshal(c)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	got, err := Parse(token(t, map[string]any{"events": m["events"]}))
	if err != nil || !cmp.Equal(ev, got) {
		t.Errorf("round trip = %+v, %v", got, err)
	}
}

// FuzzParse: Parse never panics, and an event it accepts is, checked again
// independently, exactly one event of the known type from the token's
// issuer that names a subject or a client and a not-before time.
func FuzzParse(f *testing.F) {
	good, _ := json.Marshal(map[string]any{EventAccessRevoked: goodEvent()})
	f.Add(string(good), false)
	f.Add(`{"`+EventAccessRevoked+`":{"client_id":"a","not_before":1,"initiating_entity":"admin"}}`, false)
	f.Add(`{"`+EventAccessRevoked+`":{"subject":{"format":"iss_sub","iss":"`+iss+`","sub":"x"},"not_before":1,"initiating_entity":"policy"}}`, true)
	f.Add(`{}`, false)
	f.Add(`[]`, false)
	f.Fuzz(func(t *testing.T, raw string, withSub bool) {
		tok := &jose.Token{Issuer: iss, Claims: map[string]json.RawMessage{"events": json.RawMessage(raw)}}
		if withSub {
			tok.Claims["sub"] = json.RawMessage(`"x"`)
		}
		ev, err := Parse(tok)
		if err != nil {
			if !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("error %v does not wrap ErrInvalidEvent", err)
			}
			return
		}
		if withSub {
			t.Fatal("accepted a SET with a top-level sub")
		}
		var events map[string]map[string]json.RawMessage
		d := json.NewDecoder(bytes.NewReader([]byte(raw)))
		if err := d.Decode(&events); err != nil || len(events) != 1 || events[EventAccessRevoked] == nil {
			t.Fatalf("accepted events %q", raw)
		}
		for k := range events[EventAccessRevoked] {
			switch k {
			case "subject", "client_id", "connection_id", "not_before", "event_timestamp", "initiating_entity", "reason_admin":
			default:
				t.Fatalf("accepted unknown member %q", k)
			}
		}
		switch {
		case ev.Subject == nil && ev.ClientID == "":
			t.Fatal("accepted an event naming neither subject nor client")
		case ev.Subject != nil && (ev.Subject.Iss != iss || ev.Subject.Sub == "" || ev.Subject.Format != SubjectFormatIssSub):
			t.Fatalf("accepted subject %+v", ev.Subject)
		case ev.NotBefore <= 0:
			t.Fatalf("accepted not_before %d", ev.NotBefore)
		case strings.ContainsAny(ev.ClientID, " \t\r\n") || strings.ContainsAny(ev.Reason(), "\r\n\x00"):
			t.Fatalf("accepted client %q reason %q", ev.ClientID, ev.Reason())
		}
	})
}
