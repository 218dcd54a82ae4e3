// Command jwtbearer measures an RFC 7523 jwt-bearer token endpoint, any
// vendor's: it mints a fresh assertion with a unique jti for every request,
// signed with its own key (ES256 or RS256), and sends them from N workers
// over N loopback keep-alive connections for a fixed time, then prints
// redemptions/s, latency percentiles and every non-success by kind.
//
// It exists to put OpenXAA's authorization server and Ory Hydra side by
// side with one load generator (see ../README.md). Subcommands:
//
//	keygen       write a signing key (PKCS#8 PEM) and print its public JWKS
//	jwks         serve the key's public JWKS over HTTP (OpenXAA fetches it)
//	hydra-setup  register the key as a Hydra jwt-bearer trust grant and create the client
//	load         run the load and print the result
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "jwtbearer:", err)
		os.Exit(1)
	}
}

// errUsage is returned for a missing or unknown subcommand.
var errUsage = errors.New("usage: jwtbearer keygen|jwks|hydra-setup|load [flags] (-h for each)")

// run is the whole program, with the process's arguments (without the
// program name) and output passed in.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	switch args[0] {
	case "keygen":
		return keygenCmd(args[1:], stdout)
	case "jwks":
		return jwksCmd(ctx, args[1:], stdout)
	case "hydra-setup":
		return hydraSetupCmd(ctx, args[1:], stdout)
	case "load":
		return loadCmd(ctx, args[1:], stdout)
	default:
		return fmt.Errorf("unknown subcommand %q; %w", args[0], errUsage)
	}
}
