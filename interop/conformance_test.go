// Package interop runs suites nobody on the team wrote against a real,
// freshly built xaa. The npm tools they need are pinned in package.json and
// package-lock.json next to this file.
package interop

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// required reports whether a missing tool must fail the run rather than skip
// it: CI sets XAA_CI=1 (CI=true also counts, as for the PostgreSQL tests).
func required() bool {
	return os.Getenv("XAA_CI") == "1" || os.Getenv("CI") == "true"
}

// TestMCPConformanceAuthorizationServerMetadata runs the MCP conformance
// suite's authorization-server-metadata-endpoint scenario against the IdP
// (run-conformance.sh does the work). It runs under XAA_CI=1, or locally
// once interop/node_modules exists; otherwise it skips.
func TestMCPConformanceAuthorizationServerMetadata(t *testing.T) {
	_, statErr := os.Stat("node_modules")
	haveModules := statErr == nil
	switch {
	case required():
		if _, err := exec.LookPath("bash"); err != nil {
			t.Fatal("bash is required to run interop/run-conformance.sh (XAA_CI=1)")
		}
		if _, err := exec.LookPath("npm"); err != nil && !haveModules {
			t.Fatal("npm is required to install interop/node_modules (XAA_CI=1); install Node.js/npm or run `npm ci` in interop/")
		}
	case !haveModules:
		t.Skip("interop/node_modules is missing: run `npm ci` in interop/ (or set XAA_CI=1) to run the MCP conformance suite against the IdP")
	case testing.Short():
		t.Skip("-short: skipping the MCP conformance suite (builds xaa and starts a server)")
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "run-conformance.sh")
	cmd.Env = append(os.Environ(), "XAA_CONFORMANCE_RESULTS="+t.TempDir())
	// SIGTERM, not SIGKILL, so the script's trap stops the server it started.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("run-conformance.sh output:\n%s", out)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("run-conformance.sh timed out: %v", err)
		}
		t.Fatalf("run-conformance.sh: %v", err)
	}
}
