package main

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/openxaa/xaa/internal/audit"
	"github.com/openxaa/xaa/internal/config"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
)

func newAuditCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Query, follow, trace, export and verify the tamper-evident audit trail",
		Long: `Every record (IdP decisions, grants, redemptions, gateway tool calls,
admin actions) lives in an append-only table, hash-chained per stream (idp,
authserver, gateway, directory, admin, system; legacy for records written
before schema 0007). With audit.checkpoint_key_file set, servers sign each
stream's head every audit.checkpoint_interval and at shutdown, and write the
checkpoints outside the database (audit.checkpoint_dir, syslog). Tokens
appear in records only as keyed hashes. The export format and the hash
recipe are documented in docs/audit-schema.md.`,
	}
	cmd.AddCommand(newAuditKeygenCommand(e), newAuditVerifyCommand(e), newAuditExportCommand(e),
		newAuditQueryCommand(e), newAuditTailCommand(e), newAuditTraceCommand(e))
	return cmd
}

func newAuditKeygenCommand(e *env) *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Generate the Ed25519 key pair that signs audit checkpoints",
		Long: `keygen writes a new Ed25519 private key (PKCS #8 PEM) to FILE with mode
0600 and its public key to FILE.pub; neither may exist. Point
audit.checkpoint_key_file at FILE and keep FILE.pub wherever audits are
verified (xaa audit verify --pubkey FILE.pub). Keep FILE out of the
database and its backups: whoever holds it can sign checkpoints.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out FILE is required")
			}
			priv, pub, err := audit.GenerateCheckpointKey()
			if err != nil {
				return err
			}
			defer clear(priv)
			if err := writeNewFile(out, priv, 0o600); err != nil {
				return err
			}
			if err := writeNewFile(out+".pub", pub, 0o644); err != nil {
				return err
			}
			pk, err := audit.ParsePublicKeyPEM(pub)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(e.stdout, "wrote the checkpoint signing key to %s (mode 0600) and its public key to %s.pub (key id %s)\n",
				out, out, audit.KeyID(pk))
			return err
		},
	}
	c.Flags().StringVar(&out, "out", "", "file to create for the private key; the public key goes to FILE.pub")
	return c
}

// writeNewFile creates path (which must not exist) with data, durably.
func writeNewFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; refusing to overwrite a key", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func newAuditVerifyCommand(e *env) *cobra.Command {
	var checkpoints, syslogFiles, pubkeys, streams []string
	var export string
	var partial bool
	c := &cobra.Command{
		Use:   "verify [--checkpoints FILE|DIR]... [--pubkey FILE]... [--export FILE [--partial]]",
		Short: "Recompute every stream's hash chain and hold it to the signed checkpoints",
		Long: `verify recomputes each stream's chain in the configured database (or, with
--export, in an export file, without a database or config) and reports, per
stream, the first bad record (stream, seq, id): a changed, removed,
duplicated or reordered record, a head row that disagrees, and, against the
signed checkpoints, a chain rewritten from some record on or a truncated
tail. It exits non-zero if any stream is broken.

Checkpoints come from --checkpoints (a file, or a directory's
checkpoints-*.jsonl) and --syslog-checkpoints (a syslog file); in database
mode without either, from audit.checkpoint_dir. Their signatures are
checked against --pubkey (repeatable, for rotated keys), by default the
public half of audit.checkpoint_key_file. Every checkpoint line must verify.

