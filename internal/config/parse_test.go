package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	yaml "go.yaml.in/yaml/v3"
)

// ignoreSources compares Configs by their settings only.
var ignoreSources = cmpopts.IgnoreUnexported(Config{})

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want []string // every line of err.Error(), exactly
		kind error
	}{
		{
			name: "unknown nested key with suggestion",
			yaml: "database:\n  urll: x\n",
			want: []string{`config.yaml:2:3: database.urll: unknown key (did you mean "url"?)`},
			kind: ErrUnknownKey,
		},
		{
			name: "unknown top-level key with suggestion",
			yaml: "datbase:\n  url: x\n",
			want: []string{`config.yaml:1:1: datbase: unknown key (did you mean "database"?)`},
			kind: ErrUnknownKey,
		},
		{
			name: "transposed letters",
			yaml: "lsiten:\n  addr: x\n",
			want: []string{`config.yaml:1:1: lsiten: unknown key (did you mean "listen"?)`},
			kind: ErrUnknownKey,
		},
		{
			name: "camelCase spelling",
			yaml: "database:\n  maxOpenConns: 5\n",
			want: []string{`config.yaml:2:3: database.maxOpenConns: unknown key (did you mean "max_open_conns"?)`},
			kind: ErrUnknownKey,
		},
		{
			name: "dashed spelling",
			yaml: "listen:\n  admin-addr: x\n",
			want: []string{`config.yaml:2:3: listen.admin-addr: unknown key (did you mean "admin_addr"?)`},
			kind: ErrUnknownKey,
		},
		{
			name: "wrong case",
			yaml: "Database: {}\n",
			want: []string{`config.yaml:1:1: Database: unknown key (did you mean "database"?)`},
			kind: ErrUnknownKey,
		},
		{
			name: "unknown nested key without suggestion lists the valid keys",
			yaml: "database:\n  host: db.example.com\n",
			want: []string{`config.yaml:2:3: database.host: unknown key; valid keys in database are: url, max_open_conns`},
			kind: ErrUnknownKey,
		},
		{
			name: "unknown top-level key without suggestion",
			yaml: "frontdoor: {}\n",
			want: []string{`config.yaml:1:1: frontdoor: unknown key; valid keys at the top level are: database, keys, log, listen, issuers, dev_mode, seed_file, authserver, token_rate_limit, idp, gateway, audit, admin`},
			kind: ErrUnknownKey,
		},
		{
			name: "short unknown key gets no far-fetched suggestion",
			yaml: "log:\n  lv: info\n",
			want: []string{`config.yaml:2:3: log.lv: unknown key; valid keys in log are: level, format`},
			kind: ErrUnknownKey,
		},
		{
			name: "very long unknown key is shortened",
			yaml: "log:\n  " + strings.Repeat("k", 100) + ": 1\n",
			want: []string{`config.yaml:2:3: log.` + strings.Repeat("k", 40) + `...: unknown key; valid keys in log are: level, format`},
			kind: ErrUnknownKey,
		},
		{
			name: "word for an integer",
			yaml: "database:\n  max_open_conns: ten\n",
			want: []string{`config.yaml:2:19: database.max_open_conns: expected an integer, got "ten"`},
			kind: ErrType,
		},
		{
			name: "fraction for an integer",
			yaml: "database:\n  max_open_conns: 1.5\n",
			want: []string{`config.yaml:2:19: database.max_open_conns: expected an integer, got "1.5"`},
			kind: ErrType,
		},
		{
			name: "quoted integer",
			yaml: "database:\n  max_open_conns: \"10\"\n",
			want: []string{`config.yaml:2:19: database.max_open_conns: expected an integer, got "10"`},
			kind: ErrType,
		},
		{
			name: "string-tagged integer",
			yaml: "database:\n  max_open_conns: !!str 10\n",
			want: []string{`config.yaml:2:19: database.max_open_conns: expected an integer, got "10"`},
			kind: ErrType,
		},
		{
			name: "integer out of range",
			yaml: "database:\n  max_open_conns: 9223372036854775808\n",
			want: []string{`config.yaml:2:19: database.max_open_conns: the integer "9223372036854775808" is out of range`},
			kind: ErrType,
		},
		{
			name: "list for an integer",
			yaml: "database:\n  max_open_conns: [1]\n",
			want: []string{`config.yaml:2:19: database.max_open_conns: expected an integer, got a list`},
			kind: ErrType,
		},
		{
			name: "yes for a boolean",
			yaml: "dev_mode: yes\n",
			want: []string{`config.yaml:1:11: dev_mode: expected true or false, got "yes"`},
			kind: ErrType,
		},
		{
			name: "number for a boolean",
			yaml: "dev_mode: 1\n",
			want: []string{`config.yaml:1:11: dev_mode: expected true or false, got "1"`},
			kind: ErrType,
		},
		{
			name: "duration without unit",
			yaml: "keys:\n  max_token_lifetime: 3600\n",
			want: []string{`config.yaml:2:23: keys.max_token_lifetime: expected a duration with a unit, got "3600"; write for example "3600s" for seconds`},
			kind: ErrType,
		},
		{
			name: "quoted duration without unit",
			yaml: "keys:\n  max_token_lifetime: \"1.5\"\n",
			want: []string{`config.yaml:2:23: keys.max_token_lifetime: expected a duration with a unit, got "1.5"; write for example "1.5s" for seconds`},
			kind: ErrType,
		},
		{
			name: "negative duration",
			yaml: "keys:\n  rotate_every: -1h\n",
			want: []string{`config.yaml:2:17: keys.rotate_every: must not be negative, got "-1h"`},
			kind: ErrType,
		},
		{
			name: "word for a duration",
			yaml: "keys:\n  rotate_every: soon\n",
			want: []string{`config.yaml:2:17: keys.rotate_every: expected a duration such as "90s", "5m" or "1h30m", got "soon"`},
			kind: ErrType,
		},
		{
			name: "mapping for a duration",
			yaml: "keys:\n  rotate_every: {h: 1}\n",
			want: []string{`config.yaml:2:17: keys.rotate_every: expected a duration such as "90s" or "5m", got a mapping`},
			kind: ErrType,
		},
		{
			name: "mapping for a string",
			yaml: "log:\n  level:\n    x: 1\n",
			want: []string{`config.yaml:3:5: log.level: expected a string, got a mapping`},
			kind: ErrType,
		},
		{
			name: "list for a string",
			yaml: "listen:\n  addr: [a]\n",
			want: []string{`config.yaml:2:9: listen.addr: expected a string, got a list`},
			kind: ErrType,
		},
		{
			name: "value for a section is not repeated",
			yaml: "database: postgres://app:hunter2@db/xaa\n",
			want: []string{`config.yaml:1:11: database: expected a mapping of settings, got a single value`},
			kind: ErrType,
		},
		{
			name: "value for a list",
			yaml: "listen:\n  trusted_proxies: 10.0.0.0/8\n",
			want: []string{`config.yaml:2:20: listen.trusted_proxies: expected a list, got a single value`},
			kind: ErrType,
		},
		{
			name: "wrong type inside a list",
			yaml: "listen:\n  trusted_proxies: [10.0.0.0/8, {a: 1}]\n",
			want: []string{`config.yaml:2:33: listen.trusted_proxies[1]: expected a string, got a mapping`},
			kind: ErrType,
		},
		{
			name: "duplicate key",
			yaml: "database:\n  url: sqlite:a.db\n  url: sqlite:b.db\n",
			want: []string{`config.yaml:3:3: database.url: duplicate key; it is already set on line 2`},
			kind: ErrDuplicateKey,
		},
		{
			name: "duplicate section",
			yaml: "log:\n  level: info\nlog:\n  format: text\n",
			want: []string{`config.yaml:3:1: log: duplicate key; it is already set on line 1`},
			kind: ErrDuplicateKey,
		},
		{
			name: "duplicate key in flow mapping",
			yaml: "log: {level: info, level: debug}\n",
			want: []string{`config.yaml:1:20: log.level: duplicate key; it is already set on line 1`},
			kind: ErrDuplicateKey,
		},
		{
			name: "two documents",
			yaml: "log:\n  level: info\n---\nlog:\n  level: debug\n",
			want: []string{`config.yaml:3:1: a second YAML document starts here; a config file holds exactly one, so remove this "---" or split the file`},
			kind: ErrSyntax,
		},
		{
			name: "trailing empty document",
			yaml: "log:\n  level: info\n---\n",
			want: []string{`config.yaml:3:1: a second YAML document starts here; a config file holds exactly one, so remove this "---" or split the file`},
			kind: ErrSyntax,
		},
		{
			name: "empty file",
			yaml: "",
			want: []string{`config.yaml: holds no settings (it is empty or only comments); fill it in from examples/config.yaml, or start without a config file to use the defaults`},
			kind: ErrSyntax,
		},
		{
			name: "only comments",
			yaml: "# database:\n#   url: x\n",
			want: []string{`config.yaml: holds no settings (it is empty or only comments); fill it in from examples/config.yaml, or start without a config file to use the defaults`},
			kind: ErrSyntax,
		},
		{
			name: "only a document marker",
			yaml: "---\n",
			want: []string{`config.yaml: holds no settings (it is empty or only comments); fill it in from examples/config.yaml, or start without a config file to use the defaults`},
			kind: ErrSyntax,
		},
		{
			name: "null document",
			yaml: "~\n",
			want: []string{`config.yaml: holds no settings (it is empty or only comments); fill it in from examples/config.yaml, or start without a config file to use the defaults`},
			kind: ErrSyntax,
		},
		{
			name: "list at the top level",
			yaml: "- database\n",
			want: []string{`config.yaml:1:1: expected a mapping of settings such as "database:" at the top level, got a list`},
			kind: ErrSyntax,
		},
		{
			name: "scalar at the top level",
			yaml: "hello\n",
			want: []string{`config.yaml:1:1: expected a mapping of settings such as "database:" at the top level, got "hello"`},
			kind: ErrSyntax,
		},
		{
			name: "YAML syntax error",
			yaml: "database:\n  url: \"\\xZZ\"\n",
			want: []string{`config.yaml:2: did not find expected hexdecimal number`},
			kind: ErrSyntax,
		},
		{
			name: "YAML syntax error on the first line",
			yaml: "a: b: c\n",
			want: []string{`config.yaml: mapping values are not allowed in this context`},
			kind: ErrSyntax,
		},
		{
			name: "alias",
			yaml: "log:\n  level: &l info\n  format: *l\n",
			want: []string{`config.yaml:3:11: log.format: YAML aliases (*l) are not supported; write the value out in full`},
			kind: ErrSyntax,
		},
		{
			name: "merge key",
			yaml: "log:\n  <<: {level: info}\n",
			want: []string{`config.yaml:2:3: log: merge keys (<<) are not supported; write the keys out in full`},
			kind: ErrSyntax,
		},
		{
			name: "explicit tag",
			yaml: "log:\n  level: !!int 3\n",
			want: []string{`config.yaml:2:10: log.level: explicit YAML tags ("!!int") are not supported; remove the tag`},
			kind: ErrSyntax,
		},
		{
			name: "custom tag",
			yaml: "database:\n  url: !env DATABASE_URL\n",
			want: []string{`config.yaml:2:8: database.url: explicit YAML tags ("!env") are not supported; remove the tag`},
			kind: ErrSyntax,
		},
		{
			name: "binary tag",
			yaml: "keys:\n  wrapping_key: !!binary AAAA\n",
			want: []string{`config.yaml:2:17: keys.wrapping_key: explicit YAML tags ("!!binary") are not supported; remove the tag`},
			kind: ErrSyntax,
		},
		{
			name: "complex key",
			yaml: "? [a]\n: 1\n",
			want: []string{`config.yaml:1:3: expected a key name, got a list`},
			kind: ErrSyntax,
		},
		{
			name: "every problem at once, in file order",
			yaml: "database:\n  urll: x\n  max_open_conns: ten\nlog:\n  level: info\n  level: debug\ndev_mode: yes\n",
			want: []string{
				`config.yaml:2:3: database.urll: unknown key (did you mean "url"?)`,
				`config.yaml:3:19: database.max_open_conns: expected an integer, got "ten"`,
				`config.yaml:6:3: log.level: duplicate key; it is already set on line 5`,
				`config.yaml:7:11: dev_mode: expected true or false, got "yes"`,
			},
			kind: ErrUnknownKey,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := parse("config.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("parse succeeded with %+v; want an error", cfg)
			}
			if diff := cmp.Diff(tt.want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("error lines (-want +got):\n%s", diff)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("errors.Is(err, %v) = false; err = %v", tt.kind, err)
			}
			if errors.Is(err, errStrictOnly) {
				t.Errorf("the schema walk missed a problem that yaml's decoder found: %v", err)
			}
		})
	}
}

