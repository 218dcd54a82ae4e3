package directory

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// SeedStore is what Apply needs: one transaction for every write, and user
// reads before it (password hashing is slow and stays outside the write
// lock).
type SeedStore interface {
	store.Transactor
	store.Users
}

// ApplyOptions configures Apply. A nil *ApplyOptions means the defaults.
type ApplyOptions struct {
	// Hasher hashes plain passwords; nil means NewPasswordHasher(nil).
	Hasher *PasswordHasher
	// TOTPBox seals TOTP secrets: a keyring.SecretBox for TOTPSealPurpose.
	// Required when a user in the seed has a totp_secret.
	TOTPBox Sealer
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Actor is recorded in the audit events; "" means "seed".
	Actor string
}

// Counts is how many rows of one kind a seed created, updated or left as
// they were.
type Counts struct{ Created, Updated, Unchanged int }

// Summary reports what Apply did, per kind.
type Summary struct {
	Groups, Apps, Users, AuthServers, Resources, Connections Counts
}

// KindCounts names one kind's counts.
type KindCounts struct {
	Kind string
	Counts
}

// Kinds lists the counts in the order Apply writes them.
func (s Summary) Kinds() []KindCounts {
	return []KindCounts{
		{"groups", s.Groups}, {"apps", s.Apps}, {"users", s.Users},
		{"auth servers", s.AuthServers}, {"resources", s.Resources}, {"connections", s.Connections},
	}
}

// Changed reports whether Apply wrote anything.
func (s Summary) Changed() bool {
	for _, k := range s.Kinds() {
		if k.Created+k.Updated > 0 {
			return true
		}
	}
	return false
}

// Audit event types written for each row a seed creates or changes, in the
// same transaction. Data names the row and the changed fields, never a
// value.
const (
	EventDirectoryCreated = "directory.created"
	EventDirectoryUpdated = "directory.updated"
)

