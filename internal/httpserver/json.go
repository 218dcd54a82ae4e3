package httpserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

const jsonContentType = "application/json; charset=utf-8"

// maxJSONDepth bounds object/array nesting in request bodies. Admin API
// payloads are a few levels deep; the bound keeps the duplicate-member walk
// (which recurses) cheap on hostile input.
const maxJSONDepth = 64

// Errors returned by DecodeJSON, matched with errors.Is. A body over the
// size cap is reported with IsBodyTooLarge instead.
var (
	ErrUnsupportedMediaType = errors.New("httpserver: request body must be application/json")
	ErrInvalidJSON          = errors.New("httpserver: invalid JSON request body")
)

// WriteJSON writes v as JSON with the given status. Unless the handler set
// Cache-Control itself, the response is marked no-store: JSON from an
// identity server usually describes a user or carries a token, and the few
// cacheable documents (JWKS, metadata) set their own policy. v is encoded
// before anything is written, so an encoding failure still becomes a clean
// 500 (and is returned).
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		writeInternalError(w)
		return fmt.Errorf("httpserver: encode response: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", jsonContentType)
	if _, ok := h["Cache-Control"]; !ok {
		h.Set("Cache-Control", "no-store")
	}
	w.WriteHeader(status)
	_, err = w.Write(b)
	return err
}

// DecodeJSON reads a JSON request body of at most limit bytes
// (DefaultBodyLimit when limit <= 0) into a T, strictly:
//
//   - Content-Type must be application/json (charset, if given, utf-8).
//     Besides being honest, this keeps cross-site HTML forms, which cannot
//     send that type without a CORS preflight, away from JSON endpoints.
//   - the body must be valid UTF-8 and exactly one JSON value, not null;
//   - no object may repeat a member name, compared the way encoding/json
//     matches struct fields (case-insensitively), so that every reader of
//     the body agrees on its meaning;
//   - nesting is bounded and unknown fields are rejected.
//
// Errors wrap ErrUnsupportedMediaType or ErrInvalidJSON, or satisfy
// IsBodyTooLarge.
func DecodeJSON[T any](w http.ResponseWriter, r *http.Request, limit int64) (T, error) {
	var v T
	if err := checkJSONContentType(r.Header.Get("Content-Type")); err != nil {
		return v, err
	}
	if limit <= 0 {
		limit = DefaultBodyLimit
	}
	if r.Body == nil {
		return v, fmt.Errorf("%w: empty body", ErrInvalidJSON)
	}
	var rw http.ResponseWriter
	if w != nil {
		rw = innermost(w)
	}
	data, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, limit))
	if err != nil {
		return v, fmt.Errorf("httpserver: read request body: %w", err)
	}
	if err := decodeStrict(data, &v); err != nil {
		return v, err
	}
	return v, nil
}

func checkJSONContentType(ct string) error {
	if ct == "" {
		return fmt.Errorf("%w: no Content-Type", ErrUnsupportedMediaType)
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return ErrUnsupportedMediaType
	}
	for k, val := range params {
		if k != "charset" || !strings.EqualFold(val, "utf-8") {
			return ErrUnsupportedMediaType
		}
	}
	return nil
}

// decodeStrict validates data as described on DecodeJSON and decodes it
// into dst (a pointer).
func decodeStrict(data []byte, dst any) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("%w: not UTF-8", ErrInvalidJSON)
	}
	if err := checkMembers(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidJSON, err)
	}
	return nil
}

// checkMembers walks the token stream once: it proves data is a single,
// non-null JSON value within maxJSONDepth whose objects have no duplicate
// member names.
func checkMembers(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err == io.EOF {
		return fmt.Errorf("%w: empty body", ErrInvalidJSON)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidJSON, err)
	}
	if tok == nil {
		return fmt.Errorf("%w: null body", ErrInvalidJSON)
	}
	if err := walkValue(dec, tok, 1); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON value", ErrInvalidJSON)
	}
	return nil
}

// walkValue consumes the rest of the value that starts with tok.
func walkValue(dec *json.Decoder, tok json.Token, depth int) error {
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil // scalar
	}
	if depth > maxJSONDepth {
		return fmt.Errorf("%w: nested deeper than %d", ErrInvalidJSON, maxJSONDepth)
	}
	var seen map[string]struct{}
	if delim == '{' {
		seen = make(map[string]struct{})
	}
	for dec.More() {
		if delim == '{' {
			name, err := dec.Token()
			if err != nil {
				return fmt.Errorf("%w: %w", ErrInvalidJSON, err)
			}
			str, ok := name.(string)
			if !ok { // the decoder guarantees a string; stay defensive on hostile input
				return fmt.Errorf("%w: member name is not a string", ErrInvalidJSON)
			}
			key := foldName(str)
			if _, dup := seen[key]; dup {
				return fmt.Errorf("%w: duplicate member %q", ErrInvalidJSON, name)
			}
			seen[key] = struct{}{}
		}
		next, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidJSON, err)
		}
		if err := walkValue(dec, next, depth+1); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // closing delimiter
		return fmt.Errorf("%w: %w", ErrInvalidJSON, err)
	}
	return nil
}

// foldName maps names that encoding/json would match to the same struct
// field (bytes.EqualFold, i.e. Unicode simple folding, which also joins
// "K" with the Kelvin sign) to one key: each rune becomes the smallest rune
// of its folding orbit.
func foldName(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		b.WriteRune(foldRune(r))
	}
	return b.String()
}

func foldRune(r rune) rune {
	for {
		next := unicode.SimpleFold(r)
		if next <= r {
			return next
		}
		r = next
	}
}
