package main

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// env is what every subcommand may use from the process.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

func newRootCommand(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "xaa",
		Short: "OpenXAA: Cross App Access (ID-JAG) for MCP",
		Long: `OpenXAA puts the enterprise identity provider in the middle of every
AI-app-to-MCP-server connection: the IdP mints short-lived ID-JAGs by token
exchange after policy checks, and the MCP server's authorization server
redeems them for audience-bound access tokens.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.PersistentFlags().String("config", "", "path to the YAML config file (env XAA_CONFIG)")
	root.AddCommand(
		newVersionCommand(e),
		newConfigCommand(e),
		newMigrateCommand(e),
		newKeysCommand(e),
		newServeCommand(e),
		newDemoCommand(e),
		newGatewayCommand(e),
		newPolicyCommand(e),
		newSeedCommand(e),
		newFenceCommand(e),
		newConnectionCommand(e),
		newAuditCommand(e),
		newAdminCommand(e),
		newLoginCommand(e),
		newTokenCommand(e),
		newToolsCommand(e),
		newCallCommand(e),
		newBridgeCommand(e),
	)
	return root
}

func newVersionCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			version := "(devel)"
			if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
				version = bi.Main.Version
			}
			_, err := fmt.Fprintln(e.stdout, "xaa", version)
			return err
		},
	}
}
