package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/openxaa/xaa/internal/idp"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/policy"
)

// errPolicyDenies makes `xaa policy explain` exit non-zero on a denial, so
// scripts can use it like `kubectl auth can-i`.
var errPolicyDenies = errors.New("policy denies this request")

func newPolicyCommand(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "policy",
		Short: "Inspect the IdP's token-exchange policy",
	}
	c.AddCommand(newPolicyExplainCommand(e))
	return c
}

func newPolicyExplainCommand(e *env) *cobra.Command {
	var in idp.ExplainInput
	var scope, acr string
	var amr []string
	var authAge time.Duration
	c := &cobra.Command{
		Use:   "explain",
		Short: "Dry-run a token exchange: print the policy decision and why, without minting",
		Long: `Resolves the user, app, resource and audience from the store exactly as the
token exchange does and prints the decision of the policy choke point: the
rule, the scopes it would grant or the step-up it would demand, and every
reason. Nothing is minted or recorded. Exits non-zero when policy denies.

The user's authentication is assumed from --acr, --amr and --auth-age
(how long ago the user signed in; default: just now).`,
		Example: `  xaa policy explain --user alice --app assistant \
    --resource https://mcp.example.com/files --scope "files:read files:write" \
    --acr urn:openxaa:acr:mfa --auth-age 5m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			scopes, err := oauth.ParseScope(scope)
			if err != nil {
				return fmt.Errorf("--scope: %s", strings.TrimPrefix(err.Error(), "oauth: invalid_scope: "))
			}
			if authAge < 0 {
				return errors.New("--auth-age must not be negative")
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
			in.Now = time.Now()
			in.Scopes = scopes
			in.Auth = policy.Authentication{Time: in.Now.Add(-authAge).Truncate(time.Second), ACR: acr, AMR: amr}
			d, err := idp.Explain(cmd.Context(), db, in)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprint(e.stdout, d.Explain()); err != nil {
				return err
			}
			if !d.Allow {
				return errPolicyDenies
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&in.User, "user", "", "user id or username (required)")
	f.StringVar(&in.App, "app", "", "requesting app's client_id at the IdP (required)")
	f.StringVar(&in.Resource, "resource", "", "resource URI (required)")
	f.StringVar(&in.Audience, "audience", "", "authorization server issuer (default: the one governing the resource)")
	f.StringVar(&scope, "scope", "", `space-separated scopes (default: ask for the default grant)`)
	f.StringVar(&acr, "acr", policy.ACRPassword, "acr of the user's sign-in")
	f.StringSliceVar(&amr, "amr", nil, "amr values of the user's sign-in")
	f.DurationVar(&authAge, "auth-age", 0, "how long ago the user signed in")
	for _, name := range []string{"user", "app", "resource"} {
		_ = c.MarkFlagRequired(name)
	}
	return c
}
