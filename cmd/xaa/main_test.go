package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gojose "github.com/go-jose/go-jose/v4"
)

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runXAA runs the binary in-process with an environment made only of env.
func runXAA(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut syncBuffer
	err = run(t.Context(), append([]string{"xaa"}, args...), func(k string) string { return env[k] }, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

// deployment writes a wrapping key and a config for a SQLite deployment
// with both issuers in dev mode, and returns the config path.
func deployment(t *testing.T, listen string) string {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "wrapping.key")
	if _, _, err := runXAA(t, nil, "keys", "init", "--out", keyFile); err != nil {
		t.Fatalf("keys init: %v", err)
	}
	cfg := fmt.Sprintf(`database:
  url: "sqlite:%s"
keys:
  wrapping_key_file: %s
  max_token_lifetime: 10m
log:
  level: warn
listen:
  addr: %q
  admin_addr: "127.0.0.1:0"
issuers:
  idp: "http://127.0.0.1/idp"
  authserver: "http://127.0.0.1/as"
dev_mode: true
authserver:
  trusted_issuers:
    - issuer: "http://127.0.0.1/idp"
      jwks_uri: "http://127.0.0.1/idp/jwks.json"
  resources:
    - uri: "http://127.0.0.1/mcp"
      scopes: [files:read]
`, filepath.Join(dir, "xaa.db"), keyFile, listen)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHelpListsSubcommands(t *testing.T) {
	t.Parallel()
	out, _, err := runXAA(t, nil, "--help")
	if err != nil {
		t.Fatalf("xaa --help: %v", err)
	}
	for _, sub := range []string{"config", "keys", "migrate", "serve", "version"} {
		if !strings.Contains(out, "\n  "+sub+" ") {
			t.Errorf("xaa --help does not list %q:\n%s", sub, out)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		wantErr []string // substrings of the error; nil means success
	}{
		{
			name:    "misspelled key names line and key",
			content: "database:\n  url: \"sqlite:/tmp/x.db\"\n\nkeys:\n  wrapping_key_file: /k\n  algorithim: ES256\n",
			wantErr: []string{"broken.yaml:6", "keys.algorithim", `did you mean "algorithm"`},
		},
		{
			name:    "unknown section",
			content: "databse:\n  url: x\n",
			wantErr: []string{"broken.yaml:1", "databse"},
		},
		{
			name:    "wrong type names line and key",
			content: "database:\n  url: \"sqlite:/tmp/x.db\"\n  max_open_conns: ten\nkeys:\n  wrapping_key_file: /k\n",
			wantErr: []string{"broken.yaml:3", "database.max_open_conns"},
		},
		{
			name:    "invalid value",
			content: "database:\n  url: \"mysql://x\"\nkeys:\n  wrapping_key_file: /k\n",
			wantErr: []string{"database.url", "unsupported scheme"},
		},
		{
			name:    "valid",
			content: "database:\n  url: \"sqlite:/tmp/x.db\"\nkeys:\n  wrapping_key_file: /k\n",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, fmt.Sprintf("%d", i), "broken.yaml")
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			out, _, err := runXAA(t, nil, "config", "check", path)
			if tt.wantErr == nil {
				if err != nil || !strings.Contains(out, ": ok") {
					t.Fatalf("config check = %q, %v; want ok", out, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("config check accepted a broken file:\n%s", tt.content)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	t.Parallel()
	out, _, err := runXAA(t, nil, "config", "check", "../../examples/config.yaml")
	if err != nil {
		t.Fatalf("examples/config.yaml: %v", err)
	}
	if !strings.Contains(out, "ok") {
		t.Fatalf("unexpected output %q", out)
	}
}

func TestKeysInitRefusesToOverwrite(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "k")
	if _, _, err := runXAA(t, nil, "keys", "init", "--out", path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("wrapping key file mode = %o, want 600", fi.Mode().Perm())
	}
	before, _ := os.ReadFile(path)
	if _, _, err := runXAA(t, nil, "keys", "init", "--out", path); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second keys init = %v, want an 'already exists' error", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("keys init overwrote an existing wrapping key")
	}
}

type keyRow struct {
	Role  string `json:"role"`
	KID   string `json:"kid"`
	State string `json:"state"`
}

func listKeys(t *testing.T, cfg string) []keyRow {
	t.Helper()
	out, _, err := runXAA(t, nil, "keys", "list", "--json", "--config", cfg)
	if err != nil {
		t.Fatalf("keys list: %v", err)
	}
	var rows []keyRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("keys list --json: %v\n%s", err, out)
	}
	return rows
}

func states(rows []keyRow, role string) map[string]string {
	m := map[string]string{}
	for _, r := range rows {
		if r.Role == role {
			m[r.KID] = r.State
		}
	}
	return m
}

func TestMigrateAndKeyRotation(t *testing.T) {
	t.Parallel()
	cfg := deployment(t, "127.0.0.1:0")

	out, _, err := runXAA(t, nil, "migrate", "--config", cfg)
	if err != nil || !strings.Contains(out, "applied") {
		t.Fatalf("migrate = %q, %v", out, err)
	}
	out, _, err = runXAA(t, nil, "migrate", "--config", cfg)
	if err != nil || !strings.Contains(out, "up to date") {
		t.Fatalf("second migrate = %q, %v", out, err)
	}

	// keys list only reads; any command that opens the key managers (here
	// keys retire) creates the active and next keys on first use.
	if rows := listKeys(t, cfg); len(rows) != 0 {
		t.Fatalf("keys before first use: %v", rows)
	}
	if _, _, err := runXAA(t, nil, "keys", "retire", "--config", cfg); err != nil {
		t.Fatalf("keys retire: %v", err)
	}
	first := states(listKeys(t, cfg), "idp")
	if len(first) != 2 {
		t.Fatalf("after first use idp has %v, want an active and a next key", first)
	}
	var active, next string
	for kid, st := range first {
		switch st {
		case "active":
			active = kid
		case "next":
			next = kid
		}
	}
	if active == "" || next == "" {
		t.Fatalf("idp keys %v, want one active and one next", first)
	}

	out, _, err = runXAA(t, nil, "keys", "rotate", "--role", "idp", "--config", cfg)
	if err != nil {
		t.Fatalf("keys rotate: %v", err)
	}
	if !strings.Contains(out, "idp: active "+next) {
		t.Errorf("rotate output %q does not activate the pre-published key %s", out, next)
	}
	after := states(listKeys(t, cfg), "idp")
	if after[active] != "retiring" || after[next] != "active" || len(after) != 3 {
		t.Fatalf("after rotate idp keys = %v; want %s retiring, %s active, and a new next key", after, active, next)
	}
	if as := states(listKeys(t, cfg), "authserver"); len(as) != 2 {
		t.Errorf("rotating idp changed authserver keys: %v", as)
	}
	if _, _, err := runXAA(t, nil, "keys", "rotate", "--role", "nope", "--config", cfg); err == nil {
		t.Error("keys rotate --role nope succeeded")
	}
}

func TestServeRefusesUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	cfg := deployment(t, "127.0.0.1:0")
	_, _, err := runXAA(t, nil, "serve", "--config", cfg)
	if err == nil || !strings.Contains(err.Error(), "xaa migrate") {
		t.Fatalf("serve on an empty database = %v; want an error that says to run xaa migrate", err)
	}
}

func TestServe(t *testing.T) {
	t.Parallel()
	cfg := deployment(t, "127.0.0.1:0")
	if _, _, err := runXAA(t, nil, "migrate", "--config", cfg); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdoutR, stdoutW := io.Pipe()
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"xaa", "serve", "--config", cfg}, func(string) string { return "" }, strings.NewReader(""), stdoutW, &stderr)
		stdoutW.Close()
	}()

	var base, admin string
	sc := bufio.NewScanner(stdoutR)
	for (base == "" || admin == "") && sc.Scan() {
		line := sc.Text()
		if a, ok := strings.CutPrefix(line, "serving on "); ok {
			base = a
		}
		if a, ok := strings.CutPrefix(line, "admin (metrics) on "); ok {
			admin = a
		}
	}
	go io.Copy(io.Discard, stdoutR)
	if base == "" || admin == "" {
		t.Fatalf("serve did not announce its addresses; stderr:\n%s\nerr: %v", stderr.String(), <-done)
	}

	waitHealthy(t, base+"/healthz")
	get := func(url string) (int, []byte, http.Header) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body, resp.Header
	}

	if code, body, _ := get(base + "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d %s", code, body)
	}
	for _, path := range []string{"/idp/jwks.json", "/as/jwks.json"} {
		code, body, h := get(base + path)
		if code != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, code, body)
		}
		var set gojose.JSONWebKeySet
		if err := json.Unmarshal(body, &set); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(set.Keys) != 2 {
			t.Errorf("%s publishes %d keys, want active + next", path, len(set.Keys))
		}
		if bytes.Contains(body, []byte(`"d"`)) {
			t.Errorf("%s leaks private key material", path)
		}
		if cc := h.Get("Cache-Control"); !strings.Contains(cc, "max-age") {
			t.Errorf("%s Cache-Control = %q", path, cc)
		}
	}
	// The IdP role serves discovery under its issuer path and at the
	// RFC 8414 path-inserted location, with the exact configured issuer.
	for _, path := range []string{"/idp/.well-known/openid-configuration", "/.well-known/oauth-authorization-server/idp"} {
		code, body, _ := get(base + path)
		if code != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, code, body)
		}
		var md struct {
			Issuer        string `json:"issuer"`
			TokenEndpoint string `json:"token_endpoint"`
		}
		if err := json.Unmarshal(body, &md); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if md.Issuer != "http://127.0.0.1/idp" || md.TokenEndpoint != "http://127.0.0.1/idp/token" {
			t.Errorf("%s: issuer %q, token_endpoint %q", path, md.Issuer, md.TokenEndpoint)
		}
	}
	if code, _, _ := get(base + "/metrics"); code != http.StatusNotFound {
		t.Errorf("public /metrics = %d, want 404: metrics belong on the admin listener", code)
	}
	if code, body, _ := get(admin + "/metrics"); code != http.StatusOK || !bytes.Contains(body, []byte("go_goroutines")) {
		t.Errorf("admin /metrics = %d", code)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v after shutdown", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not shut down")
	}
}

func waitHealthy(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never became healthy", url)
}

func TestServeRefusesIssuersItCannotTellApart(t *testing.T) {
	t.Parallel()
	cfg := deployment(t, "127.0.0.1:0")
	if _, _, err := runXAA(t, nil, "migrate", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	// Same host and path, different ports: one listener cannot route them.
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte(`"http://127.0.0.1/as"`), []byte(`"http://127.0.0.1:8443/idp"`), 1)
	if err := os.WriteFile(cfg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = runXAA(t, nil, "serve", "--config", cfg)
	if err == nil || !strings.Contains(err.Error(), "share host and path") {
		t.Fatalf("serve with indistinguishable issuers = %v, want a 'share host and path' error", err)
	}
}
