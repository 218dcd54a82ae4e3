package oauth

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

const formCT = "application/x-www-form-urlencoded"

func formRequest(method, target, contentType, body string) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return r
}

func TestParseTokenFormAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		target      string
		contentType string
		body        string
		want        map[string]string // non-empty parameters
		absent      []string          // must be !Has and Get == ""
	}{
		{
			name: "jwt-bearer grant",
			body: "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b.c&scope=read+write",
			want: map[string]string{
				"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
				"assertion":  "a.b.c",
				"scope":      "read write",
			},
		},
		{
			name:   "empty code= from x/oauth2 is absent",
			body:   "grant_type=x&code=&client_id=app",
			want:   map[string]string{"grant_type": "x", "client_id": "app"},
			absent: []string{"code", "resource"},
		},
		{
			name:        "charset parameter in any case",
			contentType: "application/x-www-form-urlencoded; charset=UTF-8",
			body:        "a=1",
			want:        map[string]string{"a": "1"},
		},
		{
			name:        "media type is case-insensitive",
			contentType: "Application/X-WWW-Form-Urlencoded;charset=utf-8",
			body:        "a=1",
			want:        map[string]string{"a": "1"},
		},
		{
			name:   "harmless query on the endpoint URL is ignored",
			target: "/token?tenant=acme&grant_type=evil",
			body:   "grant_type=x",
			want:   map[string]string{"grant_type": "x"},
		},
		{
			name: "empty segments carry nothing",
			body: "&a=1&&b=2&",
			want: map[string]string{"a": "1", "b": "2"},
		},
		{
			name:   "a name without '=' is an empty parameter",
			body:   "a=1&flag",
			want:   map[string]string{"a": "1"},
			absent: []string{"flag"},
		},
		{
			name: "empty body",
			body: "",
			want: map[string]string{},
		},
		{
			name: "subject_token at exactly its cap",
			body: "subject_token=" + strings.Repeat("x", 16<<10),
			want: map[string]string{"subject_token": strings.Repeat("x", 16<<10)},
		},
		{
			name: "percent-encoded UTF-8 value",
			body: "name=%C3%A9t%C3%A9",
			want: map[string]string{"name": "été"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			target, ct := tt.target, tt.contentType
			if target == "" {
				target = "/token"
			}
			if ct == "" {
				ct = formCT
			}
			f, err := ParseTokenForm(formRequest(http.MethodPost, target, ct, tt.body), 0)
			if err != nil {
				t.Fatalf("ParseTokenForm: %v", err)
			}
			got := map[string]string{}
			for k, v := range f.values {
				if v != "" {
					got[k] = v
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
			for k, v := range tt.want {
				if !f.Has(k) || f.Get(k) != v {
					t.Errorf("Has/Get(%q) = %v/%q, want true/%q", k, f.Has(k), f.Get(k), v)
				}
			}
			for _, k := range tt.absent {
				if f.Has(k) || f.Get(k) != "" {
					t.Errorf("%q is present, want absent", k)
				}
			}
		})
	}
}

func TestParseTokenFormRejects(t *testing.T) {
	t.Parallel()
	tooMany := make([]string, 0, maxParams+1)
	for i := range maxParams + 1 {
		tooMany = append(tooMany, "p"+strings.Repeat("x", i%3)+string(rune('a'+i%26))+string(rune('a'+i/26))+"=1")
	}
	tests := []struct {
		name        string
		method      string
		target      string
		contentType []string
		body        string
		bodyReader  io.Reader
		maxBody     int64
		status      int
		desc        string // substring of the description
	}{
		{name: "GET", method: http.MethodGet, status: 405, desc: "only POST"},
		{name: "PUT", method: http.MethodPut, status: 405, desc: "only POST"},
		{name: "no content type", contentType: []string{}, status: 400, desc: "Content-Type"},
		{name: "JSON", contentType: []string{"application/json"}, body: `{"a":1}`, status: 400, desc: "Content-Type"},
		{name: "multipart", contentType: []string{"multipart/form-data; boundary=x"}, status: 400, desc: "Content-Type"},
		{name: "malformed content type", contentType: []string{"application/x-www-form-urlencoded; charset"}, status: 400, desc: "Content-Type"},
		{name: "two content types", contentType: []string{formCT, formCT}, status: 400, desc: "Content-Type"},
		{name: "latin-1 charset", contentType: []string{formCT + "; charset=iso-8859-1"}, status: 400, desc: "charset"},
		{name: "unknown content type parameter", contentType: []string{formCT + "; boundary=x"}, status: 400, desc: "charset"},
		{name: "declared body too large", body: strings.Repeat("a", 101), maxBody: 100, status: 413, desc: "too large"},
		{
			name:       "streamed body too large",
			bodyReader: io.MultiReader(strings.NewReader("a="), strings.NewReader(strings.Repeat("b", 200))),
			maxBody:    100, status: 413, desc: "too large",
		},
		{name: "body over the default cap", body: "a=" + strings.Repeat("b", DefaultMaxTokenBody), status: 413, desc: "too large"},
		{name: "unreadable body", bodyReader: iotest.ErrReader(errors.New("connection reset")), status: 400, desc: "could not be read"},
		{name: "repeated parameter", body: "scope=a&grant_type=x&scope=b", status: 400, desc: "'scope' is repeated"},
		{name: "repeated parameter, encoded name", body: "scope=a&sc%6Fpe=b", status: 400, desc: "'scope' is repeated"},
		{name: "repeated empty parameter", body: "code=&code=", status: 400, desc: "'code' is repeated"},
		{name: "repeated: empty then value", body: "resource=&resource=https://x", status: 400, desc: "'resource' is repeated"},
		{name: "oversized subject_token", body: "subject_token=" + strings.Repeat("x", 16<<10+1), status: 400, desc: "'subject_token' exceeds 16384"},
		{name: "oversized actor_token", body: "actor_token=" + strings.Repeat("x", 16<<10+1), status: 400, desc: "'actor_token' exceeds"},
		{name: "oversized assertion", body: "assertion=" + strings.Repeat("x", 8<<10+1), status: 400, desc: "'assertion' exceeds 8192"},
		{name: "oversized client_assertion", body: "client_assertion=" + strings.Repeat("x", 8<<10+1), status: 400, desc: "'client_assertion' exceeds 8192"},
		{name: "oversized scope", body: "scope=" + strings.Repeat("x", 1<<10+1), status: 400, desc: "'scope' exceeds 1024"},
		{name: "oversized other parameter", body: "resource=" + strings.Repeat("x", 2<<10+1), status: 400, desc: "'resource' exceeds 2048"},
		{name: "oversized unknown parameter", body: "whatever=" + strings.Repeat("x", 2<<10+1), status: 400, desc: "'whatever' exceeds"},
		{name: "raw value over 3x the cap is refused before decoding", body: "scope=" + strings.Repeat("%41", 1<<10+1), status: 400, desc: "'scope' exceeds"},
		{name: "client_secret in the query", target: "/token?client_secret=s", body: "grant_type=x", status: 400, desc: "'client_secret' must be sent in the request body"},
		{name: "code in the query", target: "/token?code=abc", body: "grant_type=x", status: 400, desc: "'code'"},
		{name: "assertion in the query", target: "/token?assertion=a.b.c", body: "grant_type=x", status: 400, desc: "'assertion'"},
		{name: "client_assertion in the query", target: "/token?client_assertion=a.b.c", body: "grant_type=x", status: 400, desc: "'client_assertion'"},
		{name: "subject_token in the query", target: "/token?subject_token=a.b.c", body: "grant_type=x", status: 400, desc: "'subject_token'"},
		{name: "malformed query", target: "/token?a=%zz", body: "grant_type=x", status: 400, desc: "URL query"},
		{name: "semicolon separator", body: "a=1;b=2", status: 400, desc: "';'"},
		{name: "bad percent-encoding in a value", body: "scope=%zz", status: 400, desc: "'scope' has bad percent-encoding"},
		{name: "bad percent-encoding in a name", body: "sc%zzope=1", status: 400, desc: "name"},
		{name: "nameless parameter", body: "=value", status: 400, desc: "without a name"},
		{name: "control character in a value", body: "client_id=a%0Ab", status: 400, desc: "'client_id' contains control"},
		{name: "NUL in a value", body: "client_id=a%00b", status: 400, desc: "control"},
		{name: "invalid UTF-8 in a value", body: "client_id=%FF", status: 400, desc: "invalid UTF-8"},
		{name: "control character in a name", body: "a%0Ab=1", status: 400, desc: "malformed parameter name"},
		{name: "space in a name", body: "a+b=1", status: 400, desc: "malformed parameter name"},
		{name: "long name", body: strings.Repeat("n", maxParamName+1) + "=1", status: 400, desc: "malformed parameter name"},
		{name: "very long raw name", body: strings.Repeat("n", 3*maxParamName+1) + "=1", status: 400, desc: "name is too long"},
		{name: "too many parameters", body: strings.Join(tooMany, "&"), status: 400, desc: "too many parameters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			method, target := tt.method, tt.target
			if method == "" {
				method = http.MethodPost
			}
			if target == "" {
				target = "/token"
			}
			var body io.Reader = strings.NewReader(tt.body)
			if tt.bodyReader != nil {
				body = tt.bodyReader
			}
			r := httptest.NewRequest(method, target, body)
			if tt.bodyReader != nil {
				r.ContentLength = -1
			}
			cts := tt.contentType
			if cts == nil {
				cts = []string{formCT}
			}
			for _, ct := range cts {
				r.Header.Add("Content-Type", ct)
			}
			_, err := ParseTokenForm(r, tt.maxBody)
			e, ok := errors.AsType[*Error](err)
			if !ok {
				t.Fatalf("ParseTokenForm error = %v, want an *Error", err)
			}
			if e.Code != CodeInvalidRequest {
				t.Errorf("code = %q, want invalid_request", e.Code)
			}
			if e.HTTPStatus() != tt.status {
				t.Errorf("status = %d, want %d", e.HTTPStatus(), tt.status)
			}
			if !strings.Contains(e.Description, tt.desc) {
				t.Errorf("description %q does not contain %q", e.Description, tt.desc)
			}
			if tt.status == 405 && e.Header.Get("Allow") != http.MethodPost {
				t.Errorf("405 without Allow: POST (header %v)", e.Header)
			}
		})
	}
}

