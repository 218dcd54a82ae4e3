package idp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/openxaa/xaa/internal/policy"
	"github.com/openxaa/xaa/internal/store"
)

// Directory is the part of the store that policy resolution reads. Both the
// IdP's Store and a store.Tx satisfy it, so `xaa policy explain` and the
// token exchange load exactly the same rows in exactly the same way.
type Directory interface {
	store.Clients
	store.Users
	store.Groups
	store.AuthServers
	store.Resources
	store.Connections
	store.Ledger
}

// ExplainInput is a dry-run token exchange: who asks, for what, and how the
// user authenticated. Nothing is minted.
type ExplainInput struct {
	// User is a user id or, failing that, a username.
	User string
	// App is the requesting app's client_id at the IdP.
	App string
	// Resource is the resource indicator; it is canonicalised first.
	Resource string
	// Audience is the authorization server's issuer; "" means the one that
	// governs Resource.
	Audience string
	// Scopes requested; empty asks for the default grant.
	Scopes []string
	// Auth is the user's authentication (acr, amr, auth_time) to assume.
	Auth policy.Authentication
	// Now is the decision time; zero means time.Now.
	Now time.Time
}

// ErrExplain wraps the reasons Explain cannot build a decision at all (an
// unknown app or user, a malformed resource).
var ErrExplain = errors.New("idp: cannot explain")

// Explain resolves in against the directory exactly as the token exchange
// does and returns policy.Decide's verdict. It writes nothing.
func Explain(ctx context.Context, dir Directory, in ExplainInput) (policy.Decision, error) {
	if in.Now.IsZero() {
		in.Now = time.Now()
	}
	client, err := dir.GetClient(ctx, Realm, in.App)
	if errors.Is(err, store.ErrNotFound) {
		return policy.Decision{}, fmt.Errorf("%w: no requesting app with client_id %q", ErrExplain, in.App)
	} else if err != nil {
		return policy.Decision{}, err
	}
	user, err := dir.GetUser(ctx, in.User)
	if errors.Is(err, store.ErrNotFound) {
		user, err = dir.GetUserByUsername(ctx, in.User)
	}
	if errors.Is(err, store.ErrNotFound) {
		return policy.Decision{}, fmt.Errorf("%w: no user with id or username %q", ErrExplain, in.User)
	} else if err != nil {
		return policy.Decision{}, err
	}
	resource, err := store.CanonicalResource(in.Resource)
	if err != nil {
		return policy.Decision{}, fmt.Errorf("%w: %w", ErrExplain, err)
	}
	aud := in.Audience
	if aud == "" {
		if r, err := dir.GetResource(ctx, resource); err == nil {
			aud = r.AuthServerIssuer
		} else if !errors.Is(err, store.ErrNotFound) {
			return policy.Decision{}, err
		}
	}
	res, err := resolve(ctx, dir, resolveRequest{
		Now:      in.Now,
		Client:   client,
		User:     user,
		Audience: aud,
		Resource: resource,
		Scopes:   in.Scopes,
		Auth:     in.Auth,
	})
	if err != nil {
		return policy.Decision{}, err
	}
	return policy.Decide(res.Input), nil
}

// resolveRequest is what the exchange knows before it reads the directory.
type resolveRequest struct {
	Now      time.Time
	Client   store.Client
	User     store.User
	Audience string
	Resource string // canonical, or "" when absent
	Scopes   []string
	Auth     policy.Authentication
	Refresh  *policy.RefreshSubject
}

// resolved is policy.Input plus the rows minting needs afterwards.
type resolved struct {
	Input      policy.Input
	Connection *store.Connection // nil when none
	// ClientIDAtAS is the app's client_id at the audience; "" when the
	// audience is unknown or the app holds none there.
	ClientIDAtAS string
}

