// Command files-mcp serves the demo "files" MCP server over streamable
// HTTP (-addr) or stdio (-stdio). It does no authorization of its own: put
// the OpenXAA gateway in front of it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/openxaa/xaa/examples/files"
	"github.com/openxaa/xaa/examples/internal/serve"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "files-mcp:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("files-mcp", flag.ContinueOnError)
	fl.SetOutput(stderr)
	root := fl.String("root", ".", "directory the tools operate in")
	addr := fl.String("addr", "", "serve streamable HTTP on this address (e.g. 127.0.0.1:9001)")
	stdio := fl.Bool("stdio", false, "serve MCP on stdin/stdout")
	if err := fl.Parse(args); err != nil {
		return err
	}
	s, err := files.New(&files.Options{Root: *root})
	if err != nil {
		return err
	}
	return serve.Run(ctx, s, *addr, *stdio, stdin, stdout, stderr)
}
