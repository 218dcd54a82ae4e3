package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/openxaa/xaa/internal/config"
)

func newConfigCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check or show the configuration",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "check FILE",
		Short: "Check a config file strictly: unknown keys, wrong types and invalid values are errors",
		Long: `Check reads FILE the way the server would (including XAA_* environment
overrides) and reports every problem at once, each with its file, line and key.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(args[0], e.getenv)
			if err == nil {
				err = cfg.Validate()
			}
			if err != nil {
				return fmt.Errorf("%s is not valid:\n%w", args[0], err)
			}
			_, err = fmt.Fprintf(e.stdout, "%s: ok\n", args[0])
			return err
		},
	}, &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration with secrets redacted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, e)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(e.stdout, cfg.String())
			return err
		},
	})
	return cmd
}

func newMigrateCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade the database schema",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, e)
			if err != nil {
				return err
			}
			logger := newLogger(cfg.Log, e.stderr)
			db, err := openStore(cmd.Context(), cfg, logger)
			if err != nil {
				return err
			}
			defer db.Close()
			applied, err := db.Migrate(cmd.Context())
			if err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			if len(applied) == 0 {
				_, err = fmt.Fprintf(e.stdout, "%s schema is up to date\n", db.Dialect())
				return err
			}
			for _, m := range applied {
				if _, err := fmt.Fprintf(e.stdout, "applied %s\n", m); err != nil {
					return err
				}
			}
			return nil
		},
	}
}
