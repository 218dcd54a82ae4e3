package main

import (
	"errors"
	"fmt"
	"slices"

	"github.com/spf13/cobra"

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
TOTP secrets are sealed with the deployment's wrapping key.`,
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
			opts := &directory.ApplyOptions{Actor: "xaa seed"}
			if slices.ContainsFunc(seed.Users, func(u directory.SeedUser) bool { return u.TOTPSecret != "" }) {
				wk, err := keyring.LoadWrappingKey(cfg.Keys.WrappingKey.Reveal(), cfg.Keys.WrappingKeyFile)
				if err != nil {
					if errors.Is(err, keyring.ErrNoWrappingKey) {
						return fmt.Errorf("the seed has TOTP secrets, which are sealed with the wrapping key: %w", err)
					}
					return err
				}
				box, err := keyring.NewSecretBox(wk, directory.TOTPSealPurpose)
				clear(wk)
				if err != nil {
					return err
				}
				opts.TOTPBox = box
			}
			sum, err := directory.Apply(cmd.Context(), db, seed, opts)
			if err != nil {
				return fmt.Errorf("seed %s: %w", args[0], err)
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
