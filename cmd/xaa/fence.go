package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/user"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/openxaa/xaa/internal/authserver"
	"github.com/openxaa/xaa/internal/config"
	"github.com/openxaa/xaa/internal/store"
)

func newFenceCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fence",
		Short: "Cut off a user, an app or one user's use of one app at the authorization server",
		Long: `A not-before fence of (client_id, sub) makes every ID-JAG and every access
token of that pair issued before it dead: the authorization server refuses
such ID-JAGs and reports such tokens inactive at once, and gateways drop
them on their next revocation-list poll. An empty client_id fences every
client of the user; an empty sub every user of the client. Fences are
never lifted; adding one again raises it to now.`,
	}
	cmd.AddCommand(newFenceAddCommand(e), newFenceListCommand(e))
	return cmd
}

func newFenceAddCommand(e *env) *cobra.Command {
	var clientID, sub, reason string
	c := &cobra.Command{
		Use:   "add [--client ID] [--sub SUB] [--reason TEXT]",
		Short: "Fence (client, sub) now: their tokens issued until now are dead",
		Long: `add raises a not-before fence at the authorization server of the config
(issuers.authserver), in its database, as of now. Give --client, --sub or
both. SUB is the sub of the access tokens, which with the default subject
mapping is "<IdP issuer>|<IdP sub>", e.g. "https://idp.example.com|u_abc".
The fence and its audit record (actor cli:<os user>) are written in one
transaction; running servers enforce it on their next request.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if clientID == "" && sub == "" {
				return errors.New("give --client, --sub or both; a fence of every client and every user is not offered")
			}
			cfg, issuer, err := authServerIssuer(cmd, e)
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
			f, changed, err := authserver.RaiseFence(cmd.Context(), db, issuer, authserver.FenceRequest{
				ClientID: clientID, Subject: sub, Reason: reason, Actor: cliActor(e), Now: time.Now(),
			})
			if err != nil {
				return err
			}
			verb := "fenced"
			if !changed {
				verb = "unchanged (an equal or later fence stands):"
			}
			_, err = fmt.Fprintf(e.stdout, "%s client %s, sub %s: tokens issued before %s are dead\n",
				verb, anyIfEmpty(f.ClientID), anyIfEmpty(f.Subject), stamp(f.NotBefore))
			return err
		},
	}
	c.Flags().StringVar(&clientID, "client", "", "client_id to fence (empty: every client of --sub)")
	c.Flags().StringVar(&sub, "sub", "", "access-token sub to fence (empty: every user of --client)")
	c.Flags().StringVar(&reason, "reason", "", "why, for the audit trail")
	return c
}

func newFenceListCommand(e *env) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List the authorization server's not-before fences, oldest change first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, issuer, err := authServerIssuer(cmd, e)
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
			var all []store.Fence
			for cursor := int64(0); ; {
				fs, next, err := db.ListFences(cmd.Context(), issuer, cursor, 1000)
				if err != nil {
					return err
				}
				all = append(all, fs...)
				if len(fs) == 0 {
					break
				}
				cursor = next
			}
			if asJSON {
				type row struct {
					ClientID  string    `json:"client_id"`
					Subject   string    `json:"sub"`
					NotBefore time.Time `json:"not_before"`
					Reason    string    `json:"reason"`
					CreatedAt time.Time `json:"created_at"`
					RaisedAt  time.Time `json:"raised_at"`
				}
				rows := make([]row, 0, len(all))
				for _, f := range all {
					rows = append(rows, row{f.ClientID, f.Subject, f.NotBefore.UTC(), f.Reason, f.CreatedAt.UTC(), f.RaisedAt.UTC()})
				}
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CLIENT\tSUB\tNOT BEFORE\tRAISED\tREASON")
			for _, f := range all {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", anyIfEmpty(f.ClientID), anyIfEmpty(f.Subject), stamp(f.NotBefore), stamp(f.RaisedAt), f.Reason)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// authServerIssuer loads the config and returns the authorization
// server's issuer, which fences are kept under.
func authServerIssuer(cmd *cobra.Command, e *env) (*config.Config, string, error) {
	cfg, err := loadConfig(cmd, e)
	if err != nil {
		return nil, "", err
	}
	if cfg.Issuers.AuthServer == "" {
		return nil, "", errors.New("issuers.authserver is not set in the config; fences belong to the authorization server")
	}
	return cfg, cfg.Issuers.AuthServer, nil
}

// cliActor names the operator in audit records: "cli:" and the OS user.
func cliActor(e *env) string {
	name := ""
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if name == "" {
		name = e.getenv("USER")
	}
	if name == "" {
		name = "unknown"
	}
	return "cli:" + name
}

func anyIfEmpty(s string) string {
	if s == "" {
		return "(any)"
	}
	return s
}
