package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/openxaa/xaa/internal/config"
	"github.com/openxaa/xaa/internal/ledger"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
)

// The local ledgerOperator's view of the connection ledger: every command works
// directly on the configured database, as "cli:<os user>". A running IdP
// refuses new ID-JAGs on its next exchange, and its deliverer pushes the
// security events a change queued within a second.

func newConnectionCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "connection",
		Short: "The connection ledger: request, approve, deny, suspend, resume, revoke and recertify connections",
		Long: `A connection lets a requesting app obtain ID-JAGs for one resource on behalf
of the members of some groups. Its life: requested (pending) -> approved or
denied; approved -> suspended, revoked or expired (its recertification date
passed); suspended -> approved (resume) or revoked; expired -> approved
(recertify) or revoked. Every change keeps history, is audited as
cli:<os user>, and, where access is taken away, queues a Security Event
Token for the resource's authorization server, which then refuses ID-JAGs
and tokens issued before the change.`,
	}
	cmd.AddCommand(
		newConnectionListCommand(e),
		newConnectionShowCommand(e),
		newConnectionRequestCommand(e),
		newConnectionStepCommand(e, "approve", "Approve a pending connection (you become its approver)", false,
			func(ctx context.Context, s *ledger.Service, a ledger.Actor, id, text string) (ledger.Entry, error) {
				return s.Approve(ctx, a, id, text)
			}),
		newConnectionStepCommand(e, "deny", "Deny a pending connection, for good", true,
			func(ctx context.Context, s *ledger.Service, a ledger.Actor, id, text string) (ledger.Entry, error) {
				return s.Deny(ctx, a, id, text)
			}),
		newConnectionStepCommand(e, "suspend", "Suspend an approved connection; its tokens issued until now are revoked", true,
			func(ctx context.Context, s *ledger.Service, a ledger.Actor, id, text string) (ledger.Entry, error) {
				return s.Suspend(ctx, a, id, text)
			}),
		newConnectionStepCommand(e, "resume", "Resume a suspended connection", false,
			func(ctx context.Context, s *ledger.Service, a ledger.Actor, id, text string) (ledger.Entry, error) {
				return s.Resume(ctx, a, id, text)
			}),
		newConnectionStepCommand(e, "revoke", "Revoke a connection for good; its tokens issued until now are revoked", true,
			func(ctx context.Context, s *ledger.Service, a ledger.Actor, id, text string) (ledger.Entry, error) {
				return s.Revoke(ctx, a, id, text)
			}),
		newConnectionRecertifyCommand(e),
	)
	return cmd
}

// withLedger opens the configured database and runs fn with a ledger on it.
func withLedger(cmd *cobra.Command, e *env, fn func(ctx context.Context, s *ledger.Service, db *sqlstore.DB) error) error {
	cfg, err := loadConfig(cmd, e)
	if err != nil {
		return err
	}
	return withLedgerConfig(cmd.Context(), cfg, e.stderr, fn)
}

func withLedgerConfig(ctx context.Context, cfg *config.Config, stderr io.Writer, fn func(ctx context.Context, s *ledger.Service, db *sqlstore.DB) error) error {
	logger := newLogger(cfg.Log, stderr)
	db, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := checkSchema(ctx, db); err != nil {
		return err
	}
	s, err := ledger.New(&ledger.Options{Store: db, Logger: logger})
	if err != nil {
		return err
	}
	return fn(ctx, s, db)
}

// ledgerOperator is the CLI's actor: the OS user.
func ledgerOperator(e *env) ledger.Actor {
	return ledger.Actor{Kind: ledger.ActorCLI, ID: strings.TrimPrefix(cliActor(e), "cli:")}
}

