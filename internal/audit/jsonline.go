package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// MaxLine bounds one JSON line of an export or checkpoint file.
const MaxLine = 1 << 20

// ErrMalformed means a JSON line does not follow its schema.
var ErrMalformed = errors.New("audit: malformed line")

// objectReader walks one JSON object strictly: every member at most once,
// nothing after the object, and values of the expected JSON type only.
// encoding/json alone would accept a repeated key (last one wins), which
// would let a line show one value to a reader and another to a verifier.
type objectReader struct {
	dec  *json.Decoder
	seen map[string]bool
}

func newObjectReader(line []byte) (*objectReader, error) {
	if len(line) > MaxLine {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxLine)
	}
	if !utf8.Valid(line) {
		return nil, fmt.Errorf("%w: not valid UTF-8", ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	return &objectReader{dec: dec, seen: map[string]bool{}}, nil
}

// next returns the next member's key, or "" and false after the closing
// brace (and checks that nothing follows it).
func (o *objectReader) next() (string, bool, error) {
	if !o.dec.More() {
		if err := expectDelim(o.dec, '}'); err != nil {
			return "", false, err
		}
		if _, err := o.dec.Token(); err != io.EOF {
			return "", false, fmt.Errorf("%w: data after the object", ErrMalformed)
		}
		return "", false, nil
	}
	tok, err := o.dec.Token()
	if err != nil {
		return "", false, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	key, ok := tok.(string)
	if !ok {
		return "", false, fmt.Errorf("%w: expected a member name", ErrMalformed)
	}
	if o.seen[key] {
		return "", false, fmt.Errorf("%w: member %q appears twice", ErrMalformed, clipName(key))
	}
	o.seen[key] = true
	return key, true, nil
}

func (o *objectReader) str(key string) (string, error) {
	tok, err := o.dec.Token()
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrMalformed, key, err)
	}
	s, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("%w: %s must be a string", ErrMalformed, key)
	}
	return s, nil
}

// int reads a JSON integer (no fraction, no exponent) that fits in int64.
func (o *objectReader) int(key string) (int64, error) {
	tok, err := o.dec.Token()
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %w", ErrMalformed, key, err)
	}
	n, ok := tok.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%w: %s must be an integer", ErrMalformed, key)
	}
	v, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s must be an integer", ErrMalformed, key)
	}
	return v, nil
}

// strMap reads an object whose values are all strings, each key once.
func (o *objectReader) strMap(key string) (map[string]string, error) {
	if err := expectDelim(o.dec, '{'); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	m := map[string]string{}
	for o.dec.More() {
		tok, err := o.dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, key, err)
		}
		k, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("%w: %s: expected a member name", ErrMalformed, key)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("%w: %s: member %q appears twice", ErrMalformed, key, clipName(k))
		}
		v, err := o.str(key + "." + clipName(k))
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	if err := expectDelim(o.dec, '}'); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return m, nil
}

// require reports the first of keys that the object lacked.
func (o *objectReader) require(keys []string) error {
	for _, k := range keys {
		if !o.seen[k] {
			return fmt.Errorf("%w: member %q is missing", ErrMalformed, k)
		}
	}
	return nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("%w: expected %q", ErrMalformed, string(want))
	}
	return nil
}

// marshalLine encodes v as one JSON line without HTML escaping, so the
// line reads as written.
func marshalLine(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil // Encode ends it with "\n"
}
