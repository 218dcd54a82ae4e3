package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
)

// TestFenceCommand: `xaa fence add` writes a fence and its audit record
// (actor cli:<os user>) to the configured database, `xaa fence list`
// shows it, and bad requests change nothing.
func TestFenceCommand(t *testing.T) {
	t.Parallel()
	cfg := deployment(t, "127.0.0.1:0")
	if _, _, err := runXAA(t, nil, "fence", "list", "--config", cfg); err == nil || !strings.Contains(err.Error(), "xaa migrate") {
		t.Fatalf("fence list before migrate = %v; want an error that says to run xaa migrate", err)
	}
	if _, _, err := runXAA(t, nil, "migrate", "--config", cfg); err != nil {
		t.Fatalf("migrate: %v", err)
	}

	for _, args := range [][]string{
		{"fence", "add"},
		{"fence", "add", "--client", "", "--sub", ""},
		{"fence", "add", "--client", "a b"},
		{"fence", "add", "--sub", "x\x01"},
		{"fence", "add", "--client", "app1", "extra"},
	} {
		if out, _, err := runXAA(t, nil, append(args, "--config", cfg)...); err == nil {
			t.Errorf("%q succeeded: %s", args, out)
		}
	}

	start := time.Now()
	out, _, err := runXAA(t, nil, "fence", "add", "--config", cfg, "--client", "app1", "--sub", "http://127.0.0.1/idp|alice", "--reason", "laptop stolen")
	if err != nil {
		t.Fatalf("fence add: %v", err)
	}
	if !strings.HasPrefix(out, "fenced client app1, sub http://127.0.0.1/idp|alice: tokens issued before ") {
		t.Errorf("fence add printed %q", out)
	}
	if _, _, err := runXAA(t, nil, "fence", "add", "--config", cfg, "--sub", "http://127.0.0.1/idp|bob"); err != nil {
		t.Fatalf("fence add --sub: %v", err)
	}

	out, _, err = runXAA(t, nil, "fence", "list", "--config", cfg)
	if err != nil {
		t.Fatalf("fence list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "CLIENT") ||
		!strings.Contains(lines[1], "app1") || !strings.Contains(lines[1], "laptop stolen") ||
		!strings.HasPrefix(lines[2], "(any)") || !strings.Contains(lines[2], "|bob") {
		t.Errorf("fence list:\n%s", out)
	}

	out, _, err = runXAA(t, nil, "fence", "list", "--config", cfg, "--json")
	if err != nil {
		t.Fatalf("fence list --json: %v", err)
	}
	var rows []struct {
		ClientID  string    `json:"client_id"`
		Subject   string    `json:"sub"`
		NotBefore time.Time `json:"not_before"`
		Reason    string    `json:"reason"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("fence list --json: %v\n%s", err, out)
	}
	if len(rows) != 2 || rows[0].ClientID != "app1" || rows[1].ClientID != "" || rows[1].Subject != "http://127.0.0.1/idp|bob" {
		t.Fatalf("rows = %+v", rows)
	}
	// not_before is the first whole second after the command ran.
	if nb := rows[0].NotBefore; nb.Before(start) || nb.After(time.Now().Add(time.Second)) || nb.Nanosecond() != 0 {
		t.Errorf("not_before %v; the command ran from %v", nb, start)
	}

	db, err := sqlstore.Open(t.Context(), "sqlite:"+filepath.Join(filepath.Dir(cfg), "xaa.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	evs, err := db.ListAudit(t.Context(), store.AuditFilter{Type: "fence.raised"})
	if err != nil {
		t.Fatal(err)
	}
	actor := cliActor(&env{getenv: func(string) string { return "" }})
	if len(evs) != 2 || evs[0].Actor != actor || !strings.HasPrefix(actor, "cli:") || actor == "cli:" ||
		evs[0].ClientID != "app1" || evs[0].Reason != "laptop stolen" || evs[0].Data["issuer"] != "http://127.0.0.1/as" {
		t.Errorf("audit records %+v; want two, the first by %q", evs, actor)
	}
}
