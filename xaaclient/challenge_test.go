package xaaclient

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseChallenges(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		headers []string
		want    []Challenge
	}{
		{"RFC 9728 401", []string{`Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="files:read"`},
			[]Challenge{{Scheme: "bearer", Params: map[string]string{
				"resource_metadata": "https://mcp.example.com/.well-known/oauth-protected-resource/mcp", "scope": "files:read"}}}},
		{"insufficient_scope", []string{`Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="https://x/prm", error_description="needs \"write\""`},
			[]Challenge{{Scheme: "bearer", Params: map[string]string{"error": "insufficient_scope", "scope": "files:read files:write",
				"resource_metadata": "https://x/prm", "error_description": `needs "write"`}}}},
		{"RFC 9470 step-up, token values", []string{`Bearer error=insufficient_user_authentication, max_age=300, acr_values="urn:a urn:b"`},
			[]Challenge{{Scheme: "bearer", Params: map[string]string{"error": "insufficient_user_authentication", "max_age": "300", "acr_values": "urn:a urn:b"}}}},
		{"case-insensitive scheme and names", []string{`BEARER Realm="x", SCOPE=a`},
			[]Challenge{{Scheme: "bearer", Params: map[string]string{"realm": "x", "scope": "a"}}}},
		{"two challenges in one header", []string{`Basic realm="r", Bearer scope="a", error="invalid_token"`},
			[]Challenge{{Scheme: "basic", Params: map[string]string{"realm": "r"}}, {Scheme: "bearer", Params: map[string]string{"scope": "a", "error": "invalid_token"}}}},
		{"two headers", []string{`DPoP algs="ES256"`, `Bearer`},
			[]Challenge{{Scheme: "dpop", Params: map[string]string{"algs": "ES256"}}, {Scheme: "bearer"}}},
		{"bare schemes", []string{`Negotiate, Bearer`}, []Challenge{{Scheme: "negotiate"}, {Scheme: "bearer"}}},
		{"token68", []string{`Negotiate YIIBzgYGKwYBBQUCoIIB==, Bearer realm="x"`},
			[]Challenge{{Scheme: "negotiate", Token68: "YIIBzgYGKwYBBQUCoIIB=="}, {Scheme: "bearer", Params: map[string]string{"realm": "x"}}}},
		{"empty list elements and whitespace", []string{` , Bearer  realm = "x" ,, scope="y" , `},
			[]Challenge{{Scheme: "bearer", Params: map[string]string{"realm": "x", "scope": "y"}}}},
		{"escaped backslash", []string{`Bearer error_description="a\\b"`},
			[]Challenge{{Scheme: "bearer", Params: map[string]string{"error_description": `a\b`}}}},
		{"empty quoted value", []string{`Bearer scope=""`}, []Challenge{{Scheme: "bearer", Params: map[string]string{"scope": ""}}}},
		{"nothing", []string{""}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseChallenges(tc.headers)
			if err != nil {
				t.Fatalf("ParseChallenges: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseChallengesRejects: malformed headers are errors, never a
// partial or guessed parse. A repeated parameter in particular: which
// scope would the client believe?
func TestParseChallengesRejects(t *testing.T) {
	t.Parallel()
	for _, h := range []string{
		`Bearer scope="a", scope="b"`,
		`Bearer SCOPE="a", scope="b"`,
		`Bearer scope="a`,
		`Bearer scope="a\`,
		`Bearer scope=, realm="x"`,
		`Bearer scope="a" realm="b"`,
		`Bearer =x`,
		`Bearer scope="a` + "\x01" + `"`,
		`Bearer scope="a` + "\n" + `"`,
		`Bearer, =x`,
		`"Bearer"`,
		`Bearer=x`,
		`Bearer scope=a b`,
		`Bearer a==b`,
		`Bearer realm="x" extra`,
		strings.Repeat("a", maxChallengeHeader+1),
	} {
		if got, err := ParseChallenges([]string{h}); !errors.Is(err, ErrMalformedChallenge) {
			t.Errorf("ParseChallenges(%q) = %+v, %v; want ErrMalformedChallenge", h, got, err)
		}
	}
}

func TestChallengeHelpers(t *testing.T) {
	t.Parallel()
	cs, err := ParseChallenges([]string{`Basic realm="x"`, `Bearer scope="b a a"`})
	if err != nil {
		t.Fatal(err)
	}
	b, ok := bearerChallenge(cs)
	if !ok || !cmp.Equal(scopesOf(b.Params["scope"]), []string{"a", "b"}) {
		t.Errorf("bearer challenge %+v, scopes %v", b, scopesOf(b.Params["scope"]))
	}
	for _, tc := range []struct {
		in      string
		want    int64 // seconds; -1 absent
		wantErr bool
	}{{"", -1, false}, {"0", 0, false}, {"300", 300, false}, {"-1", 0, true}, {"3e2", 0, true}, {"99999999999", 0, true}} {
		d, _, err := maxAgeOf(tc.in)
		if (err != nil) != tc.wantErr || (!tc.wantErr && int64(d.Seconds()) != tc.want && !(tc.want == -1 && d == NoMaxAge)) {
			t.Errorf("maxAgeOf(%q) = %v, %v", tc.in, d, err)
		}
	}
}

// FuzzParseChallenges: ParseChallenges never panics; whatever it accepts
// formats (Challenge.String) to a header that parses back to the same
// challenges; and a challenge built from well-formed parts round-trips.
func FuzzParseChallenges(f *testing.F) {
	for _, s := range []string{
		`Bearer resource_metadata="https://x/prm", scope="a b"`,
		`Bearer error="insufficient_scope", scope="a", error_description="x\"y"`,
		`Basic realm="r", Bearer`,
		`Negotiate abc==, Bearer realm=x`,
		` , Bearer  realm = "x" ,, scope="y" , `,
		`Bearer scope="a", scope="b"`,
	} {
		f.Add(s, "bearer", "scope", "a b")
	}
	f.Fuzz(func(t *testing.T, header, scheme, name, value string) {
		cs, err := ParseChallenges([]string{header})
		if err == nil {
			parts := make([]string, len(cs))
			for i, c := range cs {
				parts[i] = c.String()
			}
			again, err := ParseChallenges([]string{strings.Join(parts, ", ")})
			if err != nil {
				t.Fatalf("formatted %q does not parse: %v", strings.Join(parts, ", "), err)
			}
			if diff := cmp.Diff(cs, again, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("round trip of %q (-first +second):\n%s", header, diff)
			}
		}
		if !validToken(scheme) || !validToken(name) || !validQuotedContent(value) {
			return
		}
		c := Challenge{Scheme: strings.ToLower(scheme), Params: map[string]string{strings.ToLower(name): value}}
		got, err := ParseChallenges([]string{c.String()})
		if err != nil {
			t.Fatalf("well-formed %q does not parse: %v", c.String(), err)
		}
		if diff := cmp.Diff([]Challenge{c}, got); diff != "" {
			t.Fatalf("round trip of %q (-want +got):\n%s", c.String(), diff)
		}
	})
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

func validQuotedContent(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isQuotedPairChar(s[i]) {
			return false
		}
	}
	return true
}
