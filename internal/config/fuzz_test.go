package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the config parser. Invariants: it
// never panics; every error is an *Error naming the file; the schema walk
// never passes what yaml's strict decoder then rejects; and a config that
// parses can be validated, redacted and rendered, without its wrapping key
// showing up in the rendering.
func FuzzParse(f *testing.F) {
	if example, err := os.ReadFile(examplePath); err == nil {
		f.Add(example)
	}
	for _, seed := range []string{
		"",
		"---\n",
		"database:\n  url: sqlite:/x.db\n  max_open_conns: 3\n",
		"database:\n  urll: x\n",
		"database:\n  max_open_conns: ten\n",
		"keys:\n  wrapping_key: c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I=\n  max_token_lifetime: 90s\n  rotate_every: 0\n",
		"keys:\n  max_token_lifetime: 3600\n",
		"log: {level: info, level: debug}\n",
		"log:\n  level: &l info\n  format: *l\n",
		"log:\n  <<: {level: info}\n",
		"log:\n  level: !!binary aW5mbw==\n",
		"listen:\n  trusted_proxies: [10.0.0.0/8, {a: 1}]\n",
		"issuers:\n  idp: http://127.0.0.1:1\n  authserver: http://127.0.0.1:1/\ndev_mode: true\n",
		"dev_mode: yes\n",
		"a: 1\n---\nb: 2\n",
		"? [a]\n: 1\n",
		"database: !!map {url: x}\n",
		"listen: !!seq []\n",
		"database:\n  max_open_conns: 0x10\n",
		"database:\n  max_open_conns: 1_000\n",
		"database:\n  max_open_conns: !!int 1.5\n",
		"keys:\n  rotate_every: !!str 1h\n",
		"dev_mode: !!bool true\n",
		"dev_mode: True\n",
		"\xef\xbb\xbfdatabase:\n  url: x\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parse("fuzz.yaml", data)
		if err != nil {
			checkErrors(t, err)
			return
		}
		if cfg == nil {
			t.Fatal("parse returned neither a config nor an error")
		}
		if err := cfg.Validate(); err != nil {
			checkValidateErrors(t, err)
		}
		rendered := cfg.String()
		slog.New(slog.NewJSONHandler(io.Discard, nil)).Info("config", "config", cfg)
		if key := cfg.Keys.WrappingKey.Reveal(); len(key) >= 8 && key != redactedText && strings.Contains(rendered, key) {
			t.Errorf("rendering shows the wrapping key %q:\n%s", key, rendered)
		}
		_ = fmt.Sprintf("%+v %#v", cfg, cfg)
	})
}

func checkErrors(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, errStrictOnly) {
		t.Fatalf("the schema walk passed a file that yaml's strict decoder rejects: %v", err)
	}
	for _, e := range flatten(err) {
		ce, ok := e.(*Error)
		if !ok {
			t.Fatalf("error %T %q is not an *Error", e, e)
		}
		if ce.File != "fuzz.yaml" {
			t.Fatalf("error %q does not name the file", ce)
		}
		if ce.Err == nil {
			t.Fatalf("error %q has no kind", ce)
		}
	}
}

func checkValidateErrors(t *testing.T, err error) {
	t.Helper()
	for _, e := range flatten(err) {
		ce, ok := e.(*Error)
		if !ok || !errors.Is(ce, ErrInvalid) {
			t.Fatalf("Validate error %T %q is not an *Error wrapping ErrInvalid", e, e)
		}
		if ce.Path == "" {
			t.Fatalf("Validate error %q names no key", ce)
		}
	}
}

// flatten undoes errors.Join.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		if _, isConfigErr := err.(*Error); !isConfigErr {
			var out []error
			for _, e := range j.Unwrap() {
				out = append(out, flatten(e)...)
			}
			return out
		}
	}
	return []error{err}
}

func BenchmarkParseExample(b *testing.B) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := parse("config.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidate(b *testing.B) {
	cfg := validConfig()
	cfg.Listen.TrustedProxies = []string{"10.0.0.0/8", "fd00::/8"}
	b.ReportAllocs()
	for b.Loop() {
		if err := cfg.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}
