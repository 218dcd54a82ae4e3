package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/openxaa/xaa/internal/store"
)

// DisableUser disables a user (by username, or by user id) at the IdP:
// no new ID-JAG for any app from now on, and every authorization server
// is told to void the tokens it issued for the user before now.
func (s *Service) DisableUser(ctx context.Context, a Actor, username, reason string) error {
	if err := a.check(); err != nil {
		return err
	}
	reason, err := checkReason("reason", reason, true)
	if err != nil {
		return err
	}
	now := s.clock()
	queued := 0
	err = s.st.InTx(ctx, func(tx store.Tx) error {
		u, err := findUser(ctx, tx, username)
		if err != nil {
			return err
		}
		if u.Disabled {
			return fmt.Errorf("%w: user %s is already disabled", ErrConflict, u.Username)
		}
		if err := tx.UpdateUser(ctx, u.ID, func(x store.User) (store.User, error) {
			x.Disabled, x.UpdatedAt = true, now
			return x, nil
		}); err != nil {
			return err
		}
		e := &store.LedgerEvent{Time: now, Action: store.LedgerUserDisable, UserID: u.ID, ActorID: a.String(), ActorKind: a.Kind, Reason: reason}
		if err := tx.AppendLedger(ctx, e); err != nil {
			return err
		}
		// Every authorization server: the user may hold tokens at any.
		ass, err := tx.ListAuthServers(ctx)
		if err != nil {
			return err
		}
		for _, as := range ass {
			if err := s.enqueue(ctx, tx, e.Seq, now, as.Issuer, u.ID, "", "", reason); err != nil {
				return err
			}
		}
		queued = len(ass)
		return tx.AppendAudit(ctx, &store.AuditEvent{
			Time: now, Type: AuditUserDisabled, Actor: a.String(), Subject: u.ID, Outcome: "allow",
			Rule: "ledger." + store.LedgerUserDisable, Reason: reason,
			Data: map[string]string{"username": u.Username, "ledger_seq": strconv.FormatInt(e.Seq, 10), "sets_queued": strconv.Itoa(queued)},
		})
	})
	if err != nil {
		return mapErr(err)
	}
	if queued > 0 {
		s.notify()
	}
	return nil
}

// RemoveMember takes a user (by username, or by user id) out of a group:
// the connections that grant the group scopes no longer do so for the
// user, and the authorization servers of the connections that granted it
// are told to void the user's tokens issued before now through them.
func (s *Service) RemoveMember(ctx context.Context, a Actor, group, username, reason string) error {
	if err := a.check(); err != nil {
		return err
	}
	reason, err := checkReason("reason", reason, true)
	if err != nil {
		return err
	}
	if err := store.CheckGroupName(group); err != nil {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	now := s.clock()
	queued := 0
	err = s.st.InTx(ctx, func(tx store.Tx) error {
		u, err := findUser(ctx, tx, username)
		if err != nil {
			return err
		}
		if err := tx.RemoveMember(ctx, group, u.ID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("%w: user %s is not a member of group %s", ErrNotFound, u.Username, group)
			}
			return err
		}
		e := &store.LedgerEvent{Time: now, Action: store.LedgerMemberRemove, UserID: u.ID, Group: group,
			ActorID: a.String(), ActorKind: a.Kind, Reason: reason}
		if err := tx.AppendLedger(ctx, e); err != nil {
			return err
		}
		conns, err := tx.ListConnections(ctx, store.ConnectionFilter{})
		if err != nil {
			return err
		}
		for _, c := range conns {
			if !slices.Contains(granted, c.Status) || !slices.ContainsFunc(c.GroupScopes, func(g store.GroupScopes) bool { return g.Group == group }) {
				continue
			}
			n, err := s.queueConnection(ctx, tx, e.Seq, now, c, u.ID, reason)
			if err != nil {
				return err
			}
			queued += n
		}
		return tx.AppendAudit(ctx, &store.AuditEvent{
			Time: now, Type: AuditMemberRemoved, Actor: a.String(), Subject: u.ID, Outcome: "allow",
			Rule: "ledger." + store.LedgerMemberRemove, Reason: reason,
			Data: map[string]string{"group": group, "username": u.Username, "ledger_seq": strconv.FormatInt(e.Seq, 10), "sets_queued": strconv.Itoa(queued)},
		})
	})
	if err != nil {
		return mapErr(err)
	}
	if queued > 0 {
		s.notify()
	}
	return nil
}

