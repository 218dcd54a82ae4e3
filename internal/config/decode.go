package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// maxFileSize caps the config file. Real files are a few KiB; the cap keeps
// a wrong path (a log file, a device) from being read whole.
const maxFileSize = 1 << 20

// errStrictOnly marks a problem that yaml's strict decoder found after the
// schema walk had passed the same file. It means the walk has a gap; the
// user still gets an error, but with the library's wording. The fuzz
// target fails on it.
var errStrictOnly = errors.New("config: found only by the strict decoder")

// parse decodes a config file's content on top of Default. name is the
// file's name for messages.
//
// Decoding runs twice. First the file is parsed into a yaml.Node tree and
// walked against Config's yaml tags, which yields messages with the file,
// line, column and dotted key path, and reports every problem at once.
// Only a file that passes the walk is then decoded by yaml's own Decoder
// with KnownFields(true), which fills in the values. The walk is the
// stricter of the two (it also refuses aliases, tags and yes/no booleans),
// so the second pass is a second line of defence rather than a source of
// messages.
func parse(name string, data []byte) (*Config, error) {
	if len(data) > maxFileSize {
		return nil, &Error{File: name, Msg: fmt.Sprintf("larger than %d bytes; is this the config file?", maxFileSize), Err: ErrTooLarge}
	}
	top, err := parseDocument(name, data)
	if err != nil {
		return nil, err
	}
	w := walker{file: name, sources: make(map[string]source)}
	w.walk(top, reflect.TypeFor[Config](), "")
	if err := w.errs.err(name); err != nil {
		return nil, err
	}

	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return nil, libraryError(name, err, errStrictOnly)
	}
	cfg.sources = w.sources
	return cfg, nil
}

// parseDocument parses data into a node tree and returns its top-level
// mapping. It refuses empty files and files with more than one document.
func parseDocument(name string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, emptyFile(name)
		}
		return nil, libraryError(name, err, nil)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, libraryError(name, err, nil)
	default:
		return nil, &Error{File: name, Line: next.Line, Column: next.Column, Err: ErrSyntax,
			Msg: `a second YAML document starts here; a config file holds exactly one, so remove this "---" or split the file`}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, emptyFile(name)
	}
	top := doc.Content[0]
	if top.Kind == yaml.ScalarNode && top.ShortTag() == "!!null" {
		return nil, emptyFile(name)
	}
	if top.Kind != yaml.MappingNode {
		return nil, &Error{File: name, Line: top.Line, Column: top.Column, Err: ErrSyntax,
			Msg: fmt.Sprintf(`expected a mapping of settings such as "database:" at the top level, got %s`, describeKind(top))}
	}
	return top, nil
}

func emptyFile(name string) error {
	return &Error{File: name, Err: ErrSyntax,
		Msg: "holds no settings (it is empty or only comments); fill it in from examples/config.yaml, or start without a config file to use the defaults"}
}

// libraryError turns an error from the yaml package into *Errors with the
// file name and, where the message has one, the line. also, if not nil, is
// joined into each error's kind.
func libraryError(file string, err error, also error) error {
	if te, ok := errors.AsType[*yaml.TypeError](err); ok {
		var l errorList
		for _, m := range te.Errors {
			l.add(lineError(file, m, ErrType, also))
		}
		return l.err(file)
	}
	return lineError(file, strings.TrimPrefix(err.Error(), "yaml: "), ErrSyntax, also)
}

// lineError parses yaml's "line N: msg" form.
func lineError(file, msg string, kind, also error) *Error {
	e := &Error{File: file, Msg: msg, Err: kind}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil && n > 0 {
				e.Line, e.Msg = n, after
			}
		}
	}
	if also != nil {
		e.Err = errors.Join(kind, also)
	}
	return e
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// walker checks a node tree against a Go type, by the types' yaml tags,
// and records where each value is.
type walker struct {
	file    string
	errs    errorList
	sources map[string]source
}