// Apply validates the seed and writes it in one transaction: everything or
// nothing. Re-applying the same file changes nothing (plain passwords are
// checked against the stored hash, TOTP secrets against the sealed one);
// a changed file updates rows by natural key. See Seed for what the file
// controls.
func Apply(ctx context.Context, st SeedStore, seed *Seed, opts *ApplyOptions) (Summary, error) {
	var o ApplyOptions
	if opts != nil {
		o = *opts
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Actor == "" {
		o.Actor = "seed"
	}
	if o.Hasher == nil {
		h, err := NewPasswordHasher(nil)
		if err != nil {
			return Summary{}, err
		}
		o.Hasher = h
	}
	pl, err := seed.compile()
	if err != nil {
		return Summary{}, err
	}
	if o.TOTPBox == nil && slices.ContainsFunc(pl.users, func(u userPlan) bool { return u.totp != nil }) {
		return Summary{}, errors.New("seed: a user has a totp_secret, but no TOTP sealer (wrapping key) was given")
	}
	pw, err := planPasswords(ctx, st, o.Hasher, pl.users)
	if err != nil {
		return Summary{}, err
	}
	var sum Summary
	err = st.InTx(ctx, func(tx store.Tx) error {
		a := applier{tx: tx, now: o.Now().UTC().Truncate(time.Millisecond), actor: o.Actor, file: seed.Name,
			box: o.TOTPBox, pw: pw}
		if err := a.apply(ctx, pl); err != nil {
			return err
		}
		sum = a.sum
		return nil
	})
	if err != nil {
		return Summary{}, err
	}
	return sum, nil
}

// passwordPlan is the outcome of checking a seed password against the
// stored hash, made before the transaction.
type passwordPlan struct {
	existed bool
	seen    string // the stored hash that was checked
	hash    string // the new hash, or "" to keep seen
}

func planPasswords(ctx context.Context, st store.Users, h *PasswordHasher, users []userPlan) (map[string]passwordPlan, error) {
	out := map[string]passwordPlan{}
	for _, u := range users {
		if u.password == "" {
			continue
		}
		var pp passwordPlan
		cur, err := st.GetUserByUsername(ctx, u.user.Username)
		switch {
		case err == nil:
			pp.existed, pp.seen = true, cur.PasswordHash
			if CheckPassword(cur.PasswordHash, u.password) == nil && !h.NeedsRehash(cur.PasswordHash) {
				out[store.UsernameKey(u.user.Username)] = pp
				continue
			}
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
		if pp.hash, err = h.HashPassword(u.password); err != nil {
			return nil, err
		}
		out[store.UsernameKey(u.user.Username)] = pp
	}
	return out, nil
}

type applier struct {
	tx    store.Tx
	now   time.Time
	actor string
	file  string
	box   Sealer
	pw    map[string]passwordPlan
	sum   Summary
	// finalScopes holds resources whose scope removal waits until the
	// connections no longer grant the scopes.
	finalScopes map[string][]store.ResourceScope
}

func (a *applier) apply(ctx context.Context, pl *plan) error {
	steps := []func(context.Context, *plan) error{
		a.groups, a.apps, a.users, a.authServers, a.resources, a.connections, a.resourcesFinal,
	}
	for _, step := range steps {
		if err := step(ctx, pl); err != nil {
			return err
		}
	}
	return nil
}

// record counts a row and, for a change, appends its audit event.
func (a *applier) record(ctx context.Context, c *Counts, kind, key, subject, clientID string, created bool, changed []string) error {
	typ, verb := EventDirectoryUpdated, "updated"
	switch {
	case created:
		c.Created++
		typ, verb = EventDirectoryCreated, "created"
	case len(changed) > 0:
		c.Updated++
	default:
		c.Unchanged++
		return nil
	}
	reason := fmt.Sprintf("seed %s %s %s %s", a.file, verb, kind, key)
	data := map[string]string{"source": "seed", "kind": kind, "key": key}
	if a.file != "" {
		data["file"] = a.file
	}
	if len(changed) > 0 {
		data["changed"] = strings.Join(changed, ",")
		reason += " (" + strings.Join(changed, ", ") + ")"
	}
	return a.tx.AppendAudit(ctx, &store.AuditEvent{
		Time: a.now, Type: typ, Actor: a.actor, Subject: subject, ClientID: clientID,
		Outcome: "info", Reason: reason, Data: data,
	})
}

// same returns errSeedChanged unless the row an update is about to change
// is the one the seed compared against.
func same[T any](locked, seen T) error {
	if !reflect.DeepEqual(locked, seen) {
		return errSeedChanged
	}
	return nil
}

func (a *applier) groups(ctx context.Context, pl *plan) error {
	existing, err := a.tx.ListGroups(ctx)
	if err != nil {
		return err
	}
	byName := map[string]store.Group{}
	for _, g := range existing {
		byName[g.Name] = g
	}
	for _, want := range pl.groups {
		cur, ok := byName[want.Name]
		if !ok {
			g := want
			g.CreatedAt, g.UpdatedAt = a.now, a.now
			if err := a.tx.CreateGroup(ctx, g); err != nil {
				return fmt.Errorf("seed: group %s: %w", want.Name, err)
			}
			if err := a.record(ctx, &a.sum.Groups, "group", want.Name, "", "", true, nil); err != nil {
				return err
			}
			continue
		}
		var changed []string
		if cur.Description != want.Description {
			changed = append(changed, "description")
			err := a.tx.UpdateGroup(ctx, want.Name, func(g store.Group) (store.Group, error) {
				if err := same(g, cur); err != nil {
					return g, err
				}
				g.Description, g.UpdatedAt = want.Description, a.now
				return g, nil
			})
			if err != nil {
				return fmt.Errorf("seed: group %s: %w", want.Name, err)
			}
		}
		if err := a.record(ctx, &a.sum.Groups, "group", want.Name, "", "", false, changed); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) apps(ctx context.Context, pl *plan) error {
	for _, want := range pl.apps {
		cur, err := a.tx.GetClient(ctx, store.RealmIdP, want.ID)
		if errors.Is(err, store.ErrNotFound) {
			c := want
			c.CreatedAt = a.now
			if err := a.tx.CreateClient(ctx, c); err != nil {
				return fmt.Errorf("seed: app %s: %w", want.ID, err)
			}
			if err := a.record(ctx, &a.sum.Apps, "app", want.ID, "", want.ID, true, nil); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("seed: app %s: %w", want.ID, err)
		}
		var changed []string
		diff := func(field string, differs bool) {
			if differs {
				changed = append(changed, field)
			}
		}
		diff("name", cur.Name != want.Name)
		diff("auth_method", cur.AuthMethod != want.AuthMethod)
		diff("client_secret", subtle.ConstantTimeCompare(cur.SecretDigest, want.SecretDigest) != 1)
		diff("jwks", string(cur.JWKS) != string(want.JWKS))
		diff("redirect_uris", !slices.Equal(cur.RedirectURIs, want.RedirectURIs))
		diff("disabled", cur.Disabled != want.Disabled)
		if len(changed) > 0 {
			err := a.tx.UpdateClient(ctx, store.RealmIdP, want.ID, func(c store.Client) (store.Client, error) {
				if err := same(c, cur); err != nil {
					return c, err
				}
				c.Name, c.AuthMethod, c.SecretDigest, c.JWKS = want.Name, want.AuthMethod, want.SecretDigest, want.JWKS
				c.RedirectURIs, c.Disabled = want.RedirectURIs, want.Disabled
				return c, nil
			})
			if err != nil {
				return fmt.Errorf("seed: app %s: %w", want.ID, err)
			}
		}
		if err := a.record(ctx, &a.sum.Apps, "app", want.ID, "", want.ID, false, changed); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) users(ctx context.Context, pl *plan) error {
	for _, up := range pl.users {
		if err := a.user(ctx, up); err != nil {
			return fmt.Errorf("seed: user %s: %w", up.user.Username, err)
		}
	}
	return nil
}

func (a *applier) user(ctx context.Context, up userPlan) error {
	pp, hasPlan := a.pw[store.UsernameKey(up.user.Username)]
	cur, err := a.tx.GetUserByUsername(ctx, up.user.Username)
	if errors.Is(err, store.ErrNotFound) {
		if hasPlan && pp.existed {
			return errSeedChanged
		}
		u := up.user
		if u.ID, err = store.NewUserID(); err != nil {
			return err
		}
		u.CreatedAt, u.UpdatedAt = a.now, a.now
		u.PasswordHash = up.hash
		if hasPlan {
			u.PasswordHash = pp.hash
		}
		if up.totp != nil {
			if u.TOTPSealed, err = SealTOTPSecret(a.box, u.ID, up.totp); err != nil {
				return err
			}
		}
		if err := a.tx.CreateUser(ctx, u); err != nil {
			return err
		}
		for _, g := range up.groups {
			if err := a.tx.AddMember(ctx, g, u.ID); err != nil {
				return err
			}
		}
		return a.record(ctx, &a.sum.Users, "user", u.Username, u.ID, "", true, nil)
	}
	if err != nil {
		return err
	}

	next := cur
	var changed []string
	set := func(field string, differs bool, apply func()) {
		if differs {
			changed = append(changed, field)
			apply()
		}
	}
	set("username", cur.Username != up.user.Username, func() { next.Username = up.user.Username })
	set("email", cur.Email != up.user.Email, func() { next.Email = up.user.Email })
	set("display_name", cur.DisplayName != up.user.DisplayName, func() { next.DisplayName = up.user.DisplayName })
	set("disabled", cur.Disabled != up.user.Disabled, func() { next.Disabled = up.user.Disabled })
	switch {
	case hasPlan:
		if !pp.existed || pp.seen != cur.PasswordHash {
			return errSeedChanged
		}
		set("password", pp.hash != "", func() { next.PasswordHash = pp.hash })
	case up.hash != "":
		set("password", cur.PasswordHash != up.hash, func() { next.PasswordHash = up.hash })
	}
	if up.totp != nil {
		old, err := OpenTOTPSecret(a.box, cur)
		// A secret that no longer opens (another wrapping key, a damaged
		// row) is replaced by the file's.
		if err != nil || old == nil || subtle.ConstantTimeCompare(old, up.totp) != 1 {
			sealed, err := SealTOTPSecret(a.box, cur.ID, up.totp)
			if err != nil {
				return err
			}
			set("totp_secret", true, func() { next.TOTPSealed = sealed })
		}
		clear(old)
	}
	if len(changed) > 0 {
		next.UpdatedAt = a.now
		err := a.tx.UpdateUser(ctx, cur.ID, func(u store.User) (store.User, error) {
			if err := same(u, cur); err != nil {
				return u, err
			}
			return next, nil
		})
		if err != nil {
			return err
		}
	}
	groups, err := a.tx.UserGroups(ctx, cur.ID)
	if err != nil {
		return err
	}
	if !slices.Equal(groups, up.groups) {
		changed = append(changed, "groups")
		for _, g := range up.groups {
			if !slices.Contains(groups, g) {
				if err := a.tx.AddMember(ctx, g, cur.ID); err != nil {
					return err
				}
			}
		}
		for _, g := range groups {
			if !slices.Contains(up.groups, g) {
				if err := a.tx.RemoveMember(ctx, g, cur.ID); err != nil {
					return err
				}
			}
		}
	}
	return a.record(ctx, &a.sum.Users, "user", up.user.Username, cur.ID, "", false, changed)
}

func (a *applier) authServers(ctx context.Context, pl *plan) error {
	for _, want := range pl.authServers {
		cur, err := a.tx.GetAuthServer(ctx, want.Issuer)
		if errors.Is(err, store.ErrNotFound) {
			as := want
			as.CreatedAt, as.UpdatedAt = a.now, a.now
			if err := a.tx.CreateAuthServer(ctx, as); err != nil {
				return fmt.Errorf("seed: auth server %s: %w", want.Issuer, err)
			}
			if err := a.record(ctx, &a.sum.AuthServers, "auth server", want.Issuer, "", "", true, nil); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("seed: auth server %s: %w", want.Issuer, err)
		}
		var changed []string
		if cur.Name != want.Name {
			changed = append(changed, "name")
		}
		if !maps.Equal(cur.ClientIDs, want.ClientIDs) {
			changed = append(changed, "client_ids")
		}
		if len(changed) > 0 {
			err := a.tx.UpdateAuthServer(ctx, want.Issuer, func(as store.AuthServer) (store.AuthServer, error) {
				if err := same(as, cur); err != nil {
					return as, err
				}
				as.Name, as.ClientIDs, as.UpdatedAt = want.Name, maps.Clone(want.ClientIDs), a.now
				return as, nil
			})
			if err != nil {
				return fmt.Errorf("seed: auth server %s: %w", want.Issuer, err)
			}
		}
		if err := a.record(ctx, &a.sum.AuthServers, "auth server", want.Issuer, "", "", false, changed); err != nil {
			return err
		}
	}
	return nil
}

// resources creates and updates resources. A scope the file drops is kept
// until after the connections step, since a connection the file also
// changes may still grant it; resourcesFinal then removes it.
func (a *applier) resources(ctx context.Context, pl *plan) error {
	a.finalScopes = map[string][]store.ResourceScope{}
	for _, want := range pl.resources {
		cur, err := a.tx.GetResource(ctx, want.URI)
		if errors.Is(err, store.ErrNotFound) {
			r := want
			r.CreatedAt, r.UpdatedAt = a.now, a.now
			if err := a.tx.CreateResource(ctx, r); err != nil {
				return fmt.Errorf("seed: resource %s: %w", want.URI, err)
			}
			if err := a.record(ctx, &a.sum.Resources, "resource", want.URI, "", "", true, nil); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("seed: resource %s: %w", want.URI, err)
		}
		var changed []string
		if cur.Name != want.Name {
			changed = append(changed, "name")
		}
		if cur.AuthServerIssuer != want.AuthServerIssuer {
			changed = append(changed, "auth_server")
		}
		scopes := want.Scopes
		if !slices.Equal(cur.Scopes, want.Scopes) {
			changed = append(changed, "scopes")
			for _, s := range cur.Scopes {
				if !want.HasScope(s.Name) {
					scopes = append(slices.Clone(scopes), s) // dropped in resourcesFinal
					a.finalScopes[want.URI] = want.Scopes
				}
			}
		}
		if len(changed) > 0 {
			err := a.tx.UpdateResource(ctx, want.URI, func(r store.Resource) (store.Resource, error) {
				if err := same(r, cur); err != nil {
					return r, err
				}
				r.Name, r.AuthServerIssuer, r.Scopes, r.UpdatedAt = want.Name, want.AuthServerIssuer, scopes, a.now
				return r, nil
			})
			if err != nil {
				return fmt.Errorf("seed: resource %s: %w", want.URI, err)
			}
		}
		if err := a.record(ctx, &a.sum.Resources, "resource", want.URI, "", "", false, changed); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) resourcesFinal(ctx context.Context, _ *plan) error {
	for _, uri := range slices.Sorted(maps.Keys(a.finalScopes)) {
		err := a.tx.UpdateResource(ctx, uri, func(r store.Resource) (store.Resource, error) {
			r.Scopes = a.finalScopes[uri]
			return r, nil
		})
		if err != nil {
			return fmt.Errorf("seed: resource %s: removing scopes: %w", uri, err)
		}
	}
	return nil
}

func (a *applier) connections(ctx context.Context, pl *plan) error {
	for _, want := range pl.connections {
		key := want.AppID + " -> " + want.ResourceURI
		if err := a.connection(ctx, want, key); err != nil {
			return fmt.Errorf("seed: connection %s: %w", key, err)
		}
	}
	return nil
}

func (a *applier) connection(ctx context.Context, want store.Connection, key string) error {
	cur, err := a.tx.FindConnection(ctx, want.AppID, want.ResourceURI)
	if errors.Is(err, store.ErrNotFound) {
		// An ended connection (revoked or denied, by the ledger or an
		// earlier seed) is never brought back by re-applying the seed: a
		// serve with seed_file would otherwise undo an admin's revocation
		// at every restart. A new connection goes through the ledger
		// (xaa connection request, then approve).
		old, err := a.tx.ListConnections(ctx, store.ConnectionFilter{AppID: want.AppID, ResourceURI: want.ResourceURI, IncludeRevoked: true})
		if err != nil {
			return err
		}
		for _, o := range old {
			if o.Status.Ended() {
				return a.record(ctx, &a.sum.Connections, "connection", key, "", want.AppID, false, nil)
			}
		}
		c := want
		if c.ID, err = store.NewConnectionID(); err != nil {
			return err
		}
		c.CreatedAt, c.UpdatedAt = a.now, a.now
		if c.Status == store.ConnectionRevoked {
			c.RevokedAt = a.now
		}
		if err := a.tx.CreateConnection(ctx, c); err != nil {
			return err
		}
		return a.record(ctx, &a.sum.Connections, "connection", key, c.ID, want.AppID, true, nil)
	}
	if err != nil {
		return err
	}
	next := cur
	var changed []string
	set := func(field string, differs bool, apply func()) {
		if differs {
			changed = append(changed, field)
			apply()
		}
	}
	set("groups", !reflect.DeepEqual(cur.GroupScopes, want.GroupScopes), func() { next.GroupScopes = want.GroupScopes })
	set("step_up", !reflect.DeepEqual(cur.StepUp, want.StepUp), func() { next.StepUp = want.StepUp })
	set("id_jag_lifetime", cur.IDJAGLifetime != want.IDJAGLifetime, func() { next.IDJAGLifetime = want.IDJAGLifetime })
	set("access_token_lifetime", cur.AccessTokenLifetime != want.AccessTokenLifetime, func() { next.AccessTokenLifetime = want.AccessTokenLifetime })
	set("include_email", cur.IncludeEmail != want.IncludeEmail, func() { next.IncludeEmail = want.IncludeEmail })
	set("status", cur.Status != want.Status, func() {
		next.Status = want.Status
		if want.Status == store.ConnectionRevoked {
			next.RevokedAt = a.now
		}
	})
	set("approver", cur.Approver != want.Approver, func() { next.Approver = want.Approver })
	set("justification", cur.Justification != want.Justification, func() { next.Justification = want.Justification })
	set("expires", !cur.ExpiresAt.Equal(want.ExpiresAt), func() { next.ExpiresAt = want.ExpiresAt })
	if len(changed) > 0 {
		next.UpdatedAt = a.now
		err := a.tx.UpdateConnection(ctx, cur.ID, func(c store.Connection) (store.Connection, error) {
			if err := same(c, cur); err != nil {
				return c, err
			}
			return next, nil
		})
		if err != nil {
			return err
		}
	}
	return a.record(ctx, &a.sum.Connections, "connection", key, cur.ID, want.AppID, false, changed)
}

// String renders counts as "2 created, 1 updated, 0 unchanged".
func (c Counts) String() string {
	return strconv.Itoa(c.Created) + " created, " + strconv.Itoa(c.Updated) + " updated, " +
		strconv.Itoa(c.Unchanged) + " unchanged"
}
