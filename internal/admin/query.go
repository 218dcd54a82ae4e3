package admin

import (
	"crypto/sha256"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/openxaa/xaa/internal/store"
)

// Query parameters are typed and closed: each endpoint lists the
// parameters it takes and their kind, an unknown or repeated parameter is
// a 400, and every value is checked against its kind before anything
// reads it. Sort keys come from a per-endpoint allowlist. Nothing parsed
// here ever becomes query text; values reach the store as typed fields.

// paramKind is the type of a query parameter.
type paramKind int

const (
	kindBool     paramKind = iota + 1 // true or false
	kindEnum                          // one of param.values
	kindGroup                         // a group name (store.CheckGroupName)
	kindUsername                      // a username (store.CheckUsername)
	kindID                            // an identifier (validID)
	kindURI                           // a resource or issuer URI, canonicalised (store.CanonicalResource)
	kindTime                          // an RFC 3339 time
	kindName                          // a stream or event-type name: 1-64 of a-z 0-9 . _ : -
	kindText                          // printable text without control characters
	kindPath                          // an absolute path on this server: /..., no "//", "\\" or dot segments
)

// param is one query parameter an endpoint takes.
type param struct {
	name   string
	kind   paramKind
	values []string // kindEnum
	doc    string
}

// querySpec is what a GET endpoint accepts in its query string.
type querySpec struct {
	list    string  // names the listing in cursors; "" for an endpoint without pages
	filters []param // typed filters
	sorts   []string
	// noSortDesc forbids descending order (a listing that only runs one
	// way, such as the audit trail by id).
	noSortDesc bool
}

// Paging limits.
const (
	defaultLimit = 50
	maxLimit     = 200
	// maxQueryLen bounds the raw query string before it is parsed.
	maxQueryLen = 4096
	maxValueLen = 1024
)

// query is a parsed, validated query string.
type query struct {
	values map[string]string // filters, canonical
	sort   string
	desc   bool
	limit  int
	after  *position // from a verified cursor
}

// reserved parameters every listing takes.
const (
	paramSort   = "sort"
	paramLimit  = "limit"
	paramCursor = "cursor"
)

// names returns every parameter the spec accepts, in a stable order.
func (q *querySpec) names() []string {
	var out []string
	for _, p := range q.filters {
		out = append(out, p.name)
	}
	if q.list != "" {
		if len(q.sorts) > 0 {
			out = append(out, paramSort)
		}
		out = append(out, paramLimit, paramCursor)
	}
	return out
}

// parse validates raw (a URL's RawQuery) against the spec. Cursors are
// opened with c; a cursor that does not verify or was issued for another
// listing, order or filter set is refused.
func (q *querySpec) parse(raw string, c *cursorCodec) (*query, error) {
	if len(raw) > maxQueryLen {
		return nil, badRequest("the query string is longer than %d bytes", maxQueryLen)
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, badRequest("the query string is not valid: %s", sentence(err))
	}
	out := &query{values: map[string]string{}, limit: defaultLimit}
	if len(q.sorts) > 0 {
		out.sort = q.sorts[0]
	}
	known := q.names()
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var cursor string
	for _, k := range keys {
		vs := vals[k]
		if !slices.Contains(known, k) {
			if len(known) == 0 {
				return nil, badRequest("unknown query parameter %s: this endpoint takes no query parameters", quote(k))
			}
			return nil, badRequest("unknown query parameter %s: this endpoint takes %s", quote(k), strings.Join(known, ", "))
		}
		if len(vs) != 1 {
			return nil, badRequest("query parameter %s is repeated; give it once", quote(k))
		}
		v := vs[0]
		if v == "" {
			return nil, badRequest("query parameter %s is empty; leave it out instead", quote(k))
		}
		if len(v) > maxValueLen || !utf8.ValidString(v) {
			return nil, badRequest("query parameter %s must be UTF-8 of at most %d bytes", quote(k), maxValueLen)
		}
		switch k {
		case paramSort:
			key, desc := strings.CutPrefix(v, "-")
			if !slices.Contains(q.sorts, key) || (desc && q.noSortDesc) {
				return nil, badRequest("sort %s is not allowed here; sort by %s", quote(v), q.sortChoices())
			}
			out.sort, out.desc = key, desc
		case paramLimit:
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxLimit || strconv.Itoa(n) != v {
				return nil, badRequest("limit must be a whole number from 1 to %d, got %s", maxLimit, quote(v))
			}
			out.limit = n
		case paramCursor:
			cursor = v
		default:
			p := q.filter(k)
			canon, err := p.check(v)
			if err != nil {
				return nil, err
			}
			out.values[k] = canon
		}
	}
	if cursor != "" {
		pos, err := c.open(cursor, q.list, out.sort, out.desc, out.filterHash())
		if err != nil {
			return nil, err
		}
		out.after = pos
	}
	return out, nil
}

