package mcpauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// The reference readers below are deliberately independent of the
// production scanner: they use encoding/json's tokenizer, keep duplicate
// members, and match names with strings.EqualFold, so they see everything
// any lenient JSON-RPC implementation could read out of a message.

// jnode is a JSON value with object members kept in order, duplicates and
// all.
type jnode struct {
	kind    byte // '{', '[', '"', '0' (number), 'l' (literal)
	str     string
	raw     []byte // numbers and strings as written, for ids
	members []jmember
	elems   []*jnode
}

type jmember struct {
	name string
	val  *jnode
}

// parseLenient reads the first JSON value of data and ignores what
// follows, as a stream decoder would.
func parseLenient(data []byte) (*jnode, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := readNode(dec, 0)
	return n, err == nil
}

func readNode(dec *json.Decoder, depth int) (*jnode, error) {
	if depth > 200 {
		return nil, errors.New("too deep")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			n := &jnode{kind: '{'}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				name, _ := kt.(string)
				val, err := readNode(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.members = append(n.members, jmember{name, val})
			}
			_, err := dec.Token()
			return n, err
		case '[':
			n := &jnode{kind: '['}
			for dec.More() {
				val, err := readNode(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.elems = append(n.elems, val)
			}
			_, err := dec.Token()
			return n, err
		}
		return nil, errors.New("unexpected delimiter")
	case string:
		raw, _ := json.Marshal(v)
		return &jnode{kind: '"', str: v, raw: raw}, nil
	case json.Number:
		return &jnode{kind: '0', raw: []byte(v.String())}, nil
	}
	return &jnode{kind: 'l'}, nil
}

// all returns every member value whose name folds to name.
func (n *jnode) all(name string) []*jnode {
	var out []*jnode
	if n == nil || n.kind != '{' {
		return nil
	}
	for _, m := range n.members {
		if strings.EqualFold(m.name, name) {
			out = append(out, m.val)
		}
	}
	return out
}

// listedTools returns every tool name any lenient reader could take from
// the watched tools/list responses in data.
func listedTools(f *listFilter, data []byte) []string {
	root, ok := parseLenient(data)
	if !ok {
		return nil
	}
	msgs := []*jnode{root}
	if root.kind == '[' {
		msgs = root.elems
	}
	var names []string
	for _, msg := range msgs {
		watched := false
		for _, id := range msg.all("id") {
			if (id.kind == '"' || id.kind == '0') && f.ids[idKey(id.raw)] {
				watched = true
			}
		}
		if !watched {
			continue
		}
		for _, res := range msg.all("result") {
			for _, tools := range res.all("tools") {
				for _, entry := range tools.elems {
					for _, name := range entry.all("name") {
						names = append(names, name.str)
					}
				}
			}
		}
	}
	return names
}

// strictlyValid reports valid UTF-8 JSON without members repeated (under
// EqualFold) in any object.
func strictlyValid(data []byte) bool {
	if !utf8.Valid(data) || !json.Valid(data) {
		return false
	}
	n, ok := parseLenient(data)
	return ok && noRepeats(n)
}

func noRepeats(n *jnode) bool {
	for i, m := range n.members {
		for _, o := range n.members[:i] {
			if strings.EqualFold(m.name, o.name) {
				return false
			}
		}
		if !noRepeats(m.val) {
			return false
		}
	}
	for _, e := range n.elems {
		if !noRepeats(e) {
			return false
		}
	}
	return true
}

// toolsNotArray reports a watched response whose tools member is not an
// array: the filter refuses it, as it may.
func toolsNotArray(f *listFilter, data []byte) bool {
	root, ok := parseLenient(data)
	if !ok {
		return false
	}
	msgs := []*jnode{root}
	if root.kind == '[' {
		msgs = root.elems
	}
	for _, msg := range msgs {
		for _, id := range msg.all("id") {
			if (id.kind == '"' || id.kind == '0') && f.ids[idKey(id.raw)] {
				for _, res := range msg.all("result") {
					for _, tools := range res.all("tools") {
						if tools.kind != '[' {
							return true
						}
					}
				}
			}
		}
	}
	return false
}

