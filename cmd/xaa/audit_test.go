package main

import (
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/openxaa/xaa/internal/audit"
	"github.com/openxaa/xaa/internal/config"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
	"github.com/openxaa/xaa/internal/store/storetest"
	"github.com/openxaa/xaa/internal/testenv"
)

func TestAuditKeygen(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "cp.key")
	stdout, _, err := runXAA(t, nil, "audit", "keygen", "--out", out)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := audit.LoadPrivateKey(out) // enforces 0600
	if err != nil {
		t.Fatal(err)
	}
	pub, err := audit.LoadPublicKey(out + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.Public()) || !strings.Contains(stdout, "key id "+audit.KeyID(pub)) {
		t.Errorf("keygen printed %q; key pair matches: %v", stdout, pub.Equal(priv.Public()))
	}
	if _, _, err := runXAA(t, nil, "audit", "keygen", "--out", out); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second keygen = %v, want a refusal to overwrite", err)
	}
	if _, _, err := runXAA(t, nil, "audit", "keygen"); err == nil {
		t.Error("keygen without --out succeeded")
	}
}

// auditDeployment is deployment() with the audit section (a checkpoint
// key and directory) and, if dbURL is set, that database instead of
// SQLite. It returns the config path, the checkpoint directory and the
// public key file.
func auditDeployment(t *testing.T, dbURL, listen string) (cfgPath, cpDir, pubKey string) {
	t.Helper()
	cfgPath = deployment(t, listen)
	dir := filepath.Dir(cfgPath)
	key := filepath.Join(dir, "audit.key")
	if _, _, err := runXAA(t, nil, "audit", "keygen", "--out", key); err != nil {
		t.Fatal(err)
	}
	cpDir = filepath.Join(dir, "checkpoints")
	if err := os.Mkdir(cpDir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(data)
	if dbURL != "" {
		cfg = regexp.MustCompile(`(?m)^  url: .*$`).ReplaceAllString(cfg, fmt.Sprintf("  url: %q", dbURL))
	}
	cfg += fmt.Sprintf("audit:\n  checkpoint_key_file: %s\n  checkpoint_dir: %s\n", key, cpDir)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, cpDir, key + ".pub"
}

func loadTestConfig(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestAuditCommands drives every xaa audit subcommand against SQLite and
// PostgreSQL: the records of one ID-JAG's life, checkpoints written the
// way serve writes them, then query, trace, export, and verify of the
// database and of the export, untouched and tampered.
func TestAuditCommands(t *testing.T) {
	t.Parallel()
	for _, backend := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"sqlite", func(*testing.T) string { return "" }},
		{"postgres", func(t *testing.T) string { return storetest.PostgresURL(t) }},
	} {
		t.Run(backend.name, func(t *testing.T) {
			t.Parallel()
			cfgPath, cpDir, pubKey := auditDeployment(t, backend.url(t), "127.0.0.1:0")
			if _, _, err := runXAA(t, nil, "migrate", "--config", cfgPath); err != nil {
				t.Fatal(err)
			}
			cfg := loadTestConfig(t, cfgPath)
			db, err := openStore(t.Context(), cfg, newLogger(cfg.Log, &syncBuffer{}))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			stop, err := startAuditCheckpoints(t.Context(), cfg, db, newLogger(cfg.Log, &syncBuffer{}))
			if err != nil {
				t.Fatal(err)
			}
			base := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
			add := func(s int, typ, outcome string, data map[string]string) {
				t.Helper()
				ev := store.AuditEvent{Time: base.Add(time.Duration(s) * time.Second), Type: typ, Actor: "agent", ClientID: "agent",
					Subject: "alice", Outcome: outcome, Data: data}
				if err := db.AppendAudit(t.Context(), &ev); err != nil {
					t.Fatal(err)
				}
			}
			add(1, "idjag.issued", "allow", map[string]string{"jti": "idjag-1", "token_hmac": "aa"})
			add(2, "accesstoken.issued", "allow", map[string]string{"jti": "at-1", "idjag_jti": "idjag-1", "token_hmac": "bb"})
			add(3, "gateway.tool_call", "allow", map[string]string{"jti": "at-1", "tool": "search"})
			add(4, "gateway.tool_call", "deny", map[string]string{"jti": "at-1", "tool": "export\x1b[31m"})
			add(5, "idjag.issued", "allow", map[string]string{"jti": "idjag-2"})
			add(6, "idjag.denied", "deny", nil)
			stop() // the final checkpoint, as at shutdown
			cps, _ := filepath.Glob(filepath.Join(cpDir, audit.CheckpointFilePattern))
			if len(cps) != 1 {
				t.Fatalf("checkpoint files: %v", cps)
			}

			out, _, err := runXAA(t, nil, "audit", "verify", "--config", cfgPath)
			if err != nil || !strings.Contains(out, "stream idp: ok, 3 records") || !strings.Contains(out, "stream gateway: ok, 2 records") ||
				!strings.Contains(out, "all verified") || strings.Contains(out, "against 0 checkpoints") {
				t.Fatalf("verify of an untouched database: %v\n%s", err, out)
			}

			// query: typed filters only.
			out, _, err = runXAA(t, nil, "audit", "query", "--config", cfgPath, "--type", "gateway.tool_call", "--json")
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 2 {
				t.Fatalf("query --type: %q", out)
			}
			for _, l := range lines {
				if r, err := audit.ParseRecord([]byte(l)); err != nil || r.Type != "gateway.tool_call" {
					t.Errorf("query --json line %q: %+v, %v", l, r, err)
				}
			}
			out, _, err = runXAA(t, nil, "audit", "query", "--config", cfgPath, "--outcome", "deny", "--since", "1h", "--limit", "1")
			if err != nil || strings.Count(out, "\n") != 2 || !strings.Contains(out, `tool="export\x1b[31m"`) {
				t.Errorf("query --outcome deny --limit 1 (the escape sequence must be quoted):\n%s%v", out, err)
			}
			for _, args := range [][]string{
				{"--outcome", "maybe"}, {"--limit", "0"}, {"--limit", "100001"}, {"--since", "yesterday"},
				{"--since", "1h", "--until", "2h"}, {"--stream", "Bad Stream"}, {"--subject", "a\x00b"},
			} {
				if _, _, err := runXAA(t, nil, append([]string{"audit", "query", "--config", cfgPath}, args...)...); err == nil {
					t.Errorf("query %q succeeded", args)
				}
			}
			for _, evil := range []string{"x' OR 1=1 --", "' OR ''='", "%", "*"} {
				out, _, err := runXAA(t, nil, "audit", "query", "--config", cfgPath, "--subject", evil, "--json")
				if err != nil || out != "" {
					t.Errorf("query --subject %q = %q, %v; want nothing", evil, out, err)
				}
			}

			// trace: from either end, in time order.
			for _, jti := range []string{"idjag-1", "at-1"} {
				out, _, err := runXAA(t, nil, "audit", "trace", "--config", cfgPath, jti)
				if err != nil {
					t.Fatal(err)
				}
				var types []string
				for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
					types = append(types, strings.Fields(l)[2])
				}
				if strings.Join(types, " ") != "idjag.issued accesstoken.issued gateway.tool_call gateway.tool_call" {
					t.Errorf("trace %s:\n%s", jti, out)
				}
			}
			if _, _, err := runXAA(t, nil, "audit", "trace", "--config", cfgPath, "eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJ4In0.c2ln"); err == nil || !strings.Contains(err.Error(), "looks like a token") {
				t.Errorf("trace of a token: %v", err)
			}
			if _, _, err := runXAA(t, nil, "audit", "trace", "--config", cfgPath, "nobody"); err == nil {
				t.Error("trace of an unknown jti succeeded")
			}

			// export, and verify the file alone (no config, no database).
			export := filepath.Join(t.TempDir(), "audit.jsonl")
			if _, _, err := runXAA(t, nil, "audit", "export", "--config", cfgPath, "--out", export); err != nil {
				t.Fatal(err)
			}
			if out, _, err := runXAA(t, nil, "audit", "verify", "--export", export, "--checkpoints", cpDir, "--pubkey", pubKey); err != nil {
				t.Fatalf("verify --export: %v\n%s", err, out)
			}
			data, err := os.ReadFile(export)
			if err != nil {
				t.Fatal(err)
			}
			exported := strings.Split(strings.TrimSpace(string(data)), "\n")
			if len(exported) != 6 {
				t.Fatalf("export holds %d lines", len(exported))
			}
			idOf := func(i int) int64 {
				r, err := audit.ParseRecord([]byte(exported[i]))
				if err != nil {
					t.Fatal(err)
				}
				return r.ID
			}
			// Lines: 0 idp/1, 1 authserver/1, 2 gateway/1, 3 gateway/2, 4 idp/2, 5 idp/3.
			for _, tc := range []struct {
				name   string
				tamper func(l []string) []string
				want   string
			}{
				{"one byte changed", func(l []string) []string {
					l[3] = strings.Replace(l[3], `"deny"`, `"allow"`, 1)
					return l
				}, fmt.Sprintf("stream gateway: BROKEN at seq 2 (record id %d): the hash does not match", idOf(3))},
				{"record removed", func(l []string) []string { return append(l[:4:4], l[5:]...) },
					fmt.Sprintf("stream idp: BROKEN at seq 2 (record id %d): record 2 is missing", idOf(5))},
				{"two records swapped", func(l []string) []string { l[4], l[5] = l[5], l[4]; return l },
					fmt.Sprintf("stream idp: BROKEN at seq 2 (record id %d): record 2 is missing or out of order", idOf(5))},
				{"tail truncated", func(l []string) []string { return l[:5] },
					"stream idp: BROKEN at seq 3 (no record stored there): the stream ends at seq 2 but the checkpoint"},
			} {
				tampered := filepath.Join(t.TempDir(), "tampered.jsonl")
				if err := os.WriteFile(tampered, []byte(strings.Join(tc.tamper(append([]string(nil), exported...)), "\n")+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				out, _, err := runXAA(t, nil, "audit", "verify", "--export", tampered, "--checkpoints", cpDir, "--pubkey", pubKey)
				if err == nil || !strings.Contains(out, tc.want) {
					t.Errorf("%s: verify = %v\n%s\nwant a line containing %q", tc.name, err, out, tc.want)
				}
			}

			// export --since: partial, verifies with --partial.
			partial := filepath.Join(t.TempDir(), "partial.jsonl")
			if _, stderr, err := runXAA(t, nil, "audit", "export", "--config", cfgPath, "--since", base.Add(4*time.Second).Format(time.RFC3339Nano), "--out", partial); err != nil || !strings.Contains(stderr, "--partial") {
				t.Fatalf("export --since: %v %s", err, stderr)
			}
			if out, _, err := runXAA(t, nil, "audit", "verify", "--export", partial, "--checkpoints", cpDir, "--pubkey", pubKey); err == nil {
				t.Errorf("a partial export verified without --partial:\n%s", out)
			}
			if out, _, err := runXAA(t, nil, "audit", "verify", "--export", partial, "--partial", "--checkpoints", cpDir, "--pubkey", pubKey); err != nil {
				t.Errorf("verify --partial: %v\n%s", err, out)
			}

			// Tamper with the database itself: truncate the idp tail and move
			// its head back, as someone with full write access would. The
			// chain alone still verifies; the checkpoints do not.
			raw := rawDB(t, cfg)
			for _, q := range tamperStatements(db.Dialect()) {
				if _, err := raw.ExecContext(t.Context(), q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			out, _, err = runXAA(t, nil, "audit", "verify", "--config", cfgPath)
			if err == nil || !strings.Contains(out, "stream idp: BROKEN at seq 3 (no record stored there)") || !strings.Contains(out, "truncated tail") {
				t.Errorf("verify of a truncated database: %v\n%s", err, out)
			}
			if out, _, err := runXAA(t, nil, "audit", "verify", "--config", cfgPath, "--checkpoints", filepath.Join(cpDir, "missing.jsonl")); err == nil {
				t.Errorf("verify with a missing checkpoint file succeeded:\n%s", out)
			}
		})
	}
}

func rawDB(t *testing.T, cfg *config.Config) *sql.DB {
	t.Helper()
	u := cfg.Database.URL.Reveal()
	driver, dsn := "pgx", u
	if path, ok := strings.CutPrefix(u, "sqlite:"); ok {
		driver, dsn = "sqlite", path
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func tamperStatements(dialect string) []string {
	drop := []string{`DROP TRIGGER audit_events_no_delete`}
	if dialect == sqlstore.DialectPostgres {
		drop = []string{`ALTER TABLE audit_events DISABLE TRIGGER USER`}
	}
	return append(drop,
		`DELETE FROM audit_events WHERE stream = 'idp' AND seq = 3`,
		`UPDATE audit_heads SET seq = 2, hash = (SELECT hash FROM audit_events WHERE stream = 'idp' AND seq = 2) WHERE stream = 'idp'`)
}

// TestAuditTailer: the follower prints each new record once, in id
// order, whatever the stream, honours the filters, and with --since
// starts from then.
func TestAuditTailer(t *testing.T) {
	t.Parallel()
	cfgPath, _, _ := auditDeployment(t, "", "127.0.0.1:0")
	if _, _, err := runXAA(t, nil, "migrate", "--config", cfgPath); err != nil {
		t.Fatal(err)
	}
	cfg := loadTestConfig(t, cfgPath)
	db, err := openStore(t.Context(), cfg, newLogger(cfg.Log, &syncBuffer{}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	add := func(typ, outcome string) int64 {
		ev := store.AuditEvent{Type: typ, Outcome: outcome}
		if err := db.AppendAudit(t.Context(), &ev); err != nil {
			t.Fatal(err)
		}
		return ev.ID
	}
	old := add("idjag.issued", "allow")
	all, err := newTailer(t.Context(), db, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	denies, _ := newTailer(t.Context(), db, store.AuditFilter{Outcome: "deny"})
	since, _ := newTailer(t.Context(), db, store.AuditFilter{Since: time.Now().Add(-time.Hour)})
	ids := func(tl *tailer) []int64 {
		evs, err := tl.poll(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, e := range evs {
			out = append(out, e.ID)
		}
		return out
	}
	if got := ids(all); len(got) != 0 {
		t.Errorf("nothing new yet, got %v", got)
	}
	a := add("gateway.tool_call", "deny")
	b := add("idjag.issued", "allow")
	c := add("accesstoken.denied", "deny")
	if got, want := fmt.Sprint(ids(all)), fmt.Sprint([]int64{a, b, c}); got != want {
		t.Errorf("all: %s, want %s", got, want)
	}
	if got := ids(all); len(got) != 0 {
		t.Errorf("second poll repeats %v", got)
	}
	if got, want := fmt.Sprint(ids(denies)), fmt.Sprint([]int64{a, c}); got != want {
		t.Errorf("deny only: %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(ids(since)), fmt.Sprint([]int64{old, a, b, c}); got != want {
		t.Errorf("since an hour ago: %s, want %s", got, want)
	}
	d := add("gateway.tool_call", "deny")
	if got, want := fmt.Sprint(ids(denies)), fmt.Sprint([]int64{d}); got != want {
		t.Errorf("deny only, later: %s, want %s", got, want)
	}
	if _, _, err := runXAA(t, nil, "audit", "tail", "--config", cfgPath, "--interval", "1ms"); err == nil {
		t.Error("tail --interval 1ms accepted")
	}
}

// jwtClaim reads one string claim of a compact JWT (the test got it from
// the server; its signature is checked elsewhere).
func jwtClaim(t *testing.T, token, claim string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatal(err)
	}
	s, _ := m[claim].(string)
	return s
}

// TestServeAuditTrail runs the real binary: login, token exchange and
// jwt-bearer (and a refused replay) against serve with checkpoints on.
// Every token the client received has its audit record, found by its jti;
// `xaa audit trace` links the IdP's decision to the redemption and the
// replay; tokens appear in no record; and after shutdown the checkpoints
// serve wrote hold the whole trail.
func TestServeAuditTrail(t *testing.T) {
	t.Parallel()
	port := testenv.FreeLoopbackPort(t)
	cfgPath, idpIssuer, asIssuer := e2eDeployment(t, port)
	dir := filepath.Dir(cfgPath)
	key := filepath.Join(dir, "audit.key")
	if _, _, err := runXAA(t, nil, "audit", "keygen", "--out", key); err != nil {
		t.Fatal(err)
	}
	cpDir := filepath.Join(dir, "checkpoints")
	if err := os.Mkdir(cpDir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "audit:\n  checkpoint_key_file: %s\n  checkpoint_dir: %s\n", key, cpDir)
	f.Close()
	if _, _, err := runXAA(t, nil, "migrate", "--config", cfgPath); err != nil {
		t.Fatal(err)
	}
	base, _, stop := startServe(t, cfgPath)
	waitHealthy(t, base+"/healthz")

	idToken := testenv.OIDCLogin(t, testenv.Login{Issuer: idpIssuer, ClientID: "assistant", ClientSecret: e2eAppSecret,
		RedirectURI: e2eRedirectURI, Username: "alice", Password: e2ePassword})
	jag, err := oauthex.ExchangeToken(t.Context(), idpIssuer+"/token", &oauthex.TokenExchangeRequest{
		RequestedTokenType: oauthex.TokenTypeIDJAG, Audience: asIssuer, Resource: e2eResource, Scope: []string{"files:read"},
		SubjectToken: idToken, SubjectTokenType: oauthex.TokenTypeIDToken,
	}, &oauthex.ClientCredentials{ClientID: "assistant", ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: e2eAppSecret}}, nil)
	if err != nil {
		t.Fatalf("token exchange: %v", err)
	}
	bearer := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {jag.AccessToken}, "resource": {e2eResource}}
	status, tok := testenv.TokenPost(t, asIssuer+"/token", e2eASClientID, e2eASSecret, bearer)
	if status != http.StatusOK {
		t.Fatalf("jwt-bearer = %d %v", status, tok)
	}
	access, _ := tok["access_token"].(string)
	if status, _ := testenv.TokenPost(t, asIssuer+"/token", e2eASClientID, e2eASSecret, bearer); status != http.StatusBadRequest {
		t.Fatalf("replay = %d", status)
	}
	stop()

	jagJTI, atJTI := jwtClaim(t, jag.AccessToken, "jti"), jwtClaim(t, access, "jti")
	if jagJTI == "" || atJTI == "" {
		t.Fatal("tokens without jti")
	}
	out, _, err := runXAA(t, nil, "audit", "trace", "--config", cfgPath, "--json", jagJTI)
	if err != nil {
		t.Fatalf("trace: %v", err)
	}
	var types []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		r, err := audit.ParseRecord([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, r.Type)
		switch r.Type {
		case "idjag.issued":
			if r.Data["jti"] != jagJTI || r.Stream != audit.StreamIdP {
				t.Errorf("IdP record: %+v", r)
			}
		case "accesstoken.issued":
			if r.Data["jti"] != atJTI || r.Data["idjag_jti"] != jagJTI || r.Stream != audit.StreamAuthServer {
				t.Errorf("redemption record: %+v", r)
			}
		}
	}
	if strings.Join(types, " ") != "idjag.issued accesstoken.issued accesstoken.denied" {
		t.Errorf("trace %s: %v", jagJTI, types)
	}
	exportOut, _, err := runXAA(t, nil, "audit", "export", "--config", cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{idToken, jag.AccessToken, access, e2eAppSecret, e2eASSecret, e2ePassword} {
		if strings.Contains(exportOut, secret) {
			t.Error("the audit trail holds a token or secret")
		}
	}
	out, _, err = runXAA(t, nil, "audit", "verify", "--config", cfgPath)
	if err != nil || !strings.Contains(out, "all verified") || strings.Contains(out, "against 0 checkpoints") {
		t.Errorf("verify after serve: %v\n%s", err, out)
	}
}

// A deployment whose checkpoint directory is still empty verifies with a
// warning; an explicit checkpoint file without checkpoints is an error.
func TestAuditVerifyWithoutCheckpointsYet(t *testing.T) {
	t.Parallel()
	cfgPath, cpDir, pubKey := auditDeployment(t, "", "127.0.0.1:0")
	if _, _, err := runXAA(t, nil, "migrate", "--config", cfgPath); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := runXAA(t, nil, "audit", "verify", "--config", cfgPath)
	if err != nil || !strings.Contains(out, "checked 0 streams, 0 records, against 0 checkpoints: all verified") || !strings.Contains(stderr, "warning: no checkpoints") {
		t.Errorf("verify of a fresh deployment: %v\n%s%s", err, out, stderr)
	}
	empty := filepath.Join(cpDir, "checkpoints-2026-01-01.jsonl")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runXAA(t, nil, "audit", "verify", "--config", cfgPath, "--checkpoints", empty, "--pubkey", pubKey); err == nil || !strings.Contains(err.Error(), "no checkpoints found") {
		t.Errorf("verify --checkpoints EMPTY: %v", err)
	}
	if _, _, err := runXAA(t, nil, "audit", "verify", "--config", cfgPath, "--partial"); err == nil {
		t.Error("--partial without --export accepted")
	}
}
