// Package serve runs a demo MCP server on streamable HTTP or stdio.
package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Run serves s on addr (streamable HTTP at /mcp) or on stdin/stdout, until
// ctx ends or the stdio peer hangs up.
func Run(ctx context.Context, s *mcp.Server, addr string, stdio bool, stdin io.Reader, stdout, stderr io.Writer) error {
	switch {
	case stdio && addr != "":
		return errors.New("choose one of -addr and -stdio")
	case stdio:
		t := &mcp.IOTransport{Reader: io.NopCloser(stdin), Writer: nopWriteCloser{stdout}}
		return s.Run(ctx, t)
	case addr == "":
		return errors.New("one of -addr or -stdio is required")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stderr, "serving MCP on http://%s/mcp\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