func newConnectionListCommand(e *env) *cobra.Command {
	var f ledger.Filter
	var status string
	var asJSON bool
	c := &cobra.Command{
		Use:   "list [--app ID] [--resource URI] [--status S] [--sort created|updated|expires] [--desc]",
		Short: "List connections",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.Status = store.ConnectionStatus(status)
			return withLedger(cmd, e, func(ctx context.Context, s *ledger.Service, _ *sqlstore.DB) error {
				var all []ledger.Entry
				page := f
				page.Limit = 1000
				for {
					es, next, err := s.List(ctx, page)
					if err != nil {
						return err
					}
					all = append(all, es...)
					if next == "" {
						break
					}
					page.After = next
				}
				if asJSON {
					rows := make([]connectionJSON, 0, len(all))
					for _, x := range all {
						rows = append(rows, toConnectionJSON(x))
					}
					return connWriteJSON(e.stdout, rows)
				}
				tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tAPP\tRESOURCE\tSTATUS\tEXPIRES\tUPDATED")
				for _, x := range all {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", x.ID, x.AppID, x.ResourceURI, x.Status, connStampOrNever(x.ExpiresAt), stamp(x.UpdatedAt))
				}
				return tw.Flush()
			})
		},
	}
	c.Flags().StringVar(&f.App, "app", "", "only connections of this app (client_id at the IdP)")
	c.Flags().StringVar(&f.Resource, "resource", "", "only connections to this resource")
	c.Flags().StringVar(&status, "status", "", "only connections in this state: pending, approved, denied, suspended, revoked or expired")
	c.Flags().StringVar(&f.Sort, "sort", "created", "order by created, updated or expires")
	c.Flags().BoolVar(&f.Desc, "desc", false, "newest (or latest expiry) first")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newConnectionShowCommand(e *env) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "show ID",
		Short: "Show a connection: what it grants, who asked and approved, its history, where it is enforced",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withLedger(cmd, e, func(ctx context.Context, s *ledger.Service, _ *sqlstore.DB) error {
				x, err := s.Get(ctx, args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return connWriteJSON(e.stdout, toConnectionJSON(x))
				}
				printConnection(e.stdout, x)
				return nil
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newConnectionRequestCommand(e *env) *cobra.Command {
	var in ledger.RequestInput
	var grants, stepUps []string
	var expires string
	c := &cobra.Command{
		Use:   "request --app ID --resource URI --grant GROUP=SCOPE[,SCOPE...] [--grant ...] [--justification TEXT]",
		Short: "Request a connection (pending until someone approves it)",
		Long: `request records a request for a connection from an app to a resource.
--grant gives a group's members scopes, e.g. --grant staff=files:read.
--step-up requires a stronger or fresher login for one scope, e.g.
--step-up scope=files:write,acr=urn:openxaa:acr:mfa,max_age=5m.
--expires is the recertification date: an RFC 3339 time or a duration
from now (e.g. 2160h); after it the connection stops minting until it is
recertified.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if in.GroupScopes, err = connGrants(grants); err != nil {
				return err
			}
			if in.StepUp, err = connStepUps(stepUps); err != nil {
				return err
			}
			if expires != "" {
				if in.ExpiresAt, err = connDeadline(expires, time.Now()); err != nil {
					return fmt.Errorf("--expires: %w", err)
				}
			}
			return withLedger(cmd, e, func(ctx context.Context, s *ledger.Service, _ *sqlstore.DB) error {
				x, err := s.Request(ctx, ledgerOperator(e), in)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(e.stdout, "requested connection %s: %s -> %s (pending; approve with `xaa connection approve %s`)\n",
					x.ID, x.AppID, x.ResourceURI, x.ID)
				return err
			})
		},
	}
	c.Flags().StringVar(&in.App, "app", "", "the requesting app's client_id at the IdP (required)")
	c.Flags().StringVar(&in.Resource, "resource", "", "the resource URI (required)")
	c.Flags().StringArrayVar(&grants, "grant", nil, "GROUP=SCOPE[,SCOPE...]: the scopes a group's members get (repeatable)")
	c.Flags().StringArrayVar(&stepUps, "step-up", nil, "scope=S,acr=A,max_age=D: a step-up rule (repeatable)")
	c.Flags().DurationVar(&in.IDJAGLifetime, "id-jag-lifetime", 0, "ID-JAG lifetime (default 5m, at most 10m)")
	c.Flags().DurationVar(&in.AccessTokenLifetime, "access-token-lifetime", 0, "access token lifetime (default 5m, at most 1h)")
	c.Flags().BoolVar(&in.IncludeEmail, "include-email", false, "put the user's email into the ID-JAG")
	c.Flags().StringVar(&in.Justification, "justification", "", "why the app needs it")
	c.Flags().StringVar(&expires, "expires", "", "recertification date: RFC 3339 time or a duration from now")
	_ = c.MarkFlagRequired("app")
	_ = c.MarkFlagRequired("resource")
	return c
}

// newConnectionStepCommand is one lifecycle step taking a connection id
// and a reason (required) or a note.
func newConnectionStepCommand(e *env, name, short string, needsReason bool,
	fn func(ctx context.Context, s *ledger.Service, a ledger.Actor, id, text string) (ledger.Entry, error)) *cobra.Command {
	var text string
	flag := "note"
	use := name + " ID [--note TEXT]"
	if needsReason {
		flag = "reason"
		use = name + " ID --reason TEXT"
	}
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withLedger(cmd, e, func(ctx context.Context, s *ledger.Service, _ *sqlstore.DB) error {
				x, err := fn(ctx, s, ledgerOperator(e), args[0], text)
				if err != nil {
					return err
				}
				return printConnectionChange(e.stdout, x)
			})
		},
	}
	help := "a note for the history"
	if needsReason {
		help = "why (required): recorded, audited and told to the clients that are refused"
	}
	c.Flags().StringVar(&text, flag, "", help)
	if needsReason {
		_ = c.MarkFlagRequired(flag)
	}
	return c
}

func newConnectionRecertifyCommand(e *env) *cobra.Command {
	var until, note string
	c := &cobra.Command{
		Use:   "recertify ID --until DATE|DURATION [--note TEXT]",
		Short: "Set a new recertification date; an expired connection is approved again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			at, err := connDeadline(until, time.Now())
			if err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			return withLedger(cmd, e, func(ctx context.Context, s *ledger.Service, _ *sqlstore.DB) error {
				x, err := s.Recertify(ctx, ledgerOperator(e), args[0], at, note)
				if err != nil {
					return err
				}
				return printConnectionChange(e.stdout, x)
			})
		},
	}
	c.Flags().StringVar(&until, "until", "", "the new recertification date: RFC 3339 time or a duration from now (required)")
	c.Flags().StringVar(&note, "note", "", "a note for the history")
	_ = c.MarkFlagRequired("until")
	return c
}

// printConnectionChange reports a lifecycle step and what it queued.
func printConnectionChange(w io.Writer, x ledger.Entry) error {
	last := x.History[len(x.History)-1]
	line := fmt.Sprintf("connection %s: %s -> %s (%s by %s)", x.ID, last.FromStatus, last.ToStatus, last.Action, last.ActorID)
	if n := connQueuedBy(x, last.Seq); n > 0 {
		line += fmt.Sprintf("; %d security event(s) queued for the authorization server, which the running IdP delivers", n)
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

func connQueuedBy(x ledger.Entry, seq int64) int {
	n := 0
	for _, d := range x.Deliveries {
		if d.LedgerSeq == seq {
			n++
		}
	}
	return n
}

func printConnection(w io.Writer, x ledger.Entry) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("id", x.ID)
	row("app", x.AppID)
	row("resource", x.ResourceURI)
	row("status", string(x.Status))
	if x.StatusReason != "" {
		row("reason", connOneLine(x.StatusReason))
	}
	row("requester", connOrDash(x.Requester))
	row("approvers", connOrDash(strings.Join(x.Approvers, ", ")))
	row("justification", connOrDash(connOneLine(x.Justification)))
	for _, g := range x.GroupScopes {
		row("grant", g.Group+": "+strings.Join(g.Scopes, " "))
	}
	for _, r := range x.StepUp {
		v := r.Scope + ":"
		if r.ACR != "" {
			v += " acr " + r.ACR
		}
		if r.MaxAge > 0 {
			v += " max_age " + r.MaxAge.String()
		}
		row("step-up", v)
	}
	row("lifetimes", fmt.Sprintf("ID-JAG %s, access token %s", x.IDJAGLifetime, x.AccessTokenLifetime))
	row("created", stamp(x.CreatedAt))
	row("updated", stamp(x.UpdatedAt))
	row("expires", connStampOrNever(x.ExpiresAt))
	if !x.RevokedAt.IsZero() {
		row("revoked", stamp(x.RevokedAt))
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\nhistory:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, h := range x.History {
		fmt.Fprintf(tw, "  %s\t%s\t%s -> %s\t%s\t%s\n", stamp(h.Time), h.Action, connOrDash(string(h.FromStatus)), h.ToStatus, h.ActorID, connOneLine(h.Reason))
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\nenforcement:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, p := range x.EnforcementPoints {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.Kind, p.ID, p.State, p.Detail)
	}
	_ = tw.Flush()
	if len(x.Deliveries) > 0 {
		fmt.Fprintln(w, "\nsecurity events:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, d := range x.Deliveries {
			fmt.Fprintf(tw, "  %s\t%s\t%s\tattempts %d\t%s\n", d.JTI, d.Audience, d.Status, d.Attempts, d.LastError)
		}
		_ = tw.Flush()
	}
}

// connectionJSON is the --json form of an entry.
type connectionJSON struct {
	ID                  string              `json:"id"`
	App                 string              `json:"app"`
	Resource            string              `json:"resource"`
	Status              string              `json:"status"`
	StatusReason        string              `json:"status_reason,omitempty"`
	Requester           string              `json:"requester,omitempty"`
	Approver            string              `json:"approver,omitempty"`
	Approvers           []string            `json:"approvers,omitempty"`
	Justification       string              `json:"justification,omitempty"`
	Groups              map[string][]string `json:"groups"`
	StepUp              []connStepUpJSON    `json:"step_up,omitempty"`
	IDJAGLifetime       int64               `json:"id_jag_lifetime"`
	AccessTokenLifetime int64               `json:"access_token_lifetime"`
	IncludeEmail        bool                `json:"include_email"`
	CreatedAt           time.Time           `json:"created_at"`
	UpdatedAt           time.Time           `json:"updated_at"`
	ExpiresAt           *time.Time          `json:"expires_at,omitempty"`
	RevokedAt           *time.Time          `json:"revoked_at,omitempty"`
	History             []connHistoryJSON   `json:"history,omitempty"`
	Enforcement         []connPointJSON     `json:"enforcement,omitempty"`
	Deliveries          []connDeliveryJSON  `json:"deliveries,omitempty"`
}

type connStepUpJSON struct {
	Scope  string `json:"scope"`
	ACR    string `json:"acr,omitempty"`
	MaxAge int64  `json:"max_age,omitempty"`
}

type connHistoryJSON struct {
	Seq    int64             `json:"seq"`
	Time   time.Time         `json:"time"`
	Action string            `json:"action"`
	From   string            `json:"from,omitempty"`
	To     string            `json:"to"`
	Actor  string            `json:"actor"`
	Reason string            `json:"reason,omitempty"`
	Data   map[string]string `json:"data,omitempty"`
}

type connPointJSON struct {
	Kind   string     `json:"kind"`
	ID     string     `json:"id"`
	Issuer string     `json:"issuer,omitempty"`
	State  string     `json:"state"`
	At     *time.Time `json:"at,omitempty"`
	Detail string     `json:"detail"`
}

type connDeliveryJSON struct {
	JTI         string     `json:"jti"`
	Audience    string     `json:"audience"`
	Subject     string     `json:"subject,omitempty"`
	ClientID    string     `json:"client_id,omitempty"`
	NotBefore   time.Time  `json:"not_before"`
	Status      string     `json:"status"`
	Attempts    int        `json:"attempts"`
	LastError   string     `json:"last_error,omitempty"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
}

func toConnectionJSON(x ledger.Entry) connectionJSON {
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		u := t.UTC()
		return &u
	}
	out := connectionJSON{
		ID: x.ID, App: x.AppID, Resource: x.ResourceURI, Status: string(x.Status), StatusReason: x.StatusReason,
		Requester: x.Requester, Approver: x.Approver, Approvers: x.Approvers, Justification: x.Justification,
		Groups:        map[string][]string{},
		IDJAGLifetime: int64(x.IDJAGLifetime / time.Second), AccessTokenLifetime: int64(x.AccessTokenLifetime / time.Second),
		IncludeEmail: x.IncludeEmail, CreatedAt: x.CreatedAt.UTC(), UpdatedAt: x.UpdatedAt.UTC(),
		ExpiresAt: opt(x.ExpiresAt), RevokedAt: opt(x.RevokedAt),
	}
	for _, g := range x.GroupScopes {
		out.Groups[g.Group] = g.Scopes
	}
	for _, r := range x.StepUp {
		out.StepUp = append(out.StepUp, connStepUpJSON{Scope: r.Scope, ACR: r.ACR, MaxAge: int64(r.MaxAge / time.Second)})
	}
	for _, h := range x.History {
		out.History = append(out.History, connHistoryJSON{Seq: h.Seq, Time: h.Time.UTC(), Action: h.Action, From: string(h.FromStatus),
			To: string(h.ToStatus), Actor: h.ActorID, Reason: h.Reason, Data: h.Data})
	}
	for _, p := range x.EnforcementPoints {
		out.Enforcement = append(out.Enforcement, connPointJSON{Kind: p.Kind, ID: p.ID, Issuer: p.Issuer, State: p.State, At: opt(p.At), Detail: p.Detail})
	}
	for _, d := range x.Deliveries {
		out.Deliveries = append(out.Deliveries, connDeliveryJSON{JTI: d.JTI, Audience: d.Audience, Subject: d.Subject, ClientID: d.ClientID,
			NotBefore: d.NotBefore.UTC(), Status: string(d.Status), Attempts: d.Attempts, LastError: d.LastError, DeliveredAt: opt(d.DeliveredAt)})
	}
	return out
}

func connWriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// connGrants reads GROUP=SCOPE[,SCOPE...] flags.
func connGrants(flags []string) ([]store.GroupScopes, error) {
	var out []store.GroupScopes
	for _, f := range flags {
		group, scopes, ok := strings.Cut(f, "=")
		if !ok || group == "" || scopes == "" {
			return nil, fmt.Errorf("--grant %q: want GROUP=SCOPE[,SCOPE...]", f)
		}
		list := strings.FieldsFunc(scopes, func(r rune) bool { return r == ',' || r == ' ' })
		i := slices.IndexFunc(out, func(g store.GroupScopes) bool { return g.Group == group })
		if i >= 0 {
			return nil, fmt.Errorf("--grant names group %q twice; list all its scopes in one flag", group)
		}
		out = append(out, store.GroupScopes{Group: group, Scopes: list})
	}
	return out, nil
}

// connStepUps reads scope=S,acr=A,max_age=D flags.
func connStepUps(flags []string) ([]store.StepUpRule, error) {
	var out []store.StepUpRule
	for _, f := range flags {
		var r store.StepUpRule
		for _, kv := range strings.Split(f, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, fmt.Errorf("--step-up %q: want scope=S,acr=A,max_age=D", f)
			}
			switch k {
			case "scope":
				r.Scope = v
			case "acr":
				r.ACR = v
			case "max_age":
				d, err := time.ParseDuration(v)
				if err != nil {
					return nil, fmt.Errorf("--step-up %q: max_age: %w", f, err)
				}
				r.MaxAge = d
			default:
				return nil, fmt.Errorf("--step-up %q: unknown key %q (want scope, acr, max_age)", f, k)
			}
		}
		if r.Scope == "" {
			return nil, fmt.Errorf("--step-up %q names no scope", f)
		}
		out = append(out, r)
	}
	return out, nil
}

// connDeadline reads an RFC 3339 time or a duration from now.
func connDeadline(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, errors.New("want an RFC 3339 time (2026-12-31T00:00:00Z) or a positive duration (2160h)")
	}
	return now.Add(d), nil
}

