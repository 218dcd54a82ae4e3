package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeFile writes content to a new file in a temporary directory.
func writeFile(t *testing.T, name, content string, perm fs.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // umask may have masked bits
		t.Fatal(err)
	}
	return path
}

// env is a fake environment for Load's getenv.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestLoadNoFile(t *testing.T) {
	t.Parallel()
	for _, getenv := range []func(string) string{nil, env(nil)} {
		got, err := Load("", getenv)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(Default(), got, ignoreSources); diff != "" {
			t.Errorf("Load(\"\") (-want +got):\n%s", diff)
		}
	}
}

func TestLoadFile(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "config.yaml", "log:\n  level: debug\n", 0o600)
	got, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Log.Level = "debug"
	if diff := cmp.Diff(want, got, ignoreSources); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestLoadFileErrorsNameThePath(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "config.yaml", "log:\n  levle: debug\n", 0o644)
	_, err := Load(path, nil)
	want := path + `:2:3: log.levle: unknown key (did you mean "level"?)`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func TestLoadFileReadErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	huge := writeFile(t, "huge.yaml", "log: {}\n"+strings.Repeat("#", maxFileSize), 0o600)
	for _, tt := range []struct {
		name, path, want string
		is               []error
	}{
		{
			name: "missing",
			path: filepath.Join(dir, "missing.yaml"),
			want: filepath.Join(dir, "missing.yaml") + ": cannot read the config file: no such file or directory",
			is:   []error{fs.ErrNotExist},
		},
		{
			name: "directory",
			path: dir,
			want: dir + ": cannot read the config file: not a regular file (d---------)",
		},
		{
			name: "huge",
			path: huge,
			want: huge + ": cannot read the config file: file too large: larger than 1048576 bytes",
			is:   []error{ErrTooLarge},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(tt.path, nil)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			for _, target := range tt.is {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(err, %v) = false", target)
				}
			}
		})
	}
}

func TestLoadFileMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	t.Parallel()
	const (
		withKey      = "keys:\n  wrapping_key: c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I=\n"
		withPassword = "database:\n  url: postgres://xaa:hunter2@db/xaa\n"
		noSecrets    = "database:\n  url: postgres://xaa@db/xaa\n"
	)
	for _, tt := range []struct {
		name    string
		content string
		perm    fs.FileMode
		want    string // error suffix after the path; "" for success
	}{
		{"key, owner only", withKey, 0o600, ""},
		{"key, read-only owner", withKey, 0o400, ""},
		{"key, group readable", withKey, 0o640, ":2:17: keys.wrapping_key: holds a secret, but the file is readable by group or others (mode 0640); run `chmod 600 PATH`, or set keys.wrapping_key_file instead"},
		{"password, world readable", withPassword, 0o644, ":2:8: database.url: holds a secret, but the file is readable by group or others (mode 0644); run `chmod 600 PATH`, or move the URL to a file named by XAA_DATABASE_URL_FILE"},
		{"no secrets, world readable", noSecrets, 0o644, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, "config.yaml", tt.content, tt.perm)
			_, err := Load(path, nil)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			want := path + strings.ReplaceAll(tt.want, "PATH", path)
			if err == nil || err.Error() != want {
				t.Fatalf("err = %v\nwant  %s", err, want)
			}
			if !errors.Is(err, ErrInsecureFile) {
				t.Errorf("errors.Is(err, ErrInsecureFile) = false")
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestLoadEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "db-url")
	if err := os.WriteFile(urlFile, []byte("postgres://xaa:pw@db/xaa\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		file string // config file content; "" for none
		env  map[string]string
		want func(*Config)
	}{
		{
			name: "database url",
			env:  map[string]string{EnvDatabaseURL: "postgres://db/xaa"},
			want: func(c *Config) { c.Database.URL = "postgres://db/xaa" },
		},
		{
			name: "database url from a file",
			env:  map[string]string{EnvDatabaseURLFile: urlFile},
			want: func(c *Config) { c.Database.URL = "postgres://xaa:pw@db/xaa" },
		},
		{
			name: "wrapping key",
			env:  map[string]string{EnvKeysWrappingKey: "a2V5"},
			want: func(c *Config) { c.Keys.WrappingKey = "a2V5" },
		},
		{
			name: "wrapping key file",
			env:  map[string]string{EnvKeysWrappingKeyFile: "/run/secrets/key"},
			want: func(c *Config) { c.Keys.WrappingKeyFile = "/run/secrets/key" },
		},
		{
			name: "wrapping key replaces the file's key file",
			file: "keys:\n  wrapping_key_file: /etc/xaa/wrapping.key\n",
			env:  map[string]string{EnvKeysWrappingKey: "a2V5"},
			want: func(c *Config) { c.Keys.WrappingKey = "a2V5" },
		},
		{
			name: "wrapping key file replaces the file's key",
			file: "keys:\n  wrapping_key: a2V5\n",
			env:  map[string]string{EnvKeysWrappingKeyFile: "/run/secrets/key"},
			want: func(c *Config) { c.Keys.WrappingKeyFile = "/run/secrets/key" },
		},
		{
			name: "log level and listeners",
			env:  map[string]string{EnvLogLevel: "debug", EnvListenAddr: ":8443", EnvAdminAddr: ""},
			want: func(c *Config) { c.Log.Level, c.Listen.Addr = "debug", ":8443" },
		},
		{
			name: "environment wins over the file",
			file: "log:\n  level: warn\n  format: text\nlisten:\n  admin_addr: 127.0.0.1:9999\n",
			env:  map[string]string{EnvLogLevel: "error", EnvAdminAddr: "127.0.0.1:7000"},
			want: func(c *Config) { c.Log.Level, c.Log.Format, c.Listen.AdminAddr = "error", "text", "127.0.0.1:7000" },
		},
		{
			name: "empty variables are unset",
			file: "log:\n  level: warn\n",
			env:  map[string]string{EnvLogLevel: "", EnvDatabaseURL: "", EnvDatabaseURLFile: ""},
			want: func(c *Config) { c.Log.Level = "warn" },
		},
		{
			name: "unlisted variables are ignored",
			env:  map[string]string{"XAA_LOG_FORMAT": "text", "XAA_ISSUERS_IDP": "https://evil.example"},
			want: func(*Config) {},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := ""
			if tt.file != "" {
				path = writeFile(t, "config.yaml", tt.file, 0o600)
			}
			got, err := Load(path, env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			want := Default()
			tt.want(want)
			if diff := cmp.Diff(want, got, ignoreSources); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadEnvFileVariants(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range []struct {
		name, content, want string
	}{
		{"no newline", "sqlite:/a.db", "sqlite:/a.db"},
		{"one newline", "sqlite:/a.db\n", "sqlite:/a.db"},
		{"CRLF", "sqlite:/a.db\r\n", "sqlite:/a.db"},
		{"only one newline is trimmed", "sqlite:/a.db\n\n", "sqlite:/a.db\n"},
		{"spaces are kept", " sqlite:/a.db ", " sqlite:/a.db "},
		{"exactly at the cap", strings.Repeat("a", maxSecretFileSize), strings.Repeat("a", maxSecretFileSize)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := file(strings.ReplaceAll(tt.name, " ", "-"), tt.content)
			got, err := Load("", env(map[string]string{EnvDatabaseURLFile: p}))
			if err != nil {
				t.Fatal(err)
			}
			if got.Database.URL.Reveal() != tt.want {
				t.Errorf("database.url = %q, want %q", got.Database.URL.Reveal(), tt.want)
			}
		})
	}
}

func TestLoadEnvErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	newline := filepath.Join(dir, "newline")
	large := filepath.Join(dir, "large")
	for p, content := range map[string]string{empty: "", newline: "\n", large: strings.Repeat("a", maxSecretFileSize+1)} {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name string
		env  map[string]string
		want []string
		is   []error
	}{
		{
			name: "database url and its file",
			env:  map[string]string{EnvDatabaseURL: "sqlite:/a.db", EnvDatabaseURLFile: newline},
			want: []string{"XAA_DATABASE_URL: both XAA_DATABASE_URL and XAA_DATABASE_URL_FILE are set; unset one of them"},
			is:   []error{ErrEnv},
		},
		{
			name: "wrapping key and its file",
			env:  map[string]string{EnvKeysWrappingKey: "a2V5", EnvKeysWrappingKeyFile: "/k"},
			want: []string{"XAA_KEYS_WRAPPING_KEY: both XAA_KEYS_WRAPPING_KEY and XAA_KEYS_WRAPPING_KEY_FILE are set; unset one of them"},
			is:   []error{ErrEnv},
		},
		{
			name: "missing file",
			env:  map[string]string{EnvDatabaseURLFile: missing},
			want: []string{"XAA_DATABASE_URL_FILE: cannot read " + missing + ": no such file or directory"},
			is:   []error{ErrEnv, fs.ErrNotExist},
		},
		{
			name: "directory",
			env:  map[string]string{EnvDatabaseURLFile: dir},
			want: []string{"XAA_DATABASE_URL_FILE: cannot read " + dir + ": not a regular file (d---------)"},
			is:   []error{ErrEnv},
		},
		{
			name: "empty file",
			env:  map[string]string{EnvDatabaseURLFile: empty},
			want: []string{"XAA_DATABASE_URL_FILE: " + empty + " is empty"},
			is:   []error{ErrEnv},
		},
		{
			name: "file with only a newline",
			env:  map[string]string{EnvDatabaseURLFile: newline},
			want: []string{"XAA_DATABASE_URL_FILE: " + newline + " is empty"},
			is:   []error{ErrEnv},
		},
		{
			name: "file over the cap",
			env:  map[string]string{EnvDatabaseURLFile: large},
			want: []string{"XAA_DATABASE_URL_FILE: cannot read " + large + ": file too large: larger than 65536 bytes"},
			is:   []error{ErrTooLarge},
		},
		{
			name: "all problems at once",
			env: map[string]string{
				EnvDatabaseURL: "sqlite:/a.db", EnvDatabaseURLFile: empty,
				EnvKeysWrappingKey: "a2V5", EnvKeysWrappingKeyFile: "/k",
			},
			want: []string{
				"XAA_DATABASE_URL: both XAA_DATABASE_URL and XAA_DATABASE_URL_FILE are set; unset one of them",
				"XAA_KEYS_WRAPPING_KEY: both XAA_KEYS_WRAPPING_KEY and XAA_KEYS_WRAPPING_KEY_FILE are set; unset one of them",
			},
			is: []error{ErrEnv},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load("", env(tt.env))
			if err == nil {
				t.Fatal("Load succeeded; want an error")
			}
			if diff := cmp.Diff(tt.want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("error lines (-want +got):\n%s", diff)
			}
			for _, target := range tt.is {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(err, %v) = false", target)
				}
			}
		})
	}
}

// TestLoadFIFO: a FIFO named as the config file or a secret file is
// refused without blocking on open.
func TestLoadFIFO(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no FIFOs")
	}
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := mkfifo(fifo); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	if _, err := Load(fifo, nil); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Load(fifo) = %v, want a not-a-regular-file error", err)
	}
	if _, err := Load("", env(map[string]string{EnvDatabaseURLFile: fifo})); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Load with %s=fifo: %v, want a not-a-regular-file error", EnvDatabaseURLFile, err)
	}
}
