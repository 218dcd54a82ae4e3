package store

import (
	"context"
	"fmt"
	"time"
)

// The connection ledger's storage: the append-only history of every
// change to a connection or to the principals it serves (a user disabled,
// a member removed, an app revoked), the outbox of Security Event Tokens
// (RFC 8417) those changes queue for authorization servers, and when each
// client of an authorization server last read its revocation list.
// Package internal/ledger is the domain logic on top.

// Ledger actions. The IdP reads the principal actions back to name the
// reason of a refusal, so their values never change meaning.
const (
	LedgerRequest   = "request"
	LedgerApprove   = "approve"
	LedgerDeny      = "deny"
	LedgerSuspend   = "suspend"
	LedgerResume    = "resume"
	LedgerRevoke    = "revoke"
	LedgerExpire    = "expire"
	LedgerRecertify = "recertify"
	// Principal actions: ConnectionID is empty.
	LedgerUserDisable  = "user.disable"
	LedgerMemberRemove = "member.remove"
	LedgerAppRevoke    = "app.revoke"
)

// Ledger limits.
const (
	maxLedgerReason = 4096
	maxLedgerData   = 32
)

// LedgerEvent is one entry of the ledger's history.
type LedgerEvent struct {
	Seq          int64 // assigned by the store, increasing in commit order
	Time         time.Time
	Action       string // one of the Ledger* actions
	ConnectionID string // "" for a principal action
	AppID        string // the requesting app's client_id at the IdP, when known
	UserID       string // member.remove, user.disable
	Group        string // member.remove
	FromStatus   ConnectionStatus
	ToStatus     ConnectionStatus
	ActorID      string
	ActorKind    string // "human", "token", "cli", "system"
	Reason       string
	Data         map[string]string // small extras, e.g. the new recertification date
}

// Validate checks e's invariants as a caller of AppendLedger gives it.
func (e LedgerEvent) Validate() error {
	switch e.Action {
	case LedgerRequest, LedgerApprove, LedgerDeny, LedgerSuspend, LedgerResume, LedgerRevoke, LedgerExpire, LedgerRecertify:
		if e.ConnectionID == "" {
			return fmt.Errorf("%w: ledger action %q needs a connection", ErrInvalid, e.Action)
		}
	case LedgerUserDisable:
		if e.UserID == "" {
			return fmt.Errorf("%w: ledger action %q needs a user", ErrInvalid, e.Action)
		}
	case LedgerMemberRemove:
		if e.UserID == "" || e.Group == "" {
			return fmt.Errorf("%w: ledger action %q needs a user and a group", ErrInvalid, e.Action)
		}
	case LedgerAppRevoke:
		if e.AppID == "" {
			return fmt.Errorf("%w: ledger action %q needs an app", ErrInvalid, e.Action)
		}
	default:
		return fmt.Errorf("%w: unknown ledger action %q", ErrInvalid, truncate(e.Action))
	}
	switch {
	case e.Time.IsZero():
		return fmt.Errorf("%w: a ledger event needs a time", ErrInvalid)
	case e.ActorID == "" || e.ActorKind == "":
		return fmt.Errorf("%w: a ledger event names its actor", ErrInvalid)
	case len(e.Data) > maxLedgerData:
		return fmt.Errorf("%w: a ledger event carries at most %d data entries", ErrInvalid, maxLedgerData)
	}
	for what, s := range map[string]string{"connection id": e.ConnectionID, "app": e.AppID, "user": e.UserID, "actor kind": e.ActorKind} {
		if s != "" {
			if err := checkID("ledger "+what, s); err != nil {
				return err
			}
		}
	}
	if e.Group != "" {
		if err := CheckGroupName(e.Group); err != nil {
			return err
		}
	}
	if err := checkText("ledger actor", e.ActorID, maxNameLen, false); err != nil {
		return err
	}
	for k, v := range e.Data {
		if err := checkText("ledger data key", k, 64, false); err != nil {
			return err
		}
		if err := checkText("ledger data value", v, maxNameLen, false); err != nil {
			return err
		}
	}
	return checkText("ledger reason", e.Reason, maxLedgerReason, true)
}

// LedgerFilter selects ledger events. Zero fields do not filter; set
// fields must all match exactly.
type LedgerFilter struct {
	ConnectionID string
	AppID        string
	UserID       string
	Group        string
	Action       string
	Limit        int // 0 means 100; capped at 1000
}

// Ledger stores the ledger's history. Rows are never changed or deleted.
type Ledger interface {
	// AppendLedger validates e, stores it and sets e.Seq.
	AppendLedger(ctx context.Context, e *LedgerEvent) error
	// ListLedger returns the matching events, oldest first, at most
	// Limit of them (the oldest).
	ListLedger(ctx context.Context, f LedgerFilter) ([]LedgerEvent, error)
	// LatestLedger returns the newest matching event, or ErrNotFound.
	LatestLedger(ctx context.Context, f LedgerFilter) (LedgerEvent, error)
}

// --- Security Event Token outbox ---

