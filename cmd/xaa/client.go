package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/openxaa/xaa/xaaclient"
)

// clientProfile is the end-user client's configuration file (default
// <user config dir>/xaa/client.yaml): which IdP to sign in at and the
// requesting app's registrations there and at each authorization server.
// `xaa demo` writes one.
type clientProfile struct {
	Issuer       string `yaml:"issuer"`
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	// ClientSecretFile and PrivateKeyFile keep secrets out of the file;
	// relative paths are relative to the profile.
	ClientSecretFile string                `yaml:"client_secret_file"`
	PrivateKeyFile   string                `yaml:"private_key_file"` // PEM PKCS#8, P-256 or Ed25519: private_key_jwt
	AuthMethod       string                `yaml:"auth_method"`
	RedirectURI      string                `yaml:"redirect_uri"`
	LoginScopes      []string              `yaml:"login_scopes"`
	CacheFile        string                `yaml:"cache_file"`
	AllowLoopback    *bool                 `yaml:"allow_loopback_http"` // default: true when the issuer is http on loopback
	AuthServers      []profileRegistration `yaml:"auth_servers"`
}

// profileRegistration is the app's registration at one authorization
// server.
type profileRegistration struct {
	Issuer           string `yaml:"issuer"`
	ClientID         string `yaml:"client_id"`
	ClientSecret     string `yaml:"client_secret"`
	ClientSecretFile string `yaml:"client_secret_file"`
	PrivateKeyFile   string `yaml:"private_key_file"`
	AuthMethod       string `yaml:"auth_method"`
}

// defaultProfilePath is where `xaa login` and friends look without
// --profile or XAA_PROFILE.
func defaultProfilePath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no user config directory (%v); pass --profile", err)
	}
	return filepath.Join(dir, "xaa", "client.yaml"), nil
}

// loadProfile reads and checks a profile. A profile holding a secret must
// be private to its owner.
func loadProfile(path string) (*clientProfile, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no client profile at %s: create one (see `xaa login --help`) or pass --profile", path)
	}
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p clientProfile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	hasSecret := p.ClientSecret != ""
	for _, r := range p.AuthServers {
		hasSecret = hasSecret || r.ClientSecret != ""
	}
	if runtime.GOOS != "windows" {
		perm := fi.Mode().Perm()
		if perm&0o022 != 0 {
			return nil, fmt.Errorf("%s is writable by others (mode %04o); chmod 600 it", path, perm)
		}
		if hasSecret && perm&0o077 != 0 {
			return nil, fmt.Errorf("%s holds a client secret and is readable by others (mode %04o); chmod 600 it, or use client_secret_file", path, perm)
		}
	}
	switch {
	case p.Issuer == "":
		return nil, fmt.Errorf("%s: issuer is required (the IdP's issuer URL)", path)
	case p.ClientID == "":
		return nil, fmt.Errorf("%s: client_id is required (the app's client at the IdP)", path)
	case len(p.AuthServers) == 0:
		return nil, fmt.Errorf("%s: auth_servers must list the app's registration at one authorization server at least", path)
	}
	return &p, nil
}

// credentials turns one registration of a profile into xaaclient
// credentials, reading secret and key files relative to dir.
func credentials(dir, where, clientID, secret, secretFile, keyFile, method string) (xaaclient.Credentials, error) {
	c := xaaclient.Credentials{ClientID: clientID, ClientSecret: secret, AuthMethod: method}
	rel := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	if secretFile != "" {
		if secret != "" {
			return c, fmt.Errorf("%s: give client_secret or client_secret_file, not both", where)
		}
		b, err := os.ReadFile(rel(secretFile))
		if err != nil {
			return c, fmt.Errorf("%s: %v", where, err)
		}
		c.ClientSecret = strings.TrimSpace(string(b))
	}
	if keyFile != "" {
		b, err := os.ReadFile(rel(keyFile))
		if err != nil {
			return c, fmt.Errorf("%s: %v", where, err)
		}
		block, _ := pem.Decode(b)
		if block == nil {
			return c, fmt.Errorf("%s: %s holds no PEM block", where, keyFile)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return c, fmt.Errorf("%s: %s: %v (want a PKCS#8 P-256 or Ed25519 key)", where, keyFile, err)
		}
		signer, ok := k.(crypto.Signer)
		if !ok {
			return c, fmt.Errorf("%s: %s is not a signing key", where, keyFile)
		}
		c.PrivateKey = signer
	}
	return c, nil
}

// buildVersion is the module version of this binary, "(devel)" when built
// from a checkout.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// clientFlags are the flags every end-user command shares.
type clientFlags struct {
	profile string
	noLogin bool
	verbose bool
}

