package interop

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/directory"
)

// buildGo builds a main package of this module (or of a dependency in
// go.mod) into a temp dir and returns the binary.
func buildGo(t *testing.T, pkg, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), name)
	build := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	build.Dir = ".."
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// process is a child process the test started; stop ends it with SIGTERM
// (SIGKILL if it will not go) and is also registered as a cleanup.
type process struct {
	log  *syncBuffer // stderr (and stdout once the wait line was seen)
	stop func(t *testing.T)
	done chan struct{}
	err  error
}

// startProcess runs cmd and waits until a line of its stdout (or stderr,
// when fromStderr) satisfies ready, which returns the value to hand back.
func startProcess(t *testing.T, ctx context.Context, cmd *exec.Cmd, fromStderr bool, ready func(line string) (string, bool)) (*process, string) {
	t.Helper()
	p := &process{log: &syncBuffer{}, done: make(chan struct{})}
	var pipe io.ReadCloser
	var err error
	if fromStderr {
		cmd.Stdout = p.log
		pipe, err = cmd.StderrPipe()
	} else {
		cmd.Stderr = p.log
		pipe, err = cmd.StdoutPipe()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.log, line)
			if !sent {
				if v, ok := ready(line); ok {
					found <- v
					sent = true
				}
			}
		}
		_, _ = io.Copy(p.log, pipe)
		p.err = cmd.Wait()
		close(p.done)
	}()
	var once sync.Once
	p.stop = func(t *testing.T) {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-p.done
				t.Errorf("%s did not stop on SIGTERM", filepath.Base(cmd.Path))
			}
		})
	}
	t.Cleanup(func() { p.stop(t) })
	select {
	case v := <-found:
		return p, v
	case <-p.done:
		t.Fatalf("%s exited before it was ready: %v\n%s", filepath.Base(cmd.Path), p.err, p.log.String())
	case <-ctx.Done():
		t.Fatalf("%s was not ready: %v\n%s", filepath.Base(cmd.Path), ctx.Err(), p.log.String())
	}
	return nil, ""
}

// startServe runs `xaa --config cfg serve` and waits for /readyz on base:
// the gateway mounts its routes after the listener serves (/healthz is
// up before that).
func startServe(t *testing.T, ctx context.Context, xaa, cfg, base string) *process {
	t.Helper()
	p, _ := startProcess(t, ctx, exec.Command(xaa, "--config", cfg, "serve"), false, func(line string) (string, bool) {
		return "", strings.HasPrefix(line, "serving on ")
	})
	waitHealthy(t, ctx, base+"/readyz")
	return p
}

// acrMFA is the IdP's authentication class for a password plus TOTP.
const acrMFA = "urn:openxaa:acr:mfa"

// user is someone who signs in at an IdP's login form.
type user struct {
	name, password string
	totp           []byte // nil: no second factor
}

var (
	csrfInput  = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	formAction = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	formError  = regexp.MustCompile(`<p class="error" role="alert">([^<]+)</p>`)
)

