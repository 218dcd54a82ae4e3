package audit

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// ErrChainBroken is matched (errors.Is) by every *ChainError.
var ErrChainBroken = errors.New("audit: chain broken")

// ChainError names the first record at which a stream fails to verify:
// its stream, its position (Seq) and the ID of the record stored there (0
// when none is).
type ChainError struct {
	Stream string
	Seq    int64
	ID     int64
	Reason string
}

func (e *ChainError) Error() string {
	id := "no record stored there"
	if e.ID > 0 {
		id = fmt.Sprintf("record id %d", e.ID)
	}
	return fmt.Sprintf("audit stream %s broken at seq %d (%s): %s", e.Stream, e.Seq, id, e.Reason)
}

func (e *ChainError) Unwrap() error { return ErrChainBroken }

// VerifyOptions tunes a Verifier. A nil *VerifyOptions means the defaults.
type VerifyOptions struct {
	// Checkpoints are signed heads to hold the chains to; their signatures
	// must already be verified (ReadCheckpoints does). Every checkpoint's
	// seq must be present with the checkpoint's hash.
	Checkpoints []Checkpoint
	// Partial accepts streams that start after seq 1, as an export made
	// with --since does: each stream's first record is taken as given, and
	// checkpoints before it are skipped. Off, every stream must start at
	// seq 1 from the genesis hash.
	Partial bool
	// Streams, when set, limits verification to these streams; records and
	// checkpoints of other streams are ignored.
	Streams []string
}

// StreamReport is the verification result of one stream.
type StreamReport struct {
	Stream  string
	First   int64 // seq of the first record seen (1 unless partial)
	Last    int64 // seq of the last record that verified
	Records int64 // records that verified
	Head    string
	// Checkpoint is the latest checkpoint the stream matched, if any.
	Checkpoint *Checkpoint
	Err        *ChainError
}

// Report is the result of a verification, one entry per stream in name
// order.
type Report struct {
	Streams     []StreamReport
	Checkpoints int // checkpoints held against the chains
}

// Err joins the ChainError of every broken stream, or is nil when every
// stream verified.
func (r *Report) Err() error {
	var errs []error
	for _, s := range r.Streams {
		if s.Err != nil {
			errs = append(errs, s.Err)
		}
	}
	return errors.Join(errs...)
}

// Records returns how many records verified, over every stream.
func (r *Report) Records() int64 {
	var n int64
	for _, s := range r.Streams {
		n += s.Records
	}
	return n
}

// Verifier recomputes hash chains from records fed in any interleaving of
// streams, each stream in its own order. It keeps only each stream's tip
// and its pending checkpoints, so it runs over any number of records.
//
// Per stream it reports the first record that is missing, out of order,
// duplicated, changed, or not linked to its predecessor; a record whose ID
// is not after its predecessor's (records reordered); a checkpoint whose
// hash differs from the chain's at its seq (the chain was rewritten); and
// a stream that ends before its latest checkpoint, or before its head row
// says (a truncated tail).
type Verifier struct {
	opts    VerifyOptions
	only    map[string]bool
	cps     map[string][]Checkpoint // pending, by seq
	streams map[string]*streamState
}

type streamState struct {
	r       StreamReport
	started bool
	hash    string // hash of the last verified record
	lastID  int64
	// goodSeq is the seq of the last matching checkpoint (or the anchor),
	// goodNextID the ID of the record after it: where a rewrite detected
	// at a later checkpoint may begin.
	goodSeq    int64
	goodNextID int64
}

// NewVerifier returns a Verifier.
func NewVerifier(opts *VerifyOptions) *Verifier {
	v := &Verifier{cps: map[string][]Checkpoint{}, streams: map[string]*streamState{}}
	if opts != nil {
		v.opts = *opts
	}
	if len(v.opts.Streams) > 0 {
		v.only = map[string]bool{}
		for _, s := range v.opts.Streams {
			v.only[s] = true
		}
	}
	for _, c := range v.opts.Checkpoints {
		if v.skip(c.Stream) {
			continue
		}
		v.cps[c.Stream] = append(v.cps[c.Stream], c)
	}
	for s, cs := range v.cps {
		slices.SortStableFunc(cs, func(a, b Checkpoint) int {
			return cmp.Or(cmp.Compare(a.Seq, b.Seq), a.Time.Compare(b.Time))
		})
		v.cps[s] = cs
	}
	return v
}

func (v *Verifier) skip(stream string) bool { return v.only != nil && !v.only[stream] }

func (v *Verifier) state(stream string) *streamState {
	st, ok := v.streams[stream]
	if !ok {
		st = &streamState{r: StreamReport{Stream: stream}, hash: GenesisHash}
		v.streams[stream] = st
	}
	return st
}

// Fail records a problem found outside the chain (such as an index column
// that disagrees with the record), unless the stream already failed.
func (v *Verifier) Fail(stream string, seq, id int64, reason string) {
	if v.skip(stream) {
		return
	}
	st := v.state(stream)
	if st.r.Err == nil {
		st.r.Err = &ChainError{Stream: stream, Seq: seq, ID: id, Reason: reason}
	}
}

// AddRecord verifies one export record: its recipe must be its stream's,
// and then as Add.
func (v *Verifier) AddRecord(r Record) {
	if r.V != RecipeOf(r.Stream) {
		v.Fail(r.Stream, r.Seq, r.ID, fmt.Sprintf("hash recipe v%d is not the stream's (v%d)", r.V, RecipeOf(r.Stream)))
		return
	}
	e := r.Event()
	v.Add(&e)
}