func TestParseErrorsAreCapped(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("log:\n")
	for i := range 30 {
		fmt.Fprintf(&b, "  unknown%d: x\n", i)
	}
	_, err := parse("config.yaml", []byte(b.String()))
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != maxErrors+1 {
		t.Fatalf("got %d lines, want %d:\n%v", len(lines), maxErrors+1, err)
	}
	if got, want := lines[maxErrors], "config.yaml: 10 more problems not shown"; got != want {
		t.Errorf("last line = %q, want %q", got, want)
	}
	if !errors.Is(err, ErrUnknownKey) {
		t.Errorf("errors.Is(err, ErrUnknownKey) = false")
	}
}

func TestParseErrorType(t *testing.T) {
	t.Parallel()
	_, err := parse("config.yaml", []byte("database:\n  urll: x\n"))
	e, ok := errors.AsType[*Error](err)
	if !ok {
		t.Fatalf("error %T is not an *Error", err)
	}
	want := Error{File: "config.yaml", Line: 2, Column: 3, Path: "database.urll", Msg: `unknown key (did you mean "url"?)`, Err: ErrUnknownKey}
	if diff := cmp.Diff(want, *e, cmpopts.EquateErrors()); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
}

func TestParseTooLarge(t *testing.T) {
	t.Parallel()
	data := []byte("log:\n  level: info\n" + strings.Repeat("#", maxFileSize))
	_, err := parse("config.yaml", data)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if got, want := err.Error(), "config.yaml: larger than 1048576 bytes; is this the config file?"; got != want {
		t.Errorf("err = %q, want %q", got, want)
	}
}

