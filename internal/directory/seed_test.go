package directory

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// baseSeed is a small valid organisation that the error cases edit.
const baseSeed = `groups:
  - name: staff
  - name: eng
users:
  - username: alice
    email: alice@example.com
    password: alice-password
    totp_secret: GJTWN6SFJYRGZO7QVF56FIIUCPFO536Z
    groups: [staff, eng]
  - username: bob
    groups: [staff]
apps:
  - client_id: assistant
    name: Assistant
    auth_method: client_secret_basic
    client_secret: 0123456789abcdef0123456789abcdef
    redirect_uris: [http://127.0.0.1:8976/callback]
auth_servers:
  - issuer: https://as.example.com
    name: AS
    client_ids:
      assistant: assistant-there
resources:
  - uri: https://files.example.com/mcp
    name: Files
    auth_server: https://as.example.com
    scopes:
      - name: files:read
      - name: files:write
        sensitive: true
connections:
  - app: assistant
    resource: https://files.example.com/mcp
    groups:
      staff: [files:read]
      eng: [files:read, files:write]
    step_up:
      files:write: {acr: "urn:openxaa:acr:mfa", max_age: 10m}
    status: approved
    approver: ciso@example.com
    expires: 2030-01-01T00:00:00Z
`

func TestParseSeedBase(t *testing.T) {
	t.Parallel()
	s, err := ParseSeed("seed.yaml", []byte(baseSeed))
	if err != nil {
		t.Fatalf("base seed: %v", err)
	}
	if len(s.Users) != 2 || len(s.Connections) != 1 {
		t.Fatalf("decoded %d users, %d connections", len(s.Users), len(s.Connections))
	}
	// Secrets never show when a seed is printed.
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(verb, s.Users[0])
		if strings.Contains(out, "alice-password") || strings.Contains(out, "GJTWN6") {
			t.Errorf("fmt %s prints a secret: %s", verb, out)
		}
	}
}

func TestExampleSeedIsValid(t *testing.T) {
	t.Parallel()
	s, err := LoadSeed("../../examples/seed.yaml")
	if err != nil {
		t.Fatalf("examples/seed.yaml: %v", err)
	}
	if len(s.Users) != 3 || len(s.Apps) != 1 || len(s.AuthServers) != 1 || len(s.Resources) != 1 || len(s.Connections) != 1 {
		t.Errorf("example seed has an unexpected shape: %+v", s)
	}
}

// lineOf returns the 1-based line of the first occurrence of marker.
func lineOf(t *testing.T, doc, marker string) int {
	t.Helper()
	i := strings.Index(doc, marker)
	if i < 0 {
		t.Fatalf("marker %q not in the document", marker)
	}
	return strings.Count(doc[:i], "\n") + 1
}

func TestParseSeedErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		old, new string // edit of baseSeed ("" old: replace the whole document)
		at       string // marker of the reported line ("" : no line)
		want     []string
		kind     error
	}{
		{"unknown top-level key", "groups:", "group:", "group:", []string{"group: unknown key", `did you mean "groups"`}, ErrSeedUnknownKey},
		{"unknown nested key", "    password: alice-password", "    pasword: alice-password", "pasword", []string{"users[0].pasword", `did you mean "password"`}, ErrSeedUnknownKey},
		{"unknown key lists valid ones", "    status: approved", "    state: approved\n    status: approved", "state:", []string{"connections[0].state", "valid keys here are", "include_email"}, ErrSeedUnknownKey},
		{"yes is not a boolean", "        sensitive: true", "        sensitive: yes", "sensitive: yes", []string{"resources[0].scopes[1].sensitive", "expected true or false"}, ErrSeedType},
		{"list where a mapping belongs", "    groups:\n      staff", "    groups: [staff]\n    x_groups:\n      staff", "groups: [staff]\n    x_", []string{"connections[0].groups", "expected a mapping"}, ErrSeedType},
		{"duration without unit", "max_age: 10m", "max_age: 600", "max_age: 600", []string{`connections[0].step_up["files:write"].max_age`, "duration with a unit"}, ErrSeedType},
		{"bad expires", "expires: 2030-01-01T00:00:00Z", "expires: next year", "expires", []string{"connections[0].expires", "RFC 3339"}, ErrSeedType},
		{"duplicate key", "    name: Files\n", "    name: Files\n    name: Files again\n", "name: Files again", []string{"duplicate key", "already set on line"}, ErrSeedSyntax},
		{"alias", "  - name: eng", "  - name: &e eng\n  - name: *e", "*e", []string{"aliases"}, ErrSeedSyntax},
		{"merge key", "    name: Assistant", "    <<: {name: Assistant}", "<<", []string{"merge keys"}, ErrSeedSyntax},
		{"custom tag", "    name: Assistant", "    name: !!binary QXNzaXN0YW50", "!!binary", []string{"tags"}, ErrSeedSyntax},
		{"second document", "", baseSeed + "---\nusers: []\n", "---", []string{"second YAML document"}, ErrSeedSyntax},
		{"empty", "", "# nothing\n", "", []string{"empty"}, ErrSeedSyntax},
		{"not YAML", "", "users: [\n", "", []string{"seed.yaml"}, ErrSeedSyntax},
		{"top level is a list", "", "- users\n", "", []string{"expected a mapping"}, ErrSeedType},

		{"user in undeclared group", "    groups: [staff]\napps", "    groups: [staff, sales]\napps", "groups: [staff, sales]", []string{"users[1].groups[1]", `group "sales" is not declared`}, ErrSeedReference},
		{"username differing only in case", "  - username: bob", "  - username: ALICE", "username: ALICE", []string{"users[1].username", "already used by users[0]", "regardless of case"}, ErrSeedInvalid},
		{"bad username", "  - username: bob", "  - username: bob smith", "bob smith", []string{"users[1].username", "ASCII letters"}, ErrSeedInvalid},
		{"bad email", "alice@example.com", "alice-at-example", "alice-at-example", []string{"users[0].email"}, ErrSeedInvalid},
		{"short password", "password: alice-password", "password: short", "password: short", []string{"users[0].password", "8 to 1024 bytes"}, ErrSeedInvalid},
		{"password and hash", "    password: alice-password", "    password: alice-password\n    password_hash: $argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "password_hash", []string{"not both"}, ErrSeedInvalid},
		{"bad password hash", "  - username: bob", "  - username: bob\n    password_hash: md5:abc", "md5:abc", []string{"users[1].password_hash", "not an argon2id"}, ErrSeedInvalid},
		{"bad totp secret", "GJTWN6SFJYRGZO7QVF56FIIUCPFO536Z", "GJTWN6SFJYRGZO71", "totp_secret", []string{"users[0].totp_secret", "base32"}, ErrSeedInvalid},
		{"duplicate group", "  - name: eng", "  - name: eng\n  - name: eng", "  - name: eng\nusers", []string{"groups[2].name", "already declared"}, ErrSeedInvalid},
		{"uppercase group", "  - name: eng", "  - name: Eng", "name: Eng", []string{"groups[1].name", "lowercase"}, ErrSeedInvalid},

		{"short client secret", "client_secret: 0123456789abcdef0123456789abcdef", "client_secret: hunter2", "hunter2", []string{"apps[0].client_secret", "openssl rand"}, ErrSeedInvalid},
		{"secret and digest", "    redirect_uris:", "    client_secret_sha256: " + strings.Repeat("ab", 32) + "\n    redirect_uris:", "client_secret: 0123", []string{"apps[0].client_secret", "exactly one"}, ErrSeedInvalid},
		{"bad digest", "    client_secret: 0123456789abcdef0123456789abcdef", "    client_secret_sha256: abc", "client_secret_sha256", []string{"apps[0].client_secret_sha256", "64 hex digits"}, ErrSeedInvalid},
		{"unknown auth method", "auth_method: client_secret_basic", "auth_method: tls_client_auth", "tls_client_auth", []string{"apps[0].auth_method", "unknown auth_method"}, ErrSeedInvalid},
		{"private_key_jwt without jwks", "auth_method: client_secret_basic\n    client_secret: 0123456789abcdef0123456789abcdef", "auth_method: private_key_jwt", "client_id: assistant", []string{"apps[0].jwks", "needs its JWK Set"}, ErrSeedInvalid},
		{"private JWK", "auth_method: client_secret_basic\n    client_secret: 0123456789abcdef0123456789abcdef",
			"auth_method: private_key_jwt\n    jwks: '{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"alg\":\"EdDSA\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\",\"d\":\"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A\"}]}'",
			"jwks:", []string{"apps[0].jwks"}, ErrSeedInvalid},
		{"redirect URI on http", "http://127.0.0.1:8976/callback", "http://app.example.com/callback", "app.example.com", []string{"apps[0].redirect_uris[0]", "loopback"}, ErrSeedInvalid},
		{"redirect URI on localhost", "http://127.0.0.1:8976/callback", "http://localhost:8976/callback", "localhost", []string{"apps[0].redirect_uris[0]", "loopback IP literal"}, ErrSeedInvalid},
		{"redirect URI with fragment", "http://127.0.0.1:8976/callback", "https://app.example.com/cb#x", "cb#x", []string{"apps[0].redirect_uris[0]", "fragment"}, ErrSeedInvalid},

		{"non-canonical issuer", "  - issuer: https://as.example.com", "  - issuer: https://AS.example.com:443", "AS.example.com", []string{"auth_servers[0].issuer", `write it as "https://as.example.com"`}, ErrSeedInvalid},
		{"client_ids of an undeclared app", "      assistant: assistant-there", "      assistant: assistant-there\n      helper: helper-there", "helper:", []string{"auth_servers[0].client_ids.helper", `app "helper" is not declared`}, ErrSeedReference},

		{"resource URI with fragment", "  - uri: https://files.example.com/mcp", "  - uri: https://files.example.com/mcp#top", "#top", []string{"resources[0].uri", "fragment"}, ErrSeedInvalid},
		{"resource URI with userinfo", "  - uri: https://files.example.com/mcp", "  - uri: https://admin@files.example.com/mcp", "admin@", []string{"resources[0].uri", "user name"}, ErrSeedInvalid},
		{"resource of an undeclared AS", "    auth_server: https://as.example.com", "    auth_server: https://other.example.com", "other.example.com", []string{"resources[0].auth_server", "not declared under auth_servers"}, ErrSeedReference},
		{"scope with a space", "      - name: files:read", "      - name: files read", "files read", []string{"resources[0].scopes[0].name", "RFC 6749"}, ErrSeedInvalid},
		{"resource without scopes", "    scopes:\n      - name: files:read\n      - name: files:write\n        sensitive: true\n", "    scopes: []\n", "  - uri: https://files", []string{"resources[0]", "at least one scope"}, ErrSeedInvalid},

		{"connection of an undeclared app", "  - app: assistant", "  - app: helper", "app: helper", []string{"connections[0].app", "not declared under apps"}, ErrSeedReference},
		{"connection to an undeclared resource", "    resource: https://files.example.com/mcp", "    resource: https://files.example.com/other", "/other", []string{"connections[0].resource", "not declared under resources"}, ErrSeedReference},
		{"connection granting an unknown scope", "eng: [files:read, files:write]", "eng: [files:read, files:delete]", "eng: [files:read, files:delete]", []string{"connections[0].groups.eng[1]", `scope "files:delete" is not defined`}, ErrSeedReference},
		{"connection for an undeclared group", "      staff: [files:read]", "      sales: [files:read]", "sales:", []string{"connections[0].groups.sales", "not declared"}, ErrSeedReference},
		{"step-up for a scope not granted", "      files:write: {", "      files:admin: {", "files:admin", []string{`connections[0].step_up["files:admin"]`, "not granted"}, ErrSeedReference},
		{"duplicate connection", "", baseSeed + "  - app: assistant\n    resource: HTTPS://files.example.com:443/mcp\n    groups: {staff: [files:read]}\n    status: pending\n", "  - app: assistant\n    resource: HTTPS", []string{"connections[1]", "already connects"}, ErrSeedInvalid},
		{"ID-JAG lifetime too long", "    status: approved", "    id_jag_lifetime: 601s\n    access_token_lifetime: 900s\n    status: approved", "id_jag_lifetime", []string{"connections[0].id_jag_lifetime", "at most 10m0s"}, ErrSeedInvalid},
		{"access token shorter than ID-JAG", "    status: approved", "    id_jag_lifetime: 600s\n    status: approved", "- app: assistant", []string{"connections[0].access_token_lifetime", "at least the ID-JAG lifetime"}, ErrSeedInvalid},
		{"access token too long", "    status: approved", "    access_token_lifetime: 2h\n    status: approved", "access_token_lifetime", []string{"connections[0].access_token_lifetime", "at most 1h0m0s"}, ErrSeedInvalid},
		{"missing status", "    status: approved\n", "", "  - app: assistant", []string{"connections[0]", "status is required"}, ErrSeedInvalid},
		{"unknown status", "status: approved", "status: active", "status: active", []string{"connections[0].status", "unknown status"}, ErrSeedInvalid},
		{"approved without approver", "    approver: ciso@example.com\n", "", "  - app: assistant", []string{"connections[0]", "approver"}, ErrSeedInvalid},
		{"approved without client_id at the AS", "    client_ids:\n      assistant: assistant-there\n", "", "  - app: assistant", []string{"connections[0].app", "has no client_id at https://as.example.com"}, ErrSeedReference},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			doc := tc.new
			if tc.old != "" {
				if !strings.Contains(baseSeed, tc.old) {
					t.Fatalf("edit %q does not apply", tc.old)
				}
				doc = strings.Replace(baseSeed, tc.old, tc.new, 1)
			}
			s, err := ParseSeed("seed.yaml", []byte(doc))
			if err == nil || s != nil {
				t.Fatalf("ParseSeed accepted:\n%s", doc)
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("error %v is not %v", err, tc.kind)
			}
			msg := err.Error()
			want := tc.want
			if tc.at != "" {
				want = append(want, fmt.Sprintf("seed.yaml:%d:", lineOf(t, doc, tc.at)))
			}
			for _, w := range want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not mention %q:\n%s", w, msg)
				}
			}
			if strings.Contains(msg, "alice-password") || strings.Contains(msg, "0123456789abcdef0123456789abcdef") || strings.Contains(msg, "GJTWN6SFJYRGZO71") {
				t.Errorf("error echoes a secret:\n%s", msg)
			}
		})
	}
}

