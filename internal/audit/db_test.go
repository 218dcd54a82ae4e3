package audit_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/audit"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
)

func openDB(t *testing.T) *sqlstore.DB {
	t.Helper()
	u := (&url.URL{Scheme: "sqlite", Path: filepath.Join(t.TempDir(), "xaa.db")}).String()
	db, err := sqlstore.Open(t.Context(), u, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return db
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func appendEvent(t *testing.T, db *sqlstore.DB, ev store.AuditEvent) store.AuditEvent {
	t.Helper()
	if err := db.AppendAudit(t.Context(), &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func readCheckpointDir(t *testing.T, dir string, key ed25519.PrivateKey) []audit.Checkpoint {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, audit.CheckpointFilePattern))
	var all []audit.Checkpoint
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		cps, err := audit.ReadCheckpoints(r, f, []ed25519.PublicKey{key.Public().(ed25519.PublicKey)})
		_ = r.Close()
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, cps...)
	}
	return all
}

func TestCheckpointerWritesChangedHeads(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	key := newKey(t)
	dir := t.TempDir()
	sink, err := audit.NewFileSink(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 4, 23, 59, 59, 0, time.UTC)
	cp, err := audit.NewCheckpointer(db, key, []audit.Sink{sink}, &audit.CheckpointerOptions{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := cp.Checkpoint(t.Context()); err != nil || n != 0 {
		t.Fatalf("empty database: %d, %v", n, err)
	}
	idp1 := appendEvent(t, db, store.AuditEvent{Type: "idjag.issued"})
	gw1 := appendEvent(t, db, store.AuditEvent{Type: "gateway.tool_call"})
	if n, err := cp.Checkpoint(t.Context()); err != nil || n != 2 {
		t.Fatalf("first round: %d, %v; want 2", n, err)
	}
	if n, err := cp.Checkpoint(t.Context()); err != nil || n != 0 {
		t.Fatalf("nothing changed: %d, %v; want 0", n, err)
	}
	now = now.Add(time.Second) // the next UTC day: a new file
	idp2 := appendEvent(t, db, store.AuditEvent{Type: "idjag.issued"})
	if n, err := cp.Checkpoint(t.Context()); err != nil || n != 1 {
		t.Fatalf("one stream changed: %d, %v; want 1", n, err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, audit.CheckpointFilePattern))
	if len(files) != 2 || filepath.Base(files[0]) != "checkpoints-2026-05-04.jsonl" || filepath.Base(files[1]) != "checkpoints-2026-05-05.jsonl" {
		t.Errorf("checkpoint files = %v", files)
	}
	got := readCheckpointDir(t, dir, key)
	type head struct {
		Stream string
		Seq    int64
		Hash   string
	}
	var heads []head
	for _, c := range got {
		heads = append(heads, head{c.Stream, c.Seq, c.Hash})
	}
	want := []head{{"gateway", 1, gw1.Hash}, {"idp", 1, idp1.Hash}, {"idp", 2, idp2.Hash}}
	if diff := cmp.Diff(want, heads); diff != "" {
		t.Errorf("checkpoints (-want +got):\n%s", diff)
	}
	rep, err := db.VerifyAudit(t.Context(), &audit.VerifyOptions{Checkpoints: got})
	if err != nil || rep.Err() != nil {
		t.Errorf("VerifyAudit against the checkpoints: %v, %v", err, rep.Err())
	}
}

// A sink that fails gets the same heads again next round; the other sink
// is not held back.
func TestCheckpointerRetriesFailedSink(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	key := newKey(t)
	okDir, badDir := t.TempDir(), filepath.Join(t.TempDir(), "later")
	if err := os.Mkdir(badDir, 0o755); err != nil {
		t.Fatal(err)
	}
	okSink, _ := audit.NewFileSink(okDir)
	badSink, err := audit.NewFileSink(badDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(badDir); err != nil { // writes there now fail
		t.Fatal(err)
	}
	cp, err := audit.NewCheckpointer(db, key, []audit.Sink{okSink, badSink}, nil)
	if err != nil {
		t.Fatal(err)
	}
	appendEvent(t, db, store.AuditEvent{Type: "idjag.issued"})
	if n, err := cp.Checkpoint(t.Context()); err == nil || n != 1 {
		t.Fatalf("round with a failing sink: %d, %v; want 1 written and an error", n, err)
	}
	if err := os.Mkdir(badDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if n, err := cp.Checkpoint(t.Context()); err != nil || n != 1 {
		t.Fatalf("retry: %d, %v; want the failed sink's 1", n, err)
	}
	if got := readCheckpointDir(t, badDir, key); len(got) != 1 || got[0].Seq != 1 {
		t.Errorf("retried sink holds %+v", got)
	}
	if got := readCheckpointDir(t, okDir, key); len(got) != 1 {
		t.Errorf("healthy sink holds %d checkpoints, want 1 (no duplicate)", len(got))
	}
}

// Run writes a final checkpoint at shutdown, after its context ends.
func TestCheckpointerRunFinalCheckpoint(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	key := newKey(t)
	dir := t.TempDir()
	sink, _ := audit.NewFileSink(dir)
	cp, err := audit.NewCheckpointer(db, key, []audit.Sink{sink}, &audit.CheckpointerOptions{Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ev := appendEvent(t, db, store.AuditEvent{Type: "gateway.tool_call"})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	cp.Run(ctx) // returns after the shutdown round
	got := readCheckpointDir(t, dir, key)
	if len(got) != 1 || got[0].Hash != ev.Hash {
		t.Errorf("after shutdown: %+v, want the gateway head", got)
	}
}

// headsFunc adapts a function to audit.HeadReader, for the ticker test,
// whose clock is synctest's: the database-backed reader is tested above.
type headsFunc func(context.Context) ([]store.AuditHead, error)

func (f headsFunc) AuditHeads(ctx context.Context) ([]store.AuditHead, error) { return f(ctx) }

func TestCheckpointerRunInterval(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		key := newKey(t)
		dir := t.TempDir()
		sink, _ := audit.NewFileSink(dir)
		var seq atomic.Int64
		seq.Store(1)
		heads := headsFunc(func(context.Context) ([]store.AuditHead, error) {
			return []store.AuditHead{{Stream: "idp", Seq: seq.Load(), Hash: audit.GenesisHash}}, nil
		})
		cp, err := audit.NewCheckpointer(heads, key, []audit.Sink{sink}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); cp.Run(ctx) }()
		synctest.Wait()
		if n := len(readCheckpointDir(t, dir, key)); n != 1 {
			t.Fatalf("at start: %d checkpoints, want 1", n)
		}
		seq.Store(2)
		time.Sleep(audit.DefaultCheckpointInterval - time.Millisecond)
		synctest.Wait()
		if n := len(readCheckpointDir(t, dir, key)); n != 1 {
			t.Fatalf("before the interval: %d checkpoints, want 1", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if n := len(readCheckpointDir(t, dir, key)); n != 2 {
			t.Fatalf("after the interval: %d checkpoints, want 2", n)
		}
		seq.Store(3)
		cancel()
		<-done
		if cps := readCheckpointDir(t, dir, key); len(cps) != 3 || cps[2].Seq != 3 {
			t.Fatalf("after shutdown: %+v, want seq 3 last", cps)
		}
	})
}

func TestSyslogSink(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	sink, err := audit.NewSyslogSink("udp://" + pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	key := newKey(t)
	c := audit.SignCheckpoint(key, store.AuditHead{Stream: "gateway", Seq: 9, Hash: audit.GenesisHash}, time.Now())
	if err := sink.WriteCheckpoints(t.Context(), []audit.Checkpoint{c}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	_ = pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	msg := string(buf[:n])
	if !strings.HasPrefix(msg, "<38>") { // facility auth (4) * 8 + info (6)
		t.Errorf("syslog priority: %q", msg)
	}
	cps, err := audit.ReadSyslogCheckpoints(strings.NewReader(msg), "syslog", []ed25519.PublicKey{key.Public().(ed25519.PublicKey)})
	if err != nil || len(cps) != 1 || cps[0].Seq != 9 {
		t.Errorf("the message does not read back as the checkpoint: %q: %+v, %v", msg, cps, err)
	}
	for _, bad := range []string{"", "udp://", "http://h:1", "udp://h", "tcp://h:1/x", "udp://u@h:1", "udp://h:1?x=1"} {
		if _, err := audit.NewSyslogSink(bad); err == nil {
			t.Errorf("NewSyslogSink(%q) accepted", bad)
		}
	}
}

func TestNewCheckpointerRejects(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	sink, _ := audit.NewFileSink(t.TempDir())
	key := newKey(t)
	for name, f := range map[string]func() error{
		"no reader": func() error { _, err := audit.NewCheckpointer(nil, key, []audit.Sink{sink}, nil); return err },
		"short key": func() error { _, err := audit.NewCheckpointer(db, key[:10], []audit.Sink{sink}, nil); return err },
		"no sink":   func() error { _, err := audit.NewCheckpointer(db, key, nil, nil); return err },
		"negative": func() error {
			_, err := audit.NewCheckpointer(db, key, []audit.Sink{sink}, &audit.CheckpointerOptions{Interval: -1})
			return err
		},
		"missing dir sink": func() error { _, err := audit.NewFileSink(filepath.Join(t.TempDir(), "nope")); return err },
	} {
		if f() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
