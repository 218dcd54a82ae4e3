package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/openxaa/xaa/internal/admin"
	"github.com/openxaa/xaa/internal/audit"
	"github.com/openxaa/xaa/internal/config"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/jwkscache"
	"github.com/openxaa/xaa/internal/keyring"
	"github.com/openxaa/xaa/internal/ledger"
	"github.com/openxaa/xaa/internal/store/sqlstore"
)

// --- the server role ---

const roleAdmin = "admin"

// adminRole takes "admin" out of the roles serve was asked for. It reports
// whether the admin API runs, and whether it runs alone (so that the other
// roles' "everything configured" default does not apply).
func adminRole(cfg *config.Config, only []string) (rest []string, with, alone bool, err error) {
	asked := slices.Contains(only, roleAdmin)
	rest = slices.DeleteFunc(slices.Clone(only), func(s string) bool { return s == roleAdmin })
	switch {
	case asked && !cfg.Admin.Configured():
		return nil, false, false, errors.New("the admin role needs admin.endpoint in the config file (see examples/config.yaml)")
	case asked:
		return rest, true, len(rest) == 0, nil
	case len(only) > 0:
		return rest, false, false, nil
	}
	// No role named: every configured one. The admin API may be all there is.
	with = cfg.Admin.Configured()
	alone = with && len(roles(cfg)) == 0 && len(cfg.Gateway.Routes) == 0
	return rest, with, alone, nil
}

// newAdminServer builds the admin API from the admin section. Its keys are
// derived from the wrapping key; the IdP's signing keys come from this
// process when it runs the IdP, else from the IdP's JWKS.
func newAdminServer(cfg *config.Config, db *sqlstore.DB, wk []byte, idpKeys jose.KeySet, getenv func(string) string, logger *slog.Logger) (*admin.Server, error) {
	a := &cfg.Admin
	log := logger.With("role", roleAdmin)
	cursorKey, err := keyring.DeriveKey(wk, "admin cursor mac")
	if err != nil {
		return nil, err
	}
	sessionKey, err := keyring.DeriveKey(wk, "admin session")
	if err != nil {
		return nil, err
	}
	led, err := ledger.New(&ledger.Options{Store: db, Logger: log})
	if err != nil {
		return nil, err
	}
	roles := make(map[string]admin.Role, len(a.Roles))
	for g, r := range a.Roles {
		roles[g] = admin.Role(r)
	}
	opts := &admin.Options{
		URL: a.Endpoint, Store: db, Ledger: led, GroupRoles: roles, CursorKey: cursorKey, SessionKey: sessionKey,
		SessionLifetime: a.Lifetime(), DevMode: cfg.DevMode, Logger: log,
	}
	if cfg.Audit.CheckpointDir != "" && cfg.Audit.CheckpointKeyFile != "" {
		opts.Checkpoints = func(context.Context) ([]audit.Checkpoint, error) {
			files, err := filepath.Glob(filepath.Join(cfg.Audit.CheckpointDir, audit.CheckpointFilePattern))
			if err != nil || len(files) == 0 {
				return nil, err
			}
			return loadCheckpoints(cfg, []string{cfg.Audit.CheckpointDir}, nil, nil)
		}
	}
	if a.ClientID != "" {
		secret, err := adminClientSecret(a, getenv)
		if err != nil {
			return nil, err
		}
		if idpKeys == nil {
			cache, err := jwkscache.New(&jwkscache.Options{AllowInsecureLoopback: cfg.DevMode, Logger: log})
			if err != nil {
				return nil, err
			}
			if idpKeys, err = cache.KeySet(strings.TrimSuffix(cfg.Issuers.IdP, "/") + "/jwks.json"); err != nil {
				return nil, fmt.Errorf("admin: the IdP's JWKS: %w", err)
			}
		}
		opts.Login = &admin.LoginOptions{Issuer: cfg.Issuers.IdP, ClientID: a.ClientID, ClientSecret: secret, Keys: idpKeys}
	}
	return admin.New(opts)
}

