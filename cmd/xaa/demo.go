package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/openxaa/xaa/examples/crm"
	"github.com/openxaa/xaa/examples/files"
	"github.com/openxaa/xaa/internal/config"
	"github.com/openxaa/xaa/internal/directory"
)

// DefaultDemoPort is where `xaa demo` listens unless --port says otherwise.
// Issuer URLs include the port, so it is fixed per state directory run.
const DefaultDemoPort = 8470

func newDemoCommand(e *env) *cobra.Command {
	var stateDir string
	var port int
	var check, reset bool
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole XAA flow on loopback: IdP, authorization server, gateway, two MCP servers",
		Long: `demo starts, in this one process and on 127.0.0.1 only, the enterprise IdP, the
resource authorization server, the MCP gateway and two demo MCP servers
("files" over streamable HTTP, "crm" as a stdio child of the gateway), with
a seeded organisation in an embedded SQLite file under the state directory,
and prints a guided scenario to try with the xaa CLI in another terminal.

--check runs that scenario unattended (allowed, narrowed, denied by policy,
step-up rule, revoked) and exits non-zero if any step misbehaves.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if stateDir == "" {
				d, err := defaultDemoStateDir(e)
				if err != nil {
					return err
				}
				stateDir = d
			}
			if reset {
				if err := os.RemoveAll(stateDir); err != nil {
					return err
				}
			}
			return runDemo(cmd.Context(), e, stateDir, port, check)
		},
	}
	c.Flags().StringVar(&stateDir, "state-dir", "", "directory for the demo's database, keys and config (default: $XDG_STATE_HOME/xaa/demo)")
	c.Flags().IntVar(&port, "port", DefaultDemoPort, "loopback port of the IdP, authorization server and gateway")
	c.Flags().BoolVar(&check, "check", false, "run the scenario unattended and exit (non-zero when a step misbehaves)")
	c.Flags().BoolVar(&reset, "reset", false, "delete the state directory first")
	c.AddCommand(newDemoMCPServerCommand(e), newDemoTOTPCommand(e))
	return c
}

// newDemoMCPServerCommand is how the gateway launches the stdio demo
// server: the xaa binary itself, so the demo needs nothing else installed.
func newDemoMCPServerCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:    "mcp-server crm",
		Short:  "Serve the demo crm MCP server on stdin/stdout (the gateway runs this)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "crm" {
				return fmt.Errorf("unknown demo server %q (only crm runs on stdio)", args[0])
			}
			t := &mcp.IOTransport{Reader: io.NopCloser(e.stdin), Writer: nopWriteCloser{e.stdout}}
			return crm.New(&crm.Options{Version: buildVersion()}).Run(cmd.Context(), t)
		},
	}
}

// newDemoTOTPCommand prints alice's current one-time code, for a demo
// user without an authenticator app at hand.
func newDemoTOTPCommand(e *env) *cobra.Command {
	var stateDir string
	c := &cobra.Command{
		Use:   "totp",
		Short: "Print the demo user alice's current TOTP code",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if stateDir == "" {
				d, err := defaultDemoStateDir(e)
				if err != nil {
					return err
				}
				stateDir = d
			}
			s, err := readDemoSecrets(filepath.Join(stateDir, "secrets.json"))
			if err != nil {
				return err
			}
			secret, err := directory.ParseTOTPSecret(s.AliceTOTP)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(e.stdout, directory.TOTPCode(secret, directory.TOTPStep(time.Now())))
			return err
		},
	}
	c.Flags().StringVar(&stateDir, "state-dir", "", "the demo's state directory (default: $XDG_STATE_HOME/xaa/demo)")
	return c
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// demoCommand is how the guide spells the xaa command: `go run ./cmd/xaa`
// when this process came from go run, else the binary's path.
func demoCommand(exe string) string {
	if strings.Contains(exe, "go-build") {
		return "go run ./cmd/xaa"
	}
	return exe
}

func defaultDemoStateDir(e *env) (string, error) {
	if d := e.getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "xaa", "demo"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home directory for the demo state (use --state-dir): %w", err)
	}
	return filepath.Join(home, ".local", "state", "xaa", "demo"), nil
}

func runDemo(ctx context.Context, e *env, stateDir string, port int, check bool) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("--port %d is not a TCP port", port)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	dir, err := filepath.Abs(stateDir)
	if err != nil {
		return err
	}
	// Fail early and clearly when the port is taken: the issuer URLs are
	// built from it.
	probe, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("port %d on 127.0.0.1 is in use (another xaa demo?); pick another with --port: %w", port, err)
	}
	probe.Close()

	l := newDemoLayout(dir, port)
	secrets, err := loadOrCreateSecrets(l.secrets)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the xaa binary for the stdio demo server: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	if err := os.MkdirAll(l.filesRoot, 0o700); err != nil {
		return err
	}
	// The files MCP server: plain go-sdk on its own loopback port, which
	// accepts only the gateway's own upstream credential.
	fs, err := files.New(&files.Options{Root: l.filesRoot, Version: buildVersion()})
	if err != nil {
		return err
	}
	fln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer fln.Close()
	upstream := requireBearer(secrets.UpstreamSecret, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return fs }, nil))
	fsrv := &http.Server{Handler: upstream, ReadHeaderTimeout: 10 * time.Second}
	go fsrv.Serve(fln)
	defer fsrv.Close()
	_, filesPort, _ := net.SplitHostPort(fln.Addr().String())

	if err := writeDemoFiles(l, secrets, exe, filesPort); err != nil {
		return err
	}
	cfg, err := config.Load(l.config, func(string) string { return "" })
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	logger := newLogger(cfg.Log, e.stderr)
	db, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	if _, err := db.Migrate(ctx); err != nil {
		db.Close()
		return fmt.Errorf("migrate the demo database: %w", err)
	}
	db.Close()

	serveOut := io.Discard
	if !check {
		serveOut = e.stdout
	}
	serveErr := make(chan error, 1)
	go func() {
		serveErr <- serve(ctx, cfg, nil, &env{getenv: func(string) string { return "" }, stdin: e.stdin, stdout: serveOut, stderr: e.stderr})
	}()
	if err := waitReady(ctx, l.base+"/readyz", serveErr); err != nil {
		return err
	}
	if err := restoreDemoConnections(ctx, l); err != nil {
		return err
	}

	if check {
		err := runDemoCheck(ctx, e.stdout, l, secrets)
		cancel()
		if serr := <-serveErr; serr != nil && !errors.Is(serr, context.Canceled) {
			fmt.Fprintf(e.stderr, "demo: server stopped with: %v\n", serr)
		}
		return err
	}
	printDemoGuide(e.stdout, l, secrets, demoCommand(exe))
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
		return <-serveErr
	}
}

// requireBearer is the demo upstream's own (non-XAA) credential check: it
// proves the gateway injects its configured secret and never the user's
// token.
func requireBearer(secret string, next http.Handler) http.Handler {
	want := []byte("Bearer " + secret)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			http.Error(w, "the files server accepts only the gateway's upstream credential", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func waitReady(ctx context.Context, url string, serveErr <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-serveErr:
			if err == nil {
				err = errors.New("the server stopped")
			}
			return fmt.Errorf("the demo server did not start: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the demo server was not ready at %s within 30 s", url)
		}
	}
}