--partial accepts streams that start after seq 1, as an export made with
--since does. --stream limits the check to the named streams (give the
same as to xaa audit export --stream).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var cfg *config.Config
			if export == "" || (len(pubkeys) == 0 && len(checkpoints)+len(syslogFiles) > 0) {
				var err error
				if cfg, err = loadConfig(cmd, e); err != nil {
					return err
				}
			}
			if export == "" && partial {
				return errors.New("--partial applies to --export files; a database's streams always start at seq 1")
			}
			var cps []audit.Checkpoint
			var err error
			if export == "" && len(checkpoints)+len(syslogFiles) == 0 && cfg.Audit.CheckpointDir != "" {
				// The configured directory may hold nothing yet (no server
				// has run); printReport then warns that none were used.
				cps, err = loadCheckpoints(cfg, []string{cfg.Audit.CheckpointDir}, nil, pubkeys)
				if errors.Is(err, errNoCheckpoints) {
					err = nil
				}
			} else {
				cps, err = loadCheckpoints(cfg, checkpoints, syslogFiles, pubkeys)
			}
			if err != nil {
				return err
			}
			opts := &audit.VerifyOptions{Checkpoints: cps, Partial: partial, Streams: streams}
			var rep *audit.Report
			if export != "" {
				f, err := os.Open(export)
				if err != nil {
					return err
				}
				defer f.Close()
				rep, err = audit.VerifyExport(f, export, opts)
				if err != nil {
					return err
				}
			} else {
				db, err := openMigratedStore(ctx, cfg, e)
				if err != nil {
					return err
				}
				defer db.Close()
				if rep, err = db.VerifyAudit(ctx, opts); err != nil {
					return err
				}
			}
			return printReport(e, rep, len(cps))
		},
	}
	c.Flags().StringArrayVar(&checkpoints, "checkpoints", nil, "checkpoint file, or directory of checkpoints-*.jsonl (repeatable)")
	c.Flags().StringArrayVar(&syslogFiles, "syslog-checkpoints", nil, "syslog file holding xaa-audit checkpoint messages (repeatable)")
	c.Flags().StringArrayVar(&pubkeys, "pubkey", nil, "checkpoint public key file from xaa audit keygen (repeatable)")
	c.Flags().StringVar(&export, "export", "", "verify this export file (JSON lines) instead of the database")
	c.Flags().BoolVar(&partial, "partial", false, "with --export: streams may start after seq 1 (an export made with --since)")
	c.Flags().StringArrayVar(&streams, "stream", nil, "verify only this stream (repeatable)")
	return c
}

// errNoCheckpoints means checkpoint files were named but held none.
var errNoCheckpoints = errors.New("no checkpoints found")

// loadCheckpoints reads and signature-checks the checkpoint files.
func loadCheckpoints(cfg *config.Config, paths, syslogFiles, pubkeyFiles []string) ([]audit.Checkpoint, error) {
	if len(paths)+len(syslogFiles) == 0 {
		return nil, nil
	}
	var keys []ed25519.PublicKey
	for _, p := range pubkeyFiles {
		k, err := audit.LoadPublicKey(p)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		if cfg == nil || cfg.Audit.CheckpointKeyFile == "" {
			return nil, errors.New("checkpoints need a public key to check them against: give --pubkey FILE (from xaa audit keygen) or set audit.checkpoint_key_file")
		}
		priv, err := audit.LoadPrivateKey(cfg.Audit.CheckpointKeyFile)
		if err != nil {
			return nil, err
		}
		keys = append(keys, priv.Public().(ed25519.PublicKey))
		clear(priv)
	}
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		matches, err := filepath.Glob(filepath.Join(p, audit.CheckpointFilePattern))
		if err != nil {
			return nil, err
		}
		files = append(files, matches...)
	}
	var all []audit.Checkpoint
	read := func(name string, fn func(io.Reader, string, []ed25519.PublicKey) ([]audit.Checkpoint, error)) error {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		cps, err := fn(f, name, keys)
		all = append(all, cps...)
		return err
	}
	for _, f := range files {
		if err := read(f, audit.ReadCheckpoints); err != nil {
			return nil, err
		}
	}
	for _, f := range syslogFiles {
		if err := read(f, audit.ReadSyslogCheckpoints); err != nil {
			return nil, err
		}
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%w in %s", errNoCheckpoints, strings.Join(append(paths, syslogFiles...), ", "))
	}
	return all, nil
}

// errAuditBroken is verify's failure: the report above it names the bad
// records.
var errAuditBroken = errors.New("audit verification failed: the first bad record of each broken stream is named above")

