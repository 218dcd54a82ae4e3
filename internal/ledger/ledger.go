// Package ledger is OpenXAA's connection ledger: the lifecycle of every
// connection from a requesting app to a resource (requested, approved or
// denied, suspended, resumed, revoked, expired, recertified), who asked
// and who approved, and the principal changes that take access away (a
// user disabled, a member removed from a group, an app revoked).
//
// Every change is one transaction: the new state, a history entry, an
// audit record and, where access shrinks, the Security Event Tokens (RFC
// 8417) that carry the revocation to each affected authorization server.
// The IdP refuses new ID-JAGs from the moment the transaction commits (it
// reads the ledger on every exchange); the Deliverer pushes the queued
// tokens (RFC 8935), and each authorization server then refuses ID-JAGs
// issued before the change and lists a not-before fence that its
// gateways pick up.
//
// The package is domain logic: it knows no HTTP except the Deliverer's
// outbound push. Roles (who may do what) are the admin API's job.
package ledger

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/openxaa/xaa/internal/store"
)

// Errors. Each wraps the store's error, if any, for the log.
var (
	// ErrNotFound: no such connection, user, group membership or app.
	ErrNotFound = errors.New("ledger: not found")
	// ErrInvalid: the input breaks a rule (a missing reason, a date in
	// the past, a scope the resource does not define).
	ErrInvalid = errors.New("ledger: invalid input")
	// ErrConflict: the change does not apply to the current state (a
	// transition the lifecycle does not have, a second live connection,
	// a user already disabled).
	ErrConflict = errors.New("ledger: conflict")
)

// Actor kinds.
const (
	ActorHuman  = "human"  // an IdP user, signed in to the admin API
	ActorToken  = "token"  // an admin token
	ActorCLI    = "cli"    // the local operator
	ActorSystem = "system" // the ledger itself, e.g. when a connection expires
)

// Actor is who makes a change: recorded in the history, the audit trail
// and, for an approval, as the approver.
type Actor struct{ ID, Kind string }

// String is the actor as recorded: "kind:id".
func (a Actor) String() string { return a.Kind + ":" + a.ID }

func (a Actor) check() error {
	switch a.Kind {
	case ActorHuman, ActorToken, ActorCLI, ActorSystem:
	default:
		return fmt.Errorf("%w: actor kind %q is not human, token, cli or system", ErrInvalid, clip(a.Kind))
	}
	if a.ID == "" || len(a.ID) > 200 || !utf8.ValidString(a.ID) || strings.IndexFunc(a.ID, unicode.IsControl) >= 0 {
		return fmt.Errorf("%w: the actor needs an id of 1-200 printable characters", ErrInvalid)
	}
	return nil
}

// systemActor is the ledger acting on its own (an expiry).
var systemActor = Actor{ID: "ledger", Kind: ActorSystem}

// Store is what the ledger reads and writes.
type Store interface {
	store.Transactor
	store.Clients
	store.Users
	store.Groups
	store.AuthServers
	store.Resources
	store.Connections
	store.Ledger
	store.SETOutbox
	store.RevocationPolls
}

// Options configures New.
type Options struct {
	Store Store
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// Notify is called after a change that queued Security Event Tokens
	// has committed: a Deliverer in the same process (Deliverer.Wake)
	// then sends them at once instead of at its next poll. Nil is fine.
	Notify func()
}

// Service is the connection ledger. Create it with New; it is safe for
// concurrent use.
type Service struct {
	st     Store
	now    func() time.Time
	log    *slog.Logger
	notify func()
}

// New validates opts and returns a Service.
func New(opts *Options) (*Service, error) {
	if opts == nil || opts.Store == nil {
		return nil, errors.New("ledger: a Store is required")
	}
	s := &Service{st: opts.Store, now: opts.Now, log: opts.Logger, notify: opts.Notify}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.notify == nil {
		s.notify = func() {}
	}
	return s, nil
}

// RequestInput asks for a connection from an app to a resource.
type RequestInput struct {
	App      string // the requesting app's client_id at the IdP
	Resource string // the resource URI; canonicalised
	// GroupScopes are the scopes each group's members get; a request may
	// leave them for the approver to fill only if it names none at all,
	// but then it cannot be approved as is.
	GroupScopes []store.GroupScopes
	StepUp      []store.StepUpRule
	// Lifetimes; zero means store.DefaultIDJAGLifetime and
	// store.DefaultAccessTokenLifetime.
	IDJAGLifetime       time.Duration
	AccessTokenLifetime time.Duration
	IncludeEmail        bool
	Justification       string
	// ExpiresAt is the recertification date asked for; zero means none.
	ExpiresAt time.Time
}