func (q *querySpec) filter(name string) param {
	for _, p := range q.filters {
		if p.name == name {
			return p
		}
	}
	return param{}
}

func (q *querySpec) sortChoices() string {
	var out []string
	for _, s := range q.sorts {
		out = append(out, s)
		if !q.noSortDesc {
			out = append(out, "-"+s)
		}
	}
	return strings.Join(out, ", ")
}

// check validates v for p and returns its canonical form.
func (p param) check(v string) (string, error) {
	bad := func(what string) (string, error) {
		return "", badRequest("query parameter %s must be %s, got %s", quote(p.name), what, quote(v))
	}
	switch p.kind {
	case kindBool:
		if v != "true" && v != "false" {
			return bad("true or false")
		}
	case kindEnum:
		if !slices.Contains(p.values, v) {
			return bad("one of " + strings.Join(p.values, ", "))
		}
	case kindGroup:
		if store.CheckGroupName(v) != nil {
			return bad("a group name (lowercase letters, digits and . _ : -)")
		}
	case kindUsername:
		if store.CheckUsername(v) != nil {
			return bad("a username")
		}
	case kindID:
		if !validID(v) {
			return bad("an identifier: 1 to 255 letters, digits and - . _ ~ : / @ + = |")
		}
	case kindURI:
		c, err := store.CanonicalResource(v)
		if err != nil {
			return bad("an absolute https (or loopback http) URI")
		}
		return c, nil
	case kindTime:
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return bad("an RFC 3339 time such as 2026-01-02T15:04:05Z")
		}
		return t.UTC().Format(time.RFC3339Nano), nil
	case kindName:
		if !validName(v) {
			return bad("1 to 64 characters of a-z, 0-9, '.', '_', ':' and '-'")
		}
	case kindText:
		if strings.IndexFunc(v, unicode.IsControl) >= 0 {
			return bad("text without control characters")
		}
	case kindPath:
		if !validPath(v) {
			return bad("an absolute path on this server")
		}
	default:
		return "", fmt.Errorf("admin: parameter %s has no kind", p.name)
	}
	return v, nil
}

// filterHash binds a cursor to the filter values it was issued under.
func (q *query) filterHash() [8]byte {
	keys := make([]string, 0, len(q.values))
	for k := range q.values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%d:%s=%d:%s\n", len(k), k, len(q.values[k]), q.values[k])
	}
	var out [8]byte
	copy(out[:], h.Sum(nil))
	return out
}

// Typed accessors. Values were checked by parse, so conversions cannot
// fail.

func (q *query) str(name string) string { return q.values[name] }

func (q *query) tristate(name string) store.Tristate {
	switch q.values[name] {
	case "true":
		return store.Yes
	case "false":
		return store.No
	}
	return store.Any
}

func (q *query) time(name string) time.Time {
	v, ok := q.values[name]
	if !ok {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, v)
	return t
}

// validID accepts the identifiers the API names (client ids, subjects,
// token ids, connection ids): 1-255 characters of letters, digits and
// - . _ ~ : / @ + = | . Quotes, semicolons, brackets, spaces and the like
// never appear in an identifier this deployment issues, so a value
// holding one is refused rather than looked up.
func validID(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~:/@+=|", c) >= 0) {
			return false
		}
	}
	return true
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// quote echoes caller input in an error sentence: quoted, clipped, and
// with anything unprintable escaped.
func quote(s string) string { return strconv.QuoteToASCII(clip(s)) }

// validPath accepts an absolute path without a host, backslashes, dot
// segments or characters that need escaping, so a redirect to it stays on
// this origin.
func validPath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\?#%") {
		return false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	for i := 0; i < len(p); i++ {
		if p[i] <= 0x20 || p[i] >= 0x7f {
			return false
		}
	}
	return true
}