func printReport(e *env, rep *audit.Report, checkpoints int) error {
	broken := 0
	for _, s := range rep.Streams {
		if s.Err != nil {
			broken++
			fmt.Fprintf(e.stdout, "stream %s: BROKEN at seq %d (%s): %s\n", s.Stream, s.Err.Seq, recordID(s.Err.ID), printable(s.Err.Reason))
			continue
		}
		line := fmt.Sprintf("stream %s: ok, %d records", s.Stream, s.Records)
		if s.Records > 0 {
			line += fmt.Sprintf(" (seq %d to %d), head %s", s.First, s.Last, s.Head)
		}
		if s.First > 1 {
			line += fmt.Sprintf(" (partial: records before seq %d are not in the file)", s.First)
		}
		if s.Checkpoint != nil {
			line += fmt.Sprintf(", last checkpoint seq %d signed %s", s.Checkpoint.Seq, stamp(s.Checkpoint.Time))
		}
		fmt.Fprintln(e.stdout, line)
	}
	fmt.Fprintf(e.stdout, "checked %d streams, %d records, against %d checkpoints: ", len(rep.Streams), rep.Records(), checkpoints)
	if broken > 0 {
		fmt.Fprintf(e.stdout, "%d broken\n", broken)
		return errAuditBroken
	}
	fmt.Fprintln(e.stdout, "all verified")
	if checkpoints == 0 {
		fmt.Fprintln(e.stderr, "warning: no checkpoints were given, so a truncated tail or a chain rewritten from some record on would go unnoticed; give --checkpoints")
	}
	return nil
}

func recordID(id int64) string {
	if id <= 0 {
		return "no record stored there"
	}
	return "record id " + strconv.FormatInt(id, 10)
}