// adminClientSecret reads the admin API's client secret: from
// XAA_ADMIN_CLIENT_SECRET(_FILE) if set, else from the config.
func adminClientSecret(a *config.Admin, getenv func(string) string) (string, error) {
	secret, file := a.ClientSecret.Reveal(), a.ClientSecretFile
	const env = "XAA_ADMIN_CLIENT_SECRET"
	switch v, f := getenv(env), getenv(env+"_FILE"); {
	case v != "" && f != "":
		return "", fmt.Errorf("both %s and %s_FILE are set; unset one of them", env, env)
	case v != "":
		secret, file = v, ""
	case f != "":
		secret, file = "", f
	}
	if file != "" {
		s, err := readSecretFile(file)
		if err != nil {
			return "", fmt.Errorf("admin.client_secret_file: %w", err)
		}
		secret = s
	}
	if secret == "" {
		return "", fmt.Errorf("admin.client_id is set but no client secret is: set admin.client_secret_file or %s_FILE", env)
	}
	return secret, nil
}

// mountAdmin serves the admin API under its endpoint's host and path.
func mountAdmin(mux *http.ServeMux, endpoint string, s *admin.Server) error {
	u, err := url.Parse(endpoint)
	if err != nil {
		return err
	}
	mux.Handle(u.Hostname()+s.BasePath()+"/", s.Handler())
	return nil
}

// pruneAdmin deletes expired admin sessions and tokens until ctx ends.
func pruneAdmin(ctx context.Context, s *admin.Server, logger *slog.Logger) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Prune(ctx); err != nil && ctx.Err() == nil {
				logger.Warn("admin: prune expired sessions and tokens", "err", err)
			}
		}
	}
}

// --- the client: xaa admin ---

func newAdminCommand(e *env) *cobra.Command {
	c := &adminClient{e: e}
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Use the admin API: connections, users, groups, apps, resources, the audit trail, admin tokens",
		Long: `admin is a client of the admin API (xaa serve --admin). It finds the API at
--url, XAA_ADMIN_URL, or admin.endpoint of the config file, and
authenticates with an admin token read from --token-file (- for stdin),
XAA_ADMIN_TOKEN_FILE or XAA_ADMIN_TOKEN; never from a flag value, which
would land in shell history and the process list. Create a token on a host
with the database: xaa admin token create --role approver --ttl 15m.

Every command prints a table or a summary; --json prints the API's answer.`,
	}
	cmd.PersistentFlags().StringVar(&c.url, "url", "", "the admin API's base URL (env XAA_ADMIN_URL; default admin.endpoint)")
	cmd.PersistentFlags().StringVar(&c.tokenFile, "token-file", "", "file holding the admin token, - for stdin (env XAA_ADMIN_TOKEN_FILE, or XAA_ADMIN_TOKEN)")
	cmd.PersistentFlags().StringVar(&c.caFile, "ca-file", "", "PEM CA certificates to trust for the API's TLS certificate")
	cmd.PersistentFlags().BoolVar(&c.json, "json", false, "print the API's JSON answer")
	cmd.AddCommand(c.whoamiCommand(), c.connectionsCommand(), c.usersCommand(), c.groupsCommand(), c.appsCommand(),
		c.resourcesCommand(), c.auditCommand(), newAdminTokenCommand(e))
	return cmd
}

// adminClient calls the admin API.
type adminClient struct {
	e                      *env
	url, tokenFile, caFile string
	json                   bool
}

// adminAPIError is an error answer of the admin API.
type adminAPIError struct {
	Status      int
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *adminAPIError) Error() string {
	return fmt.Sprintf("admin API: %d %s: %s", e.Status, e.Code, printable(e.Description))
}

func (c *adminClient) baseURL(cmd *cobra.Command) (string, error) {
	u := c.url
	if u == "" {
		u = c.e.getenv("XAA_ADMIN_URL")
	}
	if u == "" {
		path, _ := cmd.Flags().GetString("config")
		if path == "" {
			path = c.e.getenv("XAA_CONFIG")
		}
		if path != "" {
			cfg, err := loadConfig(cmd, c.e)
			if err != nil {
				return "", err
			}
			u = cfg.Admin.Endpoint
		}
	}
	if u == "" {
		return "", errors.New("where is the admin API? give --url, XAA_ADMIN_URL, or a config file with admin.endpoint")
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
		return "", fmt.Errorf("--url %q is not an http(s) URL", u)
	}
	return strings.TrimSuffix(u, "/"), nil
}