func (w *walker) fail(n *yaml.Node, path string, kind error, format string, args ...any) {
	w.errs.add(&Error{File: w.file, Line: n.Line, Column: n.Column, Path: path, Msg: fmt.Sprintf(format, args...), Err: kind})
}

func (w *walker) record(n *yaml.Node, path string) {
	w.sources[path] = source{file: w.file, line: n.Line, col: n.Column}
}

// walk checks n against t. A null value is always accepted: like yaml, it
// leaves the default in place, so an emptied or commented-out section
// means "use the defaults".
func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	if !w.plain(n, path) {
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	w.record(n, path)

	if reflect.PointerTo(t).Implements(unmarshalerType) {
		u := reflect.New(t).Interface().(yaml.Unmarshaler)
		if err := u.UnmarshalYAML(n); err != nil {
			w.fail(n, path, ErrType, "%v", err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		w.walk(n, t.Elem(), path)
	case reflect.Struct:
		if w.expect(n, yaml.MappingNode, path, "a mapping of settings") {
			w.walkStruct(n, t, path)
		}
	case reflect.Map:
		if w.expect(n, yaml.MappingNode, path, "a mapping") {
			w.walkMap(n, t, path)
		}
	case reflect.Slice:
		if w.expect(n, yaml.SequenceNode, path, "a list") {
			for i, c := range n.Content {
				w.walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
			}
		}
	case reflect.String:
		// yaml reads any scalar into a string ("8080" and 8080 alike), which
		// is what a string setting wants; Validate checks the content.
		w.expect(n, yaml.ScalarNode, path, "a string")
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			// yaml would also take yes/no/on/off; this config does not.
			w.fail(n, path, ErrType, "expected true or false, got %s", describeKind(n))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			w.fail(n, path, ErrType, "expected an integer, got %s", describeKind(n))
		} else if err := n.Decode(reflect.New(t).Interface()); err != nil {
			w.fail(n, path, ErrType, "the integer %s is out of range", quote(n.Value))
		}
	case reflect.Float32, reflect.Float64:
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!float" && n.ShortTag() != "!!int") {
			w.fail(n, path, ErrType, "expected a number, got %s", describeKind(n))
		} else if err := n.Decode(reflect.New(t).Interface()); err != nil {
			w.fail(n, path, ErrType, "the number %s is out of range", quote(n.Value))
		}
	default:
		// The schema test walks every field type, so this means a new field
		// was added without the walker learning its type.
		w.fail(n, path, ErrType, "internal error: setting of unsupported type %s", t)
	}
}

// plain refuses the YAML features this config does not use: aliases and
// anchors' references, merge keys and explicit tags other than !!str. A
// config is read at review time; every value should be visible where it
// applies.
func (w *walker) plain(n *yaml.Node, path string) bool {
	switch {
	case n.Kind == yaml.AliasNode:
		w.fail(n, path, ErrSyntax, "YAML aliases (*%s) are not supported; write the value out in full", truncate(n.Value))
		return false
	case n.Style&yaml.TaggedStyle != 0 && (n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str"):
		w.fail(n, path, ErrSyntax, "explicit YAML tags (%s) are not supported; remove the tag", quote(n.Tag))
		return false
	}
	return true
}

// expect reports whether n is of kind k, and records an error if not.
func (w *walker) expect(n *yaml.Node, k yaml.Kind, path, want string) bool {
	if n.Kind == k {
		return true
	}
	got := describeKind(n)
	if n.Kind == yaml.ScalarNode {
		// Don't repeat a scalar that landed where a section or list belongs:
		// it may be a secret one indentation level off.
		got = "a single value"
	}
	w.fail(n, path, ErrType, "expected %s, got %s", want, got)
	return false
}

// field is one key of a struct's mapping.
type field struct {
	name  string
	index int // in the struct
	typ   reflect.Type
}

// structFields lists t's keys in declaration order, as yaml names them.
func structFields(t reflect.Type) []field {
	var fs []field
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = strings.ToLower(f.Name)
		}
		fs = append(fs, field{name: name, index: i, typ: f.Type})
	}
	return fs
}