// RevokeApp revokes a requesting app: its client is disabled at the IdP
// (it can no longer authenticate there), every live connection of it is
// revoked with the reason, and every authorization server where it holds
// a client_id is told to void the tokens it issued to it before now.
func (s *Service) RevokeApp(ctx context.Context, a Actor, clientID, reason string) error {
	if err := a.check(); err != nil {
		return err
	}
	reason, err := checkReason("reason", reason, true)
	if err != nil {
		return err
	}
	if !validID(clientID) {
		return fmt.Errorf("%w: there is no app %q", ErrNotFound, clip(clientID))
	}
	now := s.clock()
	queued := 0
	err = s.st.InTx(ctx, func(tx store.Tx) error {
		app, err := tx.GetClient(ctx, store.RealmIdP, clientID)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: there is no app %s", ErrNotFound, clientID)
		} else if err != nil {
			return err
		}
		if app.Disabled {
			return fmt.Errorf("%w: app %s is already revoked", ErrConflict, clientID)
		}
		if err := tx.UpdateClient(ctx, store.RealmIdP, clientID, func(c store.Client) (store.Client, error) {
			c.Disabled = true
			return c, nil
		}); err != nil {
			return err
		}
		e := &store.LedgerEvent{Time: now, Action: store.LedgerAppRevoke, AppID: clientID, ActorID: a.String(), ActorKind: a.Kind, Reason: reason}
		if err := tx.AppendLedger(ctx, e); err != nil {
			return err
		}
		// Each live connection ends with the app, its history saying why.
		covered := map[string]bool{} // authorization servers already told
		conns, err := tx.ListConnections(ctx, store.ConnectionFilter{AppID: clientID})
		if err != nil {
			return err
		}
		why := "the app was revoked: " + reason
		for _, c := range conns {
			var from store.ConnectionStatus
			var after store.Connection
			err := tx.UpdateConnection(ctx, c.ID, func(x store.Connection) (store.Connection, error) {
				from = x.Status
				x.Status, x.RevokedAt, x.StatusReason, x.UpdatedAt = store.ConnectionRevoked, now, why, now
				after = x
				return x, nil
			})
			if err != nil {
				return err
			}
			n, err := s.record(ctx, tx, a, now, after, from, revokeStep, why, map[string]string{"app_revoked": "true"})
			if err != nil {
				return err
			}
			queued += n
			if n > 0 {
				r, err := tx.GetResource(ctx, c.ResourceURI)
				if err != nil {
					return err
				}
				covered[r.AuthServerIssuer] = true
			}
		}
		// The authorization servers where it holds a client_id but had no
		// connection that was ever granted may still hold older tokens.
		ass, err := tx.ListAuthServers(ctx)
		if err != nil {
			return err
		}
		for _, as := range ass {
			there, ok := as.ClientIDs[clientID]
			if !ok || covered[as.Issuer] {
				continue
			}
			if err := s.enqueue(ctx, tx, e.Seq, now, as.Issuer, "", there, "", why); err != nil {
				return err
			}
			queued++
		}
		return tx.AppendAudit(ctx, &store.AuditEvent{
			Time: now, Type: AuditAppRevoked, Actor: a.String(), ClientID: clientID, Outcome: "allow",
			Rule: "ledger." + store.LedgerAppRevoke, Reason: reason,
			Data: map[string]string{"ledger_seq": strconv.FormatInt(e.Seq, 10), "sets_queued": strconv.Itoa(queued)},
		})
	})
	if err != nil {
		return mapErr(err)
	}
	if queued > 0 {
		s.notify()
	}
	return nil
}

// findUser finds a user by username, or failing that by id.
func findUser(ctx context.Context, tx store.Tx, name string) (store.User, error) {
	u, err := tx.GetUserByUsername(ctx, name)
	if errors.Is(err, store.ErrNotFound) && validID(name) {
		u, err = tx.GetUser(ctx, name)
	}
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, fmt.Errorf("%w: there is no user %q", ErrNotFound, clip(name))
	}
	return u, err
}
