package storetest

import (
	"context"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// perCallTx methods of the IdP's single sign-on aggregates.

func (p perCallTx) CreateSession(ctx context.Context, s store.Session) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.CreateSession(ctx, s) })
}

func (p perCallTx) GetSessionByDigest(ctx context.Context, digest []byte) (s store.Session, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { s, err = tx.GetSessionByDigest(ctx, digest); return err })
	return s, err
}

func (p perCallTx) RevokeSession(ctx context.Context, id string, at time.Time) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.RevokeSession(ctx, id, at) })
}

func (p perCallTx) CreateAuthCode(ctx context.Context, c store.AuthCode) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.CreateAuthCode(ctx, c) })
}

// ConsumeAuthCode returns the row even with ErrReplay, so the transaction
// must commit nothing but still hand the row back.
func (p perCallTx) ConsumeAuthCode(ctx context.Context, digest []byte, at time.Time) (c store.AuthCode, err error) {
	var inner error
	err = p.s.InTx(ctx, func(tx store.Tx) error { c, inner = tx.ConsumeAuthCode(ctx, digest, at); return nil })
	if err != nil {
		return store.AuthCode{}, err
	}
	return c, inner
}

func (p perCallTx) RecordAuthCodeIssue(ctx context.Context, digest []byte, refreshFamily, idTokenJTI, accessTokenJTI string) error {
	return p.s.InTx(ctx, func(tx store.Tx) error {
		return tx.RecordAuthCodeIssue(ctx, digest, refreshFamily, idTokenJTI, accessTokenJTI)
	})
}

func (p perCallTx) CreateRefreshToken(ctx context.Context, t store.RefreshToken) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.CreateRefreshToken(ctx, t) })
}

func (p perCallTx) GetRefreshToken(ctx context.Context, digest []byte) (t store.RefreshToken, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { t, err = tx.GetRefreshToken(ctx, digest); return err })
	return t, err
}

func (p perCallTx) RotateRefreshToken(ctx context.Context, digest []byte, next store.RefreshToken, at time.Time) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.RotateRefreshToken(ctx, digest, next, at) })
}

func (p perCallTx) RevokeRefreshFamily(ctx context.Context, familyID string, at time.Time) (n int64, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { n, err = tx.RevokeRefreshFamily(ctx, familyID, at); return err })
	return n, err
}

func (p perCallTx) PruneSessions(ctx context.Context, before time.Time) (n int64, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { n, err = tx.PruneSessions(ctx, before); return err })
	return n, err
}

func (p perCallTx) PruneAuthCodes(ctx context.Context, before time.Time) (n int64, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { n, err = tx.PruneAuthCodes(ctx, before); return err })
	return n, err
}

func (p perCallTx) PruneRefreshTokens(ctx context.Context, before time.Time) (n int64, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { n, err = tx.PruneRefreshTokens(ctx, before); return err })
	return n, err
}
