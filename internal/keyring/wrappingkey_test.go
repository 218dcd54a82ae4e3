package keyring

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sampleKey is a fixed non-zero key with bytes that differ between the
// standard and URL base64 alphabets.
var sampleKey = bytes.Repeat([]byte{0xfb, 0xff, 0xbf}, 11)[:WrappingKeySize]

func TestParseWrappingKey(t *testing.T) {
	t.Parallel()
	valid := []struct {
		name, in string
	}{
		{"standard padded", base64.StdEncoding.EncodeToString(sampleKey)},
		{"standard raw", base64.RawStdEncoding.EncodeToString(sampleKey)},
		{"url padded", base64.URLEncoding.EncodeToString(sampleKey)},
		{"url raw", base64.RawURLEncoding.EncodeToString(sampleKey)},
		{"trailing newline", base64.StdEncoding.EncodeToString(sampleKey) + "\n"},
		{"surrounding spaces", "  " + base64.StdEncoding.EncodeToString(sampleKey) + "\t\r\n"},
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseWrappingKey(tt.in)
			if err != nil {
				t.Fatalf("ParseWrappingKey: %v", err)
			}
			if !bytes.Equal(got, sampleKey) {
				t.Errorf("got %x, want %x", got, sampleKey)
			}
		})
	}

	std := base64.StdEncoding.EncodeToString(sampleKey)
	invalid := []struct {
		name, in string
	}{
		{"empty", ""},
		{"whitespace", " \n\t"},
		{"not base64", "this is not a base64 key at all, no way!!!!"},
		{"mixed alphabets", strings.Replace(base64.URLEncoding.EncodeToString(sampleKey), "_", "/", 1)},
		{"too much padding", std + "=="},
		{"padding in the middle", std[:20] + "=" + std[21:]},
		{"space inside", std[:20] + " " + std[20:]},
		{"31 bytes", base64.StdEncoding.EncodeToString(sampleKey[:31])},
		{"33 bytes", base64.StdEncoding.EncodeToString(append(bytes.Clone(sampleKey), 1))},
		{"16 bytes", base64.StdEncoding.EncodeToString(sampleKey[:16])},
		{"64 bytes", base64.StdEncoding.EncodeToString(bytes.Repeat(sampleKey, 2))},
		{"all zero", base64.StdEncoding.EncodeToString(make([]byte, 32))},
		{"all zero raw url", base64.RawURLEncoding.EncodeToString(make([]byte, 32))},
		{"hex instead of base64", "fbffbffbffbffbffbffbffbffbffbffbffbffbffbffbffbffbffbffbffbffbff"},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseWrappingKey(tt.in)
			if !errors.Is(err, ErrInvalidWrappingKey) || got != nil {
				t.Fatalf("ParseWrappingKey = %x, %v; want ErrInvalidWrappingKey", got, err)
			}
			if s := strings.TrimSpace(tt.in); len(s) > 4 && strings.Contains(err.Error(), s) {
				t.Errorf("error echoes the input: %v", err)
			}
		})
	}
}

func TestGenerateWrappingKey(t *testing.T) {
	t.Parallel()
	a, err := GenerateWrappingKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateWrappingKey()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Error("two generated keys are equal")
	}
	key, err := ParseWrappingKey(a)
	if err != nil || len(key) != WrappingKeySize {
		t.Fatalf("generated key does not parse: %v", err)
	}
	if _, err := base64.StdEncoding.DecodeString(a); err != nil {
		t.Errorf("generated key is not padded standard base64: %v", err)
	}
}

func TestLoadWrappingKeySources(t *testing.T) {
	t.Parallel()
	encoded := base64.StdEncoding.EncodeToString(sampleKey)
	file := writeKeyFile(t, "key", encoded+"\n", 0o600)

	if got, err := LoadWrappingKey(encoded, ""); err != nil || !bytes.Equal(got, sampleKey) {
		t.Errorf("from value: %x, %v", got, err)
	}
	if got, err := LoadWrappingKey("", file); err != nil || !bytes.Equal(got, sampleKey) {
		t.Errorf("from file: %x, %v", got, err)
	}
	if _, err := LoadWrappingKey("", ""); !errors.Is(err, ErrNoWrappingKey) {
		t.Errorf("neither: %v, want ErrNoWrappingKey", err)
	}
	if _, err := LoadWrappingKey(encoded, file); err == nil {
		t.Error("both a value and a file were accepted")
	}
}

func writeKeyFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	// Chmod explicitly: WriteFile's mode is filtered by the umask.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLoadWrappingKeyFile covers the file checks. Symlinks are followed
// (secret mounts are symlinks) and the file they lead to is checked.
func TestLoadWrappingKeyFile(t *testing.T) {
	t.Parallel()
	encoded := base64.StdEncoding.EncodeToString(sampleKey)
	tests := []struct {
		name    string
		path    func(t *testing.T) string
		want    error  // nil: accepted
		wantMsg string // substring of the error
	}{
		{"0600", func(t *testing.T) string { return writeKeyFile(t, "k", encoded, 0o600) }, nil, ""},
		{"0400", func(t *testing.T) string { return writeKeyFile(t, "k", encoded, 0o400) }, nil, ""},
		{"0700 owner only", func(t *testing.T) string { return writeKeyFile(t, "k", encoded, 0o700) }, nil, ""},
		{"0644", func(t *testing.T) string { return writeKeyFile(t, "k", encoded, 0o644) }, ErrInsecureKeyFile, "chmod 600"},
		{"0640", func(t *testing.T) string { return writeKeyFile(t, "k", encoded, 0o640) }, ErrInsecureKeyFile, "chmod 600"},
		{"0604", func(t *testing.T) string { return writeKeyFile(t, "k", encoded, 0o604) }, ErrInsecureKeyFile, "chmod 600"},
		{"0620 group writable", func(t *testing.T) string { return writeKeyFile(t, "k", encoded, 0o620) }, ErrInsecureKeyFile, "chmod 600"},
		{"0666", func(t *testing.T) string { return writeKeyFile(t, "k", encoded, 0o666) }, ErrInsecureKeyFile, "chmod 600"},
		{"directory", func(t *testing.T) string {
			dir := filepath.Join(t.TempDir(), "k")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			return dir
		}, ErrInsecureKeyFile, "not a regular file"},
		{"symlink to a 0600 file", func(t *testing.T) string {
			return symlinkTo(t, writeKeyFile(t, "target", encoded, 0o600))
		}, nil, ""},
		{"symlink to a 0644 file", func(t *testing.T) string {
			return symlinkTo(t, writeKeyFile(t, "target", encoded, 0o644))
		}, ErrInsecureKeyFile, "chmod 600"},
		{"symlink to a directory", func(t *testing.T) string { return symlinkTo(t, t.TempDir()) }, ErrInsecureKeyFile, "not a regular file"},
		{"dangling symlink", func(t *testing.T) string {
			return symlinkTo(t, filepath.Join(t.TempDir(), "missing"))
		}, fs.ErrNotExist, ""},
		{"missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "missing") }, fs.ErrNotExist, ""},
		{"empty file", func(t *testing.T) string { return writeKeyFile(t, "k", "", 0o600) }, ErrInvalidWrappingKey, "k"},
		{"bad content", func(t *testing.T) string { return writeKeyFile(t, "k", "not base64!", 0o600) }, ErrInvalidWrappingKey, "k"},
		{"short key", func(t *testing.T) string {
			return writeKeyFile(t, "k", base64.StdEncoding.EncodeToString(sampleKey[:31]), 0o600)
		}, ErrInvalidWrappingKey, "31 bytes"},
		{"zero key", func(t *testing.T) string {
			return writeKeyFile(t, "k", base64.StdEncoding.EncodeToString(make([]byte, 32)), 0o600)
		}, ErrInvalidWrappingKey, "all zero"},
		{"raw binary key", func(t *testing.T) string { return writeKeyFile(t, "k", string(sampleKey), 0o600) }, ErrInvalidWrappingKey, ""},
		{"huge file", func(t *testing.T) string {
			return writeKeyFile(t, "k", encoded+strings.Repeat(" ", maxWrappingKeyFile), 0o600)
		}, ErrInvalidWrappingKey, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := tt.path(t)
			got, err := LoadWrappingKey("", path)
			if tt.want == nil {
				if err != nil || !bytes.Equal(got, sampleKey) {
					t.Fatalf("LoadWrappingKey = %x, %v; want the key", got, err)
				}
				return
			}
			if !errors.Is(err, tt.want) || got != nil {
				t.Fatalf("LoadWrappingKey = %x, %v; want %v", got, err, tt.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error does not name the file: %v", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
			if strings.Contains(err.Error(), encoded) {
				t.Errorf("error leaks the key: %v", err)
			}
		})
	}
}

func symlinkTo(t *testing.T, target string) string {
	t.Helper()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	return link
}

func FuzzParseWrappingKey(f *testing.F) {
	for _, s := range []string{
		base64.StdEncoding.EncodeToString(sampleKey),
		base64.RawURLEncoding.EncodeToString(sampleKey),
		base64.StdEncoding.EncodeToString(make([]byte, 32)),
		base64.StdEncoding.EncodeToString(sampleKey[:31]),
		"", "=", "====", "\n", "-_+/", strings.Repeat("A", 43) + "=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		key, err := ParseWrappingKey(s)
		if err != nil {
			if key != nil || !errors.Is(err, ErrInvalidWrappingKey) {
				t.Fatalf("ParseWrappingKey = %x, %v", key, err)
			}
			if trimmed := strings.TrimSpace(s); len(trimmed) >= 8 && strings.Contains(err.Error(), trimmed) {
				t.Fatalf("error echoes the input: %v", err)
			}
			return
		}
		if CheckWrappingKey(key) != nil {
			t.Fatalf("accepted an unusable key %x", key)
		}
		// Whatever was accepted is what a canonical encoding decodes to.
		again, err := ParseWrappingKey(base64.StdEncoding.EncodeToString(key))
		if err != nil || !bytes.Equal(again, key) {
			t.Fatalf("re-encoding: %x, %v", again, err)
		}
	})
}
