package mcpauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"unicode/utf8"
)

// listFilter removes from tools/list results the tools a token may not
// call. It rewrites only JSON-RPC messages whose id is one of the watched
// tools/list request ids and whose result holds a tools array; everything
// else passes byte for byte.
type listFilter struct {
	ids   map[string]bool // idKey of each watched tools/list request
	allow func(tool string) bool
}

var errToolsNotArray = errors.New("result.tools is not an array")

// filterPayload filters one JSON-RPC message or a batch of them. It
// returns data itself when nothing changed. An error means data is not
// strictly readable JSON (invalid, or a repeated member name in a message,
// a result or a tool); the caller must not pass such data on unfiltered.
func (f *listFilter) filterPayload(data []byte) ([]byte, bool, error) {
	if !utf8.Valid(data) || !json.Valid(data) {
		return nil, false, errNotJSON
	}
	i := skipSpace(data, 0)
	switch data[i] {
	case '{':
		return f.filterMessage(data)
	case '[':
		elems, err := scanArray(data)
		if err != nil {
			return nil, false, err
		}
		var out [][]byte
		for k, e := range elems {
			fe, changed, err := f.filterMessage(e)
			if err != nil {
				return nil, false, err
			}
			if changed && out == nil {
				out = make([][]byte, len(elems))
				copy(out, elems[:k])
			}
			if out != nil {
				out[k] = fe
			}
		}
		if out == nil {
			return data, false, nil
		}
		var b bytes.Buffer
		b.WriteByte('[')
		b.Write(bytes.Join(out, []byte{','}))
		b.WriteByte(']')
		return b.Bytes(), true, nil
	}
	return data, false, nil // a scalar is no message
}

// filterMessage filters one message (a JSON object, or any other value,
// which passes unchanged).
func (f *listFilter) filterMessage(data []byte) ([]byte, bool, error) {
	v := bytes.TrimSpace(data)
	if len(v) == 0 || v[0] != '{' {
		return data, false, nil
	}
	msg, err := scanObject(v)
	if err != nil {
		return nil, false, err
	}
	id, ok := msg.get(keyID)
	if !ok || !f.ids[idKey(id)] {
		return data, false, nil
	}
	res, ok := msg.get(keyResult)
	if !ok || len(res) == 0 || res[0] != '{' {
		return data, false, nil
	}
	result, err := scanObject(res)
	if err != nil {
		return nil, false, err
	}
	tools, ok := result.get(keyTools)
	if !ok {
		return data, false, nil
	}
	if len(tools) == 0 || tools[0] != '[' {
		return nil, false, errToolsNotArray
	}
	entries, err := scanArray(tools)
	if err != nil {
		return nil, false, err
	}
	kept := make([][]byte, 0, len(entries))
	for _, e := range entries {
		if f.keep(e) {
			kept = append(kept, e)
		}
	}
	if len(kept) == len(entries) {
		return data, false, nil
	}
	var nt bytes.Buffer
	nt.WriteByte('[')
	nt.Write(bytes.Join(kept, []byte{','}))
	nt.WriteByte(']')
	newResult := replaceMember(result, keyTools, nt.Bytes())
	return replaceMember(msg, keyResult, newResult), true, nil
}

// keep reports whether a tools array entry may stay: an object with one
// string name the token may call. Anything unreadable is dropped.
func (f *listFilter) keep(entry []byte) bool {
	if len(entry) == 0 || entry[0] != '{' {
		return false
	}
	tool, err := scanObject(entry)
	if err != nil {
		return false
	}
	raw, ok := tool.get(keyName)
	if !ok {
		return false
	}
	name, ok := decodeString(raw)
	return ok && f.allow(name)
}

// replaceMember re-serialises o with the value of the member folded fold
// replaced; names and other values are kept as written.
func replaceMember(o object, fold string, value []byte) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(m.rawName)
		b.WriteByte(':')
		if m.fold == fold {
			b.Write(value)
		} else {
			b.Write(m.raw)
		}
	}
	b.WriteByte('}')
	return b.Bytes()
}

// maxFilterBytes bounds what the filter buffers: a whole application/json
// response, or one server-sent event (the go-sdk client's own event limit).
const maxFilterBytes = 16 << 20

var errEventTooLarge = errors.New("mcpauth: server-sent event exceeds the filter limit")

// sseRewriter passes a text/event-stream through event by event, rewriting
// the data of events that carry a watched tools/list response. Events are
// held only until their terminating blank line, then written and flushed,
// so the stream stays live; event ids, names, retry fields and comments are
// kept, so Last-Event-ID resumption still works.
type sseRewriter struct {
	f     *listFilter
	out   io.Writer
	flush func()
	buf   []byte
	pos   int // start of the current line in buf
	scan  int // where the search for the next line end resumes
	first bool
	eof   bool
	err   error
}

func newSSERewriter(f *listFilter, out io.Writer, flush func()) *sseRewriter {
	return &sseRewriter{f: f, out: out, flush: flush, first: true}
}

