package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
)

const exampleSeed = "../../examples/seed.yaml"

func TestSeed(t *testing.T) {
	t.Parallel()
	cfg := deployment(t, "127.0.0.1:0")

	// Before migrate: refused with the fix in the message.
	if _, _, err := runXAA(t, nil, "seed", "--config", cfg, exampleSeed); err == nil || !strings.Contains(err.Error(), "xaa migrate") {
		t.Fatalf("seed before migrate = %v; want an error that says to run xaa migrate", err)
	}
	if _, _, err := runXAA(t, nil, "migrate", "--config", cfg); err != nil {
		t.Fatalf("migrate: %v", err)
	}

	out, _, err := runXAA(t, nil, "seed", "--config", cfg, exampleSeed)
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	want := "groups: 2 created, 0 updated, 0 unchanged\n" +
		"apps: 1 created, 0 updated, 0 unchanged\n" +
		"users: 3 created, 0 updated, 0 unchanged\n" +
		"auth servers: 1 created, 0 updated, 0 unchanged\n" +
		"resources: 1 created, 0 updated, 0 unchanged\n" +
		"connections: 1 created, 0 updated, 0 unchanged\n"
	if out != want {
		t.Errorf("seed printed:\n%s\nwant:\n%s", out, want)
	}

	out, _, err = runXAA(t, nil, "seed", "--config", cfg, exampleSeed)
	if err != nil {
		t.Fatalf("re-seed: %v", err)
	}
	if strings.Contains(out, "1 created") || strings.Contains(out, "1 updated") || strings.Count(out, "0 created, 0 updated") != 6 {
		t.Errorf("re-seeding the same file changed something:\n%s", out)
	}

	// A broken file: its error names the line and the key, and nothing of
	// it is written (the new user dave comes before the typo).
	broken := filepath.Join(t.TempDir(), "broken.yaml")
	doc := "groups:\n  - name: staff\nusers:\n  - username: dave\n    groups: [staff]\n    pasword: dave-password\n"
	if err := os.WriteFile(broken, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = runXAA(t, nil, "seed", "--config", cfg, broken)
	if err == nil {
		t.Fatal("seed accepted a broken file")
	}
	for _, w := range []string{"broken.yaml:6:", "users[0].pasword", `did you mean "password"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	db, err := sqlstore.Open(t.Context(), "sqlite:"+filepath.Join(filepath.Dir(cfg), "xaa.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.GetUserByUsername(t.Context(), "dave"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the broken seed wrote dave: %v", err)
	}
	alice, err := db.GetUserByUsername(t.Context(), "alice")
	if err != nil || alice.TOTPSealed == nil {
		t.Errorf("alice = %+v, %v; want her with a sealed TOTP secret", alice, err)
	}
}

func TestSeedCheck(t *testing.T) {
	t.Parallel()
	// --check needs neither a config nor a database.
	out, _, err := runXAA(t, nil, "seed", "--check", exampleSeed)
	if err != nil || out != exampleSeed+": ok\n" {
		t.Fatalf("seed --check = %q, %v", out, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("users:\n  - username: x\n    groups: [nope]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = runXAA(t, nil, "seed", "--check", bad)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%s:3:", bad)) || !strings.Contains(err.Error(), `group "nope" is not declared`) {
		t.Errorf("seed --check of a dangling group = %v", err)
	}
	if _, _, err := runXAA(t, nil, "seed"); err == nil {
		t.Error("seed without FILE succeeded")
	}
}

func TestHelpListsSeed(t *testing.T) {
	t.Parallel()
	out, _, err := runXAA(t, nil, "--help")
	if err != nil || !strings.Contains(out, "\n  seed ") {
		t.Errorf("xaa --help does not list seed:\n%s", out)
	}
}
