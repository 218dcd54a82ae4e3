package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/openxaa/xaa/internal/audit"
	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/store"
)

// The audit trail for auditors: query (paged by record id), export (JSON
// lines, docs/audit-schema.md), verify (every stream's chain, held to the
// signed checkpoints when configured) and trace (every record linked to a
// token id).

var auditFilters = []param{
	{name: "stream", kind: kindName, doc: "only this stream (idp, authserver, gateway, directory, admin, system, legacy)"},
	{name: "type", kind: kindName, doc: "only this record type, e.g. idjag.issued"},
	{name: "subject", kind: kindID, doc: "only records about this subject"},
	{name: "client_id", kind: kindID, doc: "only records of this client"},
	{name: "outcome", kind: kindEnum, values: []string{"allow", "deny", "error", "info"}, doc: "only this outcome"},
	{name: "jti", kind: kindID, doc: "only records naming this token id (data.jti)"},
	{name: "idjag_jti", kind: kindID, doc: "only redemptions of this ID-JAG (data.idjag_jti)"},
	{name: "since", kind: kindTime, doc: "records at or after this time"},
	{name: "until", kind: kindTime, doc: "records before this time"},
}

var (
	auditQuery  = &querySpec{list: "audit", sorts: []string{"id"}, noSortDesc: true, filters: auditFilters}
	exportQuery = &querySpec{filters: auditFilters}
	verifyQuery = &querySpec{filters: []param{{name: "stream", kind: kindName, doc: "verify only this stream"}}}
)

func auditFilter(q *query) store.AuditFilter {
	return store.AuditFilter{
		Stream: q.str("stream"), Type: q.str("type"), Subject: q.str("subject"), ClientID: q.str("client_id"),
		Outcome: q.str("outcome"), JTI: q.str("jti"), ParentJTI: q.str("idjag_jti"),
		Since: q.time("since"), Until: q.time("until"),
	}
}

func (s *Server) queryAudit(ctx context.Context, c *call) (any, error) {
	f := auditFilter(c.q)
	f.Limit = c.q.limit + 1
	if c.q.after != nil {
		if c.q.after.Num < 1 {
			return nil, cursorRefused()
		}
		f.AfterID = c.q.after.Num
	}
	evs, err := s.opts.Store.ListAudit(ctx, f)
	if err != nil {
		return nil, err
	}
	return pageOf(s, auditQuery, c.q, evs, func(e store.AuditEvent) audit.Record { return audit.NewRecord(&e) },
		func(e store.AuditEvent) position { return position{Num: e.ID} })
}

// exportAudit streams every selected record as a JSON line, from one
// snapshot. The export is audited before the first line is written.
func (s *Server) exportAudit(w http.ResponseWriter, r *http.Request, c *call) {
	ctx := r.Context()
	f := auditFilter(c.q)
	desc := describeFilter(c.q)
	if err := s.record(ctx, c, "audit_export", "", "allow", "audit records exported"+desc, map[string]string{"filter": desc}); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Content-Disposition", `attachment; filename="audit.jsonl"`)
	started := false
	err := s.opts.Store.ScanAudit(ctx, f, func(e *store.AuditEvent) error {
		line, err := audit.MarshalRecord(audit.NewRecord(e))
		if err != nil {
			return err
		}
		if !started {
			started = true
			w.WriteHeader(http.StatusOK)
		}
		_, err = w.Write(line)
		return err
	})
	switch {
	case err != nil && !started:
		s.writeError(w, r, err)
	case err != nil:
		// Headers are gone; cut the stream short so the client sees an
		// incomplete export (the chain verification of it fails too).
		s.log.ErrorContext(ctx, "admin: audit export failed midway", "err", err, "request_id", httpserver.RequestIDFrom(ctx))
		panic(http.ErrAbortHandler)
	case !started:
		w.WriteHeader(http.StatusOK)
	}
}

func describeFilter(q *query) string {
	keys := make([]string, 0, len(q.values))
	for k := range q.values {
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return ""
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + q.values[k]
	}
	return " (" + strings.Join(parts, " ") + ")"
}

type chainErrorView struct {
	Seq    int64  `json:"seq"`
	ID     int64  `json:"id,omitempty"`
	Reason string `json:"reason"`
}

func (chainErrorView) schemaName() string { return "AuditChainError" }

type streamReportView struct {
	Stream  string `json:"stream"`
	OK      bool   `json:"ok"`
	First   int64  `json:"first"`
	Last    int64  `json:"last"`
	Records int64  `json:"records"`
	Head    string `json:"head,omitempty"`
	// CheckpointSeq is the latest signed checkpoint the stream matched.
	CheckpointSeq int64           `json:"checkpoint_seq,omitempty"`
	Error         *chainErrorView `json:"error,omitempty"`
}

func (streamReportView) schemaName() string { return "AuditStreamReport" }

type verifyView struct {
	OK          bool               `json:"ok"`
	Records     int64              `json:"records"`
	Checkpoints int                `json:"checkpoints"`
	Streams     []streamReportView `json:"streams"`
}

func (verifyView) schemaName() string { return "AuditVerification" }

func (s *Server) verifyAudit(ctx context.Context, c *call) (any, error) {
	opts := &audit.VerifyOptions{}
	if st := c.q.str("stream"); st != "" {
		opts.Streams = []string{st}
	}
	if s.opts.Checkpoints != nil {
		cps, err := s.opts.Checkpoints(ctx)
		if err != nil {
			return nil, fmt.Errorf("admin: load audit checkpoints: %w", err)
		}
		opts.Checkpoints = cps
	}
	rep, err := s.opts.Store.VerifyAudit(ctx, opts)
	if err != nil {
		return nil, err
	}
	out := verifyView{OK: rep.Err() == nil, Records: rep.Records(), Checkpoints: rep.Checkpoints, Streams: []streamReportView{}}
	for _, st := range rep.Streams {
		v := streamReportView{Stream: st.Stream, OK: st.Err == nil, First: st.First, Last: st.Last, Records: st.Records, Head: st.Head}
		if st.Checkpoint != nil {
			v.CheckpointSeq = st.Checkpoint.Seq
		}
		if st.Err != nil {
			v.Error = &chainErrorView{Seq: st.Err.Seq, ID: st.Err.ID, Reason: st.Err.Reason}
		}
		out.Streams = append(out.Streams, v)
	}
	return out, nil
}

type traceView struct {
	JTI     string         `json:"jti"`
	Records []audit.Record `json:"records"`
}

func (traceView) schemaName() string { return "AuditTrace" }

func (s *Server) traceAudit(ctx context.Context, c *call) (any, error) {
	jti := c.path("jti")
	if !validID(jti) {
		return nil, badRequest("%s is not a token id", quote(jti))
	}
	evs, err := audit.Trace(ctx, s.opts.Store, jti)
	if errors.Is(err, audit.ErrTraceTooLarge) {
		return nil, badRequest("%s", sentence(err))
	}
	if err != nil {
		return nil, err
	}
	out := traceView{JTI: jti, Records: []audit.Record{}}
	for i := range evs {
		out.Records = append(out.Records, audit.NewRecord(&evs[i]))
	}
	return out, nil
}
