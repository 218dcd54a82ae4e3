package mcpauth

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// testFilter watches tools/list id 1 (and "a") and allows only "ok" and
// "fine".
func testFilter() *listFilter {
	return &listFilter{
		ids:   map[string]bool{idKey([]byte("1")): true, idKey([]byte(`"a"`)): true},
		allow: func(tool string) bool { return tool == "ok" || tool == "fine" },
	}
}

func TestFilterPayload(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in, want string
		err            bool
	}{
		{"filters", `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"ok","x":1},{"name":"bad"},{"name":"fine"}],"nextCursor":"c"}}`,
			`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"ok","x":1},{"name":"fine"}],"nextCursor":"c"}}`, false},
		{"nothing to remove", `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"ok"}]}}`,
			`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"ok"}]}}`, false},
		{"other id untouched", `{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"bad"}]}}`,
			`{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"bad"}]}}`, false},
		{"string id", `{"jsonrpc":"2.0","id":"a","result":{"tools":[{"name":"bad"}]}}`,
			`{"jsonrpc":"2.0","id":"a","result":{"tools":[]}}`, false},
		{"id re-encoded as 1.0", `{"jsonrpc":"2.0","id":1.0,"result":{"tools":[{"name":"bad"}]}}`,
			`{"jsonrpc":"2.0","id":1.0,"result":{"tools":[]}}`, false},
		{"string 1 is not number 1", `{"jsonrpc":"2.0","id":"1","result":{"tools":[{"name":"bad"}]}}`,
			`{"jsonrpc":"2.0","id":"1","result":{"tools":[{"name":"bad"}]}}`, false},
		{"upper-case keys are read too", `{"jsonrpc":"2.0","ID":1,"Result":{"TOOLS":[{"NAME":"bad"},{"Name":"ok"}]}}`,
			`{"jsonrpc":"2.0","ID":1,"Result":{"TOOLS":[{"Name":"ok"}]}}`, false},
		{"long s folds to tools", "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tool\u017f\":[{\"name\":\"bad\"}]}}",
			"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tool\u017f\":[]}}", false},
		{"unreadable entries dropped", `{"id":1,"result":{"tools":["bad",{"name":1},{"name":"ok","name":"bad"},{"x":"ok"},{"name":"ok"}]}}`,
			`{"id":1,"result":{"tools":[{"name":"ok"}]}}`, false},
		{"batch", `[{"id":2,"result":{}},{"id":1,"result":{"tools":[{"name":"bad"},{"name":"ok"}]}}]`,
			`[{"id":2,"result":{}},{"id":1,"result":{"tools":[{"name":"ok"}]}}]`, false},
		{"error response untouched", `{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"m"}}`,
			`{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"m"}}`, false},
		{"duplicate tools member", `{"id":1,"result":{"tools":[{"name":"ok"}],"tools":[{"name":"bad"}]}}`, "", true},
		{"duplicate result member", `{"id":1,"result":{"tools":[]},"Result":{"tools":[{"name":"bad"}]}}`, "", true},
		{"tools not an array", `{"id":1,"result":{"tools":{"name":"bad"}}}`, "", true},
		{"trailing data", `{"id":1,"result":{"tools":[]}} {"id":1,"result":{"tools":[{"name":"bad"}]}}`, "", true},
		{"not JSON", `{"id":1,"result":{"tools":[{"name":"bad"}]`, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := testFilter().filterPayload([]byte(tc.in))
			if tc.err {
				if err == nil {
					t.Fatalf("no error; got %s", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if !json.Valid(got) {
				t.Errorf("output is not JSON")
			}
		})
	}
}

// runSSE feeds stream to an sseRewriter in chunks of n bytes.
func runSSE(f *listFilter, stream string, n int) (string, error) {
	var out bytes.Buffer
	s := newSSERewriter(f, &out, func() {})
	for len(stream) > 0 {
		k := min(n, len(stream))
		if _, err := s.Write([]byte(stream[:k])); err != nil {
			return out.String(), err
		}
		stream = stream[k:]
	}
	s.finish()
	return out.String(), nil
}

func TestSSERewriter(t *testing.T) {
	t.Parallel()
	listResp := `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"ok"},{"name":"bad"}]}}`
	filtered := `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"ok"}]}}`
	for _, tc := range []struct{ name, in, want string }{
		{"pass through", ": ok\n\nevent: message\nid: s_1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n",
			": ok\n\nevent: message\nid: s_1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n"},
		{"rewrite keeps id and name", "event: message\nid: s_2\ndata: " + listResp + "\n\n",
			"event: message\nid: s_2\ndata: " + filtered + "\n\n"},
		{"CRLF lines", "id: s_2\r\ndata: " + listResp + "\r\n\r\n",
			"id: s_2\ndata: " + filtered + "\n\n"},
		{"CR lines", "id: s_2\rdata: " + listResp + "\r\r",
			"id: s_2\ndata: " + filtered + "\n\n"},
		{"multi-line data", "data: {\"jsonrpc\":\"2.0\",\"id\":1,\ndata: \"result\":{\"tools\":[{\"name\":\"bad\"},\ndata: {\"name\":\"ok\"}]}}\n\n",
			"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"ok\"}]}}\n\n"},
		{"data without space", "data:" + listResp + "\n\n", "data: " + filtered + "\n\n"},
		{"BOM", "\xEF\xBB\xBFdata: " + listResp + "\n\n", "\xEF\xBB\xBFdata: " + filtered + "\n\n"},
		{"unreadable payload dropped, id kept", "id: s_3\ndata: {\"id\":1,\"result\":{\"tools\":[],\"tools\":[{\"name\":\"bad\"}]}}\n\n", ": mcpauth: unreadable data removed\nid: s_3\n\n"},
		{"empty data passes (priming event)", "event: prime\nid: s_0\ndata: \n\n", "event: prime\nid: s_0\ndata: \n\n"},
		{"unterminated last event filtered", "data: " + listResp + "\n", "data: " + filtered + "\n"},
		{"retry and comments kept", ": c\nretry: 100\ndata: " + listResp + "\n\n", ": c\nretry: 100\ndata: " + filtered + "\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range []int{1, 2, 7, 1 << 20} {
				got, err := runSSE(testFilter(), tc.in, n)
				if err != nil {
					t.Fatal(err)
				}
				if got != tc.want {
					t.Errorf("chunk %d:\ngot  %q\nwant %q", n, got, tc.want)
				}
			}
		})
	}
}

