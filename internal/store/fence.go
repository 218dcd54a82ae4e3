package store

import (
	"context"
	"fmt"
	"time"
)

// Not-before fences: the bulk revocation of an authorization server. A
// fence for (ClientID, Subject) kills every ID-JAG and every access token
// of that pair whose iat is before NotBefore, without listing their jtis:
// a user disabled at the IdP, an app's access withdrawn, a session
// revoked by a security event. Fences are never lifted, only raised.

// Fence limits.
const (
	maxFenceSubjectLen = 1024 // a local subject may be "<issuer>|<sub>"
	maxFenceReasonLen  = 1024
)

// Fence is one not-before fence of an authorization server.
type Fence struct {
	// Issuer is the authorization server whose tokens the fence covers.
	Issuer string
	// ClientID is the client_id the fence covers; "" covers every client
	// of Subject (the user is disabled).
	ClientID string
	// Subject is the sub of the access tokens the fence covers (the
	// authorization server's local subject); "" covers every subject of
	// ClientID (the app is revoked). Never both empty.
	Subject string
	// NotBefore: tokens of the pair issued (iat) before it are dead.
	NotBefore time.Time
	// Reason is a human sentence for operators, from the latest raise.
	Reason string
	// CreatedAt is when the pair was first fenced; set by the store.
	CreatedAt time.Time
	// RaisedAt is when NotBefore was last set; the caller sets it.
	RaisedAt time.Time
	// Cursor is the fence's place in the revocation list sequence, which
	// it shares with revoked tokens; set by the store, new on each raise.
	Cursor int64
}

// Validate checks f's invariants as a caller of RaiseFence gives it.
func (f Fence) Validate() error {
	switch {
	case f.ClientID == "" && f.Subject == "":
		return fmt.Errorf("%w: a fence needs a client_id, a subject or both (both empty would fence every token)", ErrInvalid)
	case f.NotBefore.IsZero() || f.RaisedAt.IsZero():
		return fmt.Errorf("%w: a fence needs a not-before time and the time it was raised", ErrInvalid)
	}
	if err := checkText("fence issuer", f.Issuer, maxIDLen, false); err != nil {
		return err
	}
	if f.Issuer == "" {
		return fmt.Errorf("%w: a fence needs the issuer whose tokens it covers", ErrInvalid)
	}
	if f.ClientID != "" {
		if err := checkID("fence client_id", f.ClientID); err != nil {
			return err
		}
	}
	if err := checkText("fence subject", f.Subject, maxFenceSubjectLen, false); err != nil {
		return err
	}
	return checkText("fence reason", f.Reason, maxFenceReasonLen, false)
}

// Covers reports whether the fence applies to tokens of clientID and
// subject: an exact match, or a wildcard ("") on one side.
func (f Fence) Covers(clientID, subject string) bool {
	return (f.ClientID == "" || f.ClientID == clientID) && (f.Subject == "" || f.Subject == subject)
}

// Revocation is one entry of an authorization server's revocation list:
// exactly one of Token and Fence is set. Revoked tokens and fences share
// one cursor sequence.
type Revocation struct {
	Cursor int64
	Token  *RevokedToken
	Fence  *Fence
}

// Fences stores not-before fences.
type Fences interface {
	// RaiseFence records f for (Issuer, ClientID, Subject), or raises the
	// existing fence of the pair to f.NotBefore if that is later; a fence
	// is never lowered. It returns the fence as stored and whether this
	// call changed it (inserted or raised). A change takes the next cursor
	// of the revocation list sequence, visible in commit order like a
	// token revocation's. ErrInvalid if f fails Validate.
	RaiseFence(ctx context.Context, f Fence) (Fence, bool, error)
	// FenceNotBefore returns the latest NotBefore of the issuer's fences
	// that cover (clientID, subject), or the zero time if none does.
	FenceNotBefore(ctx context.Context, issuer, clientID, subject string) (time.Time, error)
	// ListFences returns the issuer's fences whose cursor is greater than
	// afterCursor, in cursor order, at most limit (<= 0 means 100; capped
	// at 1000), and the cursor to resume from (afterCursor when nothing
	// was returned).
	ListFences(ctx context.Context, issuer string, afterCursor int64, limit int) ([]Fence, int64, error)
	// ListRevocations is ListRevokedTokens and ListFences merged in
	// cursor order and read at one point in time, so that a poller
	// resuming from the returned cursor misses neither kind.
	ListRevocations(ctx context.Context, issuer string, afterCursor int64, limit int) ([]Revocation, int64, error)
}
