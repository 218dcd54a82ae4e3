package secretfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(write("target", "s3cret", 0o600), link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		path    string
		want    string
		wantErr error
		msg     string
	}{
		{"0600", write("a", "s3cret", 0o600), "s3cret", nil, ""},
		{"0400", write("b", "s3cret", 0o400), "s3cret", nil, ""},
		{"symlink to an owner-only file", link, "s3cret", nil, ""},
		{"group readable", write("c", "s3cret", 0o640), "", ErrInsecure, "chmod 600"},
		{"world readable", write("d", "s3cret", 0o604), "", ErrInsecure, "chmod 600"},
		{"directory", dir, "", ErrInsecure, "not a regular file"},
		{"over the limit", write("e", strings.Repeat("x", 17), 0o600), "", ErrTooLarge, "larger than 16 bytes"},
		{"missing", filepath.Join(dir, "nope"), "", os.ErrNotExist, ""},
	} {
		got, err := Read(tc.path, 16)
		switch {
		case tc.wantErr == nil && (err != nil || string(got) != tc.want):
			t.Errorf("%s: Read = %q, %v; want %q", tc.name, got, err, tc.want)
		case tc.wantErr != nil && (!errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.msg)):
			t.Errorf("%s: err = %v, want %v containing %q", tc.name, err, tc.wantErr, tc.msg)
		}
	}
}