// sseBlock is one event of a stream as a client parses it (per the HTML
// SSE rules): the non-data lines as written and the joined data.
type sseBlock struct {
	other   []string
	data    []byte
	hasData bool
}

// parseSSE is a reference SSE parser. Like lenient clients, it also
// dispatches an event left unterminated at the end of the stream.
func parseSSE(stream []byte) []sseBlock {
	stream = bytes.TrimPrefix(stream, bom)
	var blocks []sseBlock
	var cur sseBlock
	var data [][]byte
	lines := 0
	dispatch := func() {
		if lines > 0 {
			if cur.hasData {
				cur.data = bytes.Join(data, []byte{'\n'})
			}
			blocks = append(blocks, cur)
		}
		cur, data, lines = sseBlock{}, nil, 0
	}
	for len(stream) > 0 {
		k := bytes.IndexAny(stream, "\r\n")
		var line []byte
		if k < 0 {
			line, stream = stream, nil
		} else {
			line = stream[:k]
			if stream[k] == '\r' && k+1 < len(stream) && stream[k+1] == '\n' {
				k++
			}
			stream = stream[k+1:]
		}
		if len(line) == 0 {
			dispatch()
			continue
		}
		lines++
		name, value, _ := bytes.Cut(line, []byte{':'})
		if len(line) > 0 && line[0] != ':' && string(name) == "data" {
			value = bytes.TrimPrefix(value, []byte{' '})
			data = append(data, value)
			cur.hasData = true
			continue
		}
		cur.other = append(cur.other, string(line))
	}
	dispatch()
	return blocks
}

func fuzzFilter() *listFilter {
	return &listFilter{
		ids:   map[string]bool{idKey([]byte("1")): true, idKey([]byte(`"L"`)): true},
		allow: func(tool string) bool { return tool == "ok" || tool == "fine" },
	}
}

func checkNoForbidden(t *testing.T, f *listFilter, where string, data []byte) {
	t.Helper()
	for _, name := range listedTools(f, data) {
		if !f.allow(name) {
			t.Fatalf("%s lists forbidden tool %q: %q", where, name, data)
		}
	}
}

// FuzzToolsListFilter checks the tools/list filter on both transports. The
// invariants: no output, read by a lenient reference reader, lists a tool
// the token may not call in a watched response; every event keeps its
// non-data lines; an event whose data was strictly valid JSON still
// carries valid JSON.
func FuzzToolsListFilter(f *testing.F) {
	resp := `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"ok"},{"name":"bad"}]}}`
	for _, seed := range []string{
		"event: message\nid: s_1\ndata: " + resp + "\n\n",
		"data: " + resp + "\r\n\r\n: c\rdata: {\"id\":\"L\",\"result\":{\"TOOLS\":[{\"Name\":\"bad\"}]}}\r\r",
		"data: {\"id\":1,\n" + "data: \"result\":{\"tools\":[{\"name\":\"bad\"}]}}\n\n",
		"data: [{\"id\":2,\"result\":{}}," + resp + "]\n\n",
		"data: {\"id\":1,\"result\":{\"tools\":[],\"tools\":[{\"name\":\"bad\"}]}}\n\n",
		"data: {\"id\":1.0,\"result\":{\"tool\u017f\":[{\"name\":\"bad\"}]}}\n\n",
		"\xEF\xBB\xBFdata: " + resp + "\n",
		"event: prime\nid: x\ndata: \n\n",
		resp,
	} {
		f.Add([]byte(seed), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		flt := fuzzFilter()

		// application/json: the whole body is one payload.
		if out, _, err := flt.filterPayload(in); err == nil {
			checkNoForbidden(t, flt, "JSON output", out)
			if !json.Valid(out) {
				t.Fatalf("JSON output is not JSON: %q -> %q", in, out)
			}
		}

		// text/event-stream, fed in chunks.
		var out bytes.Buffer
		s := newSSERewriter(flt, &out, func() {})
		n := int(chunk%64) + 1
		for rest := in; len(rest) > 0; {
			k := min(n, len(rest))
			if _, err := s.Write(rest[:k]); err != nil {
				t.Fatalf("write: %v", err)
			}
			rest = rest[k:]
		}
		s.finish()
		inBlocks, outBlocks := parseSSE(in), parseSSE(out.Bytes())
		for _, b := range outBlocks {
			if b.hasData {
				checkNoForbidden(t, flt, "event", b.data)
			}
		}
		if len(inBlocks) != len(outBlocks) {
			t.Fatalf("%d events in, %d out:\nin  %q\nout %q", len(inBlocks), len(outBlocks), in, out.Bytes())
		}
		for i, ib := range inBlocks {
			ob := outBlocks[i]
			var kept []string
			for _, l := range ob.other {
				if !strings.HasPrefix(l, ": mcpauth") {
					kept = append(kept, l)
				}
			}
			if strings.Join(kept, "\n") != strings.Join(ib.other, "\n") {
				t.Fatalf("event %d lines changed: %q -> %q", i, ib.other, ob.other)
			}
			if ib.hasData && strictlyValid(ib.data) && !toolsNotArray(flt, ib.data) {
				if !ob.hasData || !json.Valid(ob.data) {
					t.Fatalf("event %d: valid data %q became %q", i, ib.data, ob.data)
				}
			}
		}
	})
}

