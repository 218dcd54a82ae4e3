package mcpauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The middleware reads JSON written by others and must see exactly what the
// MCP server behind it sees. Two parsers may disagree on an object with
// duplicate member names (encoding/json keeps the last, others the first)
// or on names that differ only in case (encoding/json matches struct fields
// case-insensitively, even folding "ſ" to "S"). So every object the
// middleware reads is scanned member by member: names are compared folded,
// a fold collision is an error, and a member is found by its folded name.

var (
	errNotJSON      = errors.New("not valid JSON")
	errNotObject    = errors.New("not a JSON object")
	errDuplicateKey = errors.New("duplicate member name (or names differing only in case)")
)

// member is one member of a JSON object in document order; raw is its value
// exactly as written.
type member struct {
	name, fold string
	rawName    []byte // the name literal with its quotes, as written
	raw        []byte
}

// object is the scanned members of one JSON object.
type object []member

// get returns the value of the member whose folded name is fold.
func (o object) get(fold string) ([]byte, bool) {
	for _, m := range o {
		if m.fold == fold {
			return m.raw, true
		}
	}
	return nil, false
}

// scanObject returns the members of the JSON object data, which must already
// be known to be valid JSON (json.Valid); anything else is an error, never
// a panic. Two members whose names fold equal are an error.
func scanObject(data []byte) (object, error) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, errNotObject
	}
	i = skipSpace(data, i+1)
	var members object
	var seen map[string]bool
	if i < len(data) && data[i] == '}' {
		if skipSpace(data, i+1) != len(data) {
			return nil, errNotJSON
		}
		return members, nil
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return nil, errNotJSON
		}
		nameStart := i
		end, err := skipString(data, i)
		if err != nil {
			return nil, err
		}
		name, ok := decodeString(data[i:end])
		if !ok {
			return nil, errNotJSON
		}
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return nil, errNotJSON
		}
		i = skipSpace(data, i+1)
		vend, err := skipValue(data, i)
		if err != nil {
			return nil, err
		}
		fold := foldName(name)
		if seen != nil {
			if seen[fold] {
				return nil, errDuplicateKey
			}
			seen[fold] = true
		} else {
			for _, m := range members {
				if m.fold == fold {
					return nil, errDuplicateKey
				}
			}
			if len(members) == 16 { // past a few members, a linear check would be quadratic
				seen = make(map[string]bool, 64)
				for _, m := range members {
					seen[m.fold] = true
				}
				seen[fold] = true
			}
		}
		members = append(members, member{name: name, fold: fold, rawName: data[nameStart:end:end], raw: data[i:vend:vend]})
		i = skipSpace(data, vend)
		if i >= len(data) {
			return nil, errNotJSON
		}
		if data[i] == '}' {
			if skipSpace(data, i+1) != len(data) {
				return nil, errNotJSON
			}
			return members, nil
		}
		if data[i] != ',' {
			return nil, errNotJSON
		}
		i = skipSpace(data, i+1)
	}
}

// scanArray returns the elements of the JSON array data (valid JSON).
func scanArray(data []byte) ([][]byte, error) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return nil, errNotJSON
	}
	i = skipSpace(data, i+1)
	var elems [][]byte
	if i < len(data) && data[i] == ']' {
		if skipSpace(data, i+1) != len(data) {
			return nil, errNotJSON
		}
		return elems, nil
	}
	for {
		end, err := skipValue(data, i)
		if err != nil {
			return nil, err
		}
		elems = append(elems, data[i:end:end])
		i = skipSpace(data, end)
		if i >= len(data) {
			return nil, errNotJSON
		}
		if data[i] == ']' {
			if skipSpace(data, i+1) != len(data) {
				return nil, errNotJSON
			}
			return elems, nil
		}
		if data[i] != ',' {
			return nil, errNotJSON
		}
		i = skipSpace(data, i+1)
	}
}

// checkStrictObject reports whether data is one valid JSON object whose
// members, at every depth, have names that do not fold equal.
func checkStrictObject(data []byte) error {
	if !json.Valid(data) || !utf8.Valid(data) {
		return errNotJSON
	}
	if _, err := scanObject(data); err != nil {
		return err
	}
	return checkNested(data, 0)
}

// checkNested walks every object and array inside the valid JSON value data.
func checkNested(data []byte, depth int) error {
	if depth > 64 {
		return errors.New("JSON nested too deeply")
	}
	v := bytes.TrimSpace(data)
	if len(v) == 0 {
		return errNotJSON
	}
	switch v[0] {
	case '{':
		o, err := scanObject(v)
		if err != nil {
			return err
		}
		for _, m := range o {
			if err := checkNested(m.raw, depth+1); err != nil {
				return err
			}
		}
	case '[':
		elems, err := scanArray(v)
		if err != nil {
			return err
		}
		for _, e := range elems {
			if err := checkNested(e, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the string starting at data[i].
func skipString(data []byte, i int) (int, error) {
	if i >= len(data) || data[i] != '"' {
		return 0, errNotJSON
	}
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, errNotJSON
}

// skipValue returns the index just past the JSON value starting at data[i].
func skipValue(data []byte, i int) (int, error) {
	if i >= len(data) {
		return 0, errNotJSON
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				end, err := skipString(data, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errNotJSON
	}
	j := i
	for j < len(data) {
		switch data[j] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			if j == i {
				return 0, errNotJSON
			}
			return j, nil
		}
		j++
	}
	if j == i {
		return 0, errNotJSON
	}
	return j, nil
}

// decodeString decodes the JSON string literal raw.
func decodeString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// foldName maps names that strings.EqualFold (and so encoding/json's field
// matching) considers equal to one string: every rune becomes the least rune
// of its simple case-folding orbit.
func foldName(s string) string {
	ascii, lower := true, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
		lower = lower || ('a' <= c && c <= 'z')
	}
	if ascii {
		if !lower {
			return s
		}
		return strings.ToUpper(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}

// Folded names of the members the middleware reads.
const (
	keyJSONRPC = "JSONRPC"
	keyID      = "ID"
	keyMethod  = "METHOD"
	keyParams  = "PARAMS"
	keyName    = "NAME"
	keyResult  = "RESULT"
	keyError   = "ERROR"
	keyTools   = "TOOLS"
)
