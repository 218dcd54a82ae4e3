// Package secevent is the wire format of the Security Event Tokens (SETs,
// RFC 8417) that OpenXAA's IdP pushes (RFC 8935) to resource authorization
// servers when access shrinks: a connection revoked, suspended or expired,
// a user disabled, a group member removed, an app revoked.
//
// Each SET carries exactly one CAEP-style event, AccessRevoked: "every
// ID-JAG and access token of this subject and client issued before
// not_before is void". The IdP (internal/ledger) builds and signs it; the
// authorization server (internal/authserver) verifies it with
// jose.SETProfile and then Parse, and raises a not-before fence. Neither
// side imports the other; this package is all they share.
package secevent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/openxaa/xaa/internal/jose"
)

// EventAccessRevoked is the event type URI of AccessRevoked.
const EventAccessRevoked = "urn:openxaa:secevent:event-type:access-revoked"

// ContentType is the media type of a pushed SET (RFC 8935 §2).
const ContentType = "application/secevent+jwt"

// SubjectFormatIssSub is the RFC 9493 subject identifier format this
// package uses: the user as the IdP's (iss, sub).
const SubjectFormatIssSub = "iss_sub"

// Initiating entities (CAEP): who caused the event.
const (
	InitiatingAdmin  = "admin"  // an administrator acted
	InitiatingPolicy = "policy" // a rule fired, e.g. a recertification date passed
	InitiatingSystem = "system"
)

// Limits of an event's fields.
const (
	maxIDLen     = 255
	maxReasonLen = 1024
)

// RFC 8935 §2.3 error codes a receiver answers with, in a 400 body
// {"err": code, "description": sentence}.
const (
	ErrCodeInvalidRequest       = "invalid_request"
	ErrCodeInvalidKey           = "invalid_key"
	ErrCodeInvalidIssuer        = "invalid_issuer"
	ErrCodeInvalidAudience      = "invalid_audience"
	ErrCodeAuthenticationFailed = "authentication_failed"
	ErrCodeAccessDenied         = "access_denied"
)

// DeliveryError is the RFC 8935 §2.3 error body.
type DeliveryError struct {
	Err         string `json:"err"`
	Description string `json:"description"`
}

// ErrInvalidEvent means a verified SET does not carry exactly one
// well-formed AccessRevoked event.
var ErrInvalidEvent = errors.New("secevent: invalid event")

// Subject identifies the user, RFC 9493 iss_sub.
type Subject struct {
	Format string `json:"format"`
	Iss    string `json:"iss"`
	Sub    string `json:"sub"`
}

// AccessRevoked is the event. Subject absent means every user of
// ClientID (an app-wide revocation); ClientID empty means every client of
// Subject (the user is disabled); never both.
type AccessRevoked struct {
	Subject *Subject `json:"subject,omitempty"`
	// ClientID is the client_id the app holds at the receiving
	// authorization server.
	ClientID string `json:"client_id,omitempty"`
	// ConnectionID names the IdP's connection whose change caused the
	// event, for the receiver's audit trail.
	ConnectionID string `json:"connection_id,omitempty"`
	// NotBefore (seconds): tokens issued before it are void.
	NotBefore int64 `json:"not_before"`
	// EventTimestamp (seconds) is when the change happened at the IdP.
	EventTimestamp   int64             `json:"event_timestamp"`
	InitiatingEntity string            `json:"initiating_entity"`
	ReasonAdmin      map[string]string `json:"reason_admin,omitempty"`
}

// Claims is the SET's claim set.
type Claims struct {
	Issuer   string                   `json:"iss"`
	Audience string                   `json:"aud"`
	JTI      string                   `json:"jti"`
	IssuedAt int64                    `json:"iat"`
	Expiry   int64                    `json:"exp"`
	Events   map[string]AccessRevoked `json:"events"`
}

// Lifetime is exp - iat of a SET this package builds: well within
// jose.SETProfile's cap, and short because each attempt is signed anew.
const Lifetime = 2 * time.Minute

// New returns the claims of a SET from issuer to audience with one
// AccessRevoked event, issued at now.
func New(issuer, audience, jti string, now time.Time, ev AccessRevoked) Claims {
	return Claims{
		Issuer:   issuer,
		Audience: audience,
		JTI:      jti,
		IssuedAt: now.Unix(),
		Expiry:   now.Add(Lifetime).Unix(),
		Events:   map[string]AccessRevoked{EventAccessRevoked: ev},
	}
}

// Reason returns the English admin reason of ev, or "".
func (ev AccessRevoked) Reason() string { return ev.ReasonAdmin["en"] }