// resolve loads, in this request and without any cache, every directory row
// the decision depends on. A row that is absent is a fact for policy to
// judge (AudienceKnown=false, Connection=nil); only a store failure is an
// error.
func resolve(ctx context.Context, dir Directory, rq resolveRequest) (resolved, error) {
	in := policy.Input{
		Now:             rq.Now,
		User:            policy.User{ID: rq.User.ID, Enabled: !rq.User.Disabled},
		App:             policy.App{ClientID: rq.Client.ID, Enabled: !rq.Client.Disabled},
		Audience:        rq.Audience,
		Resource:        rq.Resource,
		RequestedScopes: rq.Scopes,
		Auth:            rq.Auth,
		Refresh:         rq.Refresh,
	}
	var out resolved
	groups, err := dir.UserGroups(ctx, rq.User.ID)
	if err != nil {
		return out, fmt.Errorf("idp: load groups of user: %w", err)
	}
	in.User.Groups = groups
	// A refusal names the ledger's reason, when it has one: why the user
	// was disabled, why the app was revoked.
	if rq.User.Disabled {
		e, err := latestLedger(ctx, dir, store.LedgerFilter{UserID: rq.User.ID, Action: store.LedgerUserDisable})
		if err != nil {
			return out, err
		}
		in.User.DisabledAt, in.User.DisabledReason = e.Time, e.Reason
	}
	if rq.Client.Disabled {
		e, err := latestLedger(ctx, dir, store.LedgerFilter{AppID: rq.Client.ID, Action: store.LedgerAppRevoke})
		if err != nil {
			return out, err
		}
		in.App.RevokedAt, in.App.RevokedReason = e.Time, e.Reason
	}

	if rq.Audience != "" {
		as, err := dir.GetAuthServer(ctx, rq.Audience)
		switch {
		case err == nil:
			// The map lookup is exact: the issuer is the primary key,
			// and no alias resolves to it (EMA forbids aliases).
			in.AudienceKnown = as.Issuer == rq.Audience
			out.ClientIDAtAS = as.ClientIDs[rq.Client.ID]
		case errors.Is(err, store.ErrNotFound):
		default:
			return out, fmt.Errorf("idp: load authorization server: %w", err)
		}
	}
	if rq.Resource != "" {
		r, err := dir.GetResource(ctx, rq.Resource)
		switch {
		case err == nil:
			in.ResourceKnown = true
			in.ResourceGovernedByAudience = in.AudienceKnown && r.AuthServerIssuer == rq.Audience
			for _, s := range r.Scopes {
				in.ResourceScopes = append(in.ResourceScopes, s.Name)
			}
		case errors.Is(err, store.ErrNotFound):
		default:
			return out, fmt.Errorf("idp: load resource: %w", err)
		}
		if in.ResourceKnown {
			// The live connection, or else the one that ended last, so
			// that a revoked connection is refused as revoked (naming
			// when and why), not as if there never was one.
			c, err := dir.LatestConnection(ctx, rq.Client.ID, rq.Resource)
			switch {
			case err == nil:
				out.Connection = &c
				in.Connection = policyConnection(c)
			case errors.Is(err, store.ErrNotFound):
			default:
				return out, fmt.Errorf("idp: load connection: %w", err)
			}
		}
	}
	if c := out.Connection; c != nil && c.Status == store.ConnectionApproved && !inAnyGroup(groups, c.GroupScopes) {
		for _, g := range c.GroupScopes {
			e, err := latestLedger(ctx, dir, store.LedgerFilter{UserID: rq.User.ID, Group: g.Group, Action: store.LedgerMemberRemove})
			if err != nil {
				return out, err
			}
			if !e.Time.IsZero() {
				in.User.Removals = append(in.User.Removals, policy.Removal{Group: g.Group, At: e.Time, Reason: e.Reason})
			}
		}
		slices.SortStableFunc(in.User.Removals, func(a, b policy.Removal) int { return b.At.Compare(a.At) })
	}
	out.Input = in
	return out, nil
}

// latestLedger is the newest matching ledger event, or the zero event.
func latestLedger(ctx context.Context, dir Directory, f store.LedgerFilter) (store.LedgerEvent, error) {
	e, err := dir.LatestLedger(ctx, f)
	switch {
	case err == nil:
		return e, nil
	case errors.Is(err, store.ErrNotFound):
		return store.LedgerEvent{}, nil
	default:
		return store.LedgerEvent{}, fmt.Errorf("idp: load ledger: %w", err)
	}
}

func inAnyGroup(groups []string, gs []store.GroupScopes) bool {
	for _, g := range gs {
		if slices.Contains(groups, g.Group) {
			return true
		}
	}
	return false
}

// policyConnection adapts the directory's connection row to policy's view.
func policyConnection(c store.Connection) *policy.Connection {
	pc := &policy.Connection{
		ID:            c.ID,
		App:           c.AppID,
		Resource:      c.ResourceURI,
		Status:        string(c.Status),
		StatusAt:      c.UpdatedAt,
		StatusReason:  c.StatusReason,
		Approver:      c.Approver,
		ExpiresAt:     c.ExpiresAt,
		GroupScopes:   make(map[string][]string, len(c.GroupScopes)),
		StepUp:        make(map[string]policy.StepUp, len(c.StepUp)),
		IDJAGLifetime: c.IDJAGLifetime,
	}
	if c.Status == store.ConnectionRevoked {
		pc.StatusAt = c.RevokedAt
	}
	for _, g := range c.GroupScopes {
		pc.GroupScopes[g.Group] = append([]string(nil), g.Scopes...)
	}
	for _, r := range c.StepUp {
		pc.StepUp[r.Scope] = policy.StepUp{ACR: r.ACR, MaxAge: r.MaxAge}
	}
	return pc
}