func (c *adminClient) token() (string, error) {
	file := c.tokenFile
	if file == "" {
		file = c.e.getenv("XAA_ADMIN_TOKEN_FILE")
	}
	var tok string
	switch {
	case file == "-":
		b, err := io.ReadAll(io.LimitReader(c.e.stdin, 4096))
		if err != nil {
			return "", err
		}
		tok = string(b)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read the admin token: %w", err)
		}
		tok = string(b)
	default:
		tok = c.e.getenv("XAA_ADMIN_TOKEN")
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", errors.New("no admin token: give --token-file FILE (or -), XAA_ADMIN_TOKEN_FILE or XAA_ADMIN_TOKEN; create one with xaa admin token create")
	}
	return tok, nil
}

func (c *adminClient) httpClient() (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyFromEnvironment
	if c.caFile != "" {
		pem, err := os.ReadFile(c.caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", c.caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

// call sends one request and returns the answer's body, or the API's
// error.
func (c *adminClient) call(cmd *cobra.Command, method, path string, query url.Values, body any) ([]byte, error) {
	base, err := c.baseURL(cmd)
	if err != nil {
		return nil, err
	}
	tok, err := c.token()
	if err != nil {
		return nil, err
	}
	hc, err := c.httpClient()
	if err != nil {
		return nil, err
	}
	u := base + admin.APIPrefix + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(cmd.Context(), method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		ae := &adminAPIError{Status: resp.StatusCode}
		if json.Unmarshal(b, ae) != nil || ae.Code == "" {
			ae.Code, ae.Description = http.StatusText(resp.StatusCode), strings.TrimSpace(string(b))
		}
		return nil, ae
	}
	return b, nil
}

// show calls the API and prints the answer with print, or indented JSON
// with --json (or when print is nil).
func (c *adminClient) show(cmd *cobra.Command, method, path string, query url.Values, body any, print func([]byte) error) error {
	b, err := c.call(cmd, method, path, query, body)
	if err != nil {
		return err
	}
	if c.json || print == nil {
		return printIndented(c.e.stdout, b)
	}
	return print(b)
}

func printIndented(w io.Writer, b []byte) error {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		_, err = w.Write(b)
		return err
	}
	out.WriteByte('\n')
	_, err := w.Write(out.Bytes())
	return err
}

// listFlags are the paging flags every list command has.
type listFlags struct {
	sort, cursor string
	limit        int
	all          bool
}

func (f *listFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.sort, "sort", "", "sort key; a leading - reverses the order")
	c.Flags().IntVar(&f.limit, "limit", 0, "page size (1-200; default 50)")
	c.Flags().StringVar(&f.cursor, "cursor", "", "continue from a previous page's next cursor")
	c.Flags().BoolVar(&f.all, "all", false, "follow every page")
}

// list fetches one page (or, with --all, every page) and prints the rows
// with cols, or the pages' JSON with --json.
func (c *adminClient) list(cmd *cobra.Command, path string, q url.Values, f *listFlags, cols []string, row func(map[string]any) []string) error {
	if f.sort != "" {
		q.Set("sort", f.sort)
	}
	if f.limit != 0 {
		q.Set("limit", fmt.Sprint(f.limit))
	}
	cursor := f.cursor
	var items []map[string]any
	next := ""
	for {
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		b, err := c.call(cmd, http.MethodGet, path, q, nil)
		if err != nil {
			return err
		}
		var page struct {
			Items      []map[string]any `json:"items"`
			NextCursor string           `json:"next_cursor"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return fmt.Errorf("admin API: the answer is not a list: %w", err)
		}
		items = append(items, page.Items...)
		next = page.NextCursor
		if !f.all || next == "" {
			break
		}
		cursor = next
	}
	if c.json {
		out := map[string]any{"items": items}
		if next != "" {
			out["next_cursor"] = next
		}
		b, _ := json.Marshal(out)
		return printIndented(c.e.stdout, b)
	}
	tw := tabwriter.NewWriter(c.e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
	for _, it := range items {
		cells := row(it)
		for i := range cells {
			cells[i] = printable(dash(cells[i]))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(c.e.stderr, "more: --cursor %s (or --all)\n", next)
	}
	return nil
}

// str reads a member of a decoded JSON object as text.
func str(m map[string]any, keys ...string) string {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = mm[k]
	}
	switch x := v.(type) {
	case string:
		return x
	case bool:
		if x {
			return "yes"
		}
		return "no"
	case float64:
		return fmt.Sprint(int64(x))
	case []any:
		parts := make([]string, len(x))
		for i, p := range x {
			parts[i] = fmt.Sprint(p)
		}
		return strings.Join(parts, ",")
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func (c *adminClient) whoamiCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show the token's identity, roles and expiry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.show(cmd, http.MethodGet, "/session", nil, nil, func(b []byte) error {
				var m map[string]any
				if err := json.Unmarshal(b, &m); err != nil {
					return err
				}
				_, err := fmt.Fprintf(c.e.stdout, "%s %s (%s), roles %s, expires %s\n", str(m, "kind"), str(m, "id"), printable(str(m, "name")),
					str(m, "roles"), str(m, "expires_at"))
				return err
			})
		},
	}
}

// change posts body to path and prints the answer's summary.
func (c *adminClient) change(cmd *cobra.Command, path string, body any) error {
	return c.show(cmd, http.MethodPost, path, nil, body, func(b []byte) error {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		if d := str(m, "done"); d != "" {
			_, err := fmt.Fprintln(c.e.stdout, printable(d))
			return err
		}
		if conn, ok := m["connection"].(map[string]any); ok {
			line := fmt.Sprintf("connection %s (%s -> %s) is %s", str(conn, "id"), str(conn, "app"), str(conn, "resource"), str(conn, "status"))
			if exp := str(conn, "expires_at"); exp != "" {
				line += ", recertify by " + exp
			}
			fmt.Fprintln(c.e.stdout, printable(line))
			for _, p := range asMaps(m["enforcement_points"]) {
				fmt.Fprintf(c.e.stdout, "  %s %s: %s\n", str(p, "kind"), printable(str(p, "id")), printable(str(p, "state")))
			}
			return nil
		}
		return printIndented(c.e.stdout, b)
	})
}

func asMaps(v any) []map[string]any {
	xs, _ := v.([]any)
	var out []map[string]any
	for _, x := range xs {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func (c *adminClient) connectionsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "connections", Aliases: []string{"connection", "conn"}, Short: "List, show and change connections"}
	var app, resource, status string
	var lf listFlags
	list := &cobra.Command{
		Use: "list", Short: "List connections", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			setIf(q, "app", app)
			setIf(q, "resource", resource)
			setIf(q, "status", status)
			return c.list(cmd, "/connections", q, &lf, []string{"ID", "APP", "RESOURCE", "STATUS", "EXPIRES", "UPDATED"},
				func(m map[string]any) []string {
					return []string{str(m, "id"), str(m, "app"), str(m, "resource"), str(m, "status"), str(m, "expires_at"), str(m, "updated_at")}
				})
		},
	}
	list.Flags().StringVar(&app, "app", "", "only this app (client_id at the IdP)")
	list.Flags().StringVar(&resource, "resource", "", "only this resource URI")
	list.Flags().StringVar(&status, "status", "", "only this status: pending, approved, denied, suspended, revoked, expired")
	lf.register(list)
	show := c.showCommand("show ID", "Show a connection with its history, enforcement points and security event deliveries", "/connections/")
	cmd.AddCommand(list, show)
	for _, a := range []struct {
		verb, short string
		reason      bool // a reason is required (else an optional note)
	}{
		{"approve", "Approve a pending connection", false},
		{"deny", "Deny a pending connection", true},
		{"suspend", "Suspend an approved connection", true},
		{"resume", "Resume a suspended connection", false},
		{"revoke", "Revoke a connection (final)", true},
	} {
		var text string
		sub := &cobra.Command{
			Use: a.verb + " ID", Short: a.short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				body := map[string]string{}
				if a.reason {
					if strings.TrimSpace(text) == "" {
						return fmt.Errorf("--reason is required to %s a connection", a.verb)
					}
					body["reason"] = text
				} else if text != "" {
					body["note"] = text
				}
				return c.change(cmd, "/connections/"+url.PathEscape(args[0])+"/"+a.verb, body)
			},
		}
		if a.reason {
			sub.Flags().StringVar(&text, "reason", "", "why (required; kept in the ledger and shown to refused clients)")
		} else {
			sub.Flags().StringVar(&text, "note", "", "a note for the ledger")
		}
		cmd.AddCommand(sub)
	}
	var until, note string
	recert := &cobra.Command{
		Use: "recertify ID --until TIME", Short: "Recertify a connection until a new date", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := parseUntil(until, time.Now())
			if err != nil {
				return err
			}
			body := map[string]string{"until": t.Format(time.RFC3339)}
			if note != "" {
				body["note"] = note
			}
			return c.change(cmd, "/connections/"+url.PathEscape(args[0])+"/recertify", body)
		},
	}
	recert.Flags().StringVar(&until, "until", "", "new recertification date: RFC 3339 time, or a duration from now such as 2160h")
	recert.Flags().StringVar(&note, "note", "", "a note for the ledger")
	cmd.AddCommand(recert)
	return cmd
}

// parseUntil reads an RFC 3339 time or a duration from now.
func parseUntil(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("--until is required")
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("--until %q is neither an RFC 3339 time nor a positive duration", s)
	}
	return now.Add(d).UTC().Truncate(time.Second), nil
}

func setIf(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}

func (c *adminClient) usersCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "users", Aliases: []string{"user"}, Short: "List, show and disable users"}
	var group, disabled string
	var lf listFlags
	list := &cobra.Command{
		Use: "list", Short: "List users", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			setIf(q, "group", group)
			setIf(q, "disabled", disabled)
			return c.list(cmd, "/users", q, &lf, []string{"USERNAME", "ID", "EMAIL", "DISABLED", "MFA", "CREATED"},
				func(m map[string]any) []string {
					return []string{str(m, "username"), str(m, "id"), str(m, "email"), str(m, "disabled"), str(m, "mfa_enrolled"), str(m, "created_at")}
				})
		},
	}
	list.Flags().StringVar(&group, "group", "", "only members of this group")
	list.Flags().StringVar(&disabled, "disabled", "", "true: only disabled users; false: only enabled ones")
	lf.register(list)
	show := c.showCommand("show USERNAME", "Show a user, their groups and admin roles", "/users/")
	disable := c.reasonCommand("disable USERNAME --reason TEXT", "Disable a user: exchanges stop now, authorization servers are told", 1,
		func(args []string) (string, map[string]string) {
			return "/users/" + url.PathEscape(args[0]) + "/disable", map[string]string{}
		})
	cmd.AddCommand(list, show, disable)
	return cmd
}

func (c *adminClient) groupsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "groups", Aliases: []string{"group"}, Short: "List and show groups, remove members"}
	var lf listFlags
	list := &cobra.Command{
		Use: "list", Short: "List groups", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.list(cmd, "/groups", url.Values{}, &lf, []string{"NAME", "DESCRIPTION", "CREATED"},
				func(m map[string]any) []string {
					return []string{str(m, "name"), str(m, "description"), str(m, "created_at")}
				})
		},
	}
	lf.register(list)
	show := c.showCommand("show NAME", "Show a group and its first members", "/groups/")
	remove := c.reasonCommand("remove-member GROUP USERNAME --reason TEXT", "Remove a user from a group", 2,
		func(args []string) (string, map[string]string) {
			return "/groups/" + url.PathEscape(args[0]) + "/remove-member", map[string]string{"username": args[1]}
		})
	cmd.AddCommand(list, show, remove)
	return cmd
}

func (c *adminClient) appsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "apps", Aliases: []string{"app"}, Short: "List, show and revoke requesting apps"}
	var disabled string
	var lf listFlags
	list := &cobra.Command{
		Use: "list", Short: "List apps", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			setIf(q, "disabled", disabled)
			return c.list(cmd, "/apps", q, &lf, []string{"CLIENT_ID", "NAME", "AUTH", "DISABLED", "CREATED"},
				func(m map[string]any) []string {
					return []string{str(m, "client_id"), str(m, "name"), str(m, "auth_method"), str(m, "disabled"), str(m, "created_at")}
				})
		},
	}
	list.Flags().StringVar(&disabled, "disabled", "", "true: only revoked apps; false: only active ones")
	lf.register(list)
	show := c.showCommand("show CLIENT_ID", "Show an app, its client ids and connections", "/apps/")
	revoke := c.reasonCommand("revoke CLIENT_ID --reason TEXT", "Revoke an app: exchanges stop now, authorization servers are told", 1,
		func(args []string) (string, map[string]string) {
			return "/apps/" + url.PathEscape(args[0]) + "/revoke", map[string]string{}
		})
	cmd.AddCommand(list, show, revoke)
	return cmd
}

func (c *adminClient) resourcesCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "resources", Aliases: []string{"resource"}, Short: "List and show resources"}
	var authServer string
	var lf listFlags
	list := &cobra.Command{
		Use: "list", Short: "List resources", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			setIf(q, "auth_server", authServer)
			return c.list(cmd, "/resources", q, &lf, []string{"URI", "NAME", "AUTH_SERVER", "SCOPES"},
				func(m map[string]any) []string {
					var scopes []string
					for _, s := range asMaps(m["scopes"]) {
						scopes = append(scopes, str(s, "name"))
					}
					return []string{str(m, "uri"), str(m, "name"), str(m, "auth_server"), strings.Join(scopes, ",")}
				})
		},
	}
	list.Flags().StringVar(&authServer, "auth-server", "", "only resources this authorization server governs")
	lf.register(list)
	show := c.showCommand("show URI", "Show a resource and its connections", "/resources/")
	cmd.AddCommand(list, show)
	return cmd
}

// adminAuditFlags are the audit trail's filters.
type adminAuditFlags struct{ stream, typ, subject, client, outcome, jti, idjagJTI, since, until string }

func (f *adminAuditFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.stream, "stream", "", "only this stream (idp, authserver, gateway, directory, admin, system, legacy)")
	c.Flags().StringVar(&f.typ, "type", "", "only this record type, e.g. idjag.issued")
	c.Flags().StringVar(&f.subject, "subject", "", "only records about this subject")
	c.Flags().StringVar(&f.client, "client", "", "only records of this client_id")
	c.Flags().StringVar(&f.outcome, "outcome", "", "only this outcome: allow, deny, error, info")
	c.Flags().StringVar(&f.jti, "jti", "", "only records naming this token id")
	c.Flags().StringVar(&f.idjagJTI, "idjag-jti", "", "only redemptions of this ID-JAG")
	c.Flags().StringVar(&f.since, "since", "", "records at or after this RFC 3339 time")
	c.Flags().StringVar(&f.until, "until", "", "records before this RFC 3339 time")
}

func (f *adminAuditFlags) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"stream": f.stream, "type": f.typ, "subject": f.subject, "client_id": f.client,
		"outcome": f.outcome, "jti": f.jti, "idjag_jti": f.idjagJTI, "since": f.since, "until": f.until} {
		setIf(q, k, v)
	}
	return q
}

func (c *adminClient) auditCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Query, export, verify and trace the audit trail (auditor role)"}
	var qf adminAuditFlags
	var lf listFlags
	query := &cobra.Command{
		Use: "query", Short: "Query audit records, oldest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.list(cmd, "/audit/records", qf.query(), &lf, []string{"ID", "TIME", "STREAM", "TYPE", "OUTCOME", "ACTOR", "SUBJECT", "REASON"},
				func(m map[string]any) []string {
					t := ""
					if ms, ok := m["time_ms"].(float64); ok {
						t = time.UnixMilli(int64(ms)).UTC().Format(time.RFC3339)
					}
					return []string{str(m, "id"), t, str(m, "stream"), str(m, "type"), str(m, "outcome"), str(m, "actor"), str(m, "subject"), str(m, "reason")}
				})
		},
	}
	qf.register(query)
	lf.register(query)
	var ef adminAuditFlags
	var out string
	export := &cobra.Command{
		Use: "export [--out FILE]", Short: "Export audit records as JSON lines (docs/audit-schema.md)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := c.call(cmd, http.MethodGet, "/audit/export", ef.query(), nil)
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err = c.e.stdout.Write(b)
				return err
			}
			if err := writeNewFile(out, b, 0o600); err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.e.stdout, "wrote %d records to %s\n", bytes.Count(b, []byte("\n")), out)
			return err
		},
	}
	ef.register(export)
	export.Flags().StringVar(&out, "out", "", "file to create (mode 0600); default stdout")
	var stream string
	verify := &cobra.Command{
		Use: "verify", Short: "Verify the audit chains in the server's database", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			setIf(q, "stream", stream)
			b, err := c.call(cmd, http.MethodGet, "/audit/verify", q, nil)
			if err != nil {
				return err
			}
			var rep struct {
				OK          bool  `json:"ok"`
				Records     int64 `json:"records"`
				Checkpoints int   `json:"checkpoints"`
				Streams     []struct {
					Stream  string `json:"stream"`
					OK      bool   `json:"ok"`
					Records int64  `json:"records"`
					Last    int64  `json:"last"`
					Error   *struct {
						Seq    int64  `json:"seq"`
						ID     int64  `json:"id"`
						Reason string `json:"reason"`
					} `json:"error"`
				} `json:"streams"`
			}
			if err := json.Unmarshal(b, &rep); err != nil {
				return err
			}
			if c.json {
				if err := printIndented(c.e.stdout, b); err != nil {
					return err
				}
			} else {
				for _, s := range rep.Streams {
					if s.Error != nil {
						fmt.Fprintf(c.e.stdout, "stream %s: BROKEN at seq %d (%s): %s\n", s.Stream, s.Error.Seq, recordID(s.Error.ID), printable(s.Error.Reason))
						continue
					}
					fmt.Fprintf(c.e.stdout, "stream %s: ok, %d records (to seq %d)\n", s.Stream, s.Records, s.Last)
				}
				fmt.Fprintf(c.e.stdout, "checked %d streams, %d records, against %d checkpoints\n", len(rep.Streams), rep.Records, rep.Checkpoints)
			}
			if !rep.OK {
				return errAuditBroken
			}
			return nil
		},
	}
	verify.Flags().StringVar(&stream, "stream", "", "verify only this stream")
	trace := &cobra.Command{
		Use: "trace JTI", Short: "Show every record linked to a token id: the IdP's decision, redemptions, tool calls", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.show(cmd, http.MethodGet, "/audit/trace/"+url.PathEscape(args[0]), nil, nil, func(b []byte) error {
				var tr struct {
					Records []audit.Record `json:"records"`
				}
				if err := json.Unmarshal(b, &tr); err != nil {
					return err
				}
				if len(tr.Records) == 0 {
					_, err := fmt.Fprintf(c.e.stdout, "no records name %s\n", printable(args[0]))
					return err
				}
				tw := tabwriter.NewWriter(c.e.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TIME\tSTREAM\tTYPE\tOUTCOME\tACTOR\tJTI\tREASON")
				for _, r := range tr.Records {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", time.UnixMilli(r.TimeMS).UTC().Format(time.RFC3339), r.Stream, r.Type,
						r.Outcome, printable(dash(r.Actor)), printable(dash(r.Data[audit.DataJTI])), printable(dash(r.Reason)))
				}
				return tw.Flush()
			})
		},
	}
	var tf adminAuditFlags
	var every time.Duration
	tail := &cobra.Command{
		Use: "tail", Short: "Print new audit records as they are written, until interrupted", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.tailAudit(cmd, &tf, every)
		},
	}
	tf.register(tail)
	tail.Flags().DurationVar(&every, "every", 2*time.Second, "how often to ask the server for new records")
	cmd.AddCommand(query, export, verify, trace, tail)
	return cmd
}

// --- xaa admin token create: local, against the database ---

func newAdminTokenCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create admin tokens (on a host with the database)"}
	var role, description string
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create --role ROLE --ttl DURATION [--description TEXT]",
		Short: "Create a short-lived admin token and print it once",
		Long: `create writes a new admin token for one role (viewer, auditor, approver or
admin) straight into the configured database, with an audit record naming
you (cli:<os user>), and prints the token once on stdout. Only its SHA-256
digest is stored. It lives at most 1h. Keep it in a file (mode 0600) and
give it to xaa admin with --token-file or XAA_ADMIN_TOKEN_FILE.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := admin.ParseRole(role)
			if err != nil {
				return err
			}
			cfg, err := loadConfig(cmd, e)
			if err != nil {
				return err
			}
			db, err := openMigratedStore(cmd.Context(), cfg, e)
			if err != nil {
				return err
			}
			defer db.Close()
			t, err := admin.CreateToken(cmd.Context(), db, admin.TokenRequest{Role: r, TTL: ttl, Description: description,
				Actor: cliActor(e), ActorKind: ledger.ActorCLI})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "admin token %s for role %s, valid until %s; it is shown once:\n", t.ID, t.Role, stamp(t.ExpiresAt))
			_, err = fmt.Fprintln(e.stdout, t.Value)
			return err
		},
	}
	create.Flags().StringVar(&role, "role", "", "viewer, auditor, approver or admin (required)")
	create.Flags().DurationVar(&ttl, "ttl", 15*time.Minute, "lifetime, at most 1h")
	create.Flags().StringVar(&description, "description", "", "what it is for (shown in token lists and audit records)")
	cmd.AddCommand(create)
	return cmd
}

