package httpserver_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/httpserver"
)

func TestWriteJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		cacheControl string // set by the handler before WriteJSON
		v            any
		wantErr      bool
		wantStatus   int
		wantBody     string
		wantCache    string
	}{
		{name: "object", v: map[string]string{"a": "<b>"}, wantStatus: 201,
			wantBody: `{"a":"\u003cb\u003e"}`, wantCache: "no-store"},
		{name: "handler cache policy kept", cacheControl: "public, max-age=300", v: []int{1},
			wantStatus: 201, wantBody: `[1]`, wantCache: "public, max-age=300"},
		{name: "unencodable", v: math.Inf(1), wantErr: true, wantStatus: 500,
			wantBody: `{"error":"server_error","error_description":"internal error"}`, wantCache: "no-store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			if tt.cacheControl != "" {
				rec.Header().Set("Cache-Control", tt.cacheControl)
			}
			err := httpserver.WriteJSON(rec, http.StatusCreated, tt.v)
			if (err != nil) != tt.wantErr {
				t.Errorf("WriteJSON error = %v, want error %v", err, tt.wantErr)
			}
			got := []any{rec.Code, rec.Body.String(), rec.Header().Get("Content-Type"), rec.Header().Get("Cache-Control")}
			want := []any{tt.wantStatus, tt.wantBody, "application/json; charset=utf-8", tt.wantCache}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}

type approval struct {
	Connection string   `json:"connection"`
	Scopes     []string `json:"scopes"`
	Meta       *struct {
		Note string `json:"note"`
	} `json:"meta,omitempty"`
	Extra map[string]any `json:"extra,omitempty"`
}

