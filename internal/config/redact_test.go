package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	yaml "go.yaml.in/yaml/v3"
)

// Secret markers: no rendering of a Config may contain them.
const (
	keyMarker      = "S3CRET-WRAPPING-KEY-MARKER"
	passwordMarker = "S3CRET-DB-PASSWORD-MARKER"
)

func configWithSecrets() *Config {
	c := validConfig()
	c.Keys.WrappingKeyFile = ""
	c.Keys.WrappingKey = keyMarker
	c.Database.URL = SecretURL("postgres://xaa:" + passwordMarker + "@db.example.com/xaa?sslpassword=" + passwordMarker + "&sslmode=verify-full")
	c.Listen.TrustedProxies = []string{"10.0.0.0/8"}
	// Lists set, not nil: a nil list renders as [] and parses back empty.
	c.AuthServer = validAuthServerConfig().AuthServer
	c.AuthServer.TrustedIssuers[0].Algorithms = []string{"ES256"}
	c.AuthServer.Clients[0].Scopes = []string{"files:read"}
	return c
}

// TestNoRenderingLeaksSecrets greps every way a Config gets printed or
// logged for the secret markers.
func TestNoRenderingLeaksSecrets(t *testing.T) {
	t.Parallel()
	c := configWithSecrets()
	renderings := map[string]string{
		"String":           c.String(),
		"Redacted.String":  c.Redacted().String(),
		"fmt %v pointer":   fmt.Sprintf("%v", c),
		"fmt %v value":     fmt.Sprintf("%v", *c),
		"fmt %+v pointer":  fmt.Sprintf("%+v", c),
		"fmt %+v value":    fmt.Sprintf("%+v", *c),
		"fmt %#v pointer":  fmt.Sprintf("%#v", c),
		"fmt %#v value":    fmt.Sprintf("%#v", *c),
		"fmt %s":           fmt.Sprintf("%s", c), //lint:ignore S1025 the verb is what is tested
		"fmt %v Keys":      fmt.Sprintf("%v", c.Keys),
		"fmt %+v Database": fmt.Sprintf("%+v", c.Database),
		"fmt %#v Database": fmt.Sprintf("%#v", c.Database),
		"fmt %q Secret":    fmt.Sprintf("%q", c.Keys.WrappingKey),
	}
	if b, err := yaml.Marshal(c); err == nil {
		renderings["yaml.Marshal"] = string(b)
	} else {
		t.Errorf("yaml.Marshal: %v", err)
	}
	if b, err := json.Marshal(c); err == nil {
		renderings["json.Marshal"] = string(b)
	} else {
		t.Errorf("json.Marshal: %v", err)
	}
	for name, h := range map[string]func(*bytes.Buffer) slog.Handler{
		"slog JSON": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		"slog text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		var buf bytes.Buffer
		log := slog.New(h(&buf))
		log.Info("pointer", "config", c)
		log.Info("value", "config", *c)
		log.Info("sections", "keys", c.Keys, "database", c.Database, "key", c.Keys.WrappingKey, "url", c.Database.URL)
		renderings[name] = buf.String()
	}
	for name, out := range renderings {
		if strings.Contains(out, keyMarker) || strings.Contains(out, passwordMarker) {
			t.Errorf("%s leaks a secret:\n%s", name, out)
		}
	}
	// The renderings still say what is configured.
	for _, name := range []string{"String", "slog JSON", "slog text"} {
		if !strings.Contains(renderings[name], "db.example.com") || !strings.Contains(renderings[name], "xxxxx") {
			t.Errorf("%s lost the non-secret parts:\n%s", name, renderings[name])
		}
	}
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	c := configWithSecrets()
	before := *c
	r := c.Redacted()

	if got, want := string(r.Keys.WrappingKey), "xxxxx"; got != want {
		t.Errorf("wrapping key = %q, want %q", got, want)
	}
	if got, want := r.Database.URL.Reveal(), "postgres://xaa:xxxxx@db.example.com/xaa?sslmode=verify-full&sslpassword=xxxxx"; got != want {
		t.Errorf("database url = %q, want %q", got, want)
	}
	// A deep copy: changing it leaves c alone.
	r.Listen.TrustedProxies[0] = "192.0.2.0/24"
	r.AuthServer.TrustedIssuers[0].Algorithms[0] = "PS256"
	r.AuthServer.Resources[0].Scopes[0] = "x"
	r.AuthServer.Clients[0].Resources[0] = "x"
	r.AuthServer.Clients[0].Scopes[0] = "x"
	r.Log.Level = "debug"
	if diff := cmp.Diff(before, *c, ignoreSources); diff != "" {
		t.Errorf("Redacted changed its receiver (-before +after):\n%s", diff)
	}
	if c.Keys.WrappingKey.Reveal() != keyMarker {
		t.Error("Redacted changed the original's key")
	}
	// Unset secrets stay visibly unset.
	empty := validConfig().Redacted()
	if empty.Keys.WrappingKey != "" {
		t.Errorf("unset wrapping key redacted to %q", empty.Keys.WrappingKey)
	}
}