func (w *walker) walkStruct(n *yaml.Node, t reflect.Type, path string) {
	fields := structFields(t)
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name, ok := w.key(k, path, seen)
		if !ok {
			continue
		}
		j := fieldIndex(fields, name)
		if j < 0 {
			w.fail(k, joinPath(path, truncate(name)), ErrUnknownKey, "unknown key%s", unknownKeyHint(name, fields, path))
			continue
		}
		sub := joinPath(path, name)
		if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
			// "url:" with nothing after it: point Validate at the key.
			w.record(k, sub)
		}
		w.walk(v, fields[j].typ, sub)
	}
}

func (w *walker) walkMap(n *yaml.Node, t reflect.Type, path string) {
	if t.Key().Kind() != reflect.String {
		w.fail(n, path, ErrType, "internal error: map setting with %s keys", t.Key())
		return
	}
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name, ok := w.key(k, path, seen)
		if !ok {
			continue
		}
		w.walk(v, t.Elem(), joinMapKey(path, name))
	}
}

// key checks a mapping key and returns its name. It refuses complex keys,
// merge keys and duplicates.
func (w *walker) key(k *yaml.Node, path string, seen map[string]*yaml.Node) (string, bool) {
	if !w.plain(k, path) {
		return "", false
	}
	if k.Kind != yaml.ScalarNode {
		w.fail(k, path, ErrSyntax, "expected a key name, got %s", describeKind(k))
		return "", false
	}
	if k.ShortTag() == "!!merge" {
		w.fail(k, path, ErrSyntax, "merge keys (<<) are not supported; write the keys out in full")
		return "", false
	}
	name := k.Value
	if first, dup := seen[name]; dup {
		w.fail(k, joinPath(path, truncate(name)), ErrDuplicateKey, "duplicate key; it is already set on line %d", first.Line)
		return "", false
	}
	seen[name] = k
	return name, true
}

func fieldIndex(fields []field, name string) int {
	for i, f := range fields {
		if f.name == name {
			return i
		}
	}
	return -1
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// joinMapKey writes a map entry's path as path.key when key is a plain
// word, and as path["key"] otherwise (URLs, keys with dots).
func joinMapKey(path, key string) string {
	plainWord := key != ""
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			plainWord = false
			break
		}
	}
	if plainWord {
		return joinPath(path, key)
	}
	return path + "[" + quote(key) + "]"
}

// truncate shortens a user-supplied key for display in a path.
func truncate(s string) string {
	n := 0
	for i := range s {
		if n == maxQuoted {
			return s[:i] + "..."
		}
		n++
	}
	return s
}

// unknownKeyHint suggests the key the user probably meant or, failing
// that, lists the valid ones.
func unknownKeyHint(name string, fields []field, path string) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	if s := suggest(name, names); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	where := "here"
	if path == "" {
		where = "at the top level"
	} else {
		where = "in " + path
	}
	return fmt.Sprintf("; valid keys %s are: %s", where, strings.Join(names, ", "))
}

// suggest returns the known key closest to key: one that differs only in
// case, underscores or dashes (maxOpenConns, max-open-conns), else one
// within edit distance 2 (transpositions count as one edit), else "".
func suggest(key string, known []string) string {
	norm := func(s string) string {
		return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s))
	}
	nk := norm(key)
	for _, k := range known {
		if norm(k) == nk {
			return k
		}
	}
	lower := strings.ToLower(key)
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(lower, k, bestDist); d < bestDist && d < utf8.RuneCountInString(key) {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the optimal-string-alignment distance between a and b
// (Levenshtein plus adjacent transpositions). It returns limit as soon as
// the distance is known to be at least limit, so a huge key costs nothing.
func editDistance(a, b string, limit int) int {
	ra, rb := []rune(a), []rune(b)
	if d := len(ra) - len(rb); d >= limit || -d >= limit {
		return limit
	}
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return min(prev[len(rb)], limit)
}
