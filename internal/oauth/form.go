package oauth

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DefaultMaxTokenBody caps a token request body when ParseTokenForm is
// given no limit (threat model item 8). Without a cap, ParseForm reads
// 10 MB.
const DefaultMaxTokenBody = 64 << 10

// Form limits. A token request has about ten parameters; the per-parameter
// caps keep a huge value from reaching a parser that would otherwise have to
// drop it (Keycloak CVE-2026-9704 dropped an oversized subject_token and
// fell back to a default). Exceeding any cap is an error, never a drop.
const (
	maxParams        = 64
	maxParamName     = 64
	defaultParamCap  = 2 << 10
	tokenParamCap    = 16 << 10 // subject_token, actor_token
	assertionCap     = 8 << 10  // assertion, client_assertion
	scopeParamCap    = 1 << 10
	formContentType  = "application/x-www-form-urlencoded"
	descBodyTooLarge = "request body too large"
)

// paramCap is the largest decoded value accepted for the named parameter.
func paramCap(name string) int {
	switch name {
	case "subject_token", "actor_token":
		return tokenParamCap
	case "assertion", "client_assertion":
		return assertionCap
	case "scope":
		return scopeParamCap
	}
	return defaultParamCap
}

// secretParam reports whether the parameter carries a credential or a
// grant. Such a parameter in the URL query would end up in access logs,
// proxy logs and browser history, so its presence there fails the request
// even though the body is what we read.
func secretParam(name string) bool {
	switch name {
	case "client_secret", "client_assertion", "assertion", "code", "code_verifier",
		"subject_token", "actor_token", "refresh_token", "password",
		"access_token", "id_token":
		return true
	}
	return false
}

// Form is a parsed token request body. Every parameter appears at most once;
// a parameter sent with an empty value counts as absent (RFC 6749 §3.2), so
// x/oauth2's empty "code=" on non-code grants is harmless. The zero Form is
// empty.
type Form struct {
	values map[string]string
}

// Get returns the parameter's value, or "" if it is absent or was empty.
func (f Form) Get(name string) string { return f.values[name] }

// Has reports whether the parameter is present with a non-empty value.
func (f Form) Has(name string) bool { return f.values[name] != "" }

// ParseTokenForm reads and strictly validates a token endpoint request
// (RFC 6749 §3.2). maxBody caps the body; <= 0 means DefaultMaxTokenBody.
//
// It answers with an *Error:
//   - 405 invalid_request (with Allow: POST) for any method but POST;
//   - 400 invalid_request for a Content-Type other than
//     application/x-www-form-urlencoded (a charset parameter is allowed and
//     must be UTF-8), for a credential or grant in the URL query, for a
//     malformed body, a repeated parameter, a parameter over its cap, a
//     value with control characters or invalid UTF-8, and for too many
//     parameters;
//   - 413 invalid_request for a body over maxBody.
//
// Only the body is parsed; the endpoint URL may carry a query (RFC 6749
// §3.2 allows it) but nothing in it is used. Unrecognised parameters are
// kept and ignored by the grant handlers, as RFC 6749 §3.2 requires; they
// are still subject to the caps above.
func ParseTokenForm(r *http.Request, maxBody int64) (Form, error) {
	if r.Method != http.MethodPost {
		e := InvalidRequest("the token endpoint accepts only POST")
		e.Status = http.StatusMethodNotAllowed
		e.Header = http.Header{"Allow": {http.MethodPost}}
		return Form{}, e
	}
	if err := checkFormContentType(r.Header.Values("Content-Type")); err != nil {
		return Form{}, err
	}
	if err := checkQuery(r.URL); err != nil {
		return Form{}, err
	}
	if maxBody <= 0 {
		maxBody = DefaultMaxTokenBody
	}
	if r.ContentLength > maxBody {
		return Form{}, bodyTooLarge()
	}
	if r.Body == nil {
		return Form{}, nil
	}
	body, err := readBody(http.MaxBytesReader(nil, r.Body, maxBody), r.ContentLength)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return Form{}, bodyTooLarge()
		}
		return Form{}, InvalidRequest("the request body could not be read").WithCause(err)
	}
	values, err := parseFormBody(string(body))
	if err != nil {
		return Form{}, err
	}
	return Form{values: values}, nil
}

// readBody reads all of body. A declared length (already checked against
// the cap) sizes the buffer once; net/http ends the body there. 0 is read
// as unknown: a client-side request with a custom reader reports 0.
func readBody(body io.Reader, declared int64) ([]byte, error) {
	if declared <= 0 {
		return io.ReadAll(body)
	}
	b := make([]byte, declared)
	if _, err := io.ReadFull(body, b); err != nil {
		return nil, err
	}
	return b, nil
}

func bodyTooLarge() *Error {
	e := InvalidRequest(descBodyTooLarge)
	e.Status = http.StatusRequestEntityTooLarge
	return e
}