func newAuditExportCommand(e *env) *cobra.Command {
	var since, stream, out string
	c := &cobra.Command{
		Use:   "export [--since TIME] [--stream NAME] [--out FILE]",
		Short: "Write the audit records as JSON lines (docs/audit-schema.md)",
		Long: `export writes every record, in id order (each stream in seq order), from
one consistent snapshot, one JSON object per line, to stdout or --out. The
file verifies on its own: xaa audit verify --export FILE (with --checkpoints
and --pubkey to hold it to the signed checkpoints).

--since TIME exports each stream from its first record at or after TIME to
its end (so each stream's part stays contiguous); verify such a file with
--partial. TIME is RFC 3339 (2026-05-04T03:00:00Z), a date (2026-05-04,
UTC) or a duration before now (24h).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var f store.AuditFilter
			var err error
			if f.Since, err = parseWhen(since, "--since", time.Now()); err != nil {
				return err
			}
			if stream != "" {
				if err := checkStreamFlag(stream); err != nil {
					return err
				}
				f.Stream = stream
			}
			cfg, err := loadConfig(cmd, e)
			if err != nil {
				return err
			}
			db, err := openMigratedStore(cmd.Context(), cfg, e)
			if err != nil {
				return err
			}
			defer db.Close()
			w := e.stdout
			var file *os.File
			if out != "" {
				if file, err = os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640); err != nil {
					return err
				}
				defer file.Close()
				w = file
			}
			n := 0
			err = db.ScanAudit(cmd.Context(), f, func(ev *store.AuditEvent) error {
				line, err := audit.MarshalRecord(audit.NewRecord(ev))
				if err != nil {
					return err
				}
				n++
				_, err = w.Write(line)
				return err
			})
			if err != nil {
				return err
			}
			if file != nil {
				if err := file.Sync(); err != nil {
					return err
				}
			}
			fmt.Fprintf(e.stderr, "exported %d records\n", n)
			if !f.Since.IsZero() {
				fmt.Fprintln(e.stderr, "the export starts after seq 1 in some streams: verify it with --partial")
			}
			return nil
		},
	}
	c.Flags().StringVar(&since, "since", "", "export each stream from its first record at or after TIME")
	c.Flags().StringVar(&stream, "stream", "", "export only this stream")
	c.Flags().StringVar(&out, "out", "", "write to FILE (created, must not exist) instead of stdout")
	return c
}

// auditFilterFlags are the typed filters of query and tail. Each is an
// exact match sent as a bound parameter; there is no way to pass SQL.
type auditFilterFlags struct {
	stream, typ, subject, client, outcome, jti, since, until string
}

func (a *auditFilterFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&a.stream, "stream", "", "only this stream (idp, authserver, gateway, directory, admin, system, legacy, ...)")
	c.Flags().StringVar(&a.typ, "type", "", "only this record type, e.g. idjag.issued, accesstoken.denied, gateway.tool_call")
	c.Flags().StringVar(&a.subject, "subject", "", "only records about this subject (the user's sub)")
	c.Flags().StringVar(&a.client, "client", "", "only records of this client_id")
	c.Flags().StringVar(&a.outcome, "outcome", "", "only this outcome: allow, deny, error or info")
	c.Flags().StringVar(&a.jti, "jti", "", "only records that carry this token id (data.jti)")
	c.Flags().StringVar(&a.since, "since", "", "only records at or after TIME (RFC 3339, a date, or a duration before now)")
	c.Flags().StringVar(&a.until, "until", "", "only records before TIME")
}

var auditOutcomes = []string{"allow", "deny", "error", "info"}

func (a *auditFilterFlags) filter(now time.Time) (store.AuditFilter, error) {
	f := store.AuditFilter{Type: a.typ, Subject: a.subject, ClientID: a.client, Outcome: a.outcome, JTI: a.jti}
	if a.stream != "" {
		if err := checkStreamFlag(a.stream); err != nil {
			return f, err
		}
		f.Stream = a.stream
	}
	if a.outcome != "" && !slices.Contains(auditOutcomes, a.outcome) {
		return f, fmt.Errorf("--outcome must be one of %s", strings.Join(auditOutcomes, ", "))
	}
	for _, v := range []struct{ flag, value string }{{"--type", a.typ}, {"--subject", a.subject}, {"--client", a.client}, {"--jti", a.jti}} {
		if len(v.value) > 1024 || !utf8.ValidString(v.value) || strings.ContainsRune(v.value, 0) {
			return f, fmt.Errorf("%s must be at most 1024 bytes of valid UTF-8 without NUL", v.flag)
		}
	}
	var err error
	if f.Since, err = parseWhen(a.since, "--since", now); err != nil {
		return f, err
	}
	if f.Until, err = parseWhen(a.until, "--until", now); err != nil {
		return f, err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return f, errors.New("--until must be after --since")
	}
	return f, nil
}

// checkStreamFlag accepts any stream name, including the closed legacy
// stream (which can be read, not written).
func checkStreamFlag(s string) error {
	if s == audit.StreamLegacy {
		return nil
	}
	if err := audit.CheckStream(s); err != nil {
		return fmt.Errorf("--stream: %w", err)
	}
	return nil
}

// parseWhen parses a time flag: RFC 3339, a date (UTC midnight), or a
// duration before now. "" is the zero time.
func parseWhen(s, flag string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%s: want RFC 3339 (2026-05-04T03:00:00Z), a date (2026-05-04) or a positive duration before now (24h)", flag)
}

const maxQueryLimit = 100000

func newAuditQueryCommand(e *env) *cobra.Command {
	var ff auditFilterFlags
	var limit int
	var asJSON bool
	c := &cobra.Command{
		Use:   "query [filters] [--limit N] [--json]",
		Short: "List audit records that match typed filters, oldest first",
		Long: `query lists the records that match every filter given, in id order.
Filters are exact matches (no patterns, no SQL). --json prints the export
schema's JSON lines.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 || limit > maxQueryLimit {
				return fmt.Errorf("--limit must be from 1 to %d", maxQueryLimit)
			}
			f, err := ff.filter(time.Now())
			if err != nil {
				return err
			}
			cfg, err := loadConfig(cmd, e)
			if err != nil {
				return err
			}
			db, err := openMigratedStore(cmd.Context(), cfg, e)
			if err != nil {
				return err
			}
			defer db.Close()
			var evs []store.AuditEvent
			for len(evs) < limit {
				f.Limit = min(limit-len(evs), 1000)
				page, err := db.ListAudit(cmd.Context(), f)
				if err != nil {
					return err
				}
				evs = append(evs, page...)
				if len(page) < f.Limit {
					break
				}
				f.AfterID = page[len(page)-1].ID
			}
			return printRecords(e.stdout, evs, asJSON, true)
		},
	}
	ff.register(c)
	c.Flags().IntVar(&limit, "limit", 100, fmt.Sprintf("print at most N records (1 to %d)", maxQueryLimit))
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON lines (docs/audit-schema.md)")
	return c
}

