package audit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/openxaa/xaa/internal/store"
)

// Lister lists audit records (store.Audit does).
type Lister interface {
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error)
}

// Data keys that link records across hops. An ID-JAG record (idjag.*)
// carries the ID-JAG's jti in "jti"; a redemption record (accesstoken.*)
// carries the ID-JAG's jti in "idjag_jti" and, once issued, the access
// token's jti in "jti"; a gateway tool call (gateway.tool_call) carries
// the access token's jti in "jti".
const (
	DataJTI      = "jti"
	DataIDJAGJTI = "idjag_jti"
)

// MaxTraceRecords bounds the records one trace collects.
const MaxTraceRecords = 10000

// ErrTraceTooLarge means a trace would collect more than MaxTraceRecords.
var ErrTraceTooLarge = errors.New("audit: trace too large")

// Trace returns every record linked to jti, in time order (ties by ID):
// the IdP's decision that issued the ID-JAG (or refused to), each
// redemption of that ID-JAG at an authorization server (including refused
// replays), the access tokens they issued, and every gateway tool call and
// revocation of those tokens. jti may be an ID-JAG's or an access token's;
// the trace follows the links both ways.
func Trace(ctx context.Context, l Lister, jti string) ([]store.AuditEvent, error) {
	if jti == "" {
		return nil, errors.New("audit: trace needs a jti")
	}
	t := &tracer{l: l, found: map[int64]store.AuditEvent{}, idjags: map[string]bool{}, tokens: map[string]bool{}}
	// The starting jti may be of either kind; look it up both ways.
	t.idjags[jti], t.tokens[jti] = true, true
	if err := t.collect(ctx, store.AuditFilter{JTI: jti}); err != nil {
		return nil, err
	}
	if err := t.collect(ctx, store.AuditFilter{ParentJTI: jti}); err != nil {
		return nil, err
	}
	for len(t.pendingIDJAGs)+len(t.pendingTokens) > 0 {
		if n := len(t.pendingIDJAGs); n > 0 {
			j := t.pendingIDJAGs[n-1]
			t.pendingIDJAGs = t.pendingIDJAGs[:n-1]
			if err := t.collect(ctx, store.AuditFilter{JTI: j}); err != nil {
				return nil, err
			}
			if err := t.collect(ctx, store.AuditFilter{ParentJTI: j}); err != nil {
				return nil, err
			}
			continue
		}
		n := len(t.pendingTokens)
		a := t.pendingTokens[n-1]
		t.pendingTokens = t.pendingTokens[:n-1]
		if err := t.collect(ctx, store.AuditFilter{JTI: a}); err != nil {
			return nil, err
		}
	}
	out := make([]store.AuditEvent, 0, len(t.found))
	for _, e := range t.found {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b store.AuditEvent) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

type tracer struct {
	l              Lister
	found          map[int64]store.AuditEvent
	idjags, tokens map[string]bool
	pendingIDJAGs  []string
	pendingTokens  []string
}

func (t *tracer) collect(ctx context.Context, f store.AuditFilter) error {
	f.Limit = 1000
	for {
		page, err := t.l.ListAudit(ctx, f)
		if err != nil {
			return fmt.Errorf("audit: trace: %w", err)
		}
		for _, e := range page {
			if _, ok := t.found[e.ID]; ok {
				continue
			}
			if len(t.found) >= MaxTraceRecords {
				return fmt.Errorf("%w: more than %d linked records", ErrTraceTooLarge, MaxTraceRecords)
			}
			t.found[e.ID] = e
			t.link(e)
		}
		if len(page) < f.Limit {
			return nil
		}
		f.AfterID = page[len(page)-1].ID
	}
}

// link queues the jtis e refers to.
func (t *tracer) link(e store.AuditEvent) {
	if j := e.Data[DataIDJAGJTI]; j != "" {
		t.addIDJAG(j)
	}
	j := e.Data[DataJTI]
	switch {
	case j == "":
	case strings.HasPrefix(e.Type, "idjag."):
		t.addIDJAG(j)
	default:
		t.addToken(j)
	}
}

func (t *tracer) addIDJAG(j string) {
	if !t.idjags[j] {
		t.idjags[j] = true
		t.pendingIDJAGs = append(t.pendingIDJAGs, j)
	}
}

func (t *tracer) addToken(j string) {
	if !t.tokens[j] {
		t.tokens[j] = true
		t.pendingTokens = append(t.pendingTokens, j)
	}
}
