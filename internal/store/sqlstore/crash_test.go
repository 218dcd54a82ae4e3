package sqlstore_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
)

// crashChildEnv names the database the crash child writes to.
const crashChildEnv = "XAA_SQLSTORE_CRASH_CHILD_DB"

// TestCrashDurability kills a writer process with SIGKILL in the middle of
// its writes and checks that every transaction it acknowledged survived and
// that the file is intact. It covers process crashes; power loss also relies
// on synchronous=FULL making SQLite fsync, which a test cannot pull the plug on.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "crash.db")
	reopen := func() *sqlstore.DB { return open(t, sqliteURL(path)) }
	_ = reopen().Close() // create and migrate before the child starts

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	acked := make(chan string, 1<<16)
	scanDone := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if jti, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
				acked <- jti
			}
		}
		close(acked)
		scanDone <- sc.Err()
	}()

	// Let the child commit for a while, then kill it wherever it is.
	var jtis []string
	deadline := time.After(1500 * time.Millisecond)
collect:
	for {
		select {
		case jti, ok := <-acked:
			if !ok {
				t.Fatal("child exited before it was killed")
			}
			jtis = append(jtis, jti)
		case <-deadline:
			break collect
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill: %v", err)
	}
	for jti := range acked { // acks written before the kill
		jtis = append(jtis, jti)
	}
	if err := <-scanDone; err != nil {
		t.Fatalf("reading child output: %v", err)
	}
	var exitErr *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &exitErr) || exitErr.ExitCode() != -1 {
		t.Fatalf("child did not die from SIGKILL: %v", err)
	}
	if len(jtis) < 10 {
		t.Fatalf("child acknowledged only %d writes", len(jtis))
	}
	t.Logf("child acknowledged %d transactions before SIGKILL", len(jtis))

	db := reopen()
	var integrity string
	if err := sqlstore.QueryRowForTest(t.Context(), db, "PRAGMA integrity_check", &integrity); err != nil || integrity != "ok" {
		t.Fatalf("integrity_check = %q, %v", integrity, err)
	}
	for _, jti := range jtis {
		if _, err := db.GetToken(t.Context(), "crash-iss", jti); err != nil {
			t.Fatalf("acknowledged token %s lost: %v", jti, err)
		}
		err := db.RecordOnce(t.Context(), store.ReplayEntry{Namespace: store.NamespaceIDJAG, Issuer: "crash-iss", JTI: jti, ExpiresAt: time.Now().Add(time.Hour)})
		if !errors.Is(err, store.ErrReplay) {
			t.Fatalf("acknowledged replay row %s lost: RecordOnce = %v", jti, err)
		}
	}
	n, err := db.VerifyAuditChain(t.Context())
	if err != nil {
		t.Fatalf("VerifyAuditChain: %v", err)
	}
	if n < int64(len(jtis)) {
		t.Fatalf("audit chain has %d events, want at least the %d acknowledged", n, len(jtis))
	}
}

// TestCrashChild is the writer TestCrashDurability runs in a child process.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("run by TestCrashDurability only")
	}
	db, err := sqlstore.Open(t.Context(), sqliteURL(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	stop := time.Now().Add(30 * time.Second) // in case the parent dies
	for i := 0; time.Now().Before(stop); i++ {
		jti := fmt.Sprintf("jti-%d", i)
		now := time.Now()
		err := db.InTx(ctx, func(tx store.Tx) error {
			if err := tx.RecordToken(ctx, store.IssuedToken{JTI: jti, Issuer: "crash-iss", Kind: store.TokenKindAccessToken,
				IssuedAt: now, ExpiresAt: now.Add(time.Minute)}); err != nil {
				return err
			}
			if err := tx.RecordOnce(ctx, store.ReplayEntry{Namespace: store.NamespaceIDJAG, Issuer: "crash-iss", JTI: jti,
				ExpiresAt: now.Add(time.Hour)}); err != nil {
				return err
			}
			return tx.AppendAudit(ctx, &store.AuditEvent{Type: "token.issued", Subject: jti, Outcome: "allow"})
		})
		if err != nil {
			t.Fatal(err)
		}
		// Unbuffered: the line leaves the process only after the commit.
		if _, err := fmt.Fprintf(os.Stdout, "ack %s\n", jti); err != nil {
			t.Fatal(err)
		}
	}
}
