package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/openxaa/xaa/xaaclient"
)

func newLoginCommand(e *env) *cobra.Command {
	var f clientFlags
	var acr []string
	var maxAge time.Duration
	var force, noBrowser bool
	c := &cobra.Command{
		Use:   "login",
		Short: "Sign in at your organisation's identity provider",
		Long: `login signs you in at the identity provider named in your client profile, in
the browser: the authorization code flow with PKCE on a loopback redirect
(http://127.0.0.1, a random port). The ID token is verified, and it and the
IdP refresh token are kept in a private (0600) file under your config
directory, so xaa token, tools, call and bridge work without signing in again
until the IdP session ends.

The profile (--profile, env XAA_PROFILE, default <user config dir>/xaa/client.yaml)
names the IdP and the app's registrations; xaa demo writes one:

  issuer: https://idp.example.com
  client_id: assistant
  client_secret_file: assistant.secret    # or client_secret, or private_key_file (PKCS#8 PEM)
  auth_servers:
    - issuer: https://as.example.com
      client_id: assistant-at-files
      client_secret_file: files.secret

The sign-in URL is printed on stderr and opened in your browser when possible.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, _, err := newXAAClient(e, &f, noBrowser)
			if err != nil {
				return err
			}
			lo := &xaaclient.LoginOptions{ACRValues: acr, MaxAge: maxAge, ForceLogin: force}
			if err := client.Login(cmd.Context(), lo); err != nil {
				return err
			}
			id, err := client.Identity()
			if err != nil {
				return err
			}
			line := fmt.Sprintf("Signed in at %s as %s", id.Issuer, id.Subject)
			if id.ACR != "" {
				line += " (" + id.ACR + ")"
			}
			if !id.Renewable {
				line += "; no refresh token: you will sign in again when the ID token expires at " + id.IDTokenExpiry.Local().Format(time.Kitchen)
			}
			_, err = fmt.Fprintln(e.stdout, line)
			return err
		},
	}
	f.register(c, false)
	c.Flags().StringSliceVar(&acr, "acr", nil, "authentication context class to ask for (repeatable), e.g. urn:openxaa:acr:mfa")
	c.Flags().DurationVar(&maxAge, "max-age", 0, "oldest acceptable authentication (e.g. 10m)")
	c.Flags().BoolVar(&force, "force", false, "authenticate again even with a live IdP session (prompt=login)")
	c.Flags().BoolVar(&noBrowser, "no-browser", false, "only print the sign-in URL (env XAA_NO_BROWSER)")
	return c
}