// Entry is one connection as the ledger shows it. List fills only the
// embedded Connection; Get fills everything.
type Entry struct {
	store.Connection
	// Approvers are everyone who approved, resumed or recertified it,
	// first one first, each once.
	Approvers []string
	// History is every change, oldest first.
	History []store.LedgerEvent
	// EnforcementPoints are where the connection's state is enforced and
	// how far its latest revocation has reached.
	EnforcementPoints []EnforcementPoint
	// Deliveries are the Security Event Tokens its changes queued,
	// oldest first, with their delivery state.
	Deliveries []store.SETDelivery
}

// Enforcement point kinds.
const (
	PointIdP        = "idp"
	PointAuthServer = "authserver"
	PointGateway    = "gateway"
)

// Enforcement point states.
const (
	// The IdP.
	StateMinting  = "minting"  // the connection is in force: the IdP mints
	StateRefusing = "refusing" // the IdP refuses every exchange for it
	// The authorization server: the delivery state of the latest SET, or
	// StateNone when no change has taken access away yet.
	StateNone      = "none"
	StatePending   = string(store.SETPending)
	StateDelivered = string(store.SETDelivered)
	StateFailed    = string(store.SETFailed)
	// A gateway (a client polling the authorization server's revocation
	// list for the connection's resource).
	StateReached = "reached" // it read the list after the SET was delivered
	StateBehind  = "behind"  // its last read was before the delivery
	StatePolling = "polling" // no SET to pick up; it reads the list
)

// EnforcementPoint is one place a connection's state is enforced.
type EnforcementPoint struct {
	Kind string // PointIdP, PointAuthServer or PointGateway
	// ID is "idp", the authorization server's issuer, or the gateway's
	// client_id at that authorization server.
	ID string
	// Issuer is the authorization server a gateway polls.
	Issuer string
	State  string
	// At is when the state was reached: the status change, the delivery,
	// the gateway's last read.
	At     time.Time
	Detail string // a sentence for people
}

// Sort keys of Filter.
const (
	SortCreated = store.ConnectionSortCreated
	SortUpdated = store.ConnectionSortUpdated
	SortExpires = store.ConnectionSortExpires
)

// Filter selects a page of List. Zero fields do not filter.
type Filter struct {
	App      string
	Resource string
	Status   store.ConnectionStatus
	Sort     string // "created" (default), "updated" or "expires"
	Desc     bool
	Limit    int    // 0 means 50; at most 1000
	After    string // the cursor List returned for the previous page
}

// Limits.
const (
	defaultPage   = 50
	maxPage       = 1000
	maxReason     = 1024
	maxHistory    = 1000
	claimableSets = 100
)

// now is the service clock at the store's millisecond precision.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

// mapErr turns store errors into the ledger's vocabulary.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrInvalid), errors.Is(err, ErrConflict):
		return err
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, store.ErrInvalid):
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	default:
		return fmt.Errorf("ledger: %w", err)
	}
}

// checkReason requires a reason (for changes that take access away) or
// accepts an optional note, and bounds it.
func checkReason(what, s string, required bool) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case required && s == "":
		return "", fmt.Errorf("%w: a %s is required: it is recorded and shown to the client that is refused", ErrInvalid, what)
	case len(s) > maxReason:
		return "", fmt.Errorf("%w: the %s is longer than %d bytes", ErrInvalid, what, maxReason)
	case !utf8.ValidString(s):
		return "", fmt.Errorf("%w: the %s is not valid UTF-8", ErrInvalid, what)
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return "", fmt.Errorf("%w: the %s holds a control character", ErrInvalid, what)
		}
	}
	return s, nil
}

// newJTI returns 128 random bits, base64url.
func newJTI() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("ledger: generate jti: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// notBefore is the not-before time of a revocation at now: the first
// whole second after it, so every token issued up to now (iat has second
// precision) is before it. The authorization server applies the same
// rule to its own fences.
func notBefore(now time.Time) time.Time { return now.Truncate(time.Second).Add(time.Second) }

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }
