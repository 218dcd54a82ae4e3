package audit

import (
	"fmt"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// Record is one line of an audit export (docs/audit-schema.md): an
// AuditEvent with its hash recipe, in a JSON shape a third party can
// verify with the file alone.
type Record struct {
	V         int               `json:"v"` // hash recipe: RecipeV1 (legacy stream) or RecipeV2
	ID        int64             `json:"id"`
	Stream    string            `json:"stream"`
	Seq       int64             `json:"seq"`
	TimeMS    int64             `json:"time_ms"` // Unix milliseconds, as hashed
	Type      string            `json:"type"`
	Actor     string            `json:"actor"`
	Subject   string            `json:"subject"`
	ClientID  string            `json:"client_id"`
	Outcome   string            `json:"outcome"`
	Rule      string            `json:"rule"`
	Reason    string            `json:"reason"`
	RequestID string            `json:"request_id"`
	Data      map[string]string `json:"data"`
	PrevHash  string            `json:"prev_hash"`
	Hash      string            `json:"hash"`
}

// recordKeys are the members every record line has.
var recordKeys = []string{"v", "id", "stream", "seq", "time_ms", "type", "actor", "subject", "client_id",
	"outcome", "rule", "reason", "request_id", "data", "prev_hash", "hash"}

// NewRecord returns the export record of e.
func NewRecord(e *store.AuditEvent) Record {
	data := e.Data
	if data == nil {
		data = map[string]string{}
	}
	return Record{
		V: RecipeOf(e.Stream), ID: e.ID, Stream: e.Stream, Seq: e.Seq, TimeMS: e.Time.UnixMilli(),
		Type: e.Type, Actor: e.Actor, Subject: e.Subject, ClientID: e.ClientID, Outcome: e.Outcome,
		Rule: e.Rule, Reason: e.Reason, RequestID: e.RequestID, Data: data, PrevHash: e.PrevHash, Hash: e.Hash,
	}
}

// Event returns the record as an AuditEvent (Data nil when empty, as the
// store returns it).
func (r Record) Event() store.AuditEvent {
	data := r.Data
	if len(data) == 0 {
		data = nil
	}
	return store.AuditEvent{
		ID: r.ID, Stream: r.Stream, Seq: r.Seq, Time: time.UnixMilli(r.TimeMS).UTC(),
		Type: r.Type, Actor: r.Actor, Subject: r.Subject, ClientID: r.ClientID, Outcome: r.Outcome,
		Rule: r.Rule, Reason: r.Reason, RequestID: r.RequestID, Data: data, PrevHash: r.PrevHash, Hash: r.Hash,
	}
}

// MarshalRecord encodes r as one JSON line, ending in "\n". Data keys are
// sorted, so the same record always encodes alike.
func MarshalRecord(r Record) ([]byte, error) {
	if r.Data == nil {
		r.Data = map[string]string{}
	}
	return marshalLine(r)
}

// ParseRecord decodes one export line strictly: every member of the schema
// exactly once and of its type, no other member, valid UTF-8. It checks
// the shape only; whether the record belongs in its chain is the
// Verifier's question.
func ParseRecord(line []byte) (Record, error) {
	o, err := newObjectReader(line)
	if err != nil {
		return Record{}, err
	}
	var r Record
	for {
		key, ok, err := o.next()
		if err != nil {
			return Record{}, err
		}
		if !ok {
			break
		}
		var v int64
		switch key {
		case "v":
			v, err = o.int(key)
			if err == nil && v != RecipeV1 && v != RecipeV2 {
				err = fmt.Errorf("%w: v must be %d or %d, got %d", ErrMalformed, RecipeV1, RecipeV2, v)
			}
			r.V = int(v)
		case "id":
			r.ID, err = o.int(key)
		case "seq":
			r.Seq, err = o.int(key)
		case "time_ms":
			r.TimeMS, err = o.int(key)
		case "stream":
			r.Stream, err = o.str(key)
		case "type":
			r.Type, err = o.str(key)
		case "actor":
			r.Actor, err = o.str(key)
		case "subject":
			r.Subject, err = o.str(key)
		case "client_id":
			r.ClientID, err = o.str(key)
		case "outcome":
			r.Outcome, err = o.str(key)
		case "rule":
			r.Rule, err = o.str(key)
		case "reason":
			r.Reason, err = o.str(key)
		case "request_id":
			r.RequestID, err = o.str(key)
		case "data":
			r.Data, err = o.strMap(key)
		case "prev_hash":
			r.PrevHash, err = o.str(key)
		case "hash":
			r.Hash, err = o.str(key)
		default:
			err = fmt.Errorf("%w: unknown member %q", ErrMalformed, clipName(key))
		}
		if err != nil {
			return Record{}, err
		}
	}
	if err := o.require(recordKeys); err != nil {
		return Record{}, err
	}
	return r, nil
}