func TestParseSeedReportsEveryProblem(t *testing.T) {
	t.Parallel()
	doc := strings.NewReplacer("groups: [staff]", "groups: [sales]", "status: approved", "status: active", "name: Files", "nme: Files").Replace(baseSeed)
	_, err := ParseSeed("seed.yaml", []byte(doc))
	if err == nil {
		t.Fatal("accepted")
	}
	// Decoding stops at the unknown key; fixing it reveals the rest.
	if !strings.Contains(err.Error(), "nme") {
		t.Errorf("first pass: %v", err)
	}
	doc = strings.ReplaceAll(doc, "nme: Files", "name: Files")
	_, err = ParseSeed("seed.yaml", []byte(doc))
	var n int
	for _, w := range []string{"users[1].groups[0]", "connections[0].status"} {
		if err != nil && strings.Contains(err.Error(), w) {
			n++
		}
	}
	if n != 2 {
		t.Errorf("want both problems reported at once, got: %v", err)
	}
}

func TestLoadSeedMissingFile(t *testing.T) {
	t.Parallel()
	if _, err := LoadSeed(t.TempDir() + "/absent.yaml"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadSeed(absent) = %v", err)
	}
}

func FuzzSeedDecode(f *testing.F) {
	example, err := os.ReadFile("../../examples/seed.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte(baseSeed))
	f.Add([]byte("users: [{username: a, groups: [x]}]\n"))
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	f.Add([]byte("connections:\n  - groups: {staff: [files:read]}\n    step_up: {files:read: {max_age: 1s}}\n"))
	f.Add([]byte("---\n---\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSeed("f.yaml", data)
		if err != nil {
			if s != nil {
				t.Fatal("ParseSeed returned a seed with an error")
			}
			var se *SeedError
			if !errors.As(err, &se) {
				t.Fatalf("error is not a *SeedError: %v", err)
			}
			return
		}
		// An accepted seed compiles to store rows that pass validation.
		pl, err := s.compile()
		if err != nil {
			t.Fatalf("accepted seed does not compile: %v", err)
		}
		for _, r := range pl.resources {
			if c, err := CanonicalResource(r.URI); err != nil || c != r.URI {
				t.Fatalf("resource %q is not canonical", r.URI)
			}
		}
		for _, c := range pl.connections {
			if err := c.Validate(); err != nil {
				t.Fatalf("connection fails Validate: %v", err)
			}
		}
	})
}