// signIn is a person at the IdP's login page: it opens authURL, fills in
// the real form (password, then a TOTP code when asked) and returns where
// the IdP finally redirects, without following it off the IdP's origin.
func signIn(ctx context.Context, authURL string, u user) (*url.URL, error) {
	start, err := url.Parse(authURL)
	if err != nil {
		return nil, err
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host != start.Host {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	do := func(req *http.Request) (*http.Response, string, error) {
		resp, err := c.Do(req.WithContext(ctx))
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp, string(b), err
	}
	req, _ := http.NewRequest(http.MethodGet, authURL, nil)
	resp, body, err := do(req)
	if err != nil {
		return nil, err
	}
	// A TOTP code is good once: if this user's current one was already
	// used (another login in the same 30 s step), the next step's code,
	// which the IdP accepts for clock skew, is the one to type.
	otpStep, bumped := directory.TOTPStep(time.Now()), false
	for step := 0; step < 5; step++ {
		if resp.StatusCode == http.StatusSeeOther || resp.StatusCode == http.StatusFound {
			return resp.Location()
		}
		csrf, action := csrfInput.FindStringSubmatch(body), formAction.FindStringSubmatch(body)
		if m := formError.FindStringSubmatch(body); m != nil && (step > 0 || csrf == nil) {
			msg := html.UnescapeString(m[1])
			if !strings.Contains(msg, "already used") || bumped || csrf == nil {
				return nil, fmt.Errorf("the IdP said: %s", msg)
			}
			otpStep, bumped = otpStep+1, true
		}
		if resp.StatusCode != http.StatusOK || csrf == nil || action == nil {
			return nil, fmt.Errorf("the IdP answered %d without a login form: %.300s", resp.StatusCode, body)
		}
		form := url.Values{"csrf_token": {html.UnescapeString(csrf[1])}}
		if strings.Contains(body, `name="otp"`) {
			if u.totp == nil {
				return nil, errors.New("the IdP asks for a one-time code and this user has none")
			}
			form.Set("otp", directory.TOTPCode(u.totp, otpStep))
		} else {
			form.Set("username", u.name)
			form.Set("password", u.password)
		}
		target, err := resp.Request.URL.Parse(html.UnescapeString(action[1]))
		if err != nil {
			return nil, err
		}
		req, _ := http.NewRequest(http.MethodPost, target.String(), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if resp, body, err = do(req); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("the login did not finish in five steps")
}

// oidcLogin is an application's own SSO (the code flow with PKCE S256,
// state and nonce) through signIn: it returns the user's ID token. The
// TypeScript SDK and the go-sdk expect the application to have one. A user
// with a second factor is asked for an MFA login (acr_values).
func oidcLogin(t *testing.T, ctx context.Context, issuer, clientID, secret, redirectURI string, u user) string {
	t.Helper()
	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	state := rand.Text()
	q := url.Values{
		"client_id": {clientID}, "redirect_uri": {redirectURI}, "response_type": {"code"},
		"scope": {"openid"}, "state": {state}, "nonce": {rand.Text()},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	if u.totp != nil {
		q.Set("acr_values", acrMFA)
	}
	loc, err := signIn(ctx, issuer+"/authorize?"+q.Encode(), u)
	if err != nil {
		t.Fatalf("sign in %s: %v", u.name, err)
	}
	if !strings.HasPrefix(loc.String(), redirectURI+"?") || loc.Query().Get("state") != state || loc.Query().Get("code") == "" {
		t.Fatalf("the login ended at %s, not the redirect URI with our state and a code", loc.Redacted())
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {redirectURI}, "code_verifier": {verifier}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, issuer+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		IDToken string `json:"id_token"`
		Error   string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.IDToken == "" {
		t.Fatalf("code redemption = %d %q (%v)", resp.StatusCode, tok.Error, err)
	}
	return tok.IDToken
}

// conformance returns the pinned conformance CLI and the environment
// (Node 22 first on PATH) to run it with.
func conformance(t *testing.T, node string) (string, []string) {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join("node_modules", ".bin", "conformance"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the conformance suite is not installed: run `npm ci` in interop/: %v", err)
	}
	env := append(os.Environ(), "PATH="+filepath.Dir(node)+string(os.PathListSeparator)+os.Getenv("PATH"))
	return bin, env
}

// check is one entry of a conformance scenario's checks.json.
type check struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	ErrorMessage string `json:"errorMessage"`
	Description  string `json:"description"`
}

// scenarioResult is what one scenario of a run recorded.
type scenarioResult struct {
	Name             string
	Passed, Failed   int
	Warnings         int
	FailedChecks     []string // "id: message"
	PassedChecks     []string // ids
	ClientOut        string   // stdout.txt + stderr.txt (client scenarios)
	Dir              string
	ChecksRecordedOK bool
}

func (r scenarioResult) ok() bool { return r.ChecksRecordedOK && r.Failed == 0 && r.Passed > 0 }

// readResults reads every scenario directory the suite wrote under dir
// (named <prefix><scenario>-<timestamp>, possibly nested for auth/...).
func readResults(t *testing.T, dir, prefix string) map[string]scenarioResult {
	t.Helper()
	stamp := regexp.MustCompile(`-\d{4}-\d{2}-\d{2}T[\d-]+Z$`)
	out := map[string]scenarioResult{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "checks.json" {
			return err
		}
		sdir := filepath.Dir(path)
		rel, _ := filepath.Rel(dir, sdir)
		name := strings.TrimPrefix(stamp.ReplaceAllString(filepath.ToSlash(rel), ""), prefix)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var checks []check
		r := scenarioResult{Name: name, Dir: sdir}
		if json.Unmarshal(data, &checks) == nil {
			r.ChecksRecordedOK = true
		}
		for _, c := range checks {
			switch c.Status {
			case "SUCCESS":
				r.Passed++
				r.PassedChecks = append(r.PassedChecks, c.ID)
			case "FAILURE":
				r.Failed++
				msg := c.ErrorMessage
				if msg == "" {
					msg = c.Description
				}
				r.FailedChecks = append(r.FailedChecks, c.ID+": "+msg)
			case "WARNING":
				r.Warnings++
			}
		}
		for _, f := range []string{"stdout.txt", "stderr.txt"} {
			if b, err := os.ReadFile(filepath.Join(sdir, f)); err == nil {
				r.ClientOut += string(b)
			}
		}
		out[name] = r
		return nil
	})
	if err != nil {
		t.Fatalf("read conformance results in %s: %v", dir, err)
	}
	return out
}

// summary is a results table for the test log, one scenario a line.
func summary(results map[string]scenarioResult) string {
	names := make([]string, 0, len(results))
	for n := range results {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		r := results[n]
		mark := "PASS"
		if !r.ok() {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "  %s %-45s %d passed, %d failed", mark, n, r.Passed, r.Failed)
		if r.Warnings > 0 {
			fmt.Fprintf(&b, ", %d warnings", r.Warnings)
		}
		b.WriteString("\n")
		for _, f := range r.FailedChecks {
			fmt.Fprintf(&b, "       - %s\n", clipLine(f, 220))
		}
	}
	return b.String()
}

func clipLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