func (f *clientFlags) register(c *cobra.Command, loginFlag bool) {
	c.Flags().StringVar(&f.profile, "profile", "", "client profile (env XAA_PROFILE; default <user config dir>/xaa/client.yaml)")
	c.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "log what the client does to stderr (never a token)")
	if loginFlag {
		c.Flags().BoolVar(&f.noLogin, "no-login", false, "fail instead of asking you to sign in (for scripts)")
	}
}

// newXAAClient builds the xaaclient of the profile. Sign-in URLs and
// messages go to stderr only: stdout carries the command's result (or, for
// bridge, the MCP protocol).
func newXAAClient(e *env, f *clientFlags, noBrowser bool) (*xaaclient.Client, *clientProfile, error) {
	path := f.profile
	if path == "" {
		path = e.getenv("XAA_PROFILE")
	}
	if path == "" {
		var err error
		if path, err = defaultProfilePath(); err != nil {
			return nil, nil, err
		}
	}
	p, err := loadProfile(path)
	if err != nil {
		return nil, nil, err
	}
	dir := filepath.Dir(path)
	app, err := credentials(dir, "the app at the IdP", p.ClientID, p.ClientSecret, p.ClientSecretFile, p.PrivateKeyFile, p.AuthMethod)
	if err != nil {
		return nil, nil, err
	}
	servers := map[string]xaaclient.Credentials{}
	for i, r := range p.AuthServers {
		where := fmt.Sprintf("auth_servers[%d]", i)
		if r.Issuer == "" {
			return nil, nil, fmt.Errorf("%s: %s: issuer is required", path, where)
		}
		if _, dup := servers[r.Issuer]; dup {
			return nil, nil, fmt.Errorf("%s: %s: issuer %s is listed twice", path, where, r.Issuer)
		}
		if servers[r.Issuer], err = credentials(dir, where, r.ClientID, r.ClientSecret, r.ClientSecretFile, r.PrivateKeyFile, r.AuthMethod); err != nil {
			return nil, nil, err
		}
	}
	cache := p.CacheFile
	if cache != "" && !filepath.IsAbs(cache) {
		cache = filepath.Join(dir, cache)
	}
	allowLoopback := strings.HasPrefix(p.Issuer, "http://127.") || strings.HasPrefix(p.Issuer, "http://localhost") ||
		strings.HasPrefix(p.Issuer, "http://[::1]")
	if p.AllowLoopback != nil {
		allowLoopback = *p.AllowLoopback
	}
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelInfo
	}
	o := &xaaclient.Options{
		Issuer:            p.Issuer,
		Client:            app,
		AuthServers:       servers,
		LoginScopes:       p.LoginScopes,
		RedirectURL:       p.RedirectURI,
		CacheFile:         cache,
		AllowLoopbackHTTP: allowLoopback,
		NonInteractive:    f.noLogin,
		Browser:           xaaclient.PrintAndOpen(e.stderr, !noBrowser && e.getenv("XAA_NO_BROWSER") == ""),
		Logger:            slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level})),
	}
	if !f.noLogin {
		o.StepUp = func(_ context.Context, ch *xaaclient.StepUpChallenge) error {
			_, err := fmt.Fprintf(e.stderr, "%s asks you to sign in again (%s).\n", stepUpWho(ch), stepUpWhat(ch))
			return err
		}
	}
	c, err := xaaclient.New(o)
	if err != nil {
		return nil, nil, err
	}
	return c, p, nil
}

func stepUpWho(ch *xaaclient.StepUpChallenge) string {
	if ch.FromIdP {
		return "Your identity provider"
	}
	return ch.Resource
}

func stepUpWhat(ch *xaaclient.StepUpChallenge) string {
	var parts []string
	if len(ch.ACRValues) > 0 {
		parts = append(parts, "a stronger sign-in: "+strings.Join(ch.ACRValues, " or "))
	}
	if ch.MaxAge >= 0 {
		parts = append(parts, fmt.Sprintf("a sign-in less than %s old", ch.MaxAge))
	}
	if len(parts) == 0 && ch.Description != "" {
		parts = append(parts, ch.Description)
	}
	return strings.Join(parts, ", ")
}