func TestParseTokenFormNeverEchoesLongInput(t *testing.T) {
	t.Parallel()
	name := strings.Repeat("N", maxParamName)
	_, err := ParseTokenForm(formRequest(http.MethodPost, "/token", formCT, name+"=1&"+name+"=2"), 0)
	e, ok := errors.AsType[*Error](err)
	if !ok {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(e.Description, name) || len(e.Description) > 80 {
		t.Errorf("description echoes the whole name: %q", e.Description)
	}
}

func TestParseScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    []string
		invalid bool
	}{
		{in: "", want: nil},
		{in: "read", want: []string{"read"}},
		{in: "read write", want: []string{"read", "write"}},
		{in: "write read write read", want: []string{"write", "read"}},
		{in: "urn:x:y https://api.example/r!#$%&'()*+,-./:;<=>?@[]^_`{|}~", want: []string{"urn:x:y", "https://api.example/r!#$%&'()*+,-./:;<=>?@[]^_`{|}~"}},
		{in: "read  write", invalid: true},
		{in: " read", invalid: true},
		{in: "read ", invalid: true},
		{in: " ", invalid: true},
		{in: "read\twrite", invalid: true},
		{in: `a"b`, invalid: true},
		{in: `a\b`, invalid: true},
		{in: "café", invalid: true},
		{in: "a\x7fb", invalid: true},
	}
	for _, tt := range tests {
		got, err := ParseScope(tt.in)
		if tt.invalid {
			e, ok := errors.AsType[*Error](err)
			if !ok || e.Code != CodeInvalidScope {
				t.Errorf("ParseScope(%q) error = %v, want invalid_scope", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseScope(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseScope(%q) (-want +got):\n%s", tt.in, diff)
		}
		if tt.want != nil {
			if again, _ := ParseScope(ScopeString(got)); !cmp.Equal(again, got) {
				t.Errorf("ScopeString round trip of %q = %q", got, again)
			}
		}
	}
}

func TestScopesFromForm(t *testing.T) {
	t.Parallel()
	f, err := ParseTokenForm(formRequest(http.MethodPost, "/token", formCT, "scope=b+a+b"), 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Scopes(f)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"b", "a"}, got); diff != "" {
		t.Errorf("Scopes (-want +got):\n%s", diff)
	}
	if got, err := Scopes(Form{}); got != nil || err != nil {
		t.Errorf("Scopes(empty) = %v, %v; want nil, nil", got, err)
	}
}

func FuzzParseTokenForm(f *testing.F) {
	for _, seed := range []string{
		"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b.c&code=",
		"grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=x&subject_token_type=urn:ietf:params:oauth:token-type:id_token&audience=https://as.example&resource=https://mcp.example/&scope=a+b",
		"a=1&a=2",
		"scope=a&sc%6Fpe=b",
		"=x",
		"a=%zz",
		"a=1;b=2",
		"&&&",
		"a=%00",
		"a=%FF%FE",
		"client_id=x&client_secret=y&client_assertion=z",
		"scope=" + strings.Repeat("%41", 400),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/token", bytes.NewReader(body))
		r.Header.Set("Content-Type", formCT)
		form, err := ParseTokenForm(r, 0)
		if err != nil {
			if _, ok := errors.AsType[*Error](err); !ok {
				t.Fatalf("error is not an *Error: %v", err)
			}
			return
		}
		// Differential check against the standard library: whatever we
		// accept, url.ParseQuery accepts with the same single values.
		std, err := url.ParseQuery(string(body))
		if err != nil {
			t.Fatalf("accepted a body url.ParseQuery rejects: %v", err)
		}
		if len(form.values) > maxParams {
			t.Fatalf("accepted %d parameters", len(form.values))
		}
		if len(std) != len(form.values) {
			t.Fatalf("accepted %d parameters, the standard library sees %d", len(form.values), len(std))
		}
		for name, vs := range std {
			if len(vs) != 1 {
				t.Fatalf("accepted repeated parameter %q", name)
			}
			if len(vs[0]) > paramCap(name) {
				t.Fatalf("accepted %q of %d bytes, cap %d", name, len(vs[0]), paramCap(name))
			}
			if got := form.values[name]; got != vs[0] {
				t.Fatalf("value of %q = %q, standard library %q", name, got, vs[0])
			}
			if form.Has(name) != (vs[0] != "") {
				t.Fatalf("Has(%q) = %v with value %q", name, form.Has(name), vs[0])
			}
		}
	})
}

func BenchmarkParseTokenForm(b *testing.B) {
	body := "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer" +
		"&assertion=" + strings.Repeat("eyJhbGciOiJFUzI1NiJ9", 30) +
		"&scope=files.read+files.write&resource=https%3A%2F%2Fmcp.example.com%2F" +
		"&client_id=app&client_secret=" + strings.Repeat("s", 43) + "&code="
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
		r.Header.Set("Content-Type", formCT)
		if _, err := ParseTokenForm(r, 0); err != nil {
			b.Fatal(err)
		}
	}
}
