package main

import (
	"fmt"
	"log/slog"

	"github.com/openxaa/xaa/internal/config"
	"github.com/openxaa/xaa/internal/directory"
	"github.com/openxaa/xaa/internal/idp"
	"github.com/openxaa/xaa/internal/keyring"
	"github.com/openxaa/xaa/internal/store/sqlstore"
)

// newIdP builds the identity provider on the shared store and its keys.
func newIdP(cfg *config.Config, db *sqlstore.DB, keys *keyring.Manager, wk []byte, issuer string, logger *slog.Logger) (*idp.Server, error) {
	clientIP, err := clientAddress(cfg.Listen)
	if err != nil {
		return nil, err
	}
	totp, err := keyring.NewSecretBox(wk, directory.TOTPSealPurpose)
	if err != nil {
		return nil, err
	}
	auditKey, err := keyring.DeriveKey(wk, "audit token hmac")
	if err != nil {
		return nil, err
	}
	s, err := idp.New(idp.Config{
		Issuer:         issuer,
		Store:          db,
		Keys:           keys,
		TOTP:           totp,
		AuditKey:       auditKey,
		DevMode:        cfg.DevMode,
		MFAOnDemand:    cfg.IdP.MFA == config.MFAOnDemand,
		TokenRateLimit: tokenLimit(cfg.TokenRateLimit),
		ClientIP:       clientIP,
		Logger:         logger.With("role", "idp"),
	})
	if err != nil {
		return nil, fmt.Errorf("idp: %w", err)
	}
	return s, nil
}
