package jose

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxJSONDepth bounds nesting in headers, payloads and JWK sets. Real claims
// nest two or three levels (act, cnf, authorization_details).
const maxJSONDepth = 32

// member is one top-level member of a JSON object, in document order. raw is
// the member's value exactly as it appears in the document.
type member struct {
	name string
	raw  json.RawMessage
}

// scanObject checks that data is exactly one JSON object whose member names
// are unique at every depth, and returns its top-level members.
//
// encoding/json keeps the last of duplicated members while other parsers
// keep the first, so a duplicate lets two parsers see two different tokens.
// Names that differ only in case count as duplicates too, because
// encoding/json matches struct fields case-insensitively: {"scope":"read",
// "SCOPE":"admin"} would decode into a Scope field as "admin".
//
// The encoding/json/v2 package rejects duplicates by itself, but in Go 1.26
// it still needs GOEXPERIMENT=jsonv2, so this is a token-level scan.
func scanObject(data []byte) ([]member, error) {
	if !utf8.Valid(data) {
		return nil, reject(ErrMalformed, "JSON is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, rejectf(ErrMalformed, "invalid JSON: %v", err)
	}
	if tok != json.Delim('{') {
		return nil, reject(ErrMalformed, "JSON is not an object")
	}
	var members []member
	seen := make(map[string]string)
	for dec.More() {
		name, err := objectKey(dec, seen)
		if err != nil {
			return nil, err
		}
		// The value starts after the colon, which the decoder consumes
		// only with the next token; trim it and any whitespace around it.
		start := dec.InputOffset()
		if err := skipValue(dec, 1); err != nil {
			return nil, err
		}
		end := dec.InputOffset()
		raw := bytes.TrimLeft(data[start:end], " \t\r\n:")
		// Cap the capacity so that appending to one member's value can
		// never overwrite the next member in the shared buffer.
		members = append(members, member{name: name, raw: raw[:len(raw):len(raw)]})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, rejectf(ErrMalformed, "invalid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, reject(ErrMalformed, "data after the JSON object")
	}
	return members, nil
}

// objectKey reads a member name and records it in seen (folded name ->
// first spelling), rejecting repeats.
func objectKey(dec *json.Decoder, seen map[string]string) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", rejectf(ErrMalformed, "invalid JSON: %v", err)
	}
	name, ok := tok.(string)
	if !ok { // unreachable: the decoder only returns strings in key position
		return "", reject(ErrMalformed, "invalid JSON: object key is not a string")
	}
	key := foldName(name)
	if first, dup := seen[key]; dup {
		if first == name {
			return "", rejectf(ErrDuplicateMember, "member %s appears twice", quote(name))
		}
		return "", rejectf(ErrDuplicateMember, "members %s and %s differ only in case", quote(first), quote(name))
	}
	seen[key] = name
	return name, nil
}

// skipValue consumes one JSON value, checking nested objects for duplicate
// member names.
func skipValue(dec *json.Decoder, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return rejectf(ErrMalformed, "invalid JSON: %v", err)
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar, already validated by the decoder
	}
	if depth >= maxJSONDepth {
		return rejectf(ErrMalformed, "JSON nested deeper than %d levels", maxJSONDepth)
	}
	switch delim {
	case '{':
		seen := make(map[string]string)
		for dec.More() {
			if _, err := objectKey(dec, seen); err != nil {
				return err
			}
			if err := skipValue(dec, depth+1); err != nil {
				return err
			}
		}
	case '[':
		for dec.More() {
			if err := skipValue(dec, depth+1); err != nil {
				return err
			}
		}
	default: // unreachable: closing delimiters end the loops above
		return reject(ErrMalformed, "invalid JSON: unexpected delimiter")
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return rejectf(ErrMalformed, "invalid JSON: %v", err)
	}
	return nil
}

// foldName maps names that bytes.EqualFold (and so encoding/json's field
// matching) considers equal to the same string: every rune becomes the
// smallest rune of its simple case-folding orbit.
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
	if ascii { // the least rune of an ASCII letter's orbit is its upper case
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

// jsonString decodes raw if it is a JSON string. A JSON null is not a string
// (json.Unmarshal would silently leave the target empty).
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true // validated, no escapes
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}
