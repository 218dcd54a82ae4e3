package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/openxaa/xaa/internal/config"
	"github.com/openxaa/xaa/internal/directory"
	"github.com/openxaa/xaa/internal/keyring"
)

func newSeedCommand(e *env) *cobra.Command {
	var check bool
	c := &cobra.Command{
		Use:   "seed FILE",
		Short: "Create or update the directory (users, groups, apps, resources, connections) from a YAML file",
		Long: `seed applies a file describing an organisation (see examples/seed.yaml) in one
transaction: everything or nothing. Re-applying the same file changes nothing;
applying an edited file updates rows by their natural key. Nothing is deleted.
Every change is audited.

The file is validated completely first; each problem is reported with its line
and key. With --check only that happens, without touching the database.
TOTP secrets are sealed with the deployment's wrapping key.

The config key seed_file makes serve apply a seed the same way at startup.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			seed, err := directory.LoadSeed(args[0])
			if err != nil {
				return err
			}
			if check {
				_, err := fmt.Fprintf(e.stdout, "%s: ok\n", args[0])
				return err
			}
			cfg, err := loadConfig(cmd, e)
			if err != nil {
				return err
			}
			db, err := openStore(cmd.Context(), cfg, newLogger(cfg.Log, e.stderr))
			if err != nil {
				return err
			}
			defer db.Close()
			if err := checkSchema(cmd.Context(), db); err != nil {
				return err
			}
			sum, err := applySeed(cmd.Context(), cfg, db, seed, "xaa seed")
			if err != nil {
				return err
			}
			for _, k := range sum.Kinds() {
				if _, err := fmt.Fprintf(e.stdout, "%s: %s\n", k.Kind, k.Counts); err != nil {
					return err
				}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&check, "check", false, "only validate FILE; do not open the database")
	return c
}

// applySeed writes a loaded seed, as actor, in one transaction: the one
// path by which both `xaa seed` and serve's seed_file change the
// directory. The wrapping key is loaded only when the seed has TOTP
// secrets to seal, so a seed without them needs no key.
//
// A seed that another instance is applying at the same moment (several
// PostgreSQL-backed instances restarting together) can lose the race on a
// unique key; the file is then applied once more, which finds the rows
// the winner wrote.
func applySeed(ctx context.Context, cfg *config.Config, db directory.SeedStore, seed *directory.Seed, actor string) (directory.Summary, error) {
	opts := &directory.ApplyOptions{Actor: actor}
	if slices.ContainsFunc(seed.Users, func(u directory.SeedUser) bool { return u.TOTPSecret != "" }) {
		wk, err := keyring.LoadWrappingKey(cfg.Keys.WrappingKey.Reveal(), cfg.Keys.WrappingKeyFile)
		if err != nil {
			if errors.Is(err, keyring.ErrNoWrappingKey) {
				return directory.Summary{}, fmt.Errorf("the seed has TOTP secrets, which are sealed with the wrapping key: %w", err)
			}
			return directory.Summary{}, err
		}
		box, err := keyring.NewSecretBox(wk, directory.TOTPSealPurpose)
		clear(wk)
		if err != nil {
			return directory.Summary{}, err
		}
		opts.TOTPBox = box
	}
	sum, err := directory.Apply(ctx, db, seed, opts)
	if err != nil {
		return directory.Summary{}, fmt.Errorf("seed %s: %w", seed.Name, err)
	}
	return sum, nil
}

// applySeedFile is serve's startup step for the seed_file key: load,
// validate and apply the file, and log one line saying what changed. Any
// error stops startup; seed errors carry the file:line of the problem.
func applySeedFile(ctx context.Context, cfg *config.Config, db directory.SeedStore, logger *slog.Logger) error {
	if cfg.SeedFile == "" {
		return nil
	}
	seed, err := directory.LoadSeed(cfg.SeedFile)
	if err != nil {
		return fmt.Errorf("seed_file: %w", err)
	}
	sum, err := applySeed(ctx, cfg, db, seed, "xaa serve (seed_file)")
	if err != nil {
		return fmt.Errorf("seed_file: %w", err)
	}
	attrs := []any{"file", cfg.SeedFile, "changed", sum.Changed()}
	for _, k := range sum.Kinds() {
		attrs = append(attrs, strings.ReplaceAll(k.Kind, " ", "_"), k.Counts.String())
	}
	logger.Info("seed applied", attrs...)
	return nil
}
