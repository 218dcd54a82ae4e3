// Package depcheck holds the test that enforces the module's dependency
// rules (docs/decisions.md): public packages stay light, the two token
// servers stay independent, and only the binary picks concrete drivers.
package depcheck

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/openxaa/xaa"

// listDeps returns, for every package of the module, its non-test
// transitive dependencies.
func listDeps(t *testing.T) map[string][]string {
	t.Helper()
	touchSources(t)
	cmd := exec.Command("go", "list", "-deps=false", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	deps := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		deps[f[0]] = f[1:]
	}
	if len(deps) == 0 {
		t.Fatal("go list returned no packages")
	}
	return deps
}

// touchSources opens every Go file and go.mod of the module. go test caches
// a result by the files the test itself opened; the imports we check are
// read by a child `go list`, so without this a cached pass would survive an
// edit that breaks a rule.
func touchSources(t *testing.T) {
	t.Helper()
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && ((strings.HasPrefix(d.Name(), ".") && path != "../..") || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !(strings.HasSuffix(path, ".go") || d.Name() == "go.mod") {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		return f.Close()
	})
	if err != nil {
		t.Fatalf("walk module: %v", err)
	}
}

func isStdlib(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

func hasPrefix(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// TestPublicPackagesStayLight keeps database drivers, cobra, config and the
// store out of the importable packages: a third party embedding mcpauth in
// an MCP server must not inherit them.
func TestPublicPackagesStayLight(t *testing.T) {
	t.Parallel()
	deps := listDeps(t)
	allowed := []string{
		module + "/idjag",
		module + "/mcpauth",
		module + "/xaaclient",
		module + "/internal/jose",
		module + "/internal/jwkscache", // mcpauth's remote JWKS with SSRF guards
		"golang.org/x/sync",            // via internal/jwkscache (singleflight)
		"github.com/go-jose/go-jose/v4",
		"github.com/modelcontextprotocol/go-sdk",
		"golang.org/x/oauth2",
		"github.com/golang-jwt/jwt/v5",       // go-sdk's own dependency
		"github.com/google/jsonschema-go",    // go-sdk's own dependency
		"github.com/segmentio/encoding",      // go-sdk's own dependency
		"github.com/segmentio/asm",           // go-sdk's own dependency
		"github.com/yosida95/uritemplate/v3", // go-sdk's own dependency
		"golang.org/x/time",                  // go-sdk's own dependency
		"golang.org/x/sys",                   // transitive via segmentio/asm
	}
	for _, pub := range []string{"idjag", "mcpauth", "xaaclient"} {
		pkg := module + "/" + pub
		d, ok := deps[pkg]
		if !ok {
			t.Errorf("public package %s is missing", pkg)
			continue
		}
		for _, dep := range d {
			if isStdlib(dep) || hasPrefix(dep, allowed) {
				continue
			}
			t.Errorf("public package %s depends on %s, which is not on the allowlist", pub, dep)
		}
	}
}

// TestOnlyTheBinaryPicksDrivers keeps concrete storage, drivers, config and
// the CLI framework inside cmd/xaa (and test support), so every other
// package is written against interfaces.
func TestOnlyTheBinaryPicksDrivers(t *testing.T) {
	t.Parallel()
	deps := listDeps(t)
	forbidden := []string{
		module + "/internal/store/sqlstore",
		module + "/internal/config",
		"github.com/spf13/cobra",
		"modernc.org/sqlite",
		"github.com/jackc/pgx/v5",
	}
	exempt := []string{
		module + "/cmd/xaa",
		module + "/internal/testenv",
		module + "/internal/store/sqlstore",
		module + "/internal/store/storetest",
		module + "/internal/config",
	}
	for pkg, d := range deps {
		if hasPrefix(pkg, exempt) {
			continue
		}
		for _, dep := range d {
			if hasPrefix(dep, forbidden) {
				t.Errorf("%s depends on %s; only cmd/xaa and test support may", pkg, dep)
			}
		}
	}
}

// TestServersStayIndependent keeps the IdP and the resource authorization
// server from importing each other: they are different trust domains and
// share only oauth, jose and store.
func TestServersStayIndependent(t *testing.T) {
	t.Parallel()
	deps := listDeps(t)
	idp, as := module+"/internal/idp", module+"/internal/authserver"
	for pkg, d := range deps {
		switch {
		case hasPrefix(pkg, []string{idp}) && slices.ContainsFunc(d, func(s string) bool { return hasPrefix(s, []string{as}) }):
			t.Errorf("%s (IdP) imports the authorization server", pkg)
		case hasPrefix(pkg, []string{as}) && slices.ContainsFunc(d, func(s string) bool { return hasPrefix(s, []string{idp}) }):
			t.Errorf("%s (authorization server) imports the IdP", pkg)
		}
	}
}

// TestPolicyKnowsNoHTTP keeps the policy engine pure domain logic.
func TestPolicyKnowsNoHTTP(t *testing.T) {
	t.Parallel()
	deps := listDeps(t)
	for pkg, d := range deps {
		if !hasPrefix(pkg, []string{module + "/internal/policy"}) {
			continue
		}
		if slices.Contains(d, "net/http") {
			t.Errorf("%s imports net/http; policy must not know HTTP", pkg)
		}
	}
}