// Add verifies the next record of e.Stream. After a stream's first
// failure, its later records are ignored.
func (v *Verifier) Add(e *store.AuditEvent) {
	if v.skip(e.Stream) {
		return
	}
	st := v.state(e.Stream)
	if st.r.Err != nil {
		return
	}
	fail := func(seq, id int64, format string, args ...any) {
		st.r.Err = &ChainError{Stream: e.Stream, Seq: seq, ID: id, Reason: fmt.Sprintf(format, args...)}
	}
	if !validStreamName(e.Stream) {
		fail(e.Seq, e.ID, "the stream name is not valid")
		return
	}
	if !st.started {
		st.started = true
		st.r.First = 1
		if v.opts.Partial && e.Seq > 1 {
			// The first record present anchors a partial stream.
			st.r.First, st.r.Last, st.hash, st.goodSeq = e.Seq, e.Seq-1, e.PrevHash, e.Seq-1
			cs := v.cps[e.Stream]
			i := 0
			for i < len(cs) && cs[i].Seq < e.Seq {
				i++
			}
			v.cps[e.Stream] = cs[i:]
		}
	}
	want := st.r.Last + 1
	switch {
	case e.ID < 1 || e.Seq < 1:
		fail(want, e.ID, "a record with id %d and seq %d: both must be at least 1", e.ID, e.Seq)
	case e.Seq > want:
		fail(want, e.ID, "record %d is missing or out of order: found seq %d (id %d) in its place", want, e.Seq, e.ID)
	case e.Seq < want:
		fail(want, e.ID, "found seq %d (id %d) again after seq %d: records are duplicated or out of order", e.Seq, e.ID, st.r.Last)
	case e.ID <= st.lastID:
		fail(want, e.ID, "its id %d is not after the previous record's id %d: records were reordered", e.ID, st.lastID)
	case Hash(e) != e.Hash:
		fail(e.Seq, e.ID, "the hash does not match the record's contents: the record was changed")
	case e.PrevHash != st.hash:
		fail(e.Seq, e.ID, "prev_hash does not match the hash of seq %d: a record before it was changed, removed or replaced", want-1)
	}
	if st.r.Err != nil {
		return
	}
	if e.Seq == st.goodSeq+1 {
		st.goodNextID = e.ID
	}
	cs := v.cps[e.Stream]
	for len(cs) > 0 && cs[0].Seq == e.Seq {
		c := cs[0]
		cs = cs[1:]
		v.cps[e.Stream] = cs
		if c.Hash != e.Hash {
			at := st.goodSeq + 1
			fail(at, st.goodNextID, "the checkpoint signed at %s says seq %d has hash %s, the stored chain has %s: records %d to %d were rewritten (the last matching checkpoint is at seq %d)",
				stampMS(c.Time), c.Seq, c.Hash, e.Hash, at, c.Seq, st.goodSeq)
			return
		}
		st.goodSeq = e.Seq
		st.r.Checkpoint = &c
	}
	st.r.Last, st.r.Records, st.lastID, st.hash, st.r.Head = e.Seq, st.r.Records+1, e.ID, e.Hash, e.Hash
}

// Finish ends verification and returns the report. heads are the
// database's chain heads; with heads == nil (an export file) only the
// checkpoints bound each stream's end.
func (v *Verifier) Finish(heads []store.AuditHead) *Report {
	if heads != nil {
		seen := map[string]bool{}
		for _, h := range heads {
			if v.skip(h.Stream) {
				continue
			}
			seen[h.Stream] = true
			st := v.state(h.Stream)
			if st.r.Err != nil {
				continue
			}
			switch {
			case h.Seq > st.r.Last:
				st.r.Err = &ChainError{Stream: h.Stream, Seq: st.r.Last + 1,
					Reason: fmt.Sprintf("the stream's head is at seq %d but the last stored record is seq %d: records were removed from the end", h.Seq, st.r.Last)}
			case h.Seq < st.r.Last:
				st.r.Err = &ChainError{Stream: h.Stream, Seq: h.Seq + 1,
					Reason: fmt.Sprintf("the stream's head is at seq %d but records up to seq %d are stored: the head was moved back", h.Seq, st.r.Last)}
			case h.Hash != st.hash:
				st.r.Err = &ChainError{Stream: h.Stream, Seq: st.r.Last, ID: st.lastID,
					Reason: "the stream's head hash does not match its last record"}
			}
		}
		for name, st := range v.streams {
			if !seen[name] && st.r.Err == nil {
				st.r.Err = &ChainError{Stream: name, Seq: 1, Reason: "the stream has records but no head row"}
			}
		}
	}
	rep := &Report{Checkpoints: len(v.opts.Checkpoints)}
	for name, cs := range v.cps {
		if len(cs) == 0 {
			continue
		}
		st := v.state(name)
		if st.r.Err != nil {
			continue
		}
		last := cs[len(cs)-1]
		st.r.Err = &ChainError{Stream: name, Seq: st.r.Last + 1,
			Reason: fmt.Sprintf("the stream ends at seq %d but the checkpoint signed at %s covers seq %d: records %d to %d were removed (truncated tail)",
				st.r.Last, stampMS(last.Time), last.Seq, st.r.Last+1, last.Seq)}
	}
	for _, st := range v.streams {
		rep.Streams = append(rep.Streams, st.r)
	}
	slices.SortFunc(rep.Streams, func(a, b StreamReport) int { return cmp.Compare(a.Stream, b.Stream) })
	return rep
}

func stampMS(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// VerifyExport verifies an export file (JSON lines, see
// docs/audit-schema.md) read from r. A line that does not parse is an
// error naming the line: the file as a whole cannot be trusted.
func VerifyExport(r io.Reader, name string, opts *VerifyOptions) (*Report, error) {
	v := NewVerifier(opts)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLine)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		rec, err := ParseRecord(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		v.AddRecord(rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return v.Finish(nil), nil
}