func TestSSERewriterEventTooLarge(t *testing.T) {
	t.Parallel()
	_, err := runSSE(testFilter(), "data: "+strings.Repeat("x", maxFilterBytes+1), 1<<16)
	if err == nil {
		t.Fatal("an endless event was buffered")
	}
}

// TestInterceptorJSON covers the application/json path outside the go-sdk:
// Content-Length is corrected and an unreadable JSON body is not passed on.
func TestInterceptorJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, ct, body string
		status         int
		want           string
	}{
		{"filtered", "application/json", `{"id":1,"result":{"tools":[{"name":"bad"},{"name":"ok"}]}}`, 200,
			`{"id":1,"result":{"tools":[{"name":"ok"}]}}`},
		{"no content type", "", `{"id":1,"result":{"tools":[{"name":"bad"}]}}`, 200, `{"id":1,"result":{"tools":[]}}`},
		{"broken JSON refused", "application/json", `{"id":1,"result":{"tools":[{"name":"bad"}]}}garbage`, 502, ""},
		{"plain text error page passes", "text/plain", "bad request\n", 200, "bad request\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			iw := &interceptor{w: rec, filter: testFilter()}
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.ct != "" {
					w.Header().Set("Content-Type", tc.ct)
				}
				w.Header().Set("Content-Length", "999")
				w.(http.Flusher).Flush()
				_, _ = w.Write([]byte(tc.body))
			})
			h.ServeHTTP(iw, httptest.NewRequest(http.MethodPost, "/", nil))
			iw.finish()
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.want != "" && rec.Body.String() != tc.want {
				t.Errorf("body = %s, want %s", rec.Body, tc.want)
			}
			if tc.status == 200 && rec.Header().Get("Content-Length") != "" && rec.Header().Get("Content-Length") != itoa(rec.Body.Len()) {
				t.Errorf("Content-Length = %s for %d bytes", rec.Header().Get("Content-Length"), rec.Body.Len())
			}
			if strings.Contains(rec.Body.String(), "bad") && tc.name != "plain text error page passes" {
				t.Errorf("forbidden tool in output: %s", rec.Body)
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestIDKey(t *testing.T) {
	t.Parallel()
	same := [][]string{{"1", "1.0", "1e0", "10e-1"}, {"0", "-0", "0.0"}, {`"x"`, `"\u0078"`}}
	for _, group := range same {
		for _, id := range group[1:] {
			if idKey([]byte(id)) != idKey([]byte(group[0])) {
				t.Errorf("idKey(%s) != idKey(%s)", id, group[0])
			}
		}
	}
	for _, pair := range [][2]string{{"1", `"1"`}, {"1", "2"}, {`"a"`, `"A"`}, {"null", `"null"`}} {
		if idKey([]byte(pair[0])) == idKey([]byte(pair[1])) {
			t.Errorf("idKey(%s) == idKey(%s)", pair[0], pair[1])
		}
	}
}