// Write implements io.Writer. An error is final: the stream is broken
// (an event too large to check, or the client went away).
func (s *sseRewriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	s.buf = append(s.buf, p...)
	start := 0
	for {
		end, ok := s.nextEventEnd()
		if !ok {
			break
		}
		if err := s.emit(s.buf[start:end], true); err != nil {
			s.err = err
			return 0, err
		}
		s.flush() // each event reaches the client as soon as it is whole
		start = end
	}
	if start > 0 { // drop the events written, once per Write
		n := copy(s.buf, s.buf[start:])
		s.buf = s.buf[:n]
		s.pos -= start
		s.scan -= start
	}
	if len(s.buf) > maxFilterBytes {
		s.err = errEventTooLarge
		s.buf = nil
		return 0, s.err
	}
	return len(p), nil
}

// finish handles an event left unterminated when the stream ended. Clients
// should discard it, but a lenient one may not, so it is filtered too.
func (s *sseRewriter) finish() {
	if s.err != nil || len(s.buf) == 0 {
		return
	}
	s.eof = true // a CR at the very end now ends its line
	start := 0
	for {
		end, ok := s.nextEventEnd()
		if !ok {
			break
		}
		if err := s.emit(s.buf[start:end], true); err != nil {
			s.err = err
			return
		}
		start = end
	}
	if start < len(s.buf) {
		if err := s.emit(s.buf[start:], false); err != nil {
			s.err = err
			return
		}
	}
	s.flush()
	s.buf = nil
}

// nextEventEnd returns the end of the first complete event in buf: the
// index just past its terminating blank line. Lines end in CRLF, LF or CR
// (SSE); a CR at the end of buf waits for the next byte.
func (s *sseRewriter) nextEventEnd() (int, bool) {
	for {
		// Resume where the last search stopped: an event arriving in many
		// small writes is scanned once, not once per write.
		from := max(s.pos, s.scan)
		k := bytes.IndexAny(s.buf[from:], "\r\n")
		if k < 0 {
			s.scan = len(s.buf)
			return 0, false
		}
		k += from
		termEnd := k + 1
		if s.buf[k] == '\r' {
			if k+1 >= len(s.buf) && !s.eof {
				s.scan = k
				return 0, false
			}
			if k+1 < len(s.buf) && s.buf[k+1] == '\n' {
				termEnd = k + 2
			}
		}
		lineStart := s.pos
		s.pos, s.scan = termEnd, termEnd
		if k == lineStart {
			return termEnd, true
		}
	}
}

var bom = []byte("\xEF\xBB\xBF")

// emit writes one event, rewritten if it carries a watched response.
func (s *sseRewriter) emit(ev []byte, complete bool) error {
	if s.first {
		s.first = false
		// A client strips a leading BOM before parsing fields.
		if bytes.HasPrefix(ev, bom) {
			if _, err := s.out.Write(bom); err != nil {
				return err
			}
			ev = ev[len(bom):]
		}
	}
	out, err := rewriteEvent(s.f, ev, complete)
	if err != nil {
		return err
	}
	_, err = s.out.Write(out)
	return err
}

// rewriteEvent returns ev, or ev with its data replaced by the filtered
// payload. A payload that is not strictly readable JSON is dropped (the
// event keeps its other fields): it cannot be shown to be safe.
func rewriteEvent(f *listFilter, ev []byte, complete bool) ([]byte, error) {
	lines := splitLines(ev)
	var data [][]byte
	for _, l := range lines {
		if field, value, ok := sseField(l); ok && string(field) == "data" {
			data = append(data, value)
		}
	}
	if data == nil {
		return ev, nil
	}
	payload := bytes.Join(data, []byte{'\n'})
	if len(bytes.TrimSpace(payload)) == 0 {
		return ev, nil
	}
	filtered, changed, err := f.filterPayload(payload)
	if err == nil && !changed {
		return ev, nil
	}
	var b bytes.Buffer
	b.Grow(len(ev))
	if err != nil {
		// Keeps the event a visible block even if it had only data.
		b.WriteString(": mcpauth: unreadable data removed\n")
	}
	wroteData := false
	for _, l := range lines {
		if len(l) == 0 {
			continue
		}
		if field, _, ok := sseField(l); ok && string(field) == "data" {
			if !wroteData && err == nil {
				b.WriteString("data: ")
				// Compact: the rewritten payload may keep newlines of a
				// multi-line original, which would end the data line.
				if cerr := json.Compact(&b, filtered); cerr != nil {
					return nil, cerr
				}
				b.WriteByte('\n')
			}
			wroteData = true
			continue
		}
		b.Write(l)
		b.WriteByte('\n')
	}
	if complete {
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// splitLines splits an event into lines without their terminators.
func splitLines(ev []byte) [][]byte {
	var lines [][]byte
	for len(ev) > 0 {
		k := bytes.IndexAny(ev, "\r\n")
		if k < 0 {
			lines = append(lines, ev)
			break
		}
		lines = append(lines, ev[:k])
		if ev[k] == '\r' && k+1 < len(ev) && ev[k+1] == '\n' {
			k++
		}
		ev = ev[k+1:]
	}
	return lines
}

// sseField parses one field line; comments and blank lines are not fields.
func sseField(line []byte) (field, value []byte, ok bool) {
	if len(line) == 0 || line[0] == ':' {
		return nil, nil, false
	}
	field, value, found := bytes.Cut(line, []byte{':'})
	if found && len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	return field, value, true
}
