package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/user"
	"strings"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/openxaa/xaa/internal/config"
	"github.com/openxaa/xaa/internal/directory"
	"github.com/openxaa/xaa/internal/ledger"
	"github.com/openxaa/xaa/internal/store/sqlstore"
	"github.com/openxaa/xaa/xaaclient"
)

// demoClient is one user of the unattended scenario: the xaa client
// library as the requesting app "assistant", signing in through the real
// login form.
func demoClient(l demoLayout, s *demoSecrets, u demoUser, stepUps *atomic.Int32) (*xaaclient.Client, error) {
	return xaaclient.New(&xaaclient.Options{
		Issuer:            l.idp,
		Client:            xaaclient.Credentials{ClientID: "assistant", ClientSecret: s.AppSecret},
		AuthServers:       map[string]xaaclient.Credentials{l.as: {ClientID: "assistant", ClientSecret: s.AppSecret}},
		MemoryOnly:        true,
		AllowLoopbackHTTP: true,
		Browser:           scriptedBrowser(u),
		StepUp: func(context.Context, *xaaclient.StepUpChallenge) error {
			stepUps.Add(1)
			return nil
		},
		Logger: slog.New(slog.DiscardHandler),
	})
}

// callTool connects through the gateway with XAA and calls one tool.
func callTool(ctx context.Context, c *xaaclient.Client, endpoint, tool string, args map[string]any) (string, error) {
	cs, err := connect(ctx, c, endpoint)
	if err != nil {
		return "", err
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, ct := range res.Content {
		if t, ok := ct.(*mcp.TextContent); ok {
			b.WriteString(t.Text)
		}
	}
	if res.IsError {
		return "", fmt.Errorf("tool error: %s", b.String())
	}
	return b.String(), nil
}

type demoCheck struct {
	w      io.Writer
	failed []string
}

func (d *demoCheck) step(name, expect string, fn func() (string, error)) {
	fmt.Fprintf(d.w, "\n== %s\n   expect: %s\n", name, expect)
	got, err := fn()
	if err != nil {
		d.failed = append(d.failed, name)
		fmt.Fprintf(d.w, "   FAIL: %v\n", err)
		return
	}
	fmt.Fprintf(d.w, "   ok: %s\n", got)
}

func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// runDemoCheck runs the guided scenario unattended against the running
// demo and reports each step.
func runDemoCheck(ctx context.Context, w io.Writer, l demoLayout, s *demoSecrets) error {
	totp, err := directory.ParseTOTPSecret(s.AliceTOTP)
	if err != nil {
		return err
	}
	var bobStepUps, danaStepUps, aliceStepUps atomic.Int32
	bob, err := demoClient(l, s, demoUser{username: "bob", password: s.BobPassword}, &bobStepUps)
	if err != nil {
		return err
	}
	dana, err := demoClient(l, s, demoUser{username: "dana", password: s.DanaPassword}, &danaStepUps)
	if err != nil {
		return err
	}
	alice, err := demoClient(l, s, demoUser{username: "alice", password: s.AlicePassword, totp: totp}, &aliceStepUps)
	if err != nil {
		return err
	}
	d := &demoCheck{w: w}
	fmt.Fprintf(w, "xaa demo --check: IdP %s, authorization server %s, gateway %s and %s\n", l.idp, l.as, l.filesResource, l.crmResource)

	d.step("1. allowed: bob (staff) lists files", "the call succeeds with files:read", func() (string, error) {
		out, err := callTool(ctx, bob, l.filesResource, "list_files", nil)
		if err != nil {
			return "", err
		}
		if !strings.Contains(out, "welcome.txt") {
			return "", fmt.Errorf("listing lacks welcome.txt: %s", clip(out, 200))
		}
		return clip(out, 120), nil
	})
	d.step("2. narrowed: bob asks for files:read files:write", "the IdP grants files:read only; write_file is refused", func() (string, error) {
		tok, err := bob.Token(ctx, l.filesResource, "files:read", "files:write")
		if err != nil {
			return "", fmt.Errorf("token: %w", err)
		}
		granted, _ := tok.Extra("scope").(string)
		if granted != "files:read" {
			return "", fmt.Errorf("granted scope %q, want files:read", granted)
		}
		_, err = callTool(ctx, bob, l.filesResource, "write_file", map[string]any{"path": "bob.txt", "content": "hi"})
		if err == nil {
			return "", errors.New("write_file succeeded for bob")
		}
		if !errors.Is(err, xaaclient.ErrInsufficientScope) && !errors.Is(err, xaaclient.ErrDenied) {
			return "", fmt.Errorf("write_file failed for another reason: %w", err)
		}
		return fmt.Sprintf("granted %q; write_file: %s", granted, clip(err.Error(), 160)), nil
	})
	d.step("3. denied by policy: bob (not in sales or eng) searches the CRM", "the IdP refuses with access_denied naming the rule", func() (string, error) {
		_, err := callTool(ctx, bob, l.crmResource, "search_customers", map[string]any{"query": "grace"})
		var de *xaaclient.DeniedError
		if !errors.As(err, &de) {
			return "", fmt.Errorf("want a denial, got %v", err)
		}
		return clip(de.Error(), 200), nil
	})
	d.step("4a. allowed: dana (sales) searches the CRM", "crm:read is granted and the search runs", func() (string, error) {
		out, err := callTool(ctx, dana, l.crmResource, "search_customers", map[string]any{"query": "grace"})
		if err != nil {
			return "", err
		}
		return clip(out, 120), nil
	})
	d.step("4b. step-up: alice (eng, TOTP enrolled) signs in with her password and searches, then exports",
		"export_customers needs crm:export and an MFA login <= 5 min old: the IdP sends her back for her one-time code, then the export runs",
		func() (string, error) {
			if _, err := callTool(ctx, alice, l.crmResource, "search_customers", map[string]any{"query": "ada"}); err != nil {
				return "", fmt.Errorf("search with the password-only login: %w", err)
			}
			if n := aliceStepUps.Load(); n != 0 {
				return "", fmt.Errorf("the search asked for %d step-ups, want none", n)
			}
			out, err := callTool(ctx, alice, l.crmResource, "export_customers", map[string]any{})
			if err != nil {
				return "", err
			}
			if aliceStepUps.Load() == 0 {
				return "", errors.New("the export ran without a step-up")
			}
			if !strings.Contains(out, "Grace Hopper") {
				return "", fmt.Errorf("export lacks rows: %s", clip(out, 200))
			}
			return fmt.Sprintf("%d step-up, then %s", aliceStepUps.Load(), clip(out, 100)), nil
		})
	d.step("4c. refused: dana (sales) exports customers", "crm:export is not granted to sales, the export never runs", func() (string, error) {
		_, err := callTool(ctx, dana, l.crmResource, "export_customers", map[string]any{})
		if err == nil {
			return "", errors.New("export succeeded for dana")
		}
		if !errors.Is(err, xaaclient.ErrInsufficientScope) && !errors.Is(err, xaaclient.ErrDenied) {
			return "", fmt.Errorf("export failed for another reason: %w", err)
		}
		return clip(err.Error(), 160), nil
	})
	d.step("5. revoked: the assistant -> files connection is revoked while alice works", "the gateway refuses her live token after its next poll and the IdP refuses new ID-JAGs", func() (string, error) {
		if _, err := callTool(ctx, alice, l.filesResource, "read_file", map[string]any{"path": "welcome.txt"}); err != nil {
			return "", fmt.Errorf("before revocation: %w", err)
		}
		start := time.Now()
		if err := revokeDemoConnection(ctx, l, "assistant", l.filesResource); err != nil {
			return "", err
		}
		for {
			_, err := callTool(ctx, alice, l.filesResource, "read_file", map[string]any{"path": "welcome.txt"})
			if err != nil {
				var de *xaaclient.DeniedError
				if !errors.As(err, &de) {
					return "", fmt.Errorf("after revocation: want a denial, got %w", err)
				}
				return fmt.Sprintf("refused %.1fs after the revocation: %s", time.Since(start).Seconds(), clip(de.Error(), 160)), nil
			}
			if time.Since(start) > 15*time.Second {
				return "", errors.New("alice could still read files 15 s after the revocation")
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	if len(d.failed) > 0 {
		return fmt.Errorf("demo check failed: %s", strings.Join(d.failed, "; "))
	}
	fmt.Fprintln(w, "\nall demo steps behaved as expected")
	return nil
}

// revokeDemoConnection revokes the connection in the ledger, as the local
// operator would with `xaa connection revoke`: the IdP refuses new
// ID-JAGs at once, and the demo's IdP pushes a security event to the
// authorization server, which fences the app's older ID-JAGs and tokens
// (gateways drop them on their next poll).
func revokeDemoConnection(ctx context.Context, l demoLayout, app, resource string) error {
	cfg, err := config.Load(l.config, func(string) string { return "" })
	if err != nil {
		return err
	}
	return withLedgerConfig(ctx, cfg, io.Discard, func(ctx context.Context, s *ledger.Service, db *sqlstore.DB) error {
		conn, err := db.FindConnection(ctx, app, resource)
		if err != nil {
			return fmt.Errorf("find the connection: %w", err)
		}
		actor := ledger.Actor{Kind: ledger.ActorCLI, ID: "demo"}
		if u, err := user.Current(); err == nil {
			actor.ID = "demo:" + u.Username
		}
		_, err = s.Revoke(ctx, actor, conn.ID, "revoked in the demo scenario")
		return err
	})
}

func printDemoGuide(w io.Writer, l demoLayout, s *demoSecrets, xaa string) {
	p := "--profile " + l.client
	fmt.Fprintf(w, `
OpenXAA demo is running (Ctrl-C stops it). State: %[1]s

  IdP                      %[2]s
  authorization server     %[3]s
  gateway -> files (HTTP)  %[4]s
  gateway -> crm (stdio)   %[5]s

  users (password):        alice (%[6]s, plus TOTP), bob (%[7]s), dana (%[8]s)
  alice's TOTP secret:     %[9]s   (or: %[10]s demo totp --state-dir %[1]s)

In another terminal; the CLI is the requesting app "assistant", and a browser opens for each login:

  # 1. allowed: sign in as bob (staff); he may list and read files
  %[10]s login %[11]s
  %[10]s tools %[11]s %[4]s
  %[10]s call %[11]s %[4]s read_file path=welcome.txt

  # 2. narrowed: bob holds files:read only, so writing is refused with insufficient_scope
  %[10]s call %[11]s %[4]s write_file path=x.txt content=hi

  # 3. denied by policy: bob is in neither sales nor eng; the IdP says which rule
  %[10]s call %[11]s %[5]s search_customers query=grace

  # 4. step-up: sign in as alice (eng; password, then her one-time code);
  #    export_customers needs crm:export and an MFA login no older than 5 minutes
  %[10]s login --force %[11]s
  %[10]s call %[11]s %[5]s export_customers

  # 5. revoked: revoke the assistant -> files connection in the ledger; the IdP refuses at once,
  #    and its security event makes the gateway drop older tokens at its next poll (2 s here)
  %[10]s connection list --config %[12]s --app assistant
  %[10]s connection revoke --config %[12]s <connection id> --reason "demo revocation"
  %[10]s call %[11]s %[4]s read_file path=welcome.txt

Or run every step unattended: %[10]s demo --check
`, l.dir, l.idp, l.as, l.filesResource, l.crmResource, s.AlicePassword, s.BobPassword, s.DanaPassword, s.AliceTOTP, xaa, p, l.config)
}

// restoreDemoConnections undoes an earlier run's revocation: the seed never
// brings an ended connection back, so the demo asks the ledger for a new
// one with the same terms and approves it, as an admin would.
func restoreDemoConnections(ctx context.Context, l demoLayout) error {
	cfg, err := config.Load(l.config, func(string) string { return "" })
	if err != nil {
		return err
	}
	return withLedgerConfig(ctx, cfg, io.Discard, func(ctx context.Context, s *ledger.Service, db *sqlstore.DB) error {
		actor := ledger.Actor{Kind: ledger.ActorCLI, ID: "demo"}
		for _, res := range []string{l.filesResource, l.crmResource} {
			last, err := db.LatestConnection(ctx, "assistant", res)
			if err != nil {
				return fmt.Errorf("demo connection to %s: %w", res, err)
			}
			if !last.Status.Ended() {
				continue
			}
			e, err := s.Request(ctx, actor, ledger.RequestInput{
				App: "assistant", Resource: res, GroupScopes: last.GroupScopes, StepUp: last.StepUp,
				IDJAGLifetime: last.IDJAGLifetime, AccessTokenLifetime: last.AccessTokenLifetime,
				Justification: "restored for a new demo run after " + last.ID + " was revoked",
			})
			if err != nil {
				return fmt.Errorf("request a new demo connection to %s: %w", res, err)
			}
			if _, err := s.Approve(ctx, actor, e.ID, "demo"); err != nil {
				return fmt.Errorf("approve the new demo connection to %s: %w", res, err)
			}
		}
		return nil
	})
}
