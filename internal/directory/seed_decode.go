package directory

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// Seed decoding: the YAML is parsed into a node tree and walked against the
// Seed types by their yaml tags, filling in values as it goes. Walking the
// nodes (instead of yaml.Decoder.KnownFields) gives every problem a file,
// line, column and dotted path, reports all of them at once, and refuses
// what a reviewed file should not hold: duplicate keys, aliases, merge keys,
// custom tags, several documents. Internal/config does the same for the
// config file; the seed's schema is different enough that sharing the
// walker would cost more than this copy.

// Kinds of seed error, matched with errors.Is on a *SeedError.
var (
	ErrSeedSyntax     = errors.New("seed: syntax error")
	ErrSeedUnknownKey = errors.New("seed: unknown key")
	ErrSeedType       = errors.New("seed: wrong type")
	ErrSeedInvalid    = errors.New("seed: invalid value")
	// ErrSeedReference means a name refers to nothing declared in the
	// file: a group, app, authorization server, resource or scope.
	ErrSeedReference = errors.New("seed: dangling reference")
)

// SeedError is one problem in a seed file.
type SeedError struct {
	File         string
	Line, Column int    // 1-based; 0 when unknown
	Path         string // e.g. users[2].groups[0]
	Msg          string
	Err          error // the kind
}

func (e *SeedError) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d:%d: ", e.File, e.Line, e.Column)
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d:%d: ", e.Line, e.Column)
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *SeedError) Unwrap() error { return e.Err }

// maxSeedErrors bounds one report: past it the file is probably not a seed.
const maxSeedErrors = 20

// MaxSeedSize caps a seed file (a few thousand users fit comfortably).
const MaxSeedSize = 4 << 20

type position struct{ line, col int }

// problems collects errors, located by path.
type problems struct {
	file    string
	pos     map[string]position
	errs    []error
	dropped int
}

func (p *problems) at(path string, kind error, format string, args ...any) {
	if len(p.errs) >= maxSeedErrors {
		p.dropped++
		return
	}
	e := &SeedError{File: p.file, Path: path, Msg: fmt.Sprintf(format, args...), Err: kind}
	// A value's own position, else its closest recorded ancestor's.
	for q := path; ; {
		if pos, ok := p.pos[q]; ok {
			e.Line, e.Column = pos.line, pos.col
			break
		}
		i := strings.LastIndexAny(q, ".[")
		if i <= 0 {
			break
		}
		q = q[:i]
	}
	p.errs = append(p.errs, e)
}

func (p *problems) err() error {
	if p.dropped > 0 {
		p.errs = append(p.errs, &SeedError{File: p.file, Msg: fmt.Sprintf("%d more problems not shown", p.dropped), Err: ErrSeedInvalid})
	}
	return errors.Join(p.errs...)
}

// decodeSeed parses data into s, recording value positions in p.pos.
func decodeSeed(p *problems, data []byte, s *Seed) {
	if len(data) > MaxSeedSize {
		p.at("", ErrSeedSyntax, "larger than %d bytes; is this a seed file?", MaxSeedSize)
		return
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.at("", ErrSeedSyntax, "empty; a seed describes users, groups, apps, auth_servers, resources and connections")
			return
		}
		p.errs = append(p.errs, yamlError(p.file, err))
		return
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		p.errs = append(p.errs, yamlError(p.file, err))
		return
	default:
		p.errs = append(p.errs, &SeedError{File: p.file, Line: next.Line, Column: next.Column, Err: ErrSeedSyntax,
			Msg: "a second YAML document starts here; a seed file holds exactly one"})
		return
	}
	if len(doc.Content) != 1 || (doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].ShortTag() == "!!null") {
		p.at("", ErrSeedSyntax, "holds nothing but comments")
		return
	}
	w := walker{p: p}
	w.walk(doc.Content[0], reflect.ValueOf(s).Elem(), "")
}

// yamlError turns a parse error ("yaml: line N: msg") into a *SeedError.
func yamlError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &SeedError{File: file, Msg: msg, Err: ErrSeedSyntax}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil && n > 0 {
				e.Line, e.Msg = n, after
			}
		}
	}
	return e
}

type walker struct{ p *problems }

func (w *walker) fail(n *yaml.Node, path string, kind error, format string, args ...any) {
	w.p.pos[path] = position{n.Line, n.Column}
	w.p.at(path, kind, format, args...)
}

