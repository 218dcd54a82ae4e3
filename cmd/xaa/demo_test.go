package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openxaa/xaa/internal/testenv"
)

// TestMain lets the test binary stand in for the xaa binary when the demo's
// gateway launches its stdio server (os.Executable() is the test binary).
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "demo" && os.Args[2] == "mcp-server" {
		if err := run(context.Background(), append([]string{"xaa"}, os.Args[1:]...), os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestDemoCheck runs `xaa demo --check` twice on one state directory: the
// whole scenario (allowed, narrowed, denied, step-up rule, revoked) passes
// on a fresh directory and again on a restart, whose secrets, keys and
// database persist.
func TestDemoCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the demo starts every role")
	}
	dir := filepath.Join(t.TempDir(), "state")
	for i := range 2 {
		port := testenv.FreeLoopbackPort(t)
		out, errOut, err := runXAA(t, nil, "demo", "--check", "--state-dir", dir, "--port", fmt.Sprint(port))
		if err != nil {
			t.Fatalf("run %d: xaa demo --check: %v\nstdout:\n%s\nstderr:\n%s", i+1, err, out, errOut)
		}
		if !strings.Contains(out, "all demo steps behaved as expected") || strings.Contains(out, "FAIL") {
			t.Fatalf("run %d: output:\n%s", i+1, out)
		}
	}
	for _, f := range []string{"secrets.json", "wrapping.key", "config.yaml", "seed.yaml", "client.yaml"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
}

func TestDemoRefusesBusyPort(t *testing.T) {
	t.Parallel()
	port := testenv.FreeLoopbackPort(t)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, _, err = runXAA(t, nil, "demo", "--check", "--state-dir", t.TempDir(), "--port", fmt.Sprint(port))
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("err = %v, want a port-in-use error", err)
	}
}
