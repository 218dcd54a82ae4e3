package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/openxaa/xaa/internal/config"
	"github.com/openxaa/xaa/internal/gateway"
	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/secretfile"
	"github.com/openxaa/xaa/internal/store/sqlstore"
	"github.com/openxaa/xaa/mcpauth"
)

// roleGateway is the name of the gateway role in --flags and messages.
const roleGateway = "gateway"

// gatewayBodyLimit is the server-wide request-body cap when the gateway
// runs: MCP requests (a file to write, say) outgrow the 64 KiB that token
// requests need. mcpauth caps each MCP POST at this size too, and the
// token endpoints keep their own tighter caps.
const gatewayBodyLimit = mcpauth.DefaultMaxBodyBytes

func newGatewayCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "gateway",
		Short: "Run only the MCP gateway of the config (xaa serve --gateway)",
		Long: `gateway runs the MCP gateway role alone on listen.addr: each route of
gateway.routes mounts a protected MCP endpoint (and its RFC 9728 metadata)
in front of an upstream MCP server, streamable HTTP or a stdio command
launched per session. The gateway verifies access tokens issued by the
route's authorization server for the route's resource, enforces the
per-tool scopes and step-up of the resource policy, never forwards the
client's token, polls the revocation list, and writes an audit record for
every tool call to the database. It is xaa serve --gateway.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, e)
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, []string{roleGateway}, e)
		},
	}
}

// serveRoles decides what serve runs: the issuer roles (which own signing
// keys) and whether the gateway runs. With no names, every role the config
// sets up runs.
func serveRoles(cfg *config.Config, only []string) ([]role, bool, error) {
	configured := len(cfg.Gateway.Routes) > 0
	var issuerRoles []string
	asked := false
	for _, n := range only {
		if n == roleGateway {
			asked = true
			continue
		}
		issuerRoles = append(issuerRoles, n)
	}
	if asked && !configured {
		return nil, false, errors.New("the gateway role needs gateway.routes in the config file (see examples/config.yaml)")
	}
	switch {
	case len(only) == 0:
		all := roles(cfg)
		if len(all) == 0 && !configured {
			return nil, false, errors.New("nothing to serve: set issuers.idp and/or issuers.authserver, or gateway.routes, in the config file")
		}
		return all, configured, nil
	case len(issuerRoles) == 0:
		return nil, true, nil
	default:
		rs, err := selectRoles(cfg, issuerRoles)
		return rs, asked, err
	}
}

// newGateway builds the gateway from the gateway section: secrets are read
// from their files, every tool-call decision is audited in db, and each
// route's authorization server is contacted now, so a route that cannot
// enforce its policy stops startup.
func newGateway(ctx context.Context, cfg *config.Config, db *sqlstore.DB, getenv func(string) string, logger *slog.Logger) (*gateway.Gateway, error) {
	routes := make([]gateway.Route, 0, len(cfg.Gateway.Routes))
	for i := range cfg.Gateway.Routes {
		r, err := gatewayRoute(&cfg.Gateway.Routes[i], i, getenv)
		if err != nil {
			return nil, err
		}
		routes = append(routes, r)
	}
	gw, err := gateway.New(ctx, &gateway.Options{
		Routes:            routes,
		Audit:             gateway.TxAudit(db),
		AllowLoopbackHTTP: cfg.DevMode,
		MaxBodyBytes:      gatewayBodyLimit,
		Logger:            logger.With("role", roleGateway),
	})
	if err != nil {
		return nil, err
	}
	return gw, nil
}

// gatewayRoute turns one validated config route into the gateway's. The
// client secret may come from the environment instead of the file:
// XAA_GATEWAY_<index>_CLIENT_SECRET, or _FILE naming a file.
func gatewayRoute(c *config.GatewayRoute, i int, getenv func(string) string) (gateway.Route, error) {
	where := fmt.Sprintf("gateway.routes[%d]", i)
	secret := c.AuthServer.ClientSecret.Reveal()
	secretFile := c.AuthServer.ClientSecretFile
	env := fmt.Sprintf("XAA_GATEWAY_%d_CLIENT_SECRET", i)
	switch v, f := getenv(env), getenv(env+"_FILE"); {
	case v != "" && f != "":
		return gateway.Route{}, fmt.Errorf("both %s and %s_FILE are set; unset one of them", env, env)
	case v != "":
		secret, secretFile = v, ""
	case f != "":
		secret, secretFile = "", f
	}
	if secretFile != "" {
		s, err := readSecretFile(secretFile)
		if err != nil {
			return gateway.Route{}, fmt.Errorf("%s.authserver.client_secret_file: %w", where, err)
		}
		secret = s
	}
	r := gateway.Route{
		Path:          c.Path,
		Resource:      c.Resource,
		Issuer:        c.AuthServer.Issuer,
		ClientID:      c.AuthServer.ClientID,
		ClientSecret:  secret,
		Introspection: c.VerifyMethod() == config.GatewayVerifyIntrospection,
		UpstreamURL:   c.Upstream.URL.Reveal(),
		Command:       slices.Clone(c.Upstream.Command),
		MaxChildren:   c.Upstream.MaxChildren,
		IdleTimeout:   time.Duration(c.Upstream.IdleTimeout),
		PollInterval:  c.PollInterval(),
		MaxStaleness:  c.MaxStaleness(),
		// gateway.New checks each is a bare origin.
		AllowedOrigins: slices.Clone(c.AllowedOrigins),
	}
	if len(c.Upstream.Command) > 0 {
		r.Env = childEnv(c.Upstream.Env, os.Getenv("PATH"))
	}
	if cr := c.Upstream.Credential; cr != nil {
		value := cr.Value.Reveal()
		if cr.ValueFile != "" {
			v, err := readSecretFile(cr.ValueFile)
			if err != nil {
				return gateway.Route{}, fmt.Errorf("%s.upstream.credential.value_file: %w", where, err)
			}
			value = v
		}
		r.Credential = &gateway.Credential{Header: cr.Header, Value: cr.Prefix + value}
	}
	if c.Tools != nil {
		r.Tools = make(map[string]mcpauth.ToolRule, len(c.Tools))
		for name, t := range c.Tools {
			r.Tools[name] = mcpauth.ToolRule{Scopes: slices.Clone(t.Scopes), ACRValues: slices.Clone(t.ACRValues), MaxAge: time.Duration(t.MaxAge)}
		}
	}
	return r, nil
}

// childEnv is a stdio server's whole environment: the configured
// variables, plus PATH when they do not set it. The gateway's own
// environment holds its secrets (database URL, wrapping key) and is never
// inherited.
func childEnv(env map[string]config.Secret, path string) []string {
	out := make([]string, 0, len(env)+1)
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k].Reveal())
	}
	if _, ok := env["PATH"]; !ok && path != "" {
		out = append(out, "PATH="+path)
	}
	return out
}

// maxSecretFile caps a secret file the gateway reads.
const maxSecretFile = 64 << 10

// readSecretFile reads a secret from a regular file that only its owner
// can read (as the wrapping key file), dropping one trailing newline.
func readSecretFile(path string) (string, error) {
	data, err := secretfile.Read(path, maxSecretFile)
	if err != nil {
		return "", err
	}
	defer clear(data)
	if d, ok := bytes.CutSuffix(data, []byte("\r\n")); ok {
		data = d
	} else {
		data = bytes.TrimSuffix(data, []byte("\n"))
	}
	if len(data) == 0 {
		return "", fmt.Errorf("%s is empty", path)
	}
	if bytes.ContainsAny(data, "\r\n\x00") {
		return "", fmt.Errorf("%s holds more than one line", path)
	}
	return string(data), nil
}

// gatewayHelp is appended to serve's help.
var gatewayHelp = strings.TrimSpace(`
With gateway.routes set (or --gateway), the MCP gateway's routes are
mounted on the same listener: each protected MCP endpoint and its RFC 9728
metadata (see xaa gateway --help).`)

// serveWithGateway serves srv and, once it accepts connections, builds the
// gateway and mounts its routes on mux. A gateway that cannot start (its
// authorization server unreachable or refusing, no tool policy) stops the
// server with that error; /readyz answers 503 until the routes are
// mounted. When the server stops, every stdio session ends.
func serveWithGateway(ctx context.Context, cfg *config.Config, db *sqlstore.DB, getenv func(string) string, srv *httpserver.Server, mux *http.ServeMux, started *atomic.Bool, logger *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()

	gw, err := newGateway(ctx, cfg, db, getenv, logger)
	if err == nil {
		err = gw.Register(mux)
		if err != nil {
			_ = gw.Close()
		}
	}
	if err != nil {
		cancel()
		<-served
		return err
	}
	defer gw.Close()
	polled := make(chan struct{})
	go func() { defer close(polled); _ = gw.Run(ctx) }()
	started.Store(true)
	logger.Info("gateway routes mounted", "routes", len(cfg.Gateway.Routes))
	err = <-served
	cancel()
	<-polled
	return err
}