func newTokenCommand(e *env) *cobra.Command {
	var f clientFlags
	var scopes []string
	c := &cobra.Command{
		Use:   "token MCP-URL",
		Short: "Print an access token for an MCP server (for scripts)",
		Long: `token prints only an access token for the MCP server at MCP-URL on stdout:
from the cache, or by discovery, token exchange at your IdP (an ID-JAG) and the
jwt-bearer grant at the server's authorization server. Without --scope the
server's challenge decides. Sign in first with xaa login, or let this command
ask you (unless --no-login).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, _, err := newXAAClient(e, &f, false)
			if err != nil {
				return err
			}
			tok, err := client.Token(cmd.Context(), args[0], scopes...)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(e.stdout, tok.AccessToken)
			return err
		},
	}
	f.register(c, true)
	c.Flags().StringSliceVar(&scopes, "scope", nil, "scope to ask for (repeatable)")
	return c
}

// connect opens a go-sdk client session to endpoint through xaaclient.
func connect(ctx context.Context, client *xaaclient.Client, endpoint string) (*mcp.ClientSession, error) {
	h, err := client.Handler(endpoint)
	if err != nil {
		return nil, err
	}
	cl := mcp.NewClient(&mcp.Implementation{Name: "xaa", Version: buildVersion()}, nil)
	return cl.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, OAuthHandler: h, DisableStandaloneSSE: true}, nil)
}

func newToolsCommand(e *env) *cobra.Command {
	var f clientFlags
	c := &cobra.Command{
		Use:   "tools MCP-URL",
		Short: "List the tools of an MCP server you may use",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, _, err := newXAAClient(e, &f, false)
			if err != nil {
				return err
			}
			cs, err := connect(cmd.Context(), client, args[0])
			if err != nil {
				return err
			}
			defer cs.Close()
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			for tool, err := range cs.Tools(cmd.Context(), nil) {
				if err != nil {
					return err
				}
				desc, _, _ := strings.Cut(strings.TrimSpace(tool.Description), "\n")
				if _, err := fmt.Fprintf(tw, "%s\t%s\n", tool.Name, desc); err != nil {
					return err
				}
			}
			return tw.Flush()
		},
	}
	f.register(c, true)
	return c
}

// toolArguments parses key=value pairs: a value that is valid JSON is
// used as JSON (numbers, booleans, objects, quoted strings), anything
// else as a string.
func toolArguments(pairs []string) (map[string]any, error) {
	args := map[string]any{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("argument %q is not key=value", p)
		}
		if _, dup := args[k]; dup {
			return nil, fmt.Errorf("argument %q is given twice", k)
		}
		if !json.Valid([]byte(v)) {
			args[k] = v
			continue
		}
		// UseNumber keeps 12345678901234567890 exact.
		dec := json.NewDecoder(strings.NewReader(v))
		dec.UseNumber()
		var j any
		if err := dec.Decode(&j); err != nil {
			return nil, fmt.Errorf("argument %q: %v", k, err)
		}
		args[k] = j
	}
	return args, nil
}

// errToolFailed makes `xaa call` exit non-zero when the tool reported an
// error (its content is printed all the same).
var errToolFailed = errors.New("the tool reported an error")

func newCallCommand(e *env) *cobra.Command {
	var f clientFlags
	c := &cobra.Command{
		Use:   "call MCP-URL TOOL [key=value ...]",
		Short: "Call a tool of an MCP server and print its result",
		Long: `call calls TOOL with the given arguments and prints the result's content: text
as is, anything else as JSON. A value that parses as JSON is sent as JSON
(count=3, full=true, filter='{"a":1}', name='"42"'); anything else as a string.
The exit status is non-zero when the tool reports an error.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			toolArgs, err := toolArguments(args[2:])
			if err != nil {
				return err
			}
			client, _, err := newXAAClient(e, &f, false)
			if err != nil {
				return err
			}
			cs, err := connect(cmd.Context(), client, args[0])
			if err != nil {
				return err
			}
			defer cs.Close()
			res, err := cs.CallTool(cmd.Context(), &mcp.CallToolParams{Name: args[1], Arguments: toolArgs})
			if err != nil {
				return err
			}
			if err := printContent(e.stdout, res); err != nil {
				return err
			}
			if res.IsError {
				return errToolFailed
			}
			return nil
		},
	}
	f.register(c, true)
	return c
}

// printContent writes a tool result: each text block as is, other blocks
// as JSON, and the structured content when there is nothing else.
func printContent(w io.Writer, res *mcp.CallToolResult) error {
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			if _, err := fmt.Fprintln(w, t.Text); err != nil {
				return err
			}
			continue
		}
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintln(w, string(b)); err != nil {
			return err
		}
	}
	if len(res.Content) == 0 && res.StructuredContent != nil {
		b, err := json.MarshalIndent(res.StructuredContent, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	return nil
}