// FuzzInspectBody drives the whole middleware with a real token that may
// call search_customers and ping only. The invariant: whatever reaches the
// MCP server holds no tools/call, as read by the go-sdk's own decoder or by
// encoding/json (case-insensitive, last member wins) or by a reader that
// takes any member of a matching name, for any other tool.
func FuzzInspectBody(f *testing.F) {
	as := newTestAS(f)
	m, _ := newTestMiddleware(f, as, nil)
	token := "Bearer " + as.token(f, "crm:read", nil)
	var forwarded []byte
	h := m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		forwarded, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	for _, seed := range []string{
		callBody(1, "search_customers"),
		callBody(1, "delete_customer"),
		`[` + callBody(1, "ping") + `,` + callBody(2, "debug_dump") + `]`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ping","name":"debug_dump"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ping"},"Params":{"name":"debug_dump"}}`,
		`{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"Name":"debug_dump"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"debug\u005fdump"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
	} {
		f.Add([]byte(seed))
	}
	allowed := func(tool string) bool { return tool == "search_customers" || tool == "ping" }
	f.Fuzz(func(t *testing.T, body []byte) {
		forwarded = nil
		req := httptest.NewRequest(http.MethodPost, "/mcp/crm", bytes.NewReader(body))
		req.Header.Set("Authorization", token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if forwarded == nil {
			return
		}
		if !bytes.Equal(forwarded, body) {
			t.Fatalf("body changed on the way: %q -> %q", body, forwarded)
		}
		for _, tool := range calledTools(forwarded) {
			if !allowed(tool) {
				t.Fatalf("forwarded a call of %q: %q", tool, body)
			}
		}
	})
}

// calledTools lists every tool name any reader could find in a tools/call
// of body.
func calledTools(body []byte) []string {
	var elems []json.RawMessage
	if err := json.Unmarshal(body, &elems); err != nil {
		elems = []json.RawMessage{body}
	}
	var tools []string
	for _, e := range elems {
		// The go-sdk's decoder (case-sensitive).
		if msg, err := jsonrpc.DecodeMessage(e); err == nil {
			if r, ok := msg.(*jsonrpc.Request); ok && r.Method == "tools/call" {
				var p struct {
					Name string `json:"name"`
				}
				_ = json.Unmarshal(r.Params, &p)
				var pm map[string]any
				_ = json.Unmarshal(r.Params, &pm)
				tools = append(tools, p.Name, asString(pm["name"]))
			}
		}
		// encoding/json: case-insensitive, last wins.
		var m struct {
			Method string
			Params struct{ Name string }
		}
		if json.Unmarshal(e, &m) == nil && m.Method == "tools/call" {
			tools = append(tools, m.Params.Name)
		}
		// Any member of a matching name.
		if n, ok := parseLenient(e); ok {
			for _, method := range n.all("method") {
				if method.str != "tools/call" {
					continue
				}
				for _, p := range n.all("params") {
					for _, name := range p.all("name") {
						tools = append(tools, name.str)
					}
				}
			}
		}
	}
	var out []string
	for _, t := range tools {
		if t != "" {
			out = append(out, t)
		}
	}
	return out
}

func asString(v any) string {
	s, _ := v.(string)
	return s
}