func decodeRequest(body, contentType string, limit int64) (approval, error) {
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return httpserver.DecodeJSON[approval](httptest.NewRecorder(), req, limit)
}

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	const ct = "application/json"
	// nested(n) is n levels deep: the outer object and n-2 arrays inside
	// extra's object.
	nested := func(n int) string {
		return `{"extra":{"a":` + strings.Repeat("[", n-2) + strings.Repeat("]", n-2) + "}}"
	}
	tests := []struct {
		name        string
		body        string
		contentType string
		limit       int64
		want        approval
		wantErr     error  // nil, a sentinel, or errTooLarge
		wantMsg     string // in the error text, when the reason matters
	}{
		{name: "valid", body: `{"connection":"c1","scopes":["read","write"]}`, contentType: ct,
			want: approval{Connection: "c1", Scopes: []string{"read", "write"}}},
		{name: "charset utf-8", body: `{"connection":"c1"}`, contentType: "application/json; charset=UTF-8",
			want: approval{Connection: "c1"}},
		{name: "same name in different objects", body: `{"connection":"c","meta":{"note":"x"},"extra":{"connection":1}}`,
			contentType: ct, want: approval{Connection: "c", Meta: &struct {
				Note string `json:"note"`
			}{"x"}, Extra: map[string]any{"connection": 1.0}}},
		{name: "whitespace around the value", body: " \n{\"connection\":\"c\"}\n ", contentType: ct,
			want: approval{Connection: "c"}},

		{name: "no content type", body: `{}`, contentType: "", wantErr: httpserver.ErrUnsupportedMediaType},
		{name: "form content type", body: `{}`, contentType: "application/x-www-form-urlencoded", wantErr: httpserver.ErrUnsupportedMediaType},
		{name: "text/plain (cross-site form)", body: `{}`, contentType: "text/plain", wantErr: httpserver.ErrUnsupportedMediaType},
		{name: "other charset", body: `{}`, contentType: "application/json; charset=latin1", wantErr: httpserver.ErrUnsupportedMediaType},
		{name: "unknown parameter", body: `{}`, contentType: "application/json; foo=bar", wantErr: httpserver.ErrUnsupportedMediaType},
		{name: "malformed content type", body: `{}`, contentType: "application/json; charset", wantErr: httpserver.ErrUnsupportedMediaType},
		{name: "json suffix type", body: `{}`, contentType: "application/problem+json", wantErr: httpserver.ErrUnsupportedMediaType},

		{name: "empty body", body: ``, contentType: ct, wantErr: httpserver.ErrInvalidJSON},
		{name: "only whitespace", body: "  ", contentType: ct, wantErr: httpserver.ErrInvalidJSON},
		{name: "null", body: `null`, contentType: ct, wantErr: httpserver.ErrInvalidJSON},
		{name: "syntax error", body: `{"connection":}`, contentType: ct, wantErr: httpserver.ErrInvalidJSON},
		{name: "truncated", body: `{"connection":"c"`, contentType: ct, wantErr: httpserver.ErrInvalidJSON},
		{name: "unknown field", body: `{"connection":"c","admin":true}`, contentType: ct, wantErr: httpserver.ErrInvalidJSON, wantMsg: "unknown field"},
		{name: "wrong type", body: `{"connection":1}`, contentType: ct, wantErr: httpserver.ErrInvalidJSON},
		{name: "array instead of object", body: `[]`, contentType: ct, wantErr: httpserver.ErrInvalidJSON},
		{name: "two values", body: `{} {}`, contentType: ct, wantErr: httpserver.ErrInvalidJSON},
		{name: "trailing garbage", body: `{}x`, contentType: ct, wantErr: httpserver.ErrInvalidJSON},
		{name: "duplicate member", body: `{"connection":"a","connection":"b"}`, contentType: ct, wantErr: httpserver.ErrInvalidJSON, wantMsg: "duplicate"},
		{name: "duplicate differing in case", body: `{"scopes":["a"],"Scopes":["admin"]}`, contentType: ct, wantErr: httpserver.ErrInvalidJSON, wantMsg: "duplicate"},
		// encoding/json folds U+017F (long s) to "s", so both name Scopes.
		{name: "duplicate via long s", body: `{"scopes":["a"],"\u017fcopes":["admin"]}`, contentType: ct, wantErr: httpserver.ErrInvalidJSON, wantMsg: "duplicate"},
		{name: "duplicate via Kelvin sign", body: `{"extra":{"k":1,"\u212a":2}}`, contentType: ct, wantErr: httpserver.ErrInvalidJSON, wantMsg: "duplicate"},
		{name: "duplicate via escape", body: `{"connection":"a","\u0063onnection":"b"}`, contentType: ct, wantErr: httpserver.ErrInvalidJSON, wantMsg: "duplicate"},
		{name: "nested duplicate", body: `{"meta":{"note":"a","note":"b"}}`, contentType: ct, wantErr: httpserver.ErrInvalidJSON, wantMsg: "duplicate"},
		{name: "duplicate inside array", body: `{"extra":{"l":[{"k":1,"k":2}]}}`, contentType: ct, wantErr: httpserver.ErrInvalidJSON, wantMsg: "duplicate"},
		{name: "invalid UTF-8", body: "{\"connection\":\"\xff\"}", contentType: ct, wantErr: httpserver.ErrInvalidJSON, wantMsg: "UTF-8"},
		{name: "64 levels", body: nested(64), contentType: ct,
			want: approval{Extra: map[string]any{"a": nestedSlices(62)}}},
		{name: "too deep", body: nested(65), contentType: ct, wantErr: httpserver.ErrInvalidJSON, wantMsg: "nested deeper"},
		{name: "over the limit", body: `{"connection":"` + strings.Repeat("a", 100) + `"}`, contentType: ct, limit: 64, wantErr: errTooLarge},
		{name: "over the default limit", body: `{"connection":"` + strings.Repeat("a", 64<<10) + `"}`, contentType: ct, wantErr: errTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := decodeRequest(tt.body, tt.contentType, tt.limit)
			switch {
			case tt.wantErr == nil:
				if err != nil {
					t.Fatalf("DecodeJSON = %v", err)
				}
				// Compared as JSON: cmp takes exponential time on
				// deeply nested slices.
				if diff := cmp.Diff(mustJSON(t, tt.want), mustJSON(t, got)); diff != "" {
					t.Errorf("decoded (-want +got):\n%s", diff)
				}
			case tt.wantErr == errTooLarge:
				if !httpserver.IsBodyTooLarge(err) {
					t.Errorf("DecodeJSON = %v, want a too-large error", err)
				}
			default:
				if !errors.Is(err, tt.wantErr) || !strings.Contains(fmt.Sprint(err), tt.wantMsg) {
					t.Errorf("DecodeJSON = %v, want %v (%q)", err, tt.wantErr, tt.wantMsg)
				}
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func nestedSlices(n int) any {
	var v any = []any{}
	for range n - 1 {
		v = []any{v}
	}
	return v
}

var errTooLarge = errors.New("too large (matched with IsBodyTooLarge)")

// Anything DecodeJSON accepts is a single, valid, UTF-8 JSON value that the
// standard decoder reads the same way; nothing makes it panic.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"connection":"c1","scopes":["a"]}`,
		`{"connection":"a","Connection":"b"}`,
		`{"extra":{"a":{"b":[1,2,{"c":null}]}}}`,
		`{"extra":{"k":1,"\u212a":2}}`, `{"scopes":[],"\u017fcopes":[]}`,
		`null`, `[]`, `{} {}`, "{\"connection\":\"\xff\"}", `{"meta":{"note":"a","note":"b"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := decodeRequest(string(body), "application/json", 0)
		if err != nil {
			if !errors.Is(err, httpserver.ErrInvalidJSON) && !httpserver.IsBodyTooLarge(err) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if !utf8.Valid(body) || !json.Valid(body) {
			t.Fatalf("accepted invalid body %q", body)
		}
		var std approval
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&std); err != nil {
			t.Fatalf("accepted %q that encoding/json rejects: %v", body, err)
		}
		if !reflect.DeepEqual(std, got) { // not cmp: exponential on deep nesting
			t.Fatalf("%q decoded differently: encoding/json %#v, DecodeJSON %#v", body, std, got)
		}
	})
}