func TestRedactedString(t *testing.T) {
	t.Parallel()
	c := configWithSecrets()
	// The rendering is the file format: it parses back.
	back, err := parse("rendered.yaml", []byte(c.String()))
	if err != nil {
		t.Fatalf("String() does not parse back: %v\n%s", err, c)
	}
	if diff := cmp.Diff(c.Redacted(), back, ignoreSources); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"sqlite:/var/lib/xaa/xaa.db", "sqlite:/var/lib/xaa/xaa.db"},
		{"sqlite:xaa.db?_pragma=busy_timeout(5000)", "sqlite:xaa.db?_pragma=busy_timeout(5000)"},
		{"file:xaa.db?mode=rwc", "file:xaa.db?mode=rwc"},
		{"postgres://xaa@db/xaa?sslmode=verify-full", "postgres://xaa@db/xaa?sslmode=verify-full"},
		{"postgres://xaa:pw@db/xaa", "postgres://xaa:xxxxx@db/xaa"},
		{"postgresql://xaa:p%40ss@db:5432/xaa", "postgresql://xaa:xxxxx@db:5432/xaa"},
		{"postgres://xaa:@db/xaa", "postgres://xaa:xxxxx@db/xaa"},
		{"postgres://db/xaa?user=xaa&password=pw", "postgres://db/xaa?password=xxxxx&user=xaa"},
		{"postgres://db/xaa?PASSWORD=pw", "postgres://db/xaa?PASSWORD=xxxxx"},
		{"postgres://db/xaa?sslpassword=pw&sslmode=require", "postgres://db/xaa?sslmode=require&sslpassword=xxxxx"},
		{"postgres://db/xaa?auth_token=tok", "postgres://db/xaa?auth_token=xxxxx"},
		{"sqlite:x.db?_auth_pass=pw&secret=s&mode=ro", "sqlite:x.db?_auth_pass=xxxxx&mode=ro&secret=xxxxx"},
		{"postgres:xaa:pw@db/xaa", "xxxxx"},      // opaque: no telling where the password is
		{"host=db password=pw", "xxxxx"},         // keyword/value DSN
		{"mysql://root:pw@db/xaa", "xxxxx"},      // a scheme this package does not read
		{"postgres://xaa:pw%zz@db/xaa", "xxxxx"}, // does not parse
		{"postgres://db/xaa?password=%zz", "xxxxx"},
	} {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := SecretURL(tt.in).String(); got != tt.want {
			t.Errorf("SecretURL(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestURLHasPassword(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{
		"":                                   false,
		"sqlite:/var/lib/xaa/xaa.db":         false,
		"postgres://xaa@db/xaa":              false,
		"mysql://db/xaa":                     false,
		"postgres://xaa:pw@db/xaa":           true,
		"postgres://db/xaa?password=pw":      true,
		"postgres://db/xaa?sslpassword=pw":   true,
		"host=db password=pw":                true,
		"postgres://xaa:pw%zz@db/password":   true,
		"postgres://db/xaa?password=%zz&a=b": true,
	} {
		if got := urlHasPassword(in); got != want {
			t.Errorf("urlHasPassword(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestSecret(t *testing.T) {
	t.Parallel()
	s := Secret("hunter2")
	for name, got := range map[string]string{
		"String":   s.String(),
		"%v":       fmt.Sprintf("%v", s),
		"%s":       fmt.Sprintf("%s", s), //lint:ignore S1025 the verb is what is tested
		"%q":       fmt.Sprintf("%q", s),
		"%#v":      fmt.Sprintf("%#v", s),
		"LogValue": s.LogValue().String(),
	} {
		if strings.Contains(got, "hunter2") {
			t.Errorf("%s = %q leaks the secret", name, got)
		}
	}
	if s.Reveal() != "hunter2" {
		t.Errorf("Reveal = %q", s.Reveal())
	}
	if Secret("").String() != "" {
		t.Errorf("an empty Secret prints %q, want \"\"", Secret("").String())
	}
}

// TestSecretFieldsAreTyped guards future sections: a string setting whose
// name says it is secret must use Secret or SecretURL, so that it cannot
// be printed by accident.
func TestSecretFieldsAreTyped(t *testing.T) {
	t.Parallel()
	sensitive := regexp.MustCompile(`(key|secret|password|passwd|token|credential|url|dsn)$`)
	var check func(typ reflect.Type, path string)
	check = func(typ reflect.Type, path string) {
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map:
			check(typ.Elem(), path+"[]")
		case reflect.Struct:
			for _, f := range structFields(typ) {
				check(f.typ, joinPath(path, f.name))
			}
		case reflect.String:
			name := path[strings.LastIndex(path, ".")+1:]
			if sensitive.MatchString(name) && typ != secretType && typ != secretURLType {
				t.Errorf("%s looks secret but is a plain %s; make it a Secret or SecretURL", path, typ)
			}
		}
	}
	check(reflect.TypeFor[Config](), "")
}

// TestRedactedCoversEverySecretField guards Redacted, which is written by
// hand: every Secret and SecretURL in the schema, including ones added
// later, must come out redacted.
func TestRedactedCoversEverySecretField(t *testing.T) {
	t.Parallel()
	const marker = "REDACTION-MARKER"
	c := validConfig()
	var fill func(v reflect.Value)
	fill = func(v reflect.Value) {
		switch {
		case v.Type() == secretType:
			v.SetString(marker)
		case v.Type() == secretURLType:
			v.SetString("postgres://u:" + marker + "@db/xaa")
		case v.Kind() == reflect.Struct:
			for _, f := range structFields(v.Type()) {
				fill(v.Field(f.index))
			}
		}
	}
	fill(reflect.ValueOf(c).Elem())
	var find func(v reflect.Value, path string)
	find = func(v reflect.Value, path string) {
		switch v.Kind() {
		case reflect.String:
			if strings.Contains(v.String(), marker) {
				t.Errorf("Redacted leaves %s = %q", path, v.String())
			}
		case reflect.Struct:
			for _, f := range structFields(v.Type()) {
				find(v.Field(f.index), joinPath(path, f.name))
			}
		case reflect.Slice, reflect.Array:
			for i := range v.Len() {
				find(v.Index(i), fmt.Sprintf("%s[%d]", path, i))
			}
		case reflect.Pointer:
			if !v.IsNil() {
				find(v.Elem(), path)
			}
		}
	}
	find(reflect.ValueOf(c.Redacted()).Elem(), "")
}