func newAuditTailCommand(e *env) *cobra.Command {
	var ff auditFilterFlags
	var interval time.Duration
	var asJSON bool
	c := &cobra.Command{
		Use:   "tail [filters] [--interval 1s] [--json]",
		Short: "Follow new audit records as they are written (Ctrl-C stops)",
		Long: `tail prints the records that match the filters as they commit, in every
stream, until interrupted. With --since it first prints the matching
records from then on. Each stream is followed by its own sequence, so no
record is skipped however transactions interleave.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval < 100*time.Millisecond || interval > time.Hour {
				return errors.New("--interval must be from 100ms to 1h")
			}
			f, err := ff.filter(time.Now())
			if err != nil {
				return err
			}
			cfg, err := loadConfig(cmd, e)
			if err != nil {
				return err
			}
			db, err := openMigratedStore(cmd.Context(), cfg, e)
			if err != nil {
				return err
			}
			defer db.Close()
			tl, err := newTailer(cmd.Context(), db, f)
			if err != nil {
				return err
			}
			t := time.NewTicker(interval)
			defer t.Stop()
			header := true
			for {
				evs, err := tl.poll(cmd.Context())
				if err != nil && cmd.Context().Err() == nil {
					return err
				}
				if err := printRecords(e.stdout, evs, asJSON, header && len(evs) > 0); err != nil {
					return err
				}
				header = header && len(evs) == 0
				select {
				case <-cmd.Context().Done():
					return nil
				case <-t.C:
				}
			}
		},
	}
	ff.register(c)
	c.Flags().DurationVar(&interval, "interval", time.Second, "how often to look for new records")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON lines (docs/audit-schema.md)")
	return c
}

// tailer follows every stream by its own cursor (the last seq seen): a
// stream's records commit in seq order, so a cursor never passes a record
// that has yet to commit, which a cursor over ids could (on PostgreSQL,
// ids are taken before commit).
type tailer struct {
	db     *sqlstore.DB
	f      store.AuditFilter
	cursor map[string]int64
}

// newTailer starts at the current heads; with f.Since set, at each
// stream's start instead, so records from then on are printed first.
func newTailer(ctx context.Context, db *sqlstore.DB, f store.AuditFilter) (*tailer, error) {
	t := &tailer{db: db, f: f, cursor: map[string]int64{}}
	if f.Since.IsZero() {
		heads, err := db.AuditHeads(ctx)
		if err != nil {
			return nil, err
		}
		for _, h := range heads {
			t.cursor[h.Stream] = h.Seq
		}
	}
	return t, nil
}

// poll returns the matching records committed since the last poll, in id
// order.
func (t *tailer) poll(ctx context.Context) ([]store.AuditEvent, error) {
	heads, err := t.db.AuditHeads(ctx)
	if err != nil {
		return nil, err
	}
	var out []store.AuditEvent
	for _, h := range heads {
		if t.f.Stream != "" && h.Stream != t.f.Stream {
			continue
		}
		for h.Seq > t.cursor[h.Stream] {
			f := t.f
			f.Stream, f.AfterSeq, f.Limit = h.Stream, t.cursor[h.Stream], 1000
			page, err := t.db.ListAudit(ctx, f)
			if err != nil {
				return nil, err
			}
			out = append(out, page...)
			if len(page) == f.Limit {
				t.cursor[h.Stream] = page[len(page)-1].Seq
				continue
			}
			// Every record up to the head had committed before the head
			// was read, so none of them can still turn up.
			last := h.Seq
			if len(page) > 0 {
				last = max(last, page[len(page)-1].Seq)
			}
			t.cursor[h.Stream] = last
		}
	}
	slices.SortFunc(out, func(a, b store.AuditEvent) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

func newAuditTraceCommand(e *env) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "trace JTI",
		Short: "Show the chain of records linked to an ID-JAG's or an access token's jti",
		Long: `trace follows the links between records: the IdP's decision that issued an
ID-JAG (idjag.*, data.jti), each redemption of it at the authorization
server (accesstoken.*, data.idjag_jti, including refused replays), the
access tokens issued (data.jti), and every gateway tool call
(gateway.tool_call, data.jti) and revocation of those tokens. JTI may be
either end. Records are printed in time order. Give the token's jti, never
the token: records hold tokens only as keyed hashes.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			jti := args[0]
			if looksLikeJWT(jti) {
				return errors.New("that looks like a token, not a jti; give the token's jti claim (tokens are never stored, so they cannot be searched for)")
			}
			if jti == "" || len(jti) > 1024 {
				return errors.New("give a jti of 1 to 1024 bytes")
			}
			cfg, err := loadConfig(cmd, e)
			if err != nil {
				return err
			}
			db, err := openMigratedStore(cmd.Context(), cfg, e)
			if err != nil {
				return err
			}
			defer db.Close()
			evs, err := audit.Trace(cmd.Context(), db, jti)
			if err != nil {
				return err
			}
			if len(evs) == 0 {
				return fmt.Errorf("no audit record refers to jti %s", printable(jti))
			}
			return printRecords(e.stdout, evs, asJSON, true)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON lines (docs/audit-schema.md)")
	return c
}

// looksLikeJWT reports a compact JWS/JWE: base64url segments separated by
// dots, the first starting "eyJ" (a JSON object).
func looksLikeJWT(s string) bool {
	return strings.HasPrefix(s, "eyJ") && strings.Count(s, ".") >= 2
}

// printRecords prints records as a table or as JSON lines.
func printRecords(w io.Writer, evs []store.AuditEvent, asJSON, header bool) error {
	if asJSON {
		for i := range evs {
			line, err := audit.MarshalRecord(audit.NewRecord(&evs[i]))
			if err != nil {
				return err
			}
			if _, err := w.Write(line); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if header {
		fmt.Fprintln(tw, "TIME\tRECORD\tTYPE\tOUTCOME\tCLIENT\tSUBJECT\tRULE\tDETAILS")
	}
	for _, ev := range evs {
		var details []string
		for _, k := range slices.Sorted(maps.Keys(ev.Data)) {
			details = append(details, printable(k)+"="+printable(ev.Data[k]))
		}
		if ev.Reason != "" {
			details = append(details, "reason="+strconv.Quote(ev.Reason))
		}
		fmt.Fprintf(tw, "%s\t%s/%d#%d\t%s\t%s\t%s\t%s\t%s\t%s\n", ev.Time.UTC().Format("2006-01-02T15:04:05.000Z"),
			printable(ev.Stream), ev.Seq, ev.ID, printable(ev.Type), printable(ev.Outcome), dash(printable(ev.ClientID)),
			dash(printable(ev.Subject)), dash(printable(ev.Rule)), strings.Join(details, " "))
	}
	return tw.Flush()
}

// printable quotes a value that holds anything but printable characters
// or spaces, so a value a client supplied cannot inject terminal escapes,
// tabs or line breaks into the output.
func printable(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || r == unicode.ReplacementChar }) {
		return strconv.Quote(s)
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// openMigratedStore opens the configured database and refuses one that
// `xaa migrate` has not brought up to date.
func openMigratedStore(ctx context.Context, cfg *config.Config, e *env) (*sqlstore.DB, error) {
	db, err := openStore(ctx, cfg, newLogger(cfg.Log, e.stderr))
	if err != nil {
		return nil, err
	}
	if err := checkSchema(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// startAuditCheckpoints starts the checkpointer that audit.* configures
// (nothing when audit.checkpoint_key_file is empty) and returns the
// function that stops it: stop writes a final checkpoint, so call it once
// the server has stopped writing records, before closing db.
func startAuditCheckpoints(ctx context.Context, cfg *config.Config, db *sqlstore.DB, logger *slog.Logger) (stop func(), err error) {
	if !cfg.Audit.Checkpoints() {
		return func() {}, nil
	}
	key, err := audit.LoadPrivateKey(cfg.Audit.CheckpointKeyFile)
	if err != nil {
		return nil, err
	}
	var sinks []audit.Sink
	var syslogSink *audit.SyslogSink
	if cfg.Audit.CheckpointDir != "" {
		s, err := audit.NewFileSink(cfg.Audit.CheckpointDir)
		if err != nil {
			return nil, err
		}
		sinks = append(sinks, s)
	}
	if cfg.Audit.CheckpointSyslog != "" {
		if syslogSink, err = audit.NewSyslogSink(cfg.Audit.CheckpointSyslog); err != nil {
			return nil, err
		}
		sinks = append(sinks, syslogSink)
	}
	log := logger.With("component", "audit-checkpoints")
	cp, err := audit.NewCheckpointer(db, key, sinks, &audit.CheckpointerOptions{Interval: cfg.Audit.Interval(), Logger: log})
	if err != nil {
		return nil, err
	}
	// Its own context: the final checkpoint must come after the server
	// has drained, not when the shutdown signal arrives.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		cp.Run(runCtx)
	}()
	log.Info("writing signed audit checkpoints", "key_id", audit.KeyID(key.Public().(ed25519.PublicKey)),
		"dir", cfg.Audit.CheckpointDir, "syslog", cfg.Audit.CheckpointSyslog != "", "interval", cfg.Audit.Interval())
	return func() {
		cancel()
		<-done
		if syslogSink != nil {
			_ = syslogSink.Close()
		}
		clear(key)
	}, nil
}
