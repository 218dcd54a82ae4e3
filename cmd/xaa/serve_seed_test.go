package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// withSeedFile points the deployment's config at seed and logs at info,
// so serve's one-line seed summary is visible.
func withSeedFile(t *testing.T, cfg, seed string) {
	t.Helper()
	abs, err := filepath.Abs(seed)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(data), "level: warn", "level: info", 1) + "seed_file: " + abs + "\n"
	if err := os.WriteFile(cfg, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startServe runs `xaa serve` in the background until the returned stop is
// called, and returns its announced public base URL and its log.
func startServe(t *testing.T, cfg string) (base string, log *syncBuffer, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	stdoutR, stdoutW := io.Pipe()
	log = &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"xaa", "serve", "--config", cfg}, func(string) string { return "" }, strings.NewReader(""), stdoutW, log)
		stdoutW.Close()
	}()
	sc := bufio.NewScanner(stdoutR)
	for base == "" && sc.Scan() {
		base, _ = strings.CutPrefix(sc.Text(), "serving on ")
	}
	go func() { _, _ = io.Copy(io.Discard, stdoutR) }()
	if base == "" {
		cancel()
		t.Fatalf("serve did not announce its address; log:\n%s\nerr: %v", log.String(), <-done)
	}
	stopped := false
	stop = func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
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
	t.Cleanup(stop)
	return base, log, stop
}

// TestServeSeedFile: serve applies seed_file before it listens, with the
// code `xaa seed` uses, so the running IdP knows the seeded app and the
// directory holds the seeded organisation; a restart re-applies the file
// and changes nothing.
func TestServeSeedFile(t *testing.T) {
	t.Parallel()
	cfg := deployment(t, "127.0.0.1:0")
	if _, _, err := runXAA(t, nil, "migrate", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	withSeedFile(t, cfg, exampleSeed)

	base, log, stop := startServe(t, cfg)
	waitHealthy(t, base+"/healthz")
	// The seeded app is a client of the running IdP: its registered
	// redirect URI starts a login (a redirect to the IdP's login page,
	// which then shows the form), where an unknown client gets the local
	// error page.
	verifier := strings.Repeat("v", 43)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"client_id": {"assistant"}, "redirect_uri": {"http://127.0.0.1:8976/callback"}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"s"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	fetch := func(u string) (int, string, string) {
		t.Helper()
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Location"), string(body)
	}
	if code, loc, _ := fetch(base + "/idp/authorize?" + q.Encode()); code != http.StatusSeeOther || loc != "http://127.0.0.1/idp/login" {
		t.Fatalf("authorize as the seeded app = %d to %q; want 303 to the IdP's login page", code, loc)
	}
	if code, _, body := fetch(base + "/idp/login"); code != http.StatusOK || !strings.Contains(body, "csrf_token") {
		t.Errorf("login page for the seeded app = %d; want the form", code)
	}
	q.Set("client_id", "not-seeded")
	if code, loc, _ := fetch(base + "/idp/authorize?" + q.Encode()); code != http.StatusBadRequest || loc != "" {
		t.Errorf("authorize as an unknown app = %d to %q; want the local 400 page", code, loc)
	}
	stop()
	first := seedLogLine(t, log.String())
	for _, w := range []string{`"changed":true`, `"groups":"2 created, 0 updated, 0 unchanged"`, `"users":"3 created, 0 updated, 0 unchanged"`,
		`"connections":"1 created, 0 updated, 0 unchanged"`, "seed.yaml"} {
		if !strings.Contains(first, w) {
			t.Errorf("first start's seed log line lacks %s:\n%s", w, first)
		}
	}
	for _, secret := range []string{"alice-demo-password", "GJTWN6SFJYRGZO7QVF56FIIUCPFO536Z", "9K9FGn-jeofmKmG76ewspzls2novqfNOOBXjdzWRIqk"} {
		if strings.Contains(log.String(), secret) {
			t.Errorf("serve's log holds a seed secret")
		}
	}

	// The directory holds the organisation, connection rules and all.
	out, _, err := runXAA(t, nil, "policy", "explain", "--config", cfg, "--app", "assistant",
		"--resource", "http://127.0.0.1:8443/mcp/files", "--user", "alice", "--scope", "files:read")
	if err != nil || !strings.Contains(out, "ALLOW") {
		t.Errorf("policy explain after serve seeded = %v:\n%s", err, out)
	}

	// A restart re-applies the same file: safe, and nothing changes.
	_, log, stop = startServe(t, cfg)
	stop()
	again := seedLogLine(t, log.String())
	if !strings.Contains(again, `"changed":false`) || strings.Count(again, "0 created, 0 updated") != 6 {
		t.Errorf("restart's seed log line says something changed:\n%s", again)
	}
}

// seedLogLine returns serve's one "seed applied" log line.
func seedLogLine(t *testing.T, log string) string {
	t.Helper()
	var lines []string
	for l := range strings.Lines(log) {
		if strings.Contains(l, `"msg":"seed applied"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("serve logged %d seed summaries, want 1:\n%s", len(lines), log)
	}
	return lines[0]
}

// TestServeSeedFileErrors: a seed that cannot be applied stops serve
// before it listens, with the file:line of the problem; nothing of the
// file is written.
func TestServeSeedFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("groups:\n  - name: staff\nusers:\n  - username: dave\n    groups: [staff]\n    pasword: dave-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		seed string
		want []string
	}{
		{"broken", broken, []string{"seed_file:", "broken.yaml:6:", "users[0].pasword", `did you mean "password"`}},
		{"missing", filepath.Join(dir, "absent.yaml"), []string{"seed_file:", "absent.yaml", "no such file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := deployment(t, "127.0.0.1:0")
			if _, _, err := runXAA(t, nil, "migrate", "--config", cfg); err != nil {
				t.Fatal(err)
			}
			withSeedFile(t, cfg, tc.seed)
			out, _, err := runXAA(t, nil, "serve", "--config", cfg)
			if err == nil {
				t.Fatal("serve started with a bad seed_file")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(out, "serving on") {
				t.Errorf("serve listened before it failed on the seed:\n%s", out)
			}
			if out, _, err := runXAA(t, nil, "policy", "explain", "--config", cfg, "--app", "assistant",
				"--resource", "http://127.0.0.1:8443/mcp/files", "--user", "dave"); err == nil {
				t.Errorf("the failed seed left a directory behind:\n%s", out)
			}
		})
	}
}
