package sqlstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/store"
)

// crashConcurrentChildEnv names the database the concurrent crash child
// writes to.
const crashConcurrentChildEnv = "XAA_SQLSTORE_CRASH_CONCURRENT_CHILD_DB"

const (
	crashWriters = 16
	crashIssuer  = "crash-concurrent-iss"
)

// TestCrashDurabilityConcurrent is TestCrashDurability with group commit
// under load: many writers keep batches of several callers in flight, so
// SIGKILL lands inside a shared transaction (between savepoints, or during
// its COMMIT) rather than between single-caller ones. Every acknowledged
// caller must survive whole, and no caller may survive in part: a batch
// commits all its released savepoints or none.
func TestCrashDurabilityConcurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "crash.db")
	_ = mustOpenMigrated(t, sqliteTestURL(path)).Close() // before the child starts

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashConcurrentChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashConcurrentChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	type stats struct{ commits, acked int64 }
	acked := make(chan string, 1<<16)
	var (
		statsMu sync.Mutex
		last    stats // the child's latest counters
	)
	scanDone := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if jti, ok := strings.CutPrefix(line, "ack "); ok {
				acked <- jti
				continue
			}
			var s stats
			if _, err := fmt.Sscanf(line, "stats commits=%d acked=%d", &s.commits, &s.acked); err == nil {
				statsMu.Lock()
				last = s
				statsMu.Unlock()
			}
		}
		close(acked)
		scanDone <- sc.Err()
	}()

	// Let the child commit for a while once it is up (a -race binary is
	// slow to start), then kill it wherever it is.
	var jtis []string
	var deadline <-chan time.Time
collect:
	for {
		select {
		case jti, ok := <-acked:
			if !ok {
				t.Fatal("child exited before it was killed")
			}
			jtis = append(jtis, jti)
			if deadline == nil {
				deadline = time.After(1500 * time.Millisecond)
			}
		case <-deadline:
			break collect
		case <-ctx.Done():
			t.Fatal("child acknowledged nothing before the timeout")
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
	if len(jtis) < 10*crashWriters {
		t.Fatalf("child acknowledged only %d writes", len(jtis))
	}

	statsMu.Lock()
	s := last
	statsMu.Unlock()
	if s.commits == 0 {
		t.Fatal("child reported no commit statistics")
	}
	// Callers per COMMIT. More than one on average shows the kill fell
	// among shared batches, which is what this test is for.
	ratio := float64(s.acked) / float64(s.commits)
	t.Logf("child acknowledged %d callers before SIGKILL; at its last report %d callers over %d commits (%.2f per commit)",
		len(jtis), s.acked, s.commits, ratio)
	if ratio <= 1 {
		t.Errorf("%.2f callers per commit: group commit did not batch", ratio)
	}

	db := mustOpen(t, sqliteTestURL(path))
	var integrity string
	if err := QueryRowForTest(t.Context(), db, "PRAGMA integrity_check", &integrity); err != nil || integrity != "ok" {
		t.Fatalf("integrity_check = %q, %v", integrity, err)
	}
	n, err := db.VerifyAuditChain(t.Context())
	if err != nil {
		t.Fatalf("VerifyAuditChain: %v", err)
	}

	tokens := crashRows(t, db, `SELECT jti FROM tokens WHERE issuer = ?`, crashIssuer)
	replays := crashRows(t, db, `SELECT jti FROM replay WHERE namespace = ? AND issuer = ?`, store.NamespaceIDJAG, crashIssuer)
	audits := crashRows(t, db, `SELECT subject FROM audit_events WHERE type = ?`, "token.issued")
	if n != int64(len(audits)) {
		t.Errorf("VerifyAuditChain checked %d events, the table holds %d of the child's", n, len(audits))
	}

	// Durability: every acknowledged caller's three rows are on disk.
	for _, jti := range jtis {
		for _, tbl := range []struct {
			name string
			rows map[string]int
		}{{"token", tokens}, {"replay", replays}, {"audit", audits}} {
			if tbl.rows[jti] != 1 {
				t.Errorf("acknowledged %s row %s: %d copies, want 1", tbl.name, jti, tbl.rows[jti])
			}
		}
	}
	// Atomicity: any caller whose work reached disk, acknowledged or
	// not, left all three rows, each once.
	if diff := cmp.Diff(tokens, replays); diff != "" {
		t.Errorf("token rows vs replay rows (-token +replay):\n%s", diff)
	}
	if diff := cmp.Diff(tokens, audits); diff != "" {
		t.Errorf("token rows vs audit rows (-token +audit):\n%s", diff)
	}
	t.Logf("%d callers committed, %d of them acknowledged; audit chain of %d events verified",
		len(tokens), len(jtis), n)
}

// crashRows returns how often each value of the query's single column occurs.
func crashRows(t *testing.T, db *DB, query string, args ...any) map[string]int {
	t.Helper()
	rows, err := db.read.QueryContext(t.Context(), query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := make(map[string]int)
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		got[v]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestCrashConcurrentChild is the writer pool TestCrashDurabilityConcurrent
// runs in a child process.
func TestCrashConcurrentChild(t *testing.T) {
	path := os.Getenv(crashConcurrentChildEnv)
	if path == "" {
		t.Skip("run by TestCrashDurabilityConcurrent only")
	}
	db, err := Open(t.Context(), sqliteTestURL(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	stop := time.Now().Add(30 * time.Second) // in case the parent dies

	// out serialises stdout so lines never interleave. os.Stdout is
	// unbuffered: each line leaves the process in one write, after its
	// caller's InTx returned nil and before that caller starts another.
	var (
		out   sync.Mutex
		acked int64
	)
	var wg sync.WaitGroup
	for w := range crashWriters {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				jti := fmt.Sprintf("w%02d-%d", w, i)
				now := time.Now()
				err := db.InTx(ctx, func(tx store.Tx) error {
					if err := tx.RecordToken(ctx, store.IssuedToken{JTI: jti, Issuer: crashIssuer, Kind: store.TokenKindAccessToken,
						IssuedAt: now, ExpiresAt: now.Add(time.Minute)}); err != nil {
						return err
					}
					if err := tx.RecordOnce(ctx, store.ReplayEntry{Namespace: store.NamespaceIDJAG, Issuer: crashIssuer, JTI: jti,
						ExpiresAt: now.Add(time.Hour)}); err != nil {
						return err
					}
					return tx.AppendAudit(ctx, &store.AuditEvent{Type: "token.issued", Subject: jti, Outcome: "allow"})
				})
				if err != nil {
					t.Error(err)
					return
				}
				out.Lock()
				acked++
				_, err = fmt.Fprintf(os.Stdout, "ack %s\n", jti)
				out.Unlock()
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for time.Now().Before(stop) {
			<-tick.C
			out.Lock()
			// Read after acked, commits covers at least those callers,
			// so acked/commits slightly understates the batch size.
			_, err := fmt.Fprintf(os.Stdout, "stats commits=%d acked=%d\n", db.gc.commits.Load(), acked)
			out.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
}
