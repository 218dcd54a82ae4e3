//go:build unix

package keyring

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestLoadWrappingKeyFIFO: opening a FIFO would block until a writer
// appears; it must be refused before it is opened.
func TestLoadWrappingKeyFIFO(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "k")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	_, err := LoadWrappingKey("", path)
	if !errors.Is(err, ErrInsecureKeyFile) || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("LoadWrappingKey of a FIFO: %v", err)
	}
}

// TestLoadWrappingKeyFileOwner needs root to give a file to another user.
func TestLoadWrappingKeyFileOwner(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	path := writeKeyFile(t, "k", base64.StdEncoding.EncodeToString(sampleKey), 0o600)
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Skipf("chown: %v", err)
	}
	_, err := LoadWrappingKey("", path)
	if !errors.Is(err, ErrInsecureKeyFile) || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("LoadWrappingKey of another user's file: %v", err)
	}
}