func TestParseValues(t *testing.T) {
	t.Parallel()
	const file = `
database:
  url: "postgres://xaa@db.example.com:5432/xaa?sslmode=verify-full"
  max_open_conns: 25
keys:
  wrapping_key_file: /run/secrets/wrapping.key
  algorithm: EdDSA
  max_token_lifetime: 30m
  rotate_every: 0
log:
  level: debug
  format: text
listen:
  addr: ":8443"
  admin_addr: "[::1]:9090"
  tls_cert_file: /etc/xaa/tls.crt
  tls_key_file: /etc/xaa/tls.key
  trusted_proxies: [10.0.0.0/8, "fd00::/8"]
issuers:
  idp: https://idp.example.com
  authserver: https://as.example.com/tenant-a
dev_mode: true
token_rate_limit:
  per_client: 2.5
  per_address: 50
  burst: 5
  disabled: true
`
	got, err := parse("config.yaml", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Database: Database{URL: "postgres://xaa@db.example.com:5432/xaa?sslmode=verify-full", MaxOpenConns: 25},
		Keys: Keys{
			WrappingKeyFile:  "/run/secrets/wrapping.key",
			Algorithm:        "EdDSA",
			MaxTokenLifetime: Duration(30 * time.Minute),
			RotateEvery:      0,
		},
		Log: Log{Level: "debug", Format: "text"},
		Listen: Listen{
			Addr:           ":8443",
			AdminAddr:      "[::1]:9090",
			TLSCertFile:    "/etc/xaa/tls.crt",
			TLSKeyFile:     "/etc/xaa/tls.key",
			TrustedProxies: []string{"10.0.0.0/8", "fd00::/8"},
		},
		Issuers:        Issuers{IdP: "https://idp.example.com", AuthServer: "https://as.example.com/tenant-a"},
		DevMode:        true,
		TokenRateLimit: TokenRateLimit{PerClient: 2.5, PerAddress: 50, Burst: 5, Disabled: true},
		IdP:            IdP{MFA: MFAAlways},
	}
	if diff := cmp.Diff(want, got, ignoreSources); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

// TestParseKeepsDefaults: keys the file leaves out, leaves empty or
// comments out keep their defaults.
func TestParseKeepsDefaults(t *testing.T) {
	t.Parallel()
	const file = `
database:
  url:
listen:
  # addr: ":80"
log:
  level: warn
keys:
`
	got, err := parse("config.yaml", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Log.Level = "warn"
	if diff := cmp.Diff(want, got, ignoreSources); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestParseStringForms(t *testing.T) {
	t.Parallel()
	// A string setting takes any scalar, as written: Validate judges it.
	got, err := parse("config.yaml", []byte("listen:\n  addr: 8080\n  admin_addr: !!str 9090\nlog:\n  level: 'info'\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Listen.Addr != "8080" || got.Listen.AdminAddr != "9090" || got.Log.Level != "info" {
		t.Errorf("got addr %q, admin_addr %q, level %q", got.Listen.Addr, got.Listen.AdminAddr, got.Log.Level)
	}
}

func TestParseRecordsSources(t *testing.T) {
	t.Parallel()
	cfg, err := parse("config.yaml", []byte("log:\n  level: loud\nlisten:\n  trusted_proxies:\n    - 10.0.0.0/8\n    - 10.0.0.1/8\ndatabase:\n  url:\n"))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]source{
		"log.level":                 {file: "config.yaml", line: 2, col: 10},
		"listen.trusted_proxies[1]": {file: "config.yaml", line: 6, col: 7},
		"database.url":              {file: "config.yaml", line: 8, col: 3}, // the key: its value is empty
	} {
		if got := cfg.sources[path]; got != want {
			t.Errorf("sources[%q] = %+v, want %+v", path, got, want)
		}
	}
}

// TestYAMLLibraryIsStrict pins the yaml behaviour that parse's second pass
// relies on, so an upgrade that loosens it fails here.
func TestYAMLLibraryIsStrict(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, yaml, want string }{
		{"duplicate keys", "log:\n  level: info\n  level: debug\n", `mapping key "level" already defined at line 2`},
		{"unknown keys", "log:\n  levle: info\n", "field levle not found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dec := yaml.NewDecoder(strings.NewReader(tt.yaml))
			dec.KnownFields(true)
			var cfg Config
			err := dec.Decode(&cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("yaml error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	t.Parallel()
	known := []string{"url", "max_open_conns", "level", "format", "addr", "admin_addr"}
	for _, tt := range []struct{ key, want string }{
		{"urll", "url"},
		{"ulr", "url"},
		{"URL", "url"},
		{"max_open_con", "max_open_conns"},
		{"MaxOpenConns", "max_open_conns"},
		{"lvel", "level"},
		{"fromat", "format"},
		{"adr", "addr"},
		{"admin_adr", "admin_addr"},
		{"xyz", ""},
		{"u", ""},
		{"", ""},
		{strings.Repeat("a", 1<<16), ""},
	} {
		if got := suggest(tt.key, known); got != tt.want {
			t.Errorf("suggest(%.20q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"url", "url", 0},
		{"url", "urll", 1},
		{"url", "ulr", 1},
		{"level", "lvel", 1},
		{"kitten", "sitting", 3},
		{"ca", "abc", 3},
		{"abc", "xyz", 3},
		{"é", "e", 1},
	} {
		if got := editDistance(tt.a, tt.b, 10); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := editDistance(tt.a, tt.b, 2); got != min(tt.want, 2) {
			t.Errorf("editDistance(%q, %q, limit 2) = %d, want %d", tt.a, tt.b, got, min(tt.want, 2))
		}
	}
}

func TestDuration(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "0", want: 0},
		{in: "0s", want: 0},
		{in: "90s", want: 90 * time.Second},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "1.5h", want: 90 * time.Minute},
		{in: "+5m", want: 5 * time.Minute},
		{in: "5", wantErr: `expected a duration with a unit, got "5"; write for example "5s" for seconds`},
		{in: "-5", wantErr: `expected a duration with a unit, got "-5"; write for example "-5s" for seconds`},
		{in: "-5m", wantErr: `must not be negative, got "-5m"`},
		{in: "5 m", wantErr: `expected a duration such as "90s", "5m" or "1h30m", got "5 m"`},
		{in: "", wantErr: `expected a duration such as "90s", "5m" or "1h30m", got ""`},
		{in: "1d", wantErr: `expected a duration such as "90s", "5m" or "1h30m", got "1d"`},
		{in: "9999999999h", wantErr: `expected a duration such as "90s", "5m" or "1h30m", got "9999999999h"`},
	} {
		got, err := parseDuration(tt.in)
		switch {
		case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
			t.Errorf("parseDuration(%q) error = %v, want %q", tt.in, err, tt.wantErr)
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestDurationRoundTrip(t *testing.T) {
	t.Parallel()
	in := Duration(90 * time.Minute)
	out, err := yaml.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var back Duration
	if err := yaml.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if back != in {
		t.Errorf("round trip: %v -> %q -> %v", in, out, back)
	}
}

// TestParseHostileInputs: inputs built to exhaust a YAML parser end in an
// error. (A regression would show up as a test timeout.)
func TestParseHostileInputs(t *testing.T) {
	t.Parallel()
	laughs := "a: &a [x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for _, name := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		laughs += fmt.Sprintf("%s: &%s [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n", name, name, prev, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = name
	}
	laughs += "listen:\n  trusted_proxies: *i\n"
	for _, tt := range []struct {
		name, yaml string
		kind       error
	}{
		{"billion laughs", laughs, ErrUnknownKey},
		{"aliases under a known key", "listen:\n  trusted_proxies: &p [a]\nissuers: {idp: *p}\n", ErrSyntax},
		{"deep flow nesting", "listen:\n  trusted_proxies: " + strings.Repeat("[", 200_000) + strings.Repeat("]", 200_000) + "\n", ErrSyntax},
		{"deep block nesting", "log:\n" + func() string {
			var b strings.Builder
			for i := range 1000 {
				b.WriteString(strings.Repeat(" ", i+2) + "a:\n")
			}
			return b.String()
		}(), ErrUnknownKey},
		{"huge key", "? " + strings.Repeat("k", maxFileSize-10) + "\n: 1\n", ErrUnknownKey},
		{"huge duration", "keys:\n  rotate_every: " + strings.Repeat("9", maxFileSize-30) + "\n", ErrType},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parse("config.yaml", []byte(tt.yaml))
			if !errors.Is(err, tt.kind) {
				t.Fatalf("err = %.300v, want %v", err, tt.kind)
			}
			if len(err.Error()) > 4096 {
				t.Errorf("error message is %d bytes long", len(err.Error()))
			}
		})
	}
}