// tailAudit polls /audit/records for records newer than the last one it
// printed (by record id, which only grows), starting now unless --since
// says otherwise. Each poll asks from the newest printed record's time, so
// a poll reads a bounded page.
func (c *adminClient) tailAudit(cmd *cobra.Command, f *adminAuditFlags, every time.Duration) error {
	if every < 100*time.Millisecond {
		return fmt.Errorf("--every %s is too short; use at least 100ms", every)
	}
	since := f.since
	if since == "" {
		since = time.Now().UTC().Format(time.RFC3339)
	}
	var lastID int64
	for {
		q := f.query()
		q.Set("since", since)
		q.Set("limit", "200")
		cursor := ""
		for {
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			b, err := c.call(cmd, http.MethodGet, "/audit/records", q, nil)
			if err != nil {
				return err
			}
			var page struct {
				Items      []map[string]any `json:"items"`
				NextCursor string           `json:"next_cursor"`
			}
			if err := json.Unmarshal(b, &page); err != nil {
				return fmt.Errorf("admin API: the answer is not a list: %w", err)
			}
			for _, m := range page.Items {
				id, err := strconv.ParseInt(str(m, "id"), 10, 64)
				if err != nil || id <= lastID {
					continue
				}
				lastID = id
				t := ""
				if ms, ok := m["time_ms"].(float64); ok {
					t = time.UnixMilli(int64(ms)).UTC().Format(time.RFC3339)
					since = t
				}
				if c.json {
					line, _ := json.Marshal(m)
					fmt.Fprintln(c.e.stdout, string(line))
					continue
				}
				fmt.Fprintln(c.e.stdout, printable(strings.Join([]string{t, str(m, "stream"), str(m, "type"), str(m, "outcome"),
					dash(str(m, "actor")), dash(str(m, "subject")), dash(str(m, "reason"))}, "  ")))
			}
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
		select {
		case <-cmd.Context().Done():
			return nil
		case <-time.After(every):
		}
	}
}

// showCommand is `show ID`: GET base+ID.
func (c *adminClient) showCommand(use, short, base string) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.show(cmd, http.MethodGet, base+url.PathEscape(args[0]), nil, nil, nil)
		},
	}
}

// reasonCommand is a change that needs --reason: POST to the path target
// returns, with its body plus the reason.
func (c *adminClient) reasonCommand(use, short string, nargs int, target func(args []string) (string, map[string]string)) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use: use, Short: short, Args: cobra.ExactArgs(nargs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return errors.New("--reason is required")
			}
			path, body := target(args)
			body["reason"] = reason
			return c.change(cmd, path, body)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required)")
	return cmd
}