// SETStatus is where a queued Security Event Token is in its delivery.
type SETStatus string

// SET delivery states: pending until the receiver accepts it (delivered)
// or refuses it for good, or it is no longer worth sending (failed).
const (
	SETPending   SETStatus = "pending"
	SETDelivered SETStatus = "delivered"
	SETFailed    SETStatus = "failed"
)

// SETDelivery is one Security Event Token to push to one authorization
// server: "access of (Subject, ClientID) issued before NotBefore is
// revoked". The token itself is signed at each attempt from these fields.
type SETDelivery struct {
	ID           int64  // assigned by the store
	JTI          string // the SET's jti, unique; the same on every attempt
	Audience     string // the authorization server's issuer
	Subject      string // the user's sub at the IdP; "" for every user of ClientID
	ClientID     string // the app's client_id at the authorization server; "" for every client of Subject
	ConnectionID string // the connection whose change queued it; "" for a principal change
	Reason       string
	NotBefore    time.Time
	CreatedAt    time.Time
	LedgerSeq    int64 // the ledger event that queued it

	Status        SETStatus
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	DeliveredAt   time.Time // set exactly when Status is delivered
}

// Validate checks d's invariants.
func (d SETDelivery) Validate() error {
	switch {
	case d.JTI == "" || d.Audience == "":
		return fmt.Errorf("%w: a security event token needs a jti and an audience", ErrInvalid)
	case d.Subject == "" && d.ClientID == "":
		return fmt.Errorf("%w: a security event token names a subject, a client or both", ErrInvalid)
	case d.NotBefore.IsZero() || d.CreatedAt.IsZero() || d.NextAttemptAt.IsZero():
		return fmt.Errorf("%w: a security event token needs not-before, creation and next-attempt times", ErrInvalid)
	case d.Attempts < 0:
		return fmt.Errorf("%w: negative delivery attempts", ErrInvalid)
	case (d.Status == SETDelivered) != !d.DeliveredAt.IsZero():
		return fmt.Errorf("%w: delivered_at must be set exactly when the token is delivered", ErrInvalid)
	}
	switch d.Status {
	case SETPending, SETDelivered, SETFailed:
	default:
		return fmt.Errorf("%w: security event token status %q is not pending, delivered or failed", ErrInvalid, d.Status)
	}
	for what, s := range map[string]string{"jti": d.JTI, "client_id": d.ClientID, "connection id": d.ConnectionID} {
		if s != "" {
			if err := checkID("security event token "+what, s); err != nil {
				return err
			}
		}
	}
	if err := checkText("security event token audience", d.Audience, maxIDLen, false); err != nil {
		return err
	}
	if err := checkText("security event token subject", d.Subject, maxIDLen, false); err != nil {
		return err
	}
	if err := checkText("security event token error", d.LastError, maxTextLen, false); err != nil {
		return err
	}
	return checkText("security event token reason", d.Reason, maxLedgerReason, true)
}

// SETFilter selects queued tokens. Zero fields do not filter.
type SETFilter struct {
	ConnectionID string
	Audience     string
	Subject      string
	ClientID     string
	Status       SETStatus
	Limit        int // 0 means 100; capped at 1000
}

// SETOutbox stores the tokens the IdP pushes. A change and the tokens it
// queues commit together, so no revocation is ever left unannounced.
type SETOutbox interface {
	// EnqueueSET validates d, stores it and sets d.ID; ErrConflict if the
	// jti exists.
	EnqueueSET(ctx context.Context, d *SETDelivery) error
	// ClaimSETs returns up to limit pending tokens whose NextAttemptAt is
	// at or before now, oldest first, and moves their NextAttemptAt to
	// now + lease, so that another instance claiming at the same time
	// gets other tokens and a crashed deliverer's claim lapses.
	ClaimSETs(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]SETDelivery, error)
	// UpdateSET writes the delivery state of d (Status, Attempts,
	// NextAttemptAt, LastError, DeliveredAt) after Validate; ErrNotFound
	// if absent, ErrConflict if it is no longer pending (its state is
	// final and stays).
	UpdateSET(ctx context.Context, d SETDelivery) error
	// ListSETs returns the matching tokens, oldest first.
	ListSETs(ctx context.Context, f SETFilter) ([]SETDelivery, error)
}

// --- Revocation polls ---

// RevocationPoll records a client's latest read of an authorization
// server's revocation list.
type RevocationPoll struct {
	Issuer   string
	ClientID string
	// Resources the client's policy covers: the revocations it is shown.
	Resources []string
	PolledAt  time.Time
	Cursor    int64 // the cursor the answer returned
}

// RevocationPolls stores the latest revocation-list read of each client.
type RevocationPolls interface {
	// RecordRevocationPoll stores p as the client's latest read unless a
	// later one is already stored.
	RecordRevocationPoll(ctx context.Context, p RevocationPoll) error
	// ListRevocationPolls returns the issuer's clients' latest reads, by
	// client_id.
	ListRevocationPolls(ctx context.Context, issuer string) ([]RevocationPoll, error)
}