func connStampOrNever(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return stamp(t)
}

func connOrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func connOneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// startLedger runs the IdP's ledger work in the background: the deliverer
// that pushes queued security events to authorization servers, and the
// expiry of connections whose recertification date passed. stop ends
// both and waits for them.
func startLedger(ctx context.Context, cfg *config.Config, db *sqlstore.DB, keys ledger.Keys, issuer string, logger *slog.Logger) (stop func(), err error) {
	log := logger.With("role", "idp", "component", "ledger")
	del, err := ledger.NewDeliverer(&ledger.DelivererOptions{Store: db, Issuer: issuer, Keys: keys, AllowLoopbackHTTP: cfg.DevMode, Logger: log})
	if err != nil {
		return nil, err
	}
	svc, err := ledger.New(&ledger.Options{Store: db, Logger: log, Notify: del.Wake})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		del.Run(ctx)
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		t := time.NewTicker(ledgerExpiryEvery)
		defer t.Stop()
		for {
			if n, err := svc.ExpireDue(ctx); err != nil && ctx.Err() == nil {
				log.Error("expire connections", "err", err)
			} else if n > 0 {
				log.Info("connections expired", "count", n)
				del.Wake()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		cancel()
		<-done
		<-done
	}, nil
}

// ledgerExpiryEvery is how often connections past their recertification
// date are marked expired (the IdP refuses them from the moment the date
// passes either way).
const ledgerExpiryEvery = 5 * time.Second