func checkFormContentType(values []string) error {
	if len(values) != 1 {
		return InvalidRequest("Content-Type must be " + formContentType)
	}
	mt, params, err := mime.ParseMediaType(values[0])
	if err != nil || mt != formContentType {
		return InvalidRequest("Content-Type must be " + formContentType)
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return InvalidRequest("the only Content-Type parameter accepted is charset=UTF-8")
		}
	}
	return nil
}

func checkQuery(u *url.URL) error {
	if u == nil || u.RawQuery == "" {
		return nil
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return InvalidRequest("the URL query is malformed").WithCause(err)
	}
	for name := range q {
		if secretParam(name) {
			return InvalidRequest("parameter '" + name + "' must be sent in the request body, not in the URL")
		}
	}
	return nil
}

// parseFormBody is a strict application/x-www-form-urlencoded parser. Unlike
// url.ParseQuery it reports repeated names (compared after decoding, so
// "scope" and "sc%6Fpe" collide), rejects nameless parameters, and checks
// each value's cap before decoding it.
func parseFormBody(body string) (map[string]string, error) {
	values := make(map[string]string, 8)
	for body != "" {
		var seg string
		seg, body, _ = strings.Cut(body, "&")
		if seg == "" {
			continue // "a=1&&b=2": an empty segment carries no parameter
		}
		if strings.IndexByte(seg, ';') >= 0 {
			return nil, InvalidRequest("the request body is malformed: ';' must be percent-encoded")
		}
		rawName, rawValue, _ := strings.Cut(seg, "=")
		if len(rawName) > 3*maxParamName {
			return nil, InvalidRequest("a parameter name is too long")
		}
		name, err := url.QueryUnescape(rawName)
		if err != nil {
			return nil, InvalidRequest("the request body is malformed: bad percent-encoding in a parameter name")
		}
		if name == "" {
			return nil, InvalidRequest("the request body contains a parameter without a name")
		}
		if len(name) > maxParamName || !printableASCII(name) {
			return nil, InvalidRequest("the request body contains a malformed parameter name")
		}
		if _, dup := values[name]; dup {
			return nil, InvalidRequest("parameter " + quoteName(name) + " is repeated")
		}
		if len(values) == maxParams {
			return nil, InvalidRequest("the request has too many parameters")
		}
		limit := paramCap(name)
		// A percent-escape decodes 3 bytes into 1, so a raw value longer
		// than 3*limit cannot fit; refuse it without decoding.
		if len(rawValue) > 3*limit {
			return nil, paramTooLarge(name, limit)
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return nil, InvalidRequest("parameter " + quoteName(name) + " has bad percent-encoding")
		}
		if len(value) > limit {
			return nil, paramTooLarge(name, limit)
		}
		if !cleanValue(value) {
			return nil, InvalidRequest("parameter " + quoteName(name) + " contains control characters or invalid UTF-8")
		}
		values[name] = value
	}
	return values, nil
}

func paramTooLarge(name string, limit int) *Error {
	return InvalidRequest("parameter " + quoteName(name) + " exceeds " + strconv.Itoa(limit) + " bytes")
}

// quoteName quotes a parameter name for an error description. Names are
// already restricted to printable ASCII and 64 bytes; Excerpt shortens and
// neutralises them further.
func quoteName(name string) string { return Excerpt(name) }

// printableASCII reports whether s is made only of %x21-7E.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// cleanValue reports whether s is valid UTF-8 without C0 controls or DEL.
// No OAuth parameter legitimately carries them, and refusing them keeps
// them out of logs and downstream parsers.
func cleanValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return utf8.ValidString(s)
}

// Scopes parses the request's scope parameter (RFC 6749 §3.3). An absent
// scope yields nil; a malformed one is invalid_scope.
func Scopes(f Form) ([]string, error) { return ParseScope(f.Get("scope")) }

// ParseScope parses a space-delimited scope string strictly per RFC 6749
// §3.3: scope-tokens of NQCHAR (%x21 / %x23-5B / %x5D-7E) separated by
// single spaces, with no leading or trailing space. Duplicates collapse to
// their first occurrence. "" yields nil. Errors are invalid_scope.
func ParseScope(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	tokens := strings.Split(s, " ")
	for _, tok := range tokens {
		if tok == "" {
			return nil, InvalidScope("the scope is malformed: scope tokens are separated by single spaces")
		}
		for i := 0; i < len(tok); i++ {
			if !nqchar(tok[i]) {
				return nil, InvalidScope("the scope is malformed: scope token " + Excerpt(tok) + " has a character RFC 6749 does not allow")
			}
		}
	}
	return Intersect(tokens), nil // of one set: drops duplicates, keeps order
}

// ScopeString joins scopes into the RFC 6749 §3.3 wire form.
func ScopeString(scopes []string) string { return strings.Join(scopes, " ") }