// Parse extracts the one AccessRevoked event of a SET that jose.Verify
// has accepted with jose.SETProfile. Everything about the event is
// checked strictly: exactly one event, of the known type; no member this
// package does not define (an unknown field could change the meaning); a
// subject of the token's own issuer; not both wildcards. A top-level sub
// is refused: the subject lives in the event, and two places to name it
// invite a mismatch. Errors wrap ErrInvalidEvent.
func Parse(tok *jose.Token) (AccessRevoked, error) {
	bad := func(format string, args ...any) (AccessRevoked, error) {
		return AccessRevoked{}, fmt.Errorf("%w: "+format, append([]any{ErrInvalidEvent}, args...)...)
	}
	if tok == nil {
		return bad("no token")
	}
	if _, ok := tok.Claims["sub"]; ok {
		return bad("the SET has a top-level sub; the subject belongs in the event")
	}
	raw, ok := tok.Claims["events"]
	if !ok {
		return bad("the SET has no events claim")
	}
	var events map[string]json.RawMessage
	if err := json.Unmarshal(raw, &events); err != nil || events == nil {
		return bad("the events claim is not a JSON object")
	}
	if len(events) != 1 {
		return bad("the SET carries %d events; exactly one is accepted", len(events))
	}
	body, ok := events[EventAccessRevoked]
	if !ok {
		for name := range events {
			return bad("unknown event type %q", clip(name))
		}
	}
	// encoding/json matches member names without regard to case; the
	// names are checked exactly first, so "Client_ID" is refused rather
	// than read as client_id.
	if err := exactMembers(body, eventMembers); err != nil {
		return bad("the event %v", err)
	}
	var members map[string]json.RawMessage
	_ = json.Unmarshal(body, &members)
	if sub, ok := members["subject"]; ok && string(sub) != "null" {
		if err := exactMembers(sub, subjectMembers); err != nil {
			return bad("the event's subject %v", err)
		}
	}
	var ev AccessRevoked
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&ev); err != nil {
		return bad("the event is malformed: %v", err)
	}
	if d.More() {
		return bad("the event has trailing data")
	}
	if err := ev.check(tok.Issuer); err != nil {
		return AccessRevoked{}, err
	}
	return ev, nil
}

// The member names of the event and of its subject, exactly.
var (
	eventMembers   = []string{"subject", "client_id", "connection_id", "not_before", "event_timestamp", "initiating_entity", "reason_admin"}
	subjectMembers = []string{"format", "iss", "sub"}
)

// exactMembers requires raw to be a JSON object whose member names are
// all in names, compared exactly.
func exactMembers(raw json.RawMessage, names []string) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return errors.New("is not a JSON object")
	}
	for k := range m {
		if !slices.Contains(names, k) {
			return fmt.Errorf("has the unknown member %q", clip(k))
		}
	}
	return nil
}

// check validates ev as sent by issuer.
func (ev AccessRevoked) check(issuer string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidEvent}, args...)...)
	}
	if ev.Subject == nil && ev.ClientID == "" {
		return bad("the event names neither a subject nor a client; revoking every token of every client is not accepted")
	}
	if s := ev.Subject; s != nil {
		switch {
		case s.Format != SubjectFormatIssSub:
			return bad("subject format %q is not %q", clip(s.Format), SubjectFormatIssSub)
		case s.Iss != issuer:
			return bad("the subject's iss %q is not the SET's issuer", clip(s.Iss))
		case !printable(s.Sub, maxIDLen):
			return bad("the subject's sub must be 1-%d printable characters", maxIDLen)
		}
	}
	for what, v := range map[string]string{"client_id": ev.ClientID, "connection_id": ev.ConnectionID} {
		if v != "" && !asciiID(v) {
			return bad("%s must be 1-%d printable ASCII characters without spaces", what, maxIDLen)
		}
	}
	switch {
	case ev.NotBefore <= 0 || ev.NotBefore > maxSeconds:
		return bad("not_before is missing or out of range")
	case ev.EventTimestamp < 0 || ev.EventTimestamp > maxSeconds:
		return bad("event_timestamp is out of range")
	}
	switch ev.InitiatingEntity {
	case InitiatingAdmin, InitiatingPolicy, InitiatingSystem:
	default:
		return bad("initiating_entity %q is not admin, policy or system", clip(ev.InitiatingEntity))
	}
	if len(ev.ReasonAdmin) > 8 {
		return bad("reason_admin has more than 8 languages")
	}
	for lang, r := range ev.ReasonAdmin {
		if lang == "" || len(lang) > 35 || !asciiID(lang) || !printable(r, maxReasonLen) {
			return bad("reason_admin must map language tags to printable text of at most %d bytes", maxReasonLen)
		}
	}
	return nil
}

// maxSeconds is the last second of year 9999.
const maxSeconds = 253402300799

func asciiID(s string) bool {
	if s == "" || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// printable accepts 1-max bytes of valid UTF-8 without control characters.
func printable(s string, max int) bool {
	if s == "" || len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// clip bounds a sender-supplied string echoed in an error.
func clip(s string) string {
	const n = 64
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
