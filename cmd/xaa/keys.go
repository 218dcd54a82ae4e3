package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/openxaa/xaa/internal/keyring"
)

// keyRefreshInterval is how often a running server reloads its keys, so
// that a rotation done by `xaa keys rotate` or another instance is picked up.
const keyRefreshInterval = 30 * time.Second

func newKeysCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage signing keys and the wrapping key that seals them",
	}
	cmd.AddCommand(newKeysInitCommand(e), newKeysListCommand(e), newKeysRotateCommand(e), newKeysRetireCommand(e))
	return cmd
}

func newKeysInitCommand(e *env) *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "init --out FILE",
		Short: "Generate a wrapping key into a new file with mode 0600",
		Long: `init writes 32 random bytes, base64 encoded, to FILE, which must not exist.
Point keys.wrapping_key_file (or XAA_KEYS_WRAPPING_KEY_FILE) at it. Losing
this file makes the signing keys in the database unusable; keep a backup
wherever you keep secrets.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out FILE is required")
			}
			key, err := keyring.GenerateWrappingKey()
			if err != nil {
				return err
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s already exists; refusing to overwrite a wrapping key", out)
			}
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintln(f, key); err != nil {
				f.Close()
				return err
			}
			if err := f.Sync(); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(e.stdout, "wrote a new wrapping key to %s (mode 0600)\n", out)
			return err
		},
	}
	c.Flags().StringVar(&out, "out", "", "file to create")
	return c
}

func newKeysListCommand(e *env) *cobra.Command {
	var roleNames []string
	var asJSON bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List signing keys and their rotation state (never private material)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, e)
			if err != nil {
				return err
			}
			rs, err := selectRoles(cfg, roleNames)
			if err != nil {
				return err
			}
			db, err := openStore(cmd.Context(), cfg, newLogger(cfg.Log, e.stderr))
			if err != nil {
				return err
			}
			defer db.Close()
			type row struct {
				Role   string `json:"role"`
				Issuer string `json:"issuer"`
				keyring.KeyInfo
			}
			var rows []row
			for _, r := range rs {
				keys, err := keyring.ListKeys(cmd.Context(), db, r.issuer)
				if err != nil {
					return fmt.Errorf("%s: %w", r.name, err)
				}
				for _, k := range keys {
					rows = append(rows, row{Role: r.name, Issuer: r.issuer, KeyInfo: k})
				}
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				if rows == nil {
					rows = []row{}
				}
				return enc.Encode(rows)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ROLE\tKID\tALG\tSTATE\tCREATED\tACTIVATED\tRETIRE AFTER")
			for _, k := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.Role, k.KID, k.Algorithm, k.State,
					stamp(k.CreatedAt), stamp(k.ActivatedAt), stamp(k.RetireAfter))
			}
			return tw.Flush()
		},
	}
	c.Flags().StringSliceVar(&roleNames, "role", nil, "only these roles (idp, authserver); default all configured")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newKeysRotateCommand(e *env) *cobra.Command {
	var roleNames []string
	c := &cobra.Command{
		Use:   "rotate",
		Short: "Activate the pre-published next key and publish a new next key",
		Long: `rotate makes the next key (already published in the JWKS) the signing key,
keeps the previous key published until every token it signed has expired
(keys.max_token_lifetime plus leeway), and pre-publishes a fresh next key.
Running servers pick the change up within 30 seconds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withKeyManagers(cmd, e, roleNames, func(r role, m *keyring.Manager) error {
				rot, err := m.Rotate(cmd.Context())
				if err != nil {
					return fmt.Errorf("%s: rotate: %w", r.name, err)
				}
				_, err = fmt.Fprintf(e.stdout, "%s: active %s (was %s, published until %s); next %s\n",
					r.name, rot.Active, rot.Previous, stamp(rot.RetireAfter), rot.Next)
				return err
			})
		},
	}
	c.Flags().StringSliceVar(&roleNames, "role", nil, "only these roles (idp, authserver); default all configured")
	return c
}

func newKeysRetireCommand(e *env) *cobra.Command {
	var roleNames []string
	c := &cobra.Command{
		Use:   "retire",
		Short: "Unpublish retiring keys whose tokens have all expired",
		Long:  `retire does what running servers also do periodically; use it when no server runs.`,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withKeyManagers(cmd, e, roleNames, func(r role, m *keyring.Manager) error {
				n, err := m.RetireExpired(cmd.Context())
				if err != nil {
					return fmt.Errorf("%s: retire: %w", r.name, err)
				}
				_, err = fmt.Fprintf(e.stdout, "%s: retired %d key(s)\n", r.name, n)
				return err
			})
		},
	}
	c.Flags().StringSliceVar(&roleNames, "role", nil, "only these roles (idp, authserver); default all configured")
	return c
}

// withKeyManagers opens the store and the key manager of each selected
// role and calls fn with it.
func withKeyManagers(cmd *cobra.Command, e *env, roleNames []string, fn func(role, *keyring.Manager) error) error {
	cfg, err := loadConfig(cmd, e)
	if err != nil {
		return err
	}
	rs, err := selectRoles(cfg, roleNames)
	if err != nil {
		return err
	}
	logger := newLogger(cfg.Log, e.stderr)
	db, err := openStore(cmd.Context(), cfg, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	wk, err := wrappingKey(cfg)
	if err != nil {
		return err
	}
	defer clear(wk)
	for _, r := range rs {
		m, err := keyManager(cmd.Context(), cfg, db, wk, r, logger)
		if err != nil {
			return err
		}
		if err := fn(r, m); err != nil {
			return err
		}
	}
	return nil
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