// walk decodes n into v. A null leaves v at its zero value.
func (w *walker) walk(n *yaml.Node, v reflect.Value, path string) {
	switch {
	case n.Kind == yaml.AliasNode:
		w.fail(n, path, ErrSeedSyntax, "YAML aliases are not supported; write the value out")
		return
	case n.Style&yaml.TaggedStyle != 0 && !(n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str"):
		w.fail(n, path, ErrSeedSyntax, "explicit YAML tags (%s) are not supported", n.Tag)
		return
	}
	w.p.pos[path] = position{n.Line, n.Column}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	t := v.Type()
	switch {
	case t == reflect.TypeFor[time.Duration]():
		if !w.scalar(n, path, "a duration such as 300s or 10m") {
			return
		}
		d, err := time.ParseDuration(n.Value)
		if err != nil {
			w.fail(n, path, ErrSeedType, "expected a duration with a unit, such as 300s or 10m, got %s", quote(n.Value))
			return
		}
		v.SetInt(int64(d))
		return
	case t == reflect.TypeFor[time.Time]():
		if !w.scalar(n, path, "an RFC 3339 time such as 2027-01-31T00:00:00Z") {
			return
		}
		tm, err := time.Parse(time.RFC3339, n.Value)
		if err != nil {
			w.fail(n, path, ErrSeedType, "expected an RFC 3339 time such as 2027-01-31T00:00:00Z, got %s", quote(n.Value))
			return
		}
		v.Set(reflect.ValueOf(tm.UTC()))
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		e := reflect.New(t.Elem())
		w.walk(n, e.Elem(), path)
		v.Set(e)
	case reflect.Struct:
		if w.expect(n, yaml.MappingNode, path, "a mapping") {
			w.walkStruct(n, v, path)
		}
	case reflect.Map:
		if w.expect(n, yaml.MappingNode, path, "a mapping") {
			m := reflect.MakeMapWithSize(t, len(n.Content)/2)
			seen := map[string]int{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, ok := w.key(n.Content[i], path, seen)
				if !ok {
					continue
				}
				e := reflect.New(t.Elem()).Elem()
				w.walk(n.Content[i+1], e, joinKey(path, k))
				m.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), e)
			}
			v.Set(m)
		}
	case reflect.Slice:
		if w.expect(n, yaml.SequenceNode, path, "a list") {
			s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
			for i, c := range n.Content {
				w.walk(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
			}
			v.Set(s)
		}
	case reflect.String:
		if w.scalar(n, path, "a string") {
			switch n.ShortTag() {
			case "!!str", "!!int", "!!float", "!!timestamp":
				v.SetString(n.Value)
			default:
				w.fail(n, path, ErrSeedType, "expected a string, got %s; quote it if you mean the text", quote(n.Value))
			}
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			w.fail(n, path, ErrSeedType, "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(strings.EqualFold(n.Value, "true"))
	default:
		w.fail(n, path, ErrSeedType, "internal error: unsupported seed field type %s", t)
	}
}

func (w *walker) scalar(n *yaml.Node, path, want string) bool {
	return w.expect(n, yaml.ScalarNode, path, want)
}

func (w *walker) expect(n *yaml.Node, k yaml.Kind, path, want string) bool {
	if n.Kind == k {
		return true
	}
	w.fail(n, path, ErrSeedType, "expected %s, got %s", want, describe(n))
	return false
}

// key checks a mapping key: a plain scalar, not a merge key, not repeated.
func (w *walker) key(k *yaml.Node, path string, seen map[string]int) (string, bool) {
	switch {
	case k.Kind == yaml.AliasNode:
		w.fail(k, path, ErrSeedSyntax, "YAML aliases are not supported as keys")
		return "", false
	case k.Kind != yaml.ScalarNode:
		w.fail(k, path, ErrSeedSyntax, "expected a key name, got %s", describe(k))
		return "", false
	case k.ShortTag() == "!!merge":
		w.fail(k, path, ErrSeedSyntax, "merge keys (<<) are not supported; write the keys out")
		return "", false
	case k.Style&yaml.TaggedStyle != 0 && k.ShortTag() != "!!str":
		w.fail(k, path, ErrSeedSyntax, "explicit YAML tags (%s) are not supported", k.Tag)
		return "", false
	}
	if line, dup := seen[k.Value]; dup {
		w.fail(k, joinKey(path, k.Value), ErrSeedSyntax, "duplicate key; it is already set on line %d", line)
		return "", false
	}
	seen[k.Value] = k.Line
	return k.Value, true
}

func (w *walker) walkStruct(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	var names []string
	index := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		names = append(names, name)
		index[name] = i
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, ok := w.key(n.Content[i], path, seen)
		if !ok {
			continue
		}
		j, known := index[k]
		if !known {
			hint := suggest(k, names)
			if hint != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", hint)
			} else {
				hint = "; valid keys here are: " + strings.Join(names, ", ")
			}
			w.fail(n.Content[i], joinKey(path, k), ErrSeedUnknownKey, "unknown key%s", hint)
			continue
		}
		w.walk(n.Content[i+1], v.Field(j), joinKey(path, k))
	}
}

// joinKey writes path.key for plain words and path["key"] otherwise (scopes
// such as files:write, URLs).
func joinKey(path, key string) string {
	plain := key != ""
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			plain = false
			break
		}
	}
	switch {
	case plain && path == "":
		return key
	case plain:
		return path + "." + key
	default:
		return path + "[" + quote(key) + "]"
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return quote(n.Value)
}

// quote shows user text in a message, shortened.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && s[cut]&0xc0 == 0x80 {
			cut--
		}
		s = s[:cut] + "..."
	}
	return strconv.Quote(s)
}

// suggest returns the known key closest to key (same letters ignoring
// case, "_" and "-"; or one edit or transposition away), or "".
func suggest(key string, known []string) string {
	norm := func(s string) string { return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s)) }
	for _, k := range known {
		if norm(k) == norm(key) {
			return k
		}
	}
	for _, k := range known {
		if closeEnough(strings.ToLower(key), k) {
			return k
		}
	}
	return ""
}

// closeEnough reports whether a and b differ by at most one insertion,
// deletion, substitution or adjacent transposition.
func closeEnough(a, b string) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	if len(b)-len(a) > 1 || len(a) < 3 {
		return false
	}
	i := 0
	for i < len(a) && a[i] == b[i] {
		i++
	}
	if i == len(a) {
		return true
	}
	if len(a) == len(b) {
		if a[i+1:] == b[i+1:] {
			return true // substitution
		}
		return i+1 < len(a) && a[i] == b[i+1] && a[i+1] == b[i] && a[i+2:] == b[i+2:] // transposition
	}
	return a[i:] == b[i+1:] // insertion
}
