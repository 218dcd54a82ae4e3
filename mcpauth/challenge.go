package mcpauth

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// authParam is one auth-param of a WWW-Authenticate challenge.
type authParam struct{ name, value string }

// challenge builds a Bearer challenge. Every value is sanitised to the
// characters RFC 6750 §3 allows in its quoted values (%x20-21 / %x23-5B /
// %x5D-7E): a quote, a backslash, a control character or non-ASCII text can
// never end the quoted string or the header line.
func challenge(params ...authParam) string {
	var b strings.Builder
	b.WriteString("Bearer")
	n := 0
	for _, p := range params {
		if p.value == "" {
			continue
		}
		if n == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteString(", ")
		}
		n++
		b.WriteString(p.name)
		b.WriteString(`="`)
		b.WriteString(headerSafe(p.value))
		b.WriteByte('"')
	}
	return b.String()
}

// headerSafe maps s into the RFC 6750 quoted-value alphabet: a double
// quote becomes an apostrophe, a backslash a slash, and anything else
// outside it a question mark.
func headerSafe(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if !quotedSafe(s[i]) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case quotedSafe(c):
		case c == '"':
			b[i] = '\''
		case c == '\\':
			b[i] = '/'
		default:
			b[i] = '?'
		}
	}
	return string(b)
}

func quotedSafe(c byte) bool {
	return c == 0x20 || c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e)
}

// oauthBody is the JSON body of 400, 401, 403 and 503 answers.
type oauthBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func noStore(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
}

// writeOAuth writes an RFC 6750 answer: the challenge (if any) and a JSON
// body naming the error.
func writeOAuth(w http.ResponseWriter, status int, www, code, description string) {
	h := w.Header()
	noStore(h)
	if www != "" {
		h.Set("WWW-Authenticate", www)
	}
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	body, _ := json.Marshal(oauthBody{Error: code, Description: description})
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// rpcError is a JSON-RPC 2.0 error response.
type rpcError struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   rpcErrorBody    `json:"error"`
}

type rpcErrorBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func newRPCError(id []byte, code int, message string) rpcError {
	if len(id) == 0 {
		id = []byte("null")
	}
	return rpcError{JSONRPC: "2.0", ID: json.RawMessage(id), Error: rpcErrorBody{Code: code, Message: message}}
}

// writeRPC writes v (one rpcError or a batch of them) as application/json.
func writeRPC(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	noStore(h)
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	body, err := json.Marshal(v)
	if err != nil { // an id that is not valid JSON cannot reach here, but fail closed
		body = []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}`)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func secondsString(seconds int64) string { return strconv.FormatInt(seconds, 10) }
