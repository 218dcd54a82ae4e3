package config

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	yaml "go.yaml.in/yaml/v3"
)

const examplePath = "../../examples/config.yaml"

// leafPaths lists the dotted paths of every setting in t.
func leafPaths(t reflect.Type, path string) []string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || reflect.PointerTo(t).Implements(unmarshalerType) {
		return []string{path}
	}
	var out []string
	for _, f := range structFields(t) {
		out = append(out, leafPaths(f.typ, joinPath(path, f.name))...)
	}
	return out
}

// TestSchemaConventions keeps new sections in the shape the decoder,
// redaction and docs rely on.
func TestSchemaConventions(t *testing.T) {
	t.Parallel()
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	var check func(typ reflect.Type, path string)
	check = func(typ reflect.Type, path string) {
		if reflect.PointerTo(typ).Implements(unmarshalerType) {
			return
		}
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice:
			check(typ.Elem(), path+"[]")
		case reflect.Map:
			if typ.Key().Kind() != reflect.String {
				t.Errorf("%s: map keys must be strings, not %s", path, typ.Key())
			}
			check(typ.Elem(), path+"[]")
		case reflect.Struct:
			for i := range typ.NumField() {
				f := typ.Field(i)
				if !f.IsExported() {
					continue
				}
				tag, ok := f.Tag.Lookup("yaml")
				name, opts, _ := strings.Cut(tag, ",")
				switch {
				case !ok || name == "":
					t.Errorf("%s.%s: no explicit yaml key name", typ, f.Name)
				case !snake.MatchString(name):
					t.Errorf("%s.%s: yaml key %q is not snake_case", typ, f.Name, name)
				case opts != "":
					t.Errorf("%s.%s: yaml options %q are not supported by the schema walker", typ, f.Name, opts)
				}
				check(f.Type, joinPath(path, name))
			}
		case reflect.String, reflect.Bool,
			reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
			reflect.Float32, reflect.Float64:
		default:
			t.Errorf("%s: the schema walker does not support %s", path, typ)
		}
	}
	check(reflect.TypeFor[Config](), "")
}

// TestSchemaFieldsDocumented: every setting carries a doc comment.
func TestSchemaFieldsDocumented(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), "config.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok {
			return false
		}
		for _, field := range st.Fields.List {
			for _, name := range field.Names {
				if name.IsExported() && field.Doc == nil {
					t.Errorf("%s.%s has no doc comment", ts.Name, name)
				}
			}
		}
		return false
	})
}

func TestExampleFileLoadsAndValidates(t *testing.T) {
	t.Parallel()
	cfg, err := Load(examplePath, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the example does not validate:\n%v", err)
	}
	// The example shows the defaults, except where a value must be chosen.
	want := Default()
	want.Keys.WrappingKeyFile = "/etc/xaa/wrapping.key"
	want.Issuers = Issuers{IdP: "https://idp.example.com", AuthServer: "https://as.example.com"}
	want.Listen.TrustedProxies = []string{}
	want.AuthServer = AuthServer{
		TrustedIssuers: []TrustedIssuer{{
			Issuer:               "https://idp.example.com",
			JWKSURI:              "https://idp.example.com/jwks.json",
			Algorithms:           []string{"ES256"},
			MaxAssertionLifetime: Duration(5 * time.Minute),
		}},
		Resources: []Resource{{
			URI:                 "https://mcp.example.com/files",
			Scopes:              []string{"files:read", "files:write"},
			AccessTokenLifetime: Duration(5 * time.Minute),
		}},
		Clients: []ASClient{{
			ClientID:           "assistant-at-files",
			AuthMethod:         "client_secret_basic",
			ClientSecretSHA256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
			Resources:          []string{"https://mcp.example.com/files"},
			Scopes:             []string{"files:read"},
		}},
	}
	if diff := cmp.Diff(want, cfg, ignoreSources); diff != "" {
		t.Errorf("examples/config.yaml differs from the defaults (-default +example):\n%s", diff)
	}
}

// TestExampleFileDocumentsEveryKey: each setting appears in the example,
// as a key or as a commented-out key.
func TestExampleFileDocumentsEveryKey(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	var collect func(n *yaml.Node, path string)
	collect = func(n *yaml.Node, path string) {
		if n.Kind != yaml.MappingNode {
			present[path] = true
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			collect(n.Content[i+1], joinPath(path, n.Content[i].Value))
		}
	}
	collect(doc.Content[0], "")
	for _, path := range leafPaths(reflect.TypeFor[Config](), "") {
		if present[path] {
			continue
		}
		name := path[strings.LastIndex(path, ".")+1:]
		if !regexp.MustCompile(`(?m)^\s*#\s*` + regexp.QuoteMeta(name) + `:`).Match(data) {
			t.Errorf("examples/config.yaml does not document %s", path)
		}
	}
	if len(present) == 0 || !slices.Contains(leafPaths(reflect.TypeFor[Config](), ""), "keys.wrapping_key") {
		t.Error("leafPaths or the example parse is broken")
	}
}
